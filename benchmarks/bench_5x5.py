"""5x5 stride-1 convolutions (NiN's, GoogLeNet's and AlexNet's second layers, LeNet's): direct,
im2col and FFT in all three passes, and what ``auto`` picks.

The measurements behind select_algorithm's 5x5 rule. Padding 2 (LeNet's conv2: 0), best of 5
repeats of 3 calls after one warm-up call, at --threads threads.

    python3 benchmarks/bench_5x5.py --threads 2

Writes benchmarks/results/<date>_<machine>_5x5.md.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import fastconv
from fastconv import conv as conv_mod
from fastconv.bench.sweep import time_against_auto, write_sweep

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# (N, C, K, H = W, padding)
SHAPES = [(256, 1, 6, 28, 2), (256, 6, 16, 14, 0), (256, 4, 8, 8, 2), (256, 8, 24, 4, 2), (256, 16, 32, 4, 2),
          (256, 32, 64, 4, 2), (256, 24, 64, 7, 2), (256, 12, 32, 8, 2), (256, 48, 128, 8, 2), (64, 24, 64, 15, 2),
          (256, 8, 16, 16, 2), (256, 16, 32, 16, 2), (256, 8, 8, 32, 2), (64, 64, 192, 27, 2)]
ALGOS = ("direct", "im2col", "fft")
PASSES = ("forward", "input", "weight")


def _run(pass_, algo, x, w, dy, pad):
    if pass_ == "forward":
        return lambda: fastconv.conv2d(x, w, None, 1, pad, algo=algo)
    if pass_ == "input":
        return lambda: fastconv.grad.conv2d_input(x.shape, w, dy, 1, pad, algo=algo)
    return lambda: fastconv.grad.conv2d_weight(x, w.shape, dy, 1, pad, algo=algo)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = ["| N | C | K | H = W | pass | direct ms | im2col ms | fft ms | fastest | auto picks | auto / fastest |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    worst = 1.0
    for N, C, K, H, pad in SHAPES:
        x = rng.standard_normal((N, C, H, H), dtype=np.float32)
        w = rng.standard_normal((K, C, 5, 5), dtype=np.float32)
        params = conv_mod.conv_plan(x.shape, w.shape, 1, pad, 1, 1).params
        dy = rng.standard_normal((N, K, params.P, params.Q), dtype=np.float32)
        for pass_ in PASSES:
            cells, ratio, _ = time_against_auto({algo: _run(pass_, algo, x, w, dy, pad) for algo in ALGOS},
                                             conv_mod.select_algorithm(params, pass_), number=3)
            worst = max(worst, ratio)
            rows.append(f"| {N} | {C} | {K} | {H} | {pass_} | {cells}")
            print(rows[-1], flush=True)
    write_sweep("5x5", "5x5 stride-1 convolutions, every pass",
                [f"threads: {args.threads}; best of 5 x 3 calls after a warm-up call",
                 f"command: `python3 benchmarks/bench_5x5.py --threads {args.threads}`",
                 f"worst auto / fastest: {worst:.2f}"],
                rows, args.out, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
