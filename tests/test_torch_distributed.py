"""fastconv.torch.distributed: a 2-process gloo run on localhost (bounded in time) trains native
LeNet-5 for a few SGD steps and ends with the parameters of a 1-process run over the same global
batches to 1e-5 (relative; the two differ only in float32 summation order)."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")

import fastconv  # noqa: E402
from fastconv.torch.distributed import shard_indices  # noqa: E402

WORKER = textwrap.dedent("""
    import datetime, os, sys
    import numpy as np
    import fastconv
    from fastconv.nn import functional as F
    world, rank, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    fastconv.set_num_threads(1)
    if world > 1:
        import torch.distributed as dist
        from fastconv.torch.distributed import allreduce_gradients
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    fastconv.manual_seed(0)
    model = fastconv.models.LeNet5("modern")
    opt = fastconv.optim.SGD(model.parameters(), 0.05, momentum=0.9)
    rng = np.random.default_rng(1)
    for step in range(3):
        x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, 8)
        part = slice(rank * 8 // world, (rank + 1) * 8 // world)
        opt.zero_grad()
        F.cross_entropy(model(fastconv.Tensor(x[part])), y[part]).backward()
        if world > 1:
            allreduce_gradients(model.parameters(), bucket_bytes=16 << 10)
        opt.step()
    if rank == 0:
        np.savez(out, *[p.data for p in model.parameters()])
    if world > 1:
        dist.destroy_process_group()
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path, world):
    out = str(tmp_path / f"params{world}.npz")
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(world), str(r), out], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    with np.load(out) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def test_two_process_gloo_matches_one_process(tmp_path):
    one, two = _run(tmp_path, 1), _run(tmp_path, 2)
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_shard_indices_partition_an_epoch():
    shards = [shard_indices(103, r, 4, seed=3, epoch=2) for r in range(4)]
    assert all(len(s) == 25 for s in shards)
    joined = np.concatenate(shards)
    assert len(np.unique(joined)) == 100
    assert not np.array_equal(shard_indices(103, 0, 4, seed=3, epoch=3), shards[0])
    with pytest.raises(ValueError, match="rank"):
        shard_indices(10, 2, 2)


def test_allreduce_without_process_group():
    from fastconv.torch.distributed import allreduce_gradients

    with pytest.raises(RuntimeError, match="init_process_group"):
        allreduce_gradients(fastconv.models.LeNet5().parameters())
