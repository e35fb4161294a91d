"""Command line: python -m fastconv {info,demo} (see --help)."""

from __future__ import annotations

import argparse
import sys


def _cmd_info(args) -> int:
    import fastconv

    for key, value in fastconv.info().items():
        print(f"{key:>14}: {value}")
    return 0


def _cmd_demo(args) -> int:
    """Multiply two random matrices with fastconv.gemm and numpy; show agreement and speed."""
    import time

    import numpy as np

    import fastconv

    rng = np.random.default_rng(0)
    n = args.size
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)

    def best_of(f, repeat=5):
        f()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    ours = fastconv.gemm(a, b)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    t_ours = best_of(lambda: fastconv.gemm(a, b))
    t_np = best_of(lambda: a @ b)
    gflop = 2 * n**3 / 1e9
    print(f"gemm {n}x{n}x{n} on {fastconv.get_num_threads()} threads, max relative error vs float64 {err:.1e}")
    print(f"  fastconv.gemm {gflop / t_ours:8.1f} GFLOP/s  ({t_ours * 1e3:.2f} ms)")
    print(f"  numpy matmul  {gflop / t_np:8.1f} GFLOP/s  ({t_np * 1e3:.2f} ms)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, compiler, threads, CPU path, CUDA devices").set_defaults(func=_cmd_info)
    demo = sub.add_parser("demo", help="a GEMM against numpy")
    demo.add_argument("--size", type=int, default=1024)
    demo.set_defaults(func=_cmd_demo)
    from ._viz_cli import add_parser as add_viz_parser  # viz filters|activations|edges

    add_viz_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
