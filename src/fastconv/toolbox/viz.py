"""Pictures of filters, activation maps, images, training curves and confusion matrices.

Needs matplotlib (`pip install fastconv[plot]`). Every function builds a `matplotlib.figure.Figure`
directly (no pyplot state: nothing to close, works on headless machines), returns it, and writes
it to `save=PATH` when given. In Jupyter the returned Figure displays itself.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import shape_str


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # the plot extra is optional
        raise ImportError("fastconv.viz needs matplotlib: pip install fastconv[plot]") from e
    return Figure(figsize=(width, height), layout="constrained")


def _finish(fig, save):
    if save is not None:
        fig.savefig(save, dpi=100)
    return fig


def _numpy(a, name: str) -> np.ndarray:
    """Arrays, fastconv Tensors/Parameters (`.data`) and torch tensors (`.detach().numpy()`) as numpy."""
    if hasattr(a, "detach"):
        a = a.detach()
    if hasattr(a, "numpy") and not isinstance(a, np.ndarray):
        a = a.numpy()
    elif hasattr(a, "data") and not isinstance(a, np.ndarray):
        a = a.data
    arr = np.asarray(a)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty, shape {shape_str(arr.shape)}")
    return arr


def _annotate(ax, kernel: np.ndarray) -> None:
    """Write each weight on its cell, white on dark cells and black on light ones (as in seed 002)."""
    mid = (float(kernel.max()) + float(kernel.min())) / 2
    fontsize = max(5, 11 - max(kernel.shape))
    for (i, j), v in np.ndenumerate(kernel):
        text = f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color="white" if v < mid else "black")


def show_filters(weight, annotate=None, max_in: int = 8, max_out: int = 32, title=None, save=None):
    """A grid of a conv layer's kernels, weight of shape (K, C, R, S), (K, R, S) or (R, S):
    one row per output channel, one column per input channel (up to `max_in` columns and `max_out`
    rows). Single-input-channel weights are laid out in rows of up to 8 filters instead.
    annotate: write the values on each cell; by default for at most 16 kernels of at most 5x5.
    Gray scale per kernel: dark = most negative, light = most positive."""
    w = _numpy(weight, "weight").astype(np.float64)
    if w.ndim == 2:
        w = w[None, None]
    elif w.ndim == 3:
        w = w[:, None]
    elif w.ndim != 4:
        raise ValueError(f"weight: expected shape (K, C, R, S), (K, R, S) or (R, S), got {w.ndim}-D {shape_str(w.shape)}")
    K, C, R, S = w.shape
    k_shown, c_shown = min(K, max_out), min(C, max_in)
    if C == 1:
        cols = min(k_shown, 8)
        rows = math.ceil(k_shown / cols)
        cells = [(k, 0, divmod(k, cols)) for k in range(k_shown)]
    else:
        rows, cols = k_shown, c_shown
        cells = [(k, c, (k, c)) for k in range(k_shown) for c in range(c_shown)]
    if annotate is None:  # numbers stay legible on a few small kernels only
        annotate = R <= 5 and S <= 5 and len(cells) <= 16
    cell = 1.6 if annotate else 1.1
    fig = _figure(max(2.5, cols * cell), max(2.0, rows * cell + 0.6))
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    for k, c, (r, col) in cells:
        ax = axes[r, col]
        ax.imshow(w[k, c], cmap="gray", interpolation="nearest")
        ax.set_title(f"filter {k + 1}" if C == 1 else f"out {k} / in {c}", fontsize=8)
        if annotate:
            _annotate(ax, w[k, c])
    shown = f"{k_shown} of {K} filters" + (f", {c_shown} of {C} input channels" if C > 1 else "")
    fig.suptitle(title or f"Filters {R}x{S} ({shown})", fontsize=10)
    return _finish(fig, save)


def _grid(n: int, max_cols: int = 8) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def show_feature_maps(maps, titles=None, title=None, image=None, shared_scale: bool = False, save=None):
    """Every channel of maps (C, H, W) as a gray image, optionally preceded by the input image.
    shared_scale: one gray scale for all maps (to compare intensities) instead of one per map.
    The building block of `show_activation_maps` and of the examples."""
    m = _numpy(maps, "maps").astype(np.float64)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"maps: expected shape (C, H, W), got {shape_str(m.shape)}")
    panels = ([("input", np.squeeze(_numpy(image, "image")))] if image is not None else []) + [
        (titles[i] if titles else f"channel {i}", m[i]) for i in range(m.shape[0])
    ]
    rows, cols = _grid(len(panels))
    fig = _figure(max(3.0, 1.9 * cols), 1.9 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    scale = dict(vmin=m.min(), vmax=m.max()) if shared_scale else {}
    for ax, (name, img) in zip(axes.flat, panels):
        ax.imshow(img, cmap="gray", interpolation="nearest", **scale)
        ax.set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, save)


def _find_layer(model, layer):
    """(name, module) for `layer`: a sub-module of `model` or its dotted name in `model.named_modules()`."""
    named = list(model.named_modules())
    for name, module in named:
        if module is layer or (isinstance(layer, str) and name == layer):
            return name or type(module).__name__, module
    names = ", ".join(repr(n) for n, _ in named if n)
    raise ValueError(f"layer: {layer!r} is not a sub-module of the model; its layers are {names}")


def capture_output(model, image, layer):
    """Run `model` on `image` (an array or Tensor) and return (layer name, the output of `layer`).
    The layer's forward is wrapped for the duration of the call only."""
    from ..autograd import Tensor, no_grad

    name, module = _find_layer(model, layer)
    seen = []
    forward = module.forward

    def recording_forward(*args):
        out = forward(*args)
        seen.append(out)
        return out

    object.__setattr__(module, "forward", recording_forward)  # instance attribute shadows the method
    try:
        with no_grad():
            model(image if isinstance(image, Tensor) else Tensor(image))
    finally:
        del module.__dict__["forward"]
    if not seen:
        raise ValueError(f"layer: {name!r} was not called by the model's forward")
    return name, seen[0]


def show_activation_maps(model, image, layer, save=None):
    """Every channel of the output of `layer` (a sub-module of `model`, or its dotted name as listed
    by `model.named_modules()`, e.g. "features.0") when `model` runs on one image of shape
    (C, H, W), (H, W) or (1, C, H, W). The input is shown first."""
    img = _numpy(image, "image").astype(np.float32)
    if img.ndim == 2:
        img = img[None, None]
    elif img.ndim == 3:
        img = img[None]
    if img.ndim != 4 or img.shape[0] != 1:
        raise ValueError(f"image: expected one image (C, H, W), (H, W) or (1, C, H, W), got {shape_str(img.shape)}")
    name, out = capture_output(model, img, layer)
    maps = _numpy(out, "layer output")[0]
    title = f"Activation maps of {name} ({maps.shape[0]} channels)"
    return show_feature_maps(maps, title=title, image=img[0].mean(axis=0), save=save)


def show_images(images, labels=None, classes=None, max_images: int = 64, save=None):
    """A grid of images (N, H, W), (N, 1, H, W), (N, 3, H, W) or (N, H, W, 3), each titled with its
    label (or `classes[label]` when class names are given)."""
    imgs = _numpy(images, "images").astype(np.float64)
    if imgs.ndim == 4 and imgs.shape[1] in (1, 3) and imgs.shape[-1] not in (1, 3):
        imgs = np.moveaxis(imgs, 1, -1)
    if imgs.ndim == 4 and imgs.shape[-1] == 1:
        imgs = imgs[..., 0]
    if imgs.ndim not in (3, 4) or (imgs.ndim == 4 and imgs.shape[-1] != 3):
        raise ValueError(f"images: expected (N, H, W), (N, 1, H, W), (N, 3, H, W) or (N, H, W, 3), got {shape_str(imgs.shape)}")
    n = min(len(imgs), max_images)
    if labels is not None and len(labels) < n:
        raise ValueError(f"labels: expected at least {n} labels, got {len(labels)}")
    rows, cols = _grid(n)
    fig = _figure(1.5 * cols, 1.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, ax in zip(range(n), axes.flat):
        img = imgs[i]
        if img.ndim == 3:  # RGB: scale into [0, 1] for imshow
            lo, hi = img.min(), img.max()
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        if labels is not None:
            label = int(labels[i])
            ax.set_title(str(classes[label]) if classes is not None else str(label), fontsize=8)
    return _finish(fig, save)


def _history_columns(history) -> dict:
    """{metric: [value per epoch]} from a dict of lists, a list of per-epoch dicts (what `train`
    records), or either under a "history" key or attribute (train's .json file, Keras-style objects)."""
    if isinstance(history, dict) and "history" in history:
        history = history["history"]
    history = getattr(history, "history", history)
    if isinstance(history, dict):
        cols = {k: list(v) for k, v in history.items() if np.ndim(v) == 1}
    elif isinstance(history, (list, tuple)) and history and all(isinstance(e, dict) for e in history):
        cols = {k: [e.get(k) for e in history] for k in history[0]}
    else:
        raise TypeError(f"history: expected a dict of per-epoch lists or a list of per-epoch dicts, got {type(history).__name__}")
    cols = {k: v for k, v in cols.items() if v and all(isinstance(x, (int, float, np.number)) for x in v)}
    if not cols:
        raise ValueError("history: no per-epoch numeric series found")
    return cols


def plot_history(history, title: str = "Training history", save=None):
    """Loss (left) and accuracy (right, in percent) per epoch from what `train` returns or writes
    (its .json file loaded with json.load works too): series whose name contains "loss" go left,
    those containing "acc" go right; others (timings) are left out."""
    from matplotlib.ticker import MaxNLocator

    cols = _history_columns(history)
    loss = {k: v for k, v in cols.items() if "loss" in k.lower()}
    acc = {k: v for k, v in cols.items() if "acc" in k.lower()}
    panels = [p for p in ((loss, "loss"), (acc, "accuracy (%)")) if p[0]]
    if not panels:
        raise ValueError(f"history: no series named like '*loss*' or '*acc*' among {sorted(cols)}")
    fig = _figure(5.0 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (series, ylabel) in zip(axes, panels):
        for name, values in series.items():
            values = np.asarray(values, np.float64)
            if series is acc and values.max() <= 1.0:
                values = 100 * values
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        n_epochs = max(len(values) for values in series.values())
        ax.set_xlim(0.5, n_epochs + 0.5)
        if n_epochs <= 12:  # a tick per epoch; MaxNLocator gives a 1-epoch run ticks at 0.5, 0.6, ...
            ax.set_xticks(range(1, n_epochs + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _finish(fig, save)


def plot_confusion(matrix, classes=None, normalize: bool = False, title: str = "Confusion matrix", save=None):
    """Confusion matrix (rows: true class, columns: predicted), counts written on the cells;
    `normalize=True` shows each row as fractions of that class."""
    m = _numpy(matrix, "matrix").astype(np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix: expected a square 2-D array, got {shape_str(m.shape)}")
    n = m.shape[0]
    classes = [str(c) for c in (classes if classes is not None else range(n))]
    if len(classes) != n:
        raise ValueError(f"classes: expected {n} names (one per row of matrix), got {len(classes)}")
    if normalize:
        m = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-300)
    size = max(4.0, 0.55 * n + 2.0)
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = (m.max() + m.min()) / 2
    for (i, j), v in np.ndenumerate(m):
        text = f"{v:.2f}" if normalize else f"{v:.0f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if v > threshold else "black")
    ax.set_title(title, fontsize=10)
    return _finish(fig, save)


def show_edge_walkthrough(image, save=None):
    """Seed 002's walk-through on one gray image (H, W): the four 4x4 edge filters of
    `filters.edge4()` with their values, and their ReLU activation maps (valid cross-correlation,
    one `fastconv.conv2d` call for all four)."""
    from ..conv import conv2d
    from .filters import edge4

    img = _numpy(image, "image").astype(np.float32)
    if img.ndim != 2 or min(img.shape) < 4:
        raise ValueError(f"image: expected a gray image (H, W) of at least 4x4, got {shape_str(img.shape)}")
    bank = edge4()
    maps = np.maximum(conv2d(np.ascontiguousarray(img)[None, None], bank[:, None]), 0)[0]
    fig = _figure(11.0, 5.6)
    axes = fig.subplots(2, 5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_axis_off()
    axes[1, 0].imshow(img, cmap="gray", interpolation="nearest")
    axes[1, 0].set_title(f"input {img.shape[0]}x{img.shape[1]}", fontsize=9)
    for i in range(4):
        axes[0, i + 1].imshow(bank[i], cmap="gray", interpolation="nearest")
        axes[0, i + 1].set_title(f"filter {i + 1}", fontsize=9)
        _annotate(axes[0, i + 1], bank[i])
        axes[1, i + 1].imshow(maps[i], cmap="gray", interpolation="nearest")
        axes[1, i + 1].set_title(f"ReLU(activation map {i + 1})", fontsize=9)
    fig.suptitle("Edge filters (1, 2: vertical edges; 3, 4: horizontal edges) and what they respond to", fontsize=10)
    return _finish(fig, save)
