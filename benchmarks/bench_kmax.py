"""k-max pooling: fastconv.kmax_pool (numpy, O(L) partition per row) against torch.topk + sort of the
indices + gather, and against a stable argsort in numpy, on sequence shapes (N, C, L).

Checks first: every contender must select the same positions as fastconv on data without ties
(torch.topk does not promise which of equal values it keeps). Then times them interleaved
(A, B, C, A, B, C, ...), median of repeats after warm-up, all on the same thread count.

    python benchmarks/bench_kmax.py [--repeat R] [--threads T] [--out PATH]
"""

import argparse
import datetime
import platform
import time

import numpy as np

import fastconv
from fastconv.bench import sweep

SHAPES = [  # (N, C, L, k): sentence-model sizes (Kalchbrenner et al.: k = 4..10) and longer sequences
    (64, 100, 50, 5),
    (64, 100, 200, 10),
    (32, 64, 1000, 10),
    (32, 64, 1000, 500),
    (8, 16, 10000, 100),
]


def stable_argsort(x, k):
    idx = np.sort(np.argsort(-x, axis=-1, kind="stable")[..., :k], axis=-1)
    return np.take_along_axis(x, idx, -1), idx


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=fastconv.get_num_threads())
    parser.add_argument("--out", help="write a markdown table here (benchmarks/results/<date>_<machine>_kmax.md)")
    args = parser.parse_args(argv)
    contenders = {"fastconv.kmax_pool": lambda x, k: fastconv.kmax_pool(x, k), "numpy stable argsort": stable_argsort}
    try:
        import torch

        torch.set_num_threads(args.threads)

        def torch_kmax(xt, k):
            idx = torch.topk(xt, k, dim=-1).indices.sort(dim=-1).values
            return torch.gather(xt, -1, idx), idx

        contenders["torch topk+sort+gather"] = torch_kmax
    except ImportError:
        torch = None
    fastconv.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for N, C, L, k in SHAPES:
        x = rng.standard_normal((N, C, L)).astype(np.float32)  # continuous: no ties
        inputs = {name: (torch.from_numpy(x) if name.startswith("torch") else x) for name in contenders}
        _, want = fastconv.kmax_pool(x, k)
        for name, f in contenders.items():
            got = np.asarray(f(inputs[name], k)[1])
            if not np.array_equal(got, want):
                raise SystemExit(f"{name} disagrees with fastconv on {(N, C, L, k)}: refusing to time it")
        times = {name: [] for name in contenders}
        for name, f in contenders.items():
            f(inputs[name], k)  # warm-up
        for _ in range(args.repeat):
            for name, f in contenders.items():
                t0 = time.perf_counter()
                f(inputs[name], k)
                times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(t)) for name, t in times.items()}
        gbs = x.nbytes / med["fastconv.kmax_pool"] / 1e9
        line = f"| ({N}, {C}, {L}) k={k} | " + " | ".join(f"{med[n] * 1e3:.2f}" for n in contenders) + f" | {gbs:.2f} |"
        print(line)
        rows.append(line)
    header = "| shape | " + " | ".join(f"{n} ms" for n in contenders) + " | fastconv input GB/s |"
    table = "\n".join([header, "|" + "---|" * (len(contenders) + 2)] + rows)
    if args.out:
        sweep.save_text(args.out, "\n".join([
            f"# k-max pooling, {datetime.date.today()}\n",
            f"CPU: {fastconv.info()['cpu_model']}, {args.threads} threads, numpy {np.__version__}"
            + (f", torch {torch.__version__}" if torch else "") + f", Python {platform.python_version()}\n",
            f"Command: `python benchmarks/bench_kmax.py --repeat {args.repeat} --threads {args.threads} --out {args.out}`",
            "Median of repeats after warm-up, contenders interleaved; float32 input without ties.\n",
            table]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
