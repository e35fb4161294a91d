"""python -m fastconv bench: check, then time every shape x algorithm x pass against torch (and
scipy for the FFT baseline), sweep the kernel size, and write a table, CSV/JSON/MD and PNG plots.

Exit code 0, or 1 when an algorithm failed its correctness check; argument errors exit with 2."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import socket
import sys
import time

import numpy as np

from .. import cuda, runtime
from ..cli._common import cuda_unavailable_reason
from . import measure, report, suite
from .measure import ALGO_FAMILIES, CONV_PASSES

COMPARE = ("torch", "scipy")
DEFAULT_OUT = "bench-results"


def _one_line_error(parser):
    def error(message):
        parser.exit(2, f"{parser.prog}: error: {message}\n")

    return error


def _shape_arg(text: str) -> suite.Shape:
    try:
        return suite.parse_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--shape {text}: {e}") from None


def _list_arg(allowed):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, bad)) or 'empty list'}; expected a comma-separated subset of {','.join(allowed)}")
        return items

    return parse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `bench` subcommand to python -m fastconv's subparsers."""
    from ..conv import ALGORITHMS

    algos = ("auto", *dict.fromkeys((*ALGO_FAMILIES, *ALGORITHMS)))
    p = subparsers.add_parser("bench", help="benchmark every algorithm against torch; tables and plots",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="batch 1, 3 repeats, small sweeps: about 14 s on a quiet 2-core machine, where the "
                        "full suite takes about 52 s (longer while other jobs run)")
    p.add_argument("--shapes", nargs="+", metavar="FILE.csv|NAME",
                   help="a shapes CSV, or names from the default suite (default: the whole suite)")
    p.add_argument("--shape", action="append", type=_shape_arg, metavar="N,C,H,W,K,R,S,stride,pad",
                   help="an extra convolution (repeatable)")
    p.add_argument("--algos", type=_list_arg(algos), default=["auto", *ALGO_FAMILIES], help="default: " + ",".join(["auto", *ALGO_FAMILIES]))
    p.add_argument("--passes", type=_list_arg(tuple(CONV_PASSES)), default=list(CONV_PASSES),
                   help="comma-separated subset of " + ",".join(CONV_PASSES) + " (default: all)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default cpu")
    p.add_argument("--compare", type=_list_arg(COMPARE), default=list(COMPARE),
                   help="references to time alongside: torch,scipy (default both; one not installed is skipped)")
    p.add_argument("--sweep", action="append", choices=tuple(suite.SWEEPS), default=[],
                   help="time vs kernel size (always run: the crossover plot), image size or channels")
    p.add_argument("--threads", type=int, help="threads for fastconv and torch (default: fastconv's current setting)")
    p.add_argument("--repeat", type=int, help="timed rounds per case (default 10, --quick 3)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"output folder (default {DEFAULT_OUT}); must be new or empty unless --force")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out, replacing the files of an earlier run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.error = _one_line_error(p)
    p.set_defaults(func=lambda args: run(args, p), parser=p)
    return p


def _select_shapes(args, parser) -> tuple[list[suite.Shape], bool]:
    """(convolution shapes, whether this is the default suite)."""
    shapes = []
    if args.shapes:
        if len(args.shapes) == 1 and args.shapes[0].endswith(".csv"):
            try:
                shapes = suite.load_shapes(args.shapes[0])
            except (OSError, ValueError) as e:
                parser.error(f"--shapes: {e}")
        else:
            known = {s.name: s for s in suite.load_shapes()}
            unknown = [n for n in args.shapes if n not in known]
            if unknown:
                parser.error(f"--shapes: unknown {', '.join(unknown)}; known: {', '.join(known)}")
            shapes = [known[n] for n in args.shapes]
    shapes += args.shape or []
    default = not shapes
    if default:
        shapes = suite.load_shapes()
    if args.quick and default:
        shapes = [s.with_batch(1) for s in shapes]
    return shapes, default


def _measure_bandwidth() -> float:
    """GB/s of a 64 MiB numpy copy (read + write), best of 5: the roofline's memory slope."""
    a = np.ones(16 << 20, np.float32)
    b = np.empty_like(a)
    best = min(_timed(lambda: np.copyto(b, a)) for _ in range(5))
    return 2 * a.nbytes / best / 1e9


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def _meta(args, threads, peak, bandwidth, compare_status) -> dict:
    versions = {"fastconv": runtime.__version__, "numpy": np.__version__, "python": platform.python_version()}
    for mod in ("torch", "scipy", "matplotlib"):
        m = measure.optional_module(mod)
        versions[mod] = getattr(m, "__version__", "?") if m else "not installed"
    info = runtime.info()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": socket.gethostname(),
        "cpu_model": info["cpu_model"],
        "cpu_path": info["cpu_path"],
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "device": args.device,
        "peak_gflops": round(peak, 1) if peak else None,
        "copy_bandwidth_gbs": round(bandwidth, 1) if bandwidth else None,
        "versions": versions,
        "compare": compare_status,
        "command": "python -m fastconv " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "quick": args.quick,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def run(args, parser) -> int:
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads: must be >= 1, got {args.threads}")
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat: must be >= 1, got {args.repeat}")
    why_no_cuda = cuda_unavailable_reason() if args.device == "cuda" else None
    if why_no_cuda:
        parser.error(f"--device cuda: {why_no_cuda}")
    if os.path.isdir(args.out) and os.listdir(args.out) and not args.force:  # e.g. committed results
        parser.error(f"--out {args.out}: not empty; choose a new folder, or pass --force to overwrite its results")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out}: exists and is not a folder")
    shapes, default_suite = _select_shapes(args, parser)
    threads = args.threads or runtime.get_num_threads()
    repeat = args.repeat or (3 if args.quick else 10)
    warmup = 1 if args.quick else 2
    algos = measure.expand_algos(args.algos)
    runtime.set_num_threads(threads)
    compare_status = {}
    for name in COMPARE:
        if name not in args.compare:
            compare_status[name] = "not requested"
        elif measure.optional_module(name) is None:
            compare_status[name] = "skipped (not installed)"
        else:
            compare_status[name] = "timed alongside"
    torch = measure.optional_module("torch") if "torch" in args.compare else None
    if torch is not None:
        torch.set_num_threads(threads)
    os.makedirs(args.out, exist_ok=True)

    from .peak import peak_gflops

    # The roofline's ceilings are the CPU's; on the GPU only achieved GFLOP/s are reported.
    cpu = args.device == "cpu"
    peak = peak_gflops(threads, iterations=10_000_000 if args.quick else 20_000_000, repeats=5) if cpu else None
    bandwidth = _measure_bandwidth() if cpu else None

    # The work list: (label, thunk returning rows).
    tasks = [(s.name, lambda s=s: measure.bench_conv_shape(s, algos, args.passes, repeat, warmup, args.compare, peak,
                                                           device=args.device)) for s in shapes]
    sweep_base = None if default_suite else shapes[0]
    for kind in dict.fromkeys(["kernel", *args.sweep]):
        for s in suite.sweep_shapes(kind, args.quick, sweep_base):
            tasks.append((f"sweep {s.name}", lambda s=s, k=kind: measure.bench_conv_shape(
                s, algos, args.passes, repeat, warmup, [c for c in args.compare if c == "torch"], peak, section=f"sweep-{k}",
                device=args.device)))
    if default_suite and cpu:  # the pooling and GEMM sections time the CPU kernels
        from .gemm import bench_gemm
        from .pool import bench_pool

        tasks.append(("pooling", lambda: bench_pool(repeat, warmup, args.compare, quick=args.quick)))
        tasks.append(("gemm", lambda: bench_gemm(repeat, warmup, peak, quick=args.quick)))

    progress = None
    if not args.no_progress:
        tqdm = measure.optional_module("tqdm")
        if tqdm is not None:
            progress = tqdm.tqdm(total=len(tasks), unit="case", file=sys.stderr)
    ceilings = f"peak {peak:.0f} GFLOP/s (FMA loop), copy {bandwidth:.0f} GB/s" if cpu else cuda.get_device_name(0)
    print(f"fastconv bench: {len(tasks)} groups on {args.device}, {threads} threads, {ceilings}; "
          f"torch: {compare_status['torch']}, scipy: {compare_status['scipy']}", flush=True)
    if torch is None:
        hint = " (pip install torch to add it)" if "not installed" in compare_status["torch"] else ""
        print(f"torch {compare_status['torch']}: nothing is compared against torch{hint}", flush=True)
    rows = []
    for label, task in tasks:
        if progress is not None:
            progress.set_description(label)
        else:
            print(f"  {label} ...", flush=True)
        rows.extend(task())
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.close()

    print("\n".join(report.table_lines(rows)))
    meta = _meta(args, threads, peak, bandwidth, compare_status)
    plots = []
    matplotlib = measure.optional_module("matplotlib")
    if matplotlib is None:
        print("matplotlib not installed: no plots")
    else:
        report.plot_gflops(rows, os.path.join(args.out, "gflops_by_shape.png"))
        report.plot_sweep(rows, "sweep-kernel", "kernel size R = S", lambda r: int(r.dims.split(",")[5]),
                          os.path.join(args.out, "kernel_crossover.png"), suite.sweep_title("kernel", args.quick, sweep_base))
        report.plot_roofline(rows, peak, bandwidth, os.path.join(args.out, "roofline.png"))
        plots = ["gflops_by_shape.png", "kernel_crossover.png", "roofline.png"]
        for kind, field, label in (("image", 2, "image size H = W"), ("channels", 1, "channels C = K")):
            if kind in args.sweep:
                report.plot_sweep(rows, f"sweep-{kind}", label, lambda r, i=field: int(r.dims.split(",")[i]),
                                  os.path.join(args.out, f"sweep_{kind}.png"), suite.sweep_title(kind, args.quick, sweep_base))
                plots.append(f"sweep_{kind}.png")
    report.write_csv(rows, os.path.join(args.out, "results.csv"))
    report.write_json(rows, meta, os.path.join(args.out, "results.json"))
    report.write_md(rows, meta, os.path.join(args.out, "results.md"), plots)
    wrong = [r for r in rows if r.status == "WRONG"]
    print(f"wrote results.csv, results.json, results.md{''.join(', ' + p for p in plots)} to {args.out}")
    if wrong:
        print(f"{len(wrong)} case(s) FAILED the correctness check: " + ", ".join(f"{r.name}/{r.pass_}/{r.picked}" for r in wrong))
        return 1
    return 0
