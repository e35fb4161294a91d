"""float64 references written from the definitions. Every kernel is tested against these."""

from __future__ import annotations

import numpy as np


def out_size(n, k, stride, pad, dil):
    return (n + 2 * pad - dil * (k - 1) - 1) // stride + 1


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max(|expected|, tiny): the error measure every bound is stated in."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if expected.size == 0:
        return 0.0
    scale = max(np.abs(expected).max(), 1e-30)
    return float(np.abs(actual - expected).max() / scale)


def _windows(xp, r, s, P, Q, stride, dilation):
    """View of padded input sampled at kernel tap (r, s): shape (N, C, P, Q)."""
    sh, sw = stride
    dh, dw = dilation
    return xp[:, :, r * dh : r * dh + (P - 1) * sh + 1 : sh, s * dw : s * dw + (Q - 1) * sw + 1 : sw]


def conv2d_ref(x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, g*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw] * w[k,c,r,s]."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    P = out_size(H, R, stride[0], padding[0], dilation[0])
    Q = out_size(W, S, stride[1], padding[1], dilation[1])
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    y = np.zeros((N, K, P, Q))
    Kg = K // groups
    for g in range(groups):
        xs = xp[:, g * Cg : (g + 1) * Cg]
        for r in range(R):
            for s in range(S):
                win = _windows(xs, r, s, P, Q, stride, dilation)
                y[:, g * Kg : (g + 1) * Kg] += np.einsum("ncpq,kc->nkpq", win, w[g * Kg : (g + 1) * Kg, :, r, s])
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y


def conv2d_input_grad_ref(input_shape, w, dy, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """dx = d(sum(y * dy)) / dx for y = conv2d_ref(x, w)."""
    w = np.asarray(w, np.float64)
    dy = np.asarray(dy, np.float64)
    N, C, H, W = input_shape
    K, Cg, R, S = w.shape
    P, Q = dy.shape[2:]
    dxp = np.zeros((N, C, H + 2 * padding[0], W + 2 * padding[1]))
    Kg = K // groups
    for g in range(groups):
        dxs = dxp[:, g * Cg : (g + 1) * Cg]
        for r in range(R):
            for s in range(S):
                _windows(dxs, r, s, P, Q, stride, dilation)[...] += np.einsum(
                    "nkpq,kc->ncpq", dy[:, g * Kg : (g + 1) * Kg], w[g * Kg : (g + 1) * Kg, :, r, s]
                )
    return dxp[:, :, padding[0] : padding[0] + H, padding[1] : padding[1] + W]


def conv2d_weight_grad_ref(x, weight_shape, dy, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """dw = d(sum(y * dy)) / dw for y = conv2d_ref(x, w)."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    K, Cg, R, S = weight_shape
    P, Q = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    dw = np.zeros(weight_shape)
    Kg = K // groups
    for g in range(groups):
        xs = xp[:, g * Cg : (g + 1) * Cg]
        for r in range(R):
            for s in range(S):
                win = _windows(xs, r, s, P, Q, stride, dilation)
                dw[g * Kg : (g + 1) * Kg, :, r, s] = np.einsum("ncpq,nkpq->kc", win, dy[:, g * Kg : (g + 1) * Kg])
    return dw
