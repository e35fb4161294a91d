"""Layers for sequences (N, C, L): Conv1d (its op is nn.functional.conv1d) and k-max pooling
(Kalchbrenner et al. 2014), as an autograd op next to its backward rule and as Modules."""

from __future__ import annotations

from .._validation import require_int
from ..autograd import Tensor, is_grad_enabled, record
from ..conv1d import _single
from ..kmax import kmax_pool as kmax_pool_array, kmax_pool_backward
from . import functional as F
from . import init
from .functional import conv1d  # noqa: F401  (its home before nn.functional had it)
from .modules import Module, Parameter, _check_input, _mode_pad, _padding_mode, _same_needs_stride_1


def kmax_pool(x: Tensor, k: int, dim: int = -1) -> Tensor:
    """The k largest values along `dim` in their original order (see fastconv.kmax_pool); the
    gradient flows to the selected positions only."""
    values, indices = kmax_pool_array(x.data, k, dim)
    shape = x.shape
    if not (is_grad_enabled() and x.requires_grad):
        return Tensor(values)
    return record(values, (x,), lambda g: (kmax_pool_backward(g, indices, shape, dim),))


class Conv1d(Module):
    """1-D convolution layer on (N, C, L) or unbatched (C, L), as torch.nn.Conv1d (padding an int,
    "valid" or "same"; padding_mode "zeros", "reflect", "replicate" or "circular"): weight
    (out_channels, in_channels / groups, kernel_size), PyTorch's default initialisation; `algo`
    picks the 2-D kernel it runs on ("auto" by default)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", algo: str = "auto"):
        super().__init__()
        self.in_channels = require_int(in_channels, "in_channels", 1)
        self.out_channels = require_int(out_channels, "out_channels", 1)
        self.groups = require_int(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv1d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.kernel_size = _single(kernel_size, "kernel_size", 1)
        self.stride = _single(stride, "stride", 1)
        self.padding = padding if isinstance(padding, str) else _single(padding, "padding", 0)
        self.dilation = _single(dilation, "dilation", 1)
        _same_needs_stride_1(self.padding, (self.stride,), "Conv1d")
        self.padding_mode = _padding_mode(padding_mode)
        self.algo = algo
        shape = (self.out_channels, self.in_channels // self.groups, self.kernel_size)
        self.weight = Parameter(init.kaiming_uniform(shape))
        self.bias = Parameter(init.bias_uniform((self.out_channels,), shape)) if bias else None

    def forward(self, x):
        _check_input(self, x, f"(N, {self.in_channels}, L) or ({self.in_channels}, L)",
                     x.ndim in (2, 3) and x.shape[-2] == self.in_channels)
        padding = self.padding
        if self.padding_mode != "zeros":
            per_dim = padding if isinstance(padding, str) else (padding,)
            x = F.pad(x, _mode_pad(per_dim, (self.kernel_size,), (self.dilation,)), self.padding_mode)
            padding = 0
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups, self.algo)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in (0, "valid"):
            s += f", padding={self.padding!r}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
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
