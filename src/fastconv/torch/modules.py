"""Drop-in replacements for ``torch.nn.Conv2d``, ``MaxPool2d``, ``AvgPool2d`` and ``AdaptiveAvgPool2d``
running fastconv's kernels, and ``patch`` which converts the layers of an existing model in place."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

import fastconv.torch.ops as ops
from fastconv._validation import pair


def _batched(x: torch.Tensor, forward):
    """Run ``forward`` on a 4-D view; 3-D (C, H, W) input is treated as a batch of one, as torch does."""
    if x.dim() == 3:
        out = forward(x.unsqueeze(0))
        return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
    return forward(x)


def _conv_padding(m: nn.Conv2d) -> list[int] | None:
    """Explicit symmetric padding for the layer, or None when torch would pad asymmetrically."""
    if not isinstance(m.padding, str):
        return list(m.padding)
    if m.padding == "valid":
        return [0, 0]
    total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]  # "same"
    return None if any(t % 2 for t in total) else [t // 2 for t in total]


def conv2d_unsupported(m: nn.Conv2d) -> str | None:
    """Why fastconv cannot run this Conv2d layer, or None when it can."""
    if m.padding_mode != "zeros":
        return f"padding_mode={m.padding_mode!r} (only 'zeros' is supported)"
    if _conv_padding(m) is None:
        return "padding='same' with an even effective kernel (asymmetric padding)"
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


class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` (same constructor, parameters and state_dict keys) running on fastconv's
    kernels, plus ``algo`` ("auto" or a name from ``fastconv.conv_algorithms``).
    ``padding_mode`` other than "zeros" and asymmetric "same" padding raise ValueError."""

    def __init__(self, *args, algo: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.algo = algo
        reason = conv2d_unsupported(self)
        if reason:
            raise ValueError(f"fastconv.torch.Conv2d: unsupported option {reason}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = (list(self.stride), _conv_padding(self), list(self.dilation), self.groups, self.algo)
        return _batched(x, lambda x4: ops.conv2d(x4, self.weight, self.bias, *args))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", algo={self.algo!r}"


class MaxPool2d(nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` on fastconv's kernels (``return_indices`` gives torch's flat indices)."""

    def forward(self, x: torch.Tensor):
        kernel, stride, padding = _pool_args(self)
        dilation = list(pair(self.dilation, "dilation"))
        out, idx = _batched(x, lambda x4: ops.max_pool2d(x4, kernel, stride, padding, dilation, self.ceil_mode))
        return (out, idx) if self.return_indices else out


class AvgPool2d(nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` on fastconv's kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride, padding = _pool_args(self)
        return _batched(x, lambda x4: ops.avg_pool2d(x4, kernel, stride, padding, self.ceil_mode,
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
        return _batched(x, lambda x4: ops.adaptive_avg_pool2d(x4, out))


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


_SWAPS = ((nn.Conv2d, Conv2d, conv2d_unsupported), (nn.MaxPool2d, MaxPool2d, _always_supported),
          (nn.AvgPool2d, AvgPool2d, _always_supported),
          (nn.AdaptiveAvgPool2d, AdaptiveAvgPool2d, adaptive_avg_pool2d_unsupported))


def patch(model: nn.Module, algo: str = "auto") -> PatchReport:
    """Make every ``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.AvgPool2d`` and ``nn.AdaptiveAvgPool2d`` of
    ``model`` run on fastconv.

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
                if ours is Conv2d:
                    m.algo = algo
                report.swapped.append((name, torch_cls.__name__))
            elif isinstance(m, torch_cls):
                reason = (unsupported(m) if type(m) is torch_cls
                          else f"subclass {type(m).__name__} of nn.{torch_cls.__name__} (may override forward)")
                if reason:
                    report.left.append((name, type(m).__name__, reason))
                    continue
                m.__class__ = ours  # our classes add no state beyond algo
                if ours is Conv2d:
                    m.algo = algo
                report.swapped.append((name, torch_cls.__name__))
    return report
