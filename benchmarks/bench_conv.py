"""Convolution benchmark: every algorithm x pass over benchmarks/shapes.csv against torch.

For each shape and pass (forward, input, weight) each algorithm is first checked against the
float64 reference (fastconv.bench.reference) on the first images of the batch, and is not timed if it
disagrees. Then ours and torch (F.conv2d under no_grad, torch.nn.grad.conv2d_input/conv2d_weight)
run in alternating warmed blocks of 5 calls with a 0.15 s pause between the sides (same thread
count): warm-up, then the median of --repeat rounds, each round started once a probe reads the
machine quiet (fastconv.bench.measure.QuietGate, up to 30 s; --no-gate: at once).
GFLOP/s counts 2*N*K*(C/groups)*R*S*P*Q per pass. Writes benchmarks/results/<date>_<machine>_conv.md.

    python3 benchmarks/bench_conv.py --threads 2 [--shapes lenet_c1,stride2] [--algos auto,direct] [--repeat 15]

The functions (load_shapes, check, bench_shape, summarize, write_report) live in
fastconv.bench.conv_table, for other drivers (benchmarks/bench_winograd.py).
"""

from __future__ import annotations

import argparse
import os
import sys

from fastconv import conv as conv_mod
from fastconv.bench.conv_table import PASSES, bench_shape, load_shapes, summarize, write_report
from fastconv.bench.measure import QuietGate, conv_probe, set_threads_both
from fastconv.bench.sweep import results_path

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="", help="comma-separated shape names (default: all)")
    ap.add_argument("--shapes-file", default=os.path.join(HERE, "shapes.csv"))
    ap.add_argument("--algos", default="", help="comma-separated: auto and/or algorithm names (default: auto + all registered)")
    ap.add_argument("--passes", default=",".join(PASSES), help="comma-separated subset of " + ",".join(PASSES))
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="statistic over the rounds (min is steadier on a shared, busy machine)")
    ap.add_argument("--out", default="", help="report path (default benchmarks/results/<date>_<machine>_conv.md)")
    ap.add_argument("--no-gate", action="store_true",
                    help="start rounds at once (default: each waits up to 30 s for a quiet machine, "
                         "fastconv.bench.measure.QuietGate)")
    args = ap.parse_args(argv)

    set_threads_both(args.threads)
    algos = args.algos.split(",") if args.algos else ["auto", *conv_mod.ALGORITHMS]
    passes = args.passes.split(",")
    for p in passes:
        if p not in PASSES:
            raise SystemExit(f"--passes: unknown pass {p!r}")
    shapes = load_shapes(args.shapes_file, args.shapes.split(",") if args.shapes else None)
    rows = []
    gate = None if args.no_gate else QuietGate(*conv_probe())
    for shape in shapes:
        rows.extend(bench_shape(shape, algos, passes, args.repeat, use_min=args.stat == "min", gate=gate))
    for line in summarize(rows):
        print(line)
    out = results_path("conv", os.path.join(HERE, "results"), args.out)
    write_report(rows, out, args.threads, "python3 " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])), args.repeat, args.stat,
                 (gate.summary(),) if gate else ())
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
