"""1-D convolution (cross-correlation, torch.nn.functional.conv1d semantics) on (N, C, L) arrays.

A 1-D problem is a 2-D one of height 1: x (N, C, L) is reshaped to (N, C, 1, L) and the weight
(K, C/groups, S) to (K, C/groups, 1, S), so every 2-D algorithm, both gradients, the algorithm
chooser and the CUDA backend (fastconv.cuda.Array inputs) serve conv1d without a second copy of any
kernel. The reshapes cost nothing for contiguous inputs; arguments are checked here first so that
errors speak of the 1-D shapes.
"""

from __future__ import annotations

import numpy as np

from . import cuda
from ._validation import DimensionError, batch_of_one, drop_batch, require_float32, require_int, shape_str
from .conv import conv2d, conv2d_input, conv2d_weight


def _single(value, name: str, minimum: int) -> int:
    """An int, or a 1-element tuple/list of one (torch accepts both)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{name}: expected an int or a 1-element tuple, got {value!r}")
        value = value[0]
    return require_int(value, name, minimum)


def _padding(padding, stride: int, dilation: int, S: int):
    """(padding as the 2-D convolution takes it: an int or "same", left pad + right pad)."""
    if not isinstance(padding, str):
        padding = _single(padding, "padding", 0)
        return padding, 2 * padding
    if padding == "valid":
        return 0, 0
    if padding == "same":  # the odd pad goes to the right, as torch (conv2d's plan appends it)
        if stride != 1:
            raise ValueError(f"padding: 'same' needs stride 1, got stride {stride}")
        return "same", dilation * (S - 1)
    raise ValueError(f"padding: expected an int, a 1-element tuple, 'valid' or 'same', got {padding!r}")


def _check(x_shape, w_shape, stride, padding, dilation, groups, x_name="x", w_name="weight"):
    """Validate the 1-D hyper-parameters and shapes; return (stride, padding, dilation, groups, L_out)
    with padding an int or "same"."""
    stride = _single(stride, "stride", 1)
    dilation = _single(dilation, "dilation", 1)
    groups = require_int(groups, "groups", minimum=1)
    N, C, L = x_shape
    K, Cg, S = w_shape
    padding, total_pad = _padding(padding, stride, dilation, S)
    if C < 1 or L < 1:
        raise ValueError(f"{x_name}: channels and length must be >= 1, got shape {shape_str(x_shape)}")
    if K < 1 or Cg < 1 or S < 1:
        raise ValueError(f"{w_name}: sizes must be >= 1, got shape {shape_str(w_shape)}")
    if C % groups or K % groups:
        raise ValueError(f"groups: {groups} must divide both input channels C={C} and output channels K={K}")
    if Cg * groups != C:
        raise ValueError(
            f"{w_name}: expected shape (K, C/groups, S) with C/groups = {C // groups}, got {shape_str(w_shape)}"
        )
    L_out = (L + total_pad - dilation * (S - 1) - 1) // stride + 1
    if L + total_pad - dilation * (S - 1) - 1 < 0:
        raise ValueError(
            f"{w_name}: kernel of length {S} (dilation {dilation}) does not fit the input length {L} "
            f"padded by {padding} on each side"
        )
    return stride, padding, dilation, groups, L_out


def _as_1d(x, name: str):
    """A 3-D float32 numpy array or fastconv.cuda.Array, unchanged."""
    if isinstance(x, cuda.Array):  # the errors require_float32 raises for a numpy array
        if x.dtype != np.float32:
            raise TypeError(f"{name}: expected dtype float32, got {x.dtype}")
        if x.ndim != 3:
            raise DimensionError(f"{name}: expected a 3-D array, got {x.ndim}-D with shape {shape_str(x.shape)}")
        return x
    return require_float32(x, name, ndim=3)


def _height1(a):
    """(A, B, L) -> (A, B, 1, L): a view for contiguous numpy arrays, an Array reshape on the GPU."""
    return a.reshape(a.shape[0], a.shape[1], 1, a.shape[2])


def _drop_height(a):
    return a.reshape(a.shape[0], a.shape[1], a.shape[3])


def _as_2d(stride, padding, dilation, groups, algo) -> dict:
    """The keyword arguments of the height-1 2-D convolution that computes a 1-D one."""
    padding = padding if isinstance(padding, str) else (0, padding)  # "same" on a height-1 kernel pads only the width
    return dict(stride=(1, stride), padding=padding, dilation=(1, dilation), groups=groups, algo=algo)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo: str = "auto") -> np.ndarray:
    """y[n, k, l] = bias[k] + sum_{c, s} x[n, g*C/groups + c, l*stride - padding + s*dilation] * weight[k, c, s].

    x: (N, C, L) or unbatched (C, L) float32; weight: (K, C/groups, S) float32; bias: (K,) float32 or None.
    padding: an int, "valid" (0) or "same" (stride 1; an odd total pad puts the extra element on the right).
    Returns (N, K, L_out) (or (K, L_out)) float32 with L_out = (L + 2*padding - dilation*(S-1) - 1) // stride + 1.
    Same semantics as `torch.nn.functional.conv1d`; computed by `fastconv.conv2d` on height-1 views."""
    x, unbatched = batch_of_one(x, "x", "(N, C, L)")
    if unbatched:
        return drop_batch(conv1d(x, weight, bias, stride, padding, dilation, groups, algo))
    x = _as_1d(x, "x")
    weight = _as_1d(weight, "weight")
    stride, padding, dilation, groups, _ = _check(x.shape, weight.shape, stride, padding, dilation, groups)
    y = conv2d(_height1(x), _height1(weight), bias, **_as_2d(stride, padding, dilation, groups, algo))
    return _drop_height(y)


def conv1d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Gradient of `conv1d` with respect to its input: shape `input_shape` (N, C, L), float32."""
    input_shape = _shape3(input_shape, "input_shape")
    weight = _as_1d(weight, "weight")
    grad_output = _as_1d(grad_output, "grad_output")
    stride, padding, dilation, groups, L_out = _check(input_shape, weight.shape, stride, padding, dilation, groups, "input_shape")
    _check_grad_output(grad_output, (input_shape[0], weight.shape[0], L_out))
    N, C, L = input_shape
    dx = conv2d_input((N, C, 1, L), _height1(weight), _height1(grad_output), **_as_2d(stride, padding, dilation, groups, algo))
    return _drop_height(dx)


def conv1d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Gradient of `conv1d` with respect to its weight: shape `weight_shape` (K, C/groups, S), float32."""
    input = _as_1d(input, "input")
    weight_shape = _shape3(weight_shape, "weight_shape")
    grad_output = _as_1d(grad_output, "grad_output")
    stride, padding, dilation, groups, L_out = _check(
        input.shape, weight_shape, stride, padding, dilation, groups, "input", "weight_shape"
    )
    _check_grad_output(grad_output, (input.shape[0], weight_shape[0], L_out))
    K, Cg, S = weight_shape
    dw = conv2d_weight(_height1(input), (K, Cg, 1, S), _height1(grad_output), **_as_2d(stride, padding, dilation, groups, algo))
    return _drop_height(dw)


def _shape3(shape, name: str) -> tuple[int, int, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(f"{name}: expected a 3-tuple of ints, got {shape!r}")
    return tuple(require_int(s, name, minimum=0) for s in shape)


def _check_grad_output(grad_output: np.ndarray, expected) -> None:
    if grad_output.shape != tuple(expected):
        raise ValueError(f"grad_output: expected shape {shape_str(expected)}, got {shape_str(grad_output.shape)}")
