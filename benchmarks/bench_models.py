"""The d2l models (fastconv.models, small versions) training on Fashion-MNIST: fastconv against the
same architecture in PyTorch CPU (built by fastconv.bench.torch_mirror.to_torch, same initial weights), same
batches, optimizer (Adam, or SGD with --optimizer sgd), initial weights (--init) and thread count, in
one process, interleaved (A, B, A, B, ...).

Default: time --steps training steps per side after a warm-up step and report the median ms per step
and the projected seconds per epoch. With --epochs N both sides train N full epochs (steps
interleaved) and the report adds seconds per epoch (median; the sum of the side's training steps)
and test accuracy after each epoch. Images are resized bilinearly (fastconv.data.resize) to each
model's input size, once per batch for both sides.

    python3 benchmarks/bench_models.py --threads 2                               # step timing, all models
    python3 benchmarks/bench_models.py --threads 2 --models resnet18 --epochs 10  # the accuracy bar
    python3 benchmarks/bench_models.py --threads 2 --epochs 10 --batch 256 --lr 3e-3 --cosine
                                               # the recipe of `python -m fastconv train`
    python3 benchmarks/bench_models.py --config resnet18:0.5:64                   # width 0.5, 64x64 input

Results go to benchmarks/results/<date>_<machine>_models.md (or --out).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fastconv.bench.model_pairs import CONFIGS, make_pair, make_steps

HERE = Path(__file__).resolve().parent


def _accuracy(predict, images, labels, size, batch=500):
    from fastconv.data import resize

    correct = 0
    for i in range(0, len(labels), batch):
        correct += int((predict(resize(images[i:i + batch], size)).argmax(axis=1) == labels[i:i + batch]).sum())
    return correct / len(labels)


def bench(name, width, size, args, train, test):
    import torch

    import fastconv
    from fastconv.data import resize

    ours, opt, ref, ropt = make_pair(name, width, size, args.threads, args.lr, args.optimizer, args.momentum,
                                  args.init)
    step_ours, step_ref = make_steps(ours, opt, ref, ropt)
    schedulers = []
    if args.cosine and args.epochs:  # per epoch, as `python -m fastconv train --schedule cosine`
        schedulers = [fastconv.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs),
                      torch.optim.lr_scheduler.CosineAnnealingLR(ropt, args.epochs)]
    images, labels = train
    n = len(labels)
    row = {"model": name, "width": width, "size": size,
           "params": sum(p.numel() for p in ours.parameters())}
    rng = np.random.default_rng(0)
    if not args.epochs:
        idx = rng.integers(0, n, args.batch)
        xb, yb = resize(images[idx], size), labels[idx]
        step_ours(xb, yb)
        step_ref(xb, yb)  # warm-up
        t_o, t_r = [], []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step_ours(xb, yb)
            t_o.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            step_ref(xb, yb)
            t_r.append(time.perf_counter() - t0)
        steps_per_epoch = -(-n // args.batch)
        row.update(ours=statistics.median(t_o) * steps_per_epoch, torch=statistics.median(t_r) * steps_per_epoch,
                   note=f"projected from the median of {args.steps} steps")
        return row
    t_o, t_r, acc_o, acc_r = [], [], [], []
    for epoch in range(args.epochs):
        order = rng.permutation(n)
        ours.train()
        ref.train()
        # Steps alternate (ours, torch, ours, ...) on the same resized batch, so a slow phase of
        # this shared VM (seen to last minutes and to stretch steps by up to ~20%) hits both sides
        # alike; an epoch's time is the sum of its side's steps (the shared resize is in neither).
        epoch_o = epoch_r = 0.0
        for i in range(0, n, args.batch):
            b = order[i:i + args.batch]
            xb, yb = resize(images[b], size), labels[b]
            t0 = time.perf_counter()
            step_ours(xb, yb)
            t1 = time.perf_counter()
            step_ref(xb, yb)
            epoch_o, epoch_r = epoch_o + t1 - t0, epoch_r + time.perf_counter() - t1
        t_o.append(epoch_o)
        t_r.append(epoch_r)
        for sched in schedulers:
            sched.step()
        ours.eval()
        ref.eval()
        with fastconv.no_grad():
            acc_o.append(_accuracy(lambda x: ours(fastconv.Tensor(x)).numpy(), *test, size))
        with torch.no_grad():
            acc_r.append(_accuracy(lambda x: ref(torch.from_numpy(x)).numpy(), *test, size))
        print(f"  {name} epoch {epoch + 1}: fastconv {t_o[-1]:.1f} s, test {100 * acc_o[-1]:.2f}%; "
              f"torch {t_r[-1]:.1f} s, test {100 * acc_r[-1]:.2f}%", flush=True)
    row.update(ours=statistics.median(t_o), torch=statistics.median(t_r), acc_ours=acc_o[-1], acc_torch=acc_r[-1],
               note=f"median of {args.epochs} epochs")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(CONFIGS), help="comma-separated (default: all)")
    ap.add_argument("--config", action="append", default=[], help="NAME:WIDTH:SIZE overriding the defaults")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side without --epochs")
    ap.add_argument("--epochs", type=int, default=0, help="train full epochs and report test accuracy")
    ap.add_argument("--train-size", type=int, default=None, help="use the first N training images")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--optimizer", default="adam", choices=["adam", "sgd"], help="the same on both sides")
    ap.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    ap.add_argument("--init", default="default", choices=["default", "xavier"],
                    help="weights: PyTorch's defaults, or Xavier uniform as d2l's init_cnn (copied to torch)")
    ap.add_argument("--cosine", action="store_true", help="cosine learning-rate schedule over --epochs (both sides)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import fastconv

    configs = dict(CONFIGS)
    for c in args.config:
        name, width, size = c.split(":")
        configs[name] = (float(width), int(size))
    names = args.models.split(",")
    tr = fastconv.data.load_idx_dataset("fashion-mnist", "train", root=args.data, normalize=True)
    te = fastconv.data.load_idx_dataset("fashion-mnist", "test", root=args.data, normalize=True)
    n = args.train_size or len(tr)
    train, test = (tr.images[:n], tr.labels[:n]), (te.images, te.labels)
    rows = []
    for name in names:
        width, size = configs[name]
        rows.append(bench(name, width, size, args, train, test))
        r = rows[-1]
        print(f"{name}: fastconv {r['ours']:.1f} s/epoch, torch {r['torch']:.1f} s/epoch, "
              f"ratio {r['ours'] / r['torch']:.2f} ({r['note']})", flush=True)

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    out = Path(args.out) if args.out else HERE / "results" / f"{date}_{platform.node() or 'machine'}_models.md"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine()) if os.path.exists("/proc/cpuinfo") else platform.machine()
    lines = [f"# d2l models on Fashion-MNIST: fastconv vs PyTorch CPU ({date})", "",
             f"- CPU: {cpu}, {args.threads} threads; batch {args.batch}, "
             + (f"SGD lr {args.lr} momentum {args.momentum}" if args.optimizer == "sgd" else f"Adam lr {args.lr}")
             + (", Xavier initialisation" if args.init == "xavier" else "")
             + (", cosine schedule" if args.cosine else "") + f", {n} training images",
             f"- command: `python3 {' '.join(sys.argv)}`", "",
             "| model | width | input | params | fastconv s/epoch | torch s/epoch | ratio | test acc (ours / torch) | how |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = f"{100 * r['acc_ours']:.2f}% / {100 * r['acc_torch']:.2f}%" if "acc_ours" in r else "-"
        lines.append(f"| {r['model']} | {r['width']} | {r['size']} | {r['params']:,} | {r['ours']:.1f} | "
                     f"{r['torch']:.1f} | {r['ours'] / r['torch']:.2f} | {acc} | {r['note']} |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
