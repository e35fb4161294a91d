"""2-D pooling on NCHW float32 arrays with PyTorch's semantics: max_pool2d, avg_pool2d,
adaptive_avg_pool2d. Backward passes are in fastconv.grad."""

from __future__ import annotations

import numpy as np

from . import _core, cuda
from ._validation import DimensionError, as_contiguous, pair, require_float32, require_int, shape_str

_MAX_WINDOW = 2**31 - 1  # Pool2dParams bounds kernel, stride, padding and dilation so sizes cannot overflow


def _as_nchw(x, name: str) -> tuple[np.ndarray, bool]:
    """(4-D contiguous view, whether the caller passed 3-D (C, H, W))."""
    x = require_float32(x, name)
    if x.ndim not in (3, 4):
        raise DimensionError(f"{name}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) array, got {x.ndim}-D with shape {shape_str(x.shape)}")
    if 0 in x.shape[1:]:
        raise ValueError(f"{name}: C, H and W must be positive, got shape {shape_str(x.shape)}")
    x = as_contiguous(x)
    return (x[None], True) if x.ndim == 3 else (x, False)


def _input_shape(input_shape, ndim: int, name: str = "input_shape") -> tuple[int, int, int, int]:
    """The full-size shape a gradient is for, as 4-D; it must have the same ndim as grad_output."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != ndim:
        raise ValueError(f"{name}: expected a sequence of {ndim} ints (like grad_output's ndim), got {input_shape!r}")
    dims = tuple(require_int(d, name, minimum=0) for d in input_shape)
    if 0 in dims[-3:]:
        raise ValueError(f"{name}: C, H and W must be positive, got {shape_str(dims)}")
    return dims if ndim == 4 else (1, *dims)


def _window_args(kernel_size, stride, padding, dilation=1):
    kernel = pair(kernel_size, "kernel_size", minimum=1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else pair(stride, "stride", minimum=1)
    padding = pair(padding, "padding", minimum=0)
    dilation = pair(dilation, "dilation", minimum=1)
    for name, value in (("kernel_size", kernel), ("stride", stride), ("padding", padding), ("dilation", dilation)):
        if max(value) > _MAX_WINDOW:
            raise ValueError(f"{name}: must be < 2^31, got {value}")
    # Of the undilated kernel, as PyTorch checks it.
    if 2 * padding[0] > kernel[0] or 2 * padding[1] > kernel[1]:
        raise ValueError(f"padding: must be at most half of kernel_size, got padding={padding} for kernel_size={kernel}")
    return kernel, stride, padding, dilation


def _divisor(divisor_override) -> int:
    """divisor_override as Pool2dParams takes it: an int >= 1, or 0 for None."""
    return 0 if divisor_override is None else require_int(divisor_override, "divisor_override", minimum=1)


def pool_params(shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, dilation=1,
                divisor_override=None):
    """Validated ``_core.Pool2dParams`` for an (N, C, H, W) input; the output is (N, C, params.P, params.Q).
    ``dilation`` is for max pooling, ``count_include_pad`` and ``divisor_override`` for average pooling."""
    kernel, stride, padding, dilation = _window_args(kernel_size, stride, padding, dilation)
    N, C, H, W = shape
    p = _core.Pool2dParams(N, C, H, W, kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
                           bool(ceil_mode), bool(count_include_pad), dilation[0], dilation[1], _divisor(divisor_override))
    if p.P < 1 or p.Q < 1:
        dilated = f" dilated by {dilation}" if dilation != (1, 1) else ""
        raise ValueError(
            f"kernel_size: window {kernel}{dilated} with stride {stride} and padding {padding} does not fit input "
            f"{shape_str(shape)} (output would be {p.P}x{p.Q})"
        )
    p.validate()
    return p


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window of ``x`` (N, C, H, W) or (C, H, W), as ``torch.nn.functional.max_pool2d``
    (same arguments, in the same order).

    ``stride`` defaults to ``kernel_size``; padding counts as -inf and may be at most half the
    (undilated) window. ``dilation`` spaces the window's taps. A NaN in a window is the window's
    maximum. With ``return_indices`` also returns int64 indices into each flattened H*W input plane
    (what ``fastconv.grad.max_pool2d`` takes).
    """
    if cuda._any_array(x):
        return cuda.ops.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
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
    if cuda._any_array(x):
        return cuda.ops.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    x4, squeeze = _as_nchw(x, "x")
    p = pool_params(x4.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor_override)
    y = np.empty((p.N, p.C, p.P, p.Q), np.float32)
    _core.avg_pool2d_forward(p, x4, y)
    return y[0] if squeeze else y


def adaptive_output_size(output_size, hw) -> tuple[int, int]:
    """(P, Q) from an int or a pair whose entries may be None (keep that input size)."""
    if isinstance(output_size, (tuple, list)):
        if len(output_size) == 1:
            output_size = (output_size[0], output_size[0])
        if len(output_size) != 2:
            raise ValueError(f"output_size: expected an int or a pair, got {output_size!r}")
        return tuple(hw[i] if v is None else require_int(v, "output_size", minimum=1) for i, v in enumerate(output_size))
    v = require_int(output_size, "output_size", minimum=1)
    return (v, v)


def adaptive_avg_pool2d(x, output_size):
    """Mean over the windows [floor(i*H/P), ceil((i+1)*H/P)) that tile ``x`` into ``output_size``
    (int or (P, Q), None keeps that axis), as ``torch.nn.functional.adaptive_avg_pool2d``."""
    if cuda._any_array(x):
        return cuda.ops.adaptive_avg_pool2d(x, output_size)
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
    if cuda._any_array(grad_output, indices):
        return cuda.ops.max_pool2d_backward(grad_output, indices, input_shape)
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
    if cuda._any_array(grad_output):
        return cuda.ops.avg_pool2d_backward(grad_output, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                            divisor_override)
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
    if cuda._any_array(grad_output):
        return cuda.ops.adaptive_avg_pool2d_backward(grad_output, input_shape)
    g = _grad_output(grad_output)
    shape4 = _input_shape(input_shape, g.ndim)
    g4 = as_contiguous(g).reshape((-1,) + g.shape[-3:]) if g.ndim == 3 else as_contiguous(g)
    _check_batch(g4, shape4, input_shape)
    if 0 in g4.shape[2:]:
        raise ValueError(f"grad_output: output size must be >= 1, got shape {shape_str(g.shape)}")
    dx = np.empty(shape4, np.float32)
    _core.adaptive_avg_pool2d_backward(g4, dx)
    return dx.reshape(tuple(input_shape))
