"""The per-algorithm convolution table of benchmarks/bench_conv.py: for each shape and pass (forward,
input, weight) every algorithm is first checked against the float64 reference
(fastconv.bench.reference) on the first images of the batch, and is not timed if it disagrees;
then ours and torch (F.conv2d under no_grad, torch.nn.grad.conv2d_input/conv2d_weight) run
in alternating warmed blocks of calls with a pause between the sides, with the same thread count. GFLOP/s counts 2*N*K*(C/groups)*R*S*P*Q per pass."""

from __future__ import annotations

import datetime
import math
import os
import statistics
from dataclasses import dataclass, field

import numpy as np

from .. import conv as conv_mod
from ..conv import conv_algorithms
from ..runtime import info as build_info
from . import measure, suite
from . import reference as float64_ref
from .suite import Shape

PASSES = conv_mod.PASSES
# Alternating blocks of BLOCK calls with SETTLE_S between the sides: on a 2-core machine call-by-call
# alternation times oneDNN's and our OpenMP threads spinning against each other, not the kernels.
BLOCK, SETTLE_S = 5, 0.15
CHECK_BATCH = 2  # images checked against the float64 reference (the kernels treat images alike)


@dataclass
class Row:
    shape: str
    pass_: str
    algo: str  # "auto" rows name the algorithm picked in `picked`
    picked: str
    ms: float | None
    torch_ms: float | None
    gflops: float | None
    error: float | None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.ms / self.torch_ms if self.ms and self.torch_ms else None


def load_shapes(path: str, names: list[str] | None = None) -> list[Shape]:
    """Rows of shapes.csv (parsed by fastconv.bench.suite), filtered by name."""
    shapes = suite.load_shapes(path)
    if names:
        unknown = set(names) - {s.name for s in shapes}
        if unknown:
            raise SystemExit(f"--shapes: unknown {sorted(unknown)}; known: {[s.name for s in shapes]}")
        shapes = [s for s in shapes if s.name in names]
    return shapes


def make_problem(shape: Shape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((shape.N, shape.C, shape.H, shape.W), dtype=np.float32)
    w = rng.standard_normal((shape.K, shape.C // shape.groups, shape.R, shape.S), dtype=np.float32)
    b = rng.standard_normal(shape.K, dtype=np.float32)
    plan = conv_mod.conv_plan(x.shape, w.shape, shape.stride, shape.pad, shape.dilation, shape.groups)
    dy = rng.standard_normal((shape.N, shape.K, plan.params.P, plan.params.Q), dtype=np.float32)
    return x, w, b, dy, plan.params


# One call of our pass (the function that gets timed): the bench CLI's, so both time the same call.
run_ours = measure.run_conv


def torch_callable(pass_: str, shape: Shape, x, w, b, dy):
    """torch's version of the pass on the same data, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
    kw = dict(stride=shape.stride, padding=shape.pad, dilation=shape.dilation, groups=shape.groups)
    if pass_ == "forward":

        def f():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, **kw)

        return f
    if pass_ == "input":
        return lambda: torch.nn.grad.conv2d_input(xt.shape, wt, dyt, **kw)
    return lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, dyt, **kw)


def reference(pass_: str, shape: Shape, x, w, b, dy):
    """float64 reference of the pass on the first CHECK_BATCH images (fastconv.bench.reference)."""
    n = min(CHECK_BATCH, shape.N)
    x, dy = x[:n], dy[:n]
    geometry = ((shape.stride,) * 2, (shape.pad,) * 2, (shape.dilation,) * 2, shape.groups)
    if pass_ == "forward":
        return float64_ref.conv2d(x, w, b, *geometry)
    if pass_ == "input":
        return float64_ref.conv2d_input(x.shape, w, dy, *geometry)
    return float64_ref.conv2d_weight(x, w.shape, dy, *geometry)


def check(pass_: str, algo: str, shape: Shape, x, w, b, dy, ref=None) -> tuple[float, bool]:
    """(relative error, within the bound) of our pass against the float64 reference on the first
    CHECK_BATCH images; the bound is the registry's, value-scaled (bench.reference.tolerance_ratio)."""
    n = min(CHECK_BATCH, shape.N)
    if ref is None:
        ref = reference(pass_, shape, x, w, b, dy)
    got = run_ours(pass_, algo, shape, x[:n], w, b, dy[:n])
    return float64_ref.relative_error(got, ref), float64_ref.tolerance_ratio(got, ref, measure.tolerance(algo)) <= 1.0


def bench_shape(shape: Shape, algos: list[str], passes: list[str], repeat: int, log=print, use_min: bool = False,
                gate: measure.QuietGate | None = None) -> list[Row]:
    """Check then time every requested algorithm ("auto" included) for each pass against torch
    (the median of the rounds, or with use_min their minimum; each round held by ``gate``)."""
    x, w, b, dy, params = make_problem(shape)
    rows = []
    for pass_ in passes:
        valid = conv_algorithms(x.shape, w.shape, pass_=pass_, **shape.conv_kwargs)
        auto = conv_mod.select_algorithm(params, pass_)
        fns, errors, skipped = {}, {}, []
        ref = reference(pass_, shape, x, w, b, dy)
        for algo in algos:
            name = auto if algo == "auto" else algo
            if name not in valid:
                skipped.append(Row(shape.name, pass_, algo, name, None, None, None, None, "not valid for this shape"))
                continue
            err, ok = check(pass_, name, shape, x, w, b, dy, ref)
            errors[algo] = err
            if not ok:
                skipped.append(Row(shape.name, pass_, algo, name, None, None, None, err, "WRONG: not timed"))
                log(f"{shape.name} {pass_} {algo}: relative error {err:.2e} exceeds the bound, not timed")
                continue
            fns[algo] = lambda a=name, p=pass_: run_ours(p, a, shape, x, w, b, dy)
        tf = torch_callable(pass_, shape, x, w, b, dy)
        if tf is not None:
            fns["torch"] = tf
        med = {k: v[1] if use_min else v[0] for k, v in measure.time_interleaved(fns, repeat, block=BLOCK, settle=SETTLE_S, gate=gate).items()}  # (median, min, max)
        for algo in algos:
            if algo not in med:
                continue
            ms = med[algo] * 1e3
            row = Row(shape.name, pass_, algo, auto if algo == "auto" else algo, ms, med.get("torch", 0) * 1e3 or None,
                      params.flops / med[algo] / 1e9, errors[algo])
            rows.append(row)
            log(f"{shape.name:11s} {pass_:10s} {algo:8s} {row.picked:8s} {ms:9.3f} ms {row.gflops:7.1f} GFLOP/s"
                + (f"  torch {row.torch_ms:9.3f} ms  ours/torch {row.ratio:5.2f}" if row.ratio else ""))
        rows.extend(skipped)
    return rows


def summarize(rows: list[Row]) -> list[str]:
    """Issue 19's bar over the "auto" rows: every (shape, pass) no slower than torch, and the
    geometric-mean speed-up over torch of the forward pass and of input + weight gradients (each
    shape's two gradient times summed), both to reach 1.5x."""
    auto = {(r.shape, r.pass_): r for r in rows if r.algo == "auto" and r.ratio}
    lines = []
    slower = sorted(f"{s} {p} ({r.ratio:.2f})" for (s, p), r in auto.items() if r.ratio > 1.0)
    if auto:
        lines.append(f"- slower than torch (auto): {len(slower)} of {len(auto)} (shape, pass) pairs"
                     + (f": {', '.join(slower)}" if slower else ""))
    fwd = [r.ratio for (s, p), r in auto.items() if p == "forward"]
    if fwd:
        lines.append(
            f"- forward (auto): {1 / _geomean(fwd):.2f}x torch's speed by geometric mean over {len(fwd)} shapes "
            f"(ours/torch time {_geomean(fwd):.3f}, worst {max(fwd):.2f})"
        )
    bwd = []
    for s in sorted({s for s, p in auto}):
        if (s, "input") in auto and (s, "weight") in auto:
            a, b = auto[(s, "input")], auto[(s, "weight")]
            bwd.append((a.ms + b.ms) / (a.torch_ms + b.torch_ms))
    if bwd:
        lines.append(
            f"- input + weight gradient (auto): {1 / _geomean(bwd):.2f}x torch's speed by geometric mean over "
            f"{len(bwd)} shapes (ours/torch time {_geomean(bwd):.3f}, worst {max(bwd):.2f})"
        )
    return lines


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.mean(map(math.log, values)))


def write_report(rows: list[Row], path: str, threads: int, command: str, repeat: int, stat: str = "median",
                 notes: tuple[str, ...] = ()) -> None:
    """The markdown report: machine and method, the bar's summary, every row; ``notes`` are extra
    method lines (e.g. the quiet gate's summary)."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    info = build_info()
    lines = [
        "# Convolution benchmark",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {info['cpu_model']} ({os.cpu_count()} logical CPUs), fastconv path {info['cpu_path']}",
        f"- threads: {threads} (ours and torch), {stat} of {repeat} rounds after warm-up, each round a block of "
        f"{BLOCK} calls per side with {SETTLE_S} s between the sides",
        f"- load average at the end: {os.getloadavg()[0]:.1f} (machine shared: ratios are what counts)",
        f"- fastconv {info['version']} ({info['compiler']}), torch {torch_version}, numpy {np.__version__}",
        f"- command: `{command}`",
        *(f"- {note}" for note in notes),
        f"- check: against the float64 reference on the first {CHECK_BATCH} images, value-scaled bound "
        f"from the registry ({ {a: measure.tolerance(a) for a in conv_mod.ALGORITHMS} }); algorithms outside it are not timed",
        "",
        "## Bar (issue 19)",
        *summarize(rows),
        "",
        "## All rows",
        "| shape | pass | algo | runs | ms | GFLOP/s | torch ms | ours/torch | rel. error | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        def fmt(v, spec):
            return format(v, spec) if v is not None else "-"

        lines.append(
            f"| {r.shape} | {r.pass_} | {r.algo} | {r.picked} | {fmt(r.ms, '.3f')} | {fmt(r.gflops, '.1f')} | "
            f"{fmt(r.torch_ms, '.3f')} | {fmt(r.ratio, '.2f')} | {fmt(r.error, '.1e')} | {r.note} |"
        )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
