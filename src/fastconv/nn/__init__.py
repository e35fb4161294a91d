"""Layers, functional ops and initialisation: ``fastconv.nn`` mirrors the parts of ``torch.nn`` that
CNNs need."""

from . import functional, init
from .modules import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Module,
    ModuleList,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    trace_shapes,
)
from .sequence import Conv1d, KMaxPool

__all__ = [
    "functional", "init", "Module", "Parameter", "Sequential", "ModuleList", "Identity", "Linear", "Conv2d", "ConvTranspose2d",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Flatten", "Dropout",
    "BatchNorm2d", "Conv1d", "KMaxPool", "trace_shapes",
]
