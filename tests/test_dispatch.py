"""The op layer's dispatch (fastconv._dispatch): device_of, Op.run and its errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import _dispatch
from fastconv._dispatch import OPS, Op, device_of


@pytest.fixture
def scratch_ops():
    """Ops declared by a test leave OPS as it was."""
    saved = dict(OPS)
    yield
    OPS.clear()
    OPS.update(saved)


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
