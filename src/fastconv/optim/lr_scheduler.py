"""Learning-rate schedules, stepped once per epoch (closed forms, as in PyTorch)."""

from __future__ import annotations

import math

from .._validation import require_int


class LRScheduler:
    """Sets each parameter group's "lr" from its initial value and the epoch count."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def step(self) -> None:
        """Advance one epoch."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list:
        return [g["lr"] for g in self.optimizer.param_groups]


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = require_int(step_size, "step_size", 1)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = require_int(T_max, "T_max", 1)
        self.eta_min = float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]
