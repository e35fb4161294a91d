"""fastconv.distributed: data-parallel training over torch.distributed (gloo), on localhost.

Every multi-process test starts its ranks itself, bounds them in time and kills leftovers. What is
checked: a 2-process run ends with the parameters of a 1-process run over the same global batches
to 1e-5 (relative; they differ only in float32 summation order), for native LeNet through
DataParallel + DistributedLoader, for `train --distributed` under torchrun, and for a patched torch
LeNet under torch's DistributedDataParallel; ranks that disagree fail together with a clear error."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")

import fastconv  # noqa: E402
from fastconv import distributed  # noqa: E402

TIMEOUT_S = 240


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(code_or_argv, world, extra_env=None, cwd=None):
    """Start `world` ranks (torchrun's variables set by hand); return [(returncode, output)]."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(world),
               LOCAL_WORLD_SIZE=str(world), PYTHONPATH=os.pathsep.join(sys.path), **(extra_env or {}))
    argv = [sys.executable, "-c", code_or_argv] if isinstance(code_or_argv, str) else [sys.executable, *code_or_argv]
    procs = [subprocess.Popen(argv, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(world)]
    try:
        logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, log) for p, log in zip(procs, logs)]


def _ok(results):
    for rc, log in results:
        assert rc == 0, log[-3000:]


def _params(path):
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def _assert_close(one, two, bound=1e-5):
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert np.abs(a - b).max() <= bound * np.abs(a).max()


# ---- native models: DataParallel + DistributedLoader --------------------------------------------------

NATIVE = textwrap.dedent("""
    import os, sys
    import numpy as np
    import fastconv
    from fastconv.nn import functional as F
    out, bucket_bytes = sys.argv[1], int(sys.argv[2])
    world = int(os.environ["WORLD_SIZE"])
    fastconv.set_num_threads(1)
    rng = np.random.default_rng(1)
    train = fastconv.data.ArrayDataset(rng.standard_normal((40, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 40))
    fastconv.manual_seed(int(os.environ["RANK"]))  # different seeds: DataParallel starts every rank from rank 0's weights
    model = fastconv.models.LeNet5("modern")
    if world > 1:
        from fastconv import distributed
        distributed.init_process_group(timeout_s=60)
        model = distributed.DataParallel(model, bucket_bytes=bucket_bytes)
        loader = distributed.DistributedLoader(train, 8, shuffle=True, seed=3)
    else:
        loader = fastconv.data.DataLoader(train, 8, shuffle=True, seed=3)
    opt = fastconv.optim.SGD(model.parameters(), 0.05, momentum=0.9)
    for epoch in range(2):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(fastconv.Tensor(x)), y).backward()
            opt.step()
    if int(os.environ["RANK"]) == 0:
        np.savez(out, *[p.data for p in model.parameters()])
    if world > 1:
        assert model.stats["backward_passes"] == 10 and model.stats["buckets_reduced"] >= 10, model.stats
        print("stats", model.stats)
""")


@pytest.mark.parametrize("bucket_bytes", [1 << 20, 4096])
def test_two_process_gloo_matches_one_process(tmp_path, bucket_bytes):
    _ok(_launch([*("-c", NATIVE), str(tmp_path / "one.npz"), str(bucket_bytes)], 1))
    two = _launch([*("-c", NATIVE), str(tmp_path / "two.npz"), str(bucket_bytes)], 2)
    _ok(two)
    _assert_close(_params(tmp_path / "one.npz"), _params(tmp_path / "two.npz"))
    if bucket_bytes == 4096:  # small buckets go out while backward is still running
        sent_early = int(two[0][1].split("'buckets_sent_during_backward': ")[1].split(",")[0])
        assert sent_early > 0, two[0][1]


BUFFERS = textwrap.dedent("""
    import os, sys
    import numpy as np, fastconv
    from fastconv import distributed
    distributed.init_process_group(timeout_s=60)
    rank = int(os.environ["RANK"])
    fastconv.set_num_threads(1)
    fastconv.manual_seed(rank)
    model = fastconv.models.get("resnet18", small=True, width=0.125)
    for _, b in model.named_buffers():
        b += rank  # running statistics that differ between ranks
    model = distributed.DataParallel(model)
    x = np.random.default_rng(rank).standard_normal((2, 1, 32, 32)).astype(np.float32)
    model(fastconv.Tensor(x))  # a training forward: buffers come from rank 0 first, then update locally
    np.savez(sys.argv[1] + f"buffers{rank}.npz", *[b for _, b in model.named_buffers()])
    np.savez(sys.argv[1] + f"params{rank}.npz", *[p.data for p in model.parameters()])
""")


def test_parameters_and_buffers_start_from_rank_0(tmp_path):
    _ok(_launch([*("-c", BUFFERS), str(tmp_path / "r")], 2))
    with np.load(tmp_path / "rparams0.npz") as a, np.load(tmp_path / "rparams1.npz") as b:
        assert len(a.files) > 40 and all(np.array_equal(a[k], b[k]) for k in a.files)
    # Buffers: rank 0's before this forward, then each rank's own batch statistics (momentum 0.1);
    # without the broadcast the running statistics would still differ by about 0.9.
    with np.load(tmp_path / "rbuffers0.npz") as a, np.load(tmp_path / "rbuffers1.npz") as b:
        assert len(a.files) > 20
        for k in a.files:
            assert a[k].shape == b[k].shape and np.abs(a[k] - b[k]).max() < 0.5, k


MISMATCH = textwrap.dedent("""
    import os, fastconv
    from fastconv import distributed
    distributed.init_process_group(timeout_s=30)
    width = 0.25 if os.environ["RANK"] == "0" else 0.5
    distributed.DataParallel(fastconv.models.get("resnet18", small=True, width=width))
""")


def test_ranks_with_different_models_fail_together():
    results = _launch(MISMATCH, 2)
    for rc, log in results:
        assert rc != 0 and "ValueError" in log and "differs between ranks" in log, log[-2000:]


def test_distributed_loader_shards_are_dataloaders_batches():
    rng = np.random.default_rng(0)
    ds = fastconv.data.ArrayDataset(rng.standard_normal((203, 1, 2, 2)).astype(np.float32), np.arange(203) % 10)
    ds.labels = np.arange(203)  # labels name the samples
    single = [y for _, y in fastconv.data.DataLoader(ds, 20, shuffle=True, seed=7)]
    assert [y.tolist() for _, y in distributed.DistributedLoader(ds, 20, shuffle=True, seed=7)] == [y.tolist() for y in single]
    shards = [list(distributed.DistributedLoader(ds, 20, shuffle=True, seed=7, rank_and_world_size=(r, 4))) for r in range(4)]
    # Each global batch of 20 is the concatenation of the 4 ranks' shares of 5, in rank order; the
    # last global batch has 3 samples, fewer than the ranks, so every rank skips it.
    assert all(len(s) == len(single) - 1 == len(distributed.DistributedLoader(ds, 20, rank_and_world_size=(r, 4)))
               for r, s in enumerate(shards))
    for b, batch in enumerate(single[:-1]):
        assert np.concatenate([shards[r][b][1] for r in range(4)]).tolist() == batch.tolist()


def test_distributed_loader_bad_input():
    ds = fastconv.data.ArrayDataset(np.zeros((10, 1, 2, 2), np.float32), np.zeros(10, np.int64))
    with pytest.raises(ValueError, match="does not split evenly over 4 ranks"):
        distributed.DistributedLoader(ds, 10, rank_and_world_size=(0, 4))
    with pytest.raises(ValueError, match="rank_and_world_size"):
        distributed.DistributedLoader(ds, 8, rank_and_world_size=(4, 4))
    with pytest.raises(ValueError, match="pass a seed"):
        distributed.DistributedLoader(ds, 8, shuffle=True, rank_and_world_size=(1, 4))


def test_without_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        distributed.DataParallel(fastconv.models.LeNet5())
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if k in os.environ:
            pytest.skip("running under torchrun")
    with pytest.raises(RuntimeError, match="torchrun"):
        distributed.init_process_group()
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main_process()


# ---- the CLI under torchrun ------------------------------------------------------------------------------


def test_train_cli_distributed_matches_single_process(tmp_path):
    from test_training import synthetic_split

    rng = np.random.default_rng(0)
    synthetic_split(tmp_path, rng, 256, "train")
    synthetic_split(tmp_path, rng, 100, "test")
    common = ["--data", str(tmp_path), "--epochs", "2", "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.05",
              "--no-progress", "--threads", "1"]
    single = subprocess.run([sys.executable, "-m", "fastconv", "train", *common, "--out", str(tmp_path / "one.npz")],
                            capture_output=True, text=True, timeout=TIMEOUT_S, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port())]
    two = subprocess.run([*torchrun, "-m", "fastconv", "train", "--distributed", "--timeout", "60", *common,
                          "--out", str(tmp_path / "two.npz")], capture_output=True, text=True, timeout=TIMEOUT_S,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    assert two.stdout.count("epoch  2/2") == 1  # only rank 0 prints
    assert "2 processes x 1 threads" in two.stdout and "(32 per process)" in two.stdout
    one_state, two_state = fastconv.load(tmp_path / "one.npz"), fastconv.load(tmp_path / "two.npz")
    assert one_state.keys() == two_state.keys()
    for k in one_state:
        if k != "__fastconv_meta__":
            assert np.abs(one_state[k] - two_state[k]).max() <= 1e-5 * np.abs(one_state[k]).max(), k
    acc_one = single.stdout.split("final test accuracy ")[1].split("%")[0]
    acc_two = two.stdout.split("final test accuracy ")[1].split("%")[0]
    assert acc_one == acc_two


def test_train_cli_distributed_without_torchrun_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    res = subprocess.run([sys.executable, "-m", "fastconv", "train", "--distributed", "--data", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, env=dict(env, PYTHONPATH=os.pathsep.join(sys.path)))
    assert res.returncode != 0 and "torchrun" in res.stderr


# ---- PyTorch models patched with fastconv.torch, under DistributedDataParallel ---------------------------

PATCHED_DDP = textwrap.dedent("""
    import datetime, os, sys
    import numpy as np, torch
    import torch.distributed as dist
    import fastconv.torch as fct
    sys.path.insert(0, sys.argv[2])
    from fastconv.bench.torch_mirror import torch_lenet
    out, world, rank = sys.argv[1], int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch_lenet("modern")
    report = fct.patch(model)
    assert len(report.swapped) == 4, report
    if world > 1:
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x, y = torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)
        part = slice(rank * 8 // world, (rank + 1) * 8 // world)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[part]), y[part]).backward()
        opt.step()
    if rank == 0:
        np.savez(out, *[p.detach().numpy() for p in model.parameters()])
    if world > 1:
        dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # torch 2.13's gloo sometimes aborts in interpreter teardown after DDP
""")


def test_patched_torch_model_under_ddp_matches_one_process(tmp_path):
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    _ok(_launch([*("-c", PATCHED_DDP), str(tmp_path / "one.npz"), tests_dir], 1))
    _ok(_launch([*("-c", PATCHED_DDP), str(tmp_path / "two.npz"), tests_dir], 2))
    _assert_close(_params(tmp_path / "one.npz"), _params(tmp_path / "two.npz"))


def test_data_parallel_bad_arguments():
    """With a one-rank group in this process: a bad bucket size and parameters that are not float32
    numpy arrays are refused with the argument named."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group already exists")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        model = fastconv.models.LeNet5()
        for bad in (0, -1, 1.5):
            with pytest.raises(ValueError, match="bucket_bytes"):
                distributed.DataParallel(model, bucket_bytes=bad)
        model.parameters()[0].data = model.parameters()[0].data.astype(np.float64)
        with pytest.raises(TypeError, match="parameter 0 is a ndarray of float64"):
            distributed.DataParallel(model)
        assert distributed.all_reduce_sum([1, 2]).tolist() == [1.0, 2.0]
        assert distributed.all_reduce_max([3.5]).tolist() == [3.5]
    finally:
        dist.destroy_process_group()
