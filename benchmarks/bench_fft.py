"""FFT convolution: big_kernel in every pass against our other algorithms and torch, a kernel-size
sweep that shows where FFT stops winning, and (optionally) the transform-size sweep behind the
tile cost model. Run it as

    python3 benchmarks/bench_fft.py                 # 2 threads, big_kernel + kernel sweep 1..15
    python3 benchmarks/bench_fft.py --tiles         # also time forced transform sizes
    python3 benchmarks/bench_fft.py --threads 1 --clock cpu   # on an oversubscribed machine

Every algorithm is checked against a float64 torch result before it is timed (within the registry's
error bound: FFT 1e-4, the others 1e-5); the contenders of one case are timed round-robin (A, B, C, A, B, C, ...)
after a warm-up and the median (or, with --stat min, the minimum) is reported. torch runs with
the same thread count. Writes benchmarks/results/<date>_<machine>_fft[_<threads>t_<clock>_<stat>].md
(the suffix only when not 2 threads, wall clock, median). The functions are importable (time_round_robin,
conv_problem, time_passes, kernel_sweep) for a later ``python -m fastconv bench``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import socket
import sys
import time
from pathlib import Path

import numpy as np

import fastconv
from fastconv._conv_algorithms import error_bound

PASSES = ("forward", "input", "weight")
BIG_KERNEL = dict(N=4, C=16, H=128, W=128, K=16, R=9, S=9, pad=4)


#: The clock every timing uses: time.perf_counter (wall) or time.process_time (CPU seconds of the
#: whole process, all threads). On an oversubscribed shared machine wall time mostly measures the
#: scheduler; CPU time still measures the work (but not idle waits), so use it there with 1 thread.
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter
#: How the repeats are summarised: median (the default), or min (the least disturbed run, for a
#: machine whose load makes medians measure other people's jobs).
STAT = {"median": np.median, "min": np.min}
stat = np.median


def time_round_robin(fns: dict, min_time: float = 1.0, max_repeats: int = 30, min_repeats: int = 5) -> dict:
    """Median seconds of each callable, timed in turn (one warm-up call each first)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    start = time.perf_counter()
    while True:
        for name, fn in fns.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
        n = len(next(iter(times.values())))
        if n >= max_repeats or (n >= min_repeats and time.perf_counter() - start >= min_time):
            break
    return {name: float(stat(t)) for name, t in times.items()}


def conv_problem(N, C, H, W, K, R, S, pad, seed=0):
    """Random float32 x, weight, grad_output for a stride-1 convolution with symmetric padding."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((K, C, R, S), dtype=np.float32) / np.float32(np.sqrt(C * R * S))
    P, Q = H + 2 * pad - R + 1, W + 2 * pad - S + 1
    dy = rng.standard_normal((N, K, P, Q), dtype=np.float32)
    return x, w, dy


def _ours(pass_, algo, x, w, dy, pad):
    if pass_ == "forward":
        return lambda: fastconv.conv2d(x, w, padding=pad, algo=algo)
    if pass_ == "input":
        return lambda: fastconv.grad.conv2d_input(x.shape, w, dy, padding=pad, algo=algo)
    return lambda: fastconv.grad.conv2d_weight(x, w.shape, dy, padding=pad, algo=algo)


def _torch(pass_, x, w, dy, pad):
    import torch

    xt, wt, dyt = (torch.from_numpy(a) for a in (x, w, dy))
    if pass_ == "forward":
        def run():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, padding=pad)
        return run
    mask = [pass_ == "input", pass_ == "weight", False]
    index = 0 if pass_ == "input" else 1
    return lambda: torch.ops.aten.convolution_backward(
        dyt, xt, wt, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)[index]


def _reference(pass_, x, w, dy, pad):
    import torch

    xd, wd, dyd = (torch.from_numpy(a).double() for a in (x, w, dy))
    if pass_ == "forward":
        return torch.nn.functional.conv2d(xd, wd, padding=pad).numpy()
    mask = [pass_ == "input", pass_ == "weight", False]
    out = torch.ops.aten.convolution_backward(dyd, xd, wd, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)
    return out[0 if pass_ == "input" else 1].numpy()


def _rel(a, e):
    return float(np.abs(np.asarray(a, np.float64) - e).max() / max(np.abs(e).max(), 1e-30))


def time_passes(shape: dict, algos, passes=PASSES, with_torch=True, min_time=1.0, max_repeats=30) -> dict:
    """{pass: {name: seconds}} for each of our algorithms (checked first) and torch."""
    x, w, dy = conv_problem(**shape)
    pad = shape["pad"]
    out = {}
    for pass_ in passes:
        ref = _reference(pass_, x, w, dy, pad)
        fns = {}
        for algo in algos:
            if algo not in fastconv.conv_algorithms(x.shape, w.shape, padding=pad, pass_=pass_):
                continue
            fn = _ours(pass_, algo, x, w, dy, pad)
            err = _rel(fn(), ref)
            if not err <= error_bound(algo):
                raise SystemExit(f"{algo} {pass_} is wrong on {shape}: relative error {err:.2e}")
            fns[algo] = fn
        if with_torch:
            fns["torch"] = _torch(pass_, x, w, dy, pad)
        out[pass_] = time_round_robin(fns, min_time, max_repeats)
    return out


def time_torch_autograd(shape: dict, min_time=1.0, max_repeats=30) -> float:
    """Seconds of torch forward + backward (input and weight gradients) through autograd."""
    import torch

    x, w, dy = conv_problem(**shape)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    dyt = torch.from_numpy(dy)

    def run():
        xt.grad = wt.grad = None
        torch.nn.functional.conv2d(xt, wt, padding=shape["pad"]).backward(dyt)

    return time_round_robin({"torch": run}, min_time, max_repeats)["torch"]


def kernel_sweep(kernels, image=64, channels=16, batch=4, algos=("fft",), passes=("forward",), with_torch=True,
                 min_time=0.5, max_repeats=20) -> list:
    """[(R, {pass: {name: seconds}})] for R x R kernels with 'same' padding on a fixed problem."""
    rows = []
    for r in kernels:
        shape = dict(N=batch, C=channels, H=image, W=image, K=channels, R=r, S=r, pad=(r - 1) // 2)
        rows.append((r, time_passes(shape, algos, passes, with_torch, min_time, max_repeats)))
    return rows


def tile_sweep(shape: dict, tiles, min_time=0.5, max_repeats=20) -> list:
    """[(forced tile, chosen tiling, {pass: seconds})] for the FFT at forced transform sizes; (0, 0)
    is the cost model's own choice."""
    from fastconv import _core

    x, w, dy = conv_problem(**shape)
    pad = shape["pad"]
    params = _core.Conv2dParams(shape["N"], shape["C"], shape["H"], shape["W"], shape["K"], shape["R"], shape["S"],
                                pad_h=pad, pad_w=pad)
    rows = []
    try:
        for t in tiles:
            _core.fft_conv_force_tile(*t)
            fns = {p: _ours(p, "fft", x, w, dy, pad) for p in PASSES}
            rows.append((t, _core.fft_conv_tiling(params, "forward"), time_round_robin(fns, min_time, max_repeats)))
    finally:
        _core.fft_conv_force_tile(0, 0)
    return rows


def _fmt_ms(s):
    return f"{s * 1e3:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kernels", type=int, nargs="*", default=list(range(1, 16)), help="sweep kernel sizes")
    parser.add_argument("--image", type=int, default=64, help="sweep image size (square)")
    parser.add_argument("--channels", type=int, default=16, help="sweep C = K")
    parser.add_argument("--batch", type=int, default=4, help="sweep N")
    parser.add_argument("--sweep-passes", nargs="+", default=["forward", "input", "weight"], choices=PASSES)
    parser.add_argument("--tiles", action="store_true", help="also time forced FFT transform sizes on big_kernel")
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--max-repeats", type=int, default=30)
    parser.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                        help="wall time, or CPU time of the process (for an oversubscribed machine, with --threads 1)")
    parser.add_argument("--stat", choices=sorted(STAT), default="median", help="summary of the repeats")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    global clock, stat
    clock = CLOCK[args.clock]
    stat = STAT[args.stat]

    import torch

    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    algos = [a for a in fastconv.conv.ALGORITHMS if a in fastconv._core.conv2d_kernels()]
    lines = []
    say = lambda s="": (print(s), lines.append(s))  # noqa: E731

    today = datetime.date.today().isoformat()
    machine = socket.gethostname().split(".")[0] or platform.node()
    command = "python3 " + " ".join(shlex.quote(a) for a in sys.argv)
    say(f"# FFT convolution benchmark ({today})")
    say()
    say(f"- CPU: {fastconv.info()['cpu_model']}, fastconv path: {fastconv.info()['cpu_path']}, "
        f"threads: {args.threads} (fastconv and torch)")
    say(f"- torch {torch.__version__}; algorithms: {', '.join(algos)}; {args.stat} of round-robin repeats after warm-up; "
        f"clock: {args.clock} ({'CPU seconds of the process' if args.clock == 'cpu' else 'wall seconds'})")
    say(f"- load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    say(f"- command: `{command}`")
    say()

    b = BIG_KERNEL
    big = time_passes(b, algos, PASSES, True, args.min_time, args.max_repeats)
    autograd = time_torch_autograd(b, args.min_time, args.max_repeats)
    flops = 2.0 * b["N"] * b["K"] * b["C"] * b["R"] * b["S"] * b["H"] * b["W"]
    tiling = {p: fastconv._core.fft_conv_tiling(
        fastconv._core.Conv2dParams(b["N"], b["C"], b["H"], b["W"], b["K"], b["R"], b["S"], pad_h=4, pad_w=4), p)
        for p in PASSES}
    say("## big_kernel: N=4, C=16, 128x128, K=16, 9x9, pad 4 (2.72 GFLOP per pass)")
    say()
    say("| pass | " + " | ".join(f"{a} ms" for a in algos) + " | torch ms | fft / torch | fft GFLOP/s (direct-equivalent) | fft tile |")
    say("|---|" + "---|" * (len(algos) + 4))
    for p in PASSES:
        t = big[p]
        cells = " | ".join(_fmt_ms(t[a]) if a in t else "-" for a in algos)
        tl = tiling[p]
        say(f"| {p} | {cells} | {_fmt_ms(t['torch'])} | {t['fft'] / t['torch']:.2f}x | {flops / t['fft'] * 1e-9:.0f} | "
            f"{tl['T1']}x{tl['T2']} ({tl['tiles_h']}x{tl['tiles_w']} tiles) |")
    total = sum(big[p]["fft"] for p in PASSES)
    say()
    say(f"fft forward + input + weight gradient: {_fmt_ms(total)} ms; torch autograd forward + backward: "
        f"{_fmt_ms(autograd)} ms ({total / autograd:.2f}x).")
    say()

    if args.tiles:
        say("## FFT transform size on big_kernel (forced; 0x0 = the cost model's choice)")
        say()
        say("| forced | used | forward ms | input ms | weight ms |")
        say("|---|---|---|---|---|")
        for t, used, times in tile_sweep(b, [(0, 0), (16, 16), (24, 24), (32, 32), (40, 40), (48, 48), (64, 64),
                                             (72, 72), (80, 80), (144, 144)], args.min_time / 2, args.max_repeats):
            say(f"| {t[0]}x{t[1]} | {used['T1']}x{used['T2']} | " + " | ".join(_fmt_ms(times[p]) for p in PASSES) + " |")
        say()

    say(f"## Kernel-size sweep: N={args.batch}, C=K={args.channels}, {args.image}x{args.image}, "
        "'same' padding ((R-1)//2), ms")
    say()
    sweep = kernel_sweep(args.kernels, args.image, args.channels, args.batch, algos, args.sweep_passes, True,
                         args.min_time / 2, args.max_repeats)
    for p in args.sweep_passes:
        say(f"### {p}")
        say()
        say("| R x S | " + " | ".join(algos) + " | torch | fastest of ours | fft / best other of ours | fft / torch |")
        say("|---|" + "---|" * (len(algos) + 4))
        for r, res in sweep:
            t = res[p]
            ours = {a: t[a] for a in algos if a in t}
            best = min(ours, key=ours.get)
            others = [ours[a] for a in ours if a != "fft"]
            vs = f"{ours['fft'] / min(others):.2f}x" if others and "fft" in ours else "-"
            say(f"| {r}x{r} | " + " | ".join(_fmt_ms(ours[a]) if a in ours else "-" for a in algos) +
                f" | {_fmt_ms(t['torch'])} | {best} | {vs} | {ours['fft'] / t['torch']:.2f}x |")
        say()

    suffix = "" if (args.threads, args.clock, args.stat) == (2, "wall", "median") else \
        f"_{args.threads}t_{args.clock}_{args.stat}"
    out = args.out or Path(__file__).parent / "results" / f"{today}_{machine}_fft{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
