"""Depthwise convolutions (groups == C) of MobileNetV2, MobileNetV3/EfficientNet and ConvNeXt: auto,
depthwise and direct against torch, every pass, at batch 1 and a training batch.

The measurements behind select_algorithm's depthwise rule. Each case is first checked against the
float64 reference on its first 2 images (an algorithm outside its registry bound is not timed),
then ours and torch run in alternating warmed blocks of 5 calls with 0.15 s between the sides
(fastconv.bench.conv_table.bench_shape), --repeat rounds; the whole list is run --runs times
and each cell reports the median over runs of the per-run medians, with the spread of ours/torch
over the runs. Layers marked "held out" were not used to fit the rule.

    python3 benchmarks/bench_depthwise.py --threads 2 --batches 1,16 --runs 3

Writes benchmarks/results/<date>_<machine>_depthwise.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time

import fastconv
from fastconv.bench.conv_table import BLOCK, CHECK_BATCH, PASSES, SETTLE_S, bench_shape
from fastconv.bench.measure import set_threads_both
from fastconv.bench.suite import Shape
from fastconv.bench.sweep import results_path

HERE = os.path.dirname(os.path.abspath(__file__))
ALGOS = ("auto", "depthwise", "direct")

# (name, channels, H = W, kernel, stride, held out of the rule's fit); padding kernel // 2.
LAYERS = [
    ("mnv2_32x112", 32, 112, 3, 1, False),
    ("mnv2_96x112_s2", 96, 112, 3, 2, False),
    ("mnv2_144x56", 144, 56, 3, 1, False),
    ("mnv2_144x56_s2", 144, 56, 3, 2, False),
    ("mnv2_192x28", 192, 28, 3, 1, False),
    ("mnv2_384x14", 384, 14, 3, 1, False),
    ("mnv2_576x14", 576, 14, 3, 1, False),
    ("mnv2_576x14_s2", 576, 14, 3, 2, True),
    ("mnv2_960x7", 960, 7, 3, 1, False),
    ("mnv3_72x56_5s2", 72, 56, 5, 2, False),
    ("mnv3_120x28_5", 120, 28, 5, 1, False),
    ("mnv3_672x14_5", 672, 14, 5, 1, False),
    ("mnv3_960x7_5", 960, 7, 5, 1, False),
    ("mnv3s_88x28", 88, 28, 3, 1, True),
    ("effb0_240x28_5s2", 240, 28, 5, 2, True),
    ("effb0_480x14_5", 480, 14, 5, 1, True),
    ("convnext_96x56_7", 96, 56, 7, 1, False),
    ("convnext_384x14_7", 384, 14, 7, 1, True),
]


def layer_shapes(batches: list[int], names: list[str] | None) -> list[tuple[Shape, bool]]:
    """(Shape, held out) for every layer at every batch size."""
    known = {name for name, *_ in LAYERS}
    if names and set(names) - known:
        raise SystemExit(f"--layers: unknown {sorted(set(names) - known)}; known: {sorted(known)}")
    return [(Shape(f"{name}_n{n}", n, c, h, h, c, k, k, s, k // 2, groups=c), held)
            for n in batches for name, c, h, k, s, held in LAYERS if not names or name in names]


def wait_for_quiet(max_load: float, max_wait_s: float = 900.0) -> float:
    """Sleep until the 1-minute load average is below max_load (at most max_wait_s); returns it."""
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(10)
    return os.getloadavg()[0]


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def combine(runs: list[list]) -> list[dict]:
    """Per (shape, pass, algo): the median over runs of ms and torch ms, and ours/torch (median, min, max)."""
    cells: dict = {}
    for rows in runs:
        for r in rows:
            if r.ms is None:
                cells.setdefault((r.shape, r.pass_, r.algo), {"rows": [], "note": r.note, "picked": r.picked})
                continue
            cells.setdefault((r.shape, r.pass_, r.algo), {"rows": [], "note": "", "picked": r.picked})["rows"].append(r)
    out = []
    for (shape, pass_, algo), cell in cells.items():
        rows = cell["rows"]
        row = {"shape": shape, "pass": pass_, "algo": algo, "picked": cell["picked"], "note": cell["note"]}
        if rows:
            ratios = [r.ratio for r in rows if r.ratio]
            ms = statistics.median(r.ms for r in rows)
            flops = rows[0].gflops * rows[0].ms * 1e6  # the pass's FLOPs: GFLOP/s * ms
            row.update(ms=ms, gflops=flops / ms / 1e6,
                       torch_ms=statistics.median(r.torch_ms for r in rows if r.torch_ms) if ratios else None,
                       ratio=statistics.median(ratios) if ratios else None,
                       lo=min(ratios) if ratios else None, hi=max(ratios) if ratios else None,
                       error=max(r.error for r in rows))
        out.append(row)
    return out


def summary(cells: list[dict], held: set[str]) -> list[str]:
    """The issue's bar over the auto rows: batch-1 forward, training-batch gradients."""
    lines = []
    auto = [c for c in cells if c["algo"] == "auto" and c.get("ratio")]
    for label, keep in (("batch 1, forward", lambda c: c["shape"].endswith("_n1") and c["pass"] == "forward"),
                        ("training batch, input gradient", lambda c: not c["shape"].endswith("_n1") and c["pass"] == "input"),
                        ("training batch, weight gradient", lambda c: not c["shape"].endswith("_n1") and c["pass"] == "weight"),
                        ("all cases", lambda c: True)):
        sel = [c for c in auto if keep(c)]
        if not sel:
            continue
        worst = max(sel, key=lambda c: c["ratio"])
        lines.append(f"- {label} (auto): no slower than torch in {sum(c['ratio'] <= 1.0 for c in sel)} of {len(sel)} "
                     f"(median ours/torch {statistics.median(c['ratio'] for c in sel):.2f}; worst {worst['ratio']:.2f}, "
                     f"{worst['shape']} {worst['pass']})")
    out = [c for c in auto if c["shape"].rsplit("_n", 1)[0] in held]
    if out:
        lines.append(f"- held-out layers (auto): no slower than torch in {sum(c['ratio'] <= 1.0 for c in out)} of {len(out)}")
    return lines


def write_report(path: str, cells: list[dict], args, command: str, held: set[str], loads: list[list[float]]) -> None:
    import numpy as np

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    info = fastconv.info()
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
    lines = [
        "# Depthwise convolution: auto, depthwise, direct against torch",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {info['cpu_model']} ({os.cpu_count()} logical CPUs), fastconv path {info['cpu_path']}; shared: "
        "1-minute load average before each layer, per run (min-median-max): "
        + ", ".join(f"{min(v):.1f}-{statistics.median(v):.1f}-{max(v):.1f}" for v in loads),
        f"- commit: {git_commit()}; fastconv {info['version']} ({info['compiler']}), torch {torch_version}, numpy {np.__version__}",
        f"- command: `{command}`",
        f"- method: block-alternating (fastconv.bench.measure.time_interleaved(block={BLOCK}, settle={SETTLE_S})): "
        f"{args.threads} threads each side, {args.repeat} rounds after warm-up, median per run; {args.runs} runs of the "
        "whole list; ms = median over runs; ours/torch = median over runs [min-max over runs]",
        f"- check: every algorithm against the float64 reference on the first {CHECK_BATCH} images before timing "
        "(registry bound, value-scaled); padding = kernel // 2; layers marked * are held out of the rule's fit",
        "",
        "## Bar (issue 19)",
        *summary(cells, held),
        "",
        "## All rows",
        "| layer | pass | algo | runs | ms | GFLOP/s | torch ms | ours/torch [spread] | rel. error | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        star = "*" if c["shape"].rsplit("_n", 1)[0] in held else ""
        spread = f"{fmt(c.get('ratio'), '.2f')} [{fmt(c.get('lo'), '.2f')}-{fmt(c.get('hi'), '.2f')}]" if c.get("ratio") else "-"
        lines.append(f"| {c['shape']}{star} | {c['pass']} | {c['algo']} | {c['picked']} | {fmt(c.get('ms'), '.3f')} | "
                     f"{fmt(c.get('gflops'), '.1f')} | {fmt(c.get('torch_ms'), '.3f')} | {spread} | "
                     f"{fmt(c.get('error'), '.1e')} | {c['note']} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    ap.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    ap.add_argument("--algos", default=",".join(ALGOS))
    ap.add_argument("--passes", default=",".join(PASSES))
    ap.add_argument("--repeat", type=int, default=5, help="rounds per run")
    ap.add_argument("--runs", type=int, default=3, help="runs of the whole list")
    ap.add_argument("--max-load", type=float, default=0.0,
                    help="before each layer wait (up to 15 min) for a 1-minute load average below this (0: don't)")
    ap.add_argument("--out", default="", help="report path (default benchmarks/results/<date>_<machine>_depthwise.md)")
    args = ap.parse_args(argv)
    set_threads_both(args.threads)
    shapes = layer_shapes([int(b) for b in args.batches.split(",")], args.layers.split(",") if args.layers else None)
    held = {name for name, *_, h in LAYERS if h}
    runs, loads = [], []
    for run in range(args.runs):
        print(f"# run {run + 1} of {args.runs} (load average {os.getloadavg()[0]:.1f})", flush=True)
        rows, run_loads = [], []
        for shape, _ in shapes:
            run_loads.append(wait_for_quiet(args.max_load) if args.max_load else os.getloadavg()[0])
            rows.extend(bench_shape(shape, args.algos.split(","), args.passes.split(","), args.repeat))
        runs.append(rows)
        loads.append(run_loads)
    cells = combine(runs)
    lines = summary(cells, held)
    print("\n".join(lines))
    out = results_path("depthwise", os.path.join(HERE, "results"), args.out)
    write_report(out, cells, args, "python3 " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])), held, loads)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
