"""Weight gradient of 3x3 stride-1 convolutions on small images (2x2 to 32x32, as in a CNN fed 28-32
pixel images): direct, im2col and FFT against each other, and what ``auto`` picks.

The measurements behind select_algorithm's small-image weight-gradient rule. Batch 128, padding 1,
best of 5 repeats of 5 calls after one warm-up call, at --threads threads.

    python3 benchmarks/bench_weight_grad.py --threads 2
    python3 benchmarks/bench_weight_grad.py --batch 32 --sizes 4,8,16 --algos direct,im2col,fft,winograd_f2,winograd_f4

Writes benchmarks/results/<date>_<machine>_weight_grad.md.
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

SIZES = (2, 4, 8, 16, 32)
CHANNELS = ((1, 16), (3, 16), (16, 16), (32, 16), (64, 16), (80, 16), (128, 16), (32, 32), (64, 64), (128, 128),
            (256, 256))
ALGOS = ("direct", "im2col", "fft")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated image sides")
    ap.add_argument("--algos", default=",".join(ALGOS), help="comma-separated algorithms to race")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    algos = args.algos.split(",")
    rows = ["| C | K | H = W | " + " | ".join(f"{a} ms" for a in algos) + " | fastest | auto picks | auto / fastest |",
            "|---|---|---|" + "---|" * (len(algos) + 3)]
    worst = 1.0
    for H in map(int, args.sizes.split(",")):
        for C, K in CHANNELS:
            x = rng.standard_normal((args.batch, C, H, H), dtype=np.float32)
            dy = rng.standard_normal((args.batch, K, H, H), dtype=np.float32)
            calls = {algo: (lambda algo=algo: fastconv.grad.conv2d_weight(x, (K, C, 3, 3), dy, padding=1, algo=algo))
                     for algo in algos}
            params = conv_mod.conv_plan(x.shape, (K, C, 3, 3), 1, 1, 1, 1).params
            pick = conv_mod.ALGORITHMS[conv_mod.select_algorithm(params, "weight")].kernel(params)
            cells, ratio, _ = time_against_auto(calls, pick, number=5, digits=3)
            worst = max(worst, ratio)
            rows.append(f"| {C} | {K} | {H} | {cells}")
            print(rows[-1], flush=True)
    write_sweep("weight_grad", "3x3 weight gradient on small images",
                [f"threads: {args.threads}; batch {args.batch}; best of 5 x 5 calls after a warm-up call",
                 f"command: `python3 benchmarks/bench_weight_grad.py --threads {args.threads} --batch {args.batch}"
                 f" --sizes {args.sizes} --algos {args.algos}`",
                 f"worst auto / fastest: {worst:.2f}"],
                rows, args.out, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
