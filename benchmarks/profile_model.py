"""Where a model's training step goes: one small model (fastconv.models, small=True) against the same
architecture in PyTorch CPU, then the time of every compiled kernel (fastconv._core) per step and of
every convolution by pass, algorithm and shape. The tool behind the kernel work on the d2l models.

    python3 benchmarks/profile_model.py --model densenet121 --width 0.5 --size 32 --batch 256

Steps alternate (ours, torch, ours, ...) after warm-up steps; the step times are medians. Kernel
times come from a second set of steps with every _core function wrapped in a timer (the wrappers
add about a microsecond per call). The rest of the step ("Python") is the step time minus the
kernels: autograd, validation and numpy glue. Random images and labels: timing only.
Writes a markdown report with --out.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fastconv.bench.model_pairs import CONFIGS, make_pair, make_steps


_CONV_KERNELS = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")


class KernelTimer:
    """Wraps every function of fastconv._core in a timer while active; totals per name and, for the
    convolutions, per (pass, algorithm, shape)."""

    def __init__(self):
        from fastconv import _core

        self.core = _core
        self.by_kernel = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.by_conv = collections.defaultdict(float)
        self.saved = {}

    def __enter__(self):
        for name in dir(self.core):
            fn = getattr(self.core, name)
            if name.startswith("_") or not callable(fn) or isinstance(fn, type):
                continue
            self.saved[name] = fn
            setattr(self.core, name, self._wrap(name, fn))
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(self.core, name, fn)

    def _wrap(self, name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.by_kernel[name] += dt
                self.calls[name] += 1
                if name in _CONV_KERNELS:
                    kernel, p = args[0], args[1]
                    what = (f"{p.N}x{p.C}x{p.H}x{p.W} -> {p.K}, {p.R}x{p.S}, stride {p.stride_h}, "
                            f"pad {p.pad_h}")
                    self.by_conv[(name.replace("conv2d_", "").replace("backward_", ""), kernel, what)] += dt
        return timed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="densenet121")
    ap.add_argument("--width", type=float, default=None, help="default: bench_models' setting")
    ap.add_argument("--size", type=int, default=None, help="input size; default: bench_models' setting")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=15, help="rows of the convolution table")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    width, size = CONFIGS.get(args.model, (1.0, 32))
    width = args.width if args.width is not None else width
    size = args.size if args.size is not None else size

    ours, opt, ref, ropt = make_pair(args.model, width, size, args.threads, 1e-3)
    step_ours, step_ref = make_steps(ours, opt, ref, ropt)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    for _ in range(3):
        step_ours(x, y)
        step_ref(x, y)
    t_ours, t_ref = [], []
    for _ in range(args.steps):
        for step, times in ((step_ours, t_ours), (step_ref, t_ref)):
            t0 = time.perf_counter()
            step(x, y)
            times.append(time.perf_counter() - t0)
    ms_ours, ms_ref = 1e3 * statistics.median(t_ours), 1e3 * statistics.median(t_ref)

    profiled_steps = 5
    with KernelTimer() as kt:
        t0 = time.perf_counter()
        for _ in range(profiled_steps):
            step_ours(x, y)
        ms_profiled = 1e3 * (time.perf_counter() - t0) / profiled_steps
    per_step = {k: 1e3 * v / profiled_steps for k, v in kt.by_kernel.items()}
    kernels_ms = sum(per_step.values())

    lines = [f"# Training step of {args.model} (width {width}, {size}x{size}, batch {args.batch}): "
             f"{datetime.date.today()}", "",
             f"- command: `python3 benchmarks/profile_model.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
             f"- {args.threads} threads; median of {args.steps} interleaved steps per side",
             f"- step: fastconv {ms_ours:.1f} ms, torch {ms_ref:.1f} ms, ratio {ms_ours / ms_ref:.2f}",
             f"- profiled steps: {ms_profiled:.1f} ms, of which compiled kernels {kernels_ms:.1f} ms and "
             f"Python (autograd, checks, numpy) {ms_profiled - kernels_ms:.1f} ms", "",
             "| kernel | calls / step | ms / step |", "|---|---|---|"]
    for name, ms in sorted(per_step.items(), key=lambda kv: -kv[1]):
        if ms >= 0.05:
            lines.append(f"| {name} | {kt.calls[name] // profiled_steps} | {ms:.2f} |")
    lines += ["", "| convolution pass | algorithm | problem (N x C x H x W -> K) | ms / step |", "|---|---|---|---|"]
    for (pass_, kernel, what), s in sorted(kt.by_conv.items(), key=lambda kv: -kv[1])[:args.top]:
        lines.append(f"| {pass_} | {kernel} | {what} | {1e3 * s / profiled_steps:.2f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
