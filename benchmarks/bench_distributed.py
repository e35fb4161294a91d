"""Data-parallel scaling on one machine: samples per second of LeNet-5 and the small ResNet-18 for
1 process x 2 threads against 2 processes x 1 thread (gloo over localhost), for fastconv
(fastconv.distributed.DataParallel) and for the same architecture in PyTorch with its own
DistributedDataParallel, in one run.

Each configuration runs as separate worker processes started here with torchrun's environment
variables (RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). A worker trains with SGD
(momentum 0.9) on a fixed global batch of synthetic Fashion-MNIST-shaped images (the data does not
change the speed), each rank on its equal share, warm-up steps first, then --steps timed steps;
throughput = global batch x steps / the slowest rank's time. Configurations alternate, --rounds
times, and the table shows the median round.

All-reduce share, two figures: "exposed" is the time fastconv's backward waited at its end for
reductions still in flight (communication that did not overlap with computation; the rank-skew
is in it too), as a share of the step; "all-reduce alone" is the median time of one all-reduce of
the model's gradient size between the two processes, measured after training, times the steps,
as a share of the training time (an upper bound on what communication can cost).

    python3 benchmarks/bench_distributed.py [--steps 60] [--rounds 3] [--models lenet,resnet18]

Writes benchmarks/results/<date>_<machine>_distributed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# name -> (fastconv model kwargs, input size, global batch)
MODELS = {
    "lenet": ({"name": "lenet5"}, 28, 256),
    "resnet18": ({"name": "resnet18", "small": True, "width": 0.25}, 32, 128),
}
CONFIGS = [(1, 2), (2, 1)]  # (processes, threads per process)


def _build(framework: str, model: str):
    import fastconv

    kwargs, size, batch = MODELS[model]
    fastconv.manual_seed(0)
    kw = dict(kwargs)
    name = kw.pop("name")
    ours = fastconv.models.LeNet5("modern") if name == "lenet5" else fastconv.models.get(name, **kw)
    if framework == "fastconv":
        return ours, size, batch
    from fastconv.bench.torch_mirror import copy_weights, to_torch, torch_lenet

    ref = torch_lenet("modern") if name == "lenet5" else to_torch(ours)
    copy_weights(ref, ours)
    return ref, size, batch


def worker(framework: str, model: str, steps: int, warmup: int, out: str) -> None:
    """One rank of one configuration; rank 0 writes its measurements to `out` as JSON."""
    import torch
    import torch.distributed as dist

    import fastconv

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    threads = int(os.environ["BENCH_THREADS"])
    fastconv.set_num_threads(threads)
    torch.set_num_threads(threads)
    if world > 1:
        import datetime as dt

        dist.init_process_group("gloo", timeout=dt.timedelta(seconds=120))
    net, size, batch = _build(framework, model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    share = slice(rank * batch // world, (rank + 1) * batch // world)
    x, y = x[share], y[share]
    n_grad = sum(int(np.prod(p.shape)) for p in net.parameters())

    if framework == "fastconv":
        from fastconv.nn import functional as F

        if world > 1:
            from fastconv import distributed

            net = distributed.DataParallel(net, **({"bucket_bytes": int(os.environ["BENCH_BUCKET_BYTES"])}
                                                   if os.environ.get("BENCH_BUCKET_BYTES") else {}))
        opt = fastconv.optim.SGD(net.parameters(), 0.01, momentum=0.9)
        xt = fastconv.Tensor(x)

        def step():
            loss = F.cross_entropy(net(xt), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        if world > 1:
            net = torch.nn.parallel.DistributedDataParallel(net)
        opt = torch.optim.SGD(net.parameters(), 0.01, momentum=0.9)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            loss = torch.nn.functional.cross_entropy(net(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()

    for _ in range(warmup):
        step()
    wait_before = net.stats["wait_seconds"] if framework == "fastconv" and world > 1 else 0.0
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - t0
    wait = (net.stats["wait_seconds"] - wait_before) if framework == "fastconv" and world > 1 else None
    allreduce_s = None
    if world > 1:
        from fastconv.distributed import all_reduce_max

        elapsed = float(all_reduce_max([elapsed])[0])
        flat = torch.zeros(n_grad)
        times = []
        for _ in range(25):
            dist.barrier()
            t = time.perf_counter()
            dist.all_reduce(flat)
            times.append(time.perf_counter() - t)
        allreduce_s = statistics.median(times[5:])
        dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps({"samples_per_s": batch * steps / elapsed, "step_ms": 1e3 * elapsed / steps,
                                         "wait_s": wait, "elapsed_s": elapsed, "allreduce_s": allreduce_s,
                                         "grad_floats": n_grad}))
    # Skip interpreter teardown: with DistributedDataParallel, torch 2.13 sometimes aborts there
    # ("terminate called without an active exception") after everything has been measured and written.
    sys.stdout.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_config(framework: str, model: str, procs: int, threads: int, steps: int, warmup: int, tmp: Path) -> dict:
    out = tmp / f"{framework}_{model}_{procs}x{threads}.json"
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(procs),
               LOCAL_WORLD_SIZE=str(procs), BENCH_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, model, str(steps), str(warmup), str(out)]
    procs_ = [subprocess.Popen(cmd, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for r in range(procs)]
    logs = [p.communicate(timeout=900)[0] for p in procs_]
    for p, log in zip(procs_, logs):
        if p.returncode != 0:
            raise RuntimeError(f"{framework} {model} {procs}x{threads} failed:\n{log[-3000:]}")
    return json.loads(out.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=5, metavar=("FRAMEWORK", "MODEL", "STEPS", "WARMUP", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--models", default="lenet,resnet18")
    ap.add_argument("--frameworks", default="fastconv,torch")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.worker:
        framework, model, steps, warmup, out = args.worker
        worker(framework, model, int(steps), int(warmup), out)
        return 0

    import tempfile

    import torch

    import fastconv

    models = args.models.split(",")
    frameworks = args.frameworks.split(",")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for model in models:
                for framework in frameworks:
                    for procs, threads in CONFIGS:
                        res = run_config(framework, model, procs, threads, args.steps, args.warmup, Path(tmp))
                        results.setdefault((model, framework, procs, threads), []).append(res)
                        print(f"round {r + 1}: {model:9s} {framework:8s} {procs} x {threads}: "
                              f"{res['samples_per_s']:8.0f} samples/s  {res['step_ms']:7.2f} ms/step"
                              + (f"  waited {res['wait_s']:.3f} s" if res.get("wait_s") is not None else ""), flush=True)

    rows = ["| model | framework | processes x threads | samples/s (median of rounds) | ms/step | vs 1 x 2 | "
            "all-reduce exposed (share of step) | all-reduce alone x steps (share) |", "|---|---|---|---|---|---|---|---|"]
    bar = []
    for model in models:
        for framework in frameworks:
            base = None
            for procs, threads in CONFIGS:
                runs = sorted(results[(model, framework, procs, threads)], key=lambda d: d["samples_per_s"])
                med = runs[len(runs) // 2]
                base = base or med["samples_per_s"]
                ratio = med["samples_per_s"] / base
                exposed = f"{100 * med['wait_s'] / med['elapsed_s']:.1f}%" if med.get("wait_s") is not None else "-"
                alone = (f"{1e3 * med['allreduce_s']:.2f} ms ({100 * med['allreduce_s'] * args.steps / med['elapsed_s']:.1f}%)"
                         if med.get("allreduce_s") is not None else "-")
                rows.append(f"| {model} | {framework} | {procs} x {threads} | {med['samples_per_s']:.0f} | "
                            f"{med['step_ms']:.2f} | {ratio:.2f}x | {exposed} | {alone} |")
                if procs == 2:
                    bar.append(f"- {model}, {framework}: 2 processes x 1 thread reach {ratio:.2f}x the samples/s of "
                               f"1 process x 2 threads" + (" (bar: >= 0.8x)" if framework == "fastconv" else ""))
    from fastconv.bench.sweep import machine_tag

    now = datetime.now(timezone.utc)
    lines = [
        "# Data-parallel scaling on one machine (issue 12)", "",
        f"- date: {now:%Y-%m-%d %H:%M} UTC",
        f"- machine: {fastconv.info()['cpu_model']}, {os.cpu_count()} logical CPUs, fastconv path {fastconv.info()['cpu_path']}",
        f"- fastconv {fastconv.__version__}, torch {torch.__version__}, numpy {np.__version__}",
        f"- command: `python3 benchmarks/bench_distributed.py --steps {args.steps} --rounds {args.rounds}`",
        f"- SGD momentum 0.9, synthetic images; global batch: "
        + ", ".join(f"{m} {MODELS[m][2]} at {MODELS[m][1]}x{MODELS[m][1]}" for m in models)
        + f"; {args.warmup} warm-up steps, {args.steps} timed steps per run, {args.rounds} rounds",
        "", "## Bar", *bar, "", "## Throughput", *rows, "",
    ]
    out = Path(args.out) if args.out else HERE / "results" / f"{now:%Y-%m-%d}_{machine_tag()}_distributed.md"
    out.write_text("\n".join(lines))
    print("\n".join(bar))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
