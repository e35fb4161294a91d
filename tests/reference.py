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


def conv_transpose2d_ref(x, w, bias=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), groups=1,
                         dilation=(1, 1)):
    """The scatter definition: every x[n, c, h, w] adds x * w[c, o, r, s] to output channel
    g*Cg_out + o at (h*sh - ph + r*dh, w*sw - pw + s*dw); positions outside the output are dropped."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C_in, H, W = x.shape
    _, Cg_out, R, S = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    Ho = (H - 1) * sh - 2 * ph + dh * (R - 1) + oph + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (S - 1) + opw + 1
    # Scatter into a buffer indexed by output position + padding, then cut the output out of it.
    buf = np.zeros((N, Cg_out * groups, max((H - 1) * sh + dh * (R - 1) + 1, Ho + ph),
                    max((W - 1) * sw + dw * (S - 1) + 1, Wo + pw)))
    Cg_in = C_in // groups
    for g in range(groups):
        xs = x[:, g * Cg_in : (g + 1) * Cg_in]
        for r in range(R):
            for s in range(S):
                buf[:, g * Cg_out : (g + 1) * Cg_out, r * dh : r * dh + (H - 1) * sh + 1 : sh,
                    s * dw : s * dw + (W - 1) * sw + 1 : sw] += np.einsum("nchw,co->nohw", xs, w[g * Cg_in : (g + 1) * Cg_in, :, r, s])
    y = buf[:, :, ph : ph + Ho, pw : pw + Wo]
    if bias is not None:
        y = y + np.asarray(bias, np.float64)[None, :, None, None]
    return y


# ---- pooling (PyTorch semantics) -------------------------------------------------------------


def pool_out_size(n, k, stride, pad, ceil_mode=False, dilation=1):
    """Output length of a pooling axis; with ceil_mode the last window must start inside the input or left padding."""
    span = n + 2 * pad - dilation * (k - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + pad:
        out -= 1
    return out


def _pool_axis(o, n, k, stride, pad):
    """Window of output o on one axis: valid input range [lo, hi) and its length clipped to the padded input."""
    start = o * stride - pad
    end = min(start + k, n + pad)
    return max(start, 0), min(start + k, n), end - start


def pool_taps(o, n, k, stride, pad, dilation=1):
    """Input positions of output o's window on one axis: o*stride - pad + j*dilation, j < k, inside [0, n)."""
    start = o * stride - pad
    return [t for t in range(start, start + dilation * (k - 1) + 1, dilation) if 0 <= t < n]


def max_pool2d_ref(x, kernel, stride, padding, ceil_mode=False, dilation=(1, 1)):
    """(y, indices): the max of each window's taps (padding excluded) and its offset in the H*W plane.
    Ties go to the first element in row-major order; a NaN wins, and of several NaNs the last."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    P = pool_out_size(H, kernel[0], stride[0], padding[0], ceil_mode, dilation[0])
    Q = pool_out_size(W, kernel[1], stride[1], padding[1], ceil_mode, dilation[1])
    y = np.empty((N, C, P, Q))
    idx = np.empty((N, C, P, Q), np.int64)
    for p in range(P):
        rows = pool_taps(p, H, kernel[0], stride[0], padding[0], dilation[0])
        for q in range(Q):
            cols = pool_taps(q, W, kernel[1], stride[1], padding[1], dilation[1])
            win = x[:, :, rows][:, :, :, cols].reshape(N, C, -1)
            nan = np.isnan(win)
            last_nan = win.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
            local = np.where(nan.any(axis=-1), last_nan, np.argmax(np.where(nan, -np.inf, win), axis=-1))
            y[:, :, p, q] = np.take_along_axis(win, local[..., None], axis=-1)[..., 0]
            idx[:, :, p, q] = np.asarray(rows)[local // len(cols)] * W + np.asarray(cols)[local % len(cols)]
    return y, idx


def max_pool2d_backward_ref(dy, indices, input_shape):
    """dx[n, c].flat[indices[n, c, p, q]] += dy[n, c, p, q]."""
    N, C, H, W = input_shape
    dx = np.zeros((N * C, H * W))
    np.add.at(dx, (np.arange(N * C)[:, None], np.asarray(indices).reshape(N * C, -1)), np.asarray(dy, np.float64).reshape(N * C, -1))
    return dx.reshape(input_shape)


def _avg_divisor(h, w, count_include_pad, divisor_override=None):
    (h0, h1, hp), (w0, w1, wp) = h, w
    if divisor_override is not None:
        return divisor_override
    return hp * wp if count_include_pad else (h1 - h0) * (w1 - w0)


def avg_pool2d_ref(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Window sum (padding counts as zero) / divisor: divisor_override if given, else the window clipped
    to the padded input, or to the input."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    P = pool_out_size(H, kernel[0], stride[0], padding[0], ceil_mode)
    Q = pool_out_size(W, kernel[1], stride[1], padding[1], ceil_mode)
    y = np.empty((N, C, P, Q))
    for p in range(P):
        h = _pool_axis(p, H, kernel[0], stride[0], padding[0])
        for q in range(Q):
            w = _pool_axis(q, W, kernel[1], stride[1], padding[1])
            y[:, :, p, q] = x[:, :, h[0] : h[1], w[0] : w[1]].sum(axis=(2, 3)) / _avg_divisor(h, w, count_include_pad,
                                                                                          divisor_override)
    return y


def avg_pool2d_backward_ref(dy, input_shape, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
                            divisor_override=None):
    """dx = d(sum(y * dy)) / dx for y = avg_pool2d_ref(x, ...)."""
    dy = np.asarray(dy, np.float64)
    N, C, H, W = input_shape
    dx = np.zeros(input_shape)
    for p in range(dy.shape[2]):
        h = _pool_axis(p, H, kernel[0], stride[0], padding[0])
        for q in range(dy.shape[3]):
            w = _pool_axis(q, W, kernel[1], stride[1], padding[1])
            divisor = _avg_divisor(h, w, count_include_pad, divisor_override)
            dx[:, :, h[0] : h[1], w[0] : w[1]] += (dy[:, :, p, q] / divisor)[:, :, None, None]
    return dx


def _adaptive_axis(o, n, out):
    return (o * n) // out, -(-((o + 1) * n) // out)


def adaptive_avg_pool2d_ref(x, output_size):
    """Mean over [floor(i*H/P), ceil((i+1)*H/P)) x [floor(j*W/Q), ceil((j+1)*W/Q))."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    P, Q = output_size
    y = np.empty((N, C, P, Q))
    for p in range(P):
        h0, h1 = _adaptive_axis(p, H, P)
        for q in range(Q):
            w0, w1 = _adaptive_axis(q, W, Q)
            y[:, :, p, q] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward_ref(dy, input_shape):
    dy = np.asarray(dy, np.float64)
    N, C, H, W = input_shape
    P, Q = dy.shape[2:]
    dx = np.zeros(input_shape)
    for p in range(P):
        h0, h1 = _adaptive_axis(p, H, P)
        for q in range(Q):
            w0, w1 = _adaptive_axis(q, W, Q)
            dx[:, :, h0:h1, w0:w1] += (dy[:, :, p, q] / ((h1 - h0) * (w1 - w0)))[:, :, None, None]
    return dx


# ---- nn.functional: each op's value and its vector-Jacobian product ------------------------------
# Each ``*_ref`` takes the op's inputs and ``g`` (the gradient of the output) and returns
# (output, gradients): the gradients of sum(output * g) with respect to each differentiable input,
# from the op's definition. tests/test_reference.py checks them against central differences.


def activation_ref(name, x, g, negative_slope=0.01):
    """relu, leaky_relu, sigmoid or tanh of x, and g * its derivative."""
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    if name == "relu":
        return np.maximum(x, 0.0), (g * (x > 0),)
    if name == "leaky_relu":
        return np.where(x > 0, x, negative_slope * x), (g * np.where(x > 0, 1.0, negative_slope),)
    if name == "sigmoid":
        y = 0.5 * (1.0 + np.tanh(0.5 * x))  # 1 / (1 + exp(-x)) without overflow
        return y, (g * y * (1.0 - y),)
    if name == "tanh":
        y = np.tanh(x)
        return y, (g * (1.0 - y * y),)
    raise ValueError(name)


def linear_ref(x, weight, bias, g):
    """x @ weight.T + bias; gradients for x, weight, bias."""
    x, weight, g = (np.asarray(a, np.float64) for a in (x, weight, g))
    return x @ weight.T + np.asarray(bias, np.float64), (g @ weight, g.T @ x, g.sum(axis=0))


def log_softmax_ref(z, g):
    """log(softmax(z)) over the last axis of a 2-D z."""
    z, g = np.asarray(z, np.float64), np.asarray(g, np.float64)
    m = z.max(axis=1, keepdims=True)
    out = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return out, (g - np.exp(out) * g.sum(axis=1, keepdims=True),)


def cross_entropy_ref(z, labels, g=1.0, reduction="mean"):
    """The mean (or sum) over rows of -log softmax(z)[label]; the gradient for z (g a scalar)."""
    z = np.asarray(z, np.float64)
    n = z.shape[0]
    logp, _ = log_softmax_ref(z, np.zeros_like(z))
    rows = np.arange(n)
    scale = 1.0 / n if reduction == "mean" else 1.0
    loss = -logp[rows, labels].sum() * scale
    dz = np.exp(logp)
    dz[rows, labels] -= 1.0
    return loss, (float(g) * scale * dz,)


def mse_loss_ref(a, b, g=1.0, reduction="mean"):
    """The mean (or sum) of (a - b)^2; the gradients for a and b (g a scalar)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    scale = 1.0 / d.size if reduction == "mean" else 1.0
    ga = 2.0 * float(g) * scale * d
    return (d * d).sum() * scale, (ga, -ga)


def batch_norm2d_ref(x, gamma, beta, running_mean, running_var, training, momentum, eps, g, relu=False):
    """Batch normalization over (N, H, W) per channel (gamma, beta: None for no affine), then relu when
    asked. Returns (y, (grad x, grad gamma, grad beta), (running_mean, running_var) after the call):
    training normalizes with the batch mean and biased variance and moves the running statistics
    towards the batch's (unbiased variance, as PyTorch); evaluation uses the running statistics."""
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    C = x.shape[1]
    gamma = np.ones(C) if gamma is None else np.asarray(gamma, np.float64)
    beta = np.zeros(C) if beta is None else np.asarray(beta, np.float64)
    rm, rv = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    axes, ch = (0, 2, 3), (1, C, 1, 1)
    n = x.size // C
    if training:
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        rm, rv = (1 - momentum) * rm + momentum * mu, (1 - momentum) * rv + momentum * var * n / (n - 1)
    else:
        mu, var = rm, rv
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu.reshape(ch)) * inv_std.reshape(ch)
    y = xhat * gamma.reshape(ch) + beta.reshape(ch)
    if relu:
        g = g * (y > 0)
        y = np.maximum(y, 0.0)
    gxhat = g * gamma.reshape(ch)
    if training:
        gx = (gxhat - gxhat.mean(axis=axes, keepdims=True) - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True)) \
            * inv_std.reshape(ch)
    else:
        gx = gxhat * inv_std.reshape(ch)
    return y, (gx, (g * xhat).sum(axis=axes), g.sum(axis=axes)), (rm, rv)
