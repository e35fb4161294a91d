"""`python -m fastconv viz filters|activations|edges`: the pictures of fastconv.viz from the shell."""

from __future__ import annotations

import numpy as np

from ._common import UsageError, at_least, load_dataset, load_run, model_from_run


def add_parser(subparsers) -> None:
    """Register the `viz` command on the CLI's subparsers."""
    viz = subparsers.add_parser("viz", help="pictures: a layer's filters, activation maps, the edge-filter walk-through")
    sub = viz.add_subparsers(dest="what", required=True)

    p = sub.add_parser("filters", help="a grid of one conv layer's kernels from saved weights")
    p.add_argument("--weights", required=True, help=".npz state dict written by fastconv.save / train")
    p.add_argument("--layer", help="layer name, e.g. features.0 (default: the first conv weight)")
    p.add_argument("--out", default="filters.png", help="PNG to write (default: %(default)s)")
    p.set_defaults(func=_cmd_filters, parser=p)

    from ..models import names as model_names

    p = sub.add_parser("activations", help="every channel of one layer's output for one test image")
    p.add_argument("--weights", required=True, help=".npz state dict written by fastconv.save / train")
    p.add_argument("--model", choices=model_names,
                   help="model the weights belong to (default: as saved by train, else lenet5)")
    p.add_argument("--index", type=at_least(0), default=0, help="test image of the training dataset (default: %(default)s)")
    p.add_argument("--layer", help="layer name, e.g. features.0 (default: the first Conv2d)")
    p.add_argument("--data", metavar="DIR", help="directory with the IDX files, as for train")
    p.add_argument("--out", default="activations.png", help="PNG to write (default: %(default)s)")
    p.set_defaults(func=_cmd_activations, parser=p)

    p = sub.add_parser("edges", help="seed 002: four 4x4 edge filters and their activation maps on an image")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", help="a PNG/JPEG (read in gray with Pillow); default: a Fashion-MNIST test image")
    src.add_argument("--index", type=at_least(0), default=0, help="Fashion-MNIST test image (default: %(default)s)")
    p.add_argument("--data", metavar="DIR", help="directory with the IDX files, as for train")
    p.add_argument("--out", default="edges.png", help="PNG to write (default: %(default)s)")
    p.set_defaults(func=_cmd_edges, parser=p)


def _test_image(index: int, data_dir=None, meta=None) -> tuple[np.ndarray, str]:
    """One test image (C, H, W) of the dataset a run was trained on (`meta`, as `train` stores it;
    default Fashion-MNIST), fed as in training (standardised, resized), and what it is."""
    meta = meta or {}
    name = meta.get("dataset", "fashion-mnist")
    test = load_dataset(name, "test", data_dir, meta.get("normalize", False), meta.get("resize"))
    if index >= len(test):
        raise UsageError(f"--index: expected 0 .. {len(test) - 1}, got {index}")
    images, labels = test[[index]]
    return images[0], f"{name} test image {index} ({test.classes[int(labels[0])]})"


def read_gray_image(path, max_side: int = 256) -> np.ndarray:
    """A PNG/JPEG as a float32 gray image in [0, 1], shrunk to at most `max_side` pixels a side."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("reading PNG/JPEG files needs Pillow: pip install pillow") from e
    with Image.open(path) as im:
        im = im.convert("L")
        im.thumbnail((max_side, max_side))
        return np.asarray(im, dtype=np.float32) / 255.0


def _cmd_filters(args) -> int:
    from ..toolbox.viz import show_filters

    state, _ = load_run(args.weights)
    if args.layer:
        key = args.layer if args.layer in state else f"{args.layer}.weight"
        if key not in state or state[key].ndim != 4:
            convs = [k for k, v in state.items() if v.ndim == 4]
            raise UsageError(f"--layer: no conv weight {args.layer!r} in {args.weights}; conv weights: {', '.join(convs)}")
    else:
        key = next((k for k, v in state.items() if v.ndim == 4), None)
        if key is None:
            raise UsageError(f"--weights: {args.weights} holds no conv weight (4-D array)")
    show_filters(state[key], title=f"{key} {tuple(state[key].shape)} from {args.weights}", save=args.out)
    print(f"wrote {args.out}: {key} {tuple(state[key].shape)}")
    return 0


def _cmd_activations(args) -> int:
    from .. import nn
    from ..toolbox.viz import show_activation_maps

    state, meta = load_run(args.weights)
    model, _, _ = model_from_run(state, meta, args.weights, args.model)
    model.eval()
    modules = dict(model.named_modules())
    if args.layer is not None and args.layer not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise UsageError(f"--layer: no layer {args.layer!r} in {type(model).__name__}; its convolutions: {', '.join(convs)}")
    layer = args.layer or next(n for n, m in modules.items() if isinstance(m, nn.Conv2d))
    image, what = _test_image(args.index, args.data, meta)
    fig = show_activation_maps(model, image, layer)
    fig.suptitle(f"Activation maps of {layer} for {what}", fontsize=10)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}: layer {layer}, {what}")
    return 0


def _cmd_edges(args) -> int:
    from ..toolbox.viz import show_edge_walkthrough

    if args.image:
        image, what = read_gray_image(args.image), args.image
    else:
        image, what = _test_image(args.index, args.data)
        image = image[0]
    fig = show_edge_walkthrough(image)
    fig.suptitle(f"Edge filters and their activation maps on {what}", fontsize=10)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}: {what}")
    return 0


__all__ = ["add_parser", "read_gray_image"]
