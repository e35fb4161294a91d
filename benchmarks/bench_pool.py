"""Pooling benchmark: fastconv vs torch (same process, same thread count, interleaved).

Every shape x window x pass is checked against the float64 reference first, then ours and torch
are timed alternately after warm-up; reported: median with min/max, GB/s (bytes a pass must move
once) and the speed-up over torch. The measurement lives in fastconv.bench.pool (also run by
`python -m fastconv bench`); this script runs it alone and writes
benchmarks/results/<date>_<machine>_pool.md.

    python3 benchmarks/bench_pool.py [--threads 2] [--repeat 25] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import sys

import numpy as np

import fastconv
from fastconv.bench.measure import set_threads_both
from fastconv.bench.pool import bench_pool


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--machine", default=socket.gethostname().split(".")[0], help="name used in the results file name")
    ap.add_argument("--out", help="results file (default benchmarks/results/<date>_<machine>_pool.md)")
    args = ap.parse_args(argv)

    torch = set_threads_both(args.threads)

    def line(r):
        ref = r.refs.get("torch")
        return (f"{r.pass_:<12} {r.dims:<16} {r.name:<12} {r.ms:8.3f} ms ({r.ms_min:.3f}-{r.ms_max:.3f})  {r.gbps:6.1f} GB/s"
                + (f"  torch {ref:8.3f} ms  speed-up {ref / r.ms:5.2f}x" if ref else "  torch skipped (not installed)"))

    rows = bench_pool(args.repeat, warmup=3, compare=["torch"], log=lambda r: print(line(r) if r.ms else r.note, flush=True))

    today = datetime.date.today().isoformat()
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"{today}_{args.machine}_pool.md")
    info = fastconv.info()
    with open(out, "w") as f:
        f.write(f"# Pooling: fastconv vs torch ({today})\n\n")
        f.write(f"- CPU: {info['cpu_model']} ({os.cpu_count()} logical CPUs), fastconv path {info['cpu_path']}\n")
        f.write(f"- threads: {args.threads} (fastconv and torch), repeats: {args.repeat} interleaved, median (min-max)\n")
        f.write(f"- fastconv {fastconv.__version__}, torch {torch.__version__ if torch else 'not installed'}, "
                f"numpy {np.__version__}, Python {platform.python_version()}\n")
        f.write(f"- load average at the end (1/5/15 min): {'/'.join(f'{v:.1f}' for v in os.getloadavg())}\n")
        f.write(f"- command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`\n")
        f.write("- GB/s: bytes a pass must move once (input + output, + int64 indices where used) / median time.\n")
        f.write("  torch backward is the ATen kernel (max_pool2d_with_indices_backward / avg_pool2d_backward), no autograd.\n")
        f.write("  speed-up = torch time / our time (> 1: we are faster).\n\n")
        f.write("| pass | shape | window | ours ms (min-max) | torch ms | ours GB/s | torch GB/s | speed-up |\n")
        f.write("|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            if r.ms is None:
                f.write(f"| {r.pass_} | ({r.dims}) | {r.name} | {r.status}: {r.note} | | | | |\n")
                continue
            ref = r.refs.get("torch")
            f.write(f"| {r.pass_} | ({r.dims}) | {r.name} | {r.ms:.3f} ({r.ms_min:.3f}-{r.ms_max:.3f}) | "
                    + (f"{ref:.3f} | {r.gbps:.1f} | {r.bytes / ref / 1e6:.1f} | {ref / r.ms:.2f}x |\n" if ref else f"- | {r.gbps:.1f} | - | - |\n"))
    print(f"wrote {out}")
    return 1 if any(r.status == "WRONG" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
