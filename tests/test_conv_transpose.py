"""conv_transpose2d, its gradients and its autograd op and layer against the float64 scatter
definition (tests/reference.py), exact gradients by linearity, finite differences, and
torch.nn.functional.conv_transpose2d when torch is importable.

Bound: relative error 1e-5 (max |ours - ref| / max |ref|) for direct and im2col; 1e-4 for the FFT
and 5e-4 for Winograd F(4x4), as in test_conv.py. What both backends do runs on each (the ``device``
fixture: the CUDA backend runs conv_transpose2d as conv2d's input gradient too).
"""

import numpy as np
import pytest

import fastconv
from fastconv import grad, nn
from gradcheck import check_gradients
from reference import conv_transpose2d_ref, relative_error
from toolkit import WRONG_DTYPE, conv_bound, on_device, tensor, to_numpy


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


CASES = [
    # N, C_in, H, W, C_out, R, S, stride, padding, output_padding, groups, dilation
    (2, 3, 5, 7, 4, 3, 3, 1, 0, 0, 1, 1),
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1),  # 1x1 everything
    (2, 4, 3, 5, 6, 2, 3, (3, 2), (1, 0), (2, 1), 2, 1),  # stride > kernel, output_padding, groups
    (1, 2, 7, 5, 3, 3, 2, 2, 1, 1, 1, (2, 3)),  # dilation
    (2, 3, 4, 3, 2, 3, 3, 1, 1, (1, 2), 1, 3),  # output_padding >= stride (allowed by dilation 3)
    (1, 2, 3, 3, 2, 3, 3, 1, 2, 2, 1, 3),  # the same with padding >= stride
    (1, 6, 5, 5, 6, 3, 3, 2, 2, 0, 6, 1),  # depthwise
    (3, 5, 11, 13, 7, 5, 3, 2, (2, 1), 1, 1, 1),  # primes
    (2, 8, 6, 6, 8, 3, 3, 1, 1, 0, 1, 1),  # 3x3 stride 1: Winograd and FFT can run it
    (1, 3, 2, 2, 2, 4, 4, 3, 0, 2, 1, 1),  # kernel larger than the input, stride 3
]


def _problem(rng, case):
    N, C_in, H, W, C_out, R, S, stride, padding, output_padding, groups, dilation = case
    x = rng.standard_normal((N, C_in, H, W)).astype(np.float32)
    w = rng.standard_normal((C_in, C_out // groups, R, S)).astype(np.float32)
    b = rng.standard_normal(C_out).astype(np.float32)
    hp = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    return x, w, b, hp


def _ref(x, w, b, hp):
    return conv_transpose2d_ref(x, w, b, _pair(hp["stride"]), _pair(hp["padding"]), _pair(hp["output_padding"]),
                                hp["groups"], _pair(hp["dilation"]))


def _algorithms(x, w, y, hp, device="cpu"):
    """Every algorithm that can run the input-gradient pass of the conv2d behind this problem on ``device``."""
    conv = {k: hp[k] for k in ("stride", "padding", "dilation", "groups")}
    return ["auto"] + fastconv.conv_algorithms(y.shape, w.shape, pass_="input", device=device, **conv)


@pytest.mark.parametrize("case", CASES)
def test_forward_vs_scatter_definition(rng, device, case):
    x, w, b, hp = _problem(rng, case)
    ref = _ref(x, w, b, hp)
    xd, wd, bd = (on_device(a, device) for a in (x, w, b))
    for algo in _algorithms(x, w, ref, hp, device):
        y = fastconv.conv_transpose2d(xd, wd, bd, algo=algo, **hp)
        assert y.dtype == np.float32 and y.shape == ref.shape, algo
        assert relative_error(to_numpy(y, device), ref) <= conv_bound(algo), algo
    assert relative_error(to_numpy(fastconv.conv_transpose2d(xd, wd, **hp), device), _ref(x, w, None, hp)) <= 1e-5


def _grads_by_linearity(x, w, dy, hp):
    """Exact gradients of sum(conv_transpose2d(x, w) * dy): the reference on each basis array."""
    dx = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[i] = 1.0
        dx[i] = np.sum(_ref(e, w, None, hp) * dy)
    dw = np.zeros(w.shape)
    for i in np.ndindex(w.shape):
        e = np.zeros(w.shape)
        e[i] = 1.0
        dw[i] = np.sum(_ref(x, e, None, hp) * dy)
    return dx, dw


@pytest.mark.parametrize("case", [c for c in CASES if np.prod(c[:4]) <= 200])
def test_gradients_vs_linearity(rng, device, case):
    x, w, b, hp = _problem(rng, case)
    dy = rng.standard_normal(_ref(x, w, None, hp).shape).astype(np.float32)
    dx_ref, dw_ref = _grads_by_linearity(x, w, dy, hp)
    dx = grad.conv_transpose2d_input(x.shape, on_device(w, device), on_device(dy, device), **hp)
    dw = grad.conv_transpose2d_weight(on_device(x, device), w.shape, on_device(dy, device), **hp)
    assert dx.shape == x.shape and dw.shape == w.shape
    assert relative_error(to_numpy(dx, device), dx_ref) <= 1e-5
    assert relative_error(to_numpy(dw, device), dw_ref) <= 1e-5


@pytest.mark.parametrize("case", CASES)
def test_vs_torch(rng, case):
    torch = pytest.importorskip("torch")
    x, w, b, hp = _problem(rng, case)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, **hp)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    X, W, B = (fastconv.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = nn.functional.conv_transpose2d(X, W, B, **hp)
    y.backward(dy)
    assert relative_error(y.data, yt.detach().numpy()) <= 1e-5
    assert relative_error(X.grad, xt.grad.numpy()) <= 1e-5
    assert relative_error(W.grad, wt.grad.numpy()) <= 1e-5
    assert relative_error(B.grad, bt.grad.numpy()) <= 1e-5


@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[6]])
def test_autograd_finite_differences(rng, case):
    x, w, b, hp = _problem(rng, case)
    X, W, B = (fastconv.Tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, b))
    check_gradients(lambda t: nn.functional.conv_transpose2d(t, W, B, **hp), [X], eps=1e-2, rtol=2e-2, atol=2e-2,
                    params=[W, B])


def test_unbatched_input(rng, device):
    x, w, b, hp = _problem(rng, CASES[2])
    y = fastconv.conv_transpose2d(on_device(x[1], device), on_device(w, device), on_device(b, device), **hp)
    assert y.shape == _ref(x, w, b, hp).shape[1:]
    assert relative_error(to_numpy(y, device), _ref(x[1:], w, b, hp)[0]) <= 1e-5
    X = tensor(x[1], device, requires_grad=True)
    nn.functional.conv_transpose2d(X, tensor(w, device), None, **hp).sum().backward()
    assert X.grad.shape == x[1].shape
    expected = grad.conv_transpose2d_input(x[:1].shape, w, np.ones((1,) + y.shape, np.float32), **hp)[0]
    assert relative_error(to_numpy(X.grad, device), expected) <= 1e-6


def test_empty_batch(device):
    x = on_device(np.zeros((0, 4, 5, 5), np.float32), device)
    w = on_device(np.ones((4, 3, 2, 3), np.float32), device)
    y = fastconv.conv_transpose2d(x, w, on_device(np.ones(3, np.float32), device), stride=1, output_padding=(0, 2),
                                  dilation=3)
    assert y.shape == (0, 3, 8, 13)
    assert grad.conv_transpose2d_input(x.shape, w, y, output_padding=(0, 2), dilation=3).shape == x.shape
    dw = to_numpy(grad.conv_transpose2d_weight(x, w.shape, y, output_padding=(0, 2), dilation=3), device)
    assert dw.shape == w.shape and not dw.any()


def test_inputs_not_modified_and_non_contiguous(rng):
    x, w, b, hp = _problem(rng, CASES[3])
    xt = np.asfortranarray(x)[:, :, ::-1]
    saved = (xt.copy(), w.copy(), b.copy())
    y = fastconv.conv_transpose2d(xt, w, b, **hp)
    assert relative_error(y, _ref(saved[0], w, b, hp)) <= 1e-5
    for a, c in zip((xt, w, b), saved):
        np.testing.assert_array_equal(a, c)


def _arr(device, shape, dtype=np.float32):
    return on_device(np.zeros(shape, dtype), device)


X, W = (2, 4, 5, 5), (4, 3, 3, 3)  # the shapes of a valid problem; each row breaks one thing


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda d: fastconv.conv_transpose2d(_arr(d, X[2:]), _arr(d, W)), ValueError, r"x: expected a 4-D \(N, C_in, H, W\) or 3-D"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X, WRONG_DTYPE[d]), _arr(d, W)), TypeError, "x: expected dtype float32"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W, WRONG_DTYPE[d])), TypeError, "weight: expected dtype float32"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W[1:])), ValueError, "weight: expected a 4-D array"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, (3, 3, 3, 3))), ValueError, r"weight: expected \(C_in, C_out/groups, R, S\) with C_in = 4"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, (4, 3, 1, 3)), groups=3), ValueError, "groups: 3 does not divide the 4"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W), stride=2, output_padding=2), ValueError,
         "output_padding: must be smaller than the stride or the dilation, got 2 for the height with stride 2 and dilation 1"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W), output_padding=(0, 1)), ValueError, "output_padding.*width"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W), output_padding=-1), ValueError, "output_padding: must be >= 0"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W), padding=4), ValueError, r"padding: \(4, 4\) removes the whole output"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W), padding="same"), TypeError, "padding: expected an int"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W), stride=0), ValueError, "stride: must be >= 1"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W), bias=_arr(d, (4,))), ValueError, r"bias: expected shape \(3,\)"),
        (lambda d: fastconv.conv_transpose2d(_arr(d, X), _arr(d, W), algo="winograd", stride=2), ValueError, "algo: 'winograd' cannot run"),
        (lambda d: grad.conv_transpose2d_input((2, 4, 5), _arr(d, W), _arr(d, (2, 3, 7, 7))), ValueError, "input_shape"),
        (lambda d: grad.conv_transpose2d_input(X, _arr(d, W), _arr(d, (2, 3, 7, 6))), ValueError,
         r"grad_output: expected shape \(2, 3, 7, 7\)"),
        (lambda d: grad.conv_transpose2d_weight(_arr(d, X), (4, 3, 3), _arr(d, (2, 3, 7, 7))), ValueError, "weight_shape"),
        (lambda d: grad.conv_transpose2d_input(X, _arr(d, W), _arr(d, (2, 3, 7, 7), WRONG_DTYPE[d])), TypeError,
         "grad_output: expected dtype float32"),
        (lambda d: grad.conv_transpose2d_weight(_arr(d, X, WRONG_DTYPE[d]), W, _arr(d, (2, 3, 7, 7))), TypeError,
         "input: expected dtype float32"),
        (lambda d: grad.conv_transpose2d_weight(_arr(d, X), W, _arr(d, (2, 3, 7, 7), WRONG_DTYPE[d])), TypeError,
         "grad_output: expected dtype float32"),
    ],
)
def test_bad_input(device, call, exc, match):
    with pytest.raises(exc, match=match):
        call(device)


def test_layer_matches_torch_and_state_dict(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2))
    ours = nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2))
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.tensor(x))
    assert relative_error(ours(fastconv.Tensor(x)).data, expected.numpy()) <= 1e-5
    assert relative_error(ours(fastconv.Tensor(x[0])).data, expected[0].numpy()) <= 1e-5
    # output_size picks the output_padding, as torch
    with torch.no_grad():
        expected = ref(torch.tensor(x), output_size=[10, 12])
    y = ours(fastconv.Tensor(x), output_size=(10, 12))
    assert y.shape == (2, 6, 10, 12) and relative_error(y.data, expected.numpy()) <= 1e-5
    assert ours.output_shape((2, 4, 5, 6)) == tuple(ref(torch.zeros(2, 4, 5, 6)).shape)


def test_layer_init_matches_torch_bounds():
    """Weights (C_in, C_out/groups, R, S) and bias uniform in +-1/sqrt(fan_in), torch's fan_in being
    weight.shape[1] * R * S for a transposed convolution."""
    layer = nn.ConvTranspose2d(16, 8, 3, groups=2)
    assert layer.weight.shape == (16, 4, 3, 3) and layer.bias.shape == (8,)
    bound = 1 / np.sqrt(4 * 9)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.8 * bound
    assert np.abs(layer.bias.data).max() <= bound
    assert nn.ConvTranspose2d(2, 2, 3, bias=False).bias is None
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="expected input of shape"):
        nn.ConvTranspose2d(2, 2, 3)(fastconv.Tensor(np.zeros((1, 3, 4, 4), np.float32)))
    with pytest.raises(ValueError, match="output_size"):
        nn.ConvTranspose2d(2, 2, 3, stride=2)(fastconv.Tensor(np.zeros((1, 2, 4, 4), np.float32)), output_size=(4, 4))


@pytest.mark.cuda
@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[5]])
def test_cuda_passes_stay_on_the_device(rng, case):
    """No host round trip in any pass on the device; CASES[4] and [5] append rows of zeros to x
    (output_padding >= stride) and crop them from its gradient, on the device."""
    from fastconv import cuda

    x, w, b, hp = _problem(rng, case)
    ref = _ref(x, w, b, hp)
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    X, Wd, B, DY = (cuda.to_device(a) for a in (x, w, b, dy))
    cuda.reset_transfer_counts()
    y = fastconv.conv_transpose2d(X, Wd, B, **hp)
    dx = grad.conv_transpose2d_input(x.shape, Wd, DY, **hp)
    dw = grad.conv_transpose2d_weight(X, w.shape, DY, **hp)
    assert cuda.transfer_counts() == {"host_to_device": 0, "device_to_host": 0}
    assert isinstance(y, cuda.Array) and y.shape == ref.shape
    assert relative_error(y.numpy(), ref) <= 1e-5
    assert relative_error(dx.numpy(), grad.conv_transpose2d_input(x.shape, w, dy, **hp)) <= 1e-5
    assert relative_error(dw.numpy(), grad.conv_transpose2d_weight(x, w.shape, dy, **hp)) <= 1e-5
