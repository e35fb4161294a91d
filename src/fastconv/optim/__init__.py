"""Optimizers (SGD with momentum/Nesterov/weight decay, Adam, AdamW) updating parameters in place.

Formulas follow PyTorch's documentation exactly, so the same hyper-parameters mean the same thing.
Float32 parameters are updated in place by one fused C++ call each (csrc/nn/nn_ops.cpp); other
dtypes (float64 in tests) by the same formulas in numpy. Parameters on the GPU (fastconv.cuda.Array)
are updated by the device kernels (cuda/elementwise.cu), and their state (momentum buffers, Adam
moments) is created on the parameter's device and stays there.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from .. import _cuda_ops as _dev
from .._cuda_array import Array as _DeviceArray
from .._cuda_array import full as _device_full
from .._validation import require_finite
from ..nn.modules import Parameter
from . import lr_scheduler


class Optimizer:
    """Holds parameter groups (dicts with "params" and hyper-parameters) and per-parameter state."""

    def __init__(self, params, defaults: dict):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for g in groups:
            group = {**defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Parameter) and not getattr(p, "requires_grad", False):
                    raise TypeError(f"{type(self).__name__}: parameters must be Tensors with requires_grad=True, got {type(p).__name__}")
            self.param_groups.append(group)
        self.state = {}  # id(param) -> dict of arrays

    def zero_grad(self) -> None:
        """Drop every gradient (the next backward writes fresh ones)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        raise NotImplementedError


def _check_lr(lr, name="lr"):
    lr = require_finite(lr, name)
    if lr < 0:
        raise ValueError(f"{name}: must be >= 0, got {lr}")
    return lr


def _fused(w, g) -> bool:
    return (isinstance(w, np.ndarray) and w.dtype == np.float32 and w.flags.c_contiguous and w.flags.writeable
            and isinstance(g, np.ndarray) and g.dtype == np.float32 and g.flags.c_contiguous and g.shape == w.shape)


class SGD(Optimizer):
    """Stochastic gradient descent: d = g + wd * p; buf = momentum * buf + (1 - dampening) * d
    (buf = d on the first step); d = d + momentum * buf if nesterov else buf; p -= lr * d."""

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=_check_lr(lr), momentum=_check_lr(momentum, "momentum"),
                                      dampening=require_finite(dampening, "dampening"),
                                      weight_decay=_check_lr(weight_decay, "weight_decay"), nesterov=bool(nesterov)))

    def step(self) -> None:
        for group in self.param_groups:
            lr, mom, damp, wd, nesterov = (group[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov"))
            for p in group["params"]:
                if p.grad is None:
                    continue
                w, g = p.data, p.grad
                if isinstance(w, _DeviceArray):
                    state = self.state.get(id(p))
                    first = state is None
                    if first:
                        state = self.state[id(p)] = {"momentum_buffer": _device_full(w.shape, 0.0, w.device) if mom else None}
                    _dev.sgd_step(w, g, state["momentum_buffer"], lr=lr, momentum=mom, dampening=damp, weight_decay=wd,
                                  nesterov=nesterov, first_step=first)
                    continue
                if _fused(w, g):
                    state = self.state.get(id(p))
                    first = state is None
                    if first:
                        state = self.state[id(p)] = {"momentum_buffer": np.empty_like(w)}
                    _core.sgd_step(w, g, state["momentum_buffer"], lr, mom, damp, wd, nesterov, first)
                    continue
                if wd:
                    g = g + w.dtype.type(wd) * w
                if mom:
                    state = self.state.get(id(p))
                    if state is None:
                        buf = np.array(g, dtype=w.dtype, copy=True)
                        self.state[id(p)] = {"momentum_buffer": buf}
                    else:
                        buf = state["momentum_buffer"]
                        buf *= mom
                        buf += (1 - damp) * g if damp else g
                    g = g + mom * buf if nesterov else buf
                w -= w.dtype.type(lr) * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay adds wd * p to the gradient (L2)."""

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        b1, b2 = (require_finite(b, "betas") for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas: each must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=_check_lr(lr), betas=(b1, b2), eps=_check_lr(eps, "eps"),
                                      weight_decay=_check_lr(weight_decay, "weight_decay")))

    def step(self) -> None:
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                w, g = p.data, p.grad
                state = self.state.get(id(p))
                on_device = isinstance(w, _DeviceArray)
                if state is None:
                    zeros = (lambda: _device_full(w.shape, 0.0, w.device)) if on_device else (lambda: np.zeros_like(w))
                    state = self.state[id(p)] = {"step": 0, "exp_avg": zeros(), "exp_avg_sq": zeros()}
                state["step"] += 1
                t = state["step"]
                if on_device:
                    _dev.adam_step(w, g, state["exp_avg"], state["exp_avg_sq"], step=t, lr=lr, beta1=b1, beta2=b2, eps=eps,
                                   weight_decay=wd, decoupled=self.decoupled)
                    continue
                if _fused(w, g):
                    _core.adam_step(w, g, state["exp_avg"], state["exp_avg_sq"], lr, b1, b2, eps, wd, self.decoupled,
                                    1 - b1**t, 1 - b2**t)
                    continue
                if wd:
                    if self.decoupled:
                        w *= w.dtype.type(1 - lr * wd)
                    else:
                        g = g + w.dtype.type(wd) * w
                m, v = state["exp_avg"], state["exp_avg_sq"]
                tmp = np.empty_like(w)
                m *= b1
                m += (1 - b1) * g
                v *= b2
                np.multiply(g, g, out=tmp)
                tmp *= 1 - b2
                v += tmp
                # p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
                np.sqrt(v, out=tmp)
                tmp *= w.dtype.type(1 / math.sqrt(1 - b2**t))
                tmp += eps
                np.divide(m, tmp, out=tmp)
                tmp *= w.dtype.type(lr / (1 - b1**t))
                w -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * wd before the Adam step."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
