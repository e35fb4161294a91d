"""float64 references for the benchmark's correctness check (check, then time), written from the
definitions so an installed package can check itself without the source tree's tests/."""

from __future__ import annotations

import numpy as np


def _taps(xp, r, s, P, Q, stride, dilation):
    """Padded input sampled at kernel tap (r, s): shape (N, C, P, Q)."""
    (sh, sw), (dh, dw) = stride, dilation
    return xp[:, :, r * dh : r * dh + (P - 1) * sh + 1 : sh, s * dw : s * dw + (Q - 1) * sw + 1 : sw]


def conv2d(x, w, bias, stride, padding, dilation, groups):
    """y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, g*Cg+c, p*sh-ph+r*dh, q*sw-pw+s*dw] * w[k,c,r,s]."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    (N, C, H, W), (K, Cg, R, S) = x.shape, w.shape
    P = (H + 2 * padding[0] - dilation[0] * (R - 1) - 1) // stride[0] + 1
    Q = (W + 2 * padding[1] - dilation[1] * (S - 1) - 1) // stride[1] + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    y = np.zeros((N, K, P, Q))
    Kg = K // groups
    for g in range(groups):
        for r in range(R):
            for s in range(S):
                win = _taps(xp[:, g * Cg : (g + 1) * Cg], r, s, P, Q, stride, dilation)
                y[:, g * Kg : (g + 1) * Kg] += np.einsum("ncpq,kc->nkpq", win, w[g * Kg : (g + 1) * Kg, :, r, s])
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y


def conv2d_input(input_shape, w, dy, stride, padding, dilation, groups):
    """Gradient of sum(conv2d(x, w) * dy) with respect to x."""
    w, dy = np.asarray(w, np.float64), np.asarray(dy, np.float64)
    N, C, H, W = input_shape
    K, Cg, R, S = w.shape
    P, Q = dy.shape[2:]
    dxp = np.zeros((N, C, H + 2 * padding[0], W + 2 * padding[1]))
    Kg = K // groups
    for g in range(groups):
        for r in range(R):
            for s in range(S):
                _taps(dxp[:, g * Cg : (g + 1) * Cg], r, s, P, Q, stride, dilation)[...] += np.einsum(
                    "nkpq,kc->ncpq", dy[:, g * Kg : (g + 1) * Kg], w[g * Kg : (g + 1) * Kg, :, r, s])
    return dxp[:, :, padding[0] : padding[0] + H, padding[1] : padding[1] + W]


def conv2d_weight(x, weight_shape, dy, stride, padding, dilation, groups):
    """Gradient of sum(conv2d(x, w) * dy) with respect to w."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    K, Cg, R, S = weight_shape
    P, Q = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    dw = np.zeros(weight_shape)
    Kg = K // groups
    for g in range(groups):
        for r in range(R):
            for s in range(S):
                win = _taps(xp[:, g * Cg : (g + 1) * Cg], r, s, P, Q, stride, dilation)
                dw[g * Kg : (g + 1) * Kg, :, r, s] = np.einsum("ncpq,nkpq->kc", win, dy[:, g * Kg : (g + 1) * Kg])
    return dw


def _pool_windows(n, k, s, pad, out):
    """Per output: valid input range [lo, hi) and the window length clipped to the padded input."""
    wins = []
    for o in range(out):
        start = o * s - pad
        wins.append((max(start, 0), min(start + k, n), min(start + k, n + pad) - start))
    return wins


def max_pool2d(x, k, s, pad, out_hw):
    """Window maxima (padding excluded; a NaN wins) for square windows."""
    x = np.asarray(x, np.float64)
    hs, ws = _pool_windows(x.shape[2], k, s, pad, out_hw[0]), _pool_windows(x.shape[3], k, s, pad, out_hw[1])
    y = np.empty(x.shape[:2] + tuple(out_hw))
    for p, (h0, h1, _) in enumerate(hs):
        for q, (w0, w1, _) in enumerate(ws):
            y[:, :, p, q] = x[:, :, h0:h1, w0:w1].max(axis=(2, 3))
    return y


def max_pool2d_backward(dy, indices, input_shape):
    """dx[n, c].flat[indices] += dy."""
    N, C, H, W = input_shape
    dx = np.zeros((N * C, H * W))
    np.add.at(dx, (np.arange(N * C)[:, None], indices.reshape(N * C, -1)), np.asarray(dy, np.float64).reshape(N * C, -1))
    return dx.reshape(input_shape)


def avg_pool2d(x, k, s, pad, out_hw):
    """Window sums / window length clipped to the padded input (count_include_pad=True)."""
    x = np.asarray(x, np.float64)
    hs, ws = _pool_windows(x.shape[2], k, s, pad, out_hw[0]), _pool_windows(x.shape[3], k, s, pad, out_hw[1])
    y = np.empty(x.shape[:2] + tuple(out_hw))
    for p, (h0, h1, hp) in enumerate(hs):
        for q, (w0, w1, wp) in enumerate(ws):
            y[:, :, p, q] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / (hp * wp)
    return y


def avg_pool2d_backward(dy, input_shape, k, s, pad):
    """Gradient of sum(avg_pool2d(x) * dy) with respect to x."""
    dy = np.asarray(dy, np.float64)
    hs, ws = _pool_windows(input_shape[2], k, s, pad, dy.shape[2]), _pool_windows(input_shape[3], k, s, pad, dy.shape[3])
    dx = np.zeros(input_shape)
    for p, (h0, h1, hp) in enumerate(hs):
        for q, (w0, w1, wp) in enumerate(ws):
            dx[:, :, h0:h1, w0:w1] += (dy[:, :, p, q] / (hp * wp))[:, :, None, None]
    return dx


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected| (the error measure every bound is stated in)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if expected.size == 0:
        return 0.0
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))


def tolerance_ratio(actual, expected, rtol: float, atol: float | None = None) -> float:
    """max over elements of |actual - expected| / (atol + rtol * |expected|), in float64: at most 1
    when every element is within the value-scaled tolerance. ``atol`` defaults to ``rtol * max
    |expected|``: float32 sums round relative to their largest terms, so an output near zero gets
    the absolute error of the large values around it. A NaN anywhere gives NaN (never within)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"actual: shape {actual.shape} differs from expected {expected.shape}")
    if expected.size == 0:
        return 0.0
    magnitude = np.abs(expected)
    if atol is None:
        atol = rtol * float(magnitude.max())
    allowed = np.maximum(atol + rtol * magnitude, 1e-300)
    return float((np.abs(actual - expected) / allowed).max())
