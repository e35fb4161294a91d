"""Tensor and autograd core: broadcasting arithmetic, reductions, shapes, cat, grad mode, devices.
The float64 gradient checks run on the CPU; the float32 arithmetic runs on every backend (the
``device`` fixture) against numpy in float64."""

import numpy as np
import pytest

import fastconv
from fastconv import Tensor
from gradcheck import check_gradients
from toolkit import SUM_BOUND, assert_close, on_device, tensor, to_numpy


def t64(rng, *shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_broadcast_arithmetic_gradients(rng, op):
    # (4, 3, 5) with (3, 1) and a scalar-like (1,): residual adds and per-channel scales broadcast like this.
    a, b = t64(rng, 4, 3, 5), t64(rng, 3, 1)
    b.data += 3.0  # keep division away from zero
    f = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    check_gradients(f, [a, b], eps=1e-6, rtol=1e-6, atol=1e-8)


def test_scalar_operands_and_reflected_ops(rng):
    a = t64(rng, 3, 4)
    check_gradients(lambda x: 2.0 - x * 3.0 + 1.0 / (x * x + 1.0) - (-x) ** 3, [a], eps=1e-6, rtol=1e-6, atol=1e-8)


def test_matmul_transpose_reshape_sum_mean(rng):
    a, b = t64(rng, 3, 4), t64(rng, 4, 5)
    check_gradients(lambda x, y: (x @ y).T.reshape(5, 3, 1).sum(axis=2), [a, b], eps=1e-6, rtol=1e-6, atol=1e-8)
    check_gradients(lambda x: x.mean(axis=0, keepdims=True) + x.sum(), [a], eps=1e-6, rtol=1e-6, atol=1e-8)
    check_gradients(lambda x: x.flatten().mean(), [a], eps=1e-6, rtol=1e-6, atol=1e-8)


def test_matmul_float32_uses_gemm_and_matches(rng):
    a = Tensor(rng.standard_normal((6, 7), dtype=np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal((7, 3), dtype=np.float32), requires_grad=True)
    out = a @ b
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), a.data.astype(np.float64) @ b.data, rtol=1e-5, atol=1e-5)
    check_gradients(lambda x, y: x @ y, [a, b], eps=1e-2, rtol=1e-3, atol=1e-3)


def test_cat_gradient_and_errors(rng):
    a, b = t64(rng, 2, 3, 4), t64(rng, 2, 5, 4)
    check_gradients(lambda x, y: fastconv.cat([x, y], dim=1), [a, b], eps=1e-6, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="dimension 2 differs"):
        fastconv.cat([a, t64(rng, 2, 5, 3)], dim=1)


def test_shared_input_accumulates(rng):
    # x used twice (a residual connection): gradients add.
    x = t64(rng, 5)
    y = (x * x + x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    # A second backward on a new graph accumulates into .grad, as in PyTorch.
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)


def test_add_of_same_tensor_does_not_alias_leaf_grads(rng):
    a, b = t64(rng, 3), t64(rng, 3)
    (a + b).sum().backward()
    a.grad += 1.0
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_no_grad_and_detach(rng):
    x = t64(rng, 3)
    with fastconv.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.is_leaf
    assert fastconv.is_grad_enabled()
    z = (x * 2.0).detach()
    assert not z.requires_grad

    @fastconv.no_grad()
    def f(v):
        return v * 3.0

    assert not f(x).requires_grad


def test_backward_errors(rng):
    x = t64(rng, 3)
    with pytest.raises(RuntimeError, match="single-element"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        Tensor(np.ones(1)).backward()
    with pytest.raises(ValueError, match="do not broadcast"):
        x + t64(rng, 4)


def test_graph_is_freed_after_backward(rng):
    x = t64(rng, 3)
    y = (x * 2.0).sum()
    y.backward()
    assert y._parents == () and y._backward is None


def test_float32_constants_stay_float32(rng):
    x = Tensor(rng.standard_normal(4).astype(np.float32), requires_grad=True)
    y = x * 0.5 + 1 - 2 / (x * x + 1)
    assert y.dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float32


def test_device_and_to():
    x = Tensor(np.ones((2, 2), np.float32))
    assert x.device == "cpu" and x.to("cpu") is x
    if not fastconv.cuda.is_available():
        with pytest.raises(RuntimeError, match="is_available"):
            x.to("cuda")
    with pytest.raises(ValueError, match="device"):
        x.to("tpu")


# ---- gradient hooks (data-parallel training sends gradients from them) -------------------------------


def test_post_accumulate_grad_hook_sees_the_complete_gradient():
    w = fastconv.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    x = fastconv.Tensor(np.array([3.0, 4.0], np.float32))
    seen, ends = [], []

    def hook(t):
        seen.append(t.grad.copy())
        fastconv.autograd.queue_callback(lambda: ends.append(len(seen)))

    handle = w.register_post_accumulate_grad_hook(hook)
    ((w * x).sum() + (w * w).sum()).backward()  # w used twice: one call, with both contributions
    assert len(seen) == 1 and np.allclose(seen[0], [3 + 2, 4 + 4]) and ends == [1]
    handle.remove()
    (w * x).sum().backward()
    assert len(seen) == 1 and ends == [1]
    with pytest.raises(RuntimeError, match="leaf"):
        (w * x).register_post_accumulate_grad_hook(hook)


def test_hooks_fire_layer_by_layer_from_the_output():
    """Each parameter's gradient is final right after its own layer's backward, so the hooks of
    LeNet-5's layers fire from the last layer to the first (not all at the end of backward)."""
    model = fastconv.models.LeNet5("modern")
    layer_of = {id(p): i for i, (name, p) in enumerate(model.named_parameters())}
    order = []
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(lambda t: order.append(layer_of[id(t)] // 2))
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    fastconv.nn.functional.cross_entropy(model(fastconv.Tensor(x)), np.array([1, 2])).backward()
    assert len(order) == 10 and order == sorted(order, reverse=True), order


def test_failed_backward_drops_queued_callbacks():
    w = fastconv.Tensor(np.ones(2, np.float32), requires_grad=True)
    ran = []
    w.register_post_accumulate_grad_hook(lambda t: fastconv.autograd.queue_callback(lambda: ran.append(1)))

    def boom(t):
        raise RuntimeError("hook failed")

    w.register_post_accumulate_grad_hook(boom)
    with pytest.raises(RuntimeError, match="hook failed"):
        (w * 2).sum().backward()
    assert ran == [] and fastconv.autograd._end_of_backward_callbacks == []


# ---- float32 arithmetic on every backend against numpy in float64 --------------------------------------


def _numeric_grads(f, arrays, g, eps=1e-6):
    """Gradients of sum(f(*arrays) * g) with respect to each array, by central differences in float64."""
    grads = []
    for a in arrays:
        grad = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            saved = a[i]
            a[i] = saved + eps
            up = np.sum(f(*arrays) * g)
            a[i] = saved - eps
            down = np.sum(f(*arrays) * g)
            a[i] = saved
            grad[i] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


# name: (the expression on Tensors, the same in numpy, the input shapes); the second input is shifted
# to 3 +- 1, away from zero for the divisions.
EXPRESSIONS = {
    "broadcast_arithmetic": (lambda x, y: (x * y - x / y + 2.0 - y) ** 2, None, [(2, 3, 4, 5), (3, 1, 1)]),
    "scalars_on_both_sides": (lambda x, y: 2.0 - x * 3.0 + 1.0 / (x * x + 1.0) - (-x) ** 3 + y / 2.0, None,
                              [(3, 4), (4,)]),
    "sum_over_axes": (lambda x, y: (x + y).sum(axis=(0, 2)) * 0.5, None, [(2, 3, 4, 5), (3, 1, 1)]),
    "mean_keepdims": (lambda x, y: x.mean(axis=1, keepdims=True) + y.mean(), None, [(2, 3, 4, 5), (3, 1, 1)]),
    "reshape_transpose_flatten": (lambda x, y: x.reshape(6, 20).T.flatten() * y.sum(), None, [(2, 3, 4, 5), (2,)]),
    "flatten_from_dim_1": (lambda x, y: fastconv.nn.functional.flatten(x) * y, lambda x, y: x.reshape(2, -1) * y,
                           [(2, 3, 4, 5), (60,)]),
    "cat": (lambda x, y: fastconv.cat([x, x * 2.0, y], dim=1), lambda x, y: np.concatenate([x, x * 2.0, y], 1),
            [(2, 3, 4), (2, 5, 4)]),
    "matmul": (lambda x, y: x @ y, None, [(7, 5), (5, 3)]),
    "matmul_of_transposes": (lambda x, y: x.T @ y.T, None, [(5, 7), (3, 5)]),
}


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_float32_arithmetic_on_each_backend(rng, device, name):
    """The forward and the autograd backward of sum(out * g) in float32 on ``device`` against the same
    expression in numpy float64 (gradients by central differences); value-scaled bound 1e-5."""
    expr, numpy_expr, shapes = EXPRESSIONS[name]
    numpy_expr = numpy_expr or expr
    arrays = [rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1]) + 3.0]
    arrays = [a.astype(np.float32).astype(np.float64) for a in arrays]  # exactly the float32 inputs
    leaves = [tensor(a.astype(np.float32), device, requires_grad=True) for a in arrays]
    out = expr(*leaves)
    expected = numpy_expr(*arrays)
    g = rng.standard_normal(expected.shape)
    out.backward(on_device(g.astype(np.float32), device))
    assert_close(to_numpy(out, device), expected, SUM_BOUND, what=f"{name} forward")
    for i, (leaf, numeric) in enumerate(zip(leaves, _numeric_grads(numpy_expr, arrays, g))):
        assert_close(to_numpy(leaf.grad, device), numeric, SUM_BOUND, what=f"{name} gradient {i}")


def test_leaf_gradients_accumulate_on_each_backend(rng, device):
    a = rng.standard_normal((4, 3)).astype(np.float32)
    t = tensor(a, device, requires_grad=True)
    for _ in range(2):
        (t * 3.0).sum().backward()
    np.testing.assert_array_equal(to_numpy(t.grad, device), np.full((4, 3), 6.0, np.float32))
