"""Data-parallel training of native fastconv models across processes and machines, with
torch.distributed as the communication engine (optional extra ``fastconv[torch]``).

Every rank holds the whole model and runs forward and backward on its part of each global batch;
``DataParallel`` averages the gradients across ranks during backward, so every rank's optimizer
takes the same step. Launch one process per rank with ``torchrun``, which sets RANK, WORLD_SIZE,
LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT::

    torchrun --nnodes 1 --nproc-per-node 2 -m fastconv train --distributed

In a script::

    rank, world_size = fastconv.distributed.init_process_group()      # gloo, from torchrun's variables
    model = fastconv.distributed.DataParallel(fastconv.models.LeNet5())
    loader = fastconv.distributed.DistributedLoader(train_set, 256, shuffle=True, seed=0)
    for x, y in loader:                      # this rank's share of each global batch of 256
        loss = F.cross_entropy(model(fastconv.Tensor(x)), y)
        opt.zero_grad(); loss.backward(); opt.step()   # backward returns with averaged gradients

How the gradients travel: parameters are grouped into buckets of about 1 MiB in the reverse of
their registration order (the order backward finishes them). When every gradient of a bucket is
complete (``Tensor.register_post_accumulate_grad_hook``), it is copied into one flat float32 array,
viewed by a torch tensor without a copy, and all-reduced asynchronously (gloo runs it on its own
thread) while backward carries on with earlier layers; at the end of backward
(``fastconv.autograd.queue_callback``) the last buckets are sent, every reduction is awaited and each
``.grad`` becomes a view of its averaged bucket. Buckets go out strictly in order, so every rank
issues the same collectives in the same order.

Failures do not hang: every collective is bounded by the process group's timeout
(``init_process_group(timeout_s=...)``), and the checks that ranks agree (model parameters, dataset
length, batch size) raise the same ValueError on every rank. CPU (gloo) only: fastconv.cuda arrays
are not handed to nccl yet.
"""

from __future__ import annotations

import datetime
import os
import time
import zlib

import numpy as np

try:
    import torch
    import torch.distributed as dist
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("fastconv.distributed needs PyTorch for its communication: pip install 'fastconv[torch]'") from e

from . import autograd

_DEFAULT_TIMEOUT_S = 120.0


def init_process_group(backend: str = "gloo", timeout_s: float = _DEFAULT_TIMEOUT_S) -> tuple[int, int]:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT) and return (rank, world_size). Every later collective fails after ``timeout_s``
    seconds instead of waiting forever for a rank that died or never started. Does nothing but
    return the values when the group is already initialized."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"init_process_group: environment variable(s) {', '.join(missing)} not set; "
                           "start the processes with torchrun (e.g. torchrun --nproc-per-node 2 -m fastconv "
                           "train --distributed)")
    if backend != "gloo":
        raise ValueError(f"backend: only 'gloo' (CPU) is supported, got {backend!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s: expected a positive number of seconds, got {timeout_s!r}")
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()


def _require_group() -> None:
    if not dist.is_initialized():
        raise RuntimeError("call fastconv.distributed.init_process_group (or torch.distributed.init_process_group) first")


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (and without a process group): the rank that prints and saves."""
    return rank() == 0


def check_same_on_all_ranks(what: str, value: int) -> None:
    """Raise the same ValueError on every rank unless all ranks pass the same integer ``value``
    (``what`` names it in the message: "dataset length", "model parameters", ...)."""
    _require_group()
    mine = torch.tensor([int(value)], dtype=torch.int64)
    every = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    values = [int(t.item()) for t in every]
    if len(set(values)) > 1:
        per_rank = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise ValueError(f"{what} differs between ranks ({per_rank}); every rank must run the same model on the same data")


def _all_reduce(values, op) -> np.ndarray:
    _require_group()
    t = torch.tensor(np.asarray(values, dtype=np.float64))
    dist.all_reduce(t, op=op)
    return t.numpy()


def all_reduce_sum(values) -> np.ndarray:
    """The element-wise sum over ranks of ``values`` (numbers), as a float64 array."""
    return _all_reduce(values, dist.ReduceOp.SUM)


def all_reduce_max(values) -> np.ndarray:
    """The element-wise maximum over ranks of ``values`` (numbers), as a float64 array."""
    return _all_reduce(values, dist.ReduceOp.MAX)


def _wait_without_sleeping(work) -> None:
    """Wait for an async collective by polling, yielding the core to other threads between polls.

    Why not ``work.wait()``: it sleeps on a condition variable, the idle core halts, and on a VM
    waking it again when gloo's threads finish takes milliseconds. Measured on the 2-core VM with
    LeNet-5, 2 processes x 1 thread against 1 x 2 (benchmarks/results/2026-11-26_epyc2c_measurements.md):
    0.61x the throughput with wait(), 0.88x with this loop."""
    while not work.is_completed():
        os.sched_yield()
    work.wait()  # raises the collective's error, if any


def _fingerprint(arrays) -> int:
    """A checksum of the shapes and dtypes of ``arrays``, in order (not of their values)."""
    text = ";".join(f"{tuple(a.shape)}:{a.dtype}" for a in arrays)
    return zlib.crc32(text.encode())


class DataParallel:
    """Wrap a fastconv ``nn.Module`` so that ``loss.backward()`` leaves on every parameter the
    gradient averaged over all ranks (the mean of per-rank means: each rank's loss must be the mean
    over an equal share of the global batch, as ``DistributedLoader`` gives).

    On construction it checks that every rank has the same parameter shapes and copies rank 0's
    parameters and buffers to all ranks, so ranks start identical whatever their seeds. In training
    mode each forward call first copies rank 0's buffers (BatchNorm running statistics) to the other
    ranks, as torch's DistributedDataParallel does. Attributes other than the ones below (``train``,
    ``eval``, ``parameters``, ``state_dict``, ...) are the wrapped module's; ``module`` is the module.

    ``stats`` counts, since construction: backward passes, buckets all-reduced, buckets sent while
    backward was still running, and the seconds spent at the end of backward waiting for
    reductions (the communication that did not overlap with computation).
    """

    def __init__(self, module, bucket_bytes: int = 1 << 20):
        _require_group()
        if not isinstance(bucket_bytes, int) or bucket_bytes < 1:
            raise ValueError(f"bucket_bytes: expected a positive int, got {bucket_bytes!r}")
        self.module = module
        self._params = [p for p in module.parameters() if p.requires_grad]
        for i, p in enumerate(self._params):
            if not isinstance(p.data, np.ndarray) or p.data.dtype != np.float32:
                raise TypeError(f"module: parameter {i} is a {type(p.data).__name__} of {p.data.dtype}; "
                                "DataParallel needs float32 numpy parameters (the model on the CPU)")
        check_same_on_all_ranks("number of parameters", len(self._params))
        check_same_on_all_ranks("parameter shapes (checksum)", _fingerprint(p.data for p in self._params))
        check_same_on_all_ranks("buffer shapes (checksum)", _fingerprint(self._buffer_arrays()))
        self._broadcast([p.data for p in self._params] + self._buffer_arrays())
        self._buckets = self._make_buckets(bucket_bytes)
        self._bucket_of = {id(p): b for b, bucket in enumerate(self._buckets) for p in bucket}
        self._ready: list[int] = [0] * len(self._buckets)
        self._pending: list = []  # (bucket index, flat array, work handle), in bucket order
        self._in_backward = False
        self.stats = {"backward_passes": 0, "buckets_reduced": 0, "buckets_sent_during_backward": 0,
                      "wait_seconds": 0.0}
        self._hooks = [p.register_post_accumulate_grad_hook(self._on_grad_ready) for p in self._params]

    # -- the module's interface
    def __call__(self, *args, **kwargs):
        if getattr(self.module, "training", False):
            self._broadcast(self._buffer_arrays())
        return self.module(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.__dict__["module"], name)

    def sync_buffers(self) -> None:
        """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every rank: call before an
        evaluation split across ranks so they all evaluate the same model."""
        self._broadcast(self._buffer_arrays())

    # -- internals
    def _buffer_arrays(self) -> list:
        return [b for _, b in self.module.named_buffers()] if hasattr(self.module, "named_buffers") else []

    @staticmethod
    def _broadcast(arrays) -> None:
        """Overwrite ``arrays`` with rank 0's values: one broadcast per dtype (a ResNet-18 has 40
        BatchNorm buffers; one collective each would cost about as much as its forward pass)."""
        by_dtype: dict = {}
        for a in arrays:
            if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable):
                raise TypeError("DataParallel: parameters and buffers must be writeable C-contiguous numpy arrays")
            by_dtype.setdefault(a.dtype, []).append(a)
        for group in by_dtype.values():
            flat = np.concatenate([a.ravel() for a in group])
            dist.broadcast(torch.from_numpy(flat), src=0)
            offset = 0
            for a in group:
                a.ravel()[...] = flat[offset:offset + a.size]
                offset += a.size

    def _make_buckets(self, bucket_bytes: int) -> list[list]:
        buckets, current, size = [], [], 0
        for p in reversed(self._params):  # backward finishes the last layers first
            current.append(p)
            size += p.data.nbytes
            if size >= bucket_bytes:
                buckets.append(current)
                current, size = [], 0
        if current:
            buckets.append(current)
        return buckets

    def _on_grad_ready(self, param) -> None:
        if not self._in_backward:
            self._in_backward = True
            autograd.queue_callback(self._finish_backward)
        self._ready[self._bucket_of[id(param)]] += 1
        # Send complete buckets, strictly in order, so every rank issues the same collectives.
        while len(self._pending) < len(self._buckets):
            b = len(self._pending)
            if self._ready[b] < len(self._buckets[b]):
                break
            self._send(b)
            self.stats["buckets_sent_during_backward"] += 1

    def _send(self, b: int) -> None:
        bucket = self._buckets[b]
        flat = np.empty(sum(p.data.size for p in bucket), dtype=np.float32)
        offset = 0
        for p in bucket:
            n = p.data.size
            # A parameter this backward did not reach (unused branch) contributes zeros.
            flat[offset:offset + n] = 0.0 if p.grad is None else np.asarray(p.grad, dtype=np.float32).ravel()
            offset += n
        self._pending.append((b, flat, dist.all_reduce(torch.from_numpy(flat), async_op=True)))

    def _finish_backward(self) -> None:
        try:
            for b in range(len(self._pending), len(self._buckets)):
                self._send(b)
            scale = np.float32(1.0 / dist.get_world_size())
            start = time.perf_counter()
            for b, flat, work in self._pending:
                _wait_without_sleeping(work)
                flat *= scale
                offset = 0
                for p in self._buckets[b]:
                    n = p.data.size
                    p.grad = flat[offset:offset + n].reshape(p.data.shape)
                    offset += n
            self.stats["wait_seconds"] += time.perf_counter() - start
            self.stats["buckets_reduced"] += len(self._buckets)
            self.stats["backward_passes"] += 1
        finally:
            self._pending = []
            self._ready = [0] * len(self._buckets)
            self._in_backward = False


class DistributedLoader:
    """This rank's share of every global batch that ``fastconv.data.DataLoader(dataset,
    global_batch_size, shuffle, seed, drop_last)`` would yield: the same permutation on every rank
    (the same seed logic as DataLoader), each global batch cut into ``world_size`` equal contiguous
    parts, part ``rank`` for this rank. With one rank it yields exactly DataLoader's batches, so a
    run on N ranks sees the same global batches as a run on one.

    ``global_batch_size`` must be a multiple of the world size. A last global batch that does not
    split evenly loses its remainder (at most world_size - 1 samples per epoch), so every rank's
    loss is a mean over the same number of samples and the averaged gradient is the global mean.
    With ``shuffle`` and no ``seed``, rank 0 draws a seed and sends it to the others.
    """

    def __init__(self, dataset, global_batch_size: int, shuffle: bool = False, seed=None, drop_last: bool = False,
                 *, rank_and_world_size: tuple[int, int] | None = None):
        from ._validation import require_int

        self.dataset = dataset
        self.global_batch_size = require_int(global_batch_size, "global_batch_size", 1)
        # rank_and_world_size: one rank's view without a process group (to inspect the sharding);
        # the cross-rank checks below then cannot run.
        self.rank, self.world_size = rank_and_world_size or (rank(), world_size())
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank_and_world_size: expected 0 <= rank < world_size, got {rank_and_world_size}")
        if self.global_batch_size % self.world_size:
            raise ValueError(f"global_batch_size: {self.global_batch_size} does not split evenly over "
                             f"{self.world_size} ranks; use a multiple of {self.world_size}")
        if shuffle and seed is None and not dist.is_initialized():
            if self.world_size > 1:
                raise ValueError("seed: ranks without a process group cannot agree on a shuffle; pass a seed")
        elif self.world_size > 1 and dist.is_initialized():
            check_same_on_all_ranks("dataset length", len(dataset))
            check_same_on_all_ranks("global batch size", self.global_batch_size)
            if shuffle and seed is None:
                seed = int(all_reduce_sum([np.random.SeedSequence().entropy % (1 << 40) if self.rank == 0 else 0])[0])
            if shuffle:
                check_same_on_all_ranks("shuffle seed", seed)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self._rng = np.random.default_rng(seed)

    def _global_batches(self) -> int:
        n, b = len(self.dataset), self.global_batch_size
        return n // b if self.drop_last else -(-n // b)

    def __len__(self) -> int:
        """Global batches per epoch that reach this rank (a last one smaller than world_size is skipped)."""
        n, b = len(self.dataset), self.global_batch_size
        full = self._global_batches()
        last = n - (full - 1) * b if full else 0
        return full - (0 < last < self.world_size and not self.drop_last)

    def __iter__(self):
        n, b = len(self.dataset), self.global_batch_size
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for g in range(self._global_batches()):
            batch = order[g * b:min((g + 1) * b, n)]
            per_rank = len(batch) // self.world_size
            if per_rank == 0:
                continue
            yield self.dataset[batch[self.rank * per_rank:(self.rank + 1) * per_rank]]


__all__ = ["init_process_group", "rank", "world_size", "is_main_process", "check_same_on_all_ranks",
           "all_reduce_sum", "all_reduce_max", "DataParallel", "DistributedLoader"]
