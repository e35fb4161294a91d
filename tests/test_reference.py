"""The references themselves, checked against a literal six-deep loop and against each other."""

import numpy as np

from reference import (
    activation_ref, batch_norm2d_ref, conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref, cross_entropy_ref,
    linear_ref, log_softmax_ref, mse_loss_ref, out_size,
)


def loop_conv(x, w, stride, padding, dilation, groups):
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    P = out_size(H, R, stride[0], padding[0], dilation[0])
    Q = out_size(W, S, stride[1], padding[1], dilation[1])
    y = np.zeros((N, K, P, Q))
    Kg = K // groups
    for n in range(N):
        for k in range(K):
            g = k // Kg
            for p in range(P):
                for q in range(Q):
                    acc = 0.0
                    for c in range(Cg):
                        for r in range(R):
                            for s in range(S):
                                h = p * stride[0] - padding[0] + r * dilation[0]
                                v = q * stride[1] - padding[1] + s * dilation[1]
                                if 0 <= h < H and 0 <= v < W:
                                    acc += x[n, g * Cg + c, h, v] * w[k, c, r, s]
                    y[n, k, p, q] = acc
    return y


def test_reference_matches_loop(rng):
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((6, 2, 3, 2))
    args = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    np.testing.assert_allclose(conv2d_ref(x, w, **args), loop_conv(x, w, **args), rtol=1e-12, atol=1e-12)


def test_gradients_are_adjoint(rng):
    """<conv(x, w), dy> == <x, dx(dy)> == <w, dw(dy)>: the three references agree."""
    x = rng.standard_normal((2, 6, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    args = dict(stride=(2, 3), padding=(1, 0), dilation=(2, 1), groups=2)
    y = conv2d_ref(x, w, **args)
    dy = rng.standard_normal(y.shape)
    inner = (y * dy).sum()
    assert np.isclose(inner, (x * conv2d_input_grad_ref(x.shape, w, dy, **args)).sum())
    assert np.isclose(inner, (w * conv2d_weight_grad_ref(x, w.shape, dy, **args)).sum())


# ---- the nn.functional references: their gradients against central differences -------------------


def _numeric_vjp(f, arrays, g, i, eps=1e-6):
    """d sum(f(*arrays) * g) / d arrays[i] by central differences in float64."""
    a = arrays[i]
    grad = np.zeros_like(a)
    for j in np.ndindex(a.shape):
        saved = a[j]
        a[j] = saved + eps
        up = np.sum(f(*arrays) * g)
        a[j] = saved - eps
        down = np.sum(f(*arrays) * g)
        a[j] = saved
        grad[j] = (up - down) / (2 * eps)
    return grad


def _check_vjp(f_and_grads, arrays, g):
    """f_and_grads(*arrays, g) -> (out, grads): every gradient matches the differences of out."""
    _, grads = f_and_grads(*arrays, g)
    for i, analytic in enumerate(grads):
        numeric = _numeric_vjp(lambda *a: f_and_grads(*a, g)[0], arrays, g, i)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7 * max(1.0, np.abs(numeric).max()))


def test_functional_references_match_finite_differences(rng):
    x = rng.standard_normal((3, 7))
    x[np.abs(x) < 0.05] = 0.5  # away from the kinks of relu and leaky_relu
    g = rng.standard_normal(x.shape)
    for name in ("relu", "leaky_relu", "sigmoid", "tanh"):
        _check_vjp(lambda a, g_: activation_ref(name, a, g_, negative_slope=0.2), [x.copy()], g)
    w, b = rng.standard_normal((4, 7)), rng.standard_normal(4)
    _check_vjp(linear_ref, [x.copy(), w, b], rng.standard_normal((3, 4)))
    _check_vjp(log_softmax_ref, [x.copy() * 3], g)
    labels = rng.integers(0, 7, 3)
    for reduction in ("mean", "sum"):
        _check_vjp(lambda z, g_: cross_entropy_ref(z, labels, g_, reduction), [x.copy()], 1.7)
        _check_vjp(lambda a, b_, g_: mse_loss_ref(a, b_, g_, reduction), [x.copy(), rng.standard_normal(x.shape)], 0.6)


def test_batch_norm_reference_matches_finite_differences_and_definition(rng):
    x = rng.standard_normal((3, 2, 4, 5)) * 2 + 1
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = rng.standard_normal(2), rng.random(2) + 0.5
    g = rng.standard_normal(x.shape)
    for training in (True, False):
        for relu in (False, True):
            def f(x_, gamma_, beta_, g_):
                y, grads, _ = batch_norm2d_ref(x_, gamma_, beta_, rm, rv, training, 0.1, 1e-5, g_, relu)
                return y, grads
            _check_vjp(f, [x.copy(), gamma.copy(), beta.copy()], g)
    y, _, (new_rm, new_rv) = batch_norm2d_ref(x, None, None, rm, rv, True, 0.1, 1e-5, g)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0 / (1.0 + 1e-5 / x.var(axis=(0, 2, 3))), rtol=1e-12)
    np.testing.assert_allclose(new_rm, 0.9 * rm + 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(new_rv, 0.9 * rv + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
