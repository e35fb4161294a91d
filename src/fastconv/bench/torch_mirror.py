"""fastconv's models mirrored in PyTorch, module for module with the same state_dict keys, so the
same weights run on both sides: to_torch() for any model of fastconv.models, torch_lenet() for
LeNet-5, copy_weights() to load ours into the mirror. Used by the parity tests and the
benchmarks that time fastconv against torch; needs torch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn as tnn

from .. import models, nn


class TorchInception(tnn.Module):
    """GoogLeNet's Inception block: four paths concatenated on the channels (d2l's layout)."""

    def __init__(self, ci, c1, c2, c3, c4):
        super().__init__()
        self.p1 = tnn.Sequential(tnn.Conv2d(ci, c1, 1), tnn.ReLU())
        self.p2 = tnn.Sequential(tnn.Conv2d(ci, c2[0], 1), tnn.ReLU(), tnn.Conv2d(c2[0], c2[1], 3, padding=1), tnn.ReLU())
        self.p3 = tnn.Sequential(tnn.Conv2d(ci, c3[0], 1), tnn.ReLU(), tnn.Conv2d(c3[0], c3[1], 5, padding=2), tnn.ReLU())
        self.p4 = tnn.Sequential(tnn.MaxPool2d(3, 1, padding=1), tnn.Conv2d(ci, c4, 1), tnn.ReLU())

    def forward(self, x):
        return torch.cat([self.p1(x), self.p2(x), self.p3(x), self.p4(x)], 1)


class _TorchResidual(tnn.Module):
    def __init__(self, conv1, bn1, conv2, bn2, shortcut):
        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2, self.shortcut = conv1, bn1, conv2, bn2, shortcut

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class _TorchDense(tnn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


class _TorchClassifier(tnn.Module):
    def __init__(self, features, classifier):
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x):
        return self.classifier(self.features(x))


def to_torch(m, device="cpu"):
    """The torch module computing what our `m` computes, with the same state_dict keys."""
    kw = {"device": device}
    if isinstance(m, nn.Conv2d):
        return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                          bias=m.bias is not None, **kw)
    if isinstance(m, nn.Linear):
        return tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None, **kw)
    if isinstance(m, nn.BatchNorm2d):
        return tnn.BatchNorm2d(m.num_features, m.eps, m.momentum, **kw)
    if isinstance(m, nn.MaxPool2d):
        return tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
    if isinstance(m, nn.AvgPool2d):
        return tnn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
    simple = {nn.AdaptiveAvgPool2d: lambda: tnn.AdaptiveAvgPool2d(m.output_size), nn.ReLU: tnn.ReLU,
              nn.Flatten: lambda: tnn.Flatten(m.start_dim), nn.Dropout: lambda: tnn.Dropout(m.p),
              nn.Identity: tnn.Identity}
    if type(m) in simple:
        return simple[type(m)]()
    if isinstance(m, nn.Sequential):
        return tnn.Sequential(*[to_torch(c, device) for c in m])
    if isinstance(m, models.Residual):
        return _TorchResidual(*(to_torch(getattr(m, a), device) for a in ("conv1", "bn1", "conv2", "bn2", "shortcut")))
    if isinstance(m, models.Inception):
        t = TorchInception.__new__(TorchInception)
        tnn.Module.__init__(t)
        for a in ("p1", "p2", "p3", "p4"):
            setattr(t, a, to_torch(getattr(m, a), device))
        return t
    if isinstance(m, models.DenseBlock):
        return _TorchDense(tnn.ModuleList([to_torch(c, device) for c in m.layers]))
    if isinstance(m, models.ImageClassifier):
        return _TorchClassifier(to_torch(m.features, device), to_torch(m.classifier, device))
    raise TypeError(f"no torch mirror for {type(m).__name__}")


def copy_weights(torch_module, ours) -> None:
    """Load our model's state_dict (parameters and buffers) into its torch mirror."""
    torch_module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})


def torch_lenet(variant):
    """LeNet-5 in torch with fastconv.models.LeNet5(variant)'s state_dict keys ("modern": ReLU and
    max pooling, "classic": sigmoid and average pooling)."""
    act, pool = (tnn.ReLU, tnn.MaxPool2d) if variant == "modern" else (tnn.Sigmoid, tnn.AvgPool2d)
    net = tnn.Module()
    net.features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), act(), pool(2), tnn.Conv2d(6, 16, 5), act(), pool(2))
    net.classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(400, 120), act(), tnn.Linear(120, 84), act(),
                                    tnn.Linear(84, 10))
    net.forward = lambda x: net.classifier(net.features(x))
    return net


__all__ = ["to_torch", "copy_weights", "torch_lenet", "TorchInception"]
