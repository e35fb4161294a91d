"""The op layer's dispatch (fastconv._dispatch): every declared op's kernel tables, device_of, and the
errors of a device without a kernel."""

from __future__ import annotations

import functools
import importlib

import numpy as np
import pytest

import fastconv
from fastconv import _cuda_ops, _dispatch
from fastconv._dispatch import DEVICES, OPS, Op, device_of
from fastconv.nn import functional as F

#: Ops the brief of issue #18 names; each must be declared (more may be).
EXPECTED = {
    "conv2d": ("forward", "input", "weight"), "add_bias": ("forward", "backward"), "gemm": ("forward",),
    "max_pool2d": ("forward", "backward"), "avg_pool2d": ("forward", "backward"),
    "adaptive_avg_pool2d": ("forward", "backward"), "kmax_pool": ("forward", "backward"),
    "pad_bottom_right": ("forward",), "crop_bottom_right": ("forward",), "pad": ("forward",),
    "relu": ("forward", "backward"), "leaky_relu": ("forward", "backward"), "sigmoid": ("forward", "backward"),
    "tanh": ("forward", "backward"), "dropout": ("forward",), "batch_norm2d": ("forward",),
    "log_softmax": ("forward", "backward"), "cross_entropy": ("forward",), "correct_count": ("forward",),
    "mse_loss": ("forward",),
}


@pytest.fixture
def scratch_ops():
    """Ops declared by a test leave OPS as it was."""
    saved = dict(OPS)
    yield
    OPS.clear()
    OPS.update(saved)


def _function(kernel):
    """The module-level function behind a kernel (a partial's function: conv2d's CPU passes)."""
    return kernel.func if isinstance(kernel, functools.partial) else kernel


def test_the_expected_ops_are_declared_with_their_passes():
    assert {name: OPS[name].passes for name in EXPECTED if name in OPS} == EXPECTED
    assert fastconv.info()["ops"] == {name: op.devices() for name, op in OPS.items()}


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_has_a_cpu_kernel_for_each_pass(name):
    op = OPS[name]
    assert op.passes and set(op.kernels) == set(DEVICES)
    for pass_ in op.passes:
        assert callable(op.kernels["cpu"].get(pass_)), f"{name}: no CPU kernel for {pass_!r}"


@pytest.mark.parametrize("name", sorted(name for name, op in OPS.items() if op.kernels["cuda"]))
def test_cuda_kernels_are_device_functions(name):
    """A CUDA kernel is a function of fastconv._cuda_ops, or a composition of them beside the op's
    CPU kernel (batch norm, the losses): a module-level function, found there under its name."""
    op = OPS[name]
    for pass_, kernel in op.kernels["cuda"].items():
        module = importlib.import_module(kernel.__module__)
        assert getattr(module, kernel.__name__, None) is kernel, f"{name}.{pass_}: {kernel!r} is not module-level"
        if module is not _cuda_ops:
            assert kernel.__module__ == _function(op.kernels["cpu"][pass_]).__module__, (
                f"{name}.{pass_}: a device kernel outside _cuda_ops lives beside the op")


def test_the_cuda_tables_name_the_device_implementations():
    """The ops of the public array API run the _cuda_ops function of the same name on the device."""
    for name, passes in [("max_pool2d", ("forward", "backward")), ("avg_pool2d", ("forward", "backward")),
                         ("adaptive_avg_pool2d", ("forward", "backward")), ("gemm", ("forward",)),
                         ("relu", ("forward", "backward")), ("sigmoid", ("forward", "backward"))]:
        for pass_ in passes:
            expected = name if pass_ == "forward" else f"{name}_backward"
            assert OPS[name].kernels["cuda"][pass_] is getattr(_cuda_ops, expected)
    conv = OPS["conv2d"].kernels["cuda"]
    assert (conv["forward"], conv["input"], conv["weight"]) == (
        _cuda_ops.conv2d, _cuda_ops.conv2d_input, _cuda_ops.conv2d_weight)


def test_cpu_only_ops():
    assert {name for name, op in OPS.items() if op.devices() == ("cpu",)} >= {"kmax_pool", "pad"}


def test_device_of_numpy_and_none():
    x = np.zeros(3, np.float32)
    assert device_of() == "cpu"
    assert device_of(None) == "cpu"
    assert device_of(x, None, (1, 2), 3) == "cpu"


@pytest.mark.cuda
def test_device_of_arrays():
    x = np.zeros((2, 2), np.float32)
    X = fastconv.cuda.to_device(x)
    assert device_of(X) == "cuda"
    assert device_of(None, X) == "cuda"
    assert device_of(x, X) == "cuda"  # mixed: the device kernel's own check names the numpy operand


@pytest.mark.cuda
def test_mixed_operands_keep_their_errors():
    from fastconv import cuda

    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="a: is a numpy array but the other inputs are on the GPU"):
        fastconv.gemm(a, cuda.to_device(a))
    with pytest.raises(ValueError, match="out: is a numpy array"):
        fastconv.gemm(cuda.to_device(a), cuda.to_device(a), out=a)
    x = cuda.to_device(np.ones((1, 1, 4, 4), np.float32))
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(ValueError, match="indices: is a numpy array"):
        fastconv.grad.max_pool2d(y, idx.numpy(), (1, 1, 4, 4))
    with pytest.raises(ValueError, match="weight: is a numpy array"):
        fastconv.conv2d(x, np.ones((1, 1, 3, 3), np.float32))


@pytest.mark.cuda
def test_an_op_without_a_device_kernel_says_so():
    from fastconv import cuda

    x = cuda.to_device(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(TypeError, match=r"kmax_pool: the forward pass has no cuda kernel \(it runs on cpu\)"):
        fastconv.kmax_pool(x, 2)
    with pytest.raises(TypeError, match=r"kmax_pool: the backward pass has no cuda kernel"):
        fastconv.grad.kmax_pool(x, cuda.to_device(np.zeros((2, 3), np.int64)), (2, 3))
    with pytest.raises(TypeError, match=r"pad: the forward pass has no cuda kernel"):
        F.pad(fastconv.Tensor(cuda.to_device(np.ones((1, 1, 3, 3), np.float32))), (1, 1))


def _double(x, k):
    return 2 * x + k


def test_run_calls_the_kernel_of_the_operands_device(scratch_ops):
    op = Op("test_twice", {"forward": 1, "backward": 2}, cpu={"forward": _double})
    assert OPS["test_twice"] is op
    np.testing.assert_array_equal(op.run("forward", np.ones(2), 1), [3.0, 3.0])
    assert op.devices("forward") == ("cpu",) and op.devices("backward") == () and op.devices() == ()
    assert "test_twice" in repr(op)
    with pytest.raises(TypeError, match=r"test_twice: the backward pass has no cpu kernel \(it runs on no device\)"):
        op.run("backward", np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"test_twice: unknown pass 'weight'; expected one of \('forward', 'backward'\)"):
        op.run("weight", np.ones(2))


def test_a_device_only_op_names_the_missing_cpu_kernel(scratch_ops):
    op = Op("test_device_only", {"forward": 1}, cuda={"forward": _double})
    with pytest.raises(TypeError, match=r"test_device_only: the forward pass has no cpu kernel \(it runs on cuda\)"):
        op.run("forward", np.ones(2), 1)


def test_declarations_are_checked(scratch_ops):
    Op("test_declared", {"forward": 1}, cpu={"forward": _double})
    with pytest.raises(ValueError, match="already declared"):
        Op("test_declared", {"forward": 1}, cpu={"forward": _double})
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        Op("test_tpu", {"forward": 1}, tpu={"forward": _double})
    with pytest.raises(ValueError, match=r"cpu kernels for undeclared passes \['backward'\]"):
        Op("test_passes", {"forward": 1}, cpu={"forward": _double, "backward": _double})
    assert "test_tpu" not in OPS and "test_passes" not in OPS


def test_the_dispatch_imports_no_op_module():
    """_dispatch sits below every op module: it imports only the device Array type."""
    import ast

    tree = ast.parse(open(_dispatch.__file__).read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "typing", "_cuda_array"}
