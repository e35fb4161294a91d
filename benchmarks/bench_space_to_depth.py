"""space_to_depth against the kernels that run strided layers otherwise (implicit_gemm, im2col), in
every pass, with auto's pick: the measurements behind select_algorithm's space-to-depth rule.

Layers whose space-to-depth problem is 3x3 (11x11 stride 4, 10x10 stride 4, 9x9 stride 3, 6x6 and
5x5 stride 2), with 3 to 64 input channels, and large kernels whose phase problem the FFT runs
(DeepSpeech2's 41x11 and 21x11); `held_out` ones were not looked at when the rule was
written. Every algorithm is first checked against the float64 reference (a wrong result stops the
run; that call is the warm-up). Timing: fastconv.bench.measure.time_interleaved, per (layer,
batch, pass) --rounds rounds of (0.1 s idle, one untimed call, 5 timed calls) per algorithm in
turn, median of all timed calls; each round starts once a probe reads the machine quiet
(measure.QuietGate, up to 30 s; --no-gate: at once). The tables in
benchmarks/results/2026-12-05_epyc2c_space_to_depth.md took the median of each round's median.

    python3 benchmarks/bench_space_to_depth.py --threads 2 --batches 1,4,16 --out results.md
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fastconv
from fastconv import conv as conv_mod
from fastconv.bench import reference as ref
from fastconv.bench import sweep
from fastconv.bench.measure import QuietGate, conv_probe, time_interleaved

# name, x shape without N, w shape, stride, padding, held_out
LAYERS = [
    ("alexnet_c1 (suite) 11x11 s4 3->64 @224", (3, 224, 224), (64, 3, 11, 11), 4, 2, False),
    ("5x5 s2 64->128 @32", (64, 32, 32), (128, 64, 5, 5), 2, 2, False),
    ("stem 5x5 s2 3->32 @128", (3, 128, 128), (32, 3, 5, 5), 2, 2, False),
    ("5x5 s2 32->64 @56", (32, 56, 56), (64, 32, 5, 5), 2, 2, False),
    ("9x9 s3 8->32 @96", (8, 96, 96), (32, 8, 9, 9), 3, 4, False),
    ("6x6 s2 16->32 @64", (16, 64, 64), (32, 16, 6, 6), 2, 2, False),
    ("10x10 s4 3->48 @128", (3, 128, 128), (48, 3, 10, 10), 4, 3, True),
    ("5x5 s2 24->64 @48", (24, 48, 48), (64, 24, 5, 5), 2, 2, True),
    ("6x6 s2 32->64 @28", (32, 28, 28), (64, 32, 6, 6), 2, 2, True),
    ("9x9 s3 3->32 @96", (3, 96, 96), (32, 3, 9, 9), 3, 4, True),
    ("AlexNet (original) 11x11 s4 3->96 @227", (3, 227, 227), (96, 3, 11, 11), 4, 0, True),
    # phase problems the FFT runs
    ("DeepSpeech2 conv1 41x11 s2 1->32 @161x700", (1, 161, 700), (32, 1, 41, 11), (2, 2), (20, 5), False),
    ("DeepSpeech2 conv2 21x11 s2x1 32->32 @81x350", (32, 81, 350), (32, 32, 21, 11), (2, 1), (10, 5), False),
    ("11x11 s2 16->32 @96", (16, 96, 96), (32, 16, 11, 11), (2, 2), (5, 5), True),
    ("11x41 s2 1->32 @128x400", (1, 128, 400), (32, 1, 11, 41), (2, 2), (5, 20), True),
]
ALGOS = ("space_to_depth", "implicit_gemm", "im2col")


def calls(pass_, x, w, dy, stride, pad):
    """algo -> a callable running that pass, and the float64 reference's result."""
    stride = stride if isinstance(stride, tuple) else (stride, stride)
    pad = pad if isinstance(pad, tuple) else (pad, pad)
    if pass_ == "forward":
        return ({a: (lambda a=a: fastconv.conv2d(x, w, None, stride, pad, algo=a)) for a in ALGOS},
                ref.conv2d(x, w, None, stride, pad, (1, 1), 1))
    if pass_ == "input":
        return ({a: (lambda a=a: fastconv.grad.conv2d_input(x.shape, w, dy, stride, pad, algo=a)) for a in ALGOS},
                ref.conv2d_input(x.shape, w, dy, stride, pad, (1, 1), 1))
    return ({a: (lambda a=a: fastconv.grad.conv2d_weight(x, w.shape, dy, stride, pad, algo=a)) for a in ALGOS},
            ref.conv2d_weight(x, w.shape, dy, stride, pad, (1, 1), 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="")
    ap.add_argument("--no-gate", action="store_true", help="start rounds at once")
    ap.add_argument("--only", default="", help="comma-separated substrings of the layer names to run")
    args = ap.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    gate = None if args.no_gate else QuietGate(*conv_probe())
    rng = np.random.default_rng(0)
    rows = ["| layer | N | pass | auto picks | space_to_depth ms | implicit_gemm ms | im2col ms | space_to_depth / best other |",
            "|---|---|---|---|---|---|---|---|"]
    for name, xs, ws, stride, pad, held_out in LAYERS:
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        for n in map(int, args.batches.split(",")):
            x = rng.standard_normal((n, *xs), dtype=np.float32)
            w = rng.standard_normal(ws, dtype=np.float32)
            params = conv_mod.conv_plan(x.shape, w.shape, stride, pad, 1, 1).params
            dy = rng.standard_normal((n, ws[0], params.P, params.Q), dtype=np.float32)
            for pass_ in conv_mod.PASSES:
                fns, expected = calls(pass_, x, w, dy, stride, pad)
                for a, f in fns.items():
                    err = np.abs(f() - expected).max() / np.abs(expected).max()
                    if not err <= conv_mod.ALGORITHMS[a].bound:
                        raise SystemExit(f"{name} N={n} {pass_} {a}: relative error {err:.2e}")
                times = time_interleaved(fns, args.rounds, warmup=0, block=5, settle=0.1, gate=gate)
                ms = {a: median * 1e3 for a, (median, _, _) in times.items()}
                best_other = min(ms["implicit_gemm"], ms["im2col"])
                rows.append(f"| {name}{' *' if held_out else ''} | {n} | {pass_} | {conv_mod.select_algorithm(params, pass_)} | "
                            + " | ".join(f"{ms[a]:.3f}" for a in ALGOS) + f" | {ms['space_to_depth'] / best_other:.2f} |")
                print(rows[-1], flush=True)
    table = "\n".join(rows + ([f"\n{gate.summary()}"] if gate else [])) + "\n"
    if args.out:
        sweep.save_text(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
