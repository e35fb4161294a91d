"""Layers and losses: finite-difference gradients through autograd, PyTorch-default initialisation,
state_dict round trips and the errors a user sees for bad input."""

import math

import numpy as np
import pytest

import fastconv
from fastconv import Tensor, nn
from fastconv.nn import functional as F
from gradcheck import check_gradients

needs_conv = pytest.mark.skipif(not hasattr(fastconv, "conv2d"), reason="fastconv.conv2d not built yet")
needs_pool = pytest.mark.skipif(not hasattr(fastconv, "max_pool2d"), reason="fastconv pooling not built yet")


def as64(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def away_from_zero(rng, shape, gap=0.05):
    """Normal samples with |x| >= gap, so a finite difference never crosses a ReLU kink."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < gap, np.sign(x + 1e-12) * gap, x)


# ---- gradients ------------------------------------------------------------------------------------------


def test_linear_gradients_float64(rng):
    layer = as64(nn.Linear(7, 5))
    x = Tensor(rng.standard_normal((4, 7)), requires_grad=True)
    check_gradients(layer, [x], params=[layer.weight, layer.bias], eps=1e-6, rtol=1e-6, atol=1e-9)


def test_linear_float32_through_gemm(rng):
    layer = nn.Linear(13, 6)
    x = Tensor(rng.standard_normal((9, 13)).astype(np.float32), requires_grad=True)
    y = layer(x)
    ref = x.data.astype(np.float64) @ layer.weight.data.T.astype(np.float64) + layer.bias.data
    assert np.abs(y.numpy() - ref).max() <= 1e-5 * np.abs(ref).max()
    # Linear in every input: central differences are exact up to float32 rounding.
    check_gradients(layer, [x], params=[layer.weight, layer.bias], eps=1e-2, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("act", [nn.ReLU(), nn.LeakyReLU(0.1), nn.Sigmoid(), nn.Tanh()], ids=repr)
def test_activation_gradients(rng, act):
    x = Tensor(away_from_zero(rng, (3, 4, 5)), requires_grad=True)
    check_gradients(act, [x], eps=1e-6, rtol=1e-6, atol=1e-9)


def test_sigmoid_is_stable_for_large_inputs():
    with np.errstate(over="raise", invalid="raise"):
        y = F.sigmoid(Tensor(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32))).numpy()
    np.testing.assert_allclose(y, [0, 1.9287e-22, 0.5, 1, 1], rtol=1e-4)


def test_dropout(rng):
    fastconv.manual_seed(3)
    layer = nn.Dropout(0.25)
    x = Tensor(rng.standard_normal((50, 40)), requires_grad=True)
    y = layer(x)
    kept = y.numpy() != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(y.numpy()[kept], x.data[kept] / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)
    assert layer.eval()(x) is x


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients_and_running_stats(rng, training):
    bn = as64(nn.BatchNorm2d(3))
    bn.weight.data[:] = rng.uniform(0.5, 1.5, 3)
    bn.bias.data[:] = rng.standard_normal(3)
    bn.running_mean[:] = [0.1, -0.2, 0.3]
    bn.running_var[:] = [1.5, 0.5, 2.0]
    bn.train(training)
    x = Tensor(rng.standard_normal((4, 3, 3, 2)) * 2 + 1, requires_grad=True)
    if training:
        y = bn(x).numpy()
        mean, var = x.data.mean(axis=(0, 2, 3)), x.data.var(axis=(0, 2, 3))
        np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), bn.bias.data, atol=1e-12)
        np.testing.assert_allclose(bn.running_mean, 0.9 * np.array([0.1, -0.2, 0.3]) + 0.1 * mean, rtol=1e-6)
        np.testing.assert_allclose(bn.running_var, 0.9 * np.array([1.5, 0.5, 2.0]) + 0.1 * var * 24 / 23, rtol=1e-6)
        bn.running_mean[:], bn.running_var[:] = 0, 1
        assert int(bn.state_dict()["num_batches_tracked"]) == 1
    # Running statistics keep changing in training mode; the gradient check only needs the output.
    check_gradients(bn, [x], params=[bn.weight, bn.bias], eps=1e-6, rtol=1e-5, atol=1e-8)


@needs_conv
@pytest.mark.parametrize("kwargs", [dict(padding=2), dict(stride=2, padding=1), dict(groups=2, dilation=2)])
def test_conv2d_gradients(rng, kwargs):
    layer = nn.Conv2d(4, 6, 3, **kwargs)
    x = Tensor(rng.standard_normal((2, 4, 9, 8)).astype(np.float32), requires_grad=True)
    # Linear in x, weight and bias: differences are exact up to float32 rounding.
    check_gradients(layer, [x], params=[layer.weight, layer.bias], eps=1e-2, rtol=2e-3, atol=2e-3)


def spaced(rng, shape):
    """float32 values at least 0.01 apart, so a 1e-3 perturbation never changes which one is largest."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.01 - n * 0.005).astype(np.float32)


@needs_pool
@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2), nn.AvgPool2d(3, 2, 1),
                                   nn.MaxPool2d(3, 1, 1, dilation=2), nn.MaxPool2d(2, dilation=(2, 1), ceil_mode=True),
                                   nn.AvgPool2d(3, 2, 1, divisor_override=5),
                                   nn.AdaptiveAvgPool2d((1, 1)), nn.AdaptiveAvgPool2d(3)], ids=repr)
def test_pool_gradients(rng, layer):
    x = Tensor(spaced(rng, (2, 3, 7, 6)), requires_grad=True)
    check_gradients(layer, [x], eps=1e-3, rtol=1e-2, atol=1e-2)


@needs_pool
def test_max_pool2d_return_indices(rng):
    x = Tensor(spaced(rng, (2, 3, 9, 8)), requires_grad=True)
    # torch's positional order: kernel_size, stride, padding, dilation, ceil_mode, return_indices.
    y, idx = F.max_pool2d(x, 3, 2, 1, 2, True, True)
    y_ref, idx_ref = fastconv.max_pool2d(x.data, 3, 2, 1, dilation=2, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y.data, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    assert idx.dtype == np.int64 and not idx.flags.writeable  # the backward reads them
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(g))
    np.testing.assert_array_equal(x.grad.data, fastconv.grad.max_pool2d(g, idx_ref, x.shape))
    check_gradients(lambda v: F.max_pool2d(v, 3, 2, 1, 2, True, True)[0], [x], eps=1e-3, rtol=1e-2, atol=1e-2)
    # Without gradients, indices come back all the same.
    with fastconv.no_grad():
        _, idx_nograd = F.max_pool2d(x, 3, 2, 1, 2, True, return_indices=True)
    np.testing.assert_array_equal(idx_nograd, idx_ref)
    # The layer, with torch's constructor order: kernel_size, stride, padding, dilation, return_indices, ceil_mode.
    layer = nn.MaxPool2d(3, 2, 1, 2, True, True)
    assert (layer.dilation, layer.return_indices, layer.ceil_mode) == (2, True, True)
    assert "dilation=2, return_indices=True" in repr(layer)
    y2, idx2 = layer(x)
    np.testing.assert_array_equal(y2.data, y_ref)
    np.testing.assert_array_equal(idx2, idx_ref)
    assert layer.infer_shape(x.shape) == y_ref.shape
    avg = nn.AvgPool2d(3, 2, 1, True, False, 4)
    assert (avg.ceil_mode, avg.count_include_pad, avg.divisor_override) == (True, False, 4)
    np.testing.assert_array_equal(avg(x).data, fastconv.avg_pool2d(x.data, 3, 2, 1, True, False, divisor_override=4))
    by_keyword = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False,
                              divisor_override=4)
    np.testing.assert_array_equal(by_keyword.data, avg(x).data)
    y_kw, idx_kw = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y_kw.data, y_ref)
    np.testing.assert_array_equal(idx_kw, idx_ref)
    assert avg.infer_shape(x.shape) == avg(x).shape and "divisor_override=4" in repr(avg)


@needs_pool
@pytest.mark.parametrize("make", [
    lambda m: m.MaxPool2d(3, 2, 1, 2, False, True),
    lambda m: m.MaxPool2d((2, 3), (1, 2), (1, 0), (3, 2)),
    lambda m: m.MaxPool2d(kernel_size=(2,), stride=(1,), padding=(1,), dilation=(2,), ceil_mode=True),
    lambda m: m.AvgPool2d(3, 2, 1, True, False, 5),
    lambda m: m.AvgPool2d(kernel_size=(2, 3), stride=1, padding=(1, 0), divisor_override=2),
], ids=["max-dilated-ceil", "max-rect", "max-1-tuples", "avg-divisor", "avg-keywords"])
def test_pool_layers_match_torch(rng, make):
    """The same positional and keyword arguments give torch's values and gradients."""
    torch = pytest.importorskip("torch")
    x = spaced(rng, (2, 3, 11, 10))
    ours, theirs = make(nn), make(torch.nn)
    tx = torch.from_numpy(x).requires_grad_()
    ty = theirs(tx)
    xt = Tensor(x, requires_grad=True)
    y = ours(xt)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(g))
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(g))
    np.testing.assert_allclose(xt.grad.data, tdx.numpy(), rtol=1e-6, atol=1e-6)


# ---- losses -------------------------------------------------------------------------------------------------


def test_cross_entropy_value_and_gradient(rng):
    logits = Tensor(rng.standard_normal((6, 5)) * 3, requires_grad=True)
    target = rng.integers(0, 5, 6)
    x = logits.data
    expected = np.mean(np.log(np.exp(x).sum(axis=1)) - x[np.arange(6), target])
    assert F.cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-12)
    check_gradients(lambda z: F.cross_entropy(z, target), [logits], eps=1e-6, rtol=1e-6, atol=1e-9)
    check_gradients(lambda z: F.cross_entropy(z, Tensor(target.astype(np.float32)), reduction="sum"), [logits],
                    eps=1e-6, rtol=1e-6, atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = Tensor(np.array([[1e4, 0.0, -1e4], [0.0, 3e4, 0.0]], np.float32), requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        loss = F.cross_entropy(logits, np.array([1, 1]))
        loss.backward()
    assert loss.item() == pytest.approx(5e3, rel=1e-6)
    assert np.all(np.isfinite(logits.grad))


def test_log_softmax_gradient(rng):
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    check_gradients(F.log_softmax, [x], eps=1e-6, rtol=1e-6, atol=1e-9)


def test_mse_loss(rng):
    a, b = Tensor(rng.standard_normal((3, 4)), requires_grad=True), Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert F.mse_loss(a, b).item() == pytest.approx(np.mean((a.data - b.data) ** 2))
    check_gradients(F.mse_loss, [a, b], eps=1e-6, rtol=1e-6, atol=1e-9)
    check_gradients(lambda z: F.mse_loss(z, b.data, reduction="sum"), [a], eps=1e-6, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="target has shape"):
        F.mse_loss(a, np.zeros((4, 3)))


def test_cross_entropy_bad_targets(rng):
    logits = Tensor(rng.standard_normal((4, 3)))
    with pytest.raises(ValueError, match=r"must be in \[0, 3\).*\[0, 3\]"):
        F.cross_entropy(logits, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"must be in \[0, 3\)"):
        F.cross_entropy(logits, np.array([0, -1, 2, 1]))
    with pytest.raises(ValueError, match=r"targets of shape \(4,\)"):
        F.cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(logits, np.array([0.5, 1, 2, 1]))


# ---- modules ------------------------------------------------------------------------------------------------


def test_default_init_matches_pytorch_bounds():
    fastconv.manual_seed(0)
    conv, lin = nn.Conv2d(6, 16, 5), nn.Linear(400, 120)
    for layer, fan_in in ((conv, 150), (lin, 400)):
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias rule both give this
        for p in (layer.weight, layer.bias):
            assert p.dtype == np.float32
            assert np.abs(p.data).max() <= bound
            assert np.abs(p.data).max() > 0.9 * bound


def test_module_registry_modes_and_repr():
    model = fastconv.models.LeNet5()
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["features.0.weight", "features.0.bias"] and len(names) == 10
    assert sum(p.numel() for p in model.parameters()) == 61706
    model.eval()
    assert not any(m.training for m in model.modules())
    text = repr(model)
    assert "(0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))" in text
    assert "Linear(in_features=400, out_features=120, bias=True)" in text


def test_state_dict_round_trip(tmp_path, rng):
    fastconv.manual_seed(1)
    a = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm2d(2))
    a[2].running_mean[:] = [1.0, 2.0]
    path = fastconv.save(a.state_dict(), tmp_path / "m")
    assert path.suffix == ".npz"
    fastconv.manual_seed(2)
    b = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm2d(2))
    weight = b[0].weight.data
    b.load_state_dict(fastconv.load(path))
    assert b[0].weight.data is weight  # loaded in place: optimizers keep their references
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    assert list(fastconv.load(path)) == ["0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean",
                                         "2.running_var", "2.num_batches_tracked"]


def test_load_state_dict_errors_name_the_key():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    state = model.state_dict()
    bad = dict(state)
    bad["1.weight"] = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"'1.weight' has shape \(2, 4\) in the state_dict but \(2, 3\)"):
        model.load_state_dict(bad)
    missing = {k: v for k, v in state.items() if k != "0.bias"}
    missing["extra.weight"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match=r"missing keys \['0.bias'\]; unexpected keys \['extra.weight'\]"):
        model.load_state_dict(missing)
    model.load_state_dict({k: v for k, v in state.items() if k != "0.bias"}, strict=False)


def test_save_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="object array"):
        fastconv.save({"a": np.array([{}], dtype=object)}, tmp_path / "x.npz")


def test_wrong_input_shapes_name_the_layer(rng):
    with pytest.raises(ValueError, match=r"Linear\(in_features=400.*expected input of shape \(N, 400\), got \(2, 399\)"):
        nn.Linear(400, 120)(Tensor(np.zeros((2, 399), np.float32)))
    with pytest.raises(ValueError, match=r"Conv2d\(6, 16.*expected input of shape \(N, 6, H, W\) or \(6, H, W\), got \(2, 3, 14, 14\)"):
        nn.Conv2d(6, 16, 5)(Tensor(np.zeros((2, 3, 14, 14), np.float32)))
    with pytest.raises(ValueError, match=r"MaxPool2d.*\(N, C, H, W\)"):
        nn.MaxPool2d(2)(Tensor(np.zeros((3, 14, 14), np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4.*\(N, 4, H, W\)"):
        nn.BatchNorm2d(4)(Tensor(np.zeros((2, 3, 4, 4), np.float32)))
    with pytest.raises(ValueError, match=r"LeNet5: expected input of shape \(N, 1, 28, 28\)"):
        fastconv.models.LeNet5()(Tensor(np.zeros((2, 1, 32, 32), np.float32)))


@needs_conv
@needs_pool
@pytest.mark.parametrize("variant", ["modern", "classic"])
def test_lenet_forward_backward(rng, variant):
    fastconv.manual_seed(0)
    model = fastconv.models.LeNet5(variant)
    x = Tensor(rng.random((3, 1, 28, 28), dtype=np.float32))
    target = np.array([1, 7, 3])
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    # Spot-check a few weights of the first convolution by central differences (float64 loss).
    w = model.features[0].weight
    for idx in [(0, 0, 2, 2), (5, 0, 0, 4)]:
        saved = w.data[idx]
        vals = []
        for d in (1e-2, -1e-2):
            w.data[idx] = saved + d
            with fastconv.no_grad():
                logits = model(x).numpy().astype(np.float64)
            z = logits - logits.max(axis=1, keepdims=True)
            vals.append(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(3), target]))
        w.data[idx] = saved
        numeric = (vals[0] - vals[1]) / 2e-2
        assert abs(w.grad[idx] - numeric) <= 2e-3 + 2e-2 * abs(numeric)


def test_module_needs_init_call():
    class Bad(nn.Module):
        def __init__(self):
            self.w = 1

    with pytest.raises(AttributeError, match="super"):
        Bad()


@pytest.mark.parametrize("fn", [F.relu, F.sigmoid], ids=["relu", "sigmoid"])
def test_fused_float32_activations_match_float64(rng, fn):
    # 3 * 5 * 67 * 71 elements: above the threading threshold and not a multiple of the chunk size.
    x64 = away_from_zero(rng, (3, 5, 67, 71)) * 4
    g = rng.standard_normal(x64.shape)
    x32 = Tensor(x64.astype(np.float32), requires_grad=True)
    x64 = Tensor(x64, requires_grad=True)
    y32, y64 = fn(x32), fn(x64)
    y32.backward(g.astype(np.float32))
    y64.backward(g)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.numpy(), y64.numpy(), rtol=1e-6, atol=1e-7)
    # sigmoid's y * (1 - y) cancels in float32 where y is near 1: an absolute bound, scaled to |grad| <= 0.25 |g|.
    np.testing.assert_allclose(x32.grad, x64.grad, rtol=1e-5, atol=1e-6)


def test_fused_relu_keeps_nan():
    y = F.relu(Tensor(np.array([np.nan, -1.0, 2.0], np.float32))).numpy()
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2


def test_conv_bias_gradient_kernel(rng):
    from fastconv import conv

    def bias_grad(g):  # what the convolution layers' backward runs for the bias
        return conv.BIAS.run("backward", g)

    g = rng.standard_normal((5, 7, 13, 11)).astype(np.float32)
    db = bias_grad(g)
    assert db.dtype == np.float32 and db.shape == (7,)
    np.testing.assert_allclose(db, g.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bias_grad(g[:, :, ::2]), g[:, :, ::2].sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)
    # channel and batch slices (cat's backward hands out such views): the C++ path with strides
    for view in (g[:, 2:5], g[1:4, 3:], g[::2, ::3], g[:, :, 1:2, :], g[:, :, :, 4:5]):
        expected = view.astype(np.float64).sum(axis=(0, 2, 3))
        np.testing.assert_allclose(bias_grad(view), expected, rtol=1e-5, atol=1e-4)
    calls = []
    real = conv._core.bias_grad_nchw
    conv._core.bias_grad_nchw = lambda *a: (calls.append(1), real(*a))[1]
    try:
        bias_grad(g[:, 2:5])
    finally:
        conv._core.bias_grad_nchw = real
    assert calls, "a channel slice should take the C++ path"
    with pytest.raises(ValueError, match="contiguous"):
        real(g[:, :, ::2], np.empty(7, np.float32))


# ---- the fused float32 BatchNorm kernels against the float64 definition --------------------------------


@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (2, 5, 1, 1), (1, 2, 1, 2), (3, 16, 8, 8), (2, 1, 13, 17)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_fused_batch_norm_matches_float64(shape, training, affine, relu):
    """Forward, all three gradients and the running statistics of the C++ path (float32) against
    the same function evaluated in float64 by numpy: relative error at most 1e-5 (measured <= 1e-6).
    The input has a large mean (5) so the variance is a small difference of large sums. relu=True:
    the fused BatchNorm + ReLU against numpy's batch norm followed by relu."""
    rng = np.random.default_rng(sum(shape))
    C = shape[1]
    x = (5 + 2 * rng.standard_normal(shape)).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    gamma = (1 + 0.5 * rng.standard_normal(C)).astype(np.float32) if affine else None
    beta = rng.standard_normal(C).astype(np.float32) if affine else None
    run_mean = rng.standard_normal(C).astype(np.float32)
    run_var = (1 + rng.random(C)).astype(np.float32)

    def run(dtype):
        xt = Tensor(x.astype(dtype), requires_grad=True)
        w = Tensor(gamma.astype(dtype), requires_grad=True) if affine else None
        b = Tensor(beta.astype(dtype), requires_grad=True) if affine else None
        rm, rv = run_mean.astype(dtype), run_var.astype(dtype)
        y = F.batch_norm2d(xt, w, b, rm, rv, training, momentum=0.1, eps=1e-5, relu=relu)
        y.backward(g.astype(dtype))
        grads = [xt.grad] + ([w.grad, b.grad] if affine else [])
        return [y.data, *grads, rm, rv]

    for ours, ref in zip(run(np.float32), run(np.float64)):
        assert ours.dtype == np.float32
        assert np.abs(ours - ref).max() <= 1e-5 * max(np.abs(ref).max(), 1.0), (ours, ref)


def test_sequential_fuses_batch_norm_then_relu():
    """Sequential runs BatchNorm2d + ReLU as one fused op: same output and gradients as the two
    layers one after the other, a single graph node, and the ReLU module left in place."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 5, 5)).astype(np.float32)
    g = rng.standard_normal((4, 6, 5, 5)).astype(np.float32)
    seq = nn.Sequential(nn.BatchNorm2d(6), nn.ReLU())
    seq[0].weight.data[:] = rng.standard_normal(6).astype(np.float32)
    seq[0].bias.data[:] = rng.standard_normal(6).astype(np.float32)
    xt = Tensor(x, requires_grad=True)
    y = seq(xt)
    assert y._parents[0] is xt  # one node: batch norm with the ReLU inside
    y.backward(g)
    fused = [y.data, xt.grad, seq[0].weight.grad, seq[0].bias.grad]
    for p in seq.parameters():
        p.grad = None
    xt2 = Tensor(x, requires_grad=True)
    y2 = seq[1](seq[0](xt2))
    y2.backward(g)
    unfused = [y2.data, xt2.grad, seq[0].weight.grad, seq[0].bias.grad]
    assert (fused[0] == 0).any() and (fused[0] > 0).any()
    for a, b in zip(fused, unfused):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert [type(m).__name__ for m in seq] == ["BatchNorm2d", "ReLU"]


def test_fused_batch_norm_leaves_inputs_alone():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    x_copy = x.copy()
    bn = nn.BatchNorm2d(3)
    bn(Tensor(x, requires_grad=True)).backward(np.ones_like(x))
    assert np.array_equal(x, x_copy)


def test_xavier_init_redraws_conv_and_linear_weights_only():
    fastconv.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 5), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4))
    biases = [model[0].bias.data.copy(), model[3].bias.data.copy()]
    fastconv.models.xavier_init_(model)
    for w, fan_in, fan_out in ((model[0].weight.data, 3 * 25, 8 * 25), (model[3].weight.data, 8, 4)):
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert w.dtype == np.float32 and np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.8 * bound  # drawn from the whole range, not a narrower default
    np.testing.assert_array_equal(model[0].bias.data, biases[0])
    np.testing.assert_array_equal(model[3].bias.data, biases[1])
    with pytest.raises(TypeError, match="model: expected a fastconv.nn.Module, got list"):
        fastconv.models.xavier_init_([model])
