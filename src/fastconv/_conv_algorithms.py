"""The convolution algorithm registry: every algorithm once, with the devices and passes it runs,
its applicability check, its compiled kernel(s) and its error bound; and the one function that picks
an algorithm for ``algo="auto"`` (``select_algorithm``), whose rules ``selection_table`` prints.

Tests (``tests/toolkit.py``), the benchmark's correctness check (``fastconv.bench.measure``),
``fastconv.conv_algorithms`` and the CUDA backend all read this table; nothing else lists algorithm
names or tolerances. DEVELOPING.md shows how to add an algorithm. This module imports only ``_core``,
the bounds, the device names (``_dispatch.DEVICES``) and the forward cost model (``_conv_cost``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import _core
from ._conv_cost import cheapest
from ._error_bounds import SUM_BOUND  # the bound of the algorithms without a transform
from ._dispatch import DEVICES  # the devices a backend can run convolutions on

#: The passes an algorithm may implement: forward, input gradient, weight gradient.
PASSES = ("forward", "input", "weight")


@dataclass(frozen=True)
class Algorithm:
    """A registered convolution algorithm.

    ``check(params)`` returns None when the algorithm can run the problem described by the
    ``_core.Conv2dParams`` ``params``, else a short reason (shown in the ValueError of an explicit
    request). ``passes`` lists the passes it implements (a subset of ``PASSES``), ``devices`` the
    backends with a kernel for it. ``bound``: the largest relative error (max |got - exact| /
    max |exact|) the tests and the benchmark accept from it on float32 inputs of unit scale.
    """

    name: str
    check: Callable[[object], str | None]
    passes: tuple[str, ...] = PASSES
    doc: str = ""
    #: For a family name that picks one of several compiled kernels (e.g. "winograd"): a function
    #: params -> the kernel's name, and the names it may return. None: the name is the kernel.
    pick: Callable[[object], str] | None = None
    kernels: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    bound: float = SUM_BOUND
    #: Transforms that mix neighbouring values (FFT, Winograd): a NaN or Inf in an input tile would
    #: spread to every output of that tile, so on non-finite inputs the dispatch runs im2col instead.
    tile_transform: bool = False
    #: A kernel written in Python over the bound ones, called as run(pass_, params, x, weight,
    #: grad_output, bias, out) (operands of that pass, others None); None: a compiled kernel.
    run: Callable | None = None

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


def _winograd_needs(params, stride: int) -> str | None:
    if (params.R, params.S) != (3, 3):
        return f"Winograd needs a 3x3 kernel, got {params.R}x{params.S}"
    if (params.stride_h, params.stride_w) != (stride, stride):
        return f"Winograd needs stride {stride}, got {(params.stride_h, params.stride_w)}"
    if (params.dil_h, params.dil_w) != (1, 1):
        return f"Winograd needs dilation 1, got {(params.dil_h, params.dil_w)}"
    if params.groups != 1:
        return f"Winograd needs groups 1, got {params.groups}"
    return None


def _winograd_check(params) -> str | None:
    return _winograd_needs(params, 1)


def _winograd_s2_check(params) -> str | None:
    return _winograd_needs(params, 2)


def _depthwise_check(params) -> str | None:
    if params.C != params.groups:
        return f"needs one input channel per group (groups == C), got C={params.C}, groups={params.groups}"
    return None


def _whole_batch_check(params) -> str | None:
    p = params
    if not p.H == p.W == p.R == p.S == p.P == p.Q == 1:
        return f"needs a 1x1 kernel on 1x1 maps giving 1x1 outputs, got a {p.R}x{p.S} kernel on {p.H}x{p.W}"
    if p.groups != 1:
        return f"needs groups 1, got {p.groups}"
    return None


def _whole_batch_gemm(pass_: str, p, x, weight, grad_output, bias, out) -> None:
    """A 1x1 convolution of 1x1 maps is one matrix product over the whole batch (NCHW x is then an
    (N, C) matrix), where the compiled kernels would do one small product per image."""
    if pass_ == "forward":  # y (N, K) = x (N, C) @ w^T (C, K)
        y = out.reshape(p.N, p.K)
        _core.sgemm(x.reshape(p.N, p.C), weight.reshape(p.K, p.C), y, 1.0, 0.0, False, True)
        if bias is not None:
            y += bias
    elif pass_ == "input":  # dx (N, C) = dy (N, K) @ w (K, C)
        _core.sgemm(grad_output.reshape(p.N, p.K), weight.reshape(p.K, p.C), out.reshape(p.N, p.C), 1.0, 0.0, False, False)
    else:  # dw (K, C) = dy^T (K, N) @ x (N, C)
        _core.sgemm(grad_output.reshape(p.N, p.K), x.reshape(p.N, p.C), out.reshape(p.K, p.C), 1.0, 0.0, True, False)


def _phases_check(params) -> str | None:
    p = params
    if (p.stride_h, p.stride_w) != (1, 1):
        return f"needs stride 1, got {(p.stride_h, p.stride_w)}"
    if not ((p.dil_h > 1 and p.R > 1) or (p.dil_w > 1 and p.S > 1)):
        return f"needs a dilated kernel, got dilation {(p.dil_h, p.dil_w)} on {p.R}x{p.S}"
    return None


def _new(shape) -> np.ndarray:
    return np.empty(tuple(shape), dtype=np.float32)


def _run_auto(pass_: str, p, x, weight, grad_output, bias, out) -> None:
    """Runs ``select_algorithm``'s pick for one pass of ``p`` (a sub-problem of a phase algorithm)
    into ``out``: a compiled kernel, or an algorithm written in Python (a 1x1 space-to-depth
    problem on 1x1 maps goes to "gemm")."""
    algo = ALGORITHMS[select_algorithm(p, pass_)]
    if algo.run is not None:
        algo.run(pass_, p, x, weight, grad_output, bias, out)
    elif pass_ == "forward":
        _core.conv2d_forward(algo.kernel(p), p, x, weight, bias, out)
    elif pass_ == "input":
        _core.conv2d_backward_input(algo.kernel(p), p, grad_output, weight, out)
    else:
        _core.conv2d_backward_weight(algo.kernel(p), p, x, grad_output, out)


def _dilated_phases(pass_: str, p, x, weight, grad_output, bias, out) -> None:
    """A stride-1 dilated convolution through its phase problem (``_core.conv2d_phase_params``: the
    d_h x d_w phase sub-images of the input as one batch, dilation 1), run by the
    kernel ``select_algorithm`` picks for that problem: Winograd or the FFT where they pay, which
    cannot run a dilated kernel themselves. csrc/conv/conv2d_phases.cpp has the layout."""
    sub = _core.conv2d_phase_params(p)
    sub_x, sub_y = (sub.N, sub.C, sub.H, sub.W), (sub.N, sub.K, sub.P, sub.Q)
    if pass_ == "forward":
        xs, ys = _new(sub_x), _new(sub_y)
        _core.conv2d_phases("split_input", p, x, xs)
        _run_auto(pass_, sub, xs, weight, None, bias, ys)
        _core.conv2d_phases("merge_output", p, ys, out)
    elif pass_ == "input":
        dys, dxs = _new(sub_y), _new(sub_x)
        _core.conv2d_phases("split_output", p, grad_output, dys)
        _run_auto(pass_, sub, None, weight, dys, None, dxs)
        _core.conv2d_phases("merge_input", p, dxs, out)
    else:
        xs, dys = _new(sub_x), _new(sub_y)
        _core.conv2d_phases("split_input", p, x, xs)
        _core.conv2d_phases("split_output", p, grad_output, dys)
        _run_auto(pass_, sub, xs, None, dys, None, out)


def _space_to_depth_check(params) -> str | None:
    p = params
    if p.stride_h == p.stride_w == 1:
        return f"needs a stride above 1, got {(p.stride_h, p.stride_w)}"
    if (p.dil_h, p.dil_w) != (1, 1):
        return f"needs dilation 1, got {(p.dil_h, p.dil_w)}"
    return None


def _space_to_depth(pass_: str, p, x, weight, grad_output, bias, out) -> None:
    """A strided convolution through its space-to-depth problem (``_core.conv2d_space_to_depth_params``:
    the input's stride_h x stride_w phases stacked as channels, stride 1, the kernel split likewise
    into ceil(R / stride_h) x ceil(S / stride_w) taps), run by the kernel ``select_algorithm`` picks
    for that problem: Winograd or the FFT where they pay (AlexNet's 11x11 stride 4 becomes 3x3 over
    48 channels; DeepSpeech2's 21x11 stride 2x1 becomes 11x11 at stride 1). The output and
    grad_output are the same arrays; csrc/conv/conv2d_phases.cpp has the layout."""
    sub = _core.conv2d_space_to_depth_params(p)
    sub_x, sub_w = (sub.N, sub.C, sub.H, sub.W), (sub.K, sub.C // sub.groups, sub.R, sub.S)
    if pass_ == "forward":
        xs, ws = _new(sub_x), _new(sub_w)
        _core.conv2d_space_to_depth("split_input", p, x, xs)
        _core.conv2d_space_to_depth("split_weight", p, weight, ws)
        _run_auto(pass_, sub, xs, ws, None, bias, out)
    elif pass_ == "input":
        ws, dxs = _new(sub_w), _new(sub_x)
        _core.conv2d_space_to_depth("split_weight", p, weight, ws)
        _run_auto(pass_, sub, None, ws, grad_output, None, dxs)
        _core.conv2d_space_to_depth("merge_input", p, dxs, out)
    else:
        xs, dws = _new(sub_x), _new(sub_w)
        _core.conv2d_space_to_depth("split_input", p, x, xs)
        _run_auto(pass_, sub, xs, None, grad_output, None, dws)
        _core.conv2d_space_to_depth("merge_weight", p, dws, out)


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
    "direct": Algorithm("direct", _any, devices=("cpu", "cuda"),
                        doc="register-tiled six-deep loop; best for few channels (LeNet)"),
    "im2col": Algorithm("im2col", _any, devices=("cpu", "cuda"),
                        doc="unfold + GEMM (no unfold for 1x1 stride 1); best for many channels"),
    "implicit_gemm": Algorithm("implicit_gemm", _any,
                               doc="GEMM tiles of 16 channels x 6 pixels (forward, input gradient) or taps (weight) "
                                   "read in place from the padded input: no unfold, strides cost nothing; the "
                                   "input gradient runs dx's stride phases as stride-1 problems"),
    "fft": Algorithm("fft", _fft_check, bound=1e-4, tile_transform=True,
                     doc="tiled real 2-D FFT + per-frequency complex GEMM; best for large kernels"),
    "winograd": Algorithm(
        "winograd", _winograd_check, bound=5e-4,
        doc="F(2x2,3x3) or F(4x4,3x3), whichever _winograd_variant picks", pick=_winograd_variant,
        kernels=("winograd_f2", "winograd_f4"),
    ),
    "winograd_f2": Algorithm(
        "winograd_f2", _winograd_check, tile_transform=True,
        doc="Winograd F(2x2,3x3): 2.25x fewer multiplications, error ~1e-7"),
    "winograd_f4": Algorithm(
        "winograd_f4", _winograd_check, bound=5e-4, tile_transform=True,
        doc="Winograd F(4x4,3x3): 4x fewer multiplications, error ~3e-6"),
    # The F(2, 2) transforms only add and subtract, but the products are of sums of inputs, so the
    # error is relative to those, not to the output: 1.8e-5 with one channel and one output.
    "winograd_s2": Algorithm(
        "winograd_s2", _winograd_s2_check, passes=("forward", "input"), bound=1e-4, tile_transform=True,
        doc="3x3 stride 2 by tap parity: 2x2, 2x1, 1x2 and 1x1 kernels over the input's parity phases, "
            "the 2-tap axes by Winograd F(2,2): 25 multiplications per 2x2 output tile against 36 (the "
            "input gradient: per 4x4 block of dx)"),
    "gemm": Algorithm("gemm", _whole_batch_check, run=_whole_batch_gemm,
                      doc="1x1 kernel on 1x1 maps: one GEMM over the whole batch"),
    "depthwise": Algorithm("depthwise", _depthwise_check,
                           doc="groups == C (MobileNet, ConvNeXt): one packed plane per channel, 8 outputs a vector"),
    # bound and tile_transform: those of the transforms it is picked to run
    "dilated_phases": Algorithm("dilated_phases", _phases_check, run=_dilated_phases, bound=5e-4, tile_transform=True,
                                doc="stride-1 dilated kernel as an undilated one over the input's dilation x "
                                    "dilation phase sub-images, run by auto's pick for that (Winograd, FFT)"),
    "space_to_depth": Algorithm("space_to_depth", _space_to_depth_check, run=_space_to_depth, bound=5e-4,
                                tile_transform=True,
                                doc="strided kernel as a stride-1 one over the input's stride x stride phases "
                                    "stacked as channels, run by auto's pick for that (Winograd, FFT)"),
}


def check_pass(pass_: str) -> str:
    """``pass_`` if it names a pass, else ValueError."""
    if pass_ not in PASSES:
        raise ValueError(f"pass_: expected one of {PASSES}, got {pass_!r}")
    return pass_


def check_device(device: str) -> str:
    """``device`` if it names a backend, else ValueError."""
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    return device


def error_bound(name: str) -> float:
    """The relative error bound of algorithm ``name`` (or of a compiled kernel of that name)."""
    return ALGORITHMS[name].bound


_compiled_kernels: dict | None = None


def _compiled() -> dict:
    """The build's compiled kernel table (fixed for the process: read once)."""
    global _compiled_kernels
    if _compiled_kernels is None:
        _compiled_kernels = _core.conv2d_kernels()
    return _compiled_kernels


def _why_not(name: str, params, pass_: str, device: str) -> str | None:
    """None if algorithm ``name`` can run this pass of this problem on ``device``, else why not."""
    algo = ALGORITHMS[name]
    compiled = _compiled() if device == "cpu" else {}
    kernels = algo.kernels or (name,)
    if device not in algo.devices:
        return f"has no {device} kernel"
    if device == "cpu" and algo.run is None and any(k not in compiled for k in kernels):
        return "not compiled into this build"
    if pass_ not in algo.passes or (device == "cpu" and algo.run is None
                                    and not all(compiled[k][PASSES.index(pass_)] for k in kernels)):
        return f"has no {pass_} pass"
    return algo.check(params)


def available(params, pass_: str, device: str = "cpu") -> dict[str, str | None]:
    """Every registered algorithm -> None if it can run this pass of this problem on ``device``,
    else why not."""
    return {name: _why_not(name, params, pass_, device) for name in ALGORITHMS}


def tunable(params, pass_: str) -> list[str]:
    """The distinct CPU kernels the autotuner races for one pass (family names such as "winograd"
    are left out: their kernels are raced under their own names)."""
    return [name for name, why in available(params, pass_).items() if why is None and not ALGORITHMS[name].pick]


def kernel_for(params, algo, pass_: str, device: str = "cpu") -> str:
    """The kernel that runs ``algo`` ("auto": ``select_algorithm``'s pick, or a registered name,
    checked to apply) for this pass of this problem on ``device``. TypeError/ValueError naming
    ``algo`` otherwise."""
    if not isinstance(algo, str):
        raise TypeError(f"algo: expected a string, got {type(algo).__name__}")
    if algo == "auto":
        return ALGORITHMS[select_algorithm(params, pass_, device)].kernel(params)
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: unknown algorithm {algo!r}; expected 'auto' or one of {sorted(ALGORITHMS)}")
    why = _why_not(algo, params, pass_, device)  # only the requested one: an explicit call pays ~1 us, not ~10
    if why is not None:
        on = "" if device == "cpu" else f" on {device}"
        raise ValueError(f"algo: {algo!r} cannot run this convolution ({pass_} pass{on}): {why}")
    return ALGORITHMS[algo].kernel(params)


def _pointwise(p) -> bool:
    return (p.R, p.S, p.stride_h, p.stride_w, p.pad_h, p.pad_w) == (1, 1, 1, 1, 0, 0)


_modelled_picks: dict[tuple, str | None] = {}


def _modelled_forward(p, pass_: str = "forward") -> str | None:
    """The forward kernel the cost model finds cheapest among those that can run ``p`` and were
    calibrated on problems this large (None: below every kernel's calibrated range; the rules
    below decide); ``pass_="input"`` when ``p`` is a stride-1 input gradient's transposed problem.
    Cached per problem, pass and thread count: the model reads the FFT's tiling."""
    key = (p.N, p.C, p.H, p.W, p.K, p.R, p.S, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h, p.dil_w,
           p.groups, pass_, _core.get_num_threads())
    if key not in _modelled_picks:
        names = [n for n, why in available(p, "forward").items()
                 if why is None and not ALGORITHMS[n].pick and ALGORITHMS[n].run is None]
        _modelled_picks[key] = cheapest(p, names, pass_)
    return _modelled_picks[key]


def _transposed(p):
    """The stride-1 forward problem a stride-1 input gradient is: dy (N, K, P, Q) correlated with
    the flipped kernel, K -> C channels, padding R-1-pad (which must be >= 0)."""
    return _core.Conv2dParams(p.N, p.K, p.P, p.Q, p.C, p.R, p.S, 1, 1, p.R - 1 - p.pad_h, p.S - 1 - p.pad_w,
                              1, 1, p.groups)


def select_algorithm(params, pass_: str, device: str = "cpu") -> str:
    """The algorithm ``algo="auto"`` runs for one pass ("forward", "input", "weight") of a problem
    (a ``_core.Conv2dParams``) on ``device``. Rules are checked in order; each cites its measurement.

    CPU measurements (ours vs torch per shape, pass and algorithm, interleaved in the same run):
    [2t] benchmarks/results/2026-11-25_epyc2c_conv.md (2 threads, median) and
    [1t] benchmarks/results/2026-11-25_epyc2c_conv-1thread.md (1 thread, min: steadier while the
    machine was shared). Where the two disagree the rule follows the majority of all runs made and
    says so. Other helpers' algorithms get their branches above the direct/im2col fallbacks.
    """
    if pass_ not in PASSES or device != "cpu":  # the checks are calls: kept off the common path
        check_pass(pass_)
        if check_device(device) == "cuda":
            return _select_cuda(params)
    p = params
    cg, kg = p.C // p.groups, p.K // p.groups
    strided = p.stride_h > 1 or p.stride_w > 1
    # A 1x1 convolution of 1x1 maps (what the dead-tap crop leaves of a padded 3x3 layer on 1x1
    # maps: ResNet's last stage at 32x32 input) is one GEMM over the whole batch, not N of them.
    if p.R == p.S == 1 and p.N and _whole_batch_check(p) is None:  # R, S first: most problems fail there
        return "gemm"
    # Depthwise layers (groups == C == K: MobileNetV2/V3, EfficientNet, ConvNeXt) go to the depthwise
    # kernel in every pass: benchmarks/results/2026-12-04_epyc2c_depthwise.md (18 layers, 3x3, 5x5
    # and 7x7, stride 1 and 2, 7x7 to 112x112 maps, batch 1 and 16, 2 threads, block-alternating,
    # 3 runs; 6 layers held out of the fit). Faster than direct (the pick before) in 107 of 108
    # cases, median 1.85x at batch 1 and 1.69x at batch 16 (the exception: 72x56 5x5 stride-2
    # input gradient at batch 16, direct by ~10%, within the noise); against torch 0.28-0.79x
    # forward at batch 1, at most 0.97x for the gradients at batch 16. Dilated 3x3 (MobileNetV2
    # DeepLabv3's last blocks, dilation 2 and 4 on 33x33 and 65x65, benchmarks/layers_dilated.csv,
    # forward, batch 1 and 16): 0.63-0.87x direct's time. Only what was measured: kernels 3 to 7,
    # stride 1 or 2, multiplier 1.
    if cg == 1 and p.groups == p.K > 1 and 3 <= p.R <= 7 and 3 <= p.S <= 7 and p.stride_h <= 2 and p.stride_w <= 2:
        return "depthwise"
    # Stride-1 dilated kernels (DeepLab, dilated ResNets): their phase problem has no dilation, so
    # the transforms, which cannot take one, run it; picked when its own pick is a transform.
    # DeepLab's 3x3 dilation-4 layer over 512 channels on 28x28 at batch 1 (2 threads): 10.6-11.9
    # ms through F(4x4) on the 16 phase sub-images, where im2col and implicit_gemm take 20-24 ms on
    # the dilated kernel (torch 14.3-14.5); 16 held-out dilated layers at batch 1 and 8 in
    # benchmarks/results/2026-12-05_epyc2c_dilated_batch{1,8}.md (behind torch: ENet's 32-channel
    # layers with dilation 8-16, where every algorithm of ours is within 30% of the others).
    if (p.dil_h > 1 or p.dil_w > 1) and _phases_check(p) is None:
        inner = ALGORITHMS[select_algorithm(_core.conv2d_phase_params(p), pass_)]
        if any(ALGORITHMS[k].tile_transform for k in inner.kernels or (inner.name,)):
            return "dilated_phases"
    # Strided kernels whose space-to-depth problem (the input's stride phases as channels, stride 1,
    # ceil(R / s) x ceil(S / s) taps) is a 3x3 one that Winograd runs: AlexNet's 11x11 stride 4
    # (3x3 over 48 channels, 144 taps for 121), 6x6 stride 2 and 9x9 stride 3 (no tap wasted), 5x5
    # stride 2 and 10x10 stride 4 (36 taps for 25). Measured in every pass at batch 1, 4 and 16
    # (2 threads, alternating blocks; 6 layers fitted, 5 held out, benchmarks/results/
    # 2026-12-05_epyc2c_space_to_depth.md), time over the best of implicit_gemm and im2col:
    # - input gradient, 32-128 phase channels and >= 64 F(4x4) tiles: 0.28-0.93 on all 11 (alexnet_c1
    #   0.52-0.54); with 12 or 256 phase channels it lost (a 3-channel 5x5 stem's forward and weight
    #   1.7-2.8x, 5x5 stride 2 over 64 channels at batch 1-4 1.4-4.3x);
    # - forward and weight gradient also need >= 128 tiles and at most 1.2x the kernel's taps:
    #   0.62-0.96 where both hold (alexnet_c1 forward 0.70-0.81, weight 0.64-0.74); with 36 taps
    #   for 25 or 64 tiles it lost up to 1.25x (10x10 stride 4 on 128x128 at batch 1-4, 6x6
    #   stride 2 over 32 channels on 14x14 outputs at batch 4).
    # - with kernels of 121+ taps whose phase problem goes to the FFT (which cannot take a stride):
    #   DeepSpeech2's 41x11 stride 2 and 21x11 stride 2x1 over 1 and 32 channels 0.19-0.82 in every
    #   pass at batch 1 and 4 (ds2_conv2's forward 8.1 ms against implicit_gemm's 32.6); held out,
    #   11x41 stride 2 over 1 channel on 128x400 at batch 1 and 8, and 11x11 stride 2 over 16
    #   channels on 96x96 at batch 4 and 8: 0.12-0.68. With 48x48 outputs at batch 1 (2,304
    #   pixels) the latter went either way between runs (forward 0.84 and 1.51): from 4,096 output
    #   pixels only. ResNet's 7x7 stem (49 taps, its phase problem's forward also priced to the FFT)
    #   was not measured through the phases and stays out.
    if strided and p.dil_h == p.dil_w == 1:
        sub = _core.conv2d_space_to_depth_params(p)
        tiles, waste = _winograd_tiles(sub, 4), sub.R * sub.S * sub.C / (p.R * p.S * p.C)
        if 32 <= sub.C // sub.groups <= 128 and sub.R == sub.S == 3 and tiles >= 64 \
                and (pass_ == "input" or (tiles >= 128 and waste <= 1.2)) \
                and select_algorithm(sub, pass_) in ("winograd", *ALGORITHMS["winograd"].kernels):
            return "space_to_depth"
        if p.R * p.S >= 121 and p.N * p.P * p.Q >= 4096 and (sub.R, sub.S) != (3, 3) \
                and select_algorithm(sub, pass_) == "fft":
            return "space_to_depth"
    # A 1x1 stride-1 unpadded convolution is exactly one GEMM per image: im2col runs it without
    # an unfold, where implicit_gemm gathers the same panels (0.90x implicit_gemm's time by
    # geometric mean over 33 timings of 17 pointwise layers, batch 1 and 8,
    # benchmarks/results/2026-12-04_epyc2c_batch1*.json; resnet_1x1 [1t]: fwd 0.91 vs direct 2.19,
    # input 0.55 vs 1.21, weight 1.26 vs 3.52 x torch).
    if _pointwise(p):
        return "im2col"
    # Forward: the cheapest kernel by the cost model (_conv_cost: each kernel's FLOPs with its
    # transform saving and tile/lane waste, unfolded/transformed/streamed elements, per-call
    # overhead and thread share, at rates fitted by benchmarks/calibrate_cost.py). The fitted
    # thresholds it replaces misfired off the suite at batch 1 (issue #19: 5x5 with 512-832
    # channels on 7x7-14x14 went to the FFT at 0.15-0.28x torch); results in
    # benchmarks/results/2026-12-04_epyc2c_batch1.md (held-out layers reported apart).
    if pass_ == "forward":
        pick = _modelled_forward(p)
        if pick is not None:
            return pick
    # The input gradient of a stride-1 convolution is the forward convolution of dy with the
    # transposed, flipped kernel over dy padded by R-1-pad: implicit_gemm, the FFT and Winograd run
    # it as exactly that, so the forward cost model prices it on the transposed problem. Where it
    # picks implicit_gemm, that is the pick; where it picks Winograd, the family's variant rule
    # (measured on input gradients: F(2x2) where F(4x4)'s tiles would be mostly padding) picks the
    # tile; otherwise the rules below decide: direct's and im2col's input kernels are different
    # loops, and the model's FFT price misses on transposed LeNet layers (lenet_c2: FFT 2.03 ms
    # against direct's 1.42, 2 threads). Measured (1 thread, the stride-1 undilated layers of
    # benchmarks/layers_batch1.csv at batch 1 and 8, benchmarks/results/2026-12-05_epyc2c_input_grad.md):
    # time over the fastest of ours, geometric mean 1.02 at batch 1 and 1.04 at batch 8 against the
    # rules alone 1.16 and 1.05 (Inception's 5x5 layers at batch 1 went to the FFT at 1.2-3.5x
    # implicit_gemm's time).
    # The stride-2 Winograd's input gradient runs the forward's 25 products per channel pair, one
    # 4x4 block of dx per forward 2x2 tile: where the cost model prices the forward to it, it takes
    # the input gradient too, unless dx's blocks outnumber the forward's tiles by over 1.25x (an
    # unpadded odd map: Inception-v3's 17x17 -> 8x8 has 25 blocks per 16 tiles, and took 1.35x
    # im2col's time at batch 16). 2 threads, benchmarks/results/2026-12-05_epyc2c_winograd_s2_layers.md
    # (13 layers, batch 1 and 16): where it was picked, within 5% of our fastest but on two batch-1
    # rows of 3-round noise; suite stride2 at batch 8: 3.8-4.2 ms against implicit_gemm's 5.0 and
    # torch's 5.1-5.3.
    if pass_ == "input" and _winograd_s2_check(p) is None and _modelled_forward(p) == "winograd_s2" \
            and -(-p.H // 4) * -(-p.W // 4) <= 1.25 * -(-p.P // 2) * -(-p.Q // 2):
        return "winograd_s2"
    if pass_ == "input" and not strided and p.dil_h == p.dil_w == 1 and p.pad_h < p.R and p.pad_w < p.S:
        pick = _modelled_forward(_transposed(p), "input")
        if pick == "implicit_gemm":
            return pick
        if pick in ALGORITHMS["winograd"].kernels:
            return "winograd"
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
        # implicit_gemm (im2col's GEMM without the column buffer) is not picked: on the 3x3 stride-2
        # layers with 64-256 channels it took 0.90-0.94x im2col's time on 1 thread (CPU time, 6
        # rounds), but on 2 threads (wall clock, quiet machine, 5 rounds) 0.85-1.02x at batch 8 and
        # 1.00-1.16x at batch 1, geometric mean 1.00 (benchmarks/results/2026-12-04_epyc2c_implicit_gemm.md).
        # The autotuner races it. 1x1 stride-2 projections: implicit 1.15-1.28x im2col.
        # implicit_gemm v2 (output channels as vectors, pixels broadcast in place;
        # benchmarks/results/2026-12-04_epyc2c_implicit_gemm_v2.md, 2 threads, batch 1 and 8-16):
        # strided layers with up to 64 input channels per group: alexnet_c1 1.33-1.39x torch
        # against direct's 1.61-1.64x, DeepSpeech2's 5x20 1.08x / 0.35x (batch 1 / 16) against
        # 1.29x / 0.38x, ResNet 3x3 stride 2 64->128 1.16x / 1.27x against im2col's 1.35x / 1.36x,
        # 1x1 stride 2 64->128 0.59x / 0.88x against 0.85x / 0.96x; ResNet's stem 1.72x vs direct's
        # 1.66x at batch 1 (a tie within the noise), 0.49x vs 0.62x at batch 16. With 128+ channels
        # (stride2, 256->512) im2col stays ahead. lenet_c2 (stride 1) went both ways between runs
        # (0.74-1.92 ms against direct's 0.71-1.97): direct stays.
        if strided and cg <= 64 and kg >= 16 and p.dil_h == p.dil_w == 1:
            return "implicit_gemm"
        if strided and cg >= 64:
            return "im2col"
        # lenet_c1, lenet_c2, alexnet_c1 ([1t] 0.42, 0.95, 0.89 against im2col's 0.85, 6.89, 1.33;
        # resnet_3x3 without Winograd 1.50 vs 1.61): the register-tiled direct loop wins.
        return "direct"
    if pass_ == "input":
        # implicit_gemm runs a strided layer's input gradient as its stride phases, each a stride-1
        # problem with its own taps (no col2im). 2026-12-05_epyc2c_input_grad.md (1 thread, batch 1
        # and 8): 3x3 stride 2 with 64-128 input channels 0.78-0.93x im2col's time (ResNet-18
        # layer2/3 downsampling, the suite's stride2), DeepSpeech2's 21x11 stride 2x1 over 32
        # channels 0.90x / 0.64x the previous pick; with 256-288 channels 1.05-1.41x, and with a
        # 1x1 kernel (three of four phases empty) 1.09-1.32x; few channels (stems) 3-10x: im2col.
        # On 2 threads it loses below 4 images (ResNet-18 layer2/3 downsampling at batch 1-2:
        # 1.08-1.21x im2col's time; batch 4 0.93x, batch 8 0.87-0.89x).
        if strided and p.N >= 4 and p.dil_h == p.dil_w == 1 and p.R * p.S > 1 and 32 <= cg <= 128:
            return "implicit_gemm"
        # alexnet_c1 ([1t] im2col 0.32 vs direct 0.60), stride2 (1.06 vs 1.06): strided layers; with
        # 64+ output channels W^T @ dY is a well-shaped GEMM. Few channels at stride 1 (lenet_c1,
        # lenet_c2: [1t] direct 0.01 and 0.40 against im2col's 0.02 and 1.77): direct.
        if strided or kg >= 64:
            return "im2col"
        return "direct"
    # Winograd weight gradient (benchmarks/results/2026-12-04_epyc2c_winograd_weight.md, 2 threads,
    # block-alternating against torch): vgg_3x3 F(4x4) 0.50x torch (fft 0.81, im2col 1.08), resnet_3x3
    # 0.50x (im2col 1.05); held-out ResNet/VGG 3x3 layers (64-512 channels, 56x56 to 7x7, batch 1,
    # 16, 32) 0.44-0.63x torch with the family's variant (F(2x2) on 256 channels 14x14 batch 1: 0.57
    # against F(4x4) 0.76), where the previous picks took 0.88-1.92x. The one loss is _winograd_choice's
    # im2col case (512 channels on 7x7 at batch 1: im2col 0.50x, F(2x2) 0.62x, F(4x4) 1.78x). Small
    # images at batch 32 (4x4 to 32x32): F(4x4) fastest from 32+16 channels (1.1-3.1x faster than the
    # previous pick); with at most 16 channels on both sides direct stays ahead (by 2-7%), and at 128+16
    # channels on 32x32 the two tie.
    if _winograd_check(p) is None and min(cg, kg) >= 16 and max(cg, kg) >= 32:
        choice = _winograd_choice(p)
        if choice is not None:
            return choice
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
    # implicit_gemm v2 (2026-12-04_epyc2c_implicit_gemm_v2.md, 2 threads): weight gradients of
    # strided or few-channel layers whose per-image reduction (P*Q) is long. alexnet_c1 1.16x /
    # 1.23x torch (batch 1 / 8) against direct's 3.7x / 2.0x; ResNet's stem 1.12x / 0.61x against
    # 3.2x / 0.90x; DeepSpeech2 0.23x / 0.32x against 1.03x / 0.67x; lenet_c2 0.49x against
    # direct's 0.59-0.64x; 3x3 and 1x1 stride 2 64->128 on 56x56: 1.02x / 1.07x and 0.61x / 0.69x
    # against im2col's 1.12x / 1.20x and 0.60x / 1.03x. Short reductions with many taps and
    # outputs stay with im2col (256->512 on 14x14, 49 pixels: implicit 2.0x torch at batch 1,
    # im2col 0.56x). Since its per-thread sums are added and transposed into dW in vector blocks
    # (they were walked a column at a time; stride2 weight 4.4-4.7 ms against 4.9-5.6 on 2 threads),
    # it also leads on strided layers with 32-512 input channels once a reduction (N*P*Q) reaches 98
    # (2 threads, batch 1-16, 2026-12-05_epyc2c_strided_weight_implicit.md): time over im2col's
    # 0.73-0.99 on ResNet-18's 3x3 downsampling and the suite's stride2 (256->512 on 7x7 outputs at
    # batch 1, 49 pixels: 1.16), 0.95-1.03 on Inception-v3 6a (288 channels), 0.76-0.93 on held-out
    # 5x5 64->128 and 3x3 32->64 and 160->192, 0.77-1.06 on 3x3 512->512 from batch 2 (1.45 at batch
    # 1, 49 pixels); 1x1 stride-2 projections only up to 128 channels (0.86-1.00; 256->512 on 28x28
    # outputs 0.98-1.11, 1024->2048 1.26-1.99).
    if p.dil_h == p.dil_w == 1 and kg >= 16 and (
            (strided and (cg < 32 or (p.N * p.P * p.Q >= 98 and (cg <= 128 or (p.R * p.S > 1 and cg <= 512)))))
            or (not strided and cg < 8 and p.R * p.S >= 25)):
        return "implicit_gemm"
    # weight gradient: with 32+ input channels per group the GEMM wins (vgg_3x3 [1t] im2col 1.33 vs
    # direct 2.16, resnet_3x3 1.50 vs 2.25, stride2 1.39 vs 1.93): direct's 8-wide partial sums no
    # longer fit in L1. Few channels (lenet_c1 [1t] direct 0.40 vs 6.06, lenet_c2 0.27 vs 1.30,
    # alexnet_c1 1.85 vs 1.85): direct.
    if cg >= 32:
        return "im2col"
    return "direct"


def _select_cuda(p) -> str:
    """The GPU rule. Provisional, not yet measured on a GPU: the direct kernel when a 128 x 128
    SGEMM tile would be mostly empty (few output channels per group, e.g. LeNet's K = 6 and 16, or
    a tiny C/groups*R*S, e.g. depthwise), im2col + SGEMM otherwise. The same rule serves all passes."""
    if p.K // p.groups < 32 or (p.C // p.groups) * p.R * p.S < 16:
        return "direct"
    return "im2col"


def selection_table(problems, device: str = "cpu") -> list[dict]:
    """What ``select_algorithm`` picks for each problem and pass, as rows for a report: ``problems``
    is an iterable of (name, ``_core.Conv2dParams``). Each row: name, dims, and one entry per pass
    (the kernel that runs; a family such as "winograd" shows its variant)."""
    rows = []
    for name, p in problems:
        row = {"name": name, "dims": (f"N{p.N} C{p.C} {p.H}x{p.W} K{p.K} {p.R}x{p.S} s{p.stride_h},{p.stride_w} "
                                      f"p{p.pad_h},{p.pad_w} d{p.dil_h},{p.dil_w} g{p.groups}")}
        for pass_ in PASSES:
            pick = select_algorithm(p, pass_, device)
            row[pass_] = ALGORITHMS[pick].kernel(p) if device == "cpu" else pick
        rows.append(row)
    return rows
