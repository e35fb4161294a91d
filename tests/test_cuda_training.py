"""Training on fastconv.cuda.Array: the array arithmetic autograd needs, state_dict round trips,
transfer accounting and LeNet-5 trained on the device against the same run on the CPU (autograd,
every nn.functional op and the optimizers run on each backend in test_autograd.py,
test_functional.py and test_optim.py). Marked `cuda` (skipped without a device); in CI they run on the
CPU stand-in of the CUDA runtime (scripts/cuda_emu)."""

import numpy as np
import pytest

import fastconv
from fastconv import cuda, models, optim
from fastconv.autograd import Tensor
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


def test_argmax(rng):
    x = rng.standard_normal((37, 10)).astype(np.float32)
    x[3, 4] = x[3, 7] = 50.0  # a tie: the first index wins, as numpy
    np.testing.assert_array_equal(dev(x).argmax().numpy(), x.argmax(-1))
    # F.correct_count on each backend: tests/test_functional.py


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


# ---- autograd, nn.functional and the optimizers on the device: tests/test_autograd.py,
# tests/test_functional.py and tests/test_optim.py run them on each backend (the `device` fixture)
# against float64 references.


# ---- optimizers, state dicts -------------------------------------------------------------------------------

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
