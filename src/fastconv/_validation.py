"""Argument checks shared by every public function: clear TypeError/ValueError naming the argument,
the expected and the actual shape or dtype, raised before anything is allocated."""

from __future__ import annotations

import math
import numbers

import numpy as np


class DimensionError(ValueError, TypeError):
    """An array with the wrong number of dimensions. Both a ValueError (a bad value of the right
    type, as most libraries report it) and a TypeError (what a wrong ndim is to a typed signature),
    as numpy's AxisError is both a ValueError and an IndexError: callers may catch either."""


def shape_str(shape) -> str:
    shape = tuple(int(s) for s in shape)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def require_float32(x, name: str, ndim: int | None = None) -> np.ndarray:
    """Return `x` as a numpy float32 array without copying or casting; raise TypeError otherwise."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of float32, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise TypeError(f"{name}: expected dtype float32, got {x.dtype} (convert it explicitly with .astype(np.float32))")
    if ndim is not None and x.ndim != ndim:
        raise DimensionError(f"{name}: expected a {ndim}-D array, got {x.ndim}-D with shape {shape_str(x.shape)}")
    return x


def as_contiguous(x: np.ndarray) -> np.ndarray:
    """C-contiguous float32 view of `x` (a copy only when needed; the caller's array is never modified)."""
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def planes_contiguous(a) -> bool:
    """A float32 (N, C, H, W) numpy array whose (H, W) planes are contiguous (a channel slice of a
    contiguous array qualifies: cat's backward hands out such views)."""
    return (type(a) is np.ndarray and a.ndim == 4 and a.dtype == np.float32 and min(a.strides) >= 0
            and (a.shape[3] <= 1 or a.strides[3] == 4) and (a.shape[2] <= 1 or a.strides[2] == 4 * a.shape[3]))


def require_int(value, name: str, minimum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def pair(value, name: str, minimum: int | None = None) -> tuple[int, int]:
    """An int, a pair of ints or a 1-element sequence (as torch accepts), as (height, width)."""
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            value = (value[0], value[0])
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int, a pair of ints or a 1-element tuple, got {value!r}")
        return (require_int(value[0], name, minimum), require_int(value[1], name, minimum))
    v = require_int(value, name, minimum)
    return (v, v)


def require_finite(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    return value


def require_writable_out(out, name: str, shape, inputs) -> np.ndarray:
    """Check a caller-supplied output array: float32, the right shape, writable, no overlap with inputs."""
    out = require_float32(out, name)
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {shape_str(shape)}, got {shape_str(out.shape)}")
    if not out.flags.writeable:
        raise ValueError(f"{name}: array is read-only")
    for input_name, arr in inputs:
        if np.shares_memory(out, arr):
            raise ValueError(f"{name}: overlaps input {input_name!r}; pass a separate output array")
    return out


def batch_of_one(x, name: str, layout: str):
    """``(x, False)`` for a batched array, ``(x as a batch of one, True)`` for torch's unbatched form
    (one dimension fewer). ``layout`` is the batched layout, e.g. "(N, C, H, W)". Works on numpy
    arrays and fastconv.cuda.Array (views, no copy); anything without an int ``ndim`` is returned
    as is for the caller's type checks."""
    ndim = layout.count(",") + 1
    got = getattr(x, "ndim", None)
    if not isinstance(got, int) or got == ndim:
        return x, False
    if got == ndim - 1:
        return x.reshape((1,) + tuple(x.shape)), True
    unbatched = "(" + layout[1:].split(", ", 1)[1]
    raise DimensionError(f"{name}: expected a {ndim}-D {layout} or {ndim - 1}-D {unbatched} array, "
                         f"got {got}-D with shape {shape_str(x.shape)}")


def drop_batch(y):
    """The one item of a batch of one (undoes ``batch_of_one``; a view)."""
    return y.reshape(tuple(y.shape[1:]))


def require_shape(shape, name: str, ndim: int) -> tuple[int, ...]:
    """A shape given as a sequence of `ndim` non-negative ints (e.g. input_shape of a gradient)."""
    if isinstance(shape, np.ndarray) or not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name}: expected a tuple of {ndim} ints, got {type(shape).__name__}")
    if len(shape) != ndim:
        raise ValueError(f"{name}: expected {ndim} sizes, got {len(shape)}: {tuple(shape)!r}")
    return tuple(require_int(s, name, minimum=0) for s in shape)
