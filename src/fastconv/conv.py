"""2-D convolution (NCHW, float32, PyTorch semantics): ``fastconv.conv2d``, the algorithm registry,
``fastconv.conv_algorithms`` and the one function that picks an algorithm for ``algo="auto"``.

Adding an algorithm: compile its kernels into the table in csrc/bindings/bind_conv.cpp, then add
one entry to ``ALGORITHMS`` below (a function returning None when it can run a problem, or the
reason it cannot, and the passes it implements), and a branch in ``select_algorithm`` if "auto"
should ever pick it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from . import _core, cuda
from ._validation import pair, require_float32, require_int, shape_str

#: The passes an algorithm may implement: forward, input gradient, weight gradient.
PASSES = ("forward", "input", "weight")


@dataclass(frozen=True)
class Algorithm:
    """A registered convolution algorithm.

    ``check(params)`` returns None when the algorithm can run the problem described by the
    ``_core.Conv2dParams`` ``params``, else a short reason (shown in the ValueError of an explicit
    request). ``passes`` lists the passes it implements (a subset of ``PASSES``).
    """

    name: str
    check: Callable[[object], str | None]
    passes: tuple[str, ...] = PASSES
    doc: str = ""


def _any(params) -> str | None:
    return None


#: name -> Algorithm; ``algo=`` accepts these names and "auto".
ALGORITHMS: dict[str, Algorithm] = {
    "direct": Algorithm("direct", _any, doc="register-tiled six-deep loop; best for few channels (LeNet)"),
    "im2col": Algorithm("im2col", _any, doc="unfold + GEMM (no unfold for 1x1 stride 1); best for many channels"),
}


class _Plan(NamedTuple):
    """A validated problem: the kernel's params and the zeros appended at the bottom/right of the
    input first (padding="same" with an even dilated kernel puts the odd pad there, as PyTorch)."""

    params: object
    extra: tuple[int, int]


_MAX_ELEMENTS = 1 << 62


def _plan(x_shape, w_shape, stride, padding, dilation, groups, x_name="x", w_name="weight") -> _Plan:
    """Validate everything about a convolution's geometry; raise before anything is allocated."""
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
    return _Plan(params, extra)


def _available(params, pass_: str) -> dict[str, str | None]:
    """Every registered algorithm -> None if it can run this pass of this problem, else why not."""
    compiled = _core.conv2d_kernels()
    out = {}
    for name, algo in ALGORITHMS.items():
        if name not in compiled or not compiled[name][PASSES.index(pass_)]:
            out[name] = "not compiled into this build" if name not in compiled else f"has no {pass_} pass"
        elif pass_ not in algo.passes:
            out[name] = f"has no {pass_} pass"
        else:
            out[name] = algo.check(params)
    return out


def _check_pass(pass_: str) -> str:
    if pass_ not in PASSES:
        raise ValueError(f"pass_: expected one of {PASSES}, got {pass_!r}")
    return pass_


def conv_algorithms(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, *, pass_="forward") -> list[str]:
    """Names of the algorithms that can run this convolution's ``pass_`` ("forward", "input" or
    "weight" gradient), in registry order. Raises ValueError for an invalid problem."""
    from ._validation import require_shape

    plan = _plan(require_shape(x_shape, "x_shape", 4), require_shape(w_shape, "w_shape", 4), stride, padding,
                 dilation, groups, "x_shape", "w_shape")
    return [name for name, why in _available(plan.params, _check_pass(pass_)).items() if why is None]


def select_algorithm(params, pass_: str) -> str:
    """The algorithm ``algo="auto"`` runs for one pass of a problem (a ``_core.Conv2dParams``).

    Every rule cites the measurement behind it (benchmarks/results/, 2 threads, AMD EPYC Zen 3).
    """
    _check_pass(pass_)
    cg, kg = params.C // params.groups, params.K // params.groups
    # 2026-11-25_epyc2_conv.md: with few channels per group the GEMM is too thin to pay for the
    # unfold; direct wins lenet_c1 and lenet_c2 in every pass.
    if cg * params.R * params.S <= 160 and kg <= 16:
        return "direct"
    return "im2col"


def _resolve(plan: _Plan, algo, pass_: str) -> str:
    if not isinstance(algo, str):
        raise TypeError(f"algo: expected a string, got {type(algo).__name__}")
    if algo == "auto":
        return select_algorithm(plan.params, pass_)
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: unknown algorithm {algo!r}; expected 'auto' or one of {sorted(ALGORITHMS)}")
    why = _available(plan.params, pass_)[algo]
    if why is not None:
        raise ValueError(f"algo: {algo!r} cannot run this convolution ({pass_} pass): {why}")
    return algo


def _pad_extra(x: np.ndarray, extra: tuple[int, int]) -> np.ndarray:
    if extra == (0, 0):
        return np.ascontiguousarray(x)
    return np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto") -> np.ndarray:
    """2-D cross-correlation of ``x`` (N, C, H, W) with ``weight`` (K, C // groups, R, S), plus
    ``bias`` (K,), as ``torch.nn.functional.conv2d``; returns a new (N, K, P, Q) float32 array.

    stride, dilation: int or (h, w) pair, >= 1. padding: int or pair (>= 0), "valid" (0) or "same"
    (stride 1 only; an odd total pad puts the extra row/column at the bottom/right, as PyTorch).
    groups: splits C and K into that many independent convolutions (groups == C: depthwise).
    algo: "auto" (see ``select_algorithm``) or one of ``conv_algorithms(...)``.
    Raises TypeError for non-float32 arrays and ValueError naming the bad argument.
    With ``fastconv.cuda.Array`` inputs it runs on the GPU and returns an Array.
    """
    if cuda._any_array(x, weight, bias):
        return cuda.ops.conv2d(x, weight, bias, stride, padding, dilation, groups, algo)
    x = require_float32(x, "x", ndim=4)
    weight = require_float32(weight, "weight", ndim=4)
    plan = _plan(x.shape, weight.shape, stride, padding, dilation, groups)
    p = plan.params
    if bias is not None:
        bias = require_float32(bias, "bias", ndim=1)
        if bias.shape != (p.K,):
            raise ValueError(f"bias: expected shape ({p.K},) for weight shape {shape_str(weight.shape)}, got {shape_str(bias.shape)}")
        bias = np.ascontiguousarray(bias)
    name = _resolve(plan, algo, "forward")
    out = np.empty((p.N, p.K, p.P, p.Q), dtype=np.float32)
    if p.N == 0:
        return out
    _core.conv2d_forward(name, p, _pad_extra(x, plan.extra), np.ascontiguousarray(weight), bias, out)
    return out
