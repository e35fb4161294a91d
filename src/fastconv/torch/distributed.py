"""Data-parallel training of native fastconv models with torch.distributed as the transport.

Each rank runs forward and backward on its own shard of the batch, then ``allreduce_gradients``
averages the numpy ``.grad`` of every parameter across ranks in buckets (one flat buffer per bucket,
shared with a torch tensor without a copy, all buckets in flight at once), so every rank's optimizer
takes the same step. ``shard_indices`` gives each rank its part of a shuffled epoch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


def allreduce_gradients(parameters, bucket_bytes: int = 1 << 20) -> None:
    """Replace each parameter's ``.grad`` by its mean over all ranks (sum / world size).

    Every rank must pass the same parameters in the same order, each with a float32 ``.grad``.
    Needs an initialized process group (``torch.distributed.init_process_group``, e.g. "gloo");
    its timeout bounds a rank that never arrives.
    """
    if not dist.is_initialized():
        raise RuntimeError("allreduce_gradients: call torch.distributed.init_process_group first")
    params = list(parameters)
    missing = [i for i, p in enumerate(params) if p.grad is None]
    if missing:
        raise ValueError(f"parameters: {len(missing)} parameter(s) have no .grad (first at index {missing[0]}); "
                         "run backward before all-reducing")
    buckets, current, size = [], [], 0
    for p in params:
        current.append(p)
        size += p.grad.nbytes
        if size >= bucket_bytes:
            buckets.append(current)
            current, size = [], 0
    if current:
        buckets.append(current)
    pending = []
    for bucket in buckets:
        flat = np.concatenate([np.ascontiguousarray(p.grad, dtype=np.float32).ravel() for p in bucket])
        pending.append((bucket, flat, dist.all_reduce(torch.from_numpy(flat), async_op=True)))
    scale = np.float32(1.0 / dist.get_world_size())
    for bucket, flat, work in pending:
        work.wait()
        flat *= scale
        offset = 0
        for p in bucket:
            n = p.grad.size
            p.grad = flat[offset:offset + n].reshape(p.grad.shape)
            offset += n


def shard_indices(n: int, rank: int, world_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = True) -> np.ndarray:
    """This rank's sample indices for ``epoch``: one permutation shared by all ranks (seeded by
    ``seed + epoch``), cut to a multiple of ``world_size``, every ``world_size``-th from ``rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank: expected 0 <= rank < world_size={world_size}, got {rank}")
    order = np.random.default_rng(seed + epoch).permutation(n) if shuffle else np.arange(n)
    per_rank = n // world_size
    return order[: per_rank * world_size][rank::world_size]


__all__ = ["allreduce_gradients", "shard_indices"]
