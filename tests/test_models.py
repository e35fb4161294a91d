"""The classic CNNs of fastconv.models: full-size parameter counts and layer shapes (shape inference
only, no big forward pass), bad input, the summary command, and forward + backward of every small
(d2l) version against finite differences and against the same architecture in torch."""

import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import models, nn

try:
    import torch
    import torch.nn as tnn

    from fastconv.bench.torch_mirror import TorchInception, copy_weights, to_torch
except ImportError:  # pragma: no cover - torch is installed on the dev machine
    torch = None

NAMES = ["alexnet", "vgg11", "vgg16", "nin", "googlenet", "resnet18", "resnet34", "densenet121"]

# Full size (width 1, 1000 classes, 3 channels). AlexNet, VGG, ResNet and DenseNet-121: torchvision's
# counts. NiN and GoogLeNet (no auxiliary heads): checked against the torch definitions below.
FULL_PARAMS = {
    "alexnet": 61_100_840, "vgg11": 132_863_336, "vgg16": 138_357_544, "nin": 7_439_608,
    "googlenet": 6_998_552, "resnet18": 11_689_512, "resnet34": 21_797_672, "densenet121": 7_978_856,
}
# (C, H, W) leaving `features` for a 224x224 image.
FULL_FEATURES = {
    "alexnet": (256, 6, 6), "vgg11": (512, 7, 7), "vgg16": (512, 7, 7), "nin": (1000, 5, 5),
    "googlenet": (1024, 7, 7), "resnet18": (512, 7, 7), "resnet34": (512, 7, 7), "densenet121": (1024, 7, 7),
}


def _full(name, **kw):
    with nn.init.shapes_only():  # counts and shapes need no initial values (VGG has 138M)
        return models.get(name, **kw)


def _count(m):
    return sum(p.numel() for p in m.parameters())


# ---- the same architectures in torch: NiN and GoogLeNet written from the papers / d2l ----------------


def _torch_nin(num_classes=1000, in_channels=3):
    def block(ci, co, k, s, p):
        return tnn.Sequential(tnn.Conv2d(ci, co, k, s, p), tnn.ReLU(), tnn.Conv2d(co, co, 1), tnn.ReLU(),
                              tnn.Conv2d(co, co, 1), tnn.ReLU())

    return tnn.Sequential(block(in_channels, 96, 11, 4, 0), tnn.MaxPool2d(3, 2), block(96, 256, 5, 1, 2),
                          tnn.MaxPool2d(3, 2), block(256, 384, 3, 1, 1), tnn.MaxPool2d(3, 2), tnn.Dropout(0.5),
                          block(384, num_classes, 3, 1, 1), tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten())


def _torch_googlenet(num_classes=1000, in_channels=3):
    I = TorchInception
    return tnn.Sequential(
        tnn.Conv2d(in_channels, 64, 7, 2, 3), tnn.ReLU(), tnn.MaxPool2d(3, 2, 1),
        tnn.Conv2d(64, 64, 1), tnn.ReLU(), tnn.Conv2d(64, 192, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2, 1),
        I(192, 64, (96, 128), (16, 32), 32), I(256, 128, (128, 192), (32, 96), 64), tnn.MaxPool2d(3, 2, 1),
        I(480, 192, (96, 208), (16, 48), 64), I(512, 160, (112, 224), (24, 64), 64),
        I(512, 128, (128, 256), (24, 64), 64), I(512, 112, (144, 288), (32, 64), 64),
        I(528, 256, (160, 320), (32, 128), 128), tnn.MaxPool2d(3, 2, 1),
        I(832, 256, (160, 320), (32, 128), 128), I(832, 384, (192, 384), (48, 128), 128),
        tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(), tnn.Linear(1024, num_classes))


# ---- full size: counts and shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_full_size_parameter_count_and_shapes(name):
    m = _full(name)
    assert _count(m) == FULL_PARAMS[name]
    assert m.features.output_shape((2, 3, 224, 224)) == (2, *FULL_FEATURES[name])
    assert m.output_shape((2, 3, 224, 224)) == (2, 1000)


needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


@needs_torch
@pytest.mark.parametrize("name,build", [("nin", lambda: _torch_nin()), ("googlenet", lambda: _torch_googlenet())])
def test_nin_googlenet_match_torch_definitions(name, build):
    with torch.device("meta"):
        ref = build()
    assert sum(p.numel() for p in ref.parameters()) == FULL_PARAMS[name]
    assert tuple(ref(torch.empty(2, 3, 224, 224, device="meta")).shape) == (2, 1000)


@needs_torch
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [224, 97])
def test_every_layer_shape_matches_torch(name, size):
    """Our shape inference against torch actually running the mirrored model (on the meta device:
    shapes only, no arithmetic), layer by layer."""
    m = _full(name)
    ours = [out for mod, _, out in nn.trace_shapes(m, (2, 3, size, size)) if not mod._modules]
    tm = to_torch(m, "meta")
    seen = []
    for leaf in tm.modules():
        if not list(leaf.children()):
            leaf.register_forward_hook(lambda mod, i, o: seen.append(tuple(o.shape)))
    tm(torch.empty(2, 3, size, size, device="meta"))
    assert ours == seen
    assert sum(p.numel() for p in tm.parameters()) == FULL_PARAMS[name]


def test_width_scales_channels():
    m = _full("resnet18", width=0.25, num_classes=10, in_channels=1)
    assert m.features.output_shape((1, 1, 64, 64)) == (1, 128, 2, 2)
    assert m.output_shape((1, 1, 64, 64)) == (1, 10)


# ---- bad input ---------------------------------------------------------------------------------------------


def test_wrong_channel_count():
    m = models.resnet18(small=True, width=0.125)
    with pytest.raises(ValueError, match=r"resnet18: expected input of shape \(N, 1, H, W\), got \(2, 3, 32, 32\)"):
        m(fastconv.Tensor(np.zeros((2, 3, 32, 32), np.float32)))


@pytest.mark.parametrize("name,smallest", [("alexnet", 63), ("vgg11", 32), ("nin", 67), ("densenet121", 29)])
def test_too_small_image_names_smallest_size(name, smallest):
    m = _full(name)
    assert m.min_size() == smallest
    with pytest.raises(ValueError, match=f"smallest square input that works is {smallest}x{smallest}"):
        m(fastconv.Tensor(np.zeros((1, 3, smallest - 1, smallest - 1), np.float32)))
    assert m.output_shape((1, 3, smallest, smallest)) == (1, 1000)


@pytest.mark.parametrize("name,smallest,pooled", [("alexnet", 65, 5), ("vgg11", 32, 7)])
def test_small_alexnet_and_vgg_take_any_size(name, smallest, pooled):
    """d2l's layers; the adaptive pool in front of the classifier is the identity at d2l's 224x224
    (the map is already 5x5 / 7x7) and lets smaller images through."""
    m = models.get(name, small=True)
    assert m.features.output_shape((1, 1, 224, 224))[2:] == (pooled, pooled)
    assert isinstance(m.classifier[0], nn.AdaptiveAvgPool2d) and m.classifier[0].output_size == (pooled, pooled)
    assert m.min_size() == smallest and m.output_shape((3, 1, smallest, smallest)) == (3, 10)
    with pytest.raises(ValueError, match=f"smallest square input that works is {smallest}x{smallest}"):
        m.output_shape((1, 1, 28, 28))


def test_cat_mismatch_names_dimension():
    a = fastconv.Tensor(np.zeros((2, 3, 4, 4), np.float32))
    b = fastconv.Tensor(np.zeros((2, 5, 4, 3), np.float32))
    with pytest.raises(ValueError, match="cat: dimension 3 differs"):
        fastconv.cat([a, b], 1)


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="unknown model 'resnet50'; known models: .*densenet121.*resnet18"):
        models.get("resnet50")


@pytest.mark.parametrize("width", [0, -1, "2"])
def test_bad_width(width):
    with pytest.raises(ValueError, match="width"):
        models.resnet18(width=width)


# ---- summary ----------------------------------------------------------------------------------------------


def test_summary_rows():
    rows = models.summary(_full("resnet18"), (1, 3, 224, 224))
    assert rows[0]["name"] == "features.0" and rows[0]["output_shape"] == (1, 64, 112, 112)
    assert rows[0]["macs"] == 64 * 112 * 112 * 3 * 49 and rows[0]["algo"]
    assert sum(r["params"] for r in rows) == FULL_PARAMS["resnet18"]
    assert sum(r["macs"] for r in rows) == 1_814_073_344  # torchvision's 1.81 GMACs
    assert rows[-1]["output_shape"] == (1, 1000)


def test_summary_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fastconv", "summary", "--model", "resnet18", "--input", "1,28,28",
                          "--width", "0.25"], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    conv_line = next(line for line in out.splitlines() if line.startswith("features.4.conv1 "))
    assert "(1, 16, 7, 7)" in conv_line and conv_line.split()[-1] in fastconv.conv_algorithms((1, 16, 7, 7), (16, 16, 3, 3))
    assert out.strip().splitlines()[-1].split()[0] == "total"


def test_summary_reports_what_auto_runs_on_maps_smaller_than_the_kernel():
    """Issue 20: on 1x1 maps a 3x3 convolution with padding 1 runs its centre tap as one GEMM, and a
    stride-2 one on 2x2 maps its 2x2 live taps: summary names that and counts those multiply-adds."""
    rows = {r["name"]: r for r in models.summary(models.resnet18(small=True, width=0.25), (1, 1, 28, 28))}
    centre = rows["features.11.conv1"]
    assert centre["output_shape"] == (1, 128, 1, 1)
    assert centre["algo"] == "gemm (1x1 of 3x3 taps)" and centre["macs"] == 128 * 128
    strided = rows["features.10.conv1"]  # 64 -> 128 channels, 3x3 stride 2 on 2x2 maps
    assert strided["algo"].endswith(" (2x2 of 3x3 taps)") and strided["macs"] == 128 * 64 * 2 * 2
    assert strided["algo"].split()[0] == fastconv.conv.auto_forward((1, 64, 2, 2), (128, 64, 3, 3), 2, 1)[0]
    uncropped = rows["features.4.conv1"]  # 7x7 maps: every tap sees the image
    assert uncropped["algo"] in fastconv.conv_algorithms((1, 16, 7, 7), (16, 16, 3, 3))
    assert uncropped["macs"] == 16 * 7 * 7 * 16 * 9


# ---- small models: forward + backward, finite differences, torch parity ---------------------------------

# (constructor kwargs, input size, batch): d2l's architectures, narrowed and at small inputs so each
# forward + backward takes a fraction of a second. Batch-norm models get a 2x2 last map and 4 images:
# batch statistics over 2 values make the function too ill-conditioned to compare in float32.
SMALL = {
    "alexnet": (dict(width=0.0625), 67, 2),
    "vgg11": (dict(width=0.0625), 32, 2),
    "nin": (dict(width=0.0625), 67, 2),
    "googlenet": (dict(width=0.125), 32, 2),
    "resnet18": (dict(width=0.125), 64, 4),
    "densenet121": (dict(width=0.25), 64, 4),
}


def _small(name):
    kw, size, batch = SMALL[name]
    fastconv.manual_seed(0)
    m = models.get(name, small=True, **kw)
    for mod in m.modules():  # dropout off: the torch comparison needs the same function
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0
    x = np.random.default_rng(1).standard_normal((batch, 1, size, size)).astype(np.float32)
    return m, x


def _loss(m, x, proj):
    out = m(fastconv.Tensor(x))
    return out, (out * fastconv.Tensor(proj)).sum()


@pytest.mark.parametrize("name", list(SMALL))
def test_small_forward_backward_finite_differences(name):
    m, x = _small(name)
    proj = np.random.default_rng(2).standard_normal((len(x), 10)).astype(np.float32)
    out, loss = _loss(m, x, proj)
    assert out.shape == (len(x), 10) == m.output_shape(x.shape)
    loss.backward()
    params = dict(m.named_parameters())
    weights = [k for k in params if k.endswith("weight") and params[k].ndim > 1]
    # The last two layers everywhere; the first convolution too where no batch norm follows it: there a
    # 2e-3 step of one first-layer weight moves the batch statistics of a tiny batch enough to cross
    # ReLU and max-pool kinks (the analytic gradient still equals torch's, test_small_matches_torch).
    has_bn = any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    for key in weights[-2:] if has_bn else [weights[0]] + weights[-2:]:
        p = params[key]
        assert p.grad is not None and np.isfinite(p.grad).all()
        for idx in [(0,) * p.ndim, tuple(s - 1 for s in p.shape)]:
            eps = 2e-3
            saved = float(p.data[idx])
            vals = []
            for d in (eps, -eps):
                p.data[idx] = saved + d
                with fastconv.no_grad():
                    vals.append(float(_loss(m, x, proj)[1].item()))
            p.data[idx] = saved
            fd = (vals[0] - vals[1]) / (2 * eps)
            # float32 forward of a deep net: agreement to 2% of the larger or 1e-2 absolute.
            assert abs(fd - p.grad[idx]) <= 2e-2 * max(abs(fd), abs(p.grad[idx])) + 1e-2, (key, idx, fd, p.grad[idx])


@needs_torch
@pytest.mark.parametrize("name", list(SMALL))
def test_small_matches_torch(name):
    m, x = _small(name)
    tm = to_torch(m)
    copy_weights(tm, m)
    proj = np.random.default_rng(2).standard_normal((len(x), 10)).astype(np.float32)
    out, loss = _loss(m, x, proj)
    loss.backward()
    tx = torch.from_numpy(x)
    tout = tm(tx)
    (tout * torch.from_numpy(proj)).sum().backward()
    scale = max(1.0, float(np.abs(tout.detach().numpy()).max()))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=0, atol=1e-4 * scale)
    tparams = dict(tm.named_parameters())
    # 1e-4 of the largest gradient: a bias right before batch norm has an exact gradient of 0 that both
    # sides round to noise of that size.
    gscale = max(1.0, max(float(t.grad.abs().max()) for t in tparams.values()))
    for key, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[key].grad.numpy(), rtol=0, atol=1e-4 * gscale, err_msg=key)
    tstate = tm.state_dict()
    for key, v in m.state_dict().items():  # running statistics updated alike
        np.testing.assert_allclose(v, tstate[key].numpy(), rtol=1e-5, atol=1e-5, err_msg=key)


# ---- resize transform and the train CLI's model options ------------------------------------------------


@needs_torch
@pytest.mark.parametrize("src,dst", [((28, 28), 32), ((28, 28), 96), ((7, 5), (3, 11)), ((1, 1), 4), ((28, 28), 14)])
def test_resize_matches_torch_bilinear(src, dst):
    x = np.random.default_rng(0).random((3, 2, *src), dtype=np.float32)
    before = x.copy()
    ours = fastconv.data.resize(x, dst)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=dst if isinstance(dst, tuple) else (dst, dst),
                                          mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)  # pixels in [0, 1], float32 weights
    np.testing.assert_array_equal(x, before)
    assert fastconv.data.resize(x[0], dst).shape == ref.shape[1:]


def _resize_ref(x, out_h, out_w):
    """Bilinear resize from the definition, in float64: half-pixel centres clamped at 0, the upper
    neighbour clamped to the last pixel (torch's align_corners=False)."""
    def taps(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    r0, r1, fr = taps(x.shape[-2], out_h)
    c0, c1, fc = taps(x.shape[-1], out_w)
    x = x.astype(np.float64)
    top = x[..., r0, :] * (1 - fr)[:, None] + x[..., r1, :] * fr[:, None]
    return top[..., c0] * (1 - fc) + top[..., c1] * fc


@pytest.mark.parametrize("src,dst", [((28, 28), (32, 32)), ((28, 28), (96, 96)), ((7, 5), (3, 11)), ((1, 1), (4, 4)),
                                     ((28, 28), (14, 14)), ((13, 17), (13, 17)), ((5, 3), (1, 1)), ((2, 9), (7, 2))])
def test_resize_matches_float64_definition(src, dst):
    x = np.random.default_rng(1).standard_normal((3, 2, *src)).astype(np.float32)
    before = x.copy()
    ours = fastconv.data.resize(x, dst)
    assert ours.dtype == np.float32 and ours.shape == (3, 2, *dst)
    np.testing.assert_allclose(ours, _resize_ref(x, *dst), rtol=0, atol=1e-6 * np.abs(x).max())
    np.testing.assert_array_equal(x, before)
    if src == dst:
        np.testing.assert_array_equal(ours, x)
    big = np.random.default_rng(2).random((300, 3, *src), dtype=np.float32)  # threaded path
    np.testing.assert_allclose(fastconv.data.resize(big, dst), _resize_ref(big, *dst), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fastconv.data.resize(x.astype(np.float64)[0], dst), _resize_ref(x[0], *dst), atol=1e-5)


def test_resize_bad_input():
    with pytest.raises(ValueError, match="resize: expected"):
        fastconv.data.resize(np.zeros((4, 4), np.float32), 8)
    with pytest.raises(ValueError, match="size"):
        fastconv.data.resize(np.zeros((1, 1, 4, 4), np.float32), 0)
    with pytest.raises(ValueError, match="positive height and width"):
        fastconv.data.resize(np.zeros((1, 1, 0, 4), np.float32), 3)
    with pytest.raises(TypeError, match="floating-point"):
        fastconv.data.resize(np.zeros((1, 1, 4, 4), np.uint8), 3)


def test_resized_dataset():
    ds = fastconv.data.ArrayDataset(np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32),
                                    np.arange(5) % 2)
    r = fastconv.data.ResizedDataset(ds, 32)
    xb, yb = r[1:4]
    assert xb.shape == (3, 1, 32, 32) and list(yb) == [1, 0, 1] and len(r) == 5 and r.labels is ds.labels


def test_train_cli_too_small_says_resize(tmp_path):
    from test_training import synthetic_split

    rng = np.random.default_rng(0)
    synthetic_split(tmp_path, rng, 64, "train")
    synthetic_split(tmp_path, rng, 16, "test")
    res = subprocess.run([sys.executable, "-m", "fastconv", "train", "--model", "alexnet", "--epochs", "1",
                          "--no-progress", "--data", str(tmp_path), "--out", str(tmp_path / "w.npz")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode != 0
    assert "smallest square input that works is 65x65" in res.stderr and "--resize" in res.stderr


def test_train_then_eval_cli_resnet18_resized(tmp_path, capsys):
    from test_training import run_cli, synthetic_split

    rng = np.random.default_rng(0)
    synthetic_split(tmp_path, rng, 256, "train")
    synthetic_split(tmp_path, rng, 64, "test")
    out = tmp_path / "r.npz"
    text = run_cli(capsys, "train", "--model", "resnet18", "--width", "0.125", "--resize", "32", "--data",
                   str(tmp_path), "--epochs", "1", "--batch-size", "64", "--out", str(out), "--no-progress")
    assert "resnet18" in text and "final test accuracy" in text
    acc = float(text.split("final test accuracy ")[1].split("%")[0])
    text = run_cli(capsys, "eval", "--weights", str(out), "--data", str(tmp_path))
    assert f"accuracy {acc:.2f}%" in text


def test_train_cli_xavier_init(tmp_path, capsys):
    """--init xavier draws d2l's initial weights: with lr 0 the saved weights are the initial ones, and
    NiN's 1x1 convolutions (fan-in = fan-out = c) reach past the default bound 1/sqrt(c) up to
    Xavier's sqrt(3/c)."""
    from test_training import run_cli, synthetic_split

    rng = np.random.default_rng(0)
    synthetic_split(tmp_path, rng, 64, "train")
    synthetic_split(tmp_path, rng, 16, "test")
    out = tmp_path / "nin.npz"
    text = run_cli(capsys, "train", "--model", "nin", "--width", "0.125", "--resize", "68", "--init", "xavier",
                   "--optimizer", "sgd", "--lr", "0", "--data", str(tmp_path), "--epochs", "1", "--batch-size", "32",
                   "--out", str(out), "--no-progress")
    assert "init xavier" in text
    model = models.get("nin", small=True, width=0.125)
    state = fastconv.load(out)
    state.pop("__fastconv_meta__")
    model.load_state_dict(state)
    one_by_one = [m.weight.data for m in model.modules()
                  if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.in_channels == m.out_channels]
    assert one_by_one
    for w in one_by_one:
        c = w.shape[0]
        assert 1 / np.sqrt(c) < np.abs(w).max() <= np.sqrt(3 / c)


@pytest.mark.parametrize("name", ["lenet5", "mlp"])
def test_summary_of_lenet_and_mlp(name):
    rows = models.summary(models.get(name), (2, 1, 28, 28))
    assert rows[-1]["output_shape"] == (2, 10)
    assert sum(r["params"] for r in rows) == _count(models.get(name))


def test_batchnorm_buffers_survive_training_forward():
    """BatchNorm2d counts batches with `self.num_batches_tracked += 1`: the buffer must stay in the
    state_dict (it used to drop out, so a trained model's weights no longer loaded)."""
    bn = nn.BatchNorm2d(3)
    bn(fastconv.Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)))
    state = bn.state_dict()
    assert int(state["num_batches_tracked"]) == 1
    nn.BatchNorm2d(3).load_state_dict(state)
