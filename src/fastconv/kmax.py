"""k-max pooling (Kalchbrenner, Grefenstette and Blunsom 2014, "A Convolutional Neural Network for
Modelling Sentences"): keep the k largest values along one axis, in their original order.

O(L) per row: find the k-th largest value, keep every element strictly above it, and give the
remaining slots to the elements equal to it, earliest first. Ties are therefore broken by position
(the earlier element wins), exactly, whatever order the selection step leaves equal values in.
float32 runs in C++ (csrc/kmax/kmax_pool.cpp, rows in parallel); other dtypes in vectorised numpy
(`np.partition` on order-preserving integer keys), which was 3-4x slower than torch.topk on long
rows (benchmarks/bench_kmax.py). The op ``KMAX_POOL`` has CPU kernels only: a fastconv.cuda.Array
input raises a TypeError saying so.
"""

from __future__ import annotations

import numpy as np

from ._dispatch import Op
from ._validation import require_int, shape_str


def _check_array(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype == np.bool_ or x.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real floating or integer dtype, got {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name}: expected at least a 1-D array, got a 0-D array")
    return x


def _axis(dim, ndim: int) -> int:
    dim = require_int(dim, "dim")
    if not -ndim <= dim < ndim:
        raise ValueError(f"dim: expected an axis in [{-ndim}, {ndim - 1}] for a {ndim}-D input, got {dim}")
    return dim % ndim


def _order_keys(x: np.ndarray) -> np.ndarray:
    """Keys with the same order as the values, total and exact: integers as they are; floats as
    integer bit patterns made monotone, with every NaN ranked above +inf and -0.0 equal to +0.0."""
    if x.dtype.kind in "iu":
        return x
    # float16/32 fit int32 keys (half the memory traffic of int64); float64 needs int64.
    ftype, itype = (np.float32, np.int32) if x.dtype.itemsize <= 4 else (np.float64, np.int64)
    f = x.astype(ftype) + ftype(0)  # exact; + 0 turns -0.0 into +0.0
    f[np.isnan(f)] = np.nan  # one canonical (positive) NaN bit pattern
    bits = f.view(itype)
    # Negative floats: flipping the magnitude bits reverses their order, making all keys monotone.
    return bits ^ ((bits >> (8 * bits.itemsize - 1)) & itype(np.iinfo(itype).max))


def kmax_pool(x: np.ndarray, k: int, dim: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """The k largest values of `x` along `dim`, kept in their original order.

    Returns `(values, indices)`, both shaped like `x` with axis `dim` of length k: `values` in the
    dtype of `x`, `indices` (int64) the positions along `dim`, increasing along that axis, with
    `values == np.take_along_axis(x, indices, dim)`. Ties are broken by position: among equal
    values the earlier one is kept. NaN ranks above every number (as in `torch.topk`), so NaNs
    propagate into the result. Raises ValueError when k is larger than the axis.
    """
    return KMAX_POOL.run("forward", x, k, dim)


def _kmax_pool_cpu(x, k, dim):
    x = _check_array(x, "x")
    axis = _axis(dim, x.ndim)
    k = require_int(k, "k", minimum=1)
    length = x.shape[axis]
    if k > length:
        raise ValueError(f"k: must be <= the size of dim {dim} ({length}) of x with shape {shape_str(x.shape)}, got {k}")
    xm = np.moveaxis(x, axis, -1)
    if x.dtype == np.float32:
        values, idx = _kmax_float32(xm, k)
        return np.moveaxis(values, -1, axis), np.moveaxis(idx, -1, axis)
    if k == length:
        idx = np.broadcast_to(np.arange(length, dtype=np.int64), xm.shape).copy()
    else:
        keys = _order_keys(xm)
        kth = np.partition(keys, length - k, axis=-1)[..., length - k : length - k + 1]
        above = keys > kth
        tied = keys == kth
        slots_left = k - above.sum(axis=-1, keepdims=True)
        keep = above | (tied & (np.cumsum(tied, axis=-1) <= slots_left))
        # Exactly k kept per row; nonzero walks rows in C order, so the positions reshape per row.
        idx = np.nonzero(keep)[-1].astype(np.int64, copy=False).reshape(xm.shape[:-1] + (k,))
    values = np.take_along_axis(xm, idx, axis=-1)
    return np.moveaxis(values, -1, axis), np.moveaxis(idx, -1, axis)


def _kmax_float32(xm: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The C++ kernel (fastconv._core) on rows of the pooled axis, made last and contiguous."""
    from . import _core

    lead, length = xm.shape[:-1], xm.shape[-1]
    rows = np.ascontiguousarray(xm).reshape(-1, length)
    values = np.empty((rows.shape[0], k), np.float32)
    idx = np.empty((rows.shape[0], k), np.int64)
    if rows.shape[0]:
        _core.kmax_pool_forward(rows, k, values, idx)
    return values.reshape(lead + (k,)), idx.reshape(lead + (k,))


def kmax_pool_backward(grad_output: np.ndarray, indices: np.ndarray, input_shape, dim: int = -1) -> np.ndarray:
    """Gradient of `kmax_pool` with respect to its input: `grad_output` scattered back to the
    positions in `indices` along `dim`, zero elsewhere; shape `input_shape`, dtype of `grad_output`."""
    return KMAX_POOL.run("backward", grad_output, indices, input_shape, dim)


def _kmax_pool_backward_cpu(grad_output, indices, input_shape, dim):
    grad_output = _check_array(grad_output, "grad_output")
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        got = indices.dtype if isinstance(indices, np.ndarray) else type(indices).__name__
        raise TypeError(f"indices: expected an integer numpy.ndarray (from kmax_pool), got {got}")
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"input_shape: expected a tuple of ints, got {type(input_shape).__name__}")
    input_shape = tuple(require_int(s, "input_shape", minimum=0) for s in input_shape)
    axis = _axis(dim, len(input_shape))
    if indices.shape != grad_output.shape:
        raise ValueError(
            f"indices: expected the shape of grad_output {shape_str(grad_output.shape)}, got {shape_str(indices.shape)}"
        )
    other_axes_match = grad_output.ndim == len(input_shape) and all(
        g == s for i, (g, s) in enumerate(zip(grad_output.shape, input_shape)) if i != axis
    )
    if not other_axes_match or grad_output.shape[axis] > input_shape[axis]:
        raise ValueError(
            f"grad_output: expected input_shape {shape_str(input_shape)} with at most {input_shape[axis]} "
            f"entries along dim {dim}, got {shape_str(grad_output.shape)}"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= input_shape[axis]):
        raise ValueError(f"indices: values must lie in [0, {input_shape[axis] - 1}] (the size of dim {dim})")
    grad_input = np.zeros(input_shape, dtype=grad_output.dtype)
    # Indices within a row are distinct, so a plain scatter (no accumulation) is the exact adjoint.
    np.put_along_axis(grad_input, indices.astype(np.int64, copy=False), grad_output, axis=axis)
    return grad_input


KMAX_POOL = Op("kmax_pool", {"forward": 1, "backward": 2}, cpu={"forward": _kmax_pool_cpu, "backward": _kmax_pool_backward_cpu})
