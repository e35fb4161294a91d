"""Transposed 2-D convolution (``torch.nn.functional.conv_transpose2d`` semantics) and its gradients.

A transposed convolution is the input gradient of a convolution: ``conv_transpose2d(x, w)`` is
``grad.conv2d_input(output_shape, w, x)`` for the conv2d that maps the output's shape back to x's,
with w (C_in, C_out/groups, R, S) read as that conv2d's (K, C/groups, R, S) weight. So every
algorithm of the input-gradient pass (and the CUDA backend, for fastconv.cuda.Array inputs) serves
it without a kernel of its own; its gradients are that conv2d's forward (for x) and weight
gradient (for w).

``output_padding`` adds rows/columns at the bottom/right of the output. When it is at least the
stride (torch allows that when the dilation is larger), that conv2d has more output rows than x:
x then gets rows of zeros appended, which add nothing, so the output's last rows get only the bias.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _cuda_ops as _dev
from . import cuda
from ._dispatch import Op
from ._validation import (DimensionError, batch_of_one, drop_batch, pair, require_float32, require_int, require_shape,
                          shape_str)
from .conv import BIAS, conv2d, conv2d_input, conv2d_weight


class _Geometry(NamedTuple):
    """The conv2d whose input gradient a transposed convolution is."""

    output_shape: tuple[int, int, int, int]  # the transposed convolution's output: that conv2d's input
    extra: tuple[int, int]  # rows/columns of zeros appended to x to make it that conv2d's output
    conv: dict  # that conv2d's stride, padding, dilation, groups


def check_output_padding(output_padding, stride, dilation) -> None:
    """torch's rule: each output_padding is smaller than the stride or the dilation of its axis."""
    for axis, op, s, d in zip(("height", "width"), output_padding, stride, dilation):
        if op >= max(s, d):
            raise ValueError(f"output_padding: must be smaller than the stride or the dilation, got {op} for the "
                             f"{axis} with stride {s} and dilation {d}")


def _geometry(x_shape, w_shape, stride, padding, output_padding, groups, dilation, x_name="x",
              w_name="weight") -> _Geometry:
    """Validate the arguments of ``conv_transpose2d`` for x of ``x_shape``; raise before allocating."""
    sh, sw = pair(stride, "stride", minimum=1)
    ph, pw = pair(padding, "padding", minimum=0)
    oph, opw = pair(output_padding, "output_padding", minimum=0)
    dh, dw = pair(dilation, "dilation", minimum=1)
    groups = require_int(groups, "groups", minimum=1)
    N, C_in, H, W = x_shape
    K, Cg_out, R, S = w_shape
    shapes = f"{x_name} shape {shape_str(x_shape)}, {w_name} shape {shape_str(w_shape)}"
    if min(C_in, H, W) < 1:
        raise ValueError(f"{x_name}: C, H and W must be positive ({shapes})")
    if min(Cg_out, R, S) < 1:
        raise ValueError(f"{w_name}: every size must be positive ({shapes})")
    if K != C_in:
        raise ValueError(f"{w_name}: expected (C_in, C_out/groups, R, S) with C_in = {C_in} in dimension 0 ({shapes})")
    if C_in % groups:
        raise ValueError(f"groups: {groups} does not divide the {C_in} input channels ({shapes})")
    check_output_padding((oph, opw), (sh, sw), (dh, dw))
    Ho = (H - 1) * sh - 2 * ph + dh * (R - 1) + oph + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (S - 1) + opw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"padding: {(ph, pw)} removes the whole output: it would be {Ho}x{Wo} ({shapes})")
    conv = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    return _Geometry((N, Cg_out * groups, Ho, Wo), (oph // sh, opw // sw), conv)


def _as_4d(a, name: str):
    """A 4-D float32 numpy array or fastconv.cuda.Array, unchanged."""
    if isinstance(a, cuda.Array):  # checked here: the CUDA ops would name their own argument (x is conv2d's grad_output)
        if a.dtype != np.float32:
            raise TypeError(f"{name}: expected dtype float32, got {a.dtype}")
        if a.ndim != 4:
            raise DimensionError(f"{name}: expected a 4-D array, got {a.ndim}-D with shape {shape_str(a.shape)}")
        return a
    return require_float32(a, name, ndim=4)


def _pad_bottom_right_cpu(a, rows: int, cols: int):
    """``a`` (N, C, H, W) with rows/columns of zeros appended (itself when there are none)."""
    if (rows, cols) == (0, 0):
        return a
    return np.pad(a, ((0, 0), (0, 0), (0, rows), (0, cols)))


def _crop_bottom_right_cpu(a, H: int, W: int):
    """The first H rows and W columns of ``a`` (N, C, H', W') (itself when it has no more)."""
    if a.shape[2:] == (H, W):
        return a
    return np.ascontiguousarray(a[:, :, :H, :W])


#: The zeros appended to x when output_padding >= stride, and the crop of its gradient.
PAD_BOTTOM_RIGHT = Op("pad_bottom_right", {"forward": 1}, cpu={"forward": _pad_bottom_right_cpu},
                      cuda={"forward": _dev.pad_bottom_right})
CROP_BOTTOM_RIGHT = Op("crop_bottom_right", {"forward": 1}, cpu={"forward": _crop_bottom_right_cpu},
                       cuda={"forward": _dev.crop_bottom_right})


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     algo: str = "auto"):
    """Transposed 2-D convolution of ``x`` (N, C_in, H, W) or unbatched (C_in, H, W) with ``weight``
    (C_in, C_out/groups, R, S), plus ``bias`` (C_out,), as ``torch.nn.functional.conv_transpose2d``
    (same argument order): every x[n, c, h, w] adds x * weight[c, :, r, s] to the output at
    (h*stride - padding + r*dilation, w*stride - padding + s*dilation).

    Returns (N, C_out, H_out, W_out) float32 with H_out = (H-1)*stride - 2*padding + dilation*(R-1)
    + output_padding + 1; output_padding (bottom/right) must be smaller than the stride or the
    dilation. ``algo``: "auto" or an algorithm of ``conv_algorithms(..., pass_="input")`` of the
    conv2d this is the input gradient of. fastconv.cuda.Array inputs run on the GPU.
    Raises TypeError for non-float32 arrays and ValueError naming the bad argument.
    """
    x, unbatched = batch_of_one(x, "x", "(N, C_in, H, W)")
    if unbatched:
        return drop_batch(conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation, algo))
    x, weight = _as_4d(x, "x"), _as_4d(weight, "weight")
    geo = _geometry(x.shape, weight.shape, stride, padding, output_padding, groups, dilation)
    C_out = geo.output_shape[1]
    if bias is not None:
        if not isinstance(bias, cuda.Array):
            bias = require_float32(bias, "bias", ndim=1)
        if tuple(bias.shape) != (C_out,):
            raise ValueError(f"bias: expected shape ({C_out},) for weight shape {shape_str(weight.shape)} and "
                             f"groups={geo.conv['groups']}, got {shape_str(bias.shape)}")
    y = conv2d_input(geo.output_shape, weight, PAD_BOTTOM_RIGHT.run("forward", x, *geo.extra), algo=algo, **geo.conv)
    return y if bias is None else BIAS.run("forward", y, bias)


def conv_transpose2d_input(input_shape, weight, grad_output, stride=1, padding=0, output_padding=0, groups=1,
                           dilation=1, algo: str = "auto"):
    """Gradient of ``conv_transpose2d`` with respect to x of shape ``input_shape`` (N, C_in, H, W),
    given ``grad_output`` (N, C_out, H_out, W_out): the convolution of grad_output with the weight."""
    input_shape = require_shape(input_shape, "input_shape", 4)
    weight, grad_output = _as_4d(weight, "weight"), _as_4d(grad_output, "grad_output")
    geo = _geometry(input_shape, weight.shape, stride, padding, output_padding, groups, dilation, "input_shape")
    _check_grad_output(grad_output, geo)
    dx = conv2d(grad_output, weight, None, algo=algo, **geo.conv)
    return CROP_BOTTOM_RIGHT.run("forward", dx, *input_shape[2:])


def conv_transpose2d_weight(input, weight_shape, grad_output, stride=1, padding=0, output_padding=0, groups=1,
                            dilation=1, algo: str = "auto"):
    """Gradient of ``conv_transpose2d(input, w, ...)`` with respect to w of shape ``weight_shape``
    (C_in, C_out/groups, R, S): conv2d's weight gradient with grad_output as its input and input as
    its output gradient."""
    input = _as_4d(input, "input")
    weight_shape = require_shape(weight_shape, "weight_shape", 4)
    grad_output = _as_4d(grad_output, "grad_output")
    geo = _geometry(input.shape, weight_shape, stride, padding, output_padding, groups, dilation, "input",
                    "weight_shape")
    _check_grad_output(grad_output, geo)
    return conv2d_weight(grad_output, weight_shape, PAD_BOTTOM_RIGHT.run("forward", input, *geo.extra), algo=algo, **geo.conv)


def _check_grad_output(grad_output, geo: _Geometry) -> None:
    if tuple(grad_output.shape) != geo.output_shape:
        raise ValueError(f"grad_output: expected shape {shape_str(geo.output_shape)} (the transposed convolution's "
                         f"output), got {shape_str(grad_output.shape)}")


__all__ = ["conv_transpose2d", "conv_transpose2d_input", "conv_transpose2d_weight"]
