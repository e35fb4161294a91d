"""2-D convolution (NCHW, float32, PyTorch semantics): ``fastconv.conv2d``, the algorithm registry,
``fastconv.conv_algorithms`` and the one function that picks an algorithm for ``algo="auto"``.

Adding an algorithm: compile its kernels into the table in csrc/bindings/bind_conv.cpp, then add
one entry to ``ALGORITHMS`` below (a function returning None when it can run a problem, or the
reason it cannot, and the passes it implements), and a branch in ``select_algorithm`` if "auto"
should ever pick it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from . import _core, autotune, cuda
from ._validation import batch_of_one, drop_batch, pair, require_float32, require_int, shape_str
from .gemm import gemm

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
    #: For a family name that picks one of several compiled kernels (e.g. "winograd"): a function
    #: params -> the kernel's name, and the names it may return. None: the name is the kernel.
    pick: Callable[[object], str] | None = None
    kernels: tuple[str, ...] = ()

    def kernel(self, params) -> str:
        """The compiled kernel this algorithm runs for ``params``."""
        return self.pick(params) if self.pick else self.name


def _any(params) -> str | None:
    return None


def _fft_check(params) -> str | None:
    # Overlap-save tiles compute every output position of a dense kernel: a stride would discard
    # most of them and a dilated kernel gains nothing from the transform; groups would need
    # per-group spectra. direct and im2col cover all three.
    if (params.stride_h, params.stride_w) != (1, 1):
        return f"needs stride 1, got {(params.stride_h, params.stride_w)}"
    if (params.dil_h, params.dil_w) != (1, 1):
        return f"needs dilation 1, got {(params.dil_h, params.dil_w)}"
    if params.groups != 1:
        return f"needs groups 1, got {params.groups}"
    return None


def _winograd_check(params) -> str | None:
    if (params.R, params.S) != (3, 3):
        return f"Winograd needs a 3x3 kernel, got {params.R}x{params.S}"
    if (params.stride_h, params.stride_w) != (1, 1):
        return f"Winograd needs stride 1, got {(params.stride_h, params.stride_w)}"
    if (params.dil_h, params.dil_w) != (1, 1):
        return f"Winograd needs dilation 1, got {(params.dil_h, params.dil_w)}"
    if params.groups != 1:
        return f"Winograd needs groups 1, got {params.groups}"
    return None


_CACHE_BYTES = 16 << 20  # half the 32 MiB L3 the rules below were measured on


def _winograd_tiles(params, m: int) -> int:
    return params.N * -(-params.P // m) * -(-params.Q // m)


def _winograd_variant(params) -> str:
    """F(4x4) (36 multiplications per 4x4 output tile, against 16 per 2x2 tile for F(2x2)) except
    where its transformed kernel, 36*K*C floats, is streamed for only a few tiles, or where 4x4
    tiles would be mostly padding. Measured (2026-11-25_epyc2c_winograd.md, sweep, 1 thread):
    F(4x4) beats F(2x2) on every 3x3 layer with C = K from 8 to 512 on 56x56, and with up to 64
    channels on 4x4 to 14x14; with 256 or 512 channels on 14x14 and smaller (9.4 or 38 MB kernel,
    at most 20 tiles) F(2x2) is 2-28% faster (512 channels on 14x14: within 8% either way), and
    2-2.5x faster with 512 channels on 7x7 and smaller."""
    tiles4, tiles2 = _winograd_tiles(params, 4), _winograd_tiles(params, 2)
    if 36 * 4 * params.K * params.C >= _CACHE_BYTES // 2 and tiles4 < 32:
        return "winograd_f2"
    if 36 * tiles4 > 2 * 16 * tiles2:
        return "winograd_f2"
    return "winograd_f4"


def _winograd_choice(params) -> str | None:
    """For a problem Winograd can run: "winograd" where it pays, "im2col" where its transformed
    kernel would be streamed for too few tiles, None to leave the choice to the other rules."""
    cg, kg = params.C // params.groups, params.K // params.groups
    if min(cg, kg) < 8:
        return None
    if cg * 9 <= 160 and kg <= 16 and params.P * params.Q >= 2500:
        return None  # few channels on a large image: direct wins (sweep)
    m = 4 if _winograd_variant(params) == "winograd_f4" else 2
    if (m + 2) ** 2 * 4 * params.K * params.C >= _CACHE_BYTES and _winograd_tiles(params, m) < 32:
        return "im2col"
    return "winograd"


#: name -> Algorithm; ``algo=`` accepts these names and "auto".
ALGORITHMS: dict[str, Algorithm] = {
    "direct": Algorithm("direct", _any, doc="register-tiled six-deep loop; best for few channels (LeNet)"),
    "im2col": Algorithm("im2col", _any, doc="unfold + GEMM (no unfold for 1x1 stride 1); best for many channels"),
    "fft": Algorithm("fft", _fft_check, doc="tiled real 2-D FFT + per-frequency complex GEMM; best for large kernels"),
    "winograd": Algorithm(
        "winograd", _winograd_check, ("forward", "input"),
        doc="F(2x2,3x3) or F(4x4,3x3), whichever _winograd_variant picks", pick=_winograd_variant,
        kernels=("winograd_f2", "winograd_f4"),
    ),
    "winograd_f2": Algorithm(
        "winograd_f2", _winograd_check, ("forward", "input"),
        doc="Winograd F(2x2,3x3): 2.25x fewer multiplications, error ~1e-7"),
    "winograd_f4": Algorithm(
        "winograd_f4", _winograd_check, ("forward", "input"),
        doc="Winograd F(4x4,3x3): 4x fewer multiplications, error ~3e-6"),
}


class _Plan(NamedTuple):
    """A validated problem: the kernel's params and the zeros appended at the bottom/right of the
    input first (padding="same" with an even dilated kernel puts the odd pad there, as PyTorch)."""

    params: object
    extra: tuple[int, int]


_MAX_ELEMENTS = 1 << 62


def _is_plain(value) -> bool:
    """An int, str, or tuple of ints: arguments whose value alone decides validation (a bool or a
    numpy integer equals an int but may be judged differently, so those are not cached)."""
    return type(value) in (int, str) or (type(value) is tuple and all(type(v) is int for v in value))


def _plan(x_shape, w_shape, stride, padding, dilation, groups, x_name="x", w_name="weight") -> _Plan:
    """Validate everything about a convolution's geometry; raise before anything is allocated.

    Plans of plain arguments are cached: a training step plans every layer's three passes, and
    validating afresh took ~4% of a small DenseNet's step (2026-11-26 profile, batch 256)."""
    args = (x_shape, w_shape, stride, padding, dilation, groups, x_name, w_name)
    if all(map(_is_plain, args)):
        return _cached_plan(*args)
    return _make_plan(*args)


@functools.lru_cache(maxsize=4096)
def _cached_plan(*args) -> _Plan:
    return _make_plan(*args)


def _make_plan(x_shape, w_shape, stride, padding, dilation, groups, x_name, w_name) -> _Plan:
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
def _crop(H: int, W: int, R: int, S: int, ph: int, pw: int, dh: int, dw: int, sh: int, sw: int, P: int, Q: int):
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


def _cropped(plan: _Plan, algo, w_shape, stride, dilation, groups, x_name="x", w_name="weight"):
    """(plan, (rows, cols) or None) for ``algo="auto"``: the plan of the problem without its dead
    kernel taps when there are any (see ``_crop``); otherwise the plan unchanged."""
    p = plan.params
    if algo != "auto" or plan.extra != (0, 0):
        return plan, None
    crop = _crop(p.H, p.W, p.R, p.S, p.pad_h, p.pad_w, p.dil_h, p.dil_w, p.stride_h, p.stride_w, p.P, p.Q)
    if crop is None:
        return plan, None
    rows, cols, padding = crop
    K, Cw = w_shape[0], w_shape[1]
    w2 = (K, Cw, rows.stop - rows.start, cols.stop - cols.start)
    return _plan((p.N, p.C, p.H, p.W), w2, stride, padding, dilation, groups, x_name, w_name), (rows, cols)


def _whole_batch_gemm(p) -> bool:
    """A 1x1 convolution of 1x1 images to 1x1 outputs (no padding; groups = 1): NCHW x is then an
    (N, C) matrix and the convolution one GEMM over the whole batch, where the kernels would do one
    per image."""
    return p.H == p.W == p.R == p.S == p.P == p.Q == 1 and p.groups == 1


def _forward_problem(plan: _Plan, algo, w_shape, stride, dilation, groups):
    """(plan, crop, whole_batch_gemm): the forward problem ``conv2d`` computes for ``algo`` (under
    "auto" without its dead kernel taps; crop: their (rows, cols) slices, or None), and whether that
    problem runs as one GEMM over the whole batch."""
    plan, crop = _cropped(plan, algo, w_shape, stride, dilation, groups)
    return plan, crop, algo == "auto" and plan.params.N > 0 and _whole_batch_gemm(plan.params)


def auto_forward(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """What ``conv2d(..., algo="auto")`` runs for this problem with autotuning off, as (algorithm,
    params). ``params`` (a ``_core.Conv2dParams``) describe the problem actually computed: its kernel
    (``params.R`` x ``params.S``) is smaller than ``w_shape``'s when taps that only ever see zero
    padding are dropped (a 3x3 convolution with padding 1 on 1x1 maps keeps its centre tap). The
    algorithm is "gemm" when that problem is one matrix product over the whole batch, else
    ``select_algorithm``'s pick. Raises ValueError for an invalid problem."""
    from ._validation import require_shape

    w_shape = require_shape(w_shape, "w_shape", 4)
    plan = _plan(require_shape(x_shape, "x_shape", 4), w_shape, stride, padding, dilation, groups, "x_shape", "w_shape")
    plan, _, whole_batch = _forward_problem(plan, "auto", w_shape, stride, dilation, groups)
    return ("gemm" if whole_batch else select_algorithm(plan.params, "forward")), plan.params


def _available(params, pass_: str) -> dict[str, str | None]:
    """Every registered algorithm -> None if it can run this pass of this problem, else why not."""
    compiled = _core.conv2d_kernels()
    out = {}
    for name, algo in ALGORITHMS.items():
        kernels = algo.kernels or (name,)
        if any(k not in compiled for k in kernels):
            out[name] = "not compiled into this build"
        elif not all(compiled[k][PASSES.index(pass_)] for k in kernels):
            out[name] = f"has no {pass_} pass"
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


def _pointwise(p) -> bool:
    return (p.R, p.S, p.stride_h, p.stride_w, p.pad_h, p.pad_w) == (1, 1, 1, 1, 0, 0)


def select_algorithm(params, pass_: str) -> str:
    """The algorithm ``algo="auto"`` runs for one pass ("forward", "input", "weight") of a problem
    (a ``_core.Conv2dParams``). Rules are checked in order; each cites its measurement.

    Measurements (ours vs torch per shape, pass and algorithm, interleaved in the same run):
    [2t] benchmarks/results/2026-11-25_epyc2c_conv.md (2 threads, median) and
    [1t] benchmarks/results/2026-11-25_epyc2c_conv-1thread.md (1 thread, min: steadier while the
    machine was shared). Where the two disagree the rule follows the majority of all runs made and
    says so. Other helpers' algorithms get their branches above the direct/im2col fallbacks.
    """
    _check_pass(pass_)
    p = params
    cg, kg = p.C // p.groups, p.K // p.groups
    strided = p.stride_h > 1 or p.stride_w > 1
    # resnet_1x1: a 1x1 stride-1 convolution is one GEMM per image without any unfold; im2col beats
    # direct in every pass ([1t] fwd 0.91 vs 2.19, input 0.55 vs 1.21, weight 1.26 vs 3.52 x torch).
    if _pointwise(p):
        return "im2col"
    # 2026-11-25_epyc2c_winograd.md (sweep, forward and input gradient, 1 thread; runs on a busy
    # machine vary by ~10%): on 3x3 stride-1 layers Winograd is fastest or within ~10% once both
    # channel counts are >= 8 (worst: (8, 64) on 56x56 forward, direct by 11-21% across runs),
    # except on large images with few channels (C = K = 8 or 16 on 56x56 and larger: direct, up to
    # 77% faster, at worst 10% slower), and except when its transformed kernel (>= 16 MiB) would be
    # streamed for fewer than 32 tiles (C = K = 512 on 7x7 and smaller), where im2col is fastest in
    # both passes (F(2x2) 11-29% slower, direct 1.5-1.7x).
    if pass_ != "weight" and _winograd_check(p) is None:
        choice = _winograd_choice(p)
        if choice is not None:
            return choice
    # 5x5 stride-1 kernels with 8+ channels (benchmarks/results/2026-11-26_epyc2c_5x5.md, 2 threads):
    # from 7x7 images the FFT is fastest in every pass (NiN's 24 -> 64 on 7x7: 3.5 / 3.8 ms forward
    # / input against direct's 5.2 / 5.1; 64 -> 192 on 27x27: 60 against 142 ms), except weight
    # gradients with under 32 channels on images under 15x15 (24 -> 64 on 7x7: direct 5.7 vs 6.5
    # ms; 12 -> 32 on 8x8: 1.8 vs 3.0). On 4x4 images direct is fastest or within 30%, but for the
    # forward pass with 32+ channels (FFT 1.9-2.0 ms against direct's 2.3-4.4 in three runs);
    # im2col, the generic pick for 32+ channels, is 1.7-2.4x slower. The worst pick of the final
    # run, 1.5x (8 -> 16 on 16x16, weight), is a case where FFT and direct traded places between
    # runs. LeNet's layers (1 or 6 input channels) fall through to the generic rules: direct.
    if p.R * p.S >= 25 and not strided and cg >= 8 and kg >= 8:
        if min(p.H, p.W) < 7 and not (pass_ == "forward" and cg >= 32 and _fft_check(p) is None):
            return "direct"
        if (pass_ != "weight" or cg >= 32 or min(p.H, p.W) >= 15) and _fft_check(p) is None:
            return "fft"
    # big_kernel (9x9, 16 channels, 128x128): fft beats direct and im2col in all three passes
    # ([1t] 0.20 / 0.11 / 0.24 x torch against direct's 1.2 / 1.09 / 1.50); 9x9 is the smallest
    # kernel measured where it wins (5x5 LeNet layers stay direct: [1t] lenet_c2 fwd fft 4.90x).
    if p.R * p.S >= 81 and _fft_check(p) is None:
        return "fft"
    if pass_ == "forward":
        # stride2 (128 channels, stride 2): im2col ahead of direct in 3 of 4 runs ([1t] 1.29 vs 1.46).
        if strided and cg >= 64:
            return "im2col"
        # lenet_c1, lenet_c2, alexnet_c1 ([1t] 0.42, 0.95, 0.89 against im2col's 0.85, 6.89, 1.33;
        # resnet_3x3 without Winograd 1.50 vs 1.61): the register-tiled direct loop wins.
        return "direct"
    if pass_ == "input":
        # alexnet_c1 ([1t] im2col 0.32 vs direct 0.60), stride2 (1.06 vs 1.06): strided layers; with
        # 64+ output channels W^T @ dY is a well-shaped GEMM. Few channels at stride 1 (lenet_c1,
        # lenet_c2: [1t] direct 0.01 and 0.40 against im2col's 0.02 and 1.77): direct.
        if strided or kg >= 64:
            return "im2col"
        return "direct"
    # 3x3 stride-1 weight gradients up to 32x32 (benchmarks/results/2026-11-26_epyc2c_weight_grad.md,
    # batch 128, 2 threads). Direct's channel-vector tiles reduce over chunks of images: with up to
    # 32 output channels, 1-3 input channels, or on 4x4 and smaller it is fastest or within 12%
    # (1.7-9x faster than the FFT with 1-16 channels), except with 256 channels, where im2col is as
    # fast on 2x2 and 1.5x faster on 4x4. From 8x8 with 64-128 channels the FFT wins (32x32, 64
    # channels: 52 vs direct 76 and im2col 67 ms). With 256 channels the FFT won at batch 128 (16x16:
    # 173 vs im2col 209 ms) but lost at batch 8 (resnet_3x3, 14x14: 27.1 vs about 10 ms,
    # 2026-11-26_epyc2c_conv.md): its cost per channel pair is not amortised over a small batch, so
    # 256 channels stay with im2col. On larger images the FFT wins with up to 128 channels (vgg_3x3,
    # 64 channels on 56x56: 8.3 vs im2col 10.6 ms, bench_full).
    if p.R == p.S == 3 and not strided and p.dil_h == p.dil_w == 1 and p.groups == 1:
        small = p.H * p.W <= 32 * 32
        if small and (kg <= 32 or cg < 16 or p.H * p.W <= 16):
            return "im2col" if cg >= 256 else "direct"
        if min(p.H, p.W) >= 8 and cg <= 128 and kg <= 128 and _fft_check(p) is None:
            return "fft"
    # weight gradient: with 32+ input channels per group the GEMM wins (vgg_3x3 [1t] im2col 1.33 vs
    # direct 2.16, resnet_3x3 1.50 vs 2.25, stride2 1.39 vs 1.93): direct's 8-wide partial sums no
    # longer fit in L1. Few channels (lenet_c1 [1t] direct 0.40 vs 6.06, lenet_c2 0.27 vs 1.30,
    # alexnet_c1 1.85 vs 1.85): direct.
    if cg >= 32:
        return "im2col"
    return "direct"


def _resolve(plan: _Plan, algo, pass_: str, run: Callable[[str], None] | None = None) -> str:
    """The compiled kernel to run for ``algo`` ("auto" or a registered name) on this pass.

    With autotuning on (``fastconv.set_autotune``) and ``run`` given (``run(kernel)`` computes the
    pass with that kernel), "auto" times every valid algorithm once per problem and caches the winner.
    """
    if not isinstance(algo, str):
        raise TypeError(f"algo: expected a string, got {type(algo).__name__}")
    if algo == "auto":
        if run is not None and autotune.get_autotune():
            return autotune.choose(plan.params, pass_, lambda: _tunable(plan.params, pass_), run)
        return ALGORITHMS[select_algorithm(plan.params, pass_)].kernel(plan.params)
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: unknown algorithm {algo!r}; expected 'auto' or one of {sorted(ALGORITHMS)}")
    why = _available(plan.params, pass_)[algo]
    if why is not None:
        raise ValueError(f"algo: {algo!r} cannot run this convolution ({pass_} pass): {why}")
    return ALGORITHMS[algo].kernel(plan.params)


def _tunable(params, pass_: str) -> list[str]:
    """The distinct compiled kernels the autotuner races for one pass (family names such as
    "winograd" are left out: their kernels are raced under their own names)."""
    return [name for name, why in _available(params, pass_).items() if why is None and not ALGORITHMS[name].pick]


#: Kernels whose transforms mix neighbouring values (FFT, Winograd): a NaN or Inf in an input tile
#: would spread to every output of that tile (and Inf * 0 makes NaN), so on non-finite inputs they
#: hand over to im2col, which puts NaN/Inf exactly where the definition does.
_TILE_TRANSFORM_KERNELS = frozenset({"fft", "winograd_f2", "winograd_f4"})


def nonfinite_safe(kernel: str, *arrays: np.ndarray) -> str:
    """``kernel``, or "im2col" when ``kernel`` is a tile transform and an input holds NaN or Inf.

    One float32 sum per array (memory-bound, a few % of a convolution); a sum that overflows to
    Inf on finite data only costs the faster algorithm, never correctness."""
    if kernel in _TILE_TRANSFORM_KERNELS and not all(np.isfinite(a.sum()) for a in arrays):
        return "im2col"
    return kernel


def _pad_extra(x: np.ndarray, extra: tuple[int, int]) -> np.ndarray:
    if extra == (0, 0):
        return np.ascontiguousarray(x)
    return np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto") -> np.ndarray:
    """2-D cross-correlation of ``x`` (N, C, H, W) with ``weight`` (K, C // groups, R, S), plus
    ``bias`` (K,), as ``torch.nn.functional.conv2d``; returns a new (N, K, P, Q) float32 array
    (unbatched x (C, H, W) gives (K, P, Q), as torch).

    stride, dilation: int or (h, w) pair, >= 1. padding: int or pair (>= 0), "valid" (0) or "same"
    (stride 1 only; an odd total pad puts the extra row/column at the bottom/right, as PyTorch).
    groups: splits C and K into that many independent convolutions (groups == C: depthwise).
    algo: "auto" (see ``select_algorithm``) or one of ``conv_algorithms(...)``.
    Raises TypeError for non-float32 arrays and ValueError naming the bad argument.
    With ``fastconv.cuda.Array`` inputs it runs on the GPU and returns an Array.
    """
    x, unbatched = batch_of_one(x, "x", "(N, C, H, W)")
    if unbatched:
        return drop_batch(conv2d(x, weight, bias, stride, padding, dilation, groups, algo))
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
    plan, crop, whole_batch_gemm = _forward_problem(plan, algo, weight.shape, stride, dilation, groups)
    if crop is not None:
        weight = weight[:, :, crop[0], crop[1]]
        p = plan.params
    if whole_batch_gemm:
        out = gemm(np.ascontiguousarray(x).reshape(p.N, p.C), weight.reshape(p.K, p.C).T)
        if bias is not None:
            out += bias
        return out.reshape(p.N, p.K, 1, 1)
    name = _resolve(plan, algo, "forward")
    out = np.empty((p.N, p.K, p.P, p.Q), dtype=np.float32)
    if p.N == 0:
        return out
    x, weight = _pad_extra(x, plan.extra), np.ascontiguousarray(weight)

    def run(kernel):
        _core.conv2d_forward(nonfinite_safe(kernel, x, weight), p, x, weight, bias, out)

    run(_resolve(plan, algo, "forward", run) if algo == "auto" else name)
    return out
