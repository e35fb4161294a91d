"""Differentiable ops on Tensors: each forward calls our kernels (or numpy for cheap elementwise
work) and records its backward rule right beside it.

Float32 tensors run through fastconv's C++ kernels; the numpy-only ops (activations, losses,
linear via numpy matmul) also accept float64, which the gradient checks use. Tensors holding a
fastconv.cuda.Array run every op here on the device (pad excepted: it raises), with no copy to the
host; class labels given as numpy arrays are uploaded once.

Where the devices differ, an op is declared at the end of this module (``RELU`` ...; the bias is
``fastconv.conv.BIAS``) as a kernel table per device behind the one dispatch (``_dispatch.Op``),
which reads the device from the Tensor's data, passed first: the activations and log_softmax have
forward and backward array kernels (``_<op>_cpu`` and ``fastconv._cuda_ops``' functions), the
losses forward kernels (``_<op>_cpu`` and ``_<op>_device``) returning the output and what its
backward needs; batch_norm2d's and pad's kernels record the Tensor themselves.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import _cuda_ops as _dev
from .. import conv as _conv
from .._dispatch import Op
from ..conv1d import conv1d as _conv1d_op
from .. import conv_transpose as _conv_transpose
from .. import grad as _grad
from .. import pooling as _pooling
from .._cuda_array import Array as _DeviceArray
from .._validation import require_int, shape_str
from ..autograd import Tensor, as_tensor, is_grad_enabled, mm, record
from . import init


def _fused(*arrays) -> bool:
    """True when the C++ kernels apply: C-contiguous float32 numpy arrays (else numpy, e.g. float64)."""
    return all(isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous for a in arrays)


def _saving(*tensors) -> bool:
    """True when the op's backward will run, so it is worth keeping arrays for it."""
    return is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# ---- linear algebra layers ---------------------------------------------------------------------------


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weight.T + bias for x (N, in), weight (out, in), bias (out,)."""
    xd, wd = x.data, weight.data
    if xd.ndim != 2 or wd.ndim != 2 or xd.shape[1] != wd.shape[1]:
        raise ValueError(f"linear: expected input (N, {wd.shape[1]}), got {shape_str(xd.shape)}")
    y = mm(xd, wd, trans_b=True)
    if bias is not None:
        y = _conv.BIAS.run("forward", y, bias.data)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        gx = mm(g, wd) if x.requires_grad else None
        gw = mm(g, xd, trans_a=True) if weight.requires_grad else None
        if bias is None:
            return gx, gw
        return gx, gw, _conv.BIAS.run("backward", g)

    return record(y, parents, backward)


def _unbatched(x: Tensor, batched_ndim: int, op) -> Tensor:
    """``op(x)``, with torch's unbatched input (one dimension fewer) run as a batch of one."""
    if x.ndim != batched_ndim - 1:
        return op(x)
    y = op(x.reshape((1,) + x.shape))
    return y.reshape(y.shape[1:])


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups=1,
           algo: str = "auto") -> Tensor:
    """2-D convolution (PyTorch semantics) through fastconv.conv2d; gradients through fastconv.grad.
    x: (N, C, H, W) or unbatched (C, H, W)."""
    return _unbatched(x, 4, lambda x4: _conv2d(x4, weight, bias, stride, padding, dilation, groups, algo))


def _conv2d(x, weight, bias, stride, padding, dilation, groups, algo) -> Tensor:
    xd, wd = x.data, weight.data
    y = _conv.conv2d(xd, wd, None if bias is None else bias.data, stride=stride, padding=padding,
                   dilation=dilation, groups=groups, algo=algo)
    parents = (x, weight) if bias is None else (x, weight, bias)
    x_shape, w_shape = xd.shape, wd.shape
    if not _saving(x, weight, bias):
        return record(y, parents, None)

    def backward(g):
        gx = gw = None
        if x.requires_grad:
            gx = _grad.conv2d_input(x_shape, wd, g, stride, padding, dilation, groups, algo=algo)
        if weight.requires_grad:
            gw = _grad.conv2d_weight(xd, w_shape, g, stride, padding, dilation, groups, algo=algo)
        if bias is None:
            return gx, gw
        return gx, gw, _conv.BIAS.run("backward", g)

    return record(y, parents, backward)


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups=1,
           algo: str = "auto") -> Tensor:
    """1-D convolution (torch.nn.functional.conv1d semantics, padding "same"/"valid" included) through
    fastconv.conv1d; gradients through fastconv.grad.conv1d_input / conv1d_weight.
    x: (N, C, L) or unbatched (C, L)."""
    return _unbatched(x, 3, lambda x3: _conv1d(x3, weight, bias, stride, padding, dilation, groups, algo))


def _conv1d(x, weight, bias, stride, padding, dilation, groups, algo) -> Tensor:
    xd, wd = x.data, weight.data
    y = _conv1d_op(xd, wd, None if bias is None else bias.data, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, algo=algo)
    parents = (x, weight) if bias is None else (x, weight, bias)
    if not _saving(x, weight, bias):
        return record(y, parents, None)

    def backward(g):
        args = (stride, padding, dilation, groups, algo)
        gx = _grad.conv1d_input(xd.shape, wd, g, *args) if x.requires_grad else None
        gw = _grad.conv1d_weight(xd, wd.shape, g, *args) if weight.requires_grad else None
        return (gx, gw) if bias is None else (gx, gw, g.sum(axis=(0, 2)))

    return record(y, parents, backward)


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, algo: str = "auto") -> Tensor:
    """Transposed 2-D convolution (torch.nn.functional.conv_transpose2d semantics and argument order)
    through fastconv.conv_transpose2d. Backward: x's gradient is the convolution of the output
    gradient with the weight, the weight's is conv2d's weight gradient with the roles of input and
    output gradient swapped (fastconv.grad.conv_transpose2d_input / _weight). x: (N, C_in, H, W) or (C_in, H, W)."""
    args = (stride, padding, output_padding, groups, dilation)
    return _unbatched(x, 4, lambda x4: _conv_transpose2d(x4, weight, bias, args, algo))


def _conv_transpose2d(x, weight, bias, args, algo) -> Tensor:
    xd, wd = x.data, weight.data
    y = _conv_transpose.conv_transpose2d(xd, wd, None if bias is None else bias.data, *args, algo=algo)
    parents = (x, weight) if bias is None else (x, weight, bias)
    if not _saving(x, weight, bias):
        return record(y, parents, None)

    def backward(g):
        gx = _grad.conv_transpose2d_input(xd.shape, wd, g, *args, algo=algo) if x.requires_grad else None
        gw = _grad.conv_transpose2d_weight(xd, wd.shape, g, *args, algo=algo) if weight.requires_grad else None
        return (gx, gw) if bias is None else (gx, gw, _conv.BIAS.run("backward", g))

    return record(y, parents, backward)


# ---- padding ---------------------------------------------------------------------------------------------

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_widths(x: Tensor, pad, mode: str) -> list:
    """Validate torch's pad tuple for ``x``; return [(axis, left, right)], last axis first."""
    if mode not in PAD_MODES:
        raise ValueError(f"mode: expected one of {PAD_MODES}, got {mode!r}")
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not pad:
        raise ValueError(f"pad: expected a tuple of (left, right) widths, last dimension first, got {pad!r}")
    widths = [require_int(w, "pad", minimum=0) for w in pad]
    n = len(widths) // 2
    if n > x.ndim:
        raise ValueError(f"pad: {len(widths)} widths pad {n} dimensions, but the input has shape {shape_str(x.shape)}")
    if mode != "constant" and not (n <= 3 and x.ndim in (n + 1, n + 2)):
        raise ValueError(f"pad: mode {mode!r} pads the last 1, 2 or 3 dimensions of an input with 1 or 2 more "
                         f"(as torch); {len(widths)} widths do not fit the input of shape {shape_str(x.shape)}")
    axes = [(x.ndim - 1 - i, widths[2 * i], widths[2 * i + 1]) for i in range(n)]
    for axis, left, right in axes:
        size = x.shape[axis]
        if mode == "reflect" and max(left, right) >= size:
            raise ValueError(f"pad: reflect padding must be smaller than the dimension it pads, got {(left, right)} "
                             f"for dimension {axis} of size {size} (input shape {shape_str(x.shape)})")
        if mode == "circular" and max(left, right) > size:
            raise ValueError(f"pad: circular padding must be at most the dimension it pads, got {(left, right)} "
                             f"for dimension {axis} of size {size} (input shape {shape_str(x.shape)})")
        if mode == "replicate" and size == 0 and left + right:
            raise ValueError(f"pad: cannot replicate the edge of the empty dimension {axis} "
                             f"(input shape {shape_str(x.shape)})")
    return axes


def _source_index(size: int, left: int, right: int, mode: str) -> np.ndarray:
    """For each position of a padded axis, the input position it copies (np.pad's reflect, edge and wrap)."""
    j = np.arange(-left, size + right)
    if mode == "reflect":  # mirrored about the edge element, which is not repeated
        return np.where(j < 0, -j, np.where(j >= size, 2 * (size - 1) - j, j))
    if mode == "replicate":
        return np.clip(j, 0, size - 1)
    return j % size  # circular


def pad(x: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """``torch.nn.functional.pad``: ``pad`` holds (left, right) widths for the last dimension, then
    the one before, and so on. ``mode``: "constant" (fill with ``value``), "reflect" (mirror, edge not
    repeated; widths smaller than the dimension), "replicate" (repeat the edge) or "circular" (wrap
    around; widths at most the dimension). Non-constant modes pad the last 1-3 dimensions of an
    input with 1 or 2 more, as torch. Widths must be >= 0. Runs in numpy (CPU arrays, any float dtype).

    Backward: the constant mode crops the gradient; the others add each padded position's gradient
    to the input element it copies."""
    x = as_tensor(x)
    return PAD.run("forward", x.data, x, _pad_widths(x, pad, mode), mode, value)


def _pad_cpu(xd, x, axes, mode, value) -> Tensor:
    if mode == "constant":
        widths = [(0, 0)] * xd.ndim
        for axis, left, right in axes:
            widths[axis] = (left, right)
        y = np.pad(xd, widths, constant_values=np.asarray(value, xd.dtype))
        inner = tuple(slice(left, left + n) for (left, _), n in zip(widths, xd.shape))
        return record(y, (x,), lambda g: (g[inner],))
    sources = [(axis, _source_index(xd.shape[axis], left, right, mode), left, xd.shape[axis])
               for axis, left, right in axes]
    y = xd
    for axis, index, _, _ in sources:
        y = np.take(y, index, axis=axis)

    def backward(g):
        for axis, index, left, size in reversed(sources):
            before = (slice(None),) * axis
            dx = g[before + (slice(left, left + size),)].copy()  # the copy of every input element in place
            for j in [*range(left), *range(left + size, len(index))]:  # the padding: a few positions each side
                dx[before + (index[j],)] += g[before + (j,)]
            g = dx
        return (g,)

    return record(y, (x,), backward)


# ---- pooling ---------------------------------------------------------------------------------------------


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max pooling with ``torch.nn.functional.max_pool2d``'s arguments, in its order; the backward
    routes gradients through the argmax indices. With ``return_indices`` returns (Tensor, indices):
    the int64 offsets into each H*W input plane, read-only because the backward uses them."""
    x_shape = x.data.shape
    if not _saving(x) and not return_indices:
        return record(_pooling.max_pool2d(x.data, kernel_size, stride, padding, dilation, ceil_mode), (x,), None)
    y, indices = _pooling.max_pool2d(x.data, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
    out = record(y, (x,), lambda g: (_grad.max_pool2d(g, indices, x_shape),))
    if not return_indices:
        return out
    if isinstance(indices, np.ndarray):
        indices.flags.writeable = False
    return out, indices


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Average pooling with ``torch.nn.functional.avg_pool2d``'s arguments, in its order."""
    x_shape = x.data.shape
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    y = _pooling.avg_pool2d(x.data, *args)
    return record(y, (x,), lambda g: (_grad.avg_pool2d(g, x_shape, *args),))


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Adaptive average pooling to `output_size` (int or pair); (1, 1) is global average pooling."""
    x_shape = x.data.shape
    y = _pooling.adaptive_avg_pool2d(x.data, output_size)
    return record(y, (x,), lambda g: (_grad.adaptive_avg_pool2d(g, x_shape),))


# ---- activations -------------------------------------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    xd = x.data
    return record(RELU.run("forward", xd), (x,), lambda g: (RELU.run("backward", g, xd),))


def _relu_cpu(x):
    if not _fused(x):
        return np.maximum(x, 0)
    y = np.empty_like(x)
    _core.relu_forward(x, y)
    return y


def _relu_backward_cpu(g, x):
    """The gradient given relu's input ``x`` (x > 0 exactly where relu(x) > 0)."""
    if not _fused(x):
        return g * (x > 0)
    g = np.ascontiguousarray(g, dtype=np.float32)
    dx = np.empty_like(x)
    _core.relu_backward(x, g, dx)
    return dx


_relu = relu  # for batch_norm2d, whose `relu` argument shadows the name


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    xd = x.data
    y = LEAKY_RELU.run("forward", xd, negative_slope)
    return record(y, (x,), lambda g: (LEAKY_RELU.run("backward", g, xd, negative_slope),))


def _leaky_relu_cpu(x, negative_slope):
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def _leaky_relu_backward_cpu(g, x, negative_slope):
    return np.where(x > 0, g, g * x.dtype.type(negative_slope))


def sigmoid(x: Tensor) -> Tensor:
    y = SIGMOID.run("forward", x.data)
    return record(y, (x,), lambda g: (SIGMOID.run("backward", g, y),))


def _sigmoid_cpu(x):
    # 1 / (1 + exp(-x)) in place on one new array: numpy's SIMD exp beats a scalar expf loop 8x here.
    # exp(-x) overflows to inf for x < -88 (float32), and 1 / (1 + inf) = 0 is the right answer.
    y = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(y, out=y)
    y += 1
    np.reciprocal(y, out=y)
    return y


def _sigmoid_backward_cpu(g, y):
    """The gradient given sigmoid's output ``y``."""
    if not _fused(y):
        return g * y * (1 - y)
    g = np.ascontiguousarray(g, dtype=np.float32)
    dx = np.empty_like(y)
    _core.sigmoid_backward(y, g, dx)
    return dx


def tanh(x: Tensor) -> Tensor:
    y = TANH.run("forward", x.data)
    return record(y, (x,), lambda g: (TANH.run("backward", g, y),))


def _tanh_backward_cpu(g, y):
    """The gradient given tanh's output ``y``."""
    return g * (1 - y * y)


def flatten(x: Tensor, start_dim: int = 1) -> Tensor:
    return x.flatten(start_dim)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (identity when not training)."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    rng = rng if rng is not None else init.generator()
    # on the device the mask is drawn there, from a seed taken from rng (no host mask)
    y, mask = DROPOUT.run("forward", x.data, p, rng)
    return record(y, (x,), lambda g: (g * mask,))


def _dropout_cpu(x, p, rng):
    """(x * mask, mask) with mask 0 with probability p, else 1 / (1 - p), drawn from ``rng``."""
    mask = (rng.random(x.shape, dtype=np.float32) >= p) * x.dtype.type(1 / (1 - p))
    return x * mask, mask


def batch_norm2d(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: np.ndarray | None,
                 running_var: np.ndarray | None, training: bool, momentum: float = 0.1, eps: float = 1e-5,
                 relu: bool = False) -> Tensor:
    """Batch normalization over (N, H, W) per channel. In training, normalizes with batch statistics
    and updates the running ones in place (unbiased variance, as PyTorch); otherwise uses them.
    relu=True returns relu(batch_norm2d(...)) (what Sequential runs for BatchNorm2d then ReLU).

    float32 numpy input runs the fused C++ kernels (one pass for the statistics, one to normalize
    and apply the ReLU, two for the backward); other inputs (float64 for gradient checks, device
    arrays) use numpy."""
    xd = x.data
    n = xd.shape[0] * xd.shape[2] * xd.shape[3]
    if training and n < 2:
        raise ValueError(f"batch_norm2d: need more than one value per channel in training, got input {shape_str(xd.shape)}")
    return BATCH_NORM2D.run("forward", xd, x, weight, bias, running_mean, running_var, training, momentum, eps, relu, n)


def _batch_norm2d_cpu(xd, x, weight, bias, running_mean, running_var, training, momentum, eps, relu, n) -> Tensor:
    """batch_norm2d on numpy data ``xd`` (x's data, first for the dispatch); ``n`` values per channel."""
    fused = isinstance(xd, np.ndarray) and xd.dtype == np.float32 and all(
        t is None or (isinstance(t.data, np.ndarray) and t.data.dtype == np.float32) for t in (weight, bias))
    if fused:
        xd = np.ascontiguousarray(xd)
    if training:
        if fused:
            mu, var = np.empty(xd.shape[1], np.float32), np.empty(xd.shape[1], np.float32)
            _core.batch_norm_stats(xd, mu, var)
        else:
            mu, var = xd.mean(axis=(0, 2, 3)), xd.var(axis=(0, 2, 3))
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mu
            running_var *= 1 - momentum
            running_var += momentum * var * (n / (n - 1))
    else:
        mu, var = running_mean, running_var
    inv_std = (1.0 / np.sqrt(var + eps)).astype(xd.dtype)
    gamma = weight.data if weight is not None else None
    parents = tuple(t for t in (x, weight, bias) if t is not None)
    if fused:
        mu32 = np.ascontiguousarray(mu, dtype=np.float32)
        beta = np.ascontiguousarray(bias.data) if bias is not None else None
        gamma = np.ascontiguousarray(gamma) if gamma is not None else None
        y = np.empty_like(xd)
        _core.batch_norm_forward(xd, mu32, inv_std, gamma, beta, y, relu)

        def backward(g):
            g = np.ascontiguousarray(g, dtype=np.float32)
            gx = np.empty_like(xd) if x.requires_grad else None
            gw = np.empty_like(gamma) if weight is not None else None
            gb = np.empty_like(beta) if bias is not None else None
            _core.batch_norm_backward(xd, g, mu32, inv_std, gamma, training, gx, gw, gb, beta, relu)
            return tuple(grad for grad, t in ((gx, x), (gw, weight), (gb, bias)) if t is not None)

        return record(y, parents, backward)

    xhat = (xd - mu.astype(xd.dtype)[:, None, None]) * inv_std[:, None, None]
    y = xhat * gamma[:, None, None] if gamma is not None else xhat.copy()
    if bias is not None:
        y += bias.data[:, None, None]

    def backward(g):
        gxhat = g * gamma[:, None, None] if gamma is not None else g
        if training:
            # d/dx of (x - mean) / std with batch statistics.
            m1 = gxhat.mean(axis=(0, 2, 3))[:, None, None]
            m2 = (gxhat * xhat).mean(axis=(0, 2, 3))[:, None, None]
            gx = (gxhat - m1 - xhat * m2) * inv_std[:, None, None]
        else:
            gx = gxhat * inv_std[:, None, None]
        grads = [gx if x.requires_grad else None]
        if weight is not None:
            grads.append((g * xhat).sum(axis=(0, 2, 3)))
        if bias is not None:
            grads.append(g.sum(axis=(0, 2, 3)))
        return tuple(grads)

    out = record(y, parents, backward)
    return _relu(out) if relu else out


def _batch_norm2d_device(xd, x, weight, bias, running_mean, running_var, training, momentum, eps, relu, n) -> Tensor:
    """batch_norm2d on fastconv.cuda.Array data, from the device's broadcasting ops and axis reductions;
    the running statistics (device Arrays) are updated in place on the device."""
    axes, channel = (0, 2, 3), (1, xd.shape[1], 1, 1)
    if training:
        mu = xd.mean(axis=axes)
        xc = xd - mu.reshape(channel)
        var = (xc * xc).mean(axis=axes)
        if running_mean is not None:
            _dev.axpby(momentum, mu, 1.0 - momentum, running_mean)
            _dev.axpby(momentum * n / (n - 1), var, 1.0 - momentum, running_var)
    else:
        xc = xd - running_mean.reshape(channel)
        var = running_var
    inv_std = _dev.unary("rsqrt", var, eps).reshape(channel)
    xhat = xc * inv_std
    gamma = weight.data.reshape(channel) if weight is not None else None
    y = xhat * gamma if gamma is not None else xhat
    if bias is not None:
        y = _dev.add_bias(y, bias.data)
    parents = tuple(t for t in (x, weight, bias) if t is not None)

    def backward(g):
        gxhat = g * gamma if gamma is not None else g
        if training:  # d/dx of (x - mean) / std with batch statistics
            m1 = gxhat.mean(axis=axes, keepdims=True)
            m2 = (gxhat * xhat).mean(axis=axes, keepdims=True)
            gx = (gxhat - m1 - xhat * m2) * inv_std
        else:
            gx = gxhat * inv_std
        grads = [gx if x.requires_grad else None]
        if weight is not None:
            grads.append((g * xhat).sum(axis=axes))
        if bias is not None:
            grads.append(_dev.bias_grad(g))
        return tuple(grads)

    out = record(y, parents, backward)
    return _relu(out) if relu else out


# ---- losses ------------------------------------------------------------------------------------------------


def _targets(target, n: int, num_classes: int) -> np.ndarray:
    t = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"cross_entropy: expected targets of shape ({n},), got {shape_str(t.shape)}")
    if not np.issubdtype(t.dtype, np.integer):
        if np.issubdtype(t.dtype, np.floating) and np.all(t == np.round(t)):
            t = t.astype(np.int64)
        else:
            raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {t.dtype}")
    if n and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(
            f"cross_entropy: target values must be in [0, {num_classes}) for {num_classes} classes, "
            f"got values in [{t.min()}, {t.max()}]"
        )
    return t


def log_softmax(x: Tensor) -> Tensor:
    """log(softmax(x)) over the last axis of a 2-D tensor, computed stably (max subtracted)."""
    out = LOG_SOFTMAX.run("forward", x.data)
    return record(out, (x,), lambda g: (LOG_SOFTMAX.run("backward", g, out),))


def _log_softmax_cpu(x):
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _log_softmax_backward_cpu(g, y):
    """The gradient given log_softmax's output ``y``."""
    return g - np.exp(y) * g.sum(axis=1, keepdims=True)


def cross_entropy(logits: Tensor, target, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of `logits` (N, C) against integer class `target` (N,).

    Uses the log-sum-exp with the row maximum subtracted, so huge logits neither overflow nor
    lose precision. `reduction` is "mean" (default) or "sum".
    """
    logits = as_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, C), got {shape_str(logits.shape)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    loss, backward = CROSS_ENTROPY.run("forward", logits.data, target, reduction)
    return record(loss, (logits,), backward)


def _cross_entropy_cpu(xd, target, reduction):
    """(loss, its backward rule) for numpy logits ``xd`` (N, C)."""
    n, c = xd.shape
    t = _targets(target, n, c)
    z = xd - xd.max(axis=1, keepdims=True)
    ez = np.exp(z)
    sum_ez = ez.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    losses = np.log(sum_ez[:, 0]) - z[rows, t]
    scale = 1.0 / n if reduction == "mean" and n else 1.0
    loss = np.asarray(losses.sum() * scale, dtype=xd.dtype)

    def backward(g):
        grad = ez / sum_ez  # softmax
        grad[rows, t] -= 1
        grad *= g * xd.dtype.type(scale)
        return (grad,)

    return loss, backward


def _device_targets(target, n: int, num_classes: int):
    """Class labels as an int64 device Array: device labels are used as they are (a label out of range
    makes the loss NaN: the device cannot raise); host labels are checked, then uploaded once."""
    t = target.data if isinstance(target, Tensor) else target
    if isinstance(t, _DeviceArray):
        if t.dtype != np.int64:
            raise TypeError(f"cross_entropy: device targets must be int64 class indices, got dtype {t.dtype}")
        return t
    from ..autograd import to_device

    return to_device(np.ascontiguousarray(_targets(t, n, num_classes), dtype=np.int64), "cuda")


def _cross_entropy_device(xd, target, reduction: str):
    """(loss, its backward rule) for device logits ``xd`` (N, C): the loss stays on the device."""
    n, c = xd.shape
    labels = _device_targets(target, n, c)
    loss = _dev.softmax_cross_entropy(xd, labels)
    per_row = 1.0 if reduction == "mean" else float(n)  # the kernel's gradient is mean-scaled
    if reduction == "sum":
        loss = loss * per_row

    def backward(g):  # g is a 0-d device array: scaled on the device, never read back
        return (_dev.softmax_cross_entropy_backward(xd, labels, per_row) * g,)

    return loss, backward


def correct_count(logits, target) -> Tensor:
    """How many rows of `logits` (N, C) have their argmax at the `target` class, as a 0-d float32
    Tensor on the logits' device (no gradient). Sum it over an epoch and read it once at the end with
    ``.item()``: on the GPU this keeps accuracy bookkeeping from copying anything back every step."""
    logits = as_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(f"correct_count: expected logits of shape (N, C), got {shape_str(logits.shape)}")
    return Tensor(CORRECT_COUNT.run("forward", logits.data, target))


def _correct_count_cpu(xd, target):
    t = _targets(target, *xd.shape)
    return np.asarray(np.count_nonzero(xd.argmax(axis=1) == t), dtype=np.float32)


def _correct_count_device(xd, target):
    return _dev.correct_count(xd, _device_targets(target, *xd.shape))


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error between `input` and `target` of the same shape."""
    input = as_tensor(input)
    td = target.data if isinstance(target, Tensor) else target
    loss, diff, scale = MSE_LOSS.run("forward", input.data, td, reduction)
    tt = target if isinstance(target, Tensor) else None
    parents = (input,) if tt is None else (input, tt)

    def backward(g):
        gi = diff * (2 * scale * g)
        return (gi,) if tt is None else (gi, -gi)

    return record(loss, parents, backward)


def _squared_error(xd, td, reduction: str):
    """(loss, xd - td, scale): the mean or summed squared error, in the arrays' own arithmetic (the
    CUDA kernel; the CPU one converts the target first)."""
    if tuple(td.shape) != tuple(xd.shape):
        raise ValueError(f"mse_loss: input has shape {shape_str(xd.shape)} but target has shape {shape_str(td.shape)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"mse_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
    diff = xd - td
    scale = xd.dtype.type(1.0 / diff.size if reduction == "mean" and diff.size else 1.0)
    return (diff * diff).sum() * scale, diff, scale


def _squared_error_cpu(xd, td, reduction: str):
    """_squared_error with the target (any array-like) as an array of the input's dtype, and the
    loss as a 0-d array."""
    loss, diff, scale = _squared_error(xd, np.asarray(td, dtype=xd.dtype), reduction)
    return np.asarray(loss, dtype=xd.dtype), diff, scale


# ---- the ops: per pass, how many leading arguments are arrays (the data the device is read from),
# and each device's kernel -----------------------------------------------------------------------------

PAD = Op("pad", {"forward": 1}, cpu={"forward": _pad_cpu})
RELU = Op("relu", {"forward": 1, "backward": 2}, cpu={"forward": _relu_cpu, "backward": _relu_backward_cpu},
          cuda={"forward": _dev.relu, "backward": _dev.relu_backward})
LEAKY_RELU = Op("leaky_relu", {"forward": 1, "backward": 2},
                cpu={"forward": _leaky_relu_cpu, "backward": _leaky_relu_backward_cpu},
                cuda={"forward": _dev.leaky_relu, "backward": _dev.leaky_relu_backward})
SIGMOID = Op("sigmoid", {"forward": 1, "backward": 2},
             cpu={"forward": _sigmoid_cpu, "backward": _sigmoid_backward_cpu},
             cuda={"forward": _dev.sigmoid, "backward": _dev.sigmoid_backward})
TANH = Op("tanh", {"forward": 1, "backward": 2}, cpu={"forward": np.tanh, "backward": _tanh_backward_cpu},
          cuda={"forward": _dev.tanh, "backward": _dev.tanh_backward})
DROPOUT = Op("dropout", {"forward": 1}, cpu={"forward": _dropout_cpu}, cuda={"forward": _dev.dropout})
BATCH_NORM2D = Op("batch_norm2d", {"forward": 1}, cpu={"forward": _batch_norm2d_cpu},
                  cuda={"forward": _batch_norm2d_device})
LOG_SOFTMAX = Op("log_softmax", {"forward": 1, "backward": 2},
                 cpu={"forward": _log_softmax_cpu, "backward": _log_softmax_backward_cpu},
                 cuda={"forward": _dev.log_softmax, "backward": _dev.log_softmax_backward})
CROSS_ENTROPY = Op("cross_entropy", {"forward": 1}, cpu={"forward": _cross_entropy_cpu},
                   cuda={"forward": _cross_entropy_device})
CORRECT_COUNT = Op("correct_count", {"forward": 1}, cpu={"forward": _correct_count_cpu},
                   cuda={"forward": _correct_count_device})
MSE_LOSS = Op("mse_loss", {"forward": 2}, cpu={"forward": _squared_error_cpu}, cuda={"forward": _squared_error})


__all__ = [
    "linear", "conv2d", "conv1d", "conv_transpose2d", "pad", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "relu", "leaky_relu", "sigmoid", "tanh", "flatten", "dropout", "batch_norm2d", "log_softmax", "cross_entropy",
    "correct_count", "mse_loss",
]
