"""The stride-2 Winograd (winograd_s2) against the kernels that run 3x3 stride-2 layers otherwise
(implicit_gemm, im2col), auto's pick and torch, in the two passes it has (forward, input gradient):
the measurements behind its cost-model price and select_algorithm's input-gradient rule.

Layers: benchmarks/layers_stride2.csv (ResNet-18/50, Inception-v3, Darknet-53, 3-channel stems, the
suite's stride2; held_out ones were not looked at when the rule was written). Each algorithm's
result is first checked against the float64 reference with the registry's bound (a wrong one
stops the run). Timing: fastconv.bench.measure.time_interleaved, per (layer, batch, pass) --rounds
rounds of (0.15 s idle, one untimed call, 5 timed calls) per callable in turn, median; each round
starts once a probe reads the machine quiet (measure.QuietGate, up to 30 s; --no-gate: at once).

    python3 benchmarks/bench_stride2.py --threads 2 --batches 1,16 --out results.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

import numpy as np

import fastconv
from fastconv import _conv_algorithms as registry
from fastconv.bench import reference as ref
from fastconv.bench import sweep
from fastconv.bench.layer_bench import load_layers
from fastconv.bench.measure import QuietGate, conv_probe, set_threads_both, time_interleaved
from fastconv.conv import conv_plan
from fastconv.runtime import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))
ALGOS = ("implicit_gemm", "im2col", "winograd_s2", "auto")


def calls(pass_, x, w, dy, stride, pad, torch):
    """name -> a callable running that pass (ours, then torch), and the float64 reference's result."""
    if pass_ == "forward":
        fns = {a: (lambda a=a: fastconv.conv2d(x, w, None, stride, pad, algo=a)) for a in ALGOS}
        expected = ref.conv2d(x, w, None, stride, pad, (1, 1), 1)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)

        def theirs():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, None, stride, pad)
    else:
        fns = {a: (lambda a=a: fastconv.grad.conv2d_input(x.shape, w, dy, stride, pad, algo=a)) for a in ALGOS}
        expected = ref.conv2d_input(x.shape, w, dy, stride, pad, (1, 1), 1)
        wt, dyt = torch.from_numpy(w), torch.from_numpy(dy)

        def theirs():
            return torch.nn.grad.conv2d_input(x.shape, wt, dyt, stride, pad)
    fns["torch"] = theirs
    return fns, expected


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers-file", default=os.path.join(HERE, "layers_stride2.csv"))
    ap.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,16", help="0: each row's N")
    ap.add_argument("--passes", default="forward,input")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-gate", action="store_true", help="start rounds at once")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    torch = set_threads_both(args.threads)
    if torch is None:
        raise SystemExit("needs torch (pip install torch==2.13.0)")
    layers = load_layers(args.layers_file)
    if args.layers:
        layers = [layer for layer in layers if layer["name"] in args.layers.split(",")]
    gate = None if args.no_gate else QuietGate(*conv_probe())
    rng = np.random.default_rng(0)
    rows = ["| layer | N | pass | auto picks | implicit_gemm | im2col | winograd_s2 | auto | torch | auto / torch | auto / best of ours |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for batch in map(int, args.batches.split(",")):
        for layer in layers:
            n = batch or layer["N"]
            x = rng.standard_normal((n, layer["C"], layer["H"], layer["W"]), dtype=np.float32)
            w = (rng.standard_normal((layer["K"], layer["C"], 3, 3)) / np.sqrt(9 * layer["C"])).astype(np.float32)
            stride, pad = layer["stride"], layer["pad"]
            p = conv_plan(x.shape, w.shape, stride, pad, 1, 1).params
            dy = rng.standard_normal((n, layer["K"], p.P, p.Q), dtype=np.float32)
            for pass_ in args.passes.split(","):
                fns, expected = calls(pass_, x, w, dy, stride, pad, torch)
                for name in ALGOS:
                    got = fns[name]()
                    bound = registry.error_bound(registry.kernel_for(p, name, pass_))
                    if ref.tolerance_ratio(got, expected, bound) > 1.0:
                        raise SystemExit(f"{layer['name']} {pass_} {name}: outside its error bound {bound}")
                ms = {k: v[0] * 1e3 for k, v in time_interleaved(fns, args.rounds, warmup=1, block=5, settle=0.15,
                                                                   gate=gate).items()}
                pick = registry.kernel_for(p, "auto", pass_)
                best = min(ms[a] for a in ALGOS if a != "auto")
                line = (f"| {layer['name']}{' *' if layer['held_out'] else ''} | {n} | {pass_} | {pick} | "
                        + " | ".join(f"{ms[k]:.3f}" for k in (*ALGOS, "torch"))
                        + f" | {ms['auto'] / ms['torch']:.2f} | {ms['auto'] / best:.2f} |")
                print(line, flush=True)
                rows.append(line)
    text = [f"# winograd_s2 against implicit_gemm, im2col and torch on 3x3 stride-2 layers ({args.threads} threads)", "",
            f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {cpu_model()} "
            f"({os.cpu_count()} logical CPUs), torch {torch.__version__}, {args.threads} threads for both.",
            f"Command: `python3 benchmarks/bench_stride2.py {' '.join(argv or sys.argv[1:])}`",
            "Times in ms (median); * held out; auto / best of ours: auto's own timing over our fastest of the three.",
            "", *rows]
    if args.out:
        sweep.save_text(args.out, "\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
