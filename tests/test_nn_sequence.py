"""nn.Conv1d and nn.KMaxPool: forward equals the functional ops, gradients match torch (when
importable) and finite differences; a small Kalchbrenner-style model learns. Bound: 1e-5 relative."""

import numpy as np
import pytest

import fastconv
from fastconv import nn
from reference import relative_error


def test_conv1d_layer_forward_backward_vs_torch(rng):
    torch = pytest.importorskip("torch")
    layer = nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)
    x = rng.standard_normal((3, 4, 17)).astype(np.float32)
    xt = fastconv.Tensor(x, requires_grad=True)
    y = layer(xt)
    np.testing.assert_array_equal(y.data, fastconv.conv1d(x, layer.weight.data, layer.bias.data, 2, 1, 2, 2))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (y * fastconv.Tensor(dy)).sum().backward()

    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tw = torch.tensor(layer.weight.data, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(layer.bias.data, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.conv1d(tx, tw, tb, stride=2, padding=1, dilation=2, groups=2)
    ty.backward(torch.tensor(dy, dtype=torch.float64))
    assert relative_error(y.data, ty.detach().numpy()) < 1e-5
    assert relative_error(xt.grad, tx.grad.numpy()) < 1e-5
    assert relative_error(layer.weight.grad, tw.grad.numpy()) < 1e-5
    assert relative_error(layer.bias.grad, tb.grad.numpy()) < 1e-5


def test_conv1d_layer_bad_input():
    layer = nn.Conv1d(2, 3, 3)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, L\)"):
        layer(fastconv.Tensor(np.zeros((1, 3, 9), np.float32)))
    with pytest.raises(ValueError, match="groups"):
        nn.Conv1d(3, 4, 3, groups=2)
    assert "kernel_size=3" in repr(layer)


def test_kmax_layer_gradient_finite_differences(rng):
    x = rng.standard_normal((2, 3, 10))  # float64 for the finite differences
    layer = nn.KMaxPool(4)
    xt = fastconv.Tensor(x, requires_grad=True)
    y = layer(xt)
    values, indices = fastconv.kmax_pool(x, 4)
    np.testing.assert_array_equal(y.data, values)
    gy = rng.standard_normal(y.shape)
    (y * fastconv.Tensor(gy)).sum().backward()
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = (np.sum(fastconv.kmax_pool(xp, 4)[0] * gy) - np.sum(fastconv.kmax_pool(xm, 4)[0] * gy)) / (2 * eps)
    np.testing.assert_allclose(xt.grad, num, rtol=1e-6, atol=1e-8)
    assert repr(layer).startswith("KMaxPool(k=4")


def test_sentence_model_learns():
    """Conv1d -> ReLU -> KMaxPool -> Linear separates sequences holding a motif [1, -1, 1] from noise."""
    rng = np.random.default_rng(0)
    nn.init.manual_seed(0)
    n, length = 64, 24
    x = rng.standard_normal((n, 1, length)).astype(np.float32) * 0.3
    labels = np.arange(n) % 2
    for i in np.flatnonzero(labels):
        p = rng.integers(0, length - 3)
        x[i, 0, p : p + 3] += np.array([2.0, -2.0, 2.0], np.float32)
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.KMaxPool(2), nn.Flatten(), nn.Linear(8, 2))
    opt = fastconv.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(150):
        loss = nn.functional.cross_entropy(model(fastconv.Tensor(x)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = np.mean(model(fastconv.Tensor(x)).data.argmax(axis=1) == labels)
    assert accuracy > 0.9, (loss.item(), accuracy)
