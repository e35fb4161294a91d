"""The measured FP32 peak of this machine (the ceiling for every GFLOP/s figure we report)."""

from __future__ import annotations

from .. import _core
from .._validation import require_int


def peak_gflops(threads: int | None = None, iterations: int = 20_000_000, repeats: int = 5) -> float:
    """GFLOP/s of a loop of independent 8-wide FMA chains (AVX2/FMA; the portable path measures its
    own multiply-add loop) on ``threads`` threads (default: fastconv.get_num_threads()), best of
    ``repeats`` runs of ``iterations`` steps per thread. 20M steps take about 40 ms per repeat."""
    iterations = require_int(iterations, "iterations", minimum=1)
    repeats = require_int(repeats, "repeats", minimum=1)
    if threads is None:
        return _core.fma_peak_gflops(iterations, repeats)
    threads = require_int(threads, "threads", minimum=1)
    saved = _core.get_num_threads()
    _core.set_num_threads(threads)
    try:
        return _core.fma_peak_gflops(iterations, repeats)
    finally:
        _core.set_num_threads(saved)
