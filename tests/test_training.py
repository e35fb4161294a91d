"""End to end: a short training run on a small synthetic IDX dataset written by the test, through
the library API and through the CLI (train, then eval of the saved weights)."""

import numpy as np
import pytest

import fastconv
from fastconv import data, nn, optim
from fastconv.__main__ import main
from fastconv.nn import functional as F

needs_kernels = pytest.mark.skipif(not (hasattr(fastconv, "conv2d") and hasattr(fastconv, "max_pool2d")),
                                   reason="convolution/pooling kernels not built yet")


def synthetic_split(directory, rng, n, split):
    """Ten classes: a bright 7x7 square whose position (a 3x3 grid plus one blank class) is the label,
    plus noise. Easy, but only learnable from the pixels."""
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        if y < 9:
            r, c = 2 + 9 * (y // 3), 2 + 9 * (y % 3)
            images[i, r : r + 7, c : c + 7] = 220
    stems = data._SPLIT_FILES[split]
    data.write_idx(directory / (stems[0] + ".gz"), images)
    data.write_idx(directory / (stems[1] + ".gz"), labels)


@pytest.fixture
def synthetic_root(tmp_path):
    rng = np.random.default_rng(0)
    synthetic_split(tmp_path, rng, 512, "train")
    synthetic_split(tmp_path, rng, 200, "test")
    return tmp_path


def test_mlp_training_loss_falls(synthetic_root):
    fastconv.manual_seed(0)
    train = data.fashion_mnist("train", root=synthetic_root, download=False)
    model = fastconv.models.MLP(hidden=(64,))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for epoch in range(3):
        for xb, yb in data.DataLoader(train, 64, shuffle=True, seed=epoch):
            loss = F.cross_entropy(model(fastconv.Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[0] > 2.0  # chance level is ln 10 = 2.30
    assert np.mean(losses[-4:]) < 0.2, losses


def run_cli(capsys, *argv):
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_cli_train_then_eval_mlp(synthetic_root, tmp_path, capsys):
    out = tmp_path / "run" / "mlp.npz"
    text = run_cli(capsys, "train", "--model", "mlp", "--dataset", "fashion-mnist", "--data", str(synthetic_root),
                   "--epochs", "2", "--batch-size", "64", "--out", str(out), "--no-progress", "--threads", "1")
    assert "epoch  2/2" in text and "images/s" in text and "final test accuracy" in text
    assert out.is_file() and out.with_suffix(".json").is_file()
    acc = float(text.split("final test accuracy ")[1].split("%")[0])
    assert acc > 90.0, text
    text = run_cli(capsys, "eval", "--weights", str(out), "--data", str(synthetic_root))
    assert f"accuracy {acc:.2f}%" in text and "confusion matrix" in text
    rows = [line for line in text.splitlines() if line[:2] in {f"{i} " for i in range(10)}]
    assert len(rows) == 10
    assert sum(int(v) for row in rows for v in row.split()[-11:-1]) == 200


@needs_kernels
def test_cli_lenet_one_epoch(synthetic_root, tmp_path, capsys):
    out = tmp_path / "lenet.npz"
    text = run_cli(capsys, "train", "--data", str(synthetic_root), "--epochs", "1", "--batch-size", "32",
                   "--out", str(out), "--no-progress")
    acc = float(text.split("final test accuracy ")[1].split("%")[0])
    assert acc > 50.0, text
    model = fastconv.models.LeNet5()
    state = fastconv.load(out)
    state.pop("__fastconv_meta__")
    model.load_state_dict(state)


def test_lenet_classic_builds():
    model = fastconv.models.LeNet5("classic")
    kinds = [type(m).__name__ for m in model.modules()]
    assert "Sigmoid" in kinds and "AvgPool2d" in kinds and "ReLU" not in kinds
    with pytest.raises(ValueError, match="variant"):
        fastconv.models.LeNet5("fancy")
    with pytest.raises(ValueError, match="known models: .*lenet5, mlp"):
        fastconv.models.get_model("resnet")
    assert isinstance(model.features[0], nn.Conv2d)


def test_plain_progress_yields_everything(capsys):
    from fastconv.training import _plain_progress

    assert list(_plain_progress(range(7), 7, "epoch 1/1")) == list(range(7))
    assert "7/7 batches (100%)" in capsys.readouterr().err
