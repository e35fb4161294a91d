"""GPU benchmarks: fastconv.cuda against torch (cuBLAS / cuDNN, FP32 with TF32 off) in the same run.

    python3 benchmarks/bench_cuda.py gemm|conv|pool|all [--out DIR]

Each case is checked first (ours against torch in float64; a wrong answer is reported and not
timed), then the two sides are timed alternately (ours, torch, ours, torch, ...) with CUDA events
on the default stream after warm-up, and the median per call is reported. Inputs are torch CUDA
tensors shared with fastconv through DLPack (zero copy), so both sides read the same memory.
Prints the issue's bars (SGEMM at n = 4096 >= 0.7x cuBLAS; conv2d forward `auto` within 2x of
cuDNN on every suite shape and 1.5x in geometric mean; pooling within 1.2x) and writes
<out>/<date>_<gpu>_cuda_<what>.md (default out: benchmarks/results).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import re
import shlex
import sys
from pathlib import Path

import numpy as np

import fastconv
from fastconv import cuda
from fastconv._conv_algorithms import error_bound
from fastconv._error_bounds import POOL_BOUNDS, SUM_BOUND, gemm_bound

HERE = Path(__file__).resolve().parent


def setup_torch():
    try:
        import torch
    except ImportError:
        raise SystemExit("bench_cuda.py needs torch with CUDA (the reference and the CUDA-event timer)")
    if not torch.cuda.is_available() or not cuda.is_available():
        raise SystemExit(f"no GPU: torch.cuda {torch.cuda.is_available()}, fastconv.cuda {cuda.is_available()}")
    # FP32 everywhere: TF32 would make torch faster and less accurate than an FP32 kernel.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("highest")
    # Our kernels run on the legacy default stream; time torch on the same stream.
    assert torch.cuda.current_stream().cuda_stream == 0, "torch must use the default stream"
    return torch


def median_ms(torch, ours, ref, repeats: int, inner: int) -> tuple[float, float]:
    """Median milliseconds per call of the two callables, alternated, `inner` calls per event pair."""
    for _ in range(3):
        ours(), ref()
    torch.cuda.synchronize()
    t_ours, t_ref = [], []
    for _ in range(repeats):
        for fn, acc in ((ours, t_ours), (ref, t_ref)):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            stop.record()
            stop.synchronize()
            acc.append(start.elapsed_time(stop) / inner)
    return float(np.median(t_ours)), float(np.median(t_ref))


def rel_err(torch, got, expected) -> float:
    got = torch.from_dlpack(got) if isinstance(got, cuda.Array) else got
    expected = expected.double()
    return float((got.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-30))


# ---- SGEMM ---------------------------------------------------------------------------------------------

def bench_gemm(torch, args) -> tuple[list[str], list[str]]:
    rows = ["| n | fastconv ms | fastconv TFLOP/s | cuBLAS ms | cuBLAS TFLOP/s | fastconv / cuBLAS | rel. err |",
            "|---|---|---|---|---|---|---|"]
    verdicts = []
    for n in args.sizes:
        a = torch.randn(n, n, device="cuda")
        b = torch.randn(n, n, device="cuda")
        A, B = cuda.from_dlpack(a), cuda.from_dlpack(b)
        out = cuda.from_dlpack(torch.empty(n, n, device="cuda"))
        fastconv.gemm(A, B, out=out)
        err = rel_err(torch, out, a.double() @ b.double())
        if err > gemm_bound(n):
            rows.append(f"| {n} | WRONG (rel. err {err:.1e}) | | | | | |")
            verdicts.append(f"FAIL: SGEMM n={n} is wrong (rel. err {err:.1e})")
            continue
        c = torch.empty(n, n, device="cuda")
        t_ours, t_ref = median_ms(torch, lambda: fastconv.gemm(A, B, out=out), lambda: torch.matmul(a, b, out=c),
                                  args.repeats, 3)
        tf_ours, tf_ref = 2 * n**3 / t_ours * 1e-9, 2 * n**3 / t_ref * 1e-9
        rows.append(f"| {n} | {t_ours:.3f} | {tf_ours:.1f} | {t_ref:.3f} | {tf_ref:.1f} | {tf_ours / tf_ref:.2f}x | {err:.1e} |")
        print(rows[-1], flush=True)
        if n == 4096:
            ok = tf_ours >= 0.7 * tf_ref
            verdicts.append(f"{'PASS' if ok else 'FAIL'}: SGEMM n=4096 at {tf_ours / tf_ref:.2f}x cuBLAS (bar 0.70x)")
    return rows, verdicts


# ---- conv2d --------------------------------------------------------------------------------------------

def load_shapes(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: (v if k in ("name", "note") else int(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def bench_conv(torch, args) -> tuple[list[str], list[str]]:
    import torch.nn.functional as F

    rows = ["| shape | pass | algo | fastconv ms | TFLOP/s | cuDNN ms | fastconv / cuDNN time | rel. err |",
            "|---|---|---|---|---|---|---|---|"]
    verdicts, auto_ratios = [], []
    for s in load_shapes(args.shapes):
        N, C, H, W, K, R, S, st, pad = (s[k] for k in ("N", "C", "H", "W", "K", "R", "S", "stride", "pad"))
        x = torch.randn(N, C, H, W, device="cuda")
        w = torch.randn(K, C, R, S, device="cuda") / math.sqrt(C * R * S)
        X, Wt = cuda.from_dlpack(x), cuda.from_dlpack(w)
        y_ref64 = F.conv2d(x.double(), w.double(), stride=st, padding=pad)
        dy = torch.randn_like(y_ref64, dtype=torch.float32)
        dY = cuda.from_dlpack(dy)
        dx_ref64 = torch.nn.grad.conv2d_input(x.shape, w.double(), dy.double(), stride=st, padding=pad)
        dw_ref64 = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), stride=st, padding=pad)
        flops = 2.0 * N * K * C * R * S * y_ref64.shape[2] * y_ref64.shape[3]
        passes = {
            "forward": (lambda algo: fastconv.conv2d(X, Wt, stride=st, padding=pad, algo=algo),
                        lambda: F.conv2d(x, w, stride=st, padding=pad), y_ref64),
            "input": (lambda algo: fastconv.grad.conv2d_input(x.shape, Wt, dY, stride=st, padding=pad, algo=algo),
                      lambda: torch.nn.grad.conv2d_input(x.shape, w, dy, stride=st, padding=pad), dx_ref64),
            "weight": (lambda algo: fastconv.grad.conv2d_weight(X, w.shape, dY, stride=st, padding=pad, algo=algo),
                       lambda: torch.nn.grad.conv2d_weight(x, w.shape, dy, stride=st, padding=pad), dw_ref64),
        }
        for pass_, (ours, ref, expected) in passes.items():
            for algo in args.algos:
                err = rel_err(torch, ours(algo), expected)
                if err > (SUM_BOUND if algo == "auto" else error_bound(algo)):
                    rows.append(f"| {s['name']} | {pass_} | {algo} | WRONG (rel. err {err:.1e}) | | | | |")
                    verdicts.append(f"FAIL: conv {s['name']} {pass_} {algo} is wrong (rel. err {err:.1e})")
                    print(rows[-1], flush=True)
                    continue
                t_ours, t_ref = median_ms(torch, lambda: ours(algo), ref, args.repeats, 3)
                rows.append(f"| {s['name']} | {pass_} | {algo} | {t_ours:.3f} | {flops / t_ours * 1e-9:.1f} | "
                            f"{t_ref:.3f} | {t_ours / t_ref:.2f}x | {err:.1e} |")
                print(rows[-1], flush=True)
                if pass_ == "forward" and algo == "auto":
                    auto_ratios.append((s["name"], t_ours / t_ref))
    if auto_ratios:
        worst = max(auto_ratios, key=lambda r: r[1])
        geo = math.exp(sum(math.log(r) for _, r in auto_ratios) / len(auto_ratios))
        verdicts.append(f"{'PASS' if worst[1] <= 2.0 else 'FAIL'}: conv2d forward auto, worst {worst[1]:.2f}x cuDNN "
                        f"({worst[0]}; bar 2x)")
        verdicts.append(f"{'PASS' if geo <= 1.5 else 'FAIL'}: conv2d forward auto, geometric mean {geo:.2f}x cuDNN (bar 1.5x)")
    return rows, verdicts


# ---- pooling -------------------------------------------------------------------------------------------

POOL_SHAPES = [(256, 6, 28, 28), (8, 64, 112, 112), (64, 64, 56, 56)]


def bench_pool(torch, args) -> tuple[list[str], list[str]]:
    import torch.nn.functional as F

    rows = ["| shape | op | fastconv ms | GB/s | torch ms | fastconv / torch time | rel. err |",
            "|---|---|---|---|---|---|---|"]
    verdicts = []
    for shape in POOL_SHAPES:
        x = torch.randn(*shape, device="cuda")
        X = cuda.from_dlpack(x)
        y, idx = F.max_pool2d(x, 2, return_indices=True)
        dy = torch.randn_like(y)
        dY = cuda.from_dlpack(dy)
        _, IDX = cuda.ops.max_pool2d(X, 2, return_indices=True)
        in_bytes, out_bytes = x.numel() * 4, y.numel() * 4
        xg = x.double().requires_grad_(True)
        ym = F.max_pool2d(xg, 2)
        (dx_max,) = torch.autograd.grad(ym, xg, dy.double())
        ya = F.avg_pool2d(xg, 2)
        (dx_avg,) = torch.autograd.grad(ya, xg, dy.double())
        cases = {
            "max fwd": (lambda: cuda.ops.max_pool2d(X, 2), lambda: F.max_pool2d(x, 2), ym, in_bytes + out_bytes),
            "max fwd+idx": (lambda: cuda.ops.max_pool2d(X, 2, return_indices=True)[0],
                            lambda: F.max_pool2d(x, 2, return_indices=True)[0], ym, in_bytes + 3 * out_bytes),
            "max bwd": (lambda: cuda.ops.max_pool2d_backward(dY, IDX, shape),
                        lambda: torch.ops.aten.max_pool2d_with_indices_backward(dy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx),
                        dx_max, in_bytes + 3 * out_bytes),
            "avg fwd": (lambda: cuda.ops.avg_pool2d(X, 2), lambda: F.avg_pool2d(x, 2), ya, in_bytes + out_bytes),
            "avg bwd": (lambda: cuda.ops.avg_pool2d_backward(dY, shape, 2),
                        lambda: torch.ops.aten.avg_pool2d_backward(dy, x, [2, 2], [2, 2], [0, 0], False, True, None),
                        dx_avg, in_bytes + out_bytes),
        }
        for op, (ours, ref, expected, nbytes) in cases.items():
            err = rel_err(torch, ours(), expected)
            if err > POOL_BOUNDS["input" if op.endswith("bwd") else "forward"]:
                rows.append(f"| {shape} | {op} | WRONG (rel. err {err:.1e}) | | | | |")
                verdicts.append(f"FAIL: pooling {op} {shape} is wrong (rel. err {err:.1e})")
                continue
            t_ours, t_ref = median_ms(torch, ours, ref, args.repeats, 10)
            ratio = t_ours / t_ref
            rows.append(f"| {shape} | {op} | {t_ours:.4f} | {nbytes / t_ours * 1e-6:.0f} | {t_ref:.4f} | {ratio:.2f}x | {err:.1e} |")
            print(rows[-1], flush=True)
            verdicts.append(f"{'PASS' if ratio <= 1.2 else 'FAIL'}: pooling {op} {shape} at {ratio:.2f}x torch's time (bar 1.2x)")
    return rows, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["gemm", "conv", "pool", "all"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 3072, 4096], help="SGEMM sizes n")
    parser.add_argument("--shapes", type=Path, default=HERE / "shapes.csv", help="convolution suite (csv)")
    parser.add_argument("--algos", nargs="+", default=["auto", "direct", "im2col"])
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per side (median)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="directory for the result files")
    args = parser.parse_args()
    torch = setup_torch()

    gpu = cuda.get_device_name(0)
    today = datetime.date.today().isoformat()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    header = [
        f"- GPU: {gpu}; torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
        f"TF32 off, cudnn.benchmark on; fastconv {fastconv.__version__}",
        f"- median of {args.repeats} alternating repeats (CUDA events on the default stream) after warm-up; "
        "every case checked against torch in float64 before timing",
        f"- command: `python3 {' '.join(shlex.quote(a) for a in sys.argv)}`",
        "",
    ]
    benches = {"gemm": bench_gemm, "conv": bench_conv, "pool": bench_pool}
    all_verdicts = []
    args.out.mkdir(parents=True, exist_ok=True)
    for what in (benches if args.what == "all" else [args.what]):
        print(f"== {what} on {gpu}", flush=True)
        rows, verdicts = benches[what](torch, args)
        all_verdicts += verdicts
        path = args.out / f"{today}_{slug}_cuda_{what}.md"
        path.write_text("\n".join([f"# fastconv.cuda {what} vs torch ({today})", "", *header, *rows, "",
                                   "## Bars", "", *(f"- {v}" for v in verdicts), ""]))
        print(f"wrote {path}", flush=True)
    print("\n".join(all_verdicts))


if __name__ == "__main__":
    main()
