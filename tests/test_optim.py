"""Optimizer steps against values computed by hand from the published update rules, and schedules;
each optimizer's float32 steps on every backend (the ``device`` fixture) against the rules in float64."""

import math

import numpy as np
import pytest

from fastconv import Tensor, optim
from fastconv.nn import Parameter
from toolkit import SUM_BOUND, assert_close, on_device, to_numpy


def param(values, grad):
    p = Parameter(np.array(values, np.float64))
    p.grad = np.array(grad, np.float64)
    return p


def test_sgd_plain_and_weight_decay():
    p = param([1.0, -2.0], [0.5, 0.25])
    optim.SGD([p], lr=0.1, weight_decay=0.1).step()
    # d = g + 0.1 * p = [0.6, 0.05]; p -= 0.1 * d
    np.testing.assert_allclose(p.data, [0.94, -2.005])


def test_sgd_momentum_two_steps():
    p = param([1.0], [1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()  # buf = 1, p = 0.9
    p.grad = np.array([0.5])
    opt.step()  # buf = 0.9 + 0.5 = 1.4, p = 0.9 - 0.14
    np.testing.assert_allclose(p.data, [0.76])


def test_sgd_nesterov_two_steps():
    p = param([1.0], [1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    opt.step()  # buf = 1, d = 1 + 0.9 = 1.9, p = 0.81
    p.grad = np.array([0.5])
    opt.step()  # buf = 1.4, d = 0.5 + 1.26 = 1.76, p = 0.81 - 0.176
    np.testing.assert_allclose(p.data, [0.634])


def test_adam_two_steps():
    p = param([1.0, 2.0], [0.1, -0.2])
    opt = optim.Adam([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    opt.step()
    # Step 1: m_hat = g, v_hat = g^2, update = lr * g / (|g| + eps), about lr * sign(g)
    np.testing.assert_allclose(p.data, [1 - 0.01 * 0.1 / (0.1 + 1e-8), 2 + 0.01 * 0.2 / (0.2 + 1e-8)], rtol=1e-12)
    p.grad = np.array([0.3, 0.0])
    opt.step()
    m = 0.9 * np.array([0.01, -0.02]) + 0.1 * np.array([0.3, 0.0])
    v = 0.999 * 0.001 * np.array([0.01, 0.04]) + 0.001 * np.array([0.09, 0.0])
    update = 0.01 * (m / (1 - 0.81)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(p.data, np.array([0.99, 2.01]) - update, rtol=1e-7)


def test_adam_l2_vs_adamw_decoupled():
    a = param([1.0], [0.0])
    optim.Adam([a], lr=0.1, weight_decay=0.5).step()
    # L2: g = 0 + 0.5 * 1 = 0.5 -> first Adam step moves by lr * sign(g)
    np.testing.assert_allclose(a.data, [0.9], rtol=1e-6)
    w = param([1.0], [0.0])
    optim.AdamW([w], lr=0.1, weight_decay=0.5).step()
    # decoupled: p *= 1 - 0.1 * 0.5, then a zero-gradient Adam step changes nothing
    np.testing.assert_allclose(w.data, [0.95])


def test_float32_parameters_stay_float32_and_in_place():
    p = Parameter(np.ones(3, np.float32))
    p.grad = np.full(3, 0.5, np.float32)
    buf = p.data
    for opt in (optim.SGD([p], 0.1, momentum=0.9, weight_decay=1e-4), optim.Adam([p]), optim.AdamW([p])):
        opt.step()
    assert p.data is buf and p.data.dtype == np.float32


def test_skips_params_without_grad_and_zero_grad():
    p = param([1.0], [1.0])
    q = Parameter(np.array([2.0]))
    opt = optim.SGD([p, q], lr=1.0)
    opt.step()
    assert q.data[0] == 2.0
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_and_bad_arguments():
    p, q = param([1.0], [1.0]), param([1.0], [1.0])
    optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1).step()
    np.testing.assert_allclose([p.data[0], q.data[0]], [0.9, 0.5])
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(TypeError, match="requires_grad"):
        optim.SGD([Tensor(np.ones(1))], lr=0.1)


def test_step_lr_and_cosine():
    p = param([1.0], [1.0])
    opt = optim.SGD([p], lr=1.0)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    opt = optim.Adam([p], lr=0.2)
    cos = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.02)
    got = []
    for _ in range(5):
        got.append(opt.param_groups[0]["lr"])
        cos.step()
    want = [0.02 + 0.18 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
])
def test_fused_float32_kernels_match_float64_formulas(rng, make):
    # Float32 parameters go through the fused C++ updates, float64 through numpy: same rule.
    w0 = rng.standard_normal(40000)  # large enough to be split across threads
    grads = [rng.standard_normal(w0.size) for _ in range(3)]
    p32, p64 = Parameter(w0.astype(np.float32)), Parameter(w0.copy())
    o32, o64 = make([p32]), make([p64])
    for g in grads:
        p32.grad, p64.grad = g.astype(np.float32), g.copy()
        o32.step()
        o64.step()
    np.testing.assert_allclose(p32.data, p64.data, rtol=1e-5, atol=1e-6)


# ---- every optimizer on every backend against the published rules in float64 ------------------------------


def sgd_ref(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """torch.optim.SGD's documented update, step by step, in float64."""
    p, buf = p.astype(np.float64), None
    for g in grads:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def adam_ref(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """torch.optim.Adam's (decoupled: AdamW's) documented update, step by step, in float64."""
    (b1, b2), p = betas, p.astype(np.float64)
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p = p - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return p


OPTIMIZERS = {
    "sgd": (lambda ps: optim.SGD(ps, lr=0.1), lambda p, gs: sgd_ref(p, gs, 0.1)),
    "sgd_weight_decay": (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.01), lambda p, gs: sgd_ref(p, gs, 0.1, weight_decay=0.01)),
    "momentum": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4),
                 lambda p, gs: sgd_ref(p, gs, 0.1, 0.9, weight_decay=1e-4)),
    "momentum_dampening": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
                           lambda p, gs: sgd_ref(p, gs, 0.1, 0.9, 0.3, 0.01)),
    "nesterov": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                 lambda p, gs: sgd_ref(p, gs, 0.1, 0.9, 0.0, 0.01, nesterov=True)),
    "adam": (lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.01), lambda p, gs: adam_ref(p, gs, 0.1, weight_decay=0.01)),
    "adam_betas": (lambda ps: optim.Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6),
                   lambda p, gs: adam_ref(p, gs, 0.1, (0.8, 0.99), 1e-6)),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.1),
              lambda p, gs: adam_ref(p, gs, 0.1, weight_decay=0.1, decoupled=True)),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_steps_on_each_backend_match_the_rule(rng, device, name):
    """Three steps (the first differs: momentum buffers and moments start there) of float32 parameters
    on ``device``: the parameters, updated in place, against the rule in float64; the state stays on
    the parameter's device."""
    make, rule = OPTIMIZERS[name]
    w0 = rng.standard_normal((5, 7)).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(3)]
    p = Parameter(w0.copy())
    p.data = on_device(p.data, device)
    data = p.data
    opt = make([p])
    for g in grads:
        p.grad = on_device(g.copy(), device)
        opt.step()
    assert p.data is data  # in place
    for state in opt.state.values():
        for value in state.values():
            if hasattr(value, "shape") and value.shape == w0.shape:
                to_numpy(value, device)  # asserts it lives on the parameter's device
    expected = rule(w0, [g.astype(np.float64) for g in grads])
    got = to_numpy(p.data, device)
    assert_close(got, expected, SUM_BOUND, what=name)
    # The update itself, on its own scale (a few tenths: learning rates of 0.1), so that an error in
    # it is not hidden under the parameters' magnitude.
    assert_close(got - w0.astype(np.float64), expected - w0, SUM_BOUND, what=f"{name} update")


def test_float64_rules_match_the_hand_computed_steps():
    """The references above against the steps computed by hand at the top of this file."""
    np.testing.assert_allclose(sgd_ref(np.array([1.0, -2.0]), [np.array([0.5, 0.25])], 0.1, weight_decay=0.1), [0.94, -2.005])
    np.testing.assert_allclose(sgd_ref(np.array([1.0]), [np.array([1.0]), np.array([0.5])], 0.1, 0.9), [0.76])
    np.testing.assert_allclose(sgd_ref(np.array([1.0]), [np.array([1.0]), np.array([0.5])], 0.1, 0.9, nesterov=True), [0.634])
    np.testing.assert_allclose(adam_ref(np.array([1.0]), [np.array([0.0])], 0.1, weight_decay=0.5), [0.9], rtol=1e-6)
    np.testing.assert_allclose(adam_ref(np.array([1.0]), [np.array([0.0])], 0.1, weight_decay=0.5, decoupled=True), [0.95])
