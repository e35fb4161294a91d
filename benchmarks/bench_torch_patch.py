"""A PyTorch LeNet-5 trained with and without ``fastconv.torch.patch``: time per training step.

Both models start from the same weights and train on the same Fashion-MNIST batches in one process,
with the same torch and fastconv thread count. Each round times `--steps` SGD steps of the unpatched
model, then of the patched one (interleaved A, B, A, B, ...); after one warm-up round the report gives
the median time per step and per 60,000-image epoch, and the ratio patched / torch (of the medians,
and the median of the per-round ratios, which is steadier on a shared machine).

    python benchmarks/bench_torch_patch.py --threads 2 --rounds 7 --steps 100

Results go to benchmarks/results/<date>_<machine>_torch-patch.md (or --out).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

import fastconv
import fastconv.torch as ft

HERE = Path(__file__).resolve().parent
EPOCH = 60000


def lenet() -> nn.Module:
    """LeNet-5, "modern" variant (ReLU, max pooling), as benchmarks/bench_lenet.py."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_steps(model, opt, x, y, order) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for one SGD step per batch index in ``order``."""
    start, cpu = time.perf_counter(), time.process_time()
    for i in order:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per side (after one warm-up round)")
    ap.add_argument("--steps", type=int, default=100, help="SGD steps per round")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--algo", default="auto")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    fastconv.set_num_threads(args.threads)
    train = fastconv.data.load_idx_dataset("fashion-mnist", "train", root=args.data, download=False)
    nb = len(train) // args.batch_size
    x = torch.from_numpy(np.ascontiguousarray(train.images[: nb * args.batch_size])).view(nb, args.batch_size, 1, 28, 28)
    y = torch.from_numpy(train.labels[: nb * args.batch_size]).view(nb, args.batch_size)

    torch.manual_seed(0)
    models = {"torch": lenet()}
    models["fastconv.torch.patch"] = lenet()
    models["fastconv.torch.patch"].load_state_dict(models["torch"].state_dict())
    report = ft.patch(models["fastconv.torch.patch"], algo=args.algo)
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}

    rng = np.random.default_rng(0)
    times, cpu = {k: [] for k in models}, {k: [] for k in models}
    for r in range(args.rounds + 1):
        order = rng.integers(0, nb, args.steps)
        for k in models:  # same batches for both sides in a round
            t, c = run_steps(models[k], opts[k], x, y, order)
            if r > 0:
                times[k].append(t / args.steps)
                cpu[k].append(c / args.steps)
        print(f"round {r}: " + ", ".join(f"{k} {times[k][-1] * 1e3:.2f} ms/step" for k in models if r > 0), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["fastconv.torch.patch"] / med["torch"]
    # each round's sides ran back to back, so their ratio cancels slow drifts of a shared machine
    paired = statistics.median(a / b for a, b in zip(times["fastconv.torch.patch"], times["torch"]))
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    machine = "epyc2c" if "EPYC" in _cpu_model() else platform.node()
    out = Path(args.out) if args.out else HERE / "results" / f"{date}_{machine}_torch-patch.md"
    per_epoch = EPOCH / args.batch_size
    lines = [
        "# PyTorch LeNet-5 training step: patched with fastconv.torch vs torch's own CPU kernels", "",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- CPU: {_cpu_model()}; threads: {args.threads} (torch.set_num_threads and fastconv.set_num_threads)",
        f"- torch {torch.__version__}, fastconv {getattr(fastconv, '__version__', '?')}, algo={args.algo!r}",
        f"- workload: Fashion-MNIST, batch {args.batch_size}, SGD momentum 0.9, {args.steps} steps per round, "
        f"{args.rounds} timed rounds after 1 warm-up, sides interleaved in one process",
        f"- command: `python benchmarks/bench_torch_patch.py --threads {args.threads} --rounds {args.rounds} "
        f"--steps {args.steps} --batch-size {args.batch_size} --algo {args.algo}`",
        f"- patch report: {len(report.swapped)} layers swapped, {len(report.left)} left", "",
        "| | median ms/step | s per 60k-image epoch | median CPU ms/step | rounds (ms/step) |", "|---|---|---|---|---|",
    ]
    for k in models:
        lines.append(f"| {k} | {med[k] * 1e3:.2f} | {med[k] * per_epoch:.1f} | {statistics.median(cpu[k]) * 1e3:.2f} | "
                     f"{', '.join(f'{t * 1e3:.2f}' for t in times[k])} |")
    lines += ["", f"patched / torch time: **{ratio:.2f}x** of the medians, **{paired:.2f}x** median of per-round "
              "ratios (below 1: the patched model trains faster)",
              "CPU ms/step is the process's CPU time (all threads): on an overloaded machine it is steadier than "
              "wall time, but counts OpenMP spin-waiting too.", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
