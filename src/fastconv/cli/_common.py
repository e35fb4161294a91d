"""What the `python -m fastconv` commands share: argument types, the error that names a bad flag,
and reading a training run back (weights, the metadata `train` stores beside them, the model they
belong to, its dataset as it was fed in training)."""

from __future__ import annotations

import argparse
import json

#: The key under which `train` stores its metadata (model, variant, width, dataset, normalize,
#: resize, ...) as JSON bytes in the weights .npz.
META_KEY = "__fastconv_meta__"

#: How many characters of a library error a one-line CLI message keeps (missing-key lists get long).
_MAX_DETAIL = 240


class UsageError(Exception):
    """A bad command-line value; `python -m fastconv` reports it as a one-line error under the
    subcommand's usage (exit code 2). The message starts with the flag it is about."""


class CommandError(Exception):
    """A failure that no flag caused (a dataset found nowhere, a corrupt file in the default
    places); `python -m fastconv` prints "error: <message>" without a traceback (exit code 1)."""


def at_least(minimum, kind=int):
    """An argparse ``type``: a number of `kind` (int or float) >= `minimum`."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not value >= minimum:  # `not >=` also refuses NaN
            raise argparse.ArgumentTypeError(f"expected a value >= {minimum}, got {text}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a float > 0."""
    value = at_least(0.0, float)(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a value > 0, got {text}")
    return value


def cuda_unavailable_reason() -> str | None:
    """None when a CUDA device can be used, else why not (for an error about --device cuda)."""
    from .. import cuda

    if cuda.is_available():
        return None
    return "no CUDA device available (" + ("built without CUDA" if not cuda.is_compiled() else "no GPU/driver") + ")"


def resolve_device(name: str) -> str:
    """The device of a --device value: "auto" is cuda when available, else cpu."""
    why = cuda_unavailable_reason()
    if name == "auto":
        return "cpu" if why else "cuda"
    if name == "cuda" and why:
        raise UsageError(f"--device cuda: {why}")
    return name


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + " ..."


def load_run(path) -> tuple[dict, dict]:
    """(state dict, training metadata) of a --weights file written by `train` or fastconv.save
    (metadata {} when the file has none)."""
    from ..serialization import load

    try:
        state = load(path)
    except FileNotFoundError:
        raise UsageError(f"--weights {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--weights {path}: a directory, not a .npz weights file") from None
    except ValueError as e:  # the message starts with the path
        raise UsageError(f"--weights: {e}") from None
    meta = json.loads(bytes(state.pop(META_KEY)).decode()) if META_KEY in state else {}
    return state, meta


def build_model(name: str, variant: str = "modern", width=None):
    """LeNet-5 (variant), the MLP, or a d2l model in its small Fashion-MNIST version at `width`."""
    from ..models import get_model

    if name == "lenet5":
        return get_model(name, variant=variant)
    if name == "mlp":
        return get_model(name)
    return get_model(name, small=True, width=1.0 if width is None else width)


def model_from_run(state: dict, meta: dict, path, model=None, variant=None):
    """(model, name, variant): the model a run's weights belong to, built as `train` built it (the
    metadata's model, variant and width; `model` / `variant` override them) with the weights loaded."""
    name = model or meta.get("model", "lenet5")
    variant = variant or meta.get("variant", "modern")
    net = build_model(name, variant, meta.get("width"))
    try:
        net.load_state_dict(state)
    except (ValueError, TypeError) as e:
        saved = f" (saved by train for {meta['model']})" if "model" in meta else ""
        flag = "--model" if model else "--weights"
        raise UsageError(f"{flag}: the weights in {path}{saved} do not fit {name}: {_clip(str(e))}") from None
    return net, name, variant


def load_dataset(name: str, split: str, data_dir=None, normalize: bool = False, resize=None):
    """The `split` of dataset `name` as `train` feeds it: standardised when `normalize`, resized
    to `resize` pixels when given. With `data_dir` (--data) only that directory is searched and
    nothing is downloaded; without it, the usual places (see fastconv.data.search_dirs)."""
    from .. import data

    try:
        dataset = data.load_idx_dataset(name, split, root=data_dir, download=data_dir is None, normalize=normalize)
    except data.DatasetNotFoundError as e:
        if data_dir is not None:
            raise UsageError(f"--data {data_dir}: no {name} {split} files there (looked for {e.stem}[.gz] in "
                             f"{' and '.join(map(str, e.looked_in))})") from None
        raise CommandError(e.explain("pass --data DIR")) from None
    except ValueError as e:  # a corrupt or mismatched IDX file
        raise (UsageError(f"--data: {e}") if data_dir is not None else CommandError(str(e))) from None
    return data.ResizedDataset(dataset, resize) if resize else dataset
