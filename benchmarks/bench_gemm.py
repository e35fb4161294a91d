"""SGEMM GFLOP/s: fastconv.gemm against numpy's matmul (OpenBLAS) in the same run, 1 and 2 threads.

Each case is checked against float64 first (no timing of a wrong answer), then the two sides are
timed alternately (ours, numpy, ours, numpy, ...) after warm-up and the median of the repeats is
reported with % of the FMA peak measured in the same run. Each alternation first waits (up to
30 s) until a probe reads the shared machine quiet (fastconv.bench.measure.QuietGate; --no-gate:
not). Run it as

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 benchmarks/bench_gemm.py

(the two variables, set on some build machines, pin OpenBLAS to a slower kernel). Writes
benchmarks/results/<date>_<machine>_gemm.md.
"""

from __future__ import annotations

import argparse
import os
import datetime
import platform
import shlex
import socket
import sys
import time
from pathlib import Path

import numpy as np

import fastconv
from fastconv.bench import peak_gflops
from fastconv.bench.measure import QuietGate, conv_probe

SQUARE = [128, 256, 512, 1024, 2048]
CONV = [(64, 3136, 576), (256, 196, 2304), (6, 200704, 25), (16, 25600, 150)]


def median_seconds(fn_ours, fn_ref, min_time: float, max_repeats: int, clock=time.perf_counter,
                   gap: float = 0.0, block: int = 1, gate=None) -> tuple[float, float]:
    """Median seconds of the two callables, timed alternately after one warm-up call each, with an
    untimed pause of `gap` seconds before each call so that the other library's worker threads,
    which spin for a while after a call, have gone idle.

    With block > 1 the sides alternate in blocks: one untimed call, then `block` timed calls of
    the same side. OpenBLAS's workers spin for a long time after a call and steal a core from the
    other side's threads, while a thread that went to sleep takes milliseconds to wake on a VM;
    a block measures each library in the steady state a loop of calls sees. With a `gate`
    (fastconv.bench.measure.QuietGate) each pair of turns first waits for a quiet machine."""
    fn_ours(), fn_ref()
    ours, ref = [], []
    start = time.perf_counter()

    def timed(fn, into):
        time.sleep(gap)
        if block > 1:
            fn()
        for _ in range(block):
            t0 = clock()
            fn()
            into.append(clock() - t0)

    waited = 0.0  # the gate's waits do not count towards min_time
    while len(ours) < max_repeats and (len(ours) < 5 or time.perf_counter() - start - waited < min_time):
        if gate is not None:
            t0 = time.perf_counter()
            gate.wait()
            waited += time.perf_counter() - t0
        timed(fn_ours, ours)
        timed(fn_ref, ref)
    return float(np.median(ours)), float(np.median(ref))


def check(m: int, n: int, k: int, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> float:
    """Relative error / sqrt(K) of fastconv.gemm against float64 on a row sample; raises if wrong."""
    rows = np.linspace(0, m - 1, num=min(m, 64)).astype(int)
    fastconv.gemm(a, b, out=out)
    expected = a[rows].astype(np.float64) @ b.astype(np.float64)
    err = float(np.abs(out[rows] - expected).max() / np.abs(expected).max() / np.sqrt(k))
    if not err < 1e-5:
        raise SystemExit(f"fastconv.gemm is wrong on ({m}, {n}, {k}): relative error {err:.2e}")
    return err


def cpu_model() -> str:
    return fastconv.info()["cpu_model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per case and side")
    parser.add_argument("--max-repeats", type=int, default=50)
    parser.add_argument("--square", type=int, nargs="*", default=SQUARE, help="square sizes n")
    parser.add_argument("--no-conv", action="store_true", help="skip the conv-shaped products")
    parser.add_argument("--block", type=int, default=1,
                        help="timed calls per side before switching (after one untimed call); see median_seconds")
    parser.add_argument("--gap", type=float, default=0.0,
                        help="untimed pause before each call, seconds (lets the other side's spinning threads go idle)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: time 1-thread cases by the calling thread's CPU time, which time slices "
                        "lost to other processes on a shared machine do not inflate (multi-thread cases stay wall)")
    parser.add_argument("--no-gate", action="store_true",
                        help="start each alternation at once (default: wait up to 30 s for a quiet machine, "
                             "fastconv.bench.measure.QuietGate)")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: benchmarks/results/...)")
    args = parser.parse_args()
    gate = None if args.no_gate else QuietGate(*conv_probe())

    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [f"{p['internal_api']} {p.get('version')} ({p.get('architecture')})" for p in threadpool_info()
            if p["user_api"] == "blas"]
    if fastconv.info()["cpu_path"] != "avx2":
        print("note: fastconv runs its portable path (no AVX2/FMA or FASTCONV_CPU=portable)")

    rng = np.random.default_rng(0)
    cases = [(n, n, n) for n in args.square] + ([] if args.no_conv else CONV)
    rows = []
    peaks = {}
    for threads in args.threads:
        fastconv.set_num_threads(threads)
        peaks[threads] = peak_gflops(threads)
        print(f"threads={threads}: FMA peak {peaks[threads]:.1f} GFLOP/s")
        with threadpool_limits(limits=threads, user_api="blas"):
            for m, n, k in cases:
                a = rng.standard_normal((m, k), dtype=np.float32)
                b = rng.standard_normal((k, n), dtype=np.float32)
                out = np.empty((m, n), np.float32)
                out_np = np.empty((m, n), np.float32)
                err = check(m, n, k, a, b, out)
                clock = time.thread_time if args.clock == "cpu" and threads == 1 else time.perf_counter
                t_ours, t_np = median_seconds(lambda: fastconv.gemm(a, b, out=out),
                                              lambda: np.matmul(a, b, out=out_np), args.min_time, args.max_repeats,
                                              clock, args.gap, args.block, gate)
                flops = 2.0 * m * n * k
                g_ours, g_np = flops / t_ours * 1e-9, flops / t_np * 1e-9
                rows.append((threads, (m, n, k), t_ours, g_ours, g_np, err))
                print(f"  {str((m, n, k)):>18}  fastconv {t_ours * 1e3:8.3f} ms {g_ours:7.1f} GFLOP/s "
                      f"({100 * g_ours / peaks[threads]:5.1f}% peak)   numpy {g_np:7.1f}   ratio {g_ours / g_np:5.2f}x")
        peaks[threads] = max(peaks[threads], peak_gflops(threads))  # the peak can drift on a shared machine

    table = ["| threads | (M, N, K) | fastconv ms | fastconv GFLOP/s | numpy GFLOP/s | fastconv / numpy | % of FMA peak | rel. err / sqrt(K) |",
             "|---|---|---|---|---|---|---|---|"]
    for threads, shape, t, g, gn, err in rows:
        table.append(f"| {threads} | {shape} | {t * 1e3:.3f} | {g:.1f} | {gn:.1f} | {g / gn:.2f}x | "
                     f"{100 * g / peaks[threads]:.0f}% | {err:.1e} |")
    today = datetime.date.today().isoformat()
    machine = socket.gethostname().split(".")[0] or platform.node()
    out_path = args.out or Path(__file__).parent / "results" / f"{today}_{machine}_gemm.md"
    command = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 " + " ".join(shlex.quote(x) for x in sys.argv)
    text = "\n".join([
        f"# SGEMM: fastconv.gemm vs numpy matmul ({today})",
        "",
        f"- CPU: {cpu_model()} ({platform.machine()}), fastconv path: {fastconv.info()['cpu_path']}",
        f"- numpy {np.__version__}, BLAS: {'; '.join(blas) or 'unknown'}",
        f"- threads: {', '.join(map(str, args.threads))}; FMA peak (best of the measurements before and after): "
        + ", ".join(f"{peaks[t]:.1f} GFLOP/s with {t}" for t in args.threads),
        f"- median of alternating repeats after one warm-up, at least {args.min_time} s per case, "
        f"{args.gap * 1e3:g} ms untimed pause before each call, blocks of {args.block} timed calls per side; "
        "% of peak uses the peak of the same thread count; clock: "
        + ("wall" if args.clock == "wall" else "CPU time of the calling thread for 1 thread, wall otherwise"),
        f"- load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
        *([f"- {gate.summary()}"] if gate else []),
        f"- command: `{command}`",
        "",
        *table,
        "",
    ])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
