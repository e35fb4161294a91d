"""BatchNorm2d + ReLU in training mode, forward and backward: fastconv against torch (same process,
thread count and data, calls interleaved), on the activation shapes of the small d2l models.

Ours is one fused kernel each way (statistics, normalize + ReLU; backward with the ReLU mask
recomputed from x), reached through fastconv.nn.functional.batch_norm2d and autograd as a model
calls it. Both sides are checked against each other first. Reported: median of --repeat
interleaved rounds (after a warm-up round) of one forward + backward each, and the bytes one
forward + backward must move at the least (x read 3 times, dy twice, y and dx written once).

    python3 benchmarks/bench_batchnorm.py --threads 2

Writes benchmarks/results/<date>_<machine>_batchnorm.md (or --out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import fastconv
from fastconv import Tensor
from fastconv.nn import functional as F
from fastconv.bench.sweep import write_sweep

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# (N, C, H, W): DenseNet's (width 0.5, 32 px) 16x16 stem and 8x8 / 4x4 blocks, ResNet-18's (width
# 0.25, 32 px) 8x8 stage, and a full-size ResNet stage at batch 8.
SHAPES = [(256, 32, 16, 16), (256, 96, 8, 8), (256, 48, 4, 4), (256, 16, 8, 8), (8, 64, 56, 56)]


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = ["| N | C | H x W | MB moved | fastconv ms | torch ms | fastconv / torch | fastconv GB/s |",
            "|---|---|---|---|---|---|---|---|"]
    for N, C, H, W in SHAPES:
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        dy = rng.standard_normal(x.shape, dtype=np.float32)
        gamma, beta = np.ones(C, np.float32), np.zeros(C, np.float32)
        tbn = torch.nn.BatchNorm2d(C)
        tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

        def ours():
            xt = Tensor(x, requires_grad=True)
            y = F.batch_norm2d(xt, Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True),
                               np.zeros(C, np.float32), np.ones(C, np.float32), True, relu=True)
            y.backward(dy)
            return xt.grad

        def theirs():
            tx.grad = None
            torch.relu(tbn(tx)).backward(tdy)
            return tx.grad.numpy()

        np.testing.assert_allclose(ours(), theirs(), rtol=1e-3, atol=1e-4)
        times = {ours: [], theirs: []}
        for _ in range(args.repeat):
            for f in (ours, theirs):
                t0 = time.perf_counter()
                f()
                times[f].append(time.perf_counter() - t0)
        o, t = (statistics.median(times[f]) * 1e3 for f in (ours, theirs))
        mb = 7 * x.nbytes / 1e6
        rows.append(f"| {N} | {C} | {H} x {W} | {mb:.1f} | {o:.3f} | {t:.3f} | {o / t:.2f} | {mb / o:.1f} |")
        print(rows[-1], flush=True)
    write_sweep("batchnorm", "BatchNorm2d + ReLU, training forward + backward: fastconv vs torch",
                [f"threads: {args.threads}; median of {args.repeat} interleaved rounds after a warm-up round",
                 f"command: `python3 benchmarks/bench_batchnorm.py --threads {args.threads}`",
                 f"torch {torch.__version__}"],
                rows, args.out, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
