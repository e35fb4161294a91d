"""fastconv.training.fit / evaluate: the same steps as a hand-written loop, max_steps and the
callbacks, the records, no host reads inside a step, and (with a CUDA device, or the CUDA stand-in)
the first 20 steps on cuda.Array matching the CPU run."""

import numpy as np
import pytest

import fastconv
from fastconv import data, models, optim
from fastconv.autograd import Tensor
from fastconv.nn import functional as F
from fastconv.training import evaluate, fit


def synthetic_dataset(n, seed):
    """Ten classes of 28x28 images: a bright square at one of nine places (class 9: none), plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.uniform(0, 0.25, (n, 1, 28, 28)).astype(np.float32)
    for i, y in enumerate(labels):
        if y < 9:
            r, c = 2 + 9 * (y // 3), 2 + 9 * (y % 3)
            images[i, 0, r:r + 7, c:c + 7] = 0.9
    return data.ArrayDataset(images, labels.astype(np.int64), classes=[str(k) for k in range(10)])


def lenet_and_adam(seed=0):
    fastconv.manual_seed(seed)
    model = models.LeNet5()
    return model, optim.Adam(model.parameters(), 3e-3)


def test_fit_takes_the_same_steps_as_a_hand_written_loop():
    train = synthetic_dataset(160, 0)
    model, opt = lenet_and_adam()
    steps = []
    fit(model, train, opt, epochs=2, batch_size=32, seed=5, max_steps=7,
        on_step=lambda step, loss: steps.append((step, loss.item())))

    ref_model, ref_opt = lenet_and_adam()
    ref_losses = []
    loader = data.DataLoader(train, 32, shuffle=True, seed=5)
    for _ in range(2):
        for xb, yb in loader:
            if len(ref_losses) == 7:
                break
            loss = F.cross_entropy(ref_model(Tensor(xb)), yb)
            ref_opt.zero_grad()
            loss.backward()
            ref_opt.step()
            ref_losses.append(loss.item())
    assert [s for s, _ in steps] == list(range(1, 8))
    assert [loss for _, loss in steps] == ref_losses  # bit for bit: the same operations in the same order
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_fit_records_each_epoch_and_stops_at_max_steps():
    train, test = synthetic_dataset(100, 1), synthetic_dataset(30, 2)
    model, opt = lenet_and_adam()
    sched = optim.lr_scheduler.StepLR(opt, 1, 0.5)
    seen = []
    history = fit(model, train, opt, epochs=5, batch_size=40, test_data=test, scheduler=sched, max_steps=4,
                  on_epoch=seen.append, log_every=1)
    # 100 samples in batches of 40: 3 steps a epoch; the 4th step ends the run in epoch 2
    assert [r["epoch"] for r in history] == [1, 2] and seen == history
    assert set(history[0]) == {"epoch", "loss", "train_acc", "test_acc", "seconds", "images_per_s"}
    assert history[0]["images_per_s"] == pytest.approx(100 / history[0]["seconds"])
    assert history[1]["images_per_s"] == pytest.approx(40 / history[1]["seconds"])
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-3 / 4)  # stepped once after each epoch
    acc, _ = evaluate(model, test)
    assert history[-1]["test_acc"] == acc
    assert 0 < history[0]["loss"] < 10 and 0 <= history[0]["train_acc"] <= 1


def test_fit_loss_and_accuracy_are_the_epoch_means():
    """The record's loss is the sample-weighted mean of the steps' losses, its train_acc the share of
    the epoch's samples the logits of their own step classified right (read back after the epoch)."""
    train = synthetic_dataset(90, 3)
    model, opt = lenet_and_adam()
    losses, correct = [], []
    real_forward = model.forward

    def forward(x):
        logits = real_forward(x)
        correct.append(logits)
        return logits

    model.forward = forward
    history = fit(model, train, opt, batch_size=40, seed=1, log_every=2,
                  on_step=lambda step, loss: losses.append(loss.item()))
    labels = [yb for _, yb in data.DataLoader(train, 40, shuffle=True, seed=1)]
    sizes = [len(y) for y in labels]
    assert sizes == [40, 40, 10]
    assert history[0]["loss"] == pytest.approx(sum(l * n for l, n in zip(losses, sizes)) / 90, rel=1e-12)
    hits = sum(int((lg.numpy().argmax(axis=1) == y).sum()) for lg, y in zip(correct, labels))
    assert history[0]["train_acc"] == hits / 90


def test_fit_reads_nothing_back_inside_a_step(monkeypatch):
    """Per-step results stay on their device: with log_every above the step count the losses and
    logits come back in one read each at the end of the epoch (Tensor.numpy is how any Tensor
    reaches the host; item() goes through it)."""
    train = synthetic_dataset(96, 4)
    model, opt = lenet_and_adam()
    reads = []
    real_numpy = Tensor.numpy

    def counting_numpy(self):
        reads.append(self.shape)
        return real_numpy(self)

    monkeypatch.setattr(Tensor, "numpy", counting_numpy)
    fit(model, train, opt, batch_size=32, log_every=100)
    assert reads == [(3,), (96, 10)]


def test_fit_learns_and_evaluate_restores_the_mode():
    train, test = synthetic_dataset(400, 5), synthetic_dataset(100, 6)
    model, opt = lenet_and_adam()
    history = fit(model, train, opt, epochs=3, batch_size=32, test_data=test)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["test_acc"] > 0.8, history
    model.eval()
    acc, preds = evaluate(model, test, batch_size=7)
    assert not model.training and preds.dtype == np.int64 and preds.shape == (100,)
    with fastconv.no_grad():
        expected = model(Tensor(test.images)).numpy().argmax(axis=1)
    np.testing.assert_array_equal(preds, expected)
    assert acc == float((expected == test.labels).mean())
    subset_acc, subset = evaluate(model, test, indices=[3, 1, 4])
    np.testing.assert_array_equal(subset, expected[[3, 1, 4]])
    assert evaluate(model, test, indices=[]) == (0.0, pytest.approx(np.empty(0)))


def test_fit_rejects_bad_limits():
    model, opt = lenet_and_adam()
    train = synthetic_dataset(10, 7)
    with pytest.raises(ValueError, match="max_steps"):
        fit(model, train, opt, max_steps=0)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, train, opt, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, train, batch_size=0)


@pytest.mark.cuda
def test_first_20_steps_on_cuda_match_the_cpu():
    """The bar of issue 18: 20 training steps of LeNet-5 on fastconv.cuda.Array match the CPU run to
    1e-4 in loss and parameters (fit moves nothing to the host inside a step)."""
    train = synthetic_dataset(20 * 16, 8)
    runs = {}
    for device in ("cpu", "cuda"):
        model, opt = lenet_and_adam(seed=3)
        model = model.to(device)
        losses = []
        fit(model, train, opt, batch_size=16, device=device, seed=2, max_steps=20,
            on_step=lambda step, loss: losses.append(loss))
        runs[device] = ([loss.item() for loss in losses], {k: Tensor(v).numpy() for k, v in model.state_dict().items()})
    (cpu_losses, cpu_state), (gpu_losses, gpu_state) = runs["cpu"], runs["cuda"]
    assert len(gpu_losses) == 20
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=0, atol=1e-4)
    for name, value in cpu_state.items():
        np.testing.assert_allclose(gpu_state[name], value, rtol=0, atol=1e-4, err_msg=name)
