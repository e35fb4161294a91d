"""fastconv.viz: each function returns a Figure and writes a PNG that is not blank; the viz CLI
commands write PNGs; the ImportError without matplotlib names the extra."""

import subprocess
import sys

import numpy as np
import pytest

import fastconv

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from fastconv import filters, viz  # noqa: E402


def assert_picture(path, ink=0.05):
    """A PNG with real content: several distinct gray levels and at least `ink` of non-white pixels."""
    import matplotlib.image

    img = matplotlib.image.imread(str(path))[..., :3]
    gray = img.mean(axis=-1)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert gray.std() > 0.05 or ink < 0.05, "picture looks blank"
    assert (gray < 0.9).mean() > ink, "picture is almost all white"
    assert len(np.unique(np.round(gray, 2))) > 10


def test_show_filters(tmp_path, rng):
    fig = viz.show_filters(filters.edge4()[:, None], save=tmp_path / "edge4.png")
    assert isinstance(fig, Figure)
    assert_picture(tmp_path / "edge4.png")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("-1") == 32 and texts.count("1") == 32  # values written on 4x4 kernels
    weight = rng.standard_normal((6, 3, 5, 5)).astype(np.float32)
    viz.show_filters(weight, annotate=False, save=tmp_path / "w.png")
    assert_picture(tmp_path / "w.png")
    viz.show_filters(filters.sobel(1), save=tmp_path / "sobel.png")
    assert_picture(tmp_path / "sobel.png")
    with pytest.raises(ValueError, match="weight: expected shape"):
        viz.show_filters(np.zeros(3))


def test_show_images_and_feature_maps(tmp_path, rng):
    images = rng.random((10, 1, 28, 28)).astype(np.float32)
    fig = viz.show_images(images, labels=np.arange(10), classes=[f"class {i}" for i in range(10)], save=tmp_path / "i.png")
    assert isinstance(fig, Figure)
    assert_picture(tmp_path / "i.png")
    assert "class 3" in [ax.get_title() for ax in fig.axes]
    viz.show_images(rng.random((3, 8, 8, 3)), save=tmp_path / "rgb.png")
    assert_picture(tmp_path / "rgb.png")
    viz.show_feature_maps(rng.random((5, 12, 12)), save=tmp_path / "m.png")
    assert_picture(tmp_path / "m.png")
    with pytest.raises(ValueError, match="labels"):
        viz.show_images(images, labels=[1, 2])


@pytest.mark.parametrize(
    "history",
    [
        {"train_loss": [2.0, 1.1, 0.7, 0.5], "test_loss": [1.9, 1.2, 0.8, 0.7], "test_accuracy": [0.5, 0.7, 0.8, 0.85]},
        [{"epoch": i + 1, "loss": 1.0 / (i + 1), "accuracy": 60 + 5 * i} for i in range(5)],
        {"history": [{"epoch": i + 1, "loss": 0.5 / (i + 1), "train_acc": 0.8, "test_acc": 0.85, "seconds": 4.2,
                      "images_per_s": 14000.0} for i in range(3)]},  # train's .json file
    ],
)
def test_plot_history(tmp_path, history):
    fig = viz.plot_history(history, save=tmp_path / "h.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plotted = {line.get_label() for ax in fig.axes for line in ax.get_lines()}
    assert not plotted & {"epoch", "seconds", "images_per_s"}
    assert fig.axes[0].get_xlabel() == "epoch"
    assert_picture(tmp_path / "h.png", ink=0.01)  # line plots are mostly white


def test_plot_history_bad_input():
    with pytest.raises(TypeError, match="history"):
        viz.plot_history(3)
    with pytest.raises(ValueError, match="history"):
        viz.plot_history({})


def test_plot_confusion(tmp_path, rng):
    m = rng.integers(0, 50, size=(10, 10)) + np.diag(np.full(10, 300))
    fig = viz.plot_confusion(m, [f"c{i}" for i in range(10)], save=tmp_path / "c.png")
    assert isinstance(fig, Figure)
    assert_picture(tmp_path / "c.png")
    assert fig.axes[0].get_xlabel() == "predicted"
    viz.plot_confusion(m, normalize=True, save=tmp_path / "cn.png")
    assert_picture(tmp_path / "cn.png")
    with pytest.raises(ValueError, match="classes"):
        viz.plot_confusion(m, ["a"])
    with pytest.raises(ValueError, match="matrix"):
        viz.plot_confusion(np.zeros((2, 3)))


def test_edge_walkthrough(tmp_path):
    img = np.zeros((28, 28), np.float32)
    img[6:22, 9:19] = 1.0  # a bright rectangle: two vertical and two horizontal edges
    fig = viz.show_edge_walkthrough(img, save=tmp_path / "e.png")
    assert_picture(tmp_path / "e.png")
    maps = [im.get_array() for ax in fig.axes[6:] for im in ax.get_images()]
    assert len(maps) == 4
    # filter 1 (dark-to-bright left to right) fires on the left edge only, filter 2 on the right edge
    assert maps[0][:, :12].max() > 0 and maps[0][:, 12:].max() == 0
    assert maps[1][:, 12:].max() > 0 and maps[1][:, :12].max() == 0


def test_missing_matplotlib_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install fastconv\[plot\]"):
        viz.show_filters(filters.sobel(0))


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fastconv", "viz", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_edges_from_png(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    yy, xx = np.mgrid[:64, :80]
    picture = (((xx // 16 + yy // 16) % 2) * 255).astype(np.uint8)  # a checkerboard: edges everywhere
    Image.fromarray(picture).save(tmp_path / "in.png")
    r = run_cli("edges", "--image", str(tmp_path / "in.png"), "--out", "edges.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_picture(tmp_path / "edges.png")



@pytest.fixture
def lenet_weights(tmp_path):
    """A LeNet-5 state dict (random weights: the pictures only need shapes) saved like train does."""
    fastconv.manual_seed(0)
    model = fastconv.models.LeNet5()
    path = fastconv.save(model.state_dict(), tmp_path / "lenet.npz")
    return model, path


def test_show_activation_maps(tmp_path, rng, lenet_weights):
    model, _ = lenet_weights
    image = rng.random((1, 28, 28)).astype(np.float32)
    fig = viz.show_activation_maps(model, image, "features.0", save=tmp_path / "a.png")
    assert_picture(tmp_path / "a.png")
    assert len(fig.axes) >= 7 and fig.axes[1].get_title() == "channel 0"  # the input, then 6 channels
    fig = viz.show_activation_maps(model, image, model.features[3])  # a module works too
    assert "16 channels" in fig.get_suptitle()
    assert "forward" not in model.features[3].__dict__  # the recording hook is gone
    with pytest.raises(ValueError, match="layer: 'nope' is not a sub-module"):
        viz.show_activation_maps(model, image, "nope")
    with pytest.raises(ValueError, match="image: expected one image"):
        viz.show_activation_maps(model, rng.random((2, 1, 28, 28)), "features.0")


def require_fashion_mnist():
    """Skip (CI has no dataset and no network) unless the Fashion-MNIST test split is installed."""
    from fastconv.data import load_idx_dataset

    try:
        load_idx_dataset("fashion-mnist", "test", download=False)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def test_cli_filters_and_activations(tmp_path, lenet_weights, capsys, monkeypatch):
    """In-process (fastconv.__main__.main) to stay fast; test_cli_edges_* cover `python -m`."""
    from fastconv.__main__ import main

    require_fashion_mnist()
    _, path = lenet_weights
    monkeypatch.chdir(tmp_path)
    assert main(["viz", "filters", "--weights", str(path), "--out", "f.png"]) == 0
    assert "features.0.weight (6, 1, 5, 5)" in capsys.readouterr().out
    assert_picture(tmp_path / "f.png")
    assert main(["viz", "filters", "--weights", str(path), "--layer", "features.3", "--out", "f3.png"]) == 0
    assert "(16, 6, 5, 5)" in capsys.readouterr().out
    assert main(["viz", "activations", "--weights", str(path), "--index", "3", "--out", "a.png"]) == 0
    assert_picture(tmp_path / "a.png")
    with pytest.raises(SystemExit) as info:
        main(["viz", "filters", "--weights", str(path), "--layer", "classifier.1", "--out", "x.png"])
    assert info.value.code == 2 and "error: --layer: no conv weight 'classifier.1'" in capsys.readouterr().err


def test_cli_edges_fashion_mnist(tmp_path):
    require_fashion_mnist()
    r = run_cli("edges", "--index", "1", "--out", "edges.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "test image 1" in r.stdout
    assert_picture(tmp_path / "edges.png")


@pytest.mark.parametrize("epochs", [1, 3, 30])
def test_plot_history_ticks_whole_epochs(epochs):
    fig = viz.plot_history({"loss": [0.5] * epochs, "test_acc": [0.8] * epochs})
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
