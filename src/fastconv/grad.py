"""Gradients of fastconv's ops with respect to their inputs (argument order as in torch.nn.grad)."""

from __future__ import annotations

from .pooling import adaptive_avg_pool2d_backward as adaptive_avg_pool2d
from .pooling import avg_pool2d_backward as avg_pool2d
from .pooling import max_pool2d_backward as max_pool2d

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]
