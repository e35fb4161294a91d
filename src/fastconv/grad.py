"""Gradients of the operators, with the argument order of ``torch.nn.grad``.

``conv2d_input`` and ``conv2d_weight`` give the gradients of ``fastconv.conv2d`` with respect to
its input and its weight; the bias gradient is ``grad_output.sum(axis=(0, 2, 3))``.
``max_pool2d``, ``avg_pool2d`` and ``adaptive_avg_pool2d`` give the input gradients of the pooling
functions of the same names; ``conv1d_input``, ``conv1d_weight`` and ``kmax_pool`` those of
``fastconv.conv1d`` and ``fastconv.kmax_pool``; ``conv_transpose2d_input`` and ``conv_transpose2d_weight``
those of ``fastconv.conv_transpose2d``.
"""

from __future__ import annotations

from .conv import conv2d_input, conv2d_weight
from .conv1d import conv1d_input, conv1d_weight  # height-1 views of the 2-D gradients
from .conv_transpose import conv_transpose2d_input, conv_transpose2d_weight
from .kmax import kmax_pool_backward as kmax_pool
from .pooling import adaptive_avg_pool2d_backward as adaptive_avg_pool2d
from .pooling import avg_pool2d_backward as avg_pool2d
from .pooling import max_pool2d_backward as max_pool2d

__all__ = ["conv2d_input", "conv2d_weight", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "conv1d_input",
           "conv1d_weight", "kmax_pool", "conv_transpose2d_input", "conv_transpose2d_weight"]
