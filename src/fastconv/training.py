"""fit() and evaluate(): the training loop of `python -m fastconv train`, reusable from Python.

Both are device-agnostic: inside a step they use only Tensor / nn / optim calls, so the same loop
runs on numpy arrays and on fastconv.cuda.Array. Per-step results (the detached loss and logits)
stay where they were computed and are read back to the host together, once per `log_every`
steps and at the end of an epoch, never inside a step.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ._validation import require_int
from .autograd import Tensor, cat, no_grad
from .data import DataLoader
from .nn import functional as F


def fit(model, train_data, optimizer, *, epochs: int = 1, batch_size: int = 64, device: str = "cpu",
        scheduler=None, loss_fn=None, test_data=None, eval_batch_size: int = 1000, shuffle: bool = True,
        seed=0, max_steps=None, on_step=None, on_epoch=None, log_every: int = 50, progress: bool = False,
        distributed: bool = False) -> list[dict]:
    """Train `model` with `optimizer` for `epochs` epochs; returns the history, one dict per epoch.

    train_data: a dataset (len, and indexing by an index array gives (images, labels) numpy
    batches, as fastconv.data.ArrayDataset), batched by a DataLoader of `batch_size` (shuffled
    with `seed` when `shuffle`); or a ready iterable of such batches with a len (a DataLoader, a
    fastconv.distributed.DistributedLoader), used as it is.
    device: "cpu" or "cuda"; each batch goes there with ``Tensor(images).to(device)`` (the model
    must already be there). loss_fn(logits, labels) defaults to F.cross_entropy.
    scheduler: stepped once after each epoch. test_data: a dataset scored by :func:`evaluate`
    after each epoch (test_acc is None without it).
    max_steps: stop after this many optimizer steps in all (the epoch it ends in is recorded as
    it stands). on_step(step, loss): called after each step with its number (from 1) and the
    detached loss Tensor, still on `device`. on_epoch(record): called with each epoch's record.
    log_every: steps between the host reads of the pending losses and logits (they also bound how
    many are kept); progress: show a progress bar (tqdm when installed).
    distributed: `model` is a fastconv.distributed.DataParallel and train_data a
    DistributedLoader: each epoch's buffers are synchronised, the test set is split over the
    ranks, and the record holds the totals over every rank.

    Each record: epoch, loss (mean over the samples seen), train_acc (of the logits computed
    during the epoch, as the model changed), test_acc, seconds (training only, without the
    evaluation), images_per_s.
    """
    epochs = require_int(epochs, "epochs", minimum=1)
    log_every = require_int(log_every, "log_every", minimum=1)
    if max_steps is not None:
        max_steps = require_int(max_steps, "max_steps", minimum=1)
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    if hasattr(train_data, "__iter__") and not hasattr(train_data, "__getitem__"):
        batches = train_data
    else:
        batches = DataLoader(train_data, batch_size, shuffle=shuffle, seed=seed)
    dist = None
    if distributed:
        from . import distributed as dist  # needs torch; only a distributed fit imports it
    test_indices = None
    if dist is not None and test_data is not None:  # rank r scores samples r, r + world, ...
        test_indices = np.arange(dist.rank(), len(test_data), dist.world_size())

    history, step = [], 0
    for epoch in range(1, epochs + 1):
        model.train()
        totals = _EpochTotals()
        t0 = time.perf_counter()
        bar = progress_bar(batches, len(batches), f"epoch {epoch}/{epochs}", progress)
        for xb, yb in bar:
            logits = model(Tensor(xb).to(device))
            loss = loss_fn(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            totals.add(loss.detach(), logits.detach(), yb)
            if on_step is not None:
                on_step(step, loss.detach())
            if totals.pending >= log_every:
                totals.read_back()
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{totals.loss_sum / totals.seen:.4f}",
                                    acc=f"{100 * totals.correct / totals.seen:.1f}%", refresh=False)
            if max_steps is not None and step >= max_steps:
                break
        totals.read_back()  # also waits for the device, so the time below is the epoch's
        seconds = time.perf_counter() - t0
        if scheduler is not None:
            scheduler.step()
        loss_sum, correct, seen = totals.loss_sum, totals.correct, totals.seen
        test_acc = None
        if dist is not None:
            model.sync_buffers()
            test_correct = 0.0
            if test_data is not None:
                acc, _ = evaluate(model, test_data, eval_batch_size, device, indices=test_indices)
                test_correct = acc * len(test_indices)
            loss_sum, correct, seen, test_correct = dist.all_reduce_sum([loss_sum, correct, seen, test_correct])
            if test_data is not None:
                test_acc = test_correct / len(test_data)
            seconds = float(dist.all_reduce_max([seconds])[0])
        elif test_data is not None:
            test_acc, _ = evaluate(model, test_data, eval_batch_size, device)
        record = {"epoch": epoch, "loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                  "test_acc": test_acc, "seconds": seconds, "images_per_s": seen / seconds}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if max_steps is not None and step >= max_steps:
            break
    return history


def evaluate(model, dataset, batch_size: int = 1000, device: str = "cpu", indices=None):
    """(accuracy, predictions) of `model` on `dataset` (or on the samples at `indices` of it), in
    eval mode without gradients; the model's training mode is restored after.

    The logits stay on `device` until every batch has run, then come back in one read.
    predictions: int64 class indices, one per sample scored.
    """
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    if len(indices) == 0:
        return 0.0, np.empty(0, dtype=np.int64)
    was_training = model.training
    model.eval()
    outputs, labels = [], []
    try:
        with no_grad():
            for lo in range(0, len(indices), batch_size):
                xb, yb = dataset[indices[lo:lo + batch_size]]
                outputs.append(model(Tensor(xb).to(device)))
                labels.append(yb)
            logits = cat(outputs).numpy()
    finally:
        model.train(was_training)
    preds = logits.argmax(axis=1).astype(np.int64)
    return float((preds == np.concatenate(labels)).mean()), preds


class _EpochTotals:
    """One epoch's running loss sum, correct count and samples seen. The steps' detached losses
    and logits wait on their device until read_back() fetches them in one read each."""

    def __init__(self):
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0
        self._losses, self._logits, self._labels = [], [], []

    @property
    def pending(self) -> int:
        return len(self._losses)

    def add(self, loss: Tensor, logits: Tensor, labels) -> None:
        self._losses.append(loss.reshape(1))
        self._logits.append(logits)
        self._labels.append(np.asarray(labels))

    def read_back(self) -> None:
        if not self._losses:
            return
        with no_grad():
            losses = cat(self._losses).numpy()
            predicted = cat(self._logits).numpy().argmax(axis=1)
        lo = 0
        for loss, labels in zip(losses, self._labels):  # summed step by step, as loss.item() * n would be
            n = len(labels)
            self.loss_sum += float(loss) * n
            self.correct += int((predicted[lo:lo + n] == labels).sum())
            self.seen += n
            lo += n
        self._losses, self._logits, self._labels = [], [], []


def progress_bar(iterable, total: int, desc: str, enabled: bool = True):
    """`iterable` with a progress bar: tqdm's when tqdm is installed, otherwise a plain one-line
    counter on a terminal's stderr; `iterable` itself when not `enabled`."""
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


__all__ = ["fit", "evaluate", "progress_bar"]
