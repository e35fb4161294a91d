"""What fastconv's malloc setting (fastconv/__init__.py, _tune_malloc) buys: LeNet-5 training steps
on synthetic data with the setting (default) and without it (FASTCONV_MALLOC_TUNING=0), each in a
fresh process (malloc's state is per process), alternating, --rounds times: median milliseconds
per step and minor page faults per step.

    python3 benchmarks/bench_malloc.py --threads 2 [--rounds 5]

Writes benchmarks/results/<date>_<machine>_malloc.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = """
import json, resource, sys, time, numpy as np, fastconv
from fastconv.nn import functional as F
fastconv.set_num_threads(int(sys.argv[1]))
fastconv.manual_seed(0)
net = fastconv.models.LeNet5("modern")
opt = fastconv.optim.SGD(net.parameters(), 0.01, momentum=0.9)
rng = np.random.default_rng(1)
x, y = rng.standard_normal((256, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 256)
def step():
    loss = F.cross_entropy(net(fastconv.Tensor(x)), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(5):
    step()
faults, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
for _ in range(40):
    step()
print(json.dumps({"ms": (time.perf_counter() - t0) / 40 * 1e3,
                  "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 40,
                  "tuned": fastconv._malloc_tuned}))
"""


def run(threads: int, tuning: bool) -> dict:
    env = dict(os.environ, FASTCONV_MALLOC_TUNING="1" if tuning else "0")
    out = subprocess.run([sys.executable, "-c", WORKER, str(threads)], env=env, capture_output=True, text=True,
                         check=True, timeout=300)
    return json.loads(out.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    runs = {True: [], False: []}
    for _ in range(args.rounds):
        for tuning in (True, False):
            runs[tuning].append(run(args.threads, tuning))
    import fastconv

    from fastconv.bench.sweep import results_path, save_text

    rows = ["| malloc setting | ms per step (median of rounds) | page faults per step | rounds (ms) |", "|---|---|---|---|"]
    for tuning in (True, False):
        r = runs[tuning]
        rows.append(f"| {'fastconv (default)' if tuning else 'glibc default (FASTCONV_MALLOC_TUNING=0)'} | "
                    f"{statistics.median(d['ms'] for d in r):.2f} | {statistics.median(d['faults'] for d in r):.0f} | "
                    + ", ".join(f"{d['ms']:.2f}" for d in r) + " |")
    today = datetime.date.today()
    lines = [f"# malloc thresholds and a LeNet-5 training step ({today})", "",
             f"- {fastconv.info()['cpu_model']}, {os.cpu_count()} logical CPUs, {args.threads} threads, fastconv {fastconv.__version__}",
             f"- command: `python3 benchmarks/bench_malloc.py --threads {args.threads} --rounds {args.rounds}`",
             "- LeNet-5 (modern), batch 256 of synthetic images, SGD momentum 0.9; 5 warm-up steps, 40 timed; "
             "each run a fresh process, the two settings alternating", "", *rows, ""]
    print("\n".join(rows))
    save_text(results_path("malloc", os.path.join(HERE, "results"), args.out), "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
