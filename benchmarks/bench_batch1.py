"""Batch-1 forward bar (issue #19): public network layers, ours (auto and every algorithm that can
run the layer) against torch, block-alternating in the same run.

For each layer of benchmarks/layers_batch1.csv at --batch (default 1): torch's F.conv2d under
no_grad, fastconv.conv2d(algo="auto") (and the kernel it picked), and every algorithm the registry
says can run it (fastconv._conv_algorithms.tunable: the compiled kernels, Winograd's variants by
name). Each algorithm's output is first checked against torch in float64 (the float64 reference of
fastconv.bench.reference without torch) with the registry's error bound; a wrong one is not timed.
Then all run block-alternating (fastconv.bench.measure.time_interleaved, block=5, settle=0.15 s,
one untimed call per turn), --repeat rounds, median, at --threads (torch too). Each round first
waits (up to 30 s) until a probe reads the machine quiet (measure.QuietGate; --no-gate: not).

Reports per layer: ms, torch/auto (> 1: ours faster), the fastest algorithm and auto/best; summary
lines for the bar (geometric mean of torch/auto, worst layer, layers under 0.8x, layers where auto
takes over 1.25x the best algorithm), for all layers, the fitted ones and the held-out ones.

    python3 benchmarks/bench_batch1.py [--layers a,b] [--start 0 --stop 30] [--json chunk1.json]
    python3 benchmarks/bench_batch1.py --merge chunk1.json,chunk2.json --out report.md

A run of the whole file takes longer than one ~8-minute exclusive lock: split it with --start/--stop
(each chunk writes --json) and --merge the chunks into the report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

from fastconv.bench.measure import set_threads_both
from fastconv.bench.layer_bench import best, bench_layer, load_layers, speed, summary
from fastconv.bench.measure import QuietGate, conv_probe
from fastconv.bench.sweep import results_path, save_text

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS_CSV = os.path.join(HERE, "layers_batch1.csv")


def report(rows: list[dict], command: str, threads: int, repeat: int, notes: tuple[str, ...] = ()) -> list[str]:
    import platform

    from fastconv.runtime import cpu_model

    lines = [
        f"# Forward at batch {', '.join(sorted({str(r['batch']) for r in rows}))} over public network layers: fastconv vs torch",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {cpu_model()} "
        f"({os.cpu_count()} logical CPUs), {platform.python_version()}, torch "
        f"{getattr(sys.modules.get('torch'), '__version__', 'absent')}, {threads} threads for both.",
        f"Command: `{command}`",
        f"Method: benchmarks/bench_batch1.py: every algorithm checked against torch in float64 first "
        f"(wrong: not timed); then block-alternating (time_interleaved block=5, settle=0.15 s, one "
        f"untimed call per turn), {repeat} rounds, median. Layers: benchmarks/layers_batch1.csv "
        f"(held_out = 1: not used to fit rules; marked * below).",
        *notes,
        "",
        "## Bar",
        "",
        *summary(rows, "all"),
        *summary([r for r in rows if not r["held_out"]], "fitted"),
        *summary([r for r in rows if r["held_out"]], "held-out"),
        "",
        "## Per layer (ms, median)",
        "",
        "| layer | dims | GFLOP | torch | auto | auto picked | torch/auto | best | best ms | auto/best | all algorithms (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name, ms = best(r)
        others = ", ".join(f"{k} {v:.3g}" for k, v in sorted(r["ms"].items(), key=lambda kv: kv[1]) if k not in ("auto", "torch"))
        if r["wrong"]:
            others += "; WRONG: " + ", ".join(f"{k} ({v:.1f}x bound)" for k, v in r["wrong"].items())
        s = speed(r)
        lines.append(f"| {r['name']}{' *' if r['held_out'] else ''} | {r['dims']} | {r['gflop']:.3f} | "
                     f"{r['ms'].get('torch', float('nan')):.3f} | {r['ms']['auto']:.3f} | {r['picked']} | "
                     f"{s:.2f} | {name} | {ms:.3f} | {r['ms']['auto'] / ms:.2f} | {others} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers-file", default=LAYERS_CSV)
    ap.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    ap.add_argument("--start", type=int, default=0, help="first layer index (after --layers)")
    ap.add_argument("--stop", type=int, default=None, help="one past the last layer index")
    ap.add_argument("--batch", type=int, default=1, help="batch size (0: each row's N, e.g. for benchmarks/shapes.csv)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="rounds of block=5 timed calls per callable")
    ap.add_argument("--json", default="", help="also write the rows as JSON (for --merge)")
    ap.add_argument("--no-gate", action="store_true",
                    help="start rounds at once (default: each waits up to 30 s for a quiet machine, "
                         "fastconv.bench.measure.QuietGate)")
    ap.add_argument("--merge", default="", help="comma-separated JSON files of earlier chunks: report them, time nothing")
    ap.add_argument("--out", default="", help="report path (default benchmarks/results/<date>_<machine>_batch<N>.md)")
    args = ap.parse_args(argv)
    command = "python3 " + " ".join([os.path.relpath(__file__)] + (sys.argv[1:] if argv is None else argv))

    torch = set_threads_both(args.threads)
    if args.merge:
        rows, commands, notes = [], [], []
        for path in args.merge.split(","):
            with open(path) as f:
                data = json.load(f)
            rows.extend(data["rows"])
            commands.append(data["command"])
            notes.extend(data.get("notes", []))
        command = "; ".join(commands)
    else:
        layers = load_layers(args.layers_file)
        if args.layers:
            wanted = args.layers.split(",")
            unknown = set(wanted) - {l["name"] for l in layers}
            if unknown:
                raise SystemExit(f"--layers: unknown {sorted(unknown)}")
            layers = [l for l in layers if l["name"] in wanted]
        rows = []
        gate = None if args.no_gate else QuietGate(*conv_probe())
        begin = time.perf_counter()
        for layer in layers[args.start:args.stop]:
            row = bench_layer(layer, args.batch or layer["N"], args.repeat, torch, gate)
            rows.append(row)
            name, ms = best(row)
            s = speed(row)
            print(f"{row['name']:24s} {row['dims']:32s} torch {row['ms'].get('torch', float('nan')):8.3f} "
                  f"auto {row['ms']['auto']:8.3f} ({row['picked']}) {s if s else float('nan'):5.2f}x  "
                  f"best {name} {ms:.3f} auto/best {row['ms']['auto'] / ms:.2f}"
                  + (f"  WRONG {row['wrong']}" if row["wrong"] else ""), flush=True)
        print(f"{time.perf_counter() - begin:.0f} s")
        notes = [gate.summary()] if gate else []
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"command": command, "rows": rows, "notes": notes}, f, indent=1)
    lines = report(rows, command, args.threads, args.repeat, tuple(notes))
    for line in lines[8:8 + 15]:
        if line.startswith(("all", "fitted", "held", "  ")):
            print(line)
    batch = f"batch{args.batch}" if args.batch else "suite_batches"
    save_text(results_path(batch, os.path.join(HERE, "results"), args.out), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
