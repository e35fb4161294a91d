"""Drop-in replacements for ``torch.nn.Conv2d``, ``Conv1d``, ``ConvTranspose2d``, ``MaxPool2d``,
``AvgPool2d`` and ``AdaptiveAvgPool2d`` running fastconv's kernels, and ``patch`` which converts the
layers of an existing model in place."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .._validation import pair
from . import ops


def _batched(x: torch.Tensor, forward):
    """Run ``forward`` on a 4-D view; 3-D (C, H, W) input is treated as a batch of one, as torch does."""
    if x.dim() == 3:
        out = forward(x.unsqueeze(0))
        return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
    return forward(x)


def _per_dim(value, n: int) -> list[int]:
    """A layer's int, n-tuple or 1-tuple (torch's layers keep ``stride=(2,)`` as given, and its
    functions read it as (2, 2)) as a list of n ints."""
    value = list(value) if isinstance(value, (tuple, list)) else [value]
    return value * n if len(value) == 1 else value


def _conv_padding(m) -> tuple[list[int] | None, list[int]]:
    """(widths for ``torch.nn.functional.pad`` to apply first, or None; the symmetric padding of the
    convolution that follows) for a convolution layer. As torch's layers do, a padding_mode other
    than "zeros" pads with that mode first and convolves with padding 0; so does an uneven
    padding="same" (zeros), which the ops' symmetric padding cannot express."""
    n = len(m.kernel_size)
    if m.padding == "valid":
        left = right = [0] * n
    elif m.padding == "same":  # the odd pad goes to the end, as torch
        total = [d * (k - 1) for d, k in zip(_per_dim(m.dilation, n), m.kernel_size)]
        left, right = [t // 2 for t in total], [t - t // 2 for t in total]
    else:
        left = right = _per_dim(m.padding, n)
    if m.padding_mode == "zeros" and left == right:
        return None, left
    widths = [w for lo, hi in zip(reversed(left), reversed(right)) for w in (lo, hi)]  # last dimension first
    return widths, [0] * n


def _pad_first(x: torch.Tensor, widths: list[int] | None, padding_mode: str) -> torch.Tensor:
    if widths is None:
        return x
    return nn.functional.pad(x, widths, mode="constant" if padding_mode == "zeros" else padding_mode)


def conv_unsupported(m) -> str | None:
    """Why fastconv cannot run this Conv1d, Conv2d or ConvTranspose2d layer, or None when it can."""
    if m.weight.dtype != torch.float32:
        return f"weight dtype {m.weight.dtype} (fastconv's kernels are float32)"
    return None


def adaptive_avg_pool2d_unsupported(m: nn.AdaptiveAvgPool2d) -> str | None:
    """Why fastconv cannot run this AdaptiveAvgPool2d layer, or None when it can (None entries of
    output_size keep that input size, as in torch)."""
    sizes = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size,)
    if any(v is not None and v < 1 for v in sizes):
        return f"output_size={m.output_size} (an empty output; fastconv needs sizes >= 1)"
    return None


def _pool_args(m) -> tuple[list[int], list[int], list[int]]:
    """kernel, stride and padding of a pooling layer as [h, w] lists. Torch's own ``_pair`` keeps a
    1-tuple such as ``kernel_size=(2,)`` (which the layers accept) as it is, so fastconv's pair is used."""
    kernel = list(pair(m.kernel_size, "kernel_size"))
    stride = kernel if m.stride is None or m.stride == [] or m.stride == () else list(pair(m.stride, "stride"))
    return kernel, stride, list(pair(m.padding, "padding"))


class _Conv:
    """``algo`` and the check of the options, shared by the drop-in convolution layers."""

    def _init_fastconv(self, algo: str) -> None:
        self.algo = algo
        reason = conv_unsupported(self)
        if reason:
            raise ValueError(f"fastconv.torch.{type(self).__name__}: unsupported option {reason}")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", algo={self.algo!r}"


class Conv2d(_Conv, nn.Conv2d):
    """``torch.nn.Conv2d`` (same constructor, parameters and state_dict keys, every padding and
    padding_mode) running on fastconv's kernels, plus ``algo`` ("auto" or a name from
    ``fastconv.conv_algorithms``). Parameters other than float32 raise ValueError."""

    def __init__(self, *args, algo: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_fastconv(algo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        widths, padding = _conv_padding(self)
        args = (_per_dim(self.stride, 2), padding, _per_dim(self.dilation, 2), self.groups, self.algo)
        return _batched(x, lambda x4: ops.call(ops.conv2d, _pad_first(x4, widths, self.padding_mode),
                                                          self.weight, self.bias, *args))


class Conv1d(_Conv, nn.Conv1d):
    """``torch.nn.Conv1d`` (same constructor, parameters and state_dict keys, every padding and
    padding_mode) running on fastconv's kernels, plus ``algo``. Unbatched (C, L) input works."""

    def __init__(self, *args, algo: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_fastconv(algo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        widths, padding = _conv_padding(self)
        x3 = x.unsqueeze(0) if x.dim() == 2 else x
        y = ops.call(ops.conv1d, _pad_first(x3, widths, self.padding_mode), self.weight, self.bias, list(self.stride),
                     padding, list(self.dilation), self.groups, self.algo)
        return y.squeeze(0) if x.dim() == 2 else y


class ConvTranspose2d(_Conv, nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` (same constructor, parameters, state_dict keys and
    ``forward(x, output_size=None)``) running on fastconv's kernels, plus ``algo`` (an algorithm
    of the convolution input gradient it runs on)."""

    def __init__(self, *args, algo: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_fastconv(algo)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        stride, padding, dilation = (_per_dim(v, 2) for v in (self.stride, self.padding, self.dilation))
        output_padding = _per_dim(self._output_padding(x, output_size, stride, padding, list(self.kernel_size), 2,
                                                       dilation), 2)
        return _batched(x, lambda x4: ops.call(ops.conv_transpose2d, x4, self.weight, self.bias, stride, padding,
                                               output_padding, self.groups, dilation, self.algo))


class MaxPool2d(nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` on fastconv's kernels (``return_indices`` gives torch's flat indices)."""

    def forward(self, x: torch.Tensor):
        kernel, stride, padding = _pool_args(self)
        dilation = list(pair(self.dilation, "dilation"))
        if self.return_indices:
            return _batched(x, lambda x4: ops.max_pool2d(x4, kernel, stride, padding, dilation, self.ceil_mode))
        return _batched(x, lambda x4: ops.max_pool2d_values(x4, kernel, stride, padding, dilation, self.ceil_mode))


class AvgPool2d(nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` on fastconv's kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride, padding = _pool_args(self)
        return _batched(x, lambda x4: ops.call(ops.avg_pool2d, x4, kernel, stride, padding, self.ceil_mode,
                                               self.count_include_pad, self.divisor_override))


class AdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``torch.nn.AdaptiveAvgPool2d`` on fastconv's kernels. An output size of 0 raises ValueError."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        reason = adaptive_avg_pool2d_unsupported(self)
        if reason:
            raise ValueError(f"fastconv.torch.AdaptiveAvgPool2d: unsupported option {reason}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.output_size if isinstance(self.output_size, (tuple, list)) else (self.output_size,) * 2
        if len(size) != 2:
            raise ValueError(f"output_size: expected an int or a pair, got {self.output_size!r}")
        # None keeps the input's size on that axis, as in torch.
        out = [x.shape[i - 2] if v is None else v for i, v in enumerate(size)]
        return _batched(x, lambda x4: ops.call(ops.adaptive_avg_pool2d, x4, out))


@dataclass
class PatchReport:
    """What ``patch`` did: ``swapped`` lists (name, torch class) converted to fastconv, ``left``
    lists (name, class, reason) left as they were."""

    swapped: list[tuple[str, str]] = field(default_factory=list)
    left: list[tuple[str, str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"fastconv.torch.patch: {len(self.swapped)} layer(s) swapped, {len(self.left)} left"]
        lines += [f"  swapped {name or '<model>'} ({cls})" for name, cls in self.swapped]
        lines += [f"  left    {name or '<model>'} ({cls}): {why}" for name, cls, why in self.left]
        return "\n".join(lines)


def _always_supported(m: nn.Module) -> None:
    return None


_SWAPS = ((nn.Conv2d, Conv2d, conv_unsupported), (nn.MaxPool2d, MaxPool2d, _always_supported),
          (nn.AvgPool2d, AvgPool2d, _always_supported), (nn.Conv1d, Conv1d, conv_unsupported),
          (nn.ConvTranspose2d, ConvTranspose2d, conv_unsupported),
          (nn.AdaptiveAvgPool2d, AdaptiveAvgPool2d, adaptive_avg_pool2d_unsupported))


def patch(model: nn.Module, algo: str = "auto") -> PatchReport:
    """Make every ``nn.Conv2d``, ``nn.Conv1d``, ``nn.ConvTranspose2d``, ``nn.MaxPool2d``,
    ``nn.AvgPool2d`` and ``nn.AdaptiveAvgPool2d`` of ``model`` run on fastconv.

    The layers are converted in place (same module objects, parameters, buffers and hooks, so an
    optimizer built before still holds the right parameters); ``algo`` is given to the convolutions.
    Layers with options fastconv lacks, and subclasses of these layers (which may have their own
    forward), are left as they are and listed in the report with the reason.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    report = PatchReport()
    for name, m in model.named_modules():
        for torch_cls, ours, unsupported in _SWAPS:
            if type(m) is ours:
                if issubclass(ours, _Conv):
                    m.algo = algo
                report.swapped.append((name, torch_cls.__name__))
            elif isinstance(m, torch_cls):
                reason = (unsupported(m) if type(m) is torch_cls
                          else f"subclass {type(m).__name__} of nn.{torch_cls.__name__} (may override forward)")
                if reason:
                    report.left.append((name, type(m).__name__, reason))
                    continue
                m.__class__ = ours  # our classes add no state beyond algo
                if issubclass(ours, _Conv):
                    m.algo = algo
                report.swapped.append((name, torch_cls.__name__))
    return report
