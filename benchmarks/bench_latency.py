"""Batch-1 latency after idle: what a lone call pays for waking OpenMP threads, under each OpenMP
wait policy. The policy is read once, when the OpenMP runtime loads (with the first import of
fastconv or torch), so every variant runs in its own subprocess.

    python benchmarks/bench_latency.py --out benchmarks/results/x.md

For each environment variant (default, OMP_WAIT_POLICY=passive/active, GOMP_SPINCOUNT values) a
child process times, for each idle gap (0 = back to back), `--repeat` calls each preceded by
sleeping the gap: a batch-1 convolution (fastconv.conv2d on numpy, ResNet's 64 -> 64 3x3 layer on
56x56) and, with torch installed, a batch-1 forward of ResNet-18 patched with fastconv.torch.patch.
It reports the median latency and the process CPU time burnt during the sleep itself (the worker
threads spinning; wall-clock idle otherwise), per gap. Variants run interleaved round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

VARIANTS = {
    "default": {},
    "OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
    "GOMP_SPINCOUNT=10000000": {"GOMP_SPINCOUNT": "10000000"},
    "OMP_WAIT_POLICY=active": {"OMP_WAIT_POLICY": "active"},
}
GAPS_MS = (0.0, 1.0, 10.0, 100.0, 1000.0)


def child(gaps_ms: list[float], repeat: int, threads: int, model: bool) -> dict:
    """Run in the subprocess: {workload: {gap: (median ms, median CPU ms burnt while sleeping)}}."""
    import numpy as np

    import fastconv

    fastconv.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    workloads = {"conv b1 (64->64 3x3, 56x56)": lambda: fastconv.conv2d(x, w, padding=1)}
    if model:
        import copy

        import torch

        import fastconv.torch as fct
        from fastconv.bench.torch_models import build

        torch.set_num_threads(threads)
        net = copy.deepcopy(build("resnet18").eval())
        fct.patch(net)
        xt = torch.randn(1, 3, 224, 224)

        def forward():
            with torch.no_grad():
                net(xt)

        workloads["patched ResNet-18 forward b1"] = forward
    out = {}
    for name, fn in workloads.items():
        for _ in range(3):
            fn()
        samples = {g: ([], []) for g in gaps_ms}
        for _ in range(repeat):
            for g in gaps_ms:  # gaps interleaved, so drifts hit all alike
                cpu0 = time.process_time()
                time.sleep(g / 1e3)
                burnt = time.process_time() - cpu0
                t0 = time.perf_counter()
                fn()
                samples[g][0].append(time.perf_counter() - t0)
                samples[g][1].append(burnt)
        out[name] = {g: (statistics.median(t) * 1e3, statistics.median(c) * 1e3) for g, (t, c) in samples.items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="calls per gap per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the variants (a subprocess each)")
    ap.add_argument("--gaps-ms", type=float, nargs="+", default=list(GAPS_MS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--no-model", action="store_true", help="skip the patched ResNet-18 forward (no torch)")
    ap.add_argument("--out", default=None, help="markdown file to append the table to")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.gaps_ms, args.repeat, args.threads, not args.no_model)))
        return 0

    results = {v: [] for v in args.variants}
    for _ in range(args.rounds):
        for v in args.variants:
            env = {k: val for k, val in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
            env.update(VARIANTS[v])
            cmd = [sys.executable, __file__, "--child", v, "--threads", str(args.threads), "--repeat",
                   str(args.repeat), "--gaps-ms", *map(str, args.gaps_ms)] + (["--no-model"] if args.no_model else [])
            results[v].append(json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                                        text=True).stdout.splitlines()[-1]))
    gaps = [str(g) for g in args.gaps_ms]
    lines = [f"### OpenMP wait policies ({datetime.now(timezone.utc).isoformat(timespec='seconds')})", "",
             "`python benchmarks/bench_latency.py " + " ".join(sys.argv[1:]) + "`", "",
             f"{args.threads} threads; median over {args.rounds} subprocesses x {args.repeat} calls per gap; "
             "cell: latency ms (CPU ms burnt by the process while it slept the gap)", "",
             "| workload | variant | " + " | ".join(f"gap {g} ms" for g in gaps) + " |",
             "|---|---|" + "---|" * len(gaps)]
    for workload in results[args.variants[0]][0]:
        for v in args.variants:
            cells = []
            for g in gaps:
                lat = statistics.median(r[workload][g][0] for r in results[v])
                cpu = statistics.median(r[workload][g][1] for r in results[v])
                cells.append(f"{lat:.2f} ({cpu:.1f})")
            lines.append(f"| {workload} | {v} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n\n"
    print(text)
    if args.out:
        from fastconv.bench.sweep import save_text  # local, like the module's other fastconv imports

        save_text(args.out, text, append=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
