"""Layers for sequences (N, C, L): Conv1d and k-max pooling (Kalchbrenner et al. 2014), as autograd
ops next to their backward rules and as Modules."""

from __future__ import annotations

import fastconv as _fc

from .._validation import require_int
from ..autograd import Tensor, is_grad_enabled, record
from ..conv1d import conv1d_input, conv1d_weight
from ..kmax import kmax_pool_backward
from . import init
from .modules import Module, Parameter, _check_input


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups=1,
           algo: str = "auto") -> Tensor:
    """1-D convolution (torch.nn.functional.conv1d semantics) through fastconv.conv1d; gradients
    through fastconv.grad.conv1d_input / conv1d_weight."""
    xd, wd = x.data, weight.data
    y = _fc.conv1d(xd, wd, None if bias is None else bias.data, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, algo=algo)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        gx = conv1d_input(xd.shape, wd, g, stride, padding, dilation, groups, algo) if x.requires_grad else None
        gw = conv1d_weight(xd, wd.shape, g, stride, padding, dilation, groups, algo) if weight.requires_grad else None
        return (gx, gw) if bias is None else (gx, gw, g.sum(axis=(0, 2)))

    return record(y, parents, backward)


def kmax_pool(x: Tensor, k: int, dim: int = -1) -> Tensor:
    """The k largest values along `dim` in their original order (see fastconv.kmax_pool); the
    gradient flows to the selected positions only."""
    values, indices = _fc.kmax_pool(x.data, k, dim)
    shape = x.shape
    if not (is_grad_enabled() and x.requires_grad):
        return Tensor(values)
    return record(values, (x,), lambda g: (kmax_pool_backward(g, indices, shape, dim),))


class Conv1d(Module):
    """1-D convolution layer on (N, C, L): weight (out_channels, in_channels / groups, kernel_size),
    PyTorch's default initialisation; `algo` picks the 2-D kernel it runs on ("auto" by default)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, algo: str = "auto"):
        super().__init__()
        self.in_channels = require_int(in_channels, "in_channels", 1)
        self.out_channels = require_int(out_channels, "out_channels", 1)
        self.groups = require_int(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv1d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.kernel_size = require_int(kernel_size, "kernel_size", 1)
        self.stride = require_int(stride, "stride", 1)
        self.padding = require_int(padding, "padding", 0)
        self.dilation = require_int(dilation, "dilation", 1)
        self.algo = algo
        shape = (self.out_channels, self.in_channels // self.groups, self.kernel_size)
        self.weight = Parameter(init.kaiming_uniform(shape))
        self.bias = Parameter(init.bias_uniform((self.out_channels,), shape)) if bias else None

    def forward(self, x):
        _check_input(self, x, f"(N, {self.in_channels}, L)", x.ndim == 3 and x.shape[1] == self.in_channels)
        return conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, self.algo)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding:
            s += f", padding={self.padding}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class KMaxPool(Module):
    """k-max pooling: keeps the k largest values along `dim` (default: the last, the sequence axis)
    in their original order; ties go to the earlier position."""

    def __init__(self, k: int, dim: int = -1):
        super().__init__()
        self.k = require_int(k, "k", 1)
        self.dim = require_int(dim, "dim")

    def forward(self, x):
        return kmax_pool(x, self.k, self.dim)

    def extra_repr(self) -> str:
        return f"k={self.k}, dim={self.dim}"


__all__ = ["conv1d", "kmax_pool", "Conv1d", "KMaxPool"]
