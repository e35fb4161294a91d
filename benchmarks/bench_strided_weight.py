"""Weight gradient of the strided large-kernel first layers (AlexNet's and NiN's 11x11 stride 4,
ResNet's and DenseNet's 7x7 stride 2, at full size and in the small Fashion-MNIST versions):
direct and im2col against torch, and what ``auto`` picks.

Best of 5 repeats of 3 calls after one warm-up call, at --threads threads.

    python3 benchmarks/bench_strided_weight.py --threads 2

Writes benchmarks/results/<date>_<machine>_strided_weight.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

import numpy as np

import fastconv
from fastconv import conv as conv_mod
from fastconv.bench.sweep import time_against_auto, write_sweep

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# (x shape, w shape, stride, padding, what it is)
SHAPES = [
    ((8, 3, 224, 224), (64, 3, 11, 11), 4, 2, "alexnet_c1 (suite)"),
    ((8, 1, 224, 224), (96, 1, 11, 11), 4, 0, "NiN, full width, 224 px"),
    ((64, 1, 160, 160), (24, 1, 11, 11), 4, 0, "NiN small (0.25, 160 px)"),
    ((256, 1, 67, 67), (24, 1, 11, 11), 4, 1, "AlexNet small (0.25, 67 px)"),
    ((256, 1, 32, 32), (16, 1, 7, 7), 2, 3, "ResNet-18 small stem (0.25, 32 px)"),
    ((256, 1, 32, 32), (32, 1, 7, 7), 2, 3, "DenseNet small stem (0.5, 32 px)"),
    ((8, 3, 224, 224), (64, 3, 7, 7), 2, 3, "ResNet stem, full size"),
    ((32, 3, 96, 96), (64, 3, 7, 7), 2, 3, "ResNet stem at d2l's 96 px"),
]
ALGOS = ("direct", "im2col")


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = ["| layer | x | K, kernel, stride | direct ms | im2col ms | fastest | auto picks | auto / fastest "
            "| torch ms | auto / torch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for x_shape, w_shape, stride, pad, what in SHAPES:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        params = conv_mod.conv_plan(x_shape, w_shape, stride, pad, 1, 1).params
        dy = rng.standard_normal((params.N, params.K, params.P, params.Q), dtype=np.float32)
        calls = {algo: (lambda algo=algo: fastconv.grad.conv2d_weight(x, w_shape, dy, stride, pad, algo=algo))
                 for algo in ALGOS}
        pick = conv_mod.select_algorithm(params, "weight")
        cells, _, ms = time_against_auto(calls, pick, number=3)
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)

        def ref():
            torch.nn.grad.conv2d_weight(tx, w_shape, tdy, stride, pad)
        ref()
        t_ref = min(timeit.repeat(ref, number=3, repeat=5)) / 3 * 1e3
        rows.append(f"| {what} | {x_shape} | {w_shape[0]}, {w_shape[2]}x{w_shape[3]}, {stride} | {cells} "
                    f"{t_ref:.2f} | {ms[pick] / t_ref:.2f} |")
        print(rows[-1], flush=True)
    write_sweep("strided_weight", "Weight gradient of strided first layers: direct, im2col, torch",
                [f"threads: {args.threads}; best of 5 x 3 calls after a warm-up call",
                 f"command: `python3 benchmarks/bench_strided_weight.py --threads {args.threads}`",
                 f"torch {torch.__version__}"],
                rows, args.out, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
