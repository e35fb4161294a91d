"""`python -m fastconv summary --model resnet18 [--input 1,28,28] [--width 0.25] [--small]`: a model's
layer table (output shapes by shape inference, parameters, multiply-adds, the convolution algorithm
``auto`` picks), without running the model."""

from __future__ import annotations

from ._common import UsageError, at_least, positive_float


def add_parser(subparsers) -> None:
    """Register the `summary` command on the CLI's subparsers."""
    from ..models import names

    p = subparsers.add_parser("summary", help="a model's layers: output shapes, parameters, multiply-adds, conv algorithm")
    p.add_argument("--model", required=True, choices=names)
    p.add_argument("--input", default=None,
                   help="C,H,W of one image; C sets the model's in_channels (default: 3,224,224; 1,28,28 for lenet5, mlp and --small)")
    p.add_argument("--width", type=positive_float, default=None, help="channel multiplier (default 1.0; not for lenet5/mlp)")
    p.add_argument("--small", action="store_true", help="the d2l Fashion-MNIST version (1 channel, 10 classes)")
    p.add_argument("--num-classes", type=at_least(1), default=None)
    p.add_argument("--batch", type=at_least(1), default=1, help="batch size N for the shapes and multiply-adds")
    p.set_defaults(func=_cmd_summary, parser=p)


def _parse_input(text: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise UsageError(f"--input: expected C,H,W (three positive integers), got {text!r}")
    return dims


def _cmd_summary(args) -> int:
    from .. import models, nn

    classic = args.model in ("lenet5", "mlp")
    kwargs = {}
    if not classic:
        kwargs = {"small": args.small, "width": 1.0 if args.width is None else args.width}
        if args.num_classes is not None:
            kwargs["num_classes"] = args.num_classes
    elif args.width is not None or args.small:
        raise UsageError(f"--width and --small apply to the d2l models, not {args.model}")
    if args.input is not None:
        chw = _parse_input(args.input)
        if not classic:
            kwargs["in_channels"] = chw[0]  # the model takes the channels it is given
    elif classic or args.small:
        chw = (1, 28, 28)
    else:
        chw = (3, 224, 224)
    with nn.init.shapes_only():
        model = models.get(args.model, **kwargs)
    shape = (args.batch, *chw)
    try:
        rows = models.summary(model, shape)
    except ValueError as e:
        raise UsageError(f"--input {','.join(map(str, chw))}: {e}") from None
    name_w = max([len(r["name"]) for r in rows] + [5])
    print(f"{args.model} on input {shape}" + (f", width {kwargs['width']:g}" if kwargs else ""))
    head = f"{'layer':<{name_w}}  {'type':<17} {'output shape':<20} {'params':>12} {'mult-adds':>15}  algo (auto)"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['name']:<{name_w}}  {r['type']:<17} {str(r['output_shape']):<20} {r['params']:>12,} "
              f"{r['macs']:>15,}  {r['algo']}")
    print("-" * len(head))
    total_p = sum(p.numel() for p in model.parameters())
    total_m = sum(r["macs"] for r in rows)
    print(f"{'total':<{name_w}}  {'':<17} {str(rows[-1]['output_shape']) if rows else '':<20} {total_p:>12,} {total_m:>15,}")
    return 0
