"""ImageNet models (fastconv.bench.torch_models: ResNet-18/50, MobileNetV2, GoogLeNet, written as
torchvision writes them, random weights, 224x224) in plain torch against a deep copy patched with
``fastconv.torch.patch``: eval-mode inference at batch 1 and 16 under ``torch.no_grad`` and a
training step at batch 16 (forward, cross-entropy, backward, SGD step).

    python benchmarks/bench_real_models.py --models resnet18 --rounds 5 --out benchmarks/results/x.md

Check, then time: the patched model's outputs (eval, and train mode on the same batch) must equal
torch's to --tol relative to their largest magnitude, or the setting is reported WRONG and not
timed; the first convolution's weight gradient is compared, torch's and ours, with a float64 run
(through 20-50 layers of train-mode batch norm, float32 rounding alone moves it by ~1e-3). Timing: ``fastconv.bench.measure.time_interleaved``
with blocks (``settle`` s idle, one untimed call, ``block`` timed calls, torch and patched
alternating, starting side rotated), median over every timed call; the block is sized from the
warm-up call so that one block lasts about --block-seconds. torch and fastconv get the same
thread count. With --layers, each convolution and pooling layer of the model (distinct shapes
once, with their count) is also timed alone, torch's layer against the patched one, at the shape
it sees in the model: where the patched model loses.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

import fastconv
import fastconv.torch as fct
from fastconv.bench.measure import time_interleaved
from fastconv.bench.sweep import save_text
from fastconv.bench.torch_models import MODELS, build

SETTINGS = ("infer1", "infer16", "train16")
SIZE = 224


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest absolute difference over the largest magnitude of ``want``."""
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def check(model: nn.Module, patched: nn.Module, batch: int) -> tuple[dict, dict]:
    """(output errors, gradient errors). Outputs: the patched model's eval outputs at batch 1 and
    ``batch`` and its train-mode outputs against torch's, relative to their largest magnitude.
    Gradients: the first convolution's weight gradient after one backward in train mode (same
    dropout masks), of torch and of the patched model each against a float64 copy of the model, so
    that the float32 rounding torch itself shows there is the scale to judge ours by."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, SIZE, SIZE, generator=gen)
    y = torch.randint(0, 1000, (batch,), generator=gen)
    outputs = {}
    with torch.no_grad():
        for n in (1, batch):
            outputs[f"eval b{n}"] = relative_error(patched.eval()(x[:n]), model.eval()(x[:n]))
    # train mode changes batch-norm running statistics: run copies
    runs = []
    for m, xm in ((model, x), (patched, x), (model, x.double())):
        m = copy.deepcopy(m).to(xm.dtype).train()
        torch.manual_seed(2)  # the same dropout masks on every side
        out = m(xm)
        nn.functional.cross_entropy(out, y).backward()
        runs.append((out.double(), first_conv(m).weight.grad.double()))
    (out32, g32), (outp, gp), (_, g64) = runs
    outputs[f"train b{batch}"] = relative_error(outp, out32)
    grads = {"torch": relative_error(g32, g64), "patched": relative_error(gp, g64)}
    return outputs, grads


def inference(model: nn.Module, x: torch.Tensor):
    def run():
        with torch.no_grad():
            return model(x)

    return run


def training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def run():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return run


def block_for(fn, block_seconds: float, most: int) -> int:
    """Timed calls per block: about block_seconds of work, from one call (after a warm-up call)."""
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, min(most, round(block_seconds / (time.perf_counter() - t0))))


def time_pair(fns: dict, rounds: int, block_seconds: float, settle: float) -> tuple[dict, int]:
    block = min(block_for(f, block_seconds, 20) for f in fns.values())
    res = time_interleaved(fns, repeat=rounds, warmup=1, block=block, settle=settle, rotate=True)
    return {k: v[0] for k, v in res.items()}, block


# --- per layer ----------------------------------------------------------------------------------

def layer_inputs(model: nn.Module, batch: int) -> dict:
    """name -> input shape of every Conv2d / pooling module in one forward of ``model`` at ``batch``."""
    shapes, hooks = {}, []
    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)

    def record(name):
        def hook(module, inputs, output):  # returns None: the output is kept
            shapes.setdefault(name, tuple(inputs[0].shape))
        return hook

    for name, m in model.named_modules():
        if isinstance(m, kinds):
            hooks.append(m.register_forward_hook(record(name)))
    with torch.no_grad():
        model.eval()(torch.randn(batch, 3, SIZE, SIZE))
    for h in hooks:
        h.remove()
    return shapes


def layer_key(m: nn.Module, shape: tuple) -> str:
    return f"{m.extra_repr()} @ {'x'.join(map(str, shape))}"


def time_layers(model: nn.Module, patched: nn.Module, batch: int, train: bool, rounds: int, settle: float) -> list:
    """Rows (layer description, count in the model, torch ms, patched ms, total saved ms) for every
    distinct conv/pool layer: forward under no_grad, or (train) forward + backward of the layer."""
    shapes = layer_inputs(model, batch)
    ours = dict(patched.named_modules())
    groups = {}
    for name, m in model.named_modules():
        if name in shapes:
            key = (type(m).__name__, layer_key(m, shapes[name]))
            groups.setdefault(key, []).append(name)
    rows = []
    for (cls, key), names in groups.items():
        name = names[0]
        shape = shapes[name]
        x = torch.randn(shape)
        needs_input_grad = name != next(iter(shapes))  # the stem's input gets no gradient
        fns = {}
        for side, m in (("torch", dict(model.named_modules())[name]), ("patched", ours[name])):
            if train:
                xi = x.clone().requires_grad_(needs_input_grad)
                dy = torch.randn_like(m(xi))

                def run(m=m, xi=xi, dy=dy):
                    m(xi).backward(dy)
            else:
                def run(m=m):
                    with torch.no_grad():
                        return m(x)
            fns[side] = run
        res, _ = time_pair(fns, rounds, 0.05, settle)
        t, p = res["torch"] * 1e3, res["patched"] * 1e3
        rows.append((f"{cls}({key})", len(names), t, p, (t - p) * len(names)))
    return rows


def breakdown(model: nn.Module, x: torch.Tensor, calls: int) -> dict:
    """Milliseconds per forward (no_grad) spent in each kind of leaf module, measured inside the
    model with forward pre/post hooks (a few microseconds each, on both sides alike); "other" is the
    rest of the forward (the functional calls of ``forward`` and the hooks' own cost)."""
    spent, start = {}, {}

    def before(m, inputs):
        start[m] = time.perf_counter()

    def after(m, inputs, output):
        kind = type(m).__name__
        spent[kind] = spent.get(kind, 0.0) + time.perf_counter() - start[m]

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [h for m in leaves for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    with torch.no_grad():
        model(x)
        spent.clear()
        t0 = time.perf_counter()
        for _ in range(calls):
            model(x)
        total = time.perf_counter() - t0
    for h in hooks:
        h.remove()
    out = {k: v / calls * 1e3 for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
    out["other"] = total / calls * 1e3 - sum(out.values())
    out["total"] = total / calls * 1e3
    return out


# --- report -------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="blocks per side")
    ap.add_argument("--block-seconds", type=float, default=0.5, help="about this much work per timed block")
    ap.add_argument("--settle", type=float, default=0.15)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--algo", default="auto")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--layers", choices=("none", "infer1", "infer16", "train16"), default="none",
                    help="also time every conv/pool layer alone in this setting")
    ap.add_argument("--breakdown", type=int, default=0, metavar="CALLS",
                    help="also split a batch-1 forward by module kind inside the model, over CALLS forwards")
    ap.add_argument("--out", default=None, help="markdown file to append the tables to")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    fastconv.set_num_threads(args.threads)
    command = "python benchmarks/bench_real_models.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items()
        if v is not None)
    lines = [f"### {', '.join(args.models)} ({datetime.now(timezone.utc).isoformat(timespec='seconds')})", "",
             f"`{command}`", "", f"torch {torch.__version__}, fastconv {fastconv.__version__}, "
             f"{args.threads} threads each, load before: {open('/proc/loadavg').read().split()[0]}", "",
             "| model | setting | block | torch ms | patched ms | patched/torch |", "|---|---|---|---|---|---|"]
    layer_lines = []
    checks = ["", "Checks (max relative error; gradient: the first convolution's weight gradient after one "
              f"train-mode backward at batch {args.batch}, each side against a float64 copy of the model):", "",
              f"| model | layers swapped / left | eval b1 | eval b{args.batch} | train b{args.batch} output | "
              "grad: torch fp32 vs fp64 | grad: patched vs fp64 |", "|---|---|---|---|---|---|---|"]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, SIZE, SIZE, generator=gen)
    y = torch.randint(0, 1000, (args.batch,), generator=gen)
    for name in args.models:
        model = build(name, seed=0)
        patched = copy.deepcopy(model)
        report = fct.patch(patched, algo=args.algo)
        outputs, grads = check(model, patched, args.batch)
        worst = max(outputs.values())
        ok = worst <= args.tol
        print(f"{name}: {len(report.swapped)} layers swapped, {len(report.left)} left; output errors "
              + ", ".join(f"{k} {v:.1e}" for k, v in outputs.items()) + "; first conv weight gradient against "
              f"float64: torch {grads['torch']:.1e}, patched {grads['patched']:.1e}", flush=True)
        checks.append(f"| {name} | {len(report.swapped)} / {len(report.left)} | "
                      + " | ".join(f"{v:.1e}" for v in outputs.values())
                      + f" | {grads['torch']:.1e} | {grads['patched']:.1e} |")
        for setting in args.settings:
            if not ok:
                lines.append(f"| {name} | {setting} | | | | WRONG: output error {worst:.1e} > {args.tol:.0e}, not timed |")
                continue
            n = 1 if setting == "infer1" else args.batch
            if setting.startswith("infer"):
                fns = {"torch": inference(model.eval(), x[:n]), "patched": inference(patched.eval(), x[:n])}
            else:
                # each side trains its own copy from the same weights
                fns = {"torch": training_step(copy.deepcopy(model).train(), x, y, args.lr),
                       "patched": training_step(copy.deepcopy(patched).train(), x, y, args.lr)}
            res, block = time_pair(fns, args.rounds, args.block_seconds, args.settle)
            t, p = res["torch"] * 1e3, res["patched"] * 1e3
            lines.append(f"| {name} | {setting} | {block} | {t:.2f} | {p:.2f} | **{p / t:.2f}** |")
            print(lines[-1], flush=True)
        if args.breakdown:
            parts = {}
            for _ in range(2):  # sides alternate, each after the settle
                for side, m in (("torch", model.eval()), ("patched", patched.eval())):
                    time.sleep(args.settle)
                    parts.setdefault(side, []).append(breakdown(m, x[:1], args.breakdown))
            kinds = list(parts["torch"][0])
            layer_lines += ["", f"#### {name}: batch-1 forward by module kind, inside the model "
                            f"(ms per forward, median of 2 x {args.breakdown} forwards per side)", "",
                            "| module kind | torch ms | patched ms |", "|---|---|---|"]
            layer_lines += [f"| {k} | {statistics.median(r.get(k, 0.0) for r in parts['torch']):.2f} | "
                            f"{statistics.median(r.get(k, 0.0) for r in parts['patched']):.2f} |" for k in kinds]
            print("\n".join(layer_lines[-len(kinds) - 4:]), flush=True)
        if args.layers != "none":
            n = 1 if args.layers == "infer1" else args.batch
            rows = time_layers(model, patched, n, args.layers == "train16", max(3, args.rounds), args.settle)
            layer_lines += ["", f"#### {name}: each conv/pool layer alone, {args.layers} "
                            f"({'forward + backward' if args.layers == 'train16' else 'forward, no_grad'})", "",
                            "| layer @ input | count | torch ms | patched ms | patched/torch | count x (torch - patched) ms |",
                            "|---|---|---|---|---|---|"]
            rows.sort(key=lambda r: r[4])
            layer_lines += [f"| {d} | {c} | {t:.3f} | {p:.3f} | {p / t:.2f} | {s:+.2f} |" for d, c, t, p, s in rows]
            layer_lines.append(f"| total | {sum(r[1] for r in rows)} | {sum(r[1] * r[2] for r in rows):.2f} | "
                               f"{sum(r[1] * r[3] for r in rows):.2f} | | {sum(r[4] for r in rows):+.2f} |")
            print("\n".join(layer_lines[-len(rows) - 5:]), flush=True)
    text = "\n".join(lines + checks + layer_lines) + "\n\n"
    print(text)
    if args.out:
        save_text(args.out, text, append=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
