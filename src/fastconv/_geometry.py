"""Geometry of the windowed ops, validated once: the convolution plan (a ``_core.Conv2dParams`` plus
the bottom/right zeros padding="same" appends), the dead-tap crop ``algo="auto"`` applies, and the
pooling params (``_core.Pool2dParams``, adaptive output sizes).

Every device and every pass builds its problem here, so the checks and their messages exist once.
This module sits at the bottom of the op layer: it imports only ``_core`` and ``_validation``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from . import _core
from ._validation import pair, require_int, shape_str

_MAX_ELEMENTS = 1 << 62


class ConvPlan(NamedTuple):
    """A validated convolution: the kernel's params and the zeros appended at the bottom/right of
    the input first (padding="same" with an even dilated kernel puts the odd pad there, as PyTorch)."""

    params: object
    extra: tuple[int, int]


def _is_plain(value) -> bool:
    """An int, str, or tuple of ints: arguments whose value alone decides validation (a bool or a
    numpy integer equals an int but may be judged differently, so those are not cached)."""
    return type(value) in (int, str) or (type(value) is tuple and all(type(v) is int for v in value))


def conv_plan(x_shape, w_shape, stride, padding, dilation, groups, x_name="x", w_name="weight") -> ConvPlan:
    """Validate everything about a convolution's geometry; raise before anything is allocated.

    Plans of plain arguments are cached: a training step plans every layer's three passes, and
    validating afresh took ~4% of a small DenseNet's step (2026-11-26 profile, batch 256)."""
    args = (x_shape, w_shape, stride, padding, dilation, groups, x_name, w_name)
    if all(map(_is_plain, args)):
        return _cached_plan(*args)
    return _make_plan(*args)


@functools.lru_cache(maxsize=4096)
def _cached_plan(*args) -> ConvPlan:
    return _make_plan(*args)


def _make_plan(x_shape, w_shape, stride, padding, dilation, groups, x_name, w_name) -> ConvPlan:
    N, C, H, W = x_shape
    K, Cw, R, S = w_shape
    sh, sw = pair(stride, "stride", minimum=1)
    dh, dw = pair(dilation, "dilation", minimum=1)
    groups = require_int(groups, "groups", minimum=1)
    shapes = ", ".join(
        f"{name}{'' if name.endswith('_shape') else ' shape'} {shape_str(dims)}"
        for name, dims in ((x_name, x_shape), (w_name, w_shape))
    )
    if min(C, H, W) < 1:
        raise ValueError(f"{x_name}: C, H and W must be positive ({shapes})")
    if min(K, Cw, R, S) < 1:
        raise ValueError(f"{w_name}: every size must be positive ({shapes})")
    if C % groups:
        raise ValueError(f"groups: {groups} does not divide the {C} input channels ({shapes})")
    if K % groups:
        raise ValueError(f"groups: {groups} does not divide the {K} output channels ({shapes})")
    if Cw * groups != C:
        raise ValueError(
            f"{w_name}: expected {C // groups} input channels per group (C={C} / groups={groups}) in dimension 1, "
            f"got {Cw} ({shapes})"
        )
    extra = (0, 0)
    if isinstance(padding, str):
        if padding == "valid":
            ph, pw = 0, 0
        elif padding == "same":
            if (sh, sw) != (1, 1):
                raise ValueError(f"padding: 'same' needs stride 1, got stride {(sh, sw)}")
            total_h, total_w = dh * (R - 1), dw * (S - 1)
            ph, pw = total_h // 2, total_w // 2
            extra = (total_h - 2 * ph, total_w - 2 * pw)
        else:
            raise ValueError(f"padding: expected an int, a pair of ints, 'valid' or 'same', got {padding!r}")
    else:
        ph, pw = pair(padding, "padding", minimum=0)
    for what, dims in ((x_name, x_shape), (w_name, w_shape)):
        if math.prod(dims) >= _MAX_ELEMENTS:
            raise ValueError(f"{what}: the number of elements overflows 64 bits ({shapes})")
    Hx, Wx = H + extra[0], W + extra[1]
    P = (Hx + 2 * ph - dh * (R - 1) - 1) // sh + 1
    Q = (Wx + 2 * pw - dw * (S - 1) - 1) // sw + 1
    if P < 1 or Q < 1:
        raise ValueError(
            f"{w_name}: the {R}x{S} kernel (dilation {(dh, dw)}) does not fit the {H}x{W} input padded by "
            f"{(ph, pw)}: output would be {P}x{Q} ({shapes})"
        )
    if N * K * P * Q >= _MAX_ELEMENTS:
        raise ValueError(f"{x_name}: the output size {N}x{K}x{P}x{Q} overflows 64 bits ({shapes})")
    params = _core.Conv2dParams(N, C, Hx, Wx, K, R, S, sh, sw, ph, pw, dh, dw, groups)
    return ConvPlan(params, extra)


def output_shape(params) -> tuple[int, int, int, int]:
    """(N, K, P, Q): the forward output of a ``_core.Conv2dParams``."""
    return (params.N, params.K, params.P, params.Q)


def _live_taps(size: int, pad: int, taps: int, dil: int, stride: int, out: int) -> tuple[int, int]:
    """(first, last) kernel tap along one axis that reads an input element (not padding) for at
    least one output position; taps outside that range only ever multiply zeros."""
    live = []
    for r in range(taps):
        offset = r * dil - pad  # input index read by output 0
        first = max(0, -(-(-offset) // stride))  # the first output whose read is >= 0
        if first < out and first * stride + offset < size:
            live.append(r)
    return (live[0], live[-1]) if live else (0, taps - 1)


@functools.lru_cache(maxsize=1024)
def dead_tap_crop(H: int, W: int, R: int, S: int, ph: int, pw: int, dh: int, dw: int, sh: int, sw: int, P: int, Q: int):
    """For ``algo="auto"``: the smaller problem equal to this one when kernel taps that only ever
    see zero padding are dropped, as (row slice, column slice, new padding), or None.

    Small images deep in a network make this common: a 3x3 convolution with padding 1 on a 1x1
    input is a 1x1 convolution with the centre taps (the last stage of a ResNet at 32x32 input: a
    Winograd convolution of 16 tiles per image before the crop, one 128 x 128 x 128 GEMM after)."""
    r0, r1 = _live_taps(H, ph, R, dh, sh, P)
    c0, c1 = _live_taps(W, pw, S, dw, sw, Q)
    if (r0, r1, c0, c1) == (0, R - 1, 0, S - 1):
        return None
    new_ph, new_pw = ph - r0 * dh, pw - c0 * dw
    if new_ph < 0 or new_pw < 0:
        return None
    # Symmetric padding must still give the same output size (the bottom/right pad shrinks too).
    R2, S2 = r1 - r0 + 1, c1 - c0 + 1
    if (H + 2 * new_ph - dh * (R2 - 1) - 1) // sh + 1 != P or (W + 2 * new_pw - dw * (S2 - 1) - 1) // sw + 1 != Q:
        return None
    return slice(r0, r1 + 1), slice(c0, c1 + 1), (new_ph, new_pw)


def cropped(plan: ConvPlan, algo, w_shape, stride, dilation, groups, x_name="x", w_name="weight"):
    """(plan, (rows, cols) or None) for ``algo="auto"``: the plan of the problem without its dead
    kernel taps when there are any (see ``dead_tap_crop``); otherwise the plan unchanged."""
    p = plan.params
    if algo != "auto" or plan.extra != (0, 0):
        return plan, None
    crop = dead_tap_crop(p.H, p.W, p.R, p.S, p.pad_h, p.pad_w, p.dil_h, p.dil_w, p.stride_h, p.stride_w, p.P, p.Q)
    if crop is None:
        return plan, None
    rows, cols, padding = crop
    w2 = (w_shape[0], w_shape[1], rows.stop - rows.start, cols.stop - cols.start)
    return conv_plan((p.N, p.C, p.H, p.W), w2, stride, padding, dilation, groups, x_name, w_name), (rows, cols)


def pad_extra(x: np.ndarray, extra: tuple[int, int]) -> np.ndarray:
    """``x`` (contiguous) with the plan's bottom/right zeros appended."""
    if extra == (0, 0):
        return np.ascontiguousarray(x)
    return np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))


# ---- pooling ----------------------------------------------------------------------------------------

_MAX_WINDOW = 2**31 - 1  # Pool2dParams bounds kernel, stride, padding and dilation so sizes cannot overflow


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


def pool_input_shape(input_shape, ndim: int, name: str = "input_shape") -> tuple[int, int, int, int]:
    """The full-size shape a pooling gradient is for, as 4-D; it must have grad_output's ndim."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != ndim:
        raise ValueError(f"{name}: expected a sequence of {ndim} ints (like grad_output's ndim), got {input_shape!r}")
    dims = tuple(require_int(d, name, minimum=0) for d in input_shape)
    if 0 in dims[-3:]:
        raise ValueError(f"{name}: C, H and W must be positive, got {shape_str(dims)}")
    return dims if ndim == 4 else (1, *dims)
