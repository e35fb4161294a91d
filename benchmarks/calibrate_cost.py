"""Calibrate the forward cost model (src/fastconv/_conv_cost.py): fit each algorithm's constants
(per-call overhead, inverse machine rates) to measured times, and write them to
src/fastconv/_conv_cost_rates.py with the date and the measurement files they came from.

The measurements are bench_batch1.py's --json files (every algorithm that can run a layer, timed
block-alternating; --measure runs them now, under the exclusive lock). Only layers NOT marked
held_out in benchmarks/layers_batch1.csv are used: the held-out ones judge the model. The fit is a
non-negative least squares on relative error (each layer's row divided by its measured time), so
a 0.05 ms layer weighs as much as a 50 ms one.

    python3 benchmarks/calibrate_cost.py --from results_a.json,results_b.json [--write]
    python3 benchmarks/calibrate_cost.py --from batch1.json,suite.json --layers-files benchmarks/layers_batch1.csv,benchmarks/shapes.csv
    python3 benchmarks/calibrate_cost.py --measure --batch 1 --json calib.json --write
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys

import numpy as np
from scipy.optimize import nnls

import fastconv
from fastconv import _conv_cost
from fastconv.bench.layer_bench import bench_layer, load_layers
from fastconv.conv import conv_plan

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS_CSV = os.path.join(HERE, "layers_batch1.csv")

RATES_PY = os.path.join(HERE, os.pardir, "src", "fastconv", "_conv_cost_rates.py")
THREADS = 2


def layer_params(layer: dict, batch: int):
    x = (batch, layer["C"], layer["H"], layer["W"])
    w = (layer["K"], layer["C"] // layer["groups"], layer["R"], layer["S"])
    return conv_plan(x, w, layer["stride"], layer["pad"], layer["dilation"], layer["groups"]).params


def samples(rows: list[dict], layers: dict) -> dict:
    """algorithm -> list of (features, seconds, layer name, FLOPs) over the rows of fitted layers."""
    out: dict = {}
    for row in rows:
        layer = layers.get(row["name"])
        if layer is None or layer["held_out"]:
            continue
        p = layer_params(layer, row["batch"])
        for name, ms in row["ms"].items():
            if name in _conv_cost.FEATURES:
                out.setdefault(name, []).append((_conv_cost.FEATURES[name](p, THREADS), ms / 1e3, row["name"], p.flops))
    return out


def fit(points) -> tuple[list[float], float]:
    """NNLS constants on relative error, and the geometric-mean |log(model / measured)| factor."""
    a = np.array([f for f, *_ in points], dtype=np.float64)
    t = np.array([s for _, s, *_ in points], dtype=np.float64)
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(a / t[:, None] / scale, np.ones_like(t))
    coef = coef / scale
    pred = a @ coef
    err = math.exp(float(np.mean(np.abs(np.log(np.maximum(pred, 1e-12) / t)))))
    return [float(c) for c in coef], err


def evaluate(rows: list[dict], layers: dict, rates: dict, held_out: bool) -> list[str]:
    """How the model's pick among the timed kernels compares with the fastest timed kernel, over the
    fitted or the held-out layers (depthwise and pointwise layers excluded: hard rules pick for them)."""
    ratios = []
    for row in rows:
        layer = layers.get(row["name"])
        if layer is None or layer["held_out"] != held_out or "depthwise" in row["ms"]:
            continue
        p = layer_params(layer, row["batch"])
        if (p.R, p.S, p.stride_h, p.stride_w, p.pad_h, p.pad_w) == (1, 1, 1, 1, 0, 0):
            continue  # pointwise: a hard rule picks im2col
        timed = {n: ms for n, ms in row["ms"].items() if n in _conv_cost.FEATURES and n in rates}
        model = {n: sum(c * f for c, f in zip(rates[n], _conv_cost.FEATURES[n](p, THREADS))) for n in timed}
        pick = min(model, key=model.get)
        ratios.append((timed[pick] / min(timed.values()), row["name"], pick, min(timed, key=timed.get)))
    if not ratios:
        return []
    gm = math.exp(sum(math.log(r) for r, *_ in ratios) / len(ratios))
    off = sorted((r for r in ratios if r[0] > 1.25), reverse=True)
    return [f"{'held-out' if held_out else 'fitted'}: {len(ratios)} layers, model pick / fastest kernel geomean "
            f"{gm:.3f}, worst {max(ratios)[0]:.2f}; over 1.25x: "
            + (", ".join(f"{n} {r:.2f} ({pick} vs {best})" for r, n, pick, best in off) or "none")]


def write_rates(rates: dict, errors: dict, sources: list[str], layer_files: list[str], min_flops: dict,
                path: str = RATES_PY) -> None:
    lines = [
        '"""Constants of the forward cost model (_conv_cost.FEATURES order per algorithm: seconds per',
        "feature unit), fitted by benchmarks/calibrate_cost.py to block-alternated timings at",
        f"{THREADS} threads on the layers not marked held_out of {', '.join(layer_files)}.",
        f"Fitted {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC from: {', '.join(sources)}.",
        "Fit quality (geometric mean of |model / measured| per algorithm): "
        + ", ".join(f"{n} {e:.2f}x" for n, e in errors.items()) + '."""',
        "",
        "#: FLOPs of the smallest problem each kernel's constants were fitted on (its calibrated range).",
        "MIN_FLOPS = {" + ", ".join(f"{n!r}: {v:.4g}" for n, v in min_flops.items()) + "}",
        "",
        "RATES = {",
    ]
    for name, coef in rates.items():
        lines.append(f"    {name!r}: ({', '.join(f'{c:.4g}' for c in coef)}),")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="sources", default="", help="comma-separated bench_batch1 --json files")
    ap.add_argument("--layers-files", default=LAYERS_CSV,
                    help="comma-separated layer CSVs the --from rows name (held_out rows are not fitted)")
    ap.add_argument("--measure", action="store_true", help="time the fitted layers now (exclusive lock!)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default="", help="with --measure: where to keep the timings")
    ap.add_argument("--write", action="store_true", help="write src/fastconv/_conv_cost_rates.py")
    args = ap.parse_args(argv)

    layers = {layer["name"]: layer for path in args.layers_files.split(",") for layer in load_layers(path)}
    rows, sources = [], []
    for path in filter(None, args.sources.split(",")):
        with open(path) as f:
            rows.extend(json.load(f)["rows"])
        sources.append(os.path.relpath(path, os.path.join(HERE, os.pardir)))
    if args.measure:
        fastconv.set_num_threads(THREADS)
        import torch

        torch.set_num_threads(THREADS)
        measured = [bench_layer(layer, args.batch, args.repeat, torch) for layer in layers.values() if not layer["held_out"]]
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"command": "calibrate_cost.py --measure", "rows": measured}, f, indent=1)
            sources.append(os.path.relpath(args.json, os.path.join(HERE, os.pardir)))
        rows.extend(measured)
    if not rows:
        raise SystemExit("nothing to fit: give --from or --measure")
    rates, errors = {}, {}
    fitted = samples(rows, layers)
    min_flops = {name: min(flops for *_, flops in points) for name, points in fitted.items()}
    for name, points in fitted.items():
        rates[name], errors[name] = fit(points)
        print(f"{name:14s} {len(points):3d} layers  model/measured within {errors[name]:.2f}x (geomean)  "
              f"constants {', '.join(f'{c:.3g}' for c in rates[name])}")
    for held_out in (False, True):
        for line in evaluate(rows, layers, rates, held_out):
            print(line)
    if args.write:
        write_rates(rates, errors, sources,
                    [os.path.relpath(f, os.path.join(HERE, os.pardir)) for f in args.layers_files.split(",")], min_flops)
        print("wrote", os.path.relpath(RATES_PY))
    return 0


if __name__ == "__main__":
    sys.exit(main())
