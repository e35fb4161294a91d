"""`python -m fastconv eval --weights RUN.npz`: test accuracy and confusion matrix of saved weights
(fastconv.training.evaluate)."""

from __future__ import annotations

from ._common import at_least, load_dataset, load_run, model_from_run, resolve_device


def add_parser(subparsers) -> None:
    """Register the `eval` command on the CLI's subparsers."""
    from ..models import names as model_names

    ev = subparsers.add_parser("eval", help="test accuracy and confusion matrix of saved weights")
    ev.add_argument("--weights", required=True, help="a .npz written by train")
    ev.add_argument("--model", default=None, choices=model_names, help="default: as saved")
    ev.add_argument("--variant", default=None, choices=["modern", "classic"], help="default: as saved")
    ev.add_argument("--dataset", default=None, choices=["fashion-mnist", "mnist"], help="default: as saved")
    ev.add_argument("--data", default=None, metavar="DIR", help="as for train")
    ev.add_argument("--batch-size", type=at_least(1), default=1000)
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--threads", type=at_least(1), default=None)
    ev.set_defaults(func=_cmd_eval, parser=ev)


def _cmd_eval(args) -> int:
    import numpy as np

    from ..runtime import set_num_threads
    from ..training import evaluate

    if args.threads is not None:
        set_num_threads(args.threads)
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
