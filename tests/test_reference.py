"""The references themselves, checked against a literal six-deep loop and against each other."""

import numpy as np

from reference import conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref, out_size


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
