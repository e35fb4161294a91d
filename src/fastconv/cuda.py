"""The CUDA backend. ``import fastconv`` never needs a GPU: without the compiled module, a driver
or a device, :func:`is_available` is False and everything runs on the CPU.

Device data lives in :class:`Array` (float32; int64 for pooling indices and class labels). The
public functions (``fastconv.gemm``, ``fastconv.conv2d``, ``fastconv.grad.*``, pooling) accept
Arrays and return Arrays; the training kernels are in :mod:`fastconv.cuda` ``ops``
(``fastconv.cuda.ops.relu`` ...). Work is queued on the device's default stream and runs
asynchronously: :meth:`Array.numpy` and :func:`synchronize` wait for it, and a kernel that failed
while running is reported there as :class:`CudaError`.

Arrays support numpy-style arithmetic (see :mod:`fastconv._cuda_array`), so autograd, nn and optim
train on the device. :func:`transfer_counts` counts the host<->device copies (``to_device`` and
``Array.numpy()``): a training step should make only its input and label uploads.
"""

from __future__ import annotations

import numpy as np

from . import _cuda_ops as ops
from ._cuda_array import (
    _DLPACK_CUDA, _DTYPES, Array, CudaError, _cuda, device_count, require_device as _require_device, reset_transfer_counts,
    transfer_counts,
)


def is_compiled() -> bool:
    """True when this build of fastconv includes the CUDA module."""
    return _cuda is not None


def is_available() -> bool:
    """True when the CUDA module was compiled in and at least one GPU can be used."""
    return device_count() > 0


def get_device_name(i: int = 0) -> str:
    """Name of CUDA device ``i`` (e.g. "NVIDIA H100 80GB HBM3")."""
    _require_device(i)
    return _cuda.device_name(i)


def synchronize(device: int = 0) -> None:
    """Wait for all work queued on ``device``; raises CudaError if a queued kernel failed."""
    _require_device(device)
    _cuda.synchronize(device)


def empty_cache() -> None:
    """Return the caching allocator's unused blocks to the driver (arrays in use are untouched)."""
    if _cuda is not None and device_count() > 0:
        _cuda.empty_cache()


def memory_stats() -> dict:
    """``{"allocated_bytes": ..., "cached_bytes": ...}`` of the caching allocator."""
    if _cuda is None:
        return {"allocated_bytes": 0, "cached_bytes": 0}
    return dict(_cuda.memory_stats())


def to_device(x, device: int = 0) -> Array:
    """Copy a numpy array (float32 or int64; anything array-like is not cast silently) to the GPU."""
    _require_device(device)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.int64):
        raise TypeError(f"x: expected dtype float32 or int64, got {x.dtype} (convert it explicitly with .astype)")
    # (np.ascontiguousarray would turn a 0-d array into shape (1,))
    return Array(_cuda.to_device(x if x.flags.c_contiguous else np.ascontiguousarray(x), device))


def empty(shape, dtype=np.float32, device: int = 0) -> Array:
    """An uninitialized device array of ``shape`` (float32 unless ``dtype=np.int64``)."""
    _require_device(device)
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(shape)
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"shape: expected non-negative ints, got {shape!r}")
    name = np.dtype(dtype).name
    if name not in _DTYPES:
        raise TypeError(f"dtype: expected float32 or int64, got {name}")
    return Array(_cuda.empty([int(s) for s in shape], name, device))


def zeros(shape, dtype=np.float32, device: int = 0) -> Array:
    """A device array of ``shape`` filled with zeros."""
    a = empty(shape, dtype, device)
    ops.fill_zero(a)
    return a


def from_dlpack(obj) -> Array:
    """Wrap a CUDA tensor from PyTorch, CuPy or any DLPack producer without copying.

    The tensor must be float32 or int64 and C-contiguous; the producer is kept alive while the
    returned Array (or any view of it) exists. Work queued by the producer on its current stream
    is ordered before ours (the producer is asked to synchronize with the legacy default stream).
    """
    if _cuda is None or device_count() == 0:
        _require_device(0)
    if not hasattr(obj, "__dlpack__") or not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ (torch/CuPy tensor), got {type(obj).__name__}")
    dev_type, dev_id = obj.__dlpack_device__()
    if int(dev_type) != _DLPACK_CUDA:
        raise ValueError(f"from_dlpack: expected a CUDA tensor, got DLPack device type {int(dev_type)} (copy CPU data with to_device)")
    _require_device(int(dev_id))
    capsule = obj.__dlpack__(stream=1)
    return Array(_cuda.from_dlpack_capsule(capsule), owner=obj)
