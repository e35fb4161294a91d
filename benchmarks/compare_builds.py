"""Two builds of fastconv side by side: did a change make the CPU kernels or the Python layer slower?

Each build runs in its own worker process (``PYTHONPATH=<site>``) and the parent alternates them
ABBA-style (old, new, new, old, ...), so drifting machine noise hits both alike. Inside a worker
every case is timed against its reference (numpy/OpenBLAS for GEMM, torch for conv, pooling and the
LeNet step) in warmed blocks of calls with a pause between the two sides: on a 2-core machine
call-by-call alternation would time two thread pools spinning against each other. The report gives
per case the median ms of each build, new/old per pair, and each build's time / reference's time.

Only the public API is used (``fastconv.conv2d``, ``fastconv.grad.*``, ``fastconv.gemm``, pooling,
``fastconv.models.LeNet5``, ``fastconv.optim.SGD``), so the two builds may differ in internal layout.

    python benchmarks/compare_builds.py --old /path/to/old/site --new build/site --runs 4
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETTLE_S = 0.15  # pause between the two sides: lets the other side's spinning threads go to sleep
BLOCK = 5  # calls per warmed block
ROUNDS = 4  # blocks per side and case


def _median_blocks(ours, ref, rounds=ROUNDS, block=BLOCK):
    """(median ms of ours, median ms of ref): both warmed, timed in alternating blocks of calls."""
    times = {"ours": [], "ref": []}
    for fn in (ours, ref):
        for _ in range(2):
            fn()
    for _ in range(rounds):
        for side, fn in (("ours", ours), ("ref", ref)):
            time.sleep(SETTLE_S)
            fn()  # the first call after the pause wakes the pool; time the steady state after it
            for _ in range(block):
                t = time.perf_counter()
                fn()
                times[side].append(time.perf_counter() - t)
    return statistics.median(times["ours"]) * 1e3, statistics.median(times["ref"]) * 1e3


def _cases(shapes_csv: Path):
    """(name, ours, reference) for every case; built lazily inside the worker."""
    import torch
    import torch.nn.functional as TF

    import fastconv

    rng = np.random.default_rng(0)
    for n in (1024, 2048):
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        yield f"gemm n={n}", lambda a=a, b=b: fastconv.gemm(a, b), lambda a=a, b=b: a @ b

    with open(shapes_csv) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        N, C, H, W, K, R, S, st, pd = (int(row[k]) for k in ("N", "C", "H", "W", "K", "R", "S", "stride", "pad"))
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = (rng.standard_normal((K, C, R, S), dtype=np.float32) / np.sqrt(C * R * S)).astype(np.float32)
        b = rng.standard_normal(K, dtype=np.float32)
        y = fastconv.conv2d(x, w, b, st, pd)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        tx, tw, tb, tdy = (torch.from_numpy(v) for v in (x, w, b, dy))
        name = row["name"]
        yield (f"conv {name} forward", lambda x=x, w=w, b=b, st=st, pd=pd: fastconv.conv2d(x, w, b, st, pd),
               lambda tx=tx, tw=tw, tb=tb, st=st, pd=pd: TF.conv2d(tx, tw, tb, st, pd))
        yield (f"conv {name} input", lambda w=w, dy=dy, s=x.shape, st=st, pd=pd: fastconv.grad.conv2d_input(s, w, dy, st, pd),
               lambda tw=tw, tdy=tdy, s=x.shape, st=st, pd=pd: torch.nn.grad.conv2d_input(s, tw, tdy, st, pd))
        yield (f"conv {name} weight", lambda x=x, dy=dy, s=w.shape, st=st, pd=pd: fastconv.grad.conv2d_weight(x, s, dy, st, pd),
               lambda tx=tx, tdy=tdy, s=w.shape, st=st, pd=pd: torch.nn.grad.conv2d_weight(tx, s, tdy, st, pd))

    for shape, k, s, p in (((256, 6, 28, 28), 2, 2, 0), ((8, 64, 112, 112), 3, 2, 1)):
        x = rng.standard_normal(shape, dtype=np.float32)
        tx = torch.from_numpy(x)
        label = f"{k}x{k} s{s} p{p} {shape}"
        yield (f"max_pool {label} forward", lambda x=x, k=k, s=s, p=p: fastconv.max_pool2d(x, k, s, p),
               lambda tx=tx, k=k, s=s, p=p: TF.max_pool2d(tx, k, s, p))
        yield (f"avg_pool {label} forward", lambda x=x, k=k, s=s, p=p: fastconv.avg_pool2d(x, k, s, p),
               lambda tx=tx, k=k, s=s, p=p: TF.avg_pool2d(tx, k, s, p))
        y, idx = fastconv.max_pool2d(x, k, s, p, return_indices=True)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        ty, tidx = TF.max_pool2d(tx, k, s, p, return_indices=True)
        tdy = torch.from_numpy(dy)
        yield (f"max_pool {label} backward", lambda dy=dy, idx=idx, sh=shape: fastconv.grad.max_pool2d(dy, idx, sh),
               lambda tdy=tdy, tidx=tidx, tx=tx, k=k, s=s, p=p: torch.ops.aten.max_pool2d_with_indices_backward(
                   tdy, tx, [k, k], [s, s], [p, p], [1, 1], False, tidx))

    yield ("lenet5 train step batch 256", *_lenet_step(rng))


def _lenet_step(rng):
    """One SGD step (forward, loss, backward, update) of LeNet-5 at batch 256, ours and torch's."""
    import torch
    import torch.nn as tnn

    import fastconv
    from fastconv.nn import functional as F

    xb = rng.standard_normal((256, 1, 28, 28), dtype=np.float32)
    yb = rng.integers(0, 10, 256).astype(np.int64)
    fastconv.manual_seed(0)
    model = fastconv.models.LeNet5()
    opt = fastconv.optim.SGD(model.parameters(), 0.01, momentum=0.9)

    def ours():
        loss = F.cross_entropy(model(fastconv.Tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    tmodel = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
                            tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
                            tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    topt = torch.optim.SGD(tmodel.parameters(), 0.01, momentum=0.9)
    txb, tyb = torch.from_numpy(xb), torch.from_numpy(yb)

    def ref():
        loss = torch.nn.functional.cross_entropy(tmodel(txb), tyb)
        topt.zero_grad()
        loss.backward()
        topt.step()

    return ours, ref


def worker(args) -> int:
    import torch

    import fastconv

    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    results = {}
    for name, ours, ref in _cases(Path(args.shapes)):
        if not args.only or any(part in name for part in args.only.split(",")):
            results[name] = _median_blocks(ours, ref)
    print(json.dumps(results))
    return 0


def _run_worker(site: str, args) -> dict:
    env = {**os.environ, "PYTHONPATH": site, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", "--threads", str(args.threads), "--shapes", args.shapes,
           "--only", args.only]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", help="site directory of the old build (holds fastconv/)")
    ap.add_argument("--new", help="site directory of the new build")
    ap.add_argument("--old-label", default="old")
    ap.add_argument("--new-label", default="new")
    ap.add_argument("--runs", type=int, default=4, help="worker runs per build, alternated ABBA (default 4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default=str(HERE / "shapes.csv"))
    ap.add_argument("--only", default="", help="comma-separated substrings: time only the cases whose name has one")
    ap.add_argument("--out", help="results markdown file (default: print only)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if not (args.old and args.new):
        ap.error("--old and --new are required")
    runs = {"old": [], "new": []}
    for i in range(args.runs):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        for side in order:
            runs[side].append(_run_worker(getattr(args, side), args))
            print(f"run {i + 1}/{args.runs} {side} done", file=sys.stderr)
    lines = [
        f"# {args.new_label} against {args.old_label}: conv, GEMM, pooling, LeNet step ({datetime.now(timezone.utc):%Y-%m-%d})",
        "",
        f"- machine: {platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.threads} threads",
        f"- command: `python benchmarks/compare_builds.py {shlex.join(sys.argv[1:])}`",
        f"- method: each build in its own process, {args.runs} runs each alternated ABBA; in a process every case "
        f"is timed against its reference (numpy for GEMM, torch for the rest) in {ROUNDS} warmed blocks of "
        f"{BLOCK} calls per side with a {SETTLE_S} s pause between sides; per run the median call; here the "
        "median over runs. ms per call.",
        "",
        f"| case | {args.old_label} ms | {args.new_label} ms | new/old per pair | {args.old_label}/ref | "
        f"{args.new_label}/ref |",
        "|---|---|---|---|---|---|",
    ]
    worse = []
    for case in runs["old"][0]:
        old = [r[case][0] for r in runs["old"]]
        new = [r[case][0] for r in runs["new"]]
        pairs = [n / o for n, o in zip(new, old)]
        old_ref = statistics.median(r[case][0] / r[case][1] for r in runs["old"])
        new_ref = statistics.median(r[case][0] / r[case][1] for r in runs["new"])
        lines.append(f"| {case} | {statistics.median(old):.3f} | {statistics.median(new):.3f} | "
                     f"{' '.join(f'{p:.2f}' for p in pairs)} | {old_ref:.2f} | {new_ref:.2f} |")
        if statistics.median(pairs) > 1.05:
            worse.append(case)
    ratios = [statistics.median(n[c][0] / o[c][0] for n, o in zip(runs["new"], runs["old"])) for c in runs["old"][0]]
    geo = float(np.exp(np.mean(np.log(ratios))))
    lines += ["", f"Geometric mean of the per-case median new/old: {geo:.3f}. "
              f"Cases with a median new/old above 1.05: {', '.join(worse) if worse else 'none'}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
