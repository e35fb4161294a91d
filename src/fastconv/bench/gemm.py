"""GEMM section: fastconv.gemm against numpy's matmul (its BLAS) in the same run, square and
convolution-shaped (im2col) problems."""

from __future__ import annotations

import numpy as np

from .._error_bounds import gemm_bound
from ..gemm import gemm
from . import reference as ref
from .measure import Row, time_interleaved

SIZES = [(256, 256, 256), (1024, 1024, 1024), (64, 3136, 576), (6, 200704, 25)]  # (M, N, K)
QUICK_SIZES = [(256, 256, 256), (64, 3136, 576)]


def bench_gemm(repeat: int, warmup: int, peak: float, quick: bool = False, log=None) -> list[Row]:
    """Check each size against float64 on its first rows, then time ours and numpy interleaved."""
    rng = np.random.default_rng(0)
    rows = []
    for M, N, K in QUICK_SIZES if quick else SIZES:
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((K, N), dtype=np.float32)
        flops = 2.0 * M * N * K
        row = Row(section="gemm", name=f"gemm_{M}x{N}x{K}", dims=f"{M},{N},{K}", pass_="forward", algo="gemm",
                  picked="gemm", flops=flops, bytes=4 * (M * K + K * N + M * N))
        rows_checked = min(M, 8)
        row.error = ref.relative_error(gemm(a[:rows_checked], b), a[:rows_checked].astype(np.float64) @ b)
        if not row.error <= gemm_bound(K):
            row.status, row.note = "WRONG", f"relative error {row.error:.1e} > {gemm_bound(K):.0e}: not timed"
        else:
            res = time_interleaved({"ours": lambda: gemm(a, b), "numpy": lambda: a @ b}, repeat, warmup,
                                   block=3, settle=0.15)
            med, lo, hi = res["ours"]
            row.ms, row.ms_min, row.ms_max = med * 1e3, lo * 1e3, hi * 1e3
            row.gflops = flops / med / 1e9
            row.pct_peak = 100 * row.gflops / peak if peak else None
            row.refs = {"numpy": res["numpy"][0] * 1e3}
        rows.append(row)
        if log:
            log(row)
    return rows
