"""Every nn.functional op on every backend (the ``device`` fixture): the float32 forward and the
autograd backward of sum(out * g) against the float64 references of tests/reference.py (written
from the definitions; test_reference.py checks their gradients by central differences). The
tolerance is value-scaled (toolkit.assert_close: atol + rtol * |ref|, atol = rtol * max |ref|).

test_nn.py checks the same ops by finite differences in float64 on the CPU; here each backend's
float32 path (the fused C++ kernels, the CUDA kernels and device array arithmetic) meets the oracle.
"""

import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv.nn import functional as F
from reference import (
    activation_ref, adaptive_avg_pool2d_backward_ref, adaptive_avg_pool2d_ref, avg_pool2d_backward_ref, avg_pool2d_ref,
    batch_norm2d_ref, conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref, cross_entropy_ref, linear_ref,
    log_softmax_ref, max_pool2d_backward_ref, max_pool2d_ref, mse_loss_ref,
)
from toolkit import ELEMENTWISE_BOUND, POOL_BOUNDS, SUM_BOUND, assert_close, gemm_bound, on_device, tensor, to_numpy


def run(device, fn, *arrays, seed=7):
    """fn(*tensors) with every array a leaf on ``device``, then the backward of sum(out * g) for a
    fixed random g. Returns (out, [gradient of each array], g), all as host arrays; asserts that the
    output and every gradient stayed on ``device``."""
    leaves = [tensor(np.asarray(a, np.float32), device, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    g = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
    out.backward(on_device(g, device))
    return to_numpy(out, device), [to_numpy(t.grad, device) for t in leaves], g


def check(device, fn, ref, arrays, bound, grad_bound=None, what="", grad_atol=None):
    """fn on ``device`` against ref(*arrays, g) -> (out, grads) in float64. ``grad_atol(g)``: a floor
    under the gradients' absolute tolerance (grad_bound * max|gradient|), where their rounding
    error scales with something else (see the callers)."""
    out, grads, g = run(device, fn, *arrays)
    ref_out, ref_grads = ref(*[np.asarray(a, np.float32) for a in arrays], g)
    assert_close(out, ref_out, bound, what=f"{what} forward")
    assert len(grads) == len(ref_grads)
    grad_bound = grad_bound or bound
    for i, (got, expected) in enumerate(zip(grads, ref_grads)):
        atol = None if grad_atol is None else max(grad_bound * np.abs(expected).max(), grad_atol(g))
        assert_close(got, expected, grad_bound, atol, what=f"{what} gradient {i}")


def away_from_zero(rng, shape, gap=0.05, scale=3.0):
    """float32 normal samples times ``scale`` with |x| >= gap (no input on a ReLU kink)."""
    x = rng.standard_normal(shape) * scale
    return np.where(np.abs(x) < gap, np.sign(x + 1e-12) * gap, x).astype(np.float32)


# ---- activations, linear, losses ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("shape", [(3, 1000), (2, 3, 5, 7), (1,)], ids=str)
def test_activations(rng, device, name, shape):
    x = away_from_zero(rng, shape)
    kw = {"negative_slope": 0.2} if name == "leaky_relu" else {}
    check(device, lambda t: getattr(F, name)(t, **kw), lambda a, g: activation_ref(name, a, g, **kw), [x],
          ELEMENTWISE_BOUND, SUM_BOUND, name, grad_atol=lambda g: SUM_BOUND * np.abs(g).max())
    # (an elementwise derivative such as tanh's 1 - y*y cancels in float32 where y is near 1: its
    # rounding error scales with g, not with the gradient, which can be tiny)


@pytest.mark.parametrize("n, k, m", [(6, 11, 5), (1, 1, 1), (13, 257, 3)])
def test_linear(rng, device, n, k, m):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((n, k), (m, k), (m,)))
    check(device, F.linear, linear_ref, [x, w, b], gemm_bound(max(k, n)), what="linear")


def test_linear_without_bias(rng, device):
    x, w = rng.standard_normal((4, 9)).astype(np.float32), rng.standard_normal((3, 9)).astype(np.float32)
    def ref(a, b, g):
        y, (gx, gw, _) = linear_ref(a, b, 0.0, g)
        return y, (gx, gw)

    check(device, F.linear, ref, [x, w], gemm_bound(9), what="linear without bias")


@pytest.mark.parametrize("shape", [(6, 5), (1, 1), (3, 257)], ids=str)
def test_log_softmax(rng, device, shape):
    z = (rng.standard_normal(shape) * 10).astype(np.float32)
    check(device, F.log_softmax, log_softmax_ref, [z], SUM_BOUND, what="log_softmax")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("n, k", [(6, 5), (1, 1), (64, 1000), (3, 257)])
def test_cross_entropy(rng, device, reduction, n, k):
    z = (rng.standard_normal((n, k)) * 5).astype(np.float32)
    labels = rng.integers(0, k, n).astype(np.int64)
    for target in (labels, on_device(labels, device)):  # host labels (checked, uploaded once) or device labels
        check(device, lambda t: F.cross_entropy(t, target, reduction=reduction),
              lambda a, g: cross_entropy_ref(a, labels, g, reduction), [z], SUM_BOUND, what="cross_entropy")


def test_cross_entropy_huge_logits_stay_finite(device):
    z = np.array([[1e4, 0.0, -1e4], [0.0, 3e4, 0.0]], np.float32)
    labels = np.array([1, 1])
    check(device, lambda t: F.cross_entropy(t, labels), lambda a, g: cross_entropy_ref(a, labels, g), [z], SUM_BOUND,
          what="cross_entropy of huge logits")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(6, 5), (1,), (2, 3, 4, 5)], ids=str)
def test_mse_loss(rng, device, reduction, shape):
    a, b = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    check(device, lambda x, y: F.mse_loss(x, y, reduction=reduction), lambda x, y, g: mse_loss_ref(x, y, g, reduction),
          [a, b], SUM_BOUND, what="mse_loss")


def test_correct_count(rng, device):
    x = rng.standard_normal((37, 10)).astype(np.float32)
    x[3, 4] = x[3, 7] = 50.0  # a tie: the first index wins, as numpy's argmax
    labels = rng.integers(0, 10, 37)
    labels[3] = 4
    count = F.correct_count(tensor(x, device), on_device(labels, device))
    assert count.shape == () and float(to_numpy(count, device)) == np.count_nonzero(x.argmax(-1) == labels)


def test_dropout_statistics(rng, device):
    """Each element is zeroed with probability p, the rest scaled by 1/(1-p); the gradient is the same
    mask; a fixed seed gives the same mask; p = 0 and evaluation are the identity."""
    x = rng.standard_normal((64, 257)).astype(np.float32)
    fastconv.manual_seed(11)
    xt = tensor(x, device, requires_grad=True)
    y = F.dropout(xt, 0.3)
    yd = to_numpy(y, device)
    kept = yd != 0
    assert abs(1 - kept.mean() - 0.3) < 0.02  # 16448 draws: 4.4 standard deviations
    assert_close(yd[kept], x[kept] / 0.7, ELEMENTWISE_BOUND, what="kept values")
    g = rng.standard_normal(x.shape).astype(np.float32)
    y.backward(on_device(g, device))
    assert_close(to_numpy(xt.grad, device), np.where(kept, g / 0.7, 0.0), ELEMENTWISE_BOUND, what="gradient")
    fastconv.manual_seed(11)
    again = to_numpy(F.dropout(tensor(x, device), 0.3), device)
    np.testing.assert_array_equal(again != 0, kept)
    assert F.dropout(xt, 0.0) is xt and F.dropout(xt, 0.3, training=False) is xt
    with pytest.raises(ValueError, match="dropout: p must be in"):
        F.dropout(xt, 1.0)
    layer = nn.Dropout(0.5)  # the module: halves on average, doubles what it keeps
    ones = tensor(np.ones((8, 100), np.float32), device, requires_grad=True)
    y = to_numpy(layer(ones), device)
    assert set(np.unique(y)) == {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    assert layer.eval()(ones) is ones


# ---- batch norm --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (2, 5, 1, 1), (1, 2, 1, 3)], ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("relu", [False, True], ids=["", "relu"])
def test_batch_norm2d(rng, device, shape, training, affine, relu):
    """Forward, the gradients of x, gamma and beta, and the running statistics updated in place (on the
    device for a device tensor). The input has a mean of 5, so the variance is a small difference of
    large sums."""
    C = shape[1]
    x = (5 + 2 * rng.standard_normal(shape)).astype(np.float32)
    gamma = (1 + 0.5 * rng.standard_normal(C)).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    rm0 = rng.standard_normal(C).astype(np.float32)
    rv0 = (1 + rng.random(C)).astype(np.float32)
    rm, rv = on_device(rm0.copy(), device), on_device(rv0.copy(), device)

    def bn(*t):
        w, b = (t[1], t[2]) if affine else (None, None)
        return F.batch_norm2d(t[0], w, b, rm, rv, training, momentum=0.1, eps=1e-5, relu=relu)

    def ref(*a):
        g = a[-1]
        w, b = (a[1], a[2]) if affine else (None, None)
        y, (gx, gw, gb), _ = batch_norm2d_ref(a[0], w, b, rm0, rv0, training, 0.1, 1e-5, g, relu)
        return y, (gx, gw, gb) if affine else (gx,)

    # x's gradient is a difference of terms of size |g * gamma| * inv_std that cancel (almost exactly
    # with two values per channel, where the output hardly depends on x): its error scales with them.
    inv_std = 1 / np.sqrt((x.var(axis=(0, 2, 3)) if training else rv0).min() + 1e-5)
    term = np.abs(gamma).max() if affine else 1.0
    check(device, bn, ref, [x, gamma, beta] if affine else [x], SUM_BOUND, what="batch_norm2d",
          grad_atol=lambda g: SUM_BOUND * np.abs(g).max() * term * inv_std)
    _, _, (rm_ref, rv_ref) = batch_norm2d_ref(x, None, None, rm0, rv0, training, 0.1, 1e-5, np.zeros(shape))
    assert_close(to_numpy(rm, device), rm_ref, SUM_BOUND, what="running_mean")
    assert_close(to_numpy(rv, device), rv_ref, SUM_BOUND, what="running_var")


def test_batch_norm2d_module_counts_batches(rng, device):
    bn = nn.BatchNorm2d(3).to(device)
    x = tensor(rng.standard_normal((4, 3, 5, 5)).astype(np.float32), device)
    bn(x)
    bn(x)
    assert float(to_numpy(bn.num_batches_tracked, device)) == 2
    assert_close(to_numpy(bn.running_mean, device),
                 (1 - 0.9**2) * x.numpy().astype(np.float64).mean(axis=(0, 2, 3)), SUM_BOUND, what="running_mean")
    bn.eval()
    y = to_numpy(bn(x), device)
    rm, rv = to_numpy(bn.running_mean, device), to_numpy(bn.running_var, device)
    assert_close(y, (x.numpy() - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5), SUM_BOUND, what="eval")
    with pytest.raises(ValueError, match="batch_norm2d: need more than one value per channel"):
        bn.train()(tensor(np.ones((1, 3, 1, 1), np.float32), device))


# ---- convolution and pooling through autograd -----------------------------------------------------------


def test_conv2d(rng, device):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 9, 7), (4, 3, 3, 2), (4,)))
    kw = dict(stride=(2, 1), padding=(1, 1), dilation=(1, 2))

    def ref(x_, w_, b_, g):
        return conv2d_ref(x_, w_, b_, **kw), (conv2d_input_grad_ref(x_.shape, w_, g, **kw),
                                             conv2d_weight_grad_ref(x_, w_.shape, g, **kw), g.sum(axis=(0, 2, 3)))

    check(device, lambda *t: F.conv2d(*t, **kw), ref, [x, w, b], SUM_BOUND, what="conv2d")


def test_conv1d(rng, device):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 17), (4, 3, 5), (4,)))
    kw = dict(stride=(1, 2), padding=(0, 2), dilation=(1, 1))

    def ref(x_, w_, b_, g):  # a height-1 conv2d
        x4, w4, g4 = x_[:, :, None], w_[:, :, None], g[:, :, None]
        return conv2d_ref(x4, w4, b_, **kw)[:, :, 0], (conv2d_input_grad_ref(x4.shape, w4, g4, **kw)[:, :, 0],
                                                        conv2d_weight_grad_ref(x4, w4.shape, g4, **kw)[:, :, 0],
                                                        g.sum(axis=(0, 2)))

    check(device, lambda *t: F.conv1d(*t, stride=2, padding=2), ref, [x, w, b], SUM_BOUND, what="conv1d")


def test_max_pool2d(rng, device):
    x = rng.permutation(2 * 3 * 9 * 7).reshape(2, 3, 9, 7).astype(np.float32)  # distinct values

    def ref(x_, g):
        y, idx = max_pool2d_ref(x_, (3, 3), (2, 2), (1, 1), True)
        return y, (max_pool2d_backward_ref(g, idx, x_.shape),)

    check(device, lambda t: F.max_pool2d(t, 3, 2, padding=1, ceil_mode=True), ref, [x], POOL_BOUNDS["input"],
          what="max_pool2d")


def test_avg_pool2d(rng, device):
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    args = ((2, 2), (2, 2), (1, 1), False, False)

    def ref(x_, g):
        return avg_pool2d_ref(x_, *args), (avg_pool2d_backward_ref(g, x_.shape, *args),)

    check(device, lambda t: F.avg_pool2d(t, 2, padding=1, count_include_pad=False), ref, [x], POOL_BOUNDS["input"],
          what="avg_pool2d")


def test_adaptive_avg_pool2d(rng, device):
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)

    def ref(x_, g):
        return adaptive_avg_pool2d_ref(x_, (2, 3)), (adaptive_avg_pool2d_backward_ref(g, x_.shape),)

    check(device, lambda t: F.adaptive_avg_pool2d(t, (2, 3)), ref, [x], POOL_BOUNDS["input"], what="adaptive_avg_pool2d")


# ---- ops without a device kernel: the CPU computes, the device refuses by name ---------------------------


def test_pad(rng, device):
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    xt = tensor(x, device, requires_grad=True)
    if device == "cuda":
        with pytest.raises(TypeError, match="pad: the forward pass has no cuda kernel .*move the inputs there"):
            F.pad(xt, (1, 1))
        return
    y = F.pad(xt, (1, 2))
    np.testing.assert_array_equal(y.numpy(), np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 2))))


def test_kmax_pool(rng, device):
    from fastconv.nn import sequence

    x = rng.standard_normal((2, 3, 9)).astype(np.float32)
    if device == "cuda":
        with pytest.raises(TypeError, match="kmax_pool: the forward pass has no cuda kernel .*move the inputs there"):
            fastconv.kmax_pool(on_device(x, device), 3)
        with pytest.raises(TypeError, match="kmax_pool: the forward pass has no cuda kernel .*move the inputs there"):
            sequence.kmax_pool(tensor(x, device), 3)
        return
    values, indices = fastconv.kmax_pool(x, 3)
    np.testing.assert_array_equal(values, np.take_along_axis(x, indices, -1))
    np.testing.assert_array_equal(np.sort(values, -1), np.sort(x, -1)[..., -3:])
