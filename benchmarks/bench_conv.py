"""Convolution benchmark: every algorithm x pass over benchmarks/shapes.csv against torch.

For each shape and pass (fwd, bwd_input, bwd_weight) each algorithm is first checked against the
float64 reference (tests/reference.py) on the first images of the batch, and is not timed if it
disagrees. Then ours and torch (F.conv2d under no_grad, torch.nn.grad.conv2d_input/conv2d_weight)
run interleaved with the same thread count: warm-up, then the median of --repeat rounds.
GFLOP/s counts 2*N*K*(C/groups)*R*S*P*Q per pass. Writes benchmarks/results/<date>_<machine>_conv.md.

    python3 benchmarks/bench_conv.py --threads 2 [--shapes lenet_c1,stride2] [--algos auto,direct] [--repeat 15]

The functions (load_shapes, check, bench_shape, summarize, write_report) are
importable for other drivers (python -m fastconv bench).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import re
import statistics
import sys
import timeit
from dataclasses import dataclass, field

import numpy as np

import fastconv
from fastconv import conv as conv_mod
from fastconv.bench import measure, suite
from fastconv.bench.suite import Shape

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from reference import conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref, relative_error  # noqa: E402

PASSES = {"fwd": "forward", "bwd_input": "input", "bwd_weight": "weight"}
# Bounds as in tests/test_conv.py: 1e-5 unless listed (FFT 1e-4, Winograd F(4x4) 5e-4).
TOLERANCE = {"fft": 1e-4, "winograd": 5e-4, "winograd_f4": 5e-4}
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
    plan = conv_mod._plan(x.shape, w.shape, shape.stride, shape.pad, shape.dilation, shape.groups)
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
    if pass_ == "fwd":

        def f():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, **kw)

        return f
    if pass_ == "bwd_input":
        return lambda: torch.nn.grad.conv2d_input(xt.shape, wt, dyt, **kw)
    return lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, dyt, **kw)


def reference(pass_: str, shape: Shape, x, w, b, dy):
    """float64 reference of the pass on the first CHECK_BATCH images (tests/reference.py)."""
    n = min(CHECK_BATCH, shape.N)
    x, dy = x[:n], dy[:n]
    kw = dict(stride=(shape.stride,) * 2, padding=(shape.pad,) * 2, dilation=(shape.dilation,) * 2, groups=shape.groups)
    if pass_ == "fwd":
        return conv2d_ref(x, w, b, **kw)
    if pass_ == "bwd_input":
        return conv2d_input_grad_ref(x.shape, w, dy, **kw)
    return conv2d_weight_grad_ref(x, w.shape, dy, **kw)


def check(pass_: str, algo: str, shape: Shape, x, w, b, dy, ref=None) -> float:
    """Relative error of our pass vs the float64 reference on the first CHECK_BATCH images."""
    n = min(CHECK_BATCH, shape.N)
    if ref is None:
        ref = reference(pass_, shape, x, w, b, dy)
    return relative_error(run_ours(pass_, algo, shape, x[:n], w, b, dy[:n]), ref)


def bench_shape(shape: Shape, algos: list[str], passes: list[str], repeat: int, log=print, use_min: bool = False) -> list[Row]:
    """Check then time every requested algorithm ("auto" included) for each pass against torch
    (the median of the rounds, or with use_min their minimum)."""
    x, w, b, dy, params = make_problem(shape)
    rows = []
    for pass_ in passes:
        valid = fastconv.conv_algorithms(x.shape, w.shape, pass_=PASSES[pass_], **shape.conv_kwargs)
        auto = conv_mod.select_algorithm(params, PASSES[pass_])
        fns, errors, skipped = {}, {}, []
        ref = reference(pass_, shape, x, w, b, dy)
        for algo in algos:
            name = auto if algo == "auto" else algo
            if name not in valid:
                skipped.append(Row(shape.name, pass_, algo, name, None, None, None, None, "not valid for this shape"))
                continue
            err = check(pass_, name, shape, x, w, b, dy, ref)
            errors[algo] = err
            if not err <= TOLERANCE.get(name, 1e-5):
                skipped.append(Row(shape.name, pass_, algo, name, None, None, None, err, "WRONG: not timed"))
                log(f"{shape.name} {pass_} {algo}: relative error {err:.2e} exceeds the bound, not timed")
                continue
            fns[algo] = lambda a=name, p=pass_: run_ours(p, a, shape, x, w, b, dy)
        tf = torch_callable(pass_, shape, x, w, b, dy)
        if tf is not None:
            fns["torch"] = tf
        med = {k: v[1] if use_min else v[0] for k, v in measure.time_interleaved(fns, repeat).items()}  # (median, min, max)
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
    """The issue's bar, computed over the "auto" rows."""
    auto = {(r.shape, r.pass_): r for r in rows if r.algo == "auto" and r.ratio}
    lines = []
    fwd = [r.ratio for (s, p), r in auto.items() if p == "fwd"]
    if fwd:
        lines.append(
            f"- forward (auto): no slower than torch on {sum(q <= 1.0 for q in fwd)} of {len(fwd)} shapes, "
            f"worst ratio {max(fwd):.2f}, geometric mean of ours/torch {math.exp(statistics.mean(map(math.log, fwd))):.3f}"
        )
    shapes = {s for s, p in auto}
    bwd = []
    for s in sorted(shapes):
        if (s, "bwd_input") in auto and (s, "bwd_weight") in auto:
            a, b = auto[(s, "bwd_input")], auto[(s, "bwd_weight")]
            bwd.append((a.ms + b.ms) / (a.torch_ms + b.torch_ms))
    if bwd:
        lines.append(
            f"- input + weight gradient (auto): geometric mean of ours/torch {math.exp(statistics.mean(map(math.log, bwd))):.3f} "
            f"over {len(bwd)} shapes (worst {max(bwd):.2f})"
        )
    return lines


def machine_tag() -> str:
    model = fastconv._cpu_model()
    m = re.search(r"(EPYC|Xeon|Ryzen|Core|Apple M\d)", model)
    return (m.group(1).lower().replace(" ", "") if m else platform.machine()) + f"{os.cpu_count()}c"


def time_against_auto(calls: dict, pick: str, number: int, digits: int = 2) -> tuple[str, float, dict]:
    """Time each algorithm's call (best of 5 repeats of `number` calls, after a warm-up call) and
    compare with `pick`, auto's choice. Returns the table cells "ms | ms | ... | fastest | pick |
    pick / fastest |", that ratio, and the ms per call of each algorithm."""
    ms = {}
    for algo, call in calls.items():
        call()
        ms[algo] = min(timeit.repeat(call, number=number, repeat=5)) / number * 1e3
    fastest = min(ms, key=ms.get)
    ratio = ms[pick] / ms[fastest]
    return " | ".join(f"{v:.{digits}f}" for v in ms.values()) + f" | {fastest} | {pick} | {ratio:.2f} |", ratio, ms


def write_sweep(slug: str, title: str, notes: list[str], table: list[str], out: str = "") -> str:
    """Write a sweep's markdown table to `out` or benchmarks/results/<date>_<machine>_<slug>.md, under
    a header with the date, `notes` (one bullet each) and this build; returns the path."""
    today = datetime.date.today()
    info = fastconv.info()
    lines = [f"# {title} ({today})", "", *(f"- {note}" for note in notes),
             f"- fastconv {fastconv.__version__}, {info['cpu_model']}, path {info['cpu_path']}", "", *table, ""]
    path = out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                               f"{today:%Y-%m-%d}_{machine_tag()}_{slug}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {path}")
    return path


def write_report(rows: list[Row], path: str, threads: int, command: str, repeat: int, stat: str = "median") -> None:
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    info = fastconv.info()
    lines = [
        "# Convolution benchmark",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {info['cpu_model']} ({os.cpu_count()} logical CPUs), fastconv path {info['cpu_path']}",
        f"- threads: {threads} (ours and torch), {stat} of {repeat} interleaved rounds after warm-up",
        f"- load average at the end: {os.getloadavg()[0]:.1f} (machine shared: ratios are what counts)",
        f"- fastconv {info['version']} ({info['compiler']}), torch {torch_version}, numpy {np.__version__}",
        f"- command: `{command}`",
        f"- check: relative error vs the float64 reference on the first {CHECK_BATCH} images, bound 1e-5 "
        f"(looser: {TOLERANCE}); algorithms above it are not timed",
        "",
        "## Bar (issue 3)",
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
    args = ap.parse_args(argv)

    fastconv.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        print("torch not installed: no reference timings")
    algos = args.algos.split(",") if args.algos else ["auto", *conv_mod.ALGORITHMS]
    passes = args.passes.split(",")
    for p in passes:
        if p not in PASSES:
            raise SystemExit(f"--passes: unknown pass {p!r}")
    shapes = load_shapes(args.shapes_file, args.shapes.split(",") if args.shapes else None)
    rows = []
    for shape in shapes:
        rows.extend(bench_shape(shape, algos, passes, args.repeat, use_min=args.stat == "min"))
    for line in summarize(rows):
        print(line)
    out = args.out or os.path.join(HERE, "results", f"{datetime.date.today():%Y-%m-%d}_{machine_tag()}_conv.md")
    write_report(rows, out, args.threads, "python3 " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])), args.repeat, args.stat)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
