"""Pooling section: max/avg pooling forward and backward against torch (same process, same
threads, interleaved), in GB/s of the bytes each pass must move once."""

from __future__ import annotations

import numpy as np

from .. import grad
from ..pooling import avg_pool2d, max_pool2d
from .._error_bounds import POOL_BOUNDS
from . import reference as ref
from .measure import Row, optional_module, time_interleaved

SHAPES = [(256, 6, 28, 28), (8, 64, 112, 112)]  # LeNet's pooling input, a VGG/ResNet-size layer
QUICK_SHAPES = [(16, 6, 28, 28), (1, 16, 112, 112)]
WINDOWS = [(2, 2, 0), (3, 2, 1)]  # kernel, stride, padding
PASSES = ["max_fwd", "max_fwd_idx", "max_bwd", "avg_fwd", "avg_bwd"]


def make_case(shape, window, pass_, rng, torch=None):
    """(ours, torch's or None, bytes moved, expected(): float64 or torch result of the checked part)."""
    k, s, p = window
    x = rng.standard_normal(shape, dtype=np.float32)
    y, idx = max_pool2d(x, k, s, p, return_indices=True)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    nx, ny = x.size, y.size
    if torch is not None:
        F = torch.nn.functional
        tx, tdy, tidx = torch.from_numpy(x), torch.from_numpy(dy), torch.from_numpy(idx)
        kk, ss, pp = [k, k], [s, s], [p, p]
    if pass_ in ("max_fwd", "max_fwd_idx"):
        with_idx = pass_ == "max_fwd_idx"
        ours = lambda: max_pool2d(x, k, s, p, return_indices=with_idx)
        theirs = (lambda: F.max_pool2d(tx, k, s, p, return_indices=with_idx)) if torch else None
        nbytes = 4 * (nx + ny) + (8 * ny if with_idx else 0)
        expected = lambda: ref.max_pool2d(x[:1], k, s, p, y.shape[2:])
    elif pass_ == "max_bwd":
        ours = lambda: grad.max_pool2d(dy, idx, x.shape)
        theirs = (lambda: torch.ops.aten.max_pool2d_with_indices_backward(tdy, tx, kk, ss, pp, [1, 1], False, tidx)) if torch else None
        nbytes = 4 * (ny + nx) + 8 * ny
        expected = lambda: ref.max_pool2d_backward(dy[:1], idx[:1], (1,) + x.shape[1:])
    elif pass_ == "avg_fwd":
        ours = lambda: avg_pool2d(x, k, s, p)
        theirs = (lambda: F.avg_pool2d(tx, k, s, p)) if torch else None
        nbytes = 4 * (nx + ny)
        expected = lambda: ref.avg_pool2d(x[:1], k, s, p, y.shape[2:])
    elif pass_ == "avg_bwd":
        ours = lambda: grad.avg_pool2d(dy, x.shape, k, s, p)
        theirs = (lambda: torch.ops.aten.avg_pool2d_backward(tdy, tx, kk, ss, pp, False, True, None)) if torch else None
        nbytes = 4 * (ny + nx)
        expected = lambda: ref.avg_pool2d_backward(dy[:1], (1,) + x.shape[1:], k, s, p)
    else:
        raise ValueError(f"pass_: unknown pooling pass {pass_!r}")
    return ours, theirs, nbytes, expected


def bench_pool(repeat: int, warmup: int, compare, quick: bool = False, log=None) -> list[Row]:
    """Every pooling shape x window x pass: check against the float64 reference on the first image,
    then time ours and torch interleaved."""
    torch = optional_module("torch") if "torch" in compare else None
    rng = np.random.default_rng(0)
    rows = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        for window in WINDOWS:
            for pass_ in PASSES:
                ours, theirs, nbytes, expected = make_case(shape, window, pass_, rng, torch)
                row = Row(section="pool", name=f"pool{window[0]}x{window[0]}s{window[1]}p{window[2]}",
                          dims=",".join(map(str, shape)), pass_=pass_, algo="fastconv", picked="fastconv", bytes=nbytes)
                got = ours()
                got = got[0] if isinstance(got, tuple) else got
                row.error = ref.relative_error(got[:1], expected())
                bound = POOL_BOUNDS["input" if pass_.endswith("_bwd") else "forward"]
                if not row.error <= bound:
                    row.status, row.note = "WRONG", f"relative error {row.error:.1e} > {bound:.0e}: not timed"
                    rows.append(row)
                    continue
                res = time_interleaved({"ours": ours, **({"torch": theirs} if theirs else {})}, repeat, warmup)
                med, lo, hi = res["ours"]
                row.ms, row.ms_min, row.ms_max = med * 1e3, lo * 1e3, hi * 1e3
                row.gbps = nbytes / med / 1e9
                if "torch" in res:
                    row.refs = {"torch": res["torch"][0] * 1e3}
                rows.append(row)
                if log:
                    log(row)
    return rows
