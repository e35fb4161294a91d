"""fastconv.torch: custom ops (opcheck), drop-in layers, patch(), parity with torch, torch.compile.

Parity bound: relative error 1e-5 of outputs and gradients (max |ours - torch| / max |torch|),
the float32 accumulation-order difference between two correct implementations.
"""

import os
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fastconv  # noqa: E402
import fastconv.torch as ft  # noqa: E402

RTOL = 1e-5


def rel_err(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def check_same_as_torch(ours, ref, x, **call):
    """ours and ref (same weights) agree on outputs and on the gradients of x and every parameter."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y = ref(x1, **call), ours(x2, **call)
    assert y.shape == y_ref.shape
    assert rel_err(y, y_ref) < RTOL
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y.backward(g)
    assert rel_err(x2.grad, x1.grad) < RTOL
    for (name, p_ref), p in zip(ref.named_parameters(), ours.parameters()):
        assert rel_err(p.grad, p_ref.grad) < RTOL, name


OPCHECK_CASES = [
    ("conv2d", lambda g: (g(2, 3, 9, 7), g(4, 3, 3, 3), g(4), [1, 1], [1, 1], [1, 1], 1, "auto")),
    ("conv2d", lambda g: (g(1, 4, 11, 8), g(6, 2, 3, 2), None, [2, 3], [1, 0], [2, 1], 2, "auto")),
    ("conv2d", lambda g: (g(3, 1, 5, 5), g(2, 1, 5, 5), g(2), [1, 1], [0, 0], [1, 1], 1, "direct")),
    ("conv2d_input_grad", lambda g: ([2, 3, 9, 7], g(4, 3, 3, 3), g(2, 4, 5, 4), [2, 2], [1, 1], [1, 1], 1, "auto")),
    ("conv2d_weight_grad", lambda g: (g(2, 3, 9, 7), [4, 3, 3, 3], g(2, 4, 5, 4), [2, 2], [1, 1], [1, 1], 1, "auto")),
    ("conv2d", lambda g: (g(3, 7, 6), g(4, 3, 3, 2), g(4), [2, 1], [1, 0], [1, 2], 1, "auto")),  # unbatched
    ("conv1d", lambda g: (g(3, 11), g(4, 3, 3), g(4), [2], [1], [1], 1, "auto")),  # unbatched
    ("conv_transpose2d", lambda g: (g(3, 4, 5), g(3, 2, 3, 3), g(2), [2, 1], [1, 0], [1, 0], 1, [1, 1], "auto")),
    ("conv1d", lambda g: (g(2, 3, 11), g(4, 3, 3), g(4), [2], [1], [2], 1, "auto")),
    ("conv1d", lambda g: (g(1, 4, 7), g(6, 2, 2), None, [1], [0], [1], 2, "direct")),
    ("conv_transpose2d", lambda g: (g(2, 3, 5, 4), g(3, 4, 3, 3), g(4), [2, 2], [1, 1], [1, 0], 1, [1, 1], "auto")),
    ("conv_transpose2d", lambda g: (g(1, 4, 3, 5), g(4, 3, 2, 3), None, [1, 3], [2, 0], [2, 1], 2, [3, 1], "auto")),
    ("max_pool2d", lambda g: (g(2, 3, 9, 9), [3, 3], [2, 2], [1, 1], [1, 1], True)),
    ("max_pool2d", lambda g: (g(1, 2, 7, 5), [2, 1], [3, 2], [0, 0], [1, 1], False)),
    ("max_pool2d", lambda g: (g(2, 2, 11, 10), [3, 2], [1, 2], [1, 1], [2, 3], True)),
    ("avg_pool2d", lambda g: (g(2, 3, 9, 9), [3, 2], [2, 2], [1, 1], True, False, None)),
    ("avg_pool2d", lambda g: (g(1, 1, 6, 7), [2, 2], [2, 2], [0, 0], False, True, None)),
    ("avg_pool2d", lambda g: (g(2, 2, 9, 8), [3, 3], [2, 1], [1, 1], True, False, 5)),
    ("adaptive_avg_pool2d", lambda g: (g(2, 3, 9, 7), [4, 3])),
    ("adaptive_avg_pool2d", lambda g: (g(1, 2, 3, 5), [5, 1])),
    ("max_pool2d_grad", lambda g: (g(1, 2, 3, 3), torch.zeros(1, 2, 3, 3, dtype=torch.int64) + 4, [1, 2, 6, 6])),
    ("avg_pool2d_grad", lambda g: (g(2, 3, 5, 5), [2, 3, 9, 9], [3, 2], [2, 2], [1, 1], True, False, None)),
    ("avg_pool2d_grad", lambda g: (g(2, 3, 5, 5), [2, 3, 9, 9], [3, 2], [2, 2], [1, 1], True, False, 2)),
    ("adaptive_avg_pool2d_grad", lambda g: (g(2, 3, 4, 3), [2, 3, 9, 7])),
]


@pytest.mark.parametrize("name,make", OPCHECK_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPCHECK_CASES)])
def test_opcheck(name, make):
    gen = torch.Generator().manual_seed(0)
    differentiable = ("conv2d", "conv1d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")
    args = make(lambda *s: torch.randn(*s, generator=gen, requires_grad=name in differentiable))
    torch.library.opcheck(getattr(torch.ops.fastconv, name).default, args)


def test_cpu_tensors_share_memory(monkeypatch):
    x = torch.randn(2, 3, 8, 8)
    seen = []
    real = fastconv.conv2d

    def spy(xa, *rest):
        seen.append(xa)
        return real(xa, *rest)

    monkeypatch.setattr(fastconv.torch.ops, "fc_conv2d", spy)  # the kernel entry the custom op calls
    y = torch.ops.fastconv.conv2d(x, torch.randn(4, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], 1, "auto")
    assert seen[0].__array_interface__["data"][0] == x.data_ptr()
    assert y.shape == (2, 4, 6, 6)


def test_non_contiguous_input_matches():
    x = torch.randn(2, 8, 8, 3).permute(0, 3, 1, 2)
    w = torch.randn(4, 3, 3, 3)
    ours = torch.ops.fastconv.conv2d(x, w, None, [1, 1], [1, 1], [1, 1], 1, "auto")
    assert rel_err(ours, nn.functional.conv2d(x, w, padding=1)) < RTOL


def test_bad_dtype_and_device():
    w = torch.randn(4, 3, 3, 3)
    with pytest.raises(TypeError, match="x: expected dtype torch.float32.*float64"):
        torch.ops.fastconv.conv2d(torch.randn(1, 3, 5, 5, dtype=torch.float64), w, None, [1, 1], [0, 0], [1, 1], 1, "auto")
    with pytest.raises(TypeError, match="x: expected dtype"):
        ft.MaxPool2d(2)(torch.zeros(1, 1, 4, 4, dtype=torch.float16))
    with pytest.raises(RuntimeError, match="x: fastconv runs on CPU or CUDA tensors, got device meta"):
        ft.ops._check(torch.empty(1, device="meta"), "x")
    with pytest.raises(ValueError, match="unsupported option weight dtype torch.float64"):
        ft.Conv2d(3, 4, 3, dtype=torch.float64)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84),
                                        nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class Block(nn.Module):
    """ResNet basic block with a strided 1x1 projection shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding="same", bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.layer = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        return self.head(self.layer(self.stem(x)))


@pytest.mark.parametrize("make,shape", [(LeNet, (4, 1, 28, 28)), (SmallResNet, (3, 3, 17, 15))], ids=["lenet", "resnet"])
def test_patched_model_matches_torch(make, shape):
    torch.manual_seed(0)
    ref = make()
    ours = make()
    ours.load_state_dict(ref.state_dict())
    report = ft.patch(ours)
    n_layers = sum(isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)) for m in ref.modules())
    assert len(report.swapped) == n_layers and not report.left, str(report)
    assert list(ours.state_dict()) == list(ref.state_dict())
    check_same_as_torch(ours, ref, torch.randn(*shape))


def test_patch_report_leaves_unsupported_layers():
    class MyConv(nn.Conv2d):
        pass

    class MyPool(nn.AdaptiveAvgPool2d):
        pass

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, dtype=torch.float64), nn.AdaptiveAvgPool2d((0, 3)),
                          MyPool(2), nn.Conv1d(2, 2, 4, dtype=torch.float16), MyConv(2, 2, 1),
                          nn.Conv2d(2, 2, 3), nn.MaxPool2d(2, return_indices=True))
    report = ft.patch(model, algo="im2col")
    assert [n for n, _ in report.swapped] == ["5", "6"]
    reasons = {n: why for n, _, why in report.left}
    assert "weight dtype torch.float64" in reasons["0"]
    assert "output_size=(0, 3)" in reasons["1"]
    assert "subclass MyPool of nn.AdaptiveAvgPool2d" in reasons["2"]
    assert "weight dtype torch.float16" in reasons["3"]
    assert "subclass MyConv" in reasons["4"]
    assert type(model[0]) is nn.Conv2d and type(model[5]) is ft.Conv2d and model[5].algo == "im2col"
    assert "2 layer(s) swapped, 5 left" in str(report)
    x = torch.randn(1, 2, 8, 8)
    out, idx = model[6](x)
    ref_out, ref_idx = nn.functional.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(out, ref_out) and torch.equal(idx, ref_idx)


def _pooling_model():
    """Every pooling option the bridge runs, written as torch users write them (1-tuples included)."""
    return nn.Sequential(
        nn.MaxPool2d(3, 1, 1, 2, False, True),  # torch's positional order: ..., dilation, return_indices, ceil_mode
        nn.MaxPool2d(kernel_size=(2,), stride=(1,), padding=(1,), dilation=(2,)),
        nn.AvgPool2d((2,), stride=(1,), padding=(1,), ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d(3, 2, 1, True, True, 5),  # ..., ceil_mode, count_include_pad, divisor_override
        nn.AdaptiveAvgPool2d((None, 4)), nn.AdaptiveAvgPool2d(3))


def test_patched_pooling_matches_torch():
    """The patched pooling layers give torch's outputs and gradients, eagerly and through torch.export."""
    torch.manual_seed(0)
    ref, ours = _pooling_model(), _pooling_model()
    ref[0].return_indices = ours[0].return_indices = False  # inside Sequential; indices are checked below
    report = ft.patch(ours)
    assert len(report.swapped) == len(ours) and not report.left, str(report)
    x = torch.randn(2, 3, 17, 14)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y = ref(x1), ours(x2)
    assert y.shape == y_ref.shape and rel_err(y, y_ref) < RTOL
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y.backward(g)
    assert rel_err(x2.grad, x1.grad) < RTOL
    with torch.no_grad():
        assert rel_err(torch.export.export(ours, (x,)).module()(x), y_ref) < RTOL
    out, idx = ft.MaxPool2d(3, 1, 1, 2, True, True)(x)
    ref_out, ref_idx = nn.functional.max_pool2d(x, 3, 1, 1, 2, True, True)
    assert torch.equal(out, ref_out) and torch.equal(idx, ref_idx)


def test_patch_pooling_with_one_element_tuples():
    """Regression: torch accepts kernel_size=(2,), padding=(1,) and patch swaps such layers, but torch's
    _pair keeps a 1-tuple, so the ops got one window size and their fake implementations (torch.export,
    torch.compile) raised IndexError."""
    model = nn.Sequential(nn.MaxPool2d((2,), padding=(1,)), nn.AvgPool2d((3,), stride=(1,), padding=(1,)))
    x = torch.randn(2, 3, 9, 8)
    expected = model(x)
    report = ft.patch(model)
    assert len(report.swapped) == 2 and not report.left, str(report)
    assert rel_err(model(x), expected) < RTOL
    with torch.no_grad():
        assert rel_err(torch.export.export(model, (x,)).module()(x), expected) < RTOL


def test_pool_ops_take_torch_keywords():
    """torch.ops.fastconv pooling ops and layers accept torch's keyword names."""
    x = torch.randn(1, 2, 9, 8)
    out, idx = torch.ops.fastconv.max_pool2d(x, kernel_size=[3, 3], stride=[2, 2], padding=[1, 1], dilation=[2, 1],
                                             ceil_mode=True)
    ref_out, ref_idx = nn.functional.max_pool2d(x, kernel_size=3, stride=2, padding=1, dilation=(2, 1), ceil_mode=True,
                                                return_indices=True)
    assert torch.equal(out, ref_out) and torch.equal(idx, ref_idx)
    y = torch.ops.fastconv.avg_pool2d(x, kernel_size=[2, 2], stride=[1, 1], padding=[1, 1], ceil_mode=False,
                                      count_include_pad=True, divisor_override=3)
    assert rel_err(y, nn.functional.avg_pool2d(x, 2, 1, 1, divisor_override=3)) < RTOL
    y = torch.ops.fastconv.adaptive_avg_pool2d(x, output_size=[4, 3])
    assert rel_err(y, nn.functional.adaptive_avg_pool2d(x, (4, 3))) < RTOL
    layer = ft.AdaptiveAvgPool2d(output_size=(None, 2))
    assert rel_err(layer(x[0]), nn.AdaptiveAvgPool2d((None, 2))(x[0])) < RTOL  # unbatched (C, H, W)
    with pytest.raises(ValueError, match="unsupported option output_size=0"):
        ft.AdaptiveAvgPool2d(0)
    with pytest.raises(ValueError, match="divisor_override: must be >= 1"):
        ft.AvgPool2d(2, divisor_override=0)(x)
    with pytest.raises(ValueError, match="dilation: a window covers only padding"):
        ft.MaxPool2d(2, 1, 1, dilation=2)(torch.randn(1, 1, 1, 4))


def test_dropin_layers_unbatched_and_state_dict():
    torch.manual_seed(1)
    ref = nn.Conv2d(3, 5, 3, stride=2, padding=1, groups=1)
    ours = ft.Conv2d(3, 5, 3, stride=2, padding=1, algo="auto")
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 10, 9)
    assert rel_err(ours(x), ref(x)) < RTOL
    assert torch.equal(ft.MaxPool2d(3, 2, 1, ceil_mode=True)(x), nn.MaxPool2d(3, 2, 1, ceil_mode=True)(x))
    assert rel_err(ft.AvgPool2d(2, ceil_mode=True, count_include_pad=False)(x),
                   nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)(x)) < RTOL


def test_torch_compile_patched_model():
    """torch.compile of a patched LeNet: same output as eager, and backward runs. The default backend
    is aot_eager (Dynamo + AOTAutograd through the ops' fake and autograd registrations, ~10 s);
    FASTCONV_TEST_COMPILE_BACKEND=inductor also generates C++ (measured 90 s on the busy 2-core box)."""
    torch.manual_seed(0)
    model = LeNet()
    ft.patch(model)
    x = torch.randn(2, 1, 28, 28)
    start = time.perf_counter()
    try:
        compiled = torch.compile(model, backend=os.environ.get("FASTCONV_TEST_COMPILE_BACKEND", "aot_eager"))
        y = compiled(x)
    except Exception as e:  # no C++ compiler for inductor, etc.
        pytest.skip(f"torch.compile unavailable here after {time.perf_counter() - start:.1f} s: {type(e).__name__}: {e}")
    assert rel_err(y, model(x)) < RTOL
    y.sum().backward()
    assert model.features[0].weight.grad is not None


def test_torch_export_patched_model():
    """torch.export keeps the fastconv ops as nodes of the exported graph and runs them."""
    torch.manual_seed(0)
    model = LeNet()
    ft.patch(model)
    x = torch.randn(2, 1, 28, 28)
    ep = torch.export.export(model, (x,))
    ops = [str(n.target) for n in ep.graph.nodes if "fastconv" in str(n.target)]
    assert ops == ["fastconv.conv2d.default", "fastconv.max_pool2d.default", "fastconv.conv2d.default",
                   "fastconv.avg_pool2d.default"]
    with torch.no_grad():
        assert torch.equal(ep.module()(x), model(x))


def test_layers_call_the_implementations_directly_only_when_nothing_needs_the_op(monkeypatch):
    """Under no_grad the drop-in layers skip the dispatcher (fastconv.torch.ops.call), with the same
    outputs as the ops give; with a gradient to record, or a dispatch mode watching, they call the ops."""
    from torch.utils._python_dispatch import TorchDispatchMode

    direct = []
    for op, impl in list(ft.ops._DIRECT.items()):
        monkeypatch.setitem(ft.ops._DIRECT, op, lambda *a, impl=impl, op=op: direct.append(op) or impl(*a))
    torch.manual_seed(0)
    model = LeNet()
    ft.patch(model)
    x = torch.randn(2, 1, 28, 28)
    with_grad = model(x)
    assert direct == []
    with torch.no_grad():
        y = model(x)
    assert direct == [ft.ops.conv2d, ft.ops.conv2d, ft.ops.avg_pool2d]  # max pooling: max_pool2d_values
    assert torch.equal(y, with_grad)

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    seen, direct[:] = [], []
    with torch.no_grad(), Recorder():
        assert torch.equal(model(x), y)
    assert direct == [] and "fastconv.conv2d.default" in seen and "fastconv.max_pool2d.default" in seen


def test_max_pool2d_values_is_the_ops_first_output():
    x = torch.randn(2, 3, 11, 9)
    args = ([3, 2], [2, 2], [1, 1], [1, 2], True)
    with torch.no_grad():
        assert torch.equal(ft.ops.max_pool2d_values(x, *args), ft.ops.max_pool2d(x, *args)[0])
    xg = x.clone().requires_grad_()
    out = ft.ops.max_pool2d_values(xg, *args)
    out.sum().backward()  # through the op: it has a gradient, one 1 per output
    assert float(xg.grad.sum()) == out.numel()
