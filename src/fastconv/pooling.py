"""2-D pooling on NCHW float32 arrays with PyTorch's semantics: max_pool2d, avg_pool2d,
adaptive_avg_pool2d. Backward passes are in fastconv.grad."""

from __future__ import annotations

import numpy as np

from . import _core
from . import _cuda_ops as _dev
from ._dispatch import Op
from ._geometry import adaptive_output_size, pool_params
from ._geometry import pool_input_shape as _input_shape
from ._validation import DimensionError, as_contiguous, require_float32, shape_str

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward",
           "adaptive_avg_pool2d_backward", "pool_params", "adaptive_output_size"]


def _as_nchw(x, name: str) -> tuple[np.ndarray, bool]:
    """(4-D contiguous view, whether the caller passed 3-D (C, H, W))."""
    x = require_float32(x, name)
    if x.ndim not in (3, 4):
        raise DimensionError(f"{name}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) array, got {x.ndim}-D with shape {shape_str(x.shape)}")
    if 0 in x.shape[1:]:
        raise ValueError(f"{name}: C, H and W must be positive, got shape {shape_str(x.shape)}")
    x = as_contiguous(x)
    return (x[None], True) if x.ndim == 3 else (x, False)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window of ``x`` (N, C, H, W) or (C, H, W), as ``torch.nn.functional.max_pool2d``
    (same arguments, in the same order).

    ``stride`` defaults to ``kernel_size``; padding counts as -inf and may be at most half the
    (undilated) window. ``dilation`` spaces the window's taps. A NaN in a window is the window's
    maximum. With ``return_indices`` also returns int64 indices into each flattened H*W input plane
    (what ``fastconv.grad.max_pool2d`` takes).
    """
    return MAX_POOL2D.run("forward", x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _max_pool2d_cpu(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x4, squeeze = _as_nchw(x, "x")
    p = pool_params(x4.shape, kernel_size, stride, padding, ceil_mode, dilation=dilation)
    out_shape = (p.N, p.C, p.P, p.Q)
    y = np.empty(out_shape, np.float32)
    idx = np.empty(out_shape, np.int64) if return_indices else None
    _core.max_pool2d_forward(p, x4, y, idx)
    if squeeze:
        y, idx = y[0], (idx[0] if return_indices else None)
    return (y, idx) if return_indices else y


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Mean over each window of ``x`` (N, C, H, W) or (C, H, W), as ``torch.nn.functional.avg_pool2d``.

    Padding counts as zeros. The divisor is ``divisor_override`` when given (an int >= 1), else the
    window clipped to the padded input (``count_include_pad=True``) or to the input itself.
    """
    return AVG_POOL2D.run("forward", x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def _avg_pool2d_cpu(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x4, squeeze = _as_nchw(x, "x")
    p = pool_params(x4.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor_override)
    y = np.empty((p.N, p.C, p.P, p.Q), np.float32)
    _core.avg_pool2d_forward(p, x4, y)
    return y[0] if squeeze else y


def adaptive_avg_pool2d(x, output_size):
    """Mean over the windows [floor(i*H/P), ceil((i+1)*H/P)) that tile ``x`` into ``output_size``
    (int or (P, Q), None keeps that axis), as ``torch.nn.functional.adaptive_avg_pool2d``."""
    return ADAPTIVE_AVG_POOL2D.run("forward", x, output_size)


def _adaptive_avg_pool2d_cpu(x, output_size):
    x4, squeeze = _as_nchw(x, "x")
    P, Q = adaptive_output_size(output_size, x4.shape[2:])
    y = np.empty((x4.shape[0], x4.shape[1], P, Q), np.float32)
    _core.adaptive_avg_pool2d_forward(x4, y)
    return y[0] if squeeze else y


def _grad_output(grad_output) -> np.ndarray:
    g = require_float32(grad_output, "grad_output")
    if g.ndim not in (3, 4):
        raise ValueError(f"grad_output: expected a 4-D or 3-D array, got {g.ndim}-D with shape {shape_str(g.shape)}")
    return g


def _check_batch(g4, shape4, input_shape):
    if tuple(g4.shape[:2]) != tuple(shape4[:2]):
        raise ValueError(
            f"grad_output: shape {shape_str(g4.shape)} does not match input_shape {shape_str(input_shape)} in N and C"
        )


def max_pool2d_backward(grad_output, indices, input_shape):
    """Gradient of max_pool2d: zeros of ``input_shape`` with ``grad_output`` added at ``indices``."""
    return MAX_POOL2D.run("backward", grad_output, indices, input_shape)


def _max_pool2d_backward_cpu(grad_output, indices, input_shape):
    g = _grad_output(grad_output)
    shape4 = _input_shape(input_shape, g.ndim)
    if not isinstance(indices, np.ndarray):
        raise TypeError(f"indices: expected a numpy.ndarray of int64, got {type(indices).__name__}")
    if indices.dtype != np.int64:
        raise TypeError(f"indices: expected dtype int64 (as max_pool2d returns), got {indices.dtype}")
    if indices.shape != g.shape:
        raise ValueError(f"indices: expected the shape of grad_output {shape_str(g.shape)}, got {shape_str(indices.shape)}")
    g4 = as_contiguous(g).reshape((-1,) + g.shape[-3:]) if g.ndim == 3 else as_contiguous(g)
    idx4 = as_contiguous(indices).reshape(g4.shape)
    _check_batch(g4, shape4, input_shape)
    dx = np.empty(shape4, np.float32)
    _core.max_pool2d_backward(g4, idx4, dx)  # ValueError naming `indices` if one is out of range
    return dx.reshape(tuple(input_shape))


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None):
    """Gradient of avg_pool2d with the same arguments: each output's gradient / divisor spread over its window."""
    return AVG_POOL2D.run("backward", grad_output, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                          divisor_override)


def _avg_pool2d_backward_cpu(grad_output, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                             divisor_override):
    g = _grad_output(grad_output)
    shape4 = _input_shape(input_shape, g.ndim)
    p = pool_params(shape4, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor_override)
    expected = (p.N, p.C, p.P, p.Q)[4 - g.ndim :]
    if tuple(g.shape) != expected:
        raise ValueError(
            f"grad_output: expected shape {shape_str(expected)} for input_shape {shape_str(input_shape)}, got {shape_str(g.shape)}"
        )
    dx = np.empty(shape4, np.float32)
    _core.avg_pool2d_backward(p, as_contiguous(g).reshape(p.N, p.C, p.P, p.Q), dx)
    return dx.reshape(tuple(input_shape))


def adaptive_avg_pool2d_backward(grad_output, input_shape):
    """Gradient of adaptive_avg_pool2d: output size from grad_output, input size from input_shape."""
    return ADAPTIVE_AVG_POOL2D.run("backward", grad_output, input_shape)


def _adaptive_avg_pool2d_backward_cpu(grad_output, input_shape):
    g = _grad_output(grad_output)
    shape4 = _input_shape(input_shape, g.ndim)
    g4 = as_contiguous(g).reshape((-1,) + g.shape[-3:]) if g.ndim == 3 else as_contiguous(g)
    _check_batch(g4, shape4, input_shape)
    if 0 in g4.shape[2:]:
        raise ValueError(f"grad_output: output size must be >= 1, got shape {shape_str(g.shape)}")
    dx = np.empty(shape4, np.float32)
    _core.adaptive_avg_pool2d_backward(g4, dx)
    return dx.reshape(tuple(input_shape))


# ---- the ops: per pass, how many leading arguments are arrays, and each device's kernel ----------------

MAX_POOL2D = Op("max_pool2d", {"forward": 1, "backward": 2},
                cpu={"forward": _max_pool2d_cpu, "backward": _max_pool2d_backward_cpu},
                cuda={"forward": _dev.max_pool2d, "backward": _dev.max_pool2d_backward})
AVG_POOL2D = Op("avg_pool2d", {"forward": 1, "backward": 1},
                cpu={"forward": _avg_pool2d_cpu, "backward": _avg_pool2d_backward_cpu},
                cuda={"forward": _dev.avg_pool2d, "backward": _dev.avg_pool2d_backward})
ADAPTIVE_AVG_POOL2D = Op("adaptive_avg_pool2d", {"forward": 1, "backward": 1},
                         cpu={"forward": _adaptive_avg_pool2d_cpu, "backward": _adaptive_avg_pool2d_backward_cpu},
                         cuda={"forward": _dev.adaptive_avg_pool2d, "backward": _dev.adaptive_avg_pool2d_backward})
