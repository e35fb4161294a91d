"""Finite-difference gradient checks through autograd (shared by the layer, loss and model tests)."""

from __future__ import annotations

import numpy as np

import fastconv


def check_gradients(f, inputs, eps, rtol, atol, params=(), samples=12, seed=0):
    """Compare autograd's gradient of sum(f(*inputs) * R) (R random, fixed) with central differences.

    `inputs` are Tensors with requires_grad passed to f, which returns a Tensor; `params` are
    further Tensors (a layer's weights) whose gradients are checked too. The projection onto R makes any
    output shape a scalar, and is computed in float64 so float32 ops lose only their own rounding.
    Checks up to `samples` random entries of every input: |autograd - numeric| <= atol + rtol*|numeric|.
    """
    rng = np.random.default_rng(seed)
    wrt = list(inputs) + list(params)
    out = f(*inputs)
    r = rng.standard_normal(out.shape)
    for t in wrt:
        t.grad = None
    out.backward(r.astype(out.dtype))

    def value():
        with fastconv.no_grad():
            return float((f(*inputs).numpy().astype(np.float64) * r).sum())

    for k, t in enumerate(wrt):
        assert t.grad is not None, f"input {k} got no gradient"
        assert t.grad.shape == t.shape and t.grad.dtype == t.dtype
        flat = t.data.reshape(-1)
        picks = rng.choice(flat.size, size=min(samples, flat.size), replace=False)
        for i in picks:
            saved = flat[i]
            flat[i] = saved + eps
            up = value()
            flat[i] = saved - eps
            down = value()
            flat[i] = saved
            numeric = (up - down) / (2 * eps)
            analytic = float(t.grad.reshape(-1)[i])
            assert abs(analytic - numeric) <= atol + rtol * abs(numeric), (
                f"input {k} element {i}: autograd {analytic:.6g} vs finite difference {numeric:.6g}")
