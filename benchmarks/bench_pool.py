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
import sys

import numpy as np

import fastconv
from fastconv.bench import sweep
from fastconv.bench.measure import set_threads_both
from fastconv.bench.pool import bench_pool


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--out", help="results file (default benchmarks/results/<date>_<machine>_pool.md)")
    args = ap.parse_args(argv)

    torch = set_threads_both(args.threads)

    def line(r):
        ref = r.refs.get("torch")
        return (f"{r.pass_:<12} {r.dims:<16} {r.name:<12} {r.ms:8.3f} ms ({r.ms_min:.3f}-{r.ms_max:.3f})  {r.gbps:6.1f} GB/s"
                + (f"  torch {ref:8.3f} ms  speed-up {ref / r.ms:5.2f}x" if ref else "  torch skipped (not installed)"))

    rows = bench_pool(args.repeat, warmup=3, compare=["torch"], log=lambda r: print(line(r) if r.ms else r.note, flush=True))

    today = datetime.date.today().isoformat()
    info = fastconv.info()
    lines = [f"# Pooling: fastconv vs torch ({today})\n",
             f"- CPU: {info['cpu_model']} ({os.cpu_count()} logical CPUs), fastconv path {info['cpu_path']}",
             f"- threads: {args.threads} (fastconv and torch), repeats: {args.repeat} interleaved, median (min-max)",
             f"- fastconv {fastconv.__version__}, torch {torch.__version__ if torch else 'not installed'}, "
             f"numpy {np.__version__}, Python {platform.python_version()}",
             f"- load average at the end (1/5/15 min): {'/'.join(f'{v:.1f}' for v in os.getloadavg())}",
             f"- command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`",
             "- GB/s: bytes a pass must move once (input + output, + int64 indices where used) / median time.",
             "  torch backward is the ATen kernel (max_pool2d_with_indices_backward / avg_pool2d_backward), no autograd.",
             "  speed-up = torch time / our time (> 1: we are faster).\n",
             "| pass | shape | window | ours ms (min-max) | torch ms | ours GB/s | torch GB/s | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.ms is None:
            lines.append(f"| {r.pass_} | ({r.dims}) | {r.name} | {r.status}: {r.note} | | | | |")
            continue
        ref = r.refs.get("torch")
        lines.append(f"| {r.pass_} | ({r.dims}) | {r.name} | {r.ms:.3f} ({r.ms_min:.3f}-{r.ms_max:.3f}) | "
                     + (f"{ref:.3f} | {r.gbps:.1f} | {r.bytes / ref / 1e6:.1f} | {ref / r.ms:.2f}x |" if ref
                        else f"- | {r.gbps:.1f} | - | - |"))
    results_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    sweep.save_text(sweep.results_path("pool", results_dir, args.out or ""), "\n".join(lines) + "\n")
    return 1 if any(r.status == "WRONG" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
