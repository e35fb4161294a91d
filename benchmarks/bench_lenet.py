"""LeNet-5 training epoch: fastconv against PyTorch CPU, same model, batch, optimizer and threads.

Each side runs in its own worker process (so each one's peak RSS is its own), and the parent
alternates them epoch by epoch (A, B, A, B, ...) so machine noise hits both alike. After one warm-up
epoch each, `--epochs` epochs per side are timed; the report gives the median seconds per epoch,
images/s, the ratio fastconv / torch, peak RSS and the test accuracy each side reached.

    python benchmarks/bench_lenet.py --threads 2 --epochs 5
    python benchmarks/bench_lenet.py --threads 2 --epochs 3 --train-size 15000   # quicker
    python benchmarks/bench_lenet.py --profile                                    # where fastconv's time goes

Results go to benchmarks/results/<date>_<machine>_lenet.md (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


# ---- workers ---------------------------------------------------------------------------------------------


def _data(args):
    import fastconv

    train = fastconv.data.load_idx_dataset(args.dataset, "train", root=args.data)
    test = fastconv.data.load_idx_dataset(args.dataset, "test", root=args.data)
    n = args.train_size or len(train)
    return train.images[:n], train.labels[:n], test.images, test.labels


class FastconvSide:
    def __init__(self, args):
        import fastconv
        from fastconv.nn import functional as F

        self.fc, self.F = fastconv, F
        fastconv.set_num_threads(args.threads)
        fastconv.manual_seed(0)
        self.model = fastconv.models.LeNet5(args.variant)
        params = self.model.parameters()
        self.opt = (fastconv.optim.SGD(params, args.lr, momentum=0.9) if args.optimizer == "sgd"
                    else fastconv.optim.Adam(params, args.lr))

    def train_step(self, xb, yb):
        loss = self.F.cross_entropy(self.model(self.fc.Tensor(xb)), yb)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def predict(self, xb):
        with self.fc.no_grad():
            return self.model(self.fc.Tensor(xb)).numpy().argmax(axis=1)


class TorchSide:
    def __init__(self, args):
        import torch
        import torch.nn as tnn

        self.torch = torch
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        act, pool = (tnn.ReLU, tnn.MaxPool2d) if args.variant == "modern" else (tnn.Sigmoid, tnn.AvgPool2d)
        features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), act(), pool(2), tnn.Conv2d(6, 16, 5), act(), pool(2))
        classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(400, 120), act(), tnn.Linear(120, 84), act(),
                                    tnn.Linear(84, 10))
        self.model = tnn.Sequential()
        self.model.add_module("features", features)
        self.model.add_module("classifier", classifier)
        # Same starting weights as the fastconv side (same seed, same state_dict names): both sides
        # then follow the same trajectory, so neither times a diverged or dead network.
        import fastconv

        fastconv.manual_seed(0)
        init = fastconv.models.LeNet5(args.variant).state_dict()
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
        params = self.model.parameters()
        self.opt = (torch.optim.SGD(params, args.lr, momentum=0.9) if args.optimizer == "sgd"
                    else torch.optim.Adam(params, args.lr))

    def train_step(self, xb, yb):
        torch = self.torch
        loss = torch.nn.functional.cross_entropy(self.model(torch.from_numpy(xb)), torch.from_numpy(yb))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def predict(self, xb):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(xb)).argmax(dim=1).numpy()


def worker(args) -> int:
    """Serve 'epoch' / 'quit' commands from the parent on stdin, one JSON reply per line."""
    side = (FastconvSide if args.worker == "fastconv" else TorchSide)(args)
    x, y, xt, yt = _data(args)
    rng = np.random.default_rng(0)
    profiler = None
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            preds = np.concatenate([side.predict(xt[i : i + 1000]) for i in range(0, len(xt), 1000)])
            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            reply = {"peak_rss_mib": peak_kib / 1024, "test_acc": float((preds == yt).mean())}
            if profiler is not None:
                import io
                import pstats

                s = io.StringIO()
                pstats.Stats(profiler, stream=s).sort_stats("tottime").print_stats(18)
                reply["profile"] = s.getvalue()
            print(json.dumps(reply), flush=True)
            return 0
        if cmd in ("epoch", "profile"):
            if cmd == "profile":
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            order = rng.permutation(len(x))
            losses = []
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(0, len(order), args.batch_size):
                idx = order[i : i + args.batch_size]
                losses.append(side.train_step(x[idx], y[idx]))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if profiler is not None:
                profiler.disable()
            seconds = cpu if args.clock == "cpu" else wall
            print(json.dumps({"seconds": seconds, "wall": wall, "cpu": cpu, "loss": float(np.mean(losses[-20:]))}),
                  flush=True)
    return 1


# ---- parent ----------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, name, argv, threads):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.name = name
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", name] + argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (code {self.proc.wait()})")
        return json.loads(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs per side (after one warm-up epoch each)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    ap.add_argument("--lr", type=float, default=None, help="default: 0.1 for sgd (momentum 0.9), 1e-3 for adam")
    ap.add_argument("--variant", default="modern", choices=["modern", "classic"])
    ap.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    ap.add_argument("--data", default=None, help="directory with the IDX files")
    ap.add_argument("--train-size", type=int, default=0, help="train on the first N images per epoch (0: all)")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="time epochs by wall clock (default) or by the process's CPU time: with --threads 1 on a "
                         "busy shared machine, CPU time is the robust measure of the work done")
    ap.add_argument("--profile", action="store_true", help="cProfile fastconv's last epoch and print the top entries")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/<date>_<machine>_lenet.md)")
    ap.add_argument("--worker", choices=["fastconv", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lr is None:
        args.lr = 0.1 if args.optimizer == "sgd" else 1e-3
    if args.worker:
        return worker(args)

    argv = [f"--threads={args.threads}", f"--batch-size={args.batch_size}", f"--optimizer={args.optimizer}",
            f"--lr={args.lr}", f"--variant={args.variant}", f"--dataset={args.dataset}",
            f"--train-size={args.train_size}", f"--clock={args.clock}"] + ([f"--data={args.data}"] if args.data else [])
    sides = {name: Worker(name, argv, args.threads) for name in ("fastconv", "torch")}
    times = {name: [] for name in sides}
    losses = {name: [] for name in sides}
    for name, w in sides.items():
        warm = w.ask("epoch")
        print(f"warm-up {name:>8}: {warm['wall']:.2f} s wall, {warm['cpu']:.2f} s CPU", flush=True)
    for e in range(args.epochs):
        order = list(sides) if e % 2 == 0 else list(sides)[::-1]  # alternate who goes first, too
        for name in order:
            cmd = "profile" if args.profile and name == "fastconv" and e == args.epochs - 1 else "epoch"
            r = sides[name].ask(cmd)
            times[name].append(r["seconds"])
            losses[name].append(r["loss"])
            print(f"epoch {e + 1} {name:>8}: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU  loss {r['loss']:.4f}",
                  flush=True)
    final = {name: w.ask("quit") for name, w in sides.items()}
    for w in sides.values():
        w.proc.wait()

    import fastconv
    import torch

    n_images = args.train_size or 60000
    med = {n: statistics.median(t) for n, t in times.items()}
    ratio = med["fastconv"] / med["torch"]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    machine = platform.node() or "machine"
    out = Path(args.out) if args.out else HERE / "results" / f"{date}_{machine}_lenet.md"
    command = "python benchmarks/bench_lenet.py " + " ".join(a for a in sys.argv[1:])
    lines = [
        f"# LeNet-5 ({args.variant}) training epoch: fastconv vs PyTorch CPU",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {fastconv.info()['cpu_model']} ({os.cpu_count()} logical CPUs), fastconv CPU path {fastconv.info()['cpu_path']}",
        f"- threads: {args.threads} (both sides); fastconv {fastconv.__version__}, torch {torch.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}",
        f"- workload: {args.dataset}, {n_images} training images per epoch, batch {args.batch_size}, "
        f"{args.optimizer} lr {args.lr}" + (" momentum 0.9" if args.optimizer == "sgd" else "") +
        f"; one warm-up epoch each, then {args.epochs} epochs per side, alternating; "
        f"epochs timed by {'wall clock' if args.clock == 'wall' else 'process CPU time'}",
        f"- load average at the end (1/5/15 min): {'/'.join(f'{v:.1f}' for v in os.getloadavg())}",
        f"- command: `{command}`",
        "",
        "| | median s/epoch | images/s | epochs (s) | peak RSS (MiB) | test acc after run |",
        "|---|---|---|---|---|---|",
    ]
    for n in sides:
        lines.append(f"| {n} | {med[n]:.2f} | {n_images / med[n]:,.0f} | {', '.join(f'{t:.2f}' for t in times[n])} | "
                     f"{final[n]['peak_rss_mib']:.0f} | {100 * final[n]['test_acc']:.2f}% |")
    lines += ["", f"**fastconv / torch time ratio (median): {ratio:.2f}** "
                  f"({'fastconv faster' if ratio < 1 else 'torch faster'}; below 1.0 meets the bar)", ""]
    if "profile" in final["fastconv"]:
        lines += ["fastconv profile of its last epoch (cProfile, by own time):", "```",
                  final["fastconv"]["profile"].strip(), "```", ""]
    text = "\n".join(lines)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
