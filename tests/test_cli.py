"""Issue 20, the command line: runs read back with their metadata (eval and viz alike), --data is the
only place searched, files that are no weights, and bad values or flags: one-line errors naming the
flag under the subcommand's usage, never a traceback. Small synthetic IDX datasets, no download."""

import json

import numpy as np
import pytest

import fastconv
from fastconv import data
from fastconv.__main__ import main
from test_training import synthetic_split


@pytest.fixture
def dataset_dir(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    synthetic_split(root, rng, 64, "train")
    synthetic_split(root, rng, 16, "test")
    return root


def save_run(path, net, **meta):
    """Weights with the metadata train stores beside them."""
    state = net.state_dict()
    state["__fastconv_meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return fastconv.save(state, path)


def usage_error(capsys, argv):
    """(the error line, everything on stderr) of an argv that must end in argparse's exit code 2."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1], err


# ---- a run's metadata: eval and viz build the same model ---------------------------------------------


def test_viz_activations_of_a_resized_narrow_resnet_run(tmp_path, dataset_dir, capsys, monkeypatch):
    """`viz activations` on a resnet18 run trained at width 0.125 on 32x32 images: the small model at
    that width, fed resized test images (it used to build the full-size model and fail to load)."""
    pytest.importorskip("matplotlib")
    fastconv.manual_seed(0)
    model = fastconv.models.resnet18(small=True, width=0.125)
    weights = save_run(tmp_path / "r.npz", model, model="resnet18", variant="modern", dataset="fashion-mnist",
                       normalize=True, width=0.125, resize=32)
    monkeypatch.setenv("FASTCONV_DATA", str(dataset_dir))  # found without --data, as before
    monkeypatch.chdir(tmp_path)
    assert main(["viz", "activations", "--weights", str(weights), "--index", "2", "--out", "a.png"]) == 0
    assert "features.0" in capsys.readouterr().out and (tmp_path / "a.png").stat().st_size > 0
    assert main(["eval", "--weights", str(weights), "--device", "cpu"]) == 0
    assert "resnet18" in capsys.readouterr().out


def test_viz_and_eval_take_data(tmp_path, dataset_dir, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    weights = save_run(tmp_path / "m.npz", fastconv.models.LeNet5(), model="lenet5", variant="modern",
                       dataset="fashion-mnist", normalize=False)
    assert main(["viz", "activations", "--weights", str(weights), "--data", str(dataset_dir), "--out", "a.png"]) == 0
    assert main(["viz", "edges", "--index", "3", "--data", str(dataset_dir), "--out", "e.png"]) == 0
    assert "test image 3" in capsys.readouterr().out
    line, _ = usage_error(capsys, ["viz", "activations", "--weights", str(weights), "--index", "16",
                                   "--data", str(dataset_dir)])
    assert line.endswith("error: --index: expected 0 .. 15, got 16")


# ---- weights files ----------------------------------------------------------------------------------------


def test_eval_of_a_text_file_says_it_is_no_weights_file(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("lr 3e-3 looked best\n")
    line, err = usage_error(capsys, ["eval", "--weights", str(notes)])
    assert line.startswith("python -m fastconv eval: error: --weights")
    assert "not a fastconv .npz weights file" in line and "pickle" not in err


def test_load_of_a_text_file(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights\n")
    with pytest.raises(ValueError, match="not a fastconv .npz weights file") as info:
        fastconv.load(notes)
    assert "pickle" not in str(info.value) and str(notes) in str(info.value)


def test_eval_with_a_model_that_does_not_fit(tmp_path, dataset_dir, capsys):
    weights = save_run(tmp_path / "m.npz", fastconv.models.LeNet5(), model="lenet5", variant="modern")
    line, _ = usage_error(capsys, ["eval", "--weights", str(weights), "--model", "mlp", "--data", str(dataset_dir)])
    assert line.startswith("python -m fastconv eval: error: --model: the weights in")
    assert "saved by train for lenet5" in line and "do not fit mlp" in line
    line, _ = usage_error(capsys, ["eval", "--weights", str(tmp_path / "none.npz")])
    assert line.endswith("--weights " + str(tmp_path / "none.npz") + ": no such file")


# ---- where the dataset comes from --------------------------------------------------------------------------


def test_train_with_an_empty_data_dir_fails(tmp_path, dataset_dir, capsys, monkeypatch):
    """--data names the directory: an empty one is an error even when the dataset is elsewhere."""
    monkeypatch.setenv("FASTCONV_DATA", str(dataset_dir))
    empty = tmp_path / "empty"
    empty.mkdir()
    line, _ = usage_error(capsys, ["train", "--model", "mlp", "--epochs", "1", "--data", str(empty),
                                   "--out", str(tmp_path / "w.npz"), "--no-progress"])
    assert line.startswith(f"python -m fastconv train: error: --data {empty}: no fashion-mnist train files")
    assert str(empty / "fashion-mnist") in line
    assert not (tmp_path / "w.npz").exists()


def test_no_dataset_anywhere_says_data(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setitem(data._DATASETS["fashion-mnist"], "system_dir", str(tmp_path / "nowhere"))

    def offline(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    assert main(["train", "--model", "mlp", "--epochs", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: fashion-mnist: could not find train-images-idx3-ubyte")
    assert str(tmp_path / "nowhere") in err and "pass --data DIR" in err and "root=" not in err
    assert "Traceback" not in err


# ---- bad values and flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "0"], "argument --epochs: expected a value >= 1, got 0"),
        (["train", "--threads", "0"], "argument --threads: expected a value >= 1, got 0"),
        (["train", "--batch-size", "0"], "argument --batch-size: expected a value >= 1, got 0"),
        (["train", "--lr", "-0.1"], "argument --lr: expected a value >= 0.0, got -0.1"),
        (["train", "--lr", "nan"], "argument --lr: expected a value >= 0.0, got nan"),
        (["train", "--width", "0", "--model", "resnet18"], "argument --width: expected a value > 0, got 0"),
        (["train", "--epocs", "3"], "unrecognized arguments: --epocs 3"),
        (["train", "--model", "mlp", "--width", "0.5"], "--width applies to the d2l models, not mlp"),
        (["eval", "--weights", "w.npz", "--batch-size", "0"], "argument --batch-size: expected a value >= 1, got 0"),
        (["viz", "activations", "--weights", "w.npz", "--model", "bogus"], "argument --model: invalid choice: 'bogus'"),
        (["viz", "activations", "--weights", "w.npz", "--index", "-1"], "argument --index: expected a value >= 0, got -1"),
        (["summary", "--model", "resnet18", "--batch", "0"], "argument --batch: expected a value >= 1, got 0"),
        (["summary", "--model", "resnet18", "--input", "1,28"], "--input: expected C,H,W"),
        (["demo", "--size", "0"], "argument --size: expected a value >= 1, got 0"),
    ],
)
def test_bad_values_are_one_line_errors_under_the_subcommands_usage(argv, message, dataset_dir, capsys, monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", str(dataset_dir))  # so that nothing fails for want of data
    line, err = usage_error(capsys, argv)
    command = " ".join(argv[:2] if argv[0] == "viz" else argv[:1])
    assert err.startswith(f"usage: python -m fastconv {command} ")
    assert line.startswith(f"python -m fastconv {command}: error: {message}"), line


@pytest.mark.parametrize("command", ["train", "eval"])
def test_device_cuda_without_a_gpu(command, tmp_path, dataset_dir, capsys, monkeypatch):
    if fastconv.cuda.is_available():
        pytest.skip("a GPU is present")
    weights = save_run(tmp_path / "m.npz", fastconv.models.MLP(), model="mlp")
    argv = ["train", "--model", "mlp", "--out", str(tmp_path / "w.npz")] if command == "train" else \
        ["eval", "--weights", str(weights)]
    line, _ = usage_error(capsys, argv + ["--device", "cuda", "--data", str(dataset_dir)])
    assert line.startswith(f"python -m fastconv {command}: error: --device cuda: no CUDA device available")


# ---- the training-curve plot ---------------------------------------------------------------------------------


def test_training_curves_name_the_run(tmp_path, dataset_dir, capsys, monkeypatch):
    figure = pytest.importorskip("matplotlib.figure")
    saved = []
    real_savefig = figure.Figure.savefig
    monkeypatch.setattr(figure.Figure, "savefig",
                        lambda fig, *a, **k: (saved.append(fig), real_savefig(fig, *a, **k))[1])
    out = tmp_path / "run.npz"
    assert main(["train", "--model", "mlp", "--optimizer", "sgd", "--lr", "0.05", "--epochs", "2", "--batch-size",
                 "32", "--data", str(dataset_dir), "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    assert out.with_suffix(".png").stat().st_size > 0
    title = saved[-1].get_suptitle()
    for part in ("mlp", "fashion-mnist", "sgd", "lr 0.05", "2 epochs", "batch 32"):
        assert part in title, (part, title)
