"""Command line: python -m fastconv {train,eval,bench,info,demo,viz,summary} (see --help)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ._cli import META_KEY, CommandError, UsageError, at_least, build_model, load_dataset, load_run, model_from_run, \
    positive_float, resolve_device

# Defaults of `train`, chosen by measurement (benchmarks/results/*_lenet_accuracy.md): Adam(3e-3)
# with a cosine schedule on standardised images reaches about 90% Fashion-MNIST test accuracy in 10
# epochs, where plain SGD(0.1, momentum 0.9) stops near 88.5%.
_DEFAULT_LR = {"sgd": 0.1, "adam": 3e-3, "adamw": 3e-3}


def _cmd_info(args) -> int:
    import fastconv

    for key, value in fastconv.info().items():
        print(f"{key:>14}: {value}")
    return 0


def _cmd_demo(args) -> int:
    """Multiply two random matrices with fastconv.gemm and numpy; show agreement and speed."""
    import numpy as np

    import fastconv

    rng = np.random.default_rng(0)
    n = args.size
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)

    def best_of(f, repeat=5):
        f()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    ours = fastconv.gemm(a, b)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    t_ours = best_of(lambda: fastconv.gemm(a, b))
    t_np = best_of(lambda: a @ b)
    gflop = 2 * n**3 / 1e9
    print(f"gemm {n}x{n}x{n} on {fastconv.get_num_threads()} threads, max relative error vs float64 {err:.1e}")
    print(f"  fastconv.gemm {gflop / t_ours:8.1f} GFLOP/s  ({t_ours * 1e3:.2f} ms)")
    print(f"  numpy matmul  {gflop / t_np:8.1f} GFLOP/s  ({t_np * 1e3:.2f} ms)")
    return 0


# ---- training ----------------------------------------------------------------------------------------


def _progress(iterable, total, desc, enabled):
    """A tqdm bar when tqdm is installed; otherwise a plain one-line counter on a terminal's stderr."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)
    except ImportError:
        return _plain_progress(iterable, total, desc) if sys.stderr.isatty() else iterable


def _plain_progress(iterable, total, desc):
    step = max(1, total // 50)
    for i, item in enumerate(iterable, 1):
        yield item
        if i % step == 0 or i == total:
            sys.stderr.write(f"\r{desc}: {i}/{total} batches ({100 * i // total}%)")
            sys.stderr.flush()
    sys.stderr.write("\r" + " " * (len(desc) + 40) + "\r")


def evaluate(model, dataset, batch_size: int = 1000, device: str = "cpu", indices=None):
    """(accuracy, predictions) of `model` on `dataset` (or on the samples at `indices` of it), in
    eval mode without gradients."""
    import numpy as np

    import fastconv

    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    was_training = model.training
    model.eval()
    preds = np.empty(len(indices), dtype=np.int64)
    labels = np.empty(len(indices), dtype=np.int64)
    with fastconv.no_grad():
        for lo in range(0, len(indices), batch_size):
            xb, yb = dataset[indices[lo:lo + batch_size]]
            logits = model(fastconv.Tensor(xb).to(device))
            preds[lo:lo + len(xb)] = logits.numpy().argmax(axis=1)
            labels[lo:lo + len(xb)] = yb
    model.train(was_training)
    return float((preds == labels).mean()) if len(indices) else 0.0, preds


def _make_optimizer(args, params):
    from fastconv import optim

    lr = args.lr if args.lr is not None else _DEFAULT_LR[args.optimizer]
    if args.optimizer == "sgd":
        opt = optim.SGD(params, lr, momentum=args.momentum, weight_decay=args.weight_decay, nesterov=args.nesterov)
    elif args.optimizer == "adam":
        opt = optim.Adam(params, lr, weight_decay=args.weight_decay)
    else:
        opt = optim.AdamW(params, lr, weight_decay=args.weight_decay)
    if args.schedule == "cosine":
        sched = optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    elif args.schedule == "step":
        sched = optim.lr_scheduler.StepLR(opt, max(1, args.epochs // 3), 0.1)
    else:
        sched = None
    return opt, sched, lr


def _default_out(args) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{args.model}_{args.variant}_{args.dataset}_{stamp}.npz"


def _run_title(args, lr: float) -> str:
    """What a training run was, for its curve plot: model, data, optimizer, lr, schedule, epochs."""
    if args.model == "lenet5":
        model = f"lenet5 ({args.variant})"
    else:
        model = args.model + (f" width {args.width:g}" if args.width is not None else "")
    data = args.dataset + (f" at {args.resize}x{args.resize}" if args.resize else "")
    optimizer = args.optimizer + (f" momentum {args.momentum:g}" if args.optimizer == "sgd" else "")
    return (f"{model} on {data}: {optimizer}, lr {lr:g} ({args.schedule} schedule), batch {args.batch_size}, "
            f"{args.epochs} epochs")


def _plot(history, path: Path, title: str) -> bool:
    """The loss and accuracy curves as a PNG (False when matplotlib is not installed)."""
    from .viz import plot_history

    try:
        plot_history(history, title=title, save=path)
    except ImportError:
        return False
    return True


def _start_distributed(args):
    """Join torchrun's process group for `train --distributed`; returns fastconv.distributed."""
    import os

    try:
        from fastconv import distributed
    except ImportError as e:
        raise SystemExit(f"train --distributed: {e}") from None
    if args.device == "cuda":
        raise SystemExit("train --distributed: CPU only (gloo); fastconv.cuda arrays are not handed to nccl yet")
    try:
        distributed.init_process_group("gloo", timeout_s=args.timeout)
    except RuntimeError as e:
        raise SystemExit(f"train --distributed: {e}") from None
    if args.threads is None:  # share the machine's cores between the ranks on it
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        args.threads = max(1, (os.cpu_count() or 1) // local_ranks)
    return distributed


def _cmd_train(args) -> int:
    import numpy as np

    import fastconv
    from fastconv.nn import functional as F

    dist = _start_distributed(args) if args.distributed else None
    main_process = dist is None or dist.is_main_process()
    say = print if main_process else (lambda *a, **k: None)
    if args.width is not None and args.model in ("lenet5", "mlp"):
        raise UsageError(f"--width applies to the d2l models, not {args.model}")
    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    device = "cpu" if dist else resolve_device(args.device)
    fastconv.manual_seed(args.seed)
    normalize = not args.no_normalize
    train_set = load_dataset(args.dataset, "train", args.data, normalize, args.resize)
    test_set = load_dataset(args.dataset, "test", args.data, normalize, args.resize)
    model = build_model(args.model, args.variant, args.width)
    if args.init == "xavier":
        fastconv.nn.init.xavier_init_(model)
    model = model.to(device)
    if isinstance(model, fastconv.models.ImageClassifier):  # a clear error before the first batch
        try:
            model.output_shape((1, 1, *((args.resize,) * 2 if args.resize else (28, 28))))
        except ValueError as e:
            raise UsageError(f"--resize {args.resize}: {e}" if args.resize else f"--model {args.model}: {e}; pass --resize") from None
    opt, sched, lr = _make_optimizer(args, model.parameters())
    if dist:
        try:  # the same model, data and batch on every rank, or the same error on every rank
            model = dist.DataParallel(model)
            loader = dist.DistributedLoader(train_set, args.batch_size, shuffle=True, seed=args.seed)
        except ValueError as e:
            raise SystemExit(f"train --distributed (rank {dist.rank()}): {e}") from None
        # The test set is split across ranks: rank r evaluates samples r, r + world, ...
        test_indices = np.arange(dist.rank(), len(test_set), dist.world_size())
    else:
        loader = fastconv.data.DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed)
        test_indices = None
    n_params = sum(p.numel() for p in model.parameters())
    where = f"{dist.world_size()} processes x {fastconv.get_num_threads()} threads" if dist else \
        f"{device}, {fastconv.get_num_threads()} threads"
    say(f"fastconv {fastconv.__version__}: {args.model} ({args.variant if args.model == 'lenet5' else ''}), "
        f"{n_params:,} parameters, {args.dataset} {len(train_set):,} train / {len(test_set):,} test, {where}")
    say(f"optimizer {args.optimizer} lr {lr:g}" + (f" momentum {args.momentum}" if args.optimizer == "sgd" else "")
        + f" weight decay {args.weight_decay:g}, init {args.init}, schedule {args.schedule}, batch {args.batch_size}"
        + (f" ({args.batch_size // dist.world_size()} per process)" if dist else "") + f", {args.epochs} epochs")
    history = []
    show_bar = not args.no_progress and main_process
    total_time = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        bar = _progress(loader, len(loader), f"epoch {epoch}/{args.epochs}", show_bar)
        for xb, yb in bar:
            logits = model(fastconv.Tensor(xb).to(device))
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n = len(yb)
            loss_sum += loss.item() * n
            correct += int((logits.numpy().argmax(axis=1) == yb).sum())
            seen += n
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{100 * correct / seen:.1f}%", refresh=False)
        epoch_time = time.perf_counter() - t0
        if sched is not None:
            sched.step()
        if dist:
            model.sync_buffers()
            test_acc, _ = evaluate(model, test_set, device=device, indices=test_indices)
            loss_sum, correct, seen, test_correct = dist.all_reduce_sum(
                [loss_sum, correct, seen, test_acc * len(test_indices)])
            test_acc = test_correct / len(test_set)
            epoch_time = float(dist.all_reduce_max([epoch_time])[0])
        else:
            test_acc, _ = evaluate(model, test_set, device=device)
        total_time += epoch_time
        record = {"epoch": epoch, "loss": loss_sum / seen, "train_acc": correct / seen, "test_acc": test_acc,
                  "seconds": epoch_time, "images_per_s": seen / epoch_time}
        history.append(record)
        say(f"epoch {epoch:>2}/{args.epochs}  loss {record['loss']:.4f}  train acc {100 * record['train_acc']:.2f}%  "
            f"test acc {100 * test_acc:.2f}%  {record['images_per_s']:,.0f} images/s  {epoch_time:.1f} s", flush=True)

    if dist:
        stats = model.stats
        say(f"gradient all-reduce: {stats['buckets_reduced']} buckets, "
            f"{stats['buckets_sent_during_backward']} sent during backward, "
            f"{stats['wait_seconds']:.2f} s waited on rank 0 ({100 * stats['wait_seconds'] / max(total_time, 1e-9):.1f}% of training)")
        model = model.module
    if main_process:
        _save_run(args, model, history, normalize, total_time, lr)
    if dist:
        import torch.distributed

        torch.distributed.destroy_process_group()
    return 0


def _save_run(args, model, history, normalize, total_time, lr) -> None:
    """Write the weights (with the run's metadata), the history JSON and the curve plot; say where."""
    import numpy as np

    import fastconv

    out = Path(args.out) if args.out else _default_out(args)
    meta = {"model": args.model, "variant": args.variant, "dataset": args.dataset, "normalize": normalize,
            "epochs": args.epochs, "width": args.width, "resize": args.resize,
            "test_acc": history[-1]["test_acc"] if history else None}
    state = model.state_dict()
    state[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = fastconv.save(state, out)
    hist_path = out.with_suffix(".json")
    hist_path.write_text(json.dumps({"args": vars(args) | {"func": None, "parser": None}, "history": history}, indent=1))
    curve = out.with_suffix(".png")
    plotted = _plot(history, curve, _run_title(args, lr)) if history else False
    if history:
        best = max(h["test_acc"] for h in history)
        mean_speed = sum(h["images_per_s"] for h in history) / len(history)
        print(f"done: final test accuracy {100 * history[-1]['test_acc']:.2f}% (best {100 * best:.2f}%), "
              f"{total_time:.1f} s training ({total_time / len(history):.2f} s/epoch, {mean_speed:,.0f} images/s)")
    print(f"saved weights to {out}, history to {hist_path}" + (f", curves to {curve}" if plotted else
                                                            " (install matplotlib for a curve plot)"))


def _cmd_eval(args) -> int:
    import numpy as np

    import fastconv

    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    device = resolve_device(args.device)
    state, meta = load_run(args.weights)
    model, model_name, variant = model_from_run(state, meta, args.weights, args.model, args.variant)
    dataset_name = args.dataset or meta.get("dataset", "fashion-mnist")
    model.to(device)
    test_set = load_dataset(dataset_name, "test", args.data, meta.get("normalize", False), meta.get("resize"))
    acc, preds = evaluate(model, test_set, args.batch_size, device)
    k = len(test_set.classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (test_set.labels, preds), 1)
    print(f"{model_name}{f' ({variant})' if model_name == 'lenet5' else ''} from {args.weights} on {dataset_name} test ({len(test_set):,} images): "
          f"accuracy {100 * acc:.2f}%")
    print("confusion matrix (rows: true class, columns: predicted class)")
    names = [c[:11] for c in test_set.classes]
    print(" " * 12 + "".join(f"{i:>6}" for i in range(k)))
    for i in range(k):
        print(f"{i} {names[i]:<10}" + "".join(f"{v:>6}" for v in confusion[i]) + f"   {100 * confusion[i, i] / max(confusion[i].sum(), 1):5.1f}%")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser, every subcommand included (tests check documented commands with it)."""
    parser = argparse.ArgumentParser(prog="python -m fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="version, compiler, threads, CPU path, CUDA devices")
    info.set_defaults(func=_cmd_info, parser=info)
    demo = sub.add_parser("demo", help="a GEMM against numpy")
    demo.add_argument("--size", type=at_least(1), default=1024)
    demo.set_defaults(func=_cmd_demo, parser=demo)

    train = sub.add_parser("train", help="train a model (default: LeNet-5 on Fashion-MNIST)")
    from .models import names as model_names

    train.add_argument("--model", default="lenet5", choices=model_names,
                       help="lenet5, mlp, or a d2l model (built in its small Fashion-MNIST version)")
    train.add_argument("--width", type=positive_float, default=None, help="channel multiplier of the d2l models (default 1)")
    train.add_argument("--resize", type=at_least(1), default=None,
                       help="resize images bilinearly to this size (e.g. 32, 96, 224 for the d2l models)")
    train.add_argument("--variant", default="modern", choices=["modern", "classic"], help="LeNet-5 variant")
    train.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    train.add_argument("--epochs", type=at_least(1), default=10)
    train.add_argument("--batch-size", type=at_least(1), default=256)
    train.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw"])
    train.add_argument("--lr", type=at_least(0.0, float), default=None,
                       help="learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in _DEFAULT_LR.items()) + ")")
    train.add_argument("--momentum", type=at_least(0.0, float), default=0.9, help="SGD momentum")
    train.add_argument("--nesterov", action="store_true", help="SGD with Nesterov momentum")
    train.add_argument("--weight-decay", type=at_least(0.0, float), default=0.0)
    train.add_argument("--init", default="default", choices=["default", "xavier"],
                       help="weights: PyTorch's defaults, or Xavier uniform as d2l's init_cnn")
    train.add_argument("--schedule", default="cosine", choices=["cosine", "step", "none"],
                       help="learning-rate schedule over the epochs")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train.add_argument("--threads", type=at_least(1), default=None, help="CPU threads (default: all)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default=None, help="weights file (.npz; default runs/<model>_<variant>_<dataset>_<time>.npz)")
    train.add_argument("--data", default=None, metavar="DIR",
                       help="directory with the IDX files, the only place looked in; nothing is downloaded "
                            "(default: $FASTCONV_DATA, ~/.cache/fastconv, /usr/share/datasets, else a download)")
    train.add_argument("--no-normalize", action="store_true",
                       help="feed pixels in [0, 1] instead of standardising with the dataset's mean and std")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (epoch lines only)")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel over torch.distributed (gloo): start with torchrun, e.g. "
                            "torchrun --nproc-per-node 2 -m fastconv train --distributed; --batch-size is the "
                            "global batch, split evenly over the processes; only rank 0 prints and saves")
    train.add_argument("--timeout", type=positive_float, default=120.0,
                       help="with --distributed: seconds before a collective waiting for a missing rank fails")
    train.set_defaults(func=_cmd_train, parser=train)

    ev = sub.add_parser("eval", help="test accuracy and confusion matrix of saved weights")
    ev.add_argument("--weights", required=True, help="a .npz written by train")
    ev.add_argument("--model", default=None, choices=model_names, help="default: as saved")
    ev.add_argument("--variant", default=None, choices=["modern", "classic"], help="default: as saved")
    ev.add_argument("--dataset", default=None, choices=["fashion-mnist", "mnist"], help="default: as saved")
    ev.add_argument("--data", default=None, metavar="DIR", help="as for train")
    ev.add_argument("--batch-size", type=at_least(1), default=1000)
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--threads", type=at_least(1), default=None)
    ev.set_defaults(func=_cmd_eval, parser=ev)

    from .bench.cli import register as register_bench

    register_bench(sub)

    from ._viz_cli import add_parser as add_viz_parser  # viz filters|activations|edges

    add_viz_parser(sub)

    from ._summary_cli import add_parser as add_summary_parser  # summary --model NAME

    add_summary_parser(sub)
    return parser


def main(argv=None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # under the subcommand's usage, which lists the flags it does take
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except UsageError as e:
        args.parser.error(str(e))
    except (CommandError, FileNotFoundError) as e:  # e.g. no dataset anywhere: say where to put it, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
