"""nn.functional.pad (torch's argument convention) against numpy's np.pad modes and torch's F.pad,
its gradient by finite differences (float64: exact up to rounding, bound 1e-6) and against torch;
nn.Conv2d / nn.Conv1d with padding_mode, padding="same"/"valid" and unbatched input against
torch's layers (bound 1e-5 relative error, float32)."""

import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv.nn import functional as F
from gradcheck import check_gradients
from reference import relative_error

NUMPY_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}

CASES = [
    # shape, pad (last dimension first)
    ((2, 3, 5, 4), (1, 2, 3, 0)),
    ((1, 2, 7), (3, 3)),
    ((2, 3, 1, 6), (0, 5, 0, 0)),  # a dimension of size 1 (reflect cannot pad it; others can)
    ((1, 1, 3, 4, 5), (2, 1, 3, 3, 1, 2)),  # three dimensions
    ((3, 8), (7, 2)),  # unbatched 1-D; reflect's widest pad
]


def _widths(shape, pad):
    widths = [(0, 0)] * len(shape)
    for i in range(len(pad) // 2):
        widths[len(shape) - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return widths


def _reflect_fits(shape, pad):
    return all(max(l, r) < n for (l, r), n in zip(_widths(shape, pad), shape) if l or r)


def _circular_fits(shape, pad):
    return all(max(l, r) <= n for (l, r), n in zip(_widths(shape, pad), shape))


def _fits(mode, shape, pad):
    return {"reflect": _reflect_fits, "circular": _circular_fits}.get(mode, lambda *a: True)(shape, pad)


@pytest.mark.parametrize("mode", list(NUMPY_MODE))
@pytest.mark.parametrize("shape,pad", CASES)
def test_forward_matches_numpy_and_torch(rng, mode, shape, pad):
    if not _fits(mode, shape, pad):
        return
    x = rng.standard_normal(shape).astype(np.float32)
    kwargs = {"constant_values": 1.5} if mode == "constant" else {}
    expected = np.pad(x, _widths(shape, pad), mode=NUMPY_MODE[mode], **kwargs)
    y = F.pad(fastconv.Tensor(x), pad, mode, value=1.5)
    np.testing.assert_array_equal(y.data, expected)
    try:
        import torch
    except ImportError:
        return
    value = 1.5 if mode == "constant" else None
    np.testing.assert_array_equal(torch.nn.functional.pad(torch.tensor(x), pad, mode, value=value).numpy(), expected)


@pytest.mark.parametrize("mode", list(NUMPY_MODE))
@pytest.mark.parametrize("shape,pad", CASES)
def test_gradient_finite_differences(rng, mode, shape, pad):
    if not _fits(mode, shape, pad):
        return
    x = fastconv.Tensor(rng.standard_normal(shape), requires_grad=True)  # float64
    check_gradients(lambda t: F.pad(t, pad, mode), [x], eps=1e-6, rtol=1e-6, atol=1e-9, samples=20)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_gradient_matches_torch(rng, mode):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 4, 5))
    pad = (3, 1, 2, 3)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.pad(xt, pad, mode)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    X = fastconv.Tensor(x, requires_grad=True)
    F.pad(X, pad, mode).backward(g)
    assert relative_error(X.grad, xt.grad.numpy()) <= 1e-12


def test_input_not_modified(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    saved = x.copy()
    X = fastconv.Tensor(x, requires_grad=True)
    F.pad(X, (2, 2, 1, 1), "reflect").sum().backward()
    np.testing.assert_array_equal(x, saved)
    assert X.grad.shape == x.shape


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: F.pad(x, (1, 1), "mirror"), "mode: expected one of"),
        (lambda x: F.pad(x, (1,)), "pad: expected a tuple of"),
        (lambda x: F.pad(x, 1), "pad: expected a tuple of"),
        (lambda x: F.pad(x, (1, -1)), "pad: must be >= 0"),
        (lambda x: F.pad(x, (1, 1) * 5), r"pad: 10 widths pad 5 dimensions.*\(1, 2, 3, 4\)"),
        (lambda x: F.pad(x, (4, 0, 0, 0), "reflect"), "pad: reflect padding must be smaller.*size 4"),
        (lambda x: F.pad(x, (0, 5, 0, 0), "circular"), "pad: circular padding must be at most.*size 4"),
        (lambda x: F.pad(x, (1, 1), "replicate"), "pad: mode 'replicate' pads the last 1, 2 or 3 dimensions"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(fastconv.Tensor(np.zeros((1, 2, 3, 4), np.float32)))


def _copy_from_torch(ours, ref):
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})


def _layer_against_torch(ours, ref, x, rng, torch):
    """Copy ref's (float64 torch layer) weights into ours, run both forward and backward on x and
    assert outputs and the gradients of x, weight and bias agree to 1e-5; returns (y, yt)."""
    _copy_from_torch(ours, ref)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = ref(xt)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g, dtype=torch.float64))
    X = fastconv.Tensor(x, requires_grad=True)
    y = ours(X)
    y.backward(g)
    assert relative_error(y.data, yt.detach().numpy()) <= 1e-5
    assert relative_error(X.grad, xt.grad.numpy()) <= 1e-5
    assert relative_error(ours.weight.grad, ref.weight.grad.numpy()) <= 1e-5
    assert relative_error(ours.bias.grad, ref.bias.grad.numpy()) <= 1e-5
    return y, yt


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [2, (1, 3), "same", "valid"])
def test_conv2d_layer_padding_modes_vs_torch(rng, padding_mode, padding):
    torch = pytest.importorskip("torch")
    kwargs = dict(padding=padding, dilation=(1, 2), groups=2, padding_mode=padding_mode)
    ref = torch.nn.Conv2d(4, 6, (3, 4), **kwargs).double()
    ours = nn.Conv2d(4, 6, (3, 4), **kwargs)
    x = rng.standard_normal((2, 4, 7, 9)).astype(np.float32)
    y, yt = _layer_against_torch(ours, ref, x, rng, torch)
    assert y.shape == tuple(yt.shape) == ours.output_shape(x.shape)
    y1 = ours(fastconv.Tensor(x[1]))  # unbatched (C, H, W)
    assert relative_error(y1.data, yt[1].detach().numpy()) <= 1e-5
    assert ours.output_shape(x.shape[1:]) == y1.shape


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [3, "same", "valid"])
def test_conv1d_layer_padding_modes_vs_torch(rng, padding_mode, padding):
    torch = pytest.importorskip("torch")
    kwargs = dict(padding=padding, dilation=2, groups=1, padding_mode=padding_mode)
    ref = torch.nn.Conv1d(3, 5, 4, **kwargs).double()
    ours = nn.Conv1d(3, 5, 4, **kwargs)
    x = rng.standard_normal((2, 3, 11)).astype(np.float32)
    y, yt = _layer_against_torch(ours, ref, x, rng, torch)
    assert relative_error(ours(fastconv.Tensor(x[0])).data, yt[0].detach().numpy()) <= 1e-5


def test_layers_padding_mode_finite_differences(rng):
    """The whole layer (pad, then convolve), float32: bound 2e-2 of the finite difference with eps 1e-2."""
    layer = nn.Conv2d(2, 3, 3, padding=(2, 1), padding_mode="reflect")
    x = fastconv.Tensor(rng.standard_normal((2, 2, 5, 4)).astype(np.float32), requires_grad=True)
    check_gradients(layer, [x], eps=1e-2, rtol=2e-2, atol=2e-2, params=[layer.weight, layer.bias])
    layer = nn.Conv1d(2, 3, 4, padding="same", padding_mode="circular")
    x = fastconv.Tensor(rng.standard_normal((2, 2, 6)).astype(np.float32), requires_grad=True)
    check_gradients(layer, [x], eps=1e-2, rtol=2e-2, atol=2e-2, params=[layer.weight, layer.bias])


def test_layer_arguments():
    with pytest.raises(ValueError, match="padding_mode: expected one of"):
        nn.Conv2d(2, 2, 3, padding_mode="symmetric")
    with pytest.raises(ValueError, match="padding_mode: expected one of"):
        nn.Conv1d(2, 2, 3, padding_mode="zero")
    with pytest.raises(ValueError, match="Conv2d: padding='same' needs stride 1"):
        nn.Conv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv1d: padding='same' needs stride 1"):
        nn.Conv1d(2, 2, 3, stride=(2,), padding="same")
    with pytest.raises(ValueError, match="pad: reflect padding must be smaller"):
        nn.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(fastconv.Tensor(np.zeros((1, 1, 3, 3), np.float32)))
    assert "padding_mode='circular'" in repr(nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular"))
    assert "padding='same'" in repr(nn.Conv1d(1, 1, 3, padding="same"))
    layer = nn.Conv1d(2, 4, (3,), stride=(2,), padding=(1,), dilation=(1,))
    assert (layer.kernel_size, layer.stride, layer.padding) == (3, 2, 1)
