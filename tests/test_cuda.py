"""CUDA backend. Tests marked `cuda` need a GPU (tests/conftest.py skips them, with the reason,
when none is present); the unmarked ones check the CPU-only behaviour: the module imports, reports
no device, and refuses to create device arrays with a clear RuntimeError."""

import numpy as np
import pytest

import fastconv
from fastconv import cuda

from reference import relative_error
from toolkit import ELEMENTWISE_BOUND, SUM_BOUND, conv_algorithm_names


# ---- CPU-only behaviour (run everywhere) -------------------------------------------------------------

def test_module_imports_and_reports():
    assert isinstance(cuda.is_compiled(), bool)
    assert isinstance(cuda.device_count(), int)
    assert cuda.is_available() == (cuda.device_count() > 0)
    assert issubclass(cuda.CudaError, RuntimeError)


def test_no_device_is_clean():
    if cuda.is_available():
        pytest.skip("a GPU is present")
    assert not cuda.is_available()
    for make in (lambda: cuda.to_device(np.zeros(3, np.float32)), lambda: cuda.empty((2, 3))):
        with pytest.raises(RuntimeError, match="no CUDA device"):
            make()
    with pytest.raises(RuntimeError, match="no CUDA device"):
        cuda.synchronize()
    cuda.empty_cache()  # a no-op without a device
    assert cuda.memory_stats()["allocated_bytes"] == 0


def test_array_cannot_be_built_directly():
    with pytest.raises(TypeError, match="to_device"):
        cuda.Array(object())


# ---- on a GPU ----------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 5), (2, 3, 4, 5)])
def test_round_trip(rng, shape, dtype):
    x = np.asarray(rng.standard_normal(shape) * 100).astype(dtype)
    a = cuda.to_device(x)
    assert a.shape == shape and a.dtype == np.dtype(dtype) and a.size == x.size and a.nbytes == x.nbytes
    np.testing.assert_array_equal(a.numpy(), x)
    np.testing.assert_array_equal(a.copy().numpy(), x)


@pytest.mark.cuda
def test_non_contiguous_input_is_copied(rng):
    x = rng.standard_normal((6, 8)).astype(np.float32)
    np.testing.assert_array_equal(cuda.to_device(x[:, ::2]).numpy(), x[:, ::2])
    np.testing.assert_array_equal(cuda.to_device(x.T).numpy(), x.T)


@pytest.mark.cuda
def test_empty_zeros_reshape():
    z = cuda.zeros((4, 5))
    np.testing.assert_array_equal(z.numpy(), np.zeros((4, 5), np.float32))
    assert z.reshape(20).shape == (20,) and z.reshape(2, -1).shape == (2, 10)
    assert cuda.empty((3,), dtype=np.int64).dtype == np.int64
    with pytest.raises(ValueError, match="reshape"):
        z.reshape(3, 7)


@pytest.mark.cuda
def test_bad_arguments():
    with pytest.raises(TypeError, match="float32 or int64"):
        cuda.to_device(np.zeros(3, np.float64))
    with pytest.raises(TypeError, match="numpy"):
        cuda.to_device([1.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        cuda.empty((2, -1))
    with pytest.raises(ValueError, match="device"):
        cuda.empty((2,), device=cuda.device_count())
    with pytest.raises(TypeError, match="numpy"):
        np.asarray(cuda.empty((2,)))


@pytest.mark.cuda
def test_caching_allocator_reuses_blocks():
    cuda.synchronize()
    a = cuda.empty((1000, 1000))
    ptr = a._impl.data_ptr
    del a
    assert cuda.memory_stats()["cached_bytes"] >= 4_000_000
    b = cuda.empty((1000, 1000))
    assert b._impl.data_ptr == ptr  # same bucket, same block
    del b
    cuda.empty_cache()
    assert cuda.memory_stats()["cached_bytes"] == 0


@pytest.mark.cuda
def test_out_of_memory_is_memory_error():
    with pytest.raises(MemoryError):
        cuda.empty((1 << 40,))  # 4 TiB


@pytest.mark.cuda
def test_device_queries():
    assert cuda.device_count() >= 1
    assert isinstance(cuda.get_device_name(0), str) and cuda.get_device_name(0)
    cuda.synchronize()


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


@pytest.mark.cuda
def test_dlpack_round_trip_with_torch(rng):
    torch = _torch_cuda()
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    a = cuda.to_device(x)
    t = torch.from_dlpack(a)
    assert t.is_cuda and tuple(t.shape) == x.shape and t.dtype == torch.float32
    np.testing.assert_array_equal(t.cpu().numpy(), x)
    t.mul_(2)  # shared memory: the change is visible through the Array
    np.testing.assert_array_equal(a.numpy(), 2 * x)

    src = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    b = cuda.from_dlpack(src)
    assert b.shape == (3, 4) and b._impl.data_ptr == src.data_ptr()  # zero copy
    del src  # the Array keeps the producer alive
    np.testing.assert_array_equal(b.numpy(), np.arange(12, dtype=np.float32).reshape(3, 4))
    labels = cuda.from_dlpack(torch.tensor([1, 2, 3], device="cuda"))
    assert labels.dtype == np.int64


@pytest.mark.cuda
def test_from_dlpack_rejects():
    torch = _torch_cuda()
    with pytest.raises(ValueError, match="CUDA tensor"):
        cuda.from_dlpack(torch.zeros(3))
    with pytest.raises(ValueError, match="contiguous"):
        cuda.from_dlpack(torch.zeros(4, 4, device="cuda").t())
    with pytest.raises(TypeError, match="float32 or int64"):
        cuda.from_dlpack(torch.zeros(3, dtype=torch.float64, device="cuda"))


# ---- SGEMM: tests/test_gemm.py runs every gemm test on each backend (the `device` fixture) -------------

# ---- conv2d ------------------------------------------------------------------------------------------

from reference import conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref  # noqa: E402

# Every algorithm the registry lists for the device, all three passes, on odd shapes, and the bad
# arguments: tests/test_conv.py (the `device` fixture). Here: what only the device has.


@pytest.mark.cuda
def test_conv2d_im2col_chunks_the_batch(rng):
    saved = fastconv.get_workspace_limit()
    x = rng.standard_normal((7, 8, 32, 32)).astype(np.float32)  # 295 KB of columns per image
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    y_ref = conv2d_ref(x, w, padding=(1, 1))
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    try:
        fastconv.set_workspace_limit(1 << 20)  # 3 images per chunk
        dx_, dw_, ddy = cuda.to_device(x), cuda.to_device(w), cuda.to_device(dy)
        y = cuda.ops.conv2d(dx_, dw_, padding=1, algo="im2col")
        gx = cuda.ops.conv2d_input(x.shape, dw_, ddy, padding=1, algo="im2col")
        gw = cuda.ops.conv2d_weight(dx_, w.shape, ddy, padding=1, algo="im2col")
    finally:
        fastconv.set_workspace_limit(saved)
    assert relative_error(y.numpy(), y_ref) <= 1e-5
    assert relative_error(gx.numpy(), conv2d_input_grad_ref(x.shape, w, dy, padding=(1, 1))) <= 1e-5
    assert relative_error(gw.numpy(), conv2d_weight_grad_ref(x, w.shape, dy, padding=(1, 1))) <= 1e-5


@pytest.mark.cuda
def test_conv2d_algorithm_without_a_device_kernel_is_refused():
    x, w = cuda.zeros((2, 4, 8, 8)), cuda.zeros((6, 4, 3, 3))
    for algo in set(fastconv.conv_algorithms(x.shape, w.shape)) - set(conv_algorithm_names("cuda")):
        with pytest.raises(ValueError, match=f"algo: '{algo}' cannot run .*on cuda"):
            fastconv.conv2d(x, w, algo=algo)
        with pytest.raises(ValueError, match=f"algo: '{algo}' cannot run .*on cuda"):
            fastconv.grad.conv2d_weight(x, w.shape, cuda.zeros((2, 6, 6, 6)), algo=algo)


# ---- pooling: tests/test_pool.py runs every pooling test on each backend (the `device` fixture) --------

# ---- training kernels --------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3, 7), (1, 1, 1)])
def test_bias_add_and_grad(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    bshape = (1, shape[1]) + (1,) * (len(shape) - 2)
    y = cuda.ops.add_bias(cuda.to_device(x), cuda.to_device(b))
    assert relative_error(y.numpy(), x.astype(np.float64) + b.reshape(bshape)) <= ELEMENTWISE_BOUND
    axes = (0,) + tuple(range(2, len(shape)))
    assert relative_error(cuda.ops.bias_grad(cuda.to_device(x)).numpy(), x.astype(np.float64).sum(axis=axes)) <= SUM_BOUND


@pytest.mark.cuda
@pytest.mark.parametrize("n", [0, 1, 255, 257, 1_000_003])
def test_sum_mean(rng, n):
    x = rng.standard_normal(n).astype(np.float32)
    X = cuda.to_device(x)
    s = cuda.ops.sum(X)
    assert s.shape == () and abs(float(s.numpy()) - x.astype(np.float64).sum()) <= SUM_BOUND * max(1.0, np.abs(x).sum())
    if n:
        assert abs(float(cuda.ops.mean(X).numpy()) - x.astype(np.float64).mean()) <= SUM_BOUND * max(1.0, np.abs(x).mean())
    else:
        assert np.isnan(cuda.ops.mean(X).numpy())


@pytest.mark.cuda
def test_softmax_cross_entropy_label_out_of_range_is_nan(rng):
    """(Values and gradients: tests/test_functional.py on each backend.) A label out of range cannot be
    reported from the GPU: the loss is NaN, and nothing is read out of bounds."""
    z = cuda.to_device(rng.standard_normal((5, 10)).astype(np.float32))
    for bad in (10, -1):
        assert np.isnan(cuda.ops.softmax_cross_entropy(z, cuda.to_device(np.full(5, bad, np.int64))).numpy())


@pytest.mark.cuda
def test_axpy_and_training_errors():
    y = cuda.zeros(5)
    cuda.ops.axpy(2.0, cuda.to_device(np.ones(5, np.float32)), y)
    np.testing.assert_array_equal(y.numpy(), np.full(5, 2.0, np.float32))
    with pytest.raises(ValueError, match="y"):
        cuda.ops.axpy(1.0, cuda.zeros(5), cuda.zeros(4))
    with pytest.raises(ValueError, match="momentum_buffer"):
        cuda.ops.sgd_step(y, y.copy(), lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match="int64"):
        cuda.ops.softmax_cross_entropy(cuda.zeros((2, 3)), cuda.zeros(2))
    with pytest.raises(ValueError, match="labels"):
        cuda.ops.softmax_cross_entropy(cuda.zeros((2, 3)), cuda.empty(3, dtype=np.int64))
    with pytest.raises(ValueError, match="bias"):
        cuda.ops.add_bias(cuda.zeros((2, 3)), cuda.zeros(2))


# ---- the public API dispatches on Array inputs -------------------------------------------------------

@pytest.mark.cuda
def test_public_functions_dispatch_to_the_gpu(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    X, Wt = cuda.to_device(x), cuda.to_device(w)
    y = fastconv.conv2d(X, Wt, padding=1)
    assert isinstance(y, cuda.Array)
    assert relative_error(y.numpy(), fastconv.conv2d(x, w, padding=1)) <= 1e-5
    dy = cuda.to_device(rng.standard_normal(y.shape).astype(np.float32))
    assert isinstance(fastconv.grad.conv2d_input(x.shape, Wt, dy, padding=1), cuda.Array)
    assert isinstance(fastconv.grad.conv2d_weight(X, w.shape, dy, padding=1), cuda.Array)
    a = rng.standard_normal((5, 7)).astype(np.float32)
    g = fastconv.gemm(cuda.to_device(a), cuda.to_device(a), trans_b=True)
    assert relative_error(g.numpy(), a.astype(np.float64) @ a.T) <= 1e-5


@pytest.mark.cuda
def test_public_functions_reject_mixed_devices(rng):
    x = np.zeros((1, 3, 5, 5), np.float32)
    w = np.zeros((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="weight"):
        fastconv.conv2d(cuda.to_device(x), w)
    with pytest.raises(ValueError, match="x"):
        fastconv.conv2d(x, cuda.to_device(w))
    with pytest.raises(ValueError, match="bias"):
        fastconv.conv2d(cuda.to_device(x), cuda.to_device(w), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="b"):
        fastconv.gemm(cuda.zeros((2, 2)), np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="grad_output"):
        fastconv.grad.conv2d_weight(cuda.to_device(x), w.shape, np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="asymmetric"):
        fastconv.conv2d(cuda.to_device(x), cuda.zeros((2, 3, 2, 2)), padding="same")
    y, idx = fastconv.max_pool2d(cuda.to_device(x), 2, return_indices=True)
    with pytest.raises(ValueError, match="grad_output"):
        fastconv.grad.max_pool2d(np.ones(y.shape, np.float32), idx, x.shape)  # a host gradient with device indices
    with pytest.raises(ValueError, match="indices"):
        fastconv.grad.max_pool2d(y, idx.numpy(), x.shape)  # device gradient, host indices


def test_device_modules_import_below_the_package():
    """The device half imports its siblings relatively and never `fastconv` itself, and fastconv.cuda
    and the device op modules do not import each other in a circle (Array lives below both)."""
    import ast
    import pathlib

    root = pathlib.Path(fastconv.__file__).parent
    files = ["cuda.py", "_cuda_array.py", "_cuda_ops.py", "autograd.py", "serialization.py", "nn/functional.py",
             "optim/__init__.py"]
    imported = {}
    for name in files:
        targets = set()
        for node in ast.walk(ast.parse((root / name).read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                targets |= {node.module or ""} | {f"{node.module or ''}.{a.name}" for a in node.names}
                if node.level == 0 and (node.module or "").split(".")[0] == "fastconv":
                    targets.add("fastconv")
        assert "fastconv" not in targets, f"{name} imports fastconv itself"
        imported[name] = targets
    assert not any("cuda" == t.lstrip(".").split(".")[-1] for t in imported["_cuda_ops.py"] | imported["_cuda_array.py"]), \
        "the device op modules must not import fastconv.cuda (it imports them)"


@pytest.mark.cuda
def test_cuda_kernels_take_the_bound_params_struct():
    """The CUDA entry points take the plan's own _core.Conv2dParams / Pool2dParams (one parameter struct
    for every device), validate it again, and refuse anything else."""
    bound = fastconv.cuda._cuda
    x = cuda.to_device(np.ones((1, 2, 5, 5), np.float32))
    w = cuda.to_device(np.ones((3, 2, 3, 3), np.float32))
    y = cuda.empty((1, 3, 5, 5))
    p = fastconv._core.Conv2dParams(1, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1)
    bound.conv2d_forward("direct", p, x._impl, w._impl, None, y._impl, 1 << 20)
    assert y.numpy()[0, :, 2, 2].tolist() == [18.0] * 3 and y.numpy()[0, :, 0, 0].tolist() == [8.0] * 3
    with pytest.raises(TypeError):
        bound.conv2d_forward("direct", [1, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1], x._impl, w._impl, None, y._impl, 1 << 20)
    pool = fastconv._core.Pool2dParams(1, 2, 5, 5, 2, 2, 2, 2, 0, 0, False, True, 1, 1, 0)
    out = cuda.empty((1, 2, 2, 2))
    bound.max_pool2d_forward(pool, x._impl, out._impl, None)
    assert out.numpy().tolist() == np.ones((1, 2, 2, 2)).tolist()
    dilated = fastconv._core.Pool2dParams(1, 2, 5, 5, 2, 2, 2, 2, 0, 0, False, True, 2, 2, 0)
    with pytest.raises(ValueError, match="dilation"):  # average pooling takes no dilation (validate_avg)
        bound.avg_pool2d_forward(dilated, x._impl, cuda.empty((1, 2, 2, 2))._impl)
