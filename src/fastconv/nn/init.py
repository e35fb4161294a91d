"""Parameter initialisation as in PyTorch's defaults, from one seedable generator."""

from __future__ import annotations

import contextlib
import math

import numpy as np

_generator = np.random.default_rng()
_skip = False  # inside shapes_only(): parameters are allocated but not drawn


@contextlib.contextmanager
def shapes_only():
    """Build layers without drawing initial values (np.empty): for parameter counts and shape
    inference of big models, where drawing 100M+ random numbers takes a minute. Not thread-safe."""
    global _skip
    saved, _skip = _skip, True
    try:
        yield
    finally:
        _skip = saved


def manual_seed(seed: int) -> None:
    """Seed the generator behind initialisation, dropout and DataLoader shuffling defaults."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The generator used by initialisation and dropout (see :func:`manual_seed`)."""
    return _generator


def fan_in(shape) -> int:
    """Inputs feeding one output: shape[1] * prod(shape[2:]) for (out, in, *kernel) weights."""
    return int(shape[1] * np.prod(shape[2:], dtype=np.int64)) if len(shape) > 1 else int(shape[0])


def kaiming_uniform(shape, a: float = math.sqrt(5), dtype=np.float32) -> np.ndarray:
    """U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)); PyTorch's default for
    Linear and Conv2d weights (a = sqrt(5) gives b = 1 / sqrt(fan_in))."""
    if _skip:
        return np.empty(shape, dtype)
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / max(fan_in(shape), 1))
    return _generator.uniform(-bound, bound, size=shape).astype(dtype)


def bias_uniform(shape, weight_shape, dtype=np.float32) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear and Conv2d biases."""
    if _skip:
        return np.empty(shape, dtype)
    bound = 1.0 / math.sqrt(max(fan_in(weight_shape), 1))
    return _generator.uniform(-bound, bound, size=shape).astype(dtype)


def xavier_uniform(shape, gain: float = 1.0, dtype=np.float32) -> np.ndarray:
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010; torch's
    ``xavier_uniform_``); fan_out = shape[0] * prod(shape[2:]). d2l initialises its CNNs so."""
    if _skip:
        return np.empty(shape, dtype)
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    fan_out = int(shape[0]) * receptive
    bound = gain * math.sqrt(6.0 / max(fan_in(shape) + fan_out, 1))
    return _generator.uniform(-bound, bound, size=shape).astype(dtype)
