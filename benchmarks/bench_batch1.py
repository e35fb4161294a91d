"""Batch-1 forward bar (issue #19): public network layers, ours (auto and every algorithm that can
run the layer) against torch, block-alternating in the same run.

For each layer of benchmarks/layers_batch1.csv at --batch (default 1): torch's F.conv2d under
no_grad, fastconv.conv2d(algo="auto") (and the kernel it picked), and every algorithm the registry
says can run it (fastconv._conv_algorithms.tunable: the compiled kernels, Winograd's variants by
name). Each algorithm's output is first checked against torch in float64 (the float64 reference of
fastconv.bench.reference without torch) with the registry's error bound; a wrong one is not timed.
Then all run block-alternating (fastconv.bench.measure.time_interleaved, block=5, settle=0.15 s,
one untimed call per turn), --repeat rounds, median, at --threads (torch too).

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
import csv
import datetime
import json
import math
import os
import sys
import time

import numpy as np

import fastconv
from fastconv import _conv_algorithms as registry
from fastconv.bench import reference as ref
from fastconv.bench.measure import time_interleaved
from fastconv.bench.sweep import machine_tag
from fastconv.conv import auto_forward, conv_plan

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS_CSV = os.path.join(HERE, "layers_batch1.csv")
BAR_GEOMEAN, BAR_WORST, BAR_AUTO_OVER_BEST = 1.2, 0.8, 1.25


def _pair(text: str) -> tuple[int, int]:
    """'2' -> (2, 2); '2x1' -> (2, 1)."""
    parts = [int(v) for v in text.lower().split("x")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def load_layers(path: str = LAYERS_CSV) -> list[dict]:
    """The layer rows of ``path`` (comment lines start with #), with integer sizes and (h, w) pairs."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    layers = []
    for rec in rows:
        layer = {k: int(rec[k]) for k in ("N", "C", "H", "W", "K", "R", "S")}
        layer.update(name=rec["name"], stride=_pair(rec["stride"]), pad=_pair(rec["pad"]),
                     groups=int(rec.get("groups") or 1), dilation=int(rec.get("dilation") or 1),
                     held_out=rec.get("held_out", "0") == "1", source=rec.get("source", ""))
        layers.append(layer)
    return layers


def dims(layer: dict) -> str:
    sh, sw = layer["stride"]
    ph, pw = layer["pad"]
    s = f"{layer['C']}x{layer['H']}x{layer['W']}->{layer['K']} {layer['R']}x{layer['S']}"
    s += f" s{sh}" if sh == sw else f" s{sh}x{sw}"
    s += f" p{ph}" if ph == pw else f" p{ph}x{pw}"
    if layer["groups"] != 1:
        s += f" g{layer['groups']}"
    if layer["dilation"] != 1:
        s += f" d{layer['dilation']}"
    return s


def bench_layer(layer: dict, batch: int, repeat: int, torch) -> dict:
    """Check then time torch, auto and every applicable algorithm on one layer's forward pass."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, layer["C"], layer["H"], layer["W"]), dtype=np.float32)
    w = rng.standard_normal((layer["K"], layer["C"] // layer["groups"], layer["R"], layer["S"]), dtype=np.float32)
    b = rng.standard_normal(layer["K"], dtype=np.float32)
    kw = dict(stride=layer["stride"], padding=layer["pad"], dilation=layer["dilation"], groups=layer["groups"])
    params = conv_plan(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"], kw["groups"]).params
    algo, auto_params = auto_forward(x.shape, w.shape, **kw)
    picked = registry.ALGORITHMS[algo].kernel(auto_params)
    names = registry.tunable(params, "forward")
    if torch is not None:
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
        expected = torch.nn.functional.conv2d(xt.double(), wt.double(), bt.double(), **kw).numpy()
    else:
        expected = ref.conv2d(x, w, b, kw["stride"], kw["padding"], (kw["dilation"],) * 2, kw["groups"])
    fns, wrong = {}, {}
    for name in ["auto", *names]:
        call = (lambda a=name: fastconv.conv2d(x, w, b, algo=a, **kw))
        bound = registry.error_bound(picked if name == "auto" else name)
        ratio = ref.tolerance_ratio(call(), expected, bound)
        if ratio <= 1.0:
            fns[name] = call
        else:
            wrong[name] = ratio
    if torch is not None:
        def torch_call():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, **kw)
        fns["torch"] = torch_call
    res = time_interleaved(fns, repeat, warmup=1, block=5, settle=0.15)
    ms = {k: v[0] * 1e3 for k, v in res.items()}
    return dict(name=layer["name"], dims=dims(layer), held_out=layer["held_out"], source=layer["source"],
                batch=batch, gflop=params.flops / 1e9, picked=picked, ms=ms, wrong=wrong)


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def speed(row: dict) -> float | None:
    """torch ms / auto ms: > 1 means ours is faster."""
    t, a = row["ms"].get("torch"), row["ms"].get("auto")
    return t / a if t and a else None


def best(row: dict) -> tuple[str, float]:
    """The fastest of our algorithms (auto excluded) and its ms."""
    ours = {k: v for k, v in row["ms"].items() if k not in ("auto", "torch")}
    name = min(ours, key=ours.get)
    return name, ours[name]


def summary(rows: list[dict], label: str) -> list[str]:
    """The bar's lines for a set of layers."""
    rows = [r for r in rows if speed(r) is not None]
    if not rows:
        return [f"{label}: no layers"]
    speeds = {r["name"]: speed(r) for r in rows}
    worst = min(speeds, key=speeds.get)
    slow = sorted((n for n, s in speeds.items() if s < BAR_WORST), key=speeds.get)
    off = [(r["name"], r["ms"]["auto"] / best(r)[1]) for r in rows if r["ms"]["auto"] / best(r)[1] > BAR_AUTO_OVER_BEST]
    best_speed = geomean(r["ms"]["torch"] / best(r)[1] for r in rows)
    return [
        f"{label}: {len(rows)} layers; torch/auto geometric mean {geomean(speeds.values()):.2f}x "
        f"(bar >= {BAR_GEOMEAN}); best algorithm per layer would give {best_speed:.2f}x",
        f"  worst layer {worst} {speeds[worst]:.2f}x; {len(slow)} under {BAR_WORST}x"
        + (": " + ", ".join(f"{n} {speeds[n]:.2f}" for n in slow) if slow else ""),
        f"  auto > {BAR_AUTO_OVER_BEST}x the best algorithm on {len(off)}"
        + (": " + ", ".join(f"{n} {v:.2f}" for n, v in off) if off else ""),
    ]


def report(rows: list[dict], command: str, threads: int, repeat: int) -> list[str]:
    import platform

    from fastconv.runtime import cpu_model

    lines = [
        f"# Batch-{rows[0]['batch'] if rows else 1} forward over public network layers: fastconv vs torch",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {cpu_model()} "
        f"({os.cpu_count()} logical CPUs), {platform.python_version()}, torch "
        f"{getattr(sys.modules.get('torch'), '__version__', 'absent')}, {threads} threads for both.",
        f"Command: `{command}`",
        f"Method: benchmarks/bench_batch1.py: every algorithm checked against torch in float64 first "
        f"(wrong: not timed); then block-alternating (time_interleaved block=5, settle=0.15 s, one "
        f"untimed call per turn), {repeat} rounds, median. Layers: benchmarks/layers_batch1.csv "
        f"(held_out = 1: not used to fit rules; marked * below).",
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
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="rounds of block=5 timed calls per callable")
    ap.add_argument("--json", default="", help="also write the rows as JSON (for --merge)")
    ap.add_argument("--merge", default="", help="comma-separated JSON files of earlier chunks: report them, time nothing")
    ap.add_argument("--out", default="", help="report path (default benchmarks/results/<date>_<machine>_batch<N>.md)")
    args = ap.parse_args(argv)
    command = "python3 " + " ".join([os.path.relpath(__file__)] + (sys.argv[1:] if argv is None else argv))

    fastconv.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("torch not installed: no reference timings")
    if args.merge:
        rows, commands = [], []
        for path in args.merge.split(","):
            with open(path) as f:
                data = json.load(f)
            rows.extend(data["rows"])
            commands.append(data["command"])
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
        begin = time.perf_counter()
        for layer in layers[args.start:args.stop]:
            row = bench_layer(layer, args.batch, args.repeat, torch)
            rows.append(row)
            name, ms = best(row)
            s = speed(row)
            print(f"{row['name']:24s} {row['dims']:32s} torch {row['ms'].get('torch', float('nan')):8.3f} "
                  f"auto {row['ms']['auto']:8.3f} ({row['picked']}) {s if s else float('nan'):5.2f}x  "
                  f"best {name} {ms:.3f} auto/best {row['ms']['auto'] / ms:.2f}"
                  + (f"  WRONG {row['wrong']}" if row["wrong"] else ""), flush=True)
        print(f"{time.perf_counter() - begin:.0f} s")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"command": command, "rows": rows}, f, indent=1)
    lines = report(rows, command, args.threads, args.repeat)
    for line in lines[8:12 + 9]:
        if line.startswith(("all", "fitted", "held", "  ")):
            print(line)
    out = args.out or os.path.join(HERE, "results", f"{datetime.date.today():%Y-%m-%d}_{machine_tag()}_batch{args.batch}.md")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
