"""A cost model of the CPU convolution algorithms' forward pass: an estimated time per algorithm for
one problem, so that ``select_algorithm`` picks the cheapest instead of following thresholds
fitted to one suite.

Each algorithm has one small function ``params -> features``: the work its kernel actually does,
counted the way the kernel does it (useful FLOPs with each transform's saving and its tile or
vector-lane waste, the elements it unfolds, transforms or streams, the work items its threads
share). Its estimated time is the dot product of those features with the algorithm's constants
(seconds per unit: a per-call overhead, inverse machine rates), which
benchmarks/calibrate_cost.py measures and fits (non-negative least squares on relative error) and
stores in ``_conv_cost_rates.RATES`` with the date and file they came from. A new kernel adds one
feature function to ``FEATURES`` and its constants from a calibration run.

This module imports only ``_core`` (the FFT's tiling, the thread count) and the rates.
"""

from __future__ import annotations

import math

from . import _core
from ._conv_cost_rates import MIN_FLOPS, RATES

#: AVX2 vector width in floats, and the SGEMM micro-tile (csrc/gemm/sgemm_avx2_kernel.h: MR x NR).
_LANES, _GEMM_MR, _GEMM_NR = 8, 6, 16


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _ceil(a, b) * b


def _thread_share(items: int, threads: int) -> float:
    """How much longer than a perfect split the busiest of ``threads`` threads works when ``items``
    equal work items are shared statically: 1.0 when they divide evenly, 2.0 for one item on 2."""
    if items <= 0:
        return 1.0
    return _ceil(items, threads) * threads / items


def _gemm_flops(m: int, n: int, k: int) -> float:
    """FLOPs of an (m x k) @ (k x n) product as the micro-kernel executes them: m padded to MR rows,
    n to NR columns (the waste of a small or ragged product)."""
    return 2.0 * _round_up(m, _GEMM_MR) * _round_up(n, _GEMM_NR) * k


def _direct(p, threads: int, pass_: str = "forward") -> tuple[float, ...]:
    """Register-tiled loop vectorised over 8 output columns (Q padded to the lane width); the
    image is repacked per work item (image x group x chunk of output-channel blocks) and the
    weights once per call on one thread; strided layers read every stride-th column. Work items
    at batch 1: about 4 per thread."""
    cg, kg, pq = p.C // p.groups, p.K // p.groups, p.P * _round_up(p.Q, _LANES)
    flops = 2.0 * p.N * p.groups * kg * cg * p.R * p.S * pq
    items = p.N * p.groups * min(_ceil(kg, 6), _ceil(4 * threads, max(1, p.N * p.groups)))
    share = _thread_share(items, threads)
    strided = 1.0 if p.stride_h > 1 or p.stride_w > 1 else 0.0
    packed = float(items) * cg * p.H * p.W
    return 1.0, flops * share, flops * share * strided, packed, float(p.K) * cg * p.R * p.S


def _im2col(p, threads: int, pass_: str = "forward") -> tuple[float, ...]:
    """Unfold (skipped for 1x1 stride 1, no padding) then one GEMM per image and group:
    (K/g x C/g R S) @ (C/g R S x P Q), each split over the threads by the SGEMM. With a short
    reduction (a 3-channel stem: C R S = 27) the micro-tiles' loads and stores of the output, not
    the FMAs, set the time: the last feature counts the output elements."""
    cg, kg, crs, pq = p.C // p.groups, p.K // p.groups, (p.C // p.groups) * p.R * p.S, p.P * p.Q
    pointwise = (p.R, p.S, p.stride_h, p.stride_w, p.pad_h, p.pad_w) == (1, 1, 1, 1, 0, 0)
    unfolded = 0.0 if pointwise else float(p.N * p.groups * crs * pq)
    products = p.N * p.groups
    flops = products * _gemm_flops(kg, pq, crs)
    packed = products * float(kg * crs + crs * pq)
    return 1.0, unfolded, flops, packed, products * float(cg + kg), float(p.N * p.K * pq)


def _implicit_gemm(p, threads: int, pass_: str = "forward") -> tuple[float, ...]:
    """Output channels are the vector operand (K/g padded to the 16-wide panel) and output pixels
    the broadcast one (P Q padded to the 6-row tile), read in place from a zero-padded copy of the
    input: no unfold, so a stride costs nothing extra. Per call the weights are packed into panels
    and every output is written back transposed into NCHW. The threads share work items as the
    kernel's own plan (``_core.implicit_gemm_forward_plan``: pixel blocks per image and group, split
    into panel ranges when there are under 4 per thread) shares them: the FLOPs are scaled by the
    busiest thread's share, and by the share of the reduction its tiles run (where enough kernel
    rows read only padding, the forward's tiles skip them: the plan's ``row_steps``; the input
    gradient, priced as its transposed problem with ``pass_="input"``, runs every row). Each
    16-wide panel of output channels reads the input rows again (the last feature)."""
    kg, crs, pq = p.K // p.groups, (p.C // p.groups) * p.R * p.S, p.P * p.Q
    products = p.N * p.groups
    flops = products * 2.0 * _round_up(pq, 6) * _round_up(kg, 16) * crs
    plan = _core.implicit_gemm_forward_plan(p, p.N, threads)
    share = plan["busiest"] * threads / plan["total"] if plan["total"] else 1.0
    if pass_ == "forward":
        share *= plan["row_steps"]
    padded = float(p.N * p.C * (p.H + 2 * p.pad_h) * (p.W + 2 * p.pad_w)) if p.pad_h or p.pad_w else 0.0
    return (1.0, padded, flops * share, float(p.groups * _round_up(kg, 16) * crs), float(p.N * p.K * pq),
            float(p.N * p.C * p.H * p.W * _ceil(kg, 16)))


def _winograd(m: int, positions: int = 0):
    """F(m x m, 3x3): (m+2)^2 products of (K x C) @ (C x tiles) on transformed tiles; input and
    output transforms per tile and channel; the transformed kernel (cached per weight content) is
    streamed once per call, which dominates when there are few tiles (late stages at batch 1).
    ``positions``: another count of products per tile on the same machinery (the stride-2 Winograd,
    csrc/conv/winograd.h: 25 for a 2x2 output tile)."""
    a = positions or (m + 2) ** 2

    def features(p, threads: int, pass_: str = "forward") -> tuple[float, ...]:
        tiles = p.N * _ceil(p.P, m) * _ceil(p.Q, m)
        gemm = a * _gemm_flops(p.K, tiles, p.C)
        share = _thread_share(tiles, threads)
        return 1.0, float(tiles) * (p.C + p.K) * a * share, gemm, float(a) * p.K * p.C

    return features


def _fft(p, threads: int, pass_: str = "forward") -> tuple[float, ...]:
    """Overlap-save tiles as the kernel chooses them (``_core.fft_conv_tiling``), 8 tiles per vector
    (a batch-1 layer with 1-4 tiles wastes most lanes): per group of 8 tiles (C + K) real 2-D
    transforms and T1 (T2/2 + 1) C K complex multiply-adds; the kernel's C K spectra are computed
    on every call (at batch 1 they can outweigh the convolution); each tile's channels are
    gathered and scattered point by point (with a 1x1 or small kernel the tiles are tiny and
    this, not the arithmetic, is the cost)."""
    t = _core.fft_conv_tiling(p, "forward")
    T1, T2 = t["T1"], t["T2"]
    lanes = _round_up(p.N * t["tiles_h"] * t["tiles_w"], _LANES)
    transform = T1 * T2 * max(1.0, math.log2(T1 * T2))
    freqs = T1 * (T2 // 2 + 1)
    share = _thread_share(lanes // _LANES, threads)
    return (1.0, lanes * (p.C + p.K) * transform * share, lanes * freqs * float(p.C) * p.K * share,
            _round_up(p.C * p.K, _LANES) * transform, float(freqs) * p.C * p.K,
            lanes * (p.C + p.K) * float(T1 * T2) * share)


#: algorithm name -> params, threads -> features (forward pass); a kernel without an entry has no
#: modelled cost and is never picked by the model.
FEATURES = {
    "direct": _direct,
    "im2col": _im2col,
    "implicit_gemm": _implicit_gemm,
    "winograd_f2": _winograd(2),
    "winograd_f4": _winograd(4),
    "winograd_s2": _winograd(2, positions=25),
    "fft": _fft,
}


#: Kernels priced with another kernel's constants until a calibration times them: the stride-2
#: Winograd runs F(2x2)'s transforms, blocking and GEMMs (its features count its 25 positions).
PRICED_AS = {"winograd_s2": "winograd_f2"}


def _constants(table: dict, name: str):
    return table.get(name, table.get(PRICED_AS.get(name, "")))


def estimated_seconds(name: str, params, threads: int | None = None, pass_: str = "forward") -> float | None:
    """The modelled time of kernel ``name`` on ``params`` (a forward problem; ``pass_="input"``: the
    transposed problem a stride-1 input gradient runs), or None when it has no model (no feature
    function or no calibrated constants)."""
    features, rates = FEATURES.get(name), _constants(RATES, name)
    if features is None or rates is None:
        return None
    f = features(params, threads or _core.get_num_threads(), pass_)
    return sum(c * v for c, v in zip(rates, f))


def cheapest(params, names, pass_: str = "forward") -> str | None:
    """The modelled fastest of the kernels ``names`` that were calibrated on problems at least this
    large (None when none was). Below a kernel's smallest calibration problem its fitted per-call
    terms would be extrapolated: a 4x4 filter on a 5x5 image went to the FFT, 1e-7 off where direct
    is exact, and LeNet's 5x5 layers at small batches to transforms calibrated from ~10 MFLOP up."""
    threads = _core.get_num_threads()
    names = [n for n in names if params.flops >= (_constants(MIN_FLOPS, n) or float("inf"))]
    costs = {n: estimated_seconds(n, params, threads, pass_) for n in names}
    costs = {n: c for n, c in costs.items() if c is not None}
    return min(costs, key=costs.get) if costs else None
