"""Pooling benchmark: fastconv vs torch (same process, same thread count, interleaved).

For every shape x window x pass: check ours against torch (or the float64 reference when torch is
absent) first, then time both alternately (A, B, A, B, ...) after warm-up; report the median with
min/max, effective GB/s (bytes a pass must read + write once), and the speed-up over torch.

    python benchmarks/bench_pool.py [--threads 2] [--repeat 25] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import sys
import time

import numpy as np

import fastconv

SHAPES = [(256, 6, 28, 28), (8, 64, 112, 112)]
WINDOWS = [(2, 2, 0), (3, 2, 1)]  # kernel, stride, padding
PASSES = ["max_fwd", "max_fwd_idx", "max_bwd", "avg_fwd", "avg_bwd"]


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def make_case(shape, window, pass_name, torch, rng):
    """(ours, theirs or None, bytes moved, check) for one case; check() raises if ours is wrong."""
    k, s, p = window
    x = rng.standard_normal(shape, dtype=np.float32)
    y, idx = fastconv.max_pool2d(x, k, s, p, return_indices=True)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    f32, i64 = 4, 8
    nx, ny = x.size, y.size
    tx = torch.from_numpy(x) if torch else None
    tdy = torch.from_numpy(dy) if torch else None
    tidx = torch.from_numpy(idx) if torch else None
    F = torch.nn.functional if torch else None
    kk, ss, pp = [k, k], [s, s], [p, p]
    if pass_name == "max_fwd":
        ours = lambda: fastconv.max_pool2d(x, k, s, p)
        theirs = (lambda: F.max_pool2d(tx, k, s, p)) if torch else None
        nbytes = f32 * (nx + ny)
    elif pass_name == "max_fwd_idx":
        ours = lambda: fastconv.max_pool2d(x, k, s, p, return_indices=True)
        theirs = (lambda: F.max_pool2d(tx, k, s, p, return_indices=True)) if torch else None
        nbytes = f32 * (nx + ny) + i64 * ny
    elif pass_name == "max_bwd":
        ours = lambda: fastconv.grad.max_pool2d(dy, idx, x.shape)
        theirs = (lambda: torch.ops.aten.max_pool2d_with_indices_backward(tdy, tx, kk, ss, pp, [1, 1], False, tidx)) if torch else None
        nbytes = f32 * (ny + nx) + i64 * ny
    elif pass_name == "avg_fwd":
        ours = lambda: fastconv.avg_pool2d(x, k, s, p)
        theirs = (lambda: F.avg_pool2d(tx, k, s, p)) if torch else None
        nbytes = f32 * (nx + ny)
    elif pass_name == "avg_bwd":
        ours = lambda: fastconv.grad.avg_pool2d(dy, x.shape, k, s, p)
        theirs = (lambda: torch.ops.aten.avg_pool2d_backward(tdy, tx, kk, ss, pp, False, True, None)) if torch else None
        nbytes = f32 * (ny + nx)
    else:
        raise ValueError(pass_name)

    def check():
        got = ours()
        if theirs is not None:
            want = theirs()
            got, want = (got, want) if not isinstance(got, tuple) else (got[0], want[0])
            want = want.numpy()
        else:  # float64 reference on the first image only (the loops are slow)
            sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
            import reference as ref

            got = got[0] if isinstance(got, tuple) else got
            got = got[:1]
            if pass_name.startswith("max_fwd"):
                want = ref.max_pool2d_ref(x[:1], (k, k), (s, s), (p, p))[0]
            elif pass_name == "max_bwd":
                want = ref.max_pool2d_backward_ref(dy[:1], idx[:1], (1,) + x.shape[1:])
            elif pass_name == "avg_fwd":
                want = ref.avg_pool2d_ref(x[:1], (k, k), (s, s), (p, p))
            else:
                want = ref.avg_pool2d_backward_ref(dy[:1], (1,) + x.shape[1:], (k, k), (s, s), (p, p))
        err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
        if not err <= 1e-6:
            raise AssertionError(f"{pass_name} {shape} {window}: relative error {err:.2e} > 1e-6")
        return err

    return ours, theirs, nbytes, check


def time_interleaved(fns, repeat, warmup=3):
    """Median, min and max seconds of each function, measured alternately."""
    for _ in range(warmup):
        for f in fns:
            f()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for t, f in zip(times, fns):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
    return [(float(np.median(t)), min(t), max(t)) for t in times]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--machine", default=socket.gethostname().split(".")[0], help="name used in the results file name")
    ap.add_argument("--out", help="results file (default benchmarks/results/<date>_<machine>_pool.md)")
    args = ap.parse_args(argv)

    torch = _torch()
    fastconv.set_num_threads(args.threads)
    if torch:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    header = f"{'case':<42} {'ours ms (min-max)':>22} {'torch ms (min-max)':>22} {'ours GB/s':>9} {'torch GB/s':>10} {'speed-up':>8}"
    print(header)
    for shape in SHAPES:
        for window in WINDOWS:
            for pass_name in PASSES:
                ours, theirs, nbytes, check = make_case(shape, window, pass_name, torch, rng)
                check()
                fns = [ours] + ([theirs] if theirs else [])
                res = time_interleaved(fns, args.repeat)
                name = f"{pass_name} {shape} k{window[0]} s{window[1]} p{window[2]}"
                (to, to_lo, to_hi) = res[0]
                row = [name, f"{to * 1e3:.3f} ({to_lo * 1e3:.3f}-{to_hi * 1e3:.3f})"]
                if theirs:
                    tt, tt_lo, tt_hi = res[1]
                    row += [f"{tt * 1e3:.3f} ({tt_lo * 1e3:.3f}-{tt_hi * 1e3:.3f})", f"{nbytes / to / 1e9:.1f}",
                            f"{nbytes / tt / 1e9:.1f}", f"{tt / to:.2f}x"]
                else:
                    row += ["skipped (no torch)", f"{nbytes / to / 1e9:.1f}", "-", "-"]
                rows.append(row)
                print(f"{row[0]:<42} {row[1]:>22} {row[2]:>22} {row[3]:>9} {row[4]:>10} {row[5]:>8}", flush=True)

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
        f.write("| case | ours ms | torch ms | ours GB/s | torch GB/s | speed-up |\n|---|---|---|---|---|---|\n")
        for row in rows:
            f.write("| " + " | ".join(row) + " |\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
