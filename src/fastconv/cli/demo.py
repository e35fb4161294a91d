"""`python -m fastconv demo [--size N]`: an N x N GEMM with fastconv.gemm and numpy, their agreement
and speed."""

from __future__ import annotations

import time

from ._common import at_least


def add_parser(subparsers) -> None:
    """Register the `demo` command on the CLI's subparsers."""
    p = subparsers.add_parser("demo", help="a GEMM against numpy")
    p.add_argument("--size", type=at_least(1), default=1024)
    p.set_defaults(func=_cmd_demo, parser=p)


def _best_of(f, repeat=5) -> float:
    """The median time of `repeat` calls of f, after one warm-up call."""
    f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _cmd_demo(args) -> int:
    """Multiply two random matrices with fastconv.gemm and numpy; show agreement and speed."""
    import numpy as np

    from ..gemm import gemm
    from ..runtime import get_num_threads

    rng = np.random.default_rng(0)
    n = args.size
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ours = gemm(a, b)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    t_ours = _best_of(lambda: gemm(a, b))
    t_np = _best_of(lambda: a @ b)
    gflop = 2 * n**3 / 1e9
    print(f"gemm {n}x{n}x{n} on {get_num_threads()} threads, max relative error vs float64 {err:.1e}")
    print(f"  fastconv.gemm {gflop / t_ours:8.1f} GFLOP/s  ({t_ours * 1e3:.2f} ms)")
    print(f"  numpy matmul  {gflop / t_np:8.1f} GFLOP/s  ({t_np * 1e3:.2f} ms)")
    return 0
