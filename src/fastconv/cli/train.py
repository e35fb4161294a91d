"""`python -m fastconv train`: train a model (default LeNet-5 on Fashion-MNIST) with
fastconv.training.fit, print one line per epoch, save the weights, history and curves."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ._common import META_KEY, UsageError, at_least, build_model, load_dataset, positive_float, resolve_device

# Defaults of `train`, chosen by measurement (benchmarks/results/*_lenet_accuracy.md): Adam(3e-3)
# with a cosine schedule on standardised images reaches about 90% Fashion-MNIST test accuracy in 10
# epochs, where plain SGD(0.1, momentum 0.9) stops near 88.5%.
_DEFAULT_LR = {"sgd": 0.1, "adam": 3e-3, "adamw": 3e-3}


def add_parser(subparsers) -> None:
    """Register the `train` command on the CLI's subparsers."""
    from ..models import names as model_names

    train = subparsers.add_parser("train", help="train a model (default: LeNet-5 on Fashion-MNIST)")
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


def _make_optimizer(args, params):
    from .. import optim

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
    from ..toolbox.viz import plot_history

    try:
        plot_history(history, title=title, save=path)
    except ImportError:
        return False
    return True


def _start_distributed(args):
    """Join torchrun's process group for `train --distributed`; returns fastconv.distributed."""
    import os

    try:
        from .. import distributed
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
    from .. import data, models
    from ..nn.init import manual_seed
    from ..runtime import __version__, get_num_threads, set_num_threads
    from ..training import fit

    dist = _start_distributed(args) if args.distributed else None
    main_process = dist is None or dist.is_main_process()
    say = print if main_process else (lambda *a, **k: None)
    if args.width is not None and args.model in ("lenet5", "mlp"):
        raise UsageError(f"--width applies to the d2l models, not {args.model}")
    if args.threads is not None:
        set_num_threads(args.threads)
    device = "cpu" if dist else resolve_device(args.device)
    manual_seed(args.seed)
    normalize = not args.no_normalize
    train_set = load_dataset(args.dataset, "train", args.data, normalize, args.resize)
    test_set = load_dataset(args.dataset, "test", args.data, normalize, args.resize)
    model = build_model(args.model, args.variant, args.width)
    if args.init == "xavier":
        models.xavier_init_(model)
    model = model.to(device)
    if isinstance(model, models.ImageClassifier):  # a clear error before the first batch
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
    else:
        loader = data.DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    where = f"{dist.world_size()} processes x {get_num_threads()} threads" if dist else \
        f"{device}, {get_num_threads()} threads"
    say(f"fastconv {__version__}: {args.model} ({args.variant if args.model == 'lenet5' else ''}), "
        f"{n_params:,} parameters, {args.dataset} {len(train_set):,} train / {len(test_set):,} test, {where}")
    say(f"optimizer {args.optimizer} lr {lr:g}" + (f" momentum {args.momentum}" if args.optimizer == "sgd" else "")
        + f" weight decay {args.weight_decay:g}, init {args.init}, schedule {args.schedule}, batch {args.batch_size}"
        + (f" ({args.batch_size // dist.world_size()} per process)" if dist else "") + f", {args.epochs} epochs")

    def report(record):
        say(f"epoch {record['epoch']:>2}/{args.epochs}  loss {record['loss']:.4f}  "
            f"train acc {100 * record['train_acc']:.2f}%  test acc {100 * record['test_acc']:.2f}%  "
            f"{record['images_per_s']:,.0f} images/s  {record['seconds']:.1f} s", flush=True)

    history = fit(model, loader, opt, epochs=args.epochs, device=device, scheduler=sched, test_data=test_set,
                  on_epoch=report, progress=not args.no_progress and main_process, distributed=dist is not None)
    total_time = sum(record["seconds"] for record in history)

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

    from ..serialization import save

    out = Path(args.out) if args.out else _default_out(args)
    meta = {"model": args.model, "variant": args.variant, "dataset": args.dataset, "normalize": normalize,
            "epochs": args.epochs, "width": args.width, "resize": args.resize,
            "test_acc": history[-1]["test_acc"] if history else None}
    state = model.state_dict()
    state[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = save(state, out)
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
