"""Network layers as benchmark cases (benchmarks/layers_batch1.csv: rectangular strides and
padding, groups, dilation, a held_out flag and a source), and the check-then-time of one layer's
forward pass against torch: what benchmarks/bench_batch1.py and benchmarks/calibrate_cost.py share."""

from __future__ import annotations

import csv
import math

import numpy as np

from .. import _conv_algorithms as registry
from ..conv import auto_forward, conv2d, conv_plan
from . import reference as ref
from .measure import time_interleaved

BAR_GEOMEAN, BAR_WORST, BAR_AUTO_OVER_BEST = 1.2, 0.8, 1.25


def _pair(text: str) -> tuple[int, int]:
    """'2' -> (2, 2); '2x1' -> (2, 1)."""
    parts = [int(v) for v in text.lower().split("x")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def load_layers(path: str) -> list[dict]:
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
    """A layer's geometry in one short string, e.g. "32x81x350->32 21x11 s2x1 p10x5"."""
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


def bench_layer(layer: dict, batch: int, repeat: int, torch, gate=None) -> dict:
    """Check then time torch, auto and every applicable algorithm on one layer's forward pass
    (each round held by ``gate``, a measure.QuietGate, when given)."""
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
        call = (lambda a=name: conv2d(x, w, b, algo=a, **kw))
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
    res = time_interleaved(fns, repeat, warmup=1, block=5, settle=0.15, gate=gate)
    ms = {k: v[0] * 1e3 for k, v in res.items()}
    return dict(name=layer["name"], dims=dims(layer), held_out=layer["held_out"], source=layer["source"],
                batch=batch, gflop=params.flops / 1e9, picked=picked, ms=ms, wrong=wrong)


def geomean(values) -> float:
    """The geometric mean (nan for no values)."""
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
    # The choice alone: the picked kernel's own timing (same run) over the fastest's. auto and its
    # pick are the same kernel timed twice, so where they differ the gap is the machine's noise.
    picks = [(r["name"], r["ms"].get(r["picked"], r["ms"]["auto"]) / best(r)[1]) for r in rows]
    off_picks = [(n, v) for n, v in picks if v > BAR_AUTO_OVER_BEST]
    best_speed = geomean(r["ms"]["torch"] / best(r)[1] for r in rows)
    return [
        f"{label}: {len(rows)} layers; torch/auto geometric mean {geomean(speeds.values()):.2f}x "
        f"(bar >= {BAR_GEOMEAN}); best algorithm per layer would give {best_speed:.2f}x",
        f"  worst layer {worst} {speeds[worst]:.2f}x; {len(slow)} under {BAR_WORST}x"
        + (": " + ", ".join(f"{n} {speeds[n]:.2f}" for n in slow) if slow else ""),
        f"  auto > {BAR_AUTO_OVER_BEST}x the best algorithm on {len(off)}"
        + (": " + ", ".join(f"{n} {v:.2f}" for n, v in off) if off else ""),
        f"  auto's pick (its own timing) > {BAR_AUTO_OVER_BEST}x the best on {len(off_picks)}"
        + (": " + ", ".join(f"{n} {v:.2f}" for n, v in off_picks) if off_picks else "")
        + f"; pick/best geometric mean {geomean(v for _, v in picks):.3f}",
    ]
