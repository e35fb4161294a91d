"""Implicit GEMM (forward, input and weight gradient) on strided and few-channel layers: auto,
implicit_gemm, im2col and direct against torch; the suite's layers at batch 1 and 8, held-out
public layers at batch 1 and 16.

Every call is first checked against the float64 reference (a wrong result stops the run). Timing:
fastconv.bench's time_interleaved with block=5 and settle=0.15 (each turn idles 0.15 s, makes one
untimed call, then times 5 calls of the same callable: call-by-call alternation on a 2-core machine
measures thread pools fighting), --repeat turns per callable, turn r starting with the r-th callable
(none always follows torch and refills the caches it evicted), median kept. The whole table is
measured --rounds times; each cell shows the median over rounds and ratios show min-max over rounds.

    python3 benchmarks/bench_implicit_gemm.py --threads 2 --rounds 3 --passes forward,input,weight
    python3 benchmarks/bench_implicit_gemm.py --passes weight --batches 1,2,4,16 --algos auto,implicit_gemm,im2col

--clock thread (with --threads 1) times the calling thread's CPU time (time.thread_time) instead of
wall time, in the same turns: on a machine shared with busy neighbours it leaves out the time the
thread waited for a core (not the cache misses they cause). torch then runs on the calling thread too.

Prints a markdown table (and writes it to --out when given).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import fastconv
from fastconv import conv as conv_mod
from fastconv.bench import reference as ref
from fastconv.bench import sweep
from fastconv.bench.measure import time_interleaved

# (name, x shape without N, w shape, stride (h, w), padding (h, w), batches)
LAYERS = [
    ("alexnet_c1 (suite): 11x11 s4", (3, 224, 224), (64, 3, 11, 11), (4, 4), (2, 2), (1, 8)),
    ("stride2 (suite): ResNet 3x3 s2 128->256 @28", (128, 28, 28), (256, 128, 3, 3), (2, 2), (1, 1), (1, 8)),
    ("lenet_c2 (suite): 5x5 6->16 @14", (6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0), (256,)),
    ("ResNet stem 7x7 s2 3->64 @224", (3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3), (1, 16)),
    ("ResNet 3x3 s2 64->128 @56", (64, 56, 56), (128, 64, 3, 3), (2, 2), (1, 1), (1, 16)),
    ("ResNet 3x3 s2 256->512 @14", (256, 14, 14), (512, 256, 3, 3), (2, 2), (1, 1), (1, 16)),
    ("ResNet 1x1 s2 64->128 @56", (64, 56, 56), (128, 64, 1, 1), (2, 2), (0, 0), (1, 16)),
    ("ResNet 1x1 s2 256->512 @14", (256, 14, 14), (512, 256, 1, 1), (2, 2), (0, 0), (1, 16)),
    ("DeepSpeech2 5x20 s2 1->32 @161x700", (1, 161, 700), (32, 1, 5, 20), (2, 2), (0, 0), (1, 16)),
    ("VGG-like 5x5 s1 32->64 @32", (32, 32, 32), (64, 32, 5, 5), (1, 1), (2, 2), (1, 16)),
    # strided layers that no rule was fitted on (the weight-gradient rule of 2026-12-05 was checked here)
    ("Inception-v3 6a 3x3 s2 288->384 @35", (288, 35, 35), (384, 288, 3, 3), (2, 2), (0, 0), (1, 16)),
    ("3x3 s2 512->512 @14", (512, 14, 14), (512, 512, 3, 3), (2, 2), (1, 1), (1, 16)),
    ("5x5 s2 64->128 @32", (64, 32, 32), (128, 64, 5, 5), (2, 2), (2, 2), (1, 16)),
    ("3x3 s2 32->64 @112", (32, 112, 112), (64, 32, 3, 3), (2, 2), (1, 1), (1, 16)),
    ("3x3 s2 160->192 @20", (160, 20, 20), (192, 160, 3, 3), (2, 2), (1, 1), (1, 16)),
    ("ResNet-50 1x1 s2 1024->2048 @14", (1024, 14, 14), (2048, 1024, 1, 1), (2, 2), (0, 0), (1, 16)),
]
ALGOS = ("auto", "implicit_gemm", "im2col", "direct")


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated substrings of the layer names to run")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall")
    ap.add_argument("--passes", default="forward", help="comma-separated: forward, input, weight")
    ap.add_argument("--batches", default="", help="comma-separated batch sizes for every layer (default: each layer's own)")
    ap.add_argument("--algos", default=",".join(ALGOS), help="comma-separated subset of " + ",".join(ALGOS))
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread needs --threads 1")
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    passes = args.passes.split(",")
    algos = tuple(a for a in ALGOS if a in args.algos.split(","))
    if not algos:
        ap.error(f"--algos: none of {ALGOS}")
    cases = []
    for name, xs, ws, stride, pad, batches in LAYERS:
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        for n in (map(int, args.batches.split(",")) if args.batches else batches):
            x = rng.standard_normal((n, *xs), dtype=np.float32)
            w = rng.standard_normal(ws, dtype=np.float32)
            b = rng.standard_normal(ws[0], dtype=np.float32)
            params = conv_mod.conv_plan(x.shape, w.shape, stride, pad, 1, 1).params
            dy = rng.standard_normal((n, ws[0], params.P, params.Q), dtype=np.float32)
            xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
            for pass_ in passes:
                if pass_ == "forward":
                    expected = ref.conv2d(x, w, b, stride, pad, (1, 1), 1)
                    fns = {a: (lambda a=a, x=x, w=w, b=b, s=stride, p=pad: fastconv.conv2d(x, w, b, s, p, algo=a))
                           for a in algos}

                    def torch_fn(xt=xt, wt=wt, bt=bt, s=stride, p=pad):
                        with torch.no_grad():
                            return torch.nn.functional.conv2d(xt, wt, bt, s, p)
                elif pass_ == "input":
                    expected = ref.conv2d_input(x.shape, w, dy, stride, pad, (1, 1), 1)
                    fns = {a: (lambda a=a, x=x, w=w, dy=dy, s=stride, p=pad:
                               fastconv.grad.conv2d_input(x.shape, w, dy, s, p, algo=a)) for a in algos}

                    def torch_fn(xt=xt, wt=wt, dyt=dyt, s=stride, p=pad):  # dX only, as autograd asks for it
                        return torch.ops.aten.convolution_backward(dyt, xt, wt, None, s, p, (1, 1), False, (0, 0), 1,
                                                                   (True, False, False))[0]
                else:
                    expected = ref.conv2d_weight(x, w.shape, dy, stride, pad, (1, 1), 1)
                    fns = {a: (lambda a=a, x=x, w=w, dy=dy, s=stride, p=pad:
                               fastconv.grad.conv2d_weight(x, w.shape, dy, s, p, algo=a)) for a in algos}

                    def torch_fn(xt=xt, wt=wt, dyt=dyt, s=stride, p=pad):  # dW only, as autograd asks for it
                        return torch.ops.aten.convolution_backward(dyt, xt, wt, None, s, p, (1, 1), False, (0, 0), 1,
                                                                   (False, False, True))[1]
                for a, f in fns.items():
                    got = f()
                    err = np.abs(got - expected).max() / np.abs(expected).max()
                    pick = conv_mod.select_algorithm(params, pass_) if a == "auto" else a
                    if not err <= conv_mod.ALGORITHMS[pick].bound:
                        raise SystemExit(f"{name} N={n} {pass_} {a}: relative error {err:.2e}")
                fns["torch"] = torch_fn
                cases.append((f"{name} {pass_}", n, params, fns, pass_))
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    medians = {}  # (case index, algo) -> [median ms per round]
    for r in range(args.rounds):
        for i, (name, n, params, fns, pass_) in enumerate(cases):
            t = time_interleaved(fns, repeat=args.repeat, warmup=1, block=5, settle=0.15, rotate=True, clock=clock)
            for a, (med, _, _) in t.items():
                medians.setdefault((i, a), []).append(med * 1e3)
            print(f"round {r + 1}: {name} N={n} " + " ".join(f"{a} {t[a][0] * 1e3:.2f}" for a in fns), flush=True)
    head = ["| layer | N | auto picks | " + " | ".join(f"{a} ms (GFLOP/s)" for a in (*algos, "torch")) + " | "
            + " | ".join(f"{a} / torch" for a in algos) + " |"]
    head.append("|---|---|---|" + "---|" * (2 * len(algos) + 1))
    rows = []
    for i, (name, n, params, fns, pass_) in enumerate(cases):
        cells = []
        for a in (*algos, "torch"):
            ms = statistics.median(medians[(i, a)])
            cells.append(f"{ms:.2f} ({params.flops / ms / 1e6:.0f})")
        ratios = []
        for a in algos:
            rs = [m / t for m, t in zip(medians[(i, a)], medians[(i, "torch")])]
            ratios.append(f"{statistics.median(rs):.2f} ({min(rs):.2f}-{max(rs):.2f})")
        pick = conv_mod.ALGORITHMS[conv_mod.select_algorithm(params, pass_)].kernel(params)
        rows.append(f"| {name} | {n} | {pick} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    table = "\n".join(head + rows)
    print(table)
    if args.out:
        sweep.save_text(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
