"""Training on fastconv.cuda.Array: the array arithmetic autograd needs, every nn.functional op,
the optimizers, state_dict round trips, transfer accounting and LeNet-5 trained on the device
against the same run on the CPU. Marked `cuda` (skipped without a device); in CI they run on the
CPU stand-in of the CUDA runtime (scripts/cuda_emu)."""

import numpy as np
import pytest

import fastconv
from fastconv import cuda, models, nn, optim
from fastconv.autograd import Tensor, cat
from fastconv.nn import functional as F

pytestmark = pytest.mark.cuda

RTOL = 1e-4  # float32 kernels against float64 references or the CPU backend


def assert_close(actual, ref, rtol=RTOL, what=""):
    """|actual - ref| <= rtol * (|ref| + mean |ref|): relative, with a floor at the tensor's typical
    magnitude so that entries near zero are judged on the tensor's scale."""
    actual = actual.numpy() if isinstance(actual, (cuda.Array, Tensor)) else np.asarray(actual)
    ref = ref.numpy() if isinstance(ref, Tensor) else np.asarray(ref)
    assert actual.shape == ref.shape, (what, actual.shape, ref.shape)
    ref64 = ref.astype(np.float64)
    scale = np.abs(ref64).mean() if ref64.size else 0.0
    bound = rtol * (np.abs(ref64) + scale) + 1e-30
    err = np.abs(actual.astype(np.float64) - ref64)
    assert np.all(err <= bound), f"{what}: max error {err.max()} over bound at {np.unravel_index(np.argmax(err / bound), err.shape)}"


def dev(x):
    """`x` on the device as float32 (int64 kept); np.array keeps 0-d arrays 0-d."""
    x = np.asarray(x)
    return cuda.to_device(np.array(x, dtype=np.int64 if x.dtype == np.int64 else np.float32))


# ---- Array arithmetic ------------------------------------------------------------------------------------

BROADCASTS = [((3, 4), (3, 4)), ((2, 3, 4, 5), (3, 1, 1)), ((2, 3, 4, 5), (1, 3, 1, 1)), ((5, 7), (7,)),
              ((4, 1), (1, 6)), ((2, 3), ()), ((), ()), ((0, 3), (3,)), ((1, 1, 9), (2, 5, 1))]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("sa,sb", BROADCASTS, ids=str)
def test_binary_broadcasting(rng, op, sa, sb):
    a = rng.standard_normal(sa).astype(np.float32)
    b = (rng.standard_normal(sb) + 3.0).astype(np.float32)  # away from 0 for div
    ref = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op](
        a.astype(np.float64), b.astype(np.float64))
    out = getattr(dev(a), f"__{'truediv' if op == 'div' else op}__")(dev(b))
    assert_close(out, ref, 1e-6, op)


@pytest.mark.parametrize("s", [2.5, -1.0, np.float32(0.5), np.array(3.0, np.float32)], ids=str)
def test_scalar_operands_on_both_sides(rng, s):
    a = rng.standard_normal((3, 5)).astype(np.float32) + 4.0
    d = dev(a)
    for got, ref in [(d + s, a + s), (s + d, s + a), (d - s, a - s), (s - d, s - a), (d * s, a * s), (s * d, s * a),
                     (d / s, a / s), (s / d, s / a), (-d, -a), (d ** 2, a ** 2), (d ** 0.5, a ** 0.5)]:
        assert_close(got, ref.astype(np.float64), 1e-6)


def test_division_by_zero_scalar_gives_inf():
    got = (dev(np.array([1.0, -1.0, 0.0])) / 0.0).numpy()
    assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2])


def test_mixing_numpy_arrays_is_refused(rng):
    d = dev(rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match="numpy array.*to_device"):
        d + np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="numpy array"):
        np.ones((2, 3), np.float32) * d
    with pytest.raises(ValueError, match="do not broadcast"):
        d + dev(np.ones((4,)))
    with pytest.raises(TypeError):
        np.maximum(d, 0)


@pytest.mark.parametrize("shape,axis", [((5, 7), None), ((5, 7), 0), ((5, 7), 1), ((2, 3, 4, 5), (0, 2, 3)),
                                        ((2, 3, 4, 5), (1,)), ((3, 300, 2), 1), ((1000,), 0), ((4, 0, 2), 1),
                                        ((2, 3), -1)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(rng, shape, axis, keepdims):
    x = rng.standard_normal(shape).astype(np.float32)
    d = dev(x)
    x64 = x.astype(np.float64)
    assert_close(d.sum(axis=axis, keepdims=keepdims), x64.sum(axis=axis, keepdims=keepdims), 1e-5, "sum")
    if x.size:
        assert_close(d.mean(axis=axis, keepdims=keepdims), x64.mean(axis=axis, keepdims=keepdims), 1e-5, "mean")
        assert_close(d.max(axis=axis, keepdims=keepdims), x64.max(axis=axis, keepdims=keepdims), 0, "max")


def test_copies_transpose_broadcast_slice_concatenate(rng):
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    y = rng.standard_normal((3, 2, 4)).astype(np.float32)
    np.testing.assert_array_equal(dev(x[0]).T.numpy(), x[0].T)
    np.testing.assert_array_equal(cuda.ops.broadcast_to(dev(x[:, :1]), (3, 5, 4)).numpy(), np.broadcast_to(x[:, :1], (3, 5, 4)))
    np.testing.assert_array_equal(cuda.ops.take_slice(dev(x), 1, 1, 4).numpy(), x[:, 1:4])
    np.testing.assert_array_equal(cuda.ops.concatenate([dev(x), dev(y)], 1).numpy(), np.concatenate([x, y], 1))
    idx = np.arange(12, dtype=np.int64).reshape(3, 4)
    np.testing.assert_array_equal(cuda.ops.take_slice(cuda.to_device(idx), 0, 1, 3).numpy(), idx[1:3])


def test_argmax_and_correct_count(rng):
    x = rng.standard_normal((37, 10)).astype(np.float32)
    x[3, 4] = x[3, 7] = 50.0  # a tie: the first index wins, as numpy
    labels = rng.integers(0, 10, 37)
    np.testing.assert_array_equal(dev(x).argmax().numpy(), x.argmax(-1))
    expected = np.count_nonzero(x.argmax(-1) == labels)
    assert F.correct_count(Tensor(dev(x)), cuda.to_device(labels)).item() == expected
    assert F.correct_count(Tensor(x), labels).item() == expected


def test_in_place_updates(rng):
    a, b = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    d = dev(a)
    d += dev(b)
    d += 1.5
    d *= 2.0
    assert_close(d, (a.astype(np.float64) + b + 1.5) * 2, 1e-6)
    cuda.ops.axpby(0.1, dev(b), 0.9, d)
    assert_close(d, 0.1 * b.astype(np.float64) + 0.9 * (a.astype(np.float64) + b + 1.5) * 2, 1e-6)
    counter = cuda.to_device(np.zeros((), np.int64))
    counter += 1
    counter += 2
    assert counter.numpy() == 3
    with pytest.raises(ValueError, match="differ"):
        d += dev(np.ones(3))


def test_dropout_mask_is_drawn_on_the_device(rng):
    x = rng.standard_normal((64, 257)).astype(np.float32)
    cuda.reset_transfer_counts()
    y, mask = cuda.ops.dropout(dev(x), 0.3, seed=1234)
    assert cuda.transfer_counts() == {"host_to_device": 1, "device_to_host": 0}  # only x
    m = mask.numpy()
    assert set(np.unique(m)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((m == 0).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(y.numpy(), x * m)
    np.testing.assert_array_equal(cuda.ops.dropout(dev(x), 0.3, seed=1234)[1].numpy(), m)  # same seed, same mask
    assert not np.array_equal(cuda.ops.dropout(dev(x), 0.3, seed=99)[1].numpy(), m)


# ---- autograd and nn.functional on the device against the CPU -------------------------------------------

def run_both(fn, *arrays):
    """fn(*tensors) on the CPU and on the device, then backward of sum(out * w) for a fixed random w;
    returns (cpu out, device out, cpu grads, device grads)."""
    results = []
    for device in ("cpu", "cuda"):
        ts = [Tensor(a if device == "cpu" else dev(a), requires_grad=True) for a in arrays]
        out = fn(*ts)
        w = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
        (out * Tensor(w).to(device)).sum().backward()
        results.append((out, [t.grad for t in ts]))
    (oc, gc), (od, gd) = results
    return oc, od, gc, gd


def check_both(fn, *arrays, rtol=RTOL):
    oc, od, gc, gd = run_both(fn, *arrays)
    assert isinstance(od.data, cuda.Array)
    assert_close(od, oc, rtol, "forward")
    for i, (a, b) in enumerate(zip(gd, gc)):
        if b is None:  # an input the output does not depend on
            assert a is None
            continue
        assert isinstance(a, cuda.Array), f"gradient {i} left the device"
        assert_close(a, b, rtol, f"gradient {i}")


def test_tensor_arithmetic_and_shapes(rng):
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((3, 1, 1)).astype(np.float32) + 3
    check_both(lambda x, y: (x * y - x / y + 2.0 - y) ** 2, a, b)
    check_both(lambda x, y: (x + y).sum(axis=(0, 2)) * 0.5, a, b)
    check_both(lambda x, y: x.mean(axis=1, keepdims=True) + y.mean(), a, b)
    check_both(lambda x, y: x.reshape(6, 20).T.flatten(), a, b)
    check_both(lambda x, y: cat([x, x * 2.0], dim=1), a, b)
    m1, m2 = rng.standard_normal((7, 5)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    check_both(lambda x, y: x @ y, m1, m2)


def test_leaf_gradients_accumulate_on_device(rng):
    a = rng.standard_normal((4, 3)).astype(np.float32)
    t = Tensor(dev(a), requires_grad=True)
    for _ in range(2):
        (t * 3.0).sum().backward()
    assert isinstance(t.grad, cuda.Array)
    np.testing.assert_allclose(t.grad.numpy(), np.full((4, 3), 6.0))


@pytest.mark.parametrize("name", ["linear", "conv2d", "conv1d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
                                  "relu", "leaky_relu", "sigmoid", "tanh", "log_softmax", "mse_loss",
                                  "cross_entropy_mean", "cross_entropy_sum", "flatten"])
def test_functional_ops_match_cpu(rng, name):
    x4 = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    cases = {
        "linear": (lambda x, w, b: F.linear(x, w, b), rng.standard_normal((6, 11)), rng.standard_normal((5, 11)),
                   rng.standard_normal(5)),
        "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)), x4,
                   rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)),
        "conv1d": (lambda x, w, b: F.conv1d(x, w, b, padding=2), rng.standard_normal((2, 3, 17)),
                   rng.standard_normal((4, 3, 5)), rng.standard_normal(4)),
        "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True), x4),
        "avg_pool2d": (lambda x: F.avg_pool2d(x, 2, count_include_pad=False, padding=1), x4),
        "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), x4),
        "relu": (F.relu, x4),
        "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), x4),
        "sigmoid": (F.sigmoid, x4),
        "tanh": (F.tanh, x4),
        "log_softmax": (F.log_softmax, rng.standard_normal((6, 5)) * 10),
        "mse_loss": (F.mse_loss, rng.standard_normal((6, 5)), rng.standard_normal((6, 5))),
        "cross_entropy_mean": (lambda z: F.cross_entropy(z, labels), rng.standard_normal((6, 5)) * 3),
        "cross_entropy_sum": (lambda z: F.cross_entropy(z, labels, reduction="sum"), rng.standard_normal((6, 5))),
        "flatten": (lambda x: F.flatten(x), x4),
    }
    fn, *arrays = cases[name]
    check_both(fn, *[np.asarray(a, np.float32) for a in arrays])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_batch_norm2d_matches_cpu(rng, training, relu):
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32) * 2 + 1
    gamma, beta = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    stats = {d: (np.full(4, 0.5, np.float32), np.full(4, 2.0, np.float32)) for d in ("cpu", "cuda")}
    dev_stats = tuple(cuda.to_device(s) for s in stats["cuda"])
    check_both(lambda xt, gt, bt: F.batch_norm2d(
        xt, gt, bt, *(dev_stats if isinstance(xt.data, cuda.Array) else stats["cpu"]), training, 0.1, 1e-5, relu=relu),
        x, gamma, beta)
    for cpu_stat, dev_stat in zip(stats["cpu"], dev_stats):  # each ran forward once
        assert_close(dev_stat, cpu_stat, RTOL, "running statistics")


def test_batchnorm_module_and_dropout_module_on_device(rng):
    bn = nn.BatchNorm2d(3).to("cuda")
    x = Tensor(dev(rng.standard_normal((4, 3, 5, 5))))
    bn(x)
    assert isinstance(bn.running_mean, cuda.Array) and bn.num_batches_tracked.numpy() == 1
    drop = nn.Dropout(0.5)
    y = drop(Tensor(dev(np.ones((8, 100))), requires_grad=True))
    assert isinstance(y.data, cuda.Array)
    kept = y.numpy() != 0
    np.testing.assert_array_equal(y.numpy()[kept], 2.0)
    y.sum().backward()


def test_unsupported_op_names_itself():
    with pytest.raises(TypeError, match="pad"):
        F.pad(Tensor(dev(np.ones((1, 1, 3, 3)))), (1, 1))


# ---- optimizers, state dicts -------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.5, dampening=0.3),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
], ids=["sgd", "sgd_momentum_wd", "nesterov", "dampening", "adam", "adamw"])
def test_optimizers_match_cpu(rng, make):
    w0 = rng.standard_normal((5, 7)).astype(np.float32)
    grads = [rng.standard_normal((5, 7)).astype(np.float32) for _ in range(3)]
    results = []
    for device in ("cpu", "cuda"):
        p = nn.Parameter(w0.copy())
        if device == "cuda":
            p.data = cuda.to_device(p.data)
        opt = make([p])
        for g in grads:
            p.grad = g.copy() if device == "cpu" else cuda.to_device(g)
            opt.step()
        if device == "cuda":
            assert isinstance(p.data, cuda.Array)
            assert all(isinstance(v, cuda.Array) for s in opt.state.values() for v in s.values() if hasattr(v, "shape"))
        results.append(p.numpy())
    assert_close(results[1], results[0], 1e-5, "parameters")


def test_state_dict_round_trips_between_devices(rng, tmp_path):
    fastconv.manual_seed(3)
    cpu_model = models.LeNet5()
    dev_model = models.LeNet5().to("cuda")
    dev_model.load_state_dict(cpu_model.state_dict())  # host arrays copied onto the device
    assert all(isinstance(p.data, cuda.Array) for p in dev_model.parameters())
    state = dev_model.state_dict()  # host numpy copies
    assert all(isinstance(v, np.ndarray) for v in state.values())
    for k, v in cpu_model.state_dict().items():
        np.testing.assert_array_equal(state[k], v)
    path = fastconv.save({k: p.data for k, p in dev_model.named_parameters()}, tmp_path / "w")
    back = models.LeNet5()
    back.load_state_dict(fastconv.load(path))
    for k, v in cpu_model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)
    dev_model.to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in dev_model.parameters())


# ---- whole training steps -------------------------------------------------------------------------------

def _batches(n_steps, batch, seed=0):
    """Fashion-MNIST-shaped synthetic data (28x28 grayscale in [0, 1), 10 classes) with a learnable
    signal: each class brightens its own band of rows."""
    rng = np.random.default_rng(seed)
    for _ in range(n_steps):
        labels = rng.integers(0, 10, batch)
        x = rng.random((batch, 1, 28, 28), dtype=np.float32) * 0.5
        for i, c in enumerate(labels):
            x[i, 0, 2 * c + 4: 2 * c + 7] += 0.5
        yield x, labels.astype(np.int64)


def _train(model, device, batches, lr=0.05):
    """Plain SGD-momentum steps; returns the loss of each step (read after the run on the device)."""
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for x, labels in batches:
        xt = Tensor(x).to(device)
        yt = labels if device == "cpu" else cuda.to_device(labels)
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.data)
    return np.array([np.asarray(l.numpy() if isinstance(l, cuda.Array) else l) for l in losses])


def _twin_lenets(seed=0):
    fastconv.manual_seed(seed)
    cpu_model = models.LeNet5()
    dev_model = models.LeNet5().to("cuda")
    dev_model.load_state_dict(cpu_model.state_dict())
    return cpu_model, dev_model


def test_one_lenet_step_uploads_only_input_and_labels():
    _, model = _twin_lenets()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    (x, labels), = _batches(1, 8)
    cuda.reset_transfer_counts()
    for _ in range(2):  # the second step also has momentum state
        xt = Tensor(x).to("cuda")
        yt = cuda.to_device(labels)
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert cuda.transfer_counts() == {"host_to_device": 4, "device_to_host": 0}
    assert np.isfinite(loss.item())
    assert cuda.transfer_counts()["device_to_host"] == 1


def test_lenet_20_steps_on_device_match_cpu():
    """The bar: 20 SGD-momentum steps of LeNet-5 from the same weights on the same batches; every
    step's loss and every final parameter agree with the CPU run to 1e-4 (value-scaled)."""
    cpu_model, dev_model = _twin_lenets()
    cpu_losses = _train(cpu_model, "cpu", _batches(20, 16))
    dev_losses = _train(dev_model, "cuda", _batches(20, 16))
    assert cpu_losses[-1] < cpu_losses[0]  # it learns, so the comparison is not of untouched weights
    np.testing.assert_allclose(dev_losses, cpu_losses, rtol=1e-4, atol=0)
    dev_state = dev_model.state_dict()
    for k, v in cpu_model.state_dict().items():
        assert_close(dev_state[k], v, 1e-4, k)


def _fashion_subset(n):
    """The first n training images of Fashion-MNIST when the dataset is on this machine, else None."""
    import gzip
    import os

    root = "/usr/share/datasets/fashion-mnist"
    images, labels = os.path.join(root, "train-images-idx3-ubyte.gz"), os.path.join(root, "train-labels-idx1-ubyte.gz")
    if not (os.path.exists(images) and os.path.exists(labels)):
        return None
    with gzip.open(images) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16)[: n * 784].reshape(n, 1, 28, 28).astype(np.float32) / 255
    with gzip.open(labels) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n].astype(np.int64)
    return x, y


def test_lenet_one_epoch_mean_loss_matches_cpu():
    """One epoch over 512 images (Fashion-MNIST's first 512 when present, else synthetic), batch 128."""
    data = _fashion_subset(512)
    if data is None:
        batches = list(_batches(4, 128, seed=5))
    else:
        batches = [(data[0][i:i + 128], data[1][i:i + 128]) for i in range(0, 512, 128)]
    cpu_model, dev_model = _twin_lenets(1)
    cpu_mean = _train(cpu_model, "cpu", batches).mean()
    dev_mean = _train(dev_model, "cuda", batches).mean()
    assert abs(dev_mean - cpu_mean) <= 1e-4 * abs(cpu_mean)


@pytest.mark.parametrize("build", [lambda: models.LeNet5(variant="classic"), lambda: models.MLP()],
                         ids=["lenet_classic", "mlp"])
def test_other_small_models_step_on_device(build):
    fastconv.manual_seed(2)
    cpu_model = build()
    dev_model = build().to("cuda")
    dev_model.load_state_dict(cpu_model.state_dict())
    batches = list(_batches(2, 8, seed=3))
    cpu_losses = _train(cpu_model, "cpu", batches)
    dev_losses = _train(dev_model, "cuda", batches)
    np.testing.assert_allclose(dev_losses, cpu_losses, rtol=1e-4)
    for k, v in cpu_model.state_dict().items():
        assert_close(dev_model.state_dict()[k], v, 1e-4, k)
