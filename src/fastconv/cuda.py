"""The CUDA backend. ``import fastconv`` never needs a GPU: without the compiled module, a driver
or a device, :func:`is_available` is False and everything runs on the CPU.

Device data lives in :class:`Array` (float32; int64 for pooling indices and class labels). The
public functions (``fastconv.gemm``, ``fastconv.conv2d``, ``fastconv.grad.*``, pooling) accept
Arrays and return Arrays; the training kernels are in :mod:`fastconv.cuda` ``ops``
(``fastconv.cuda.ops.relu`` ...). Work is queued on the device's default stream and runs
asynchronously: :meth:`Array.numpy` and :func:`synchronize` wait for it, and a kernel that failed
while running is reported there as :class:`CudaError`.
"""

from __future__ import annotations

import numpy as np

try:
    from . import _cuda
except ImportError:  # built without nvcc (FASTCONV_CUDA=OFF or no CUDA toolkit)
    _cuda = None

CudaError = _cuda.CudaError if _cuda is not None else type("CudaError", (RuntimeError,), {})

_DTYPES = {"float32": np.dtype(np.float32), "int64": np.dtype(np.int64)}
_DLPACK_CUDA = 2  # DLPack device type kDLCUDA


def is_compiled() -> bool:
    """True when this build of fastconv includes the CUDA module."""
    return _cuda is not None


def device_count() -> int:
    """Number of CUDA devices visible (0 without a driver or GPU)."""
    return _cuda.device_count() if _cuda is not None else 0


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


def _require_device(i: int) -> None:
    count = device_count()
    if count == 0:
        why = "no GPU or driver was found" if _cuda is not None else "fastconv was built without CUDA"
        raise RuntimeError(f"fastconv.cuda: no CUDA device is available ({why}; check fastconv.cuda.is_available())")
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < count:
        raise ValueError(f"device: expected an int in 0..{count - 1}, got {i!r}")


class Array:
    """A dense, C-contiguous array in GPU memory (float32, or int64 for indices and labels).

    Create one with :func:`to_device`, :func:`empty` or :func:`from_dlpack`; copy it back with
    :meth:`numpy`. It supports the DLPack protocol, so ``torch.from_dlpack(a)`` shares its memory.
    """

    __slots__ = ("_impl", "_owner")

    def __init__(self, impl, owner=None):
        if _cuda is None or not isinstance(impl, _cuda.DeviceArray):
            raise TypeError("fastconv.cuda.Array is created by fastconv.cuda.to_device, empty or from_dlpack")
        self._impl = impl
        self._owner = owner  # the DLPack producer, kept alive while its memory is in use

    @property
    def shape(self) -> tuple:
        return self._impl.shape

    @property
    def ndim(self) -> int:
        return len(self._impl.shape)

    @property
    def size(self) -> int:
        return self._impl.size

    @property
    def nbytes(self) -> int:
        return self._impl.nbytes

    @property
    def dtype(self) -> np.dtype:
        return _DTYPES[self._impl.dtype]

    @property
    def device(self) -> int:
        """Index of the CUDA device holding the data."""
        return self._impl.device

    def numpy(self) -> np.ndarray:
        """Copy to a new host array (waits for the queued work that produces this array)."""
        return self._impl.numpy()

    def copy(self) -> "Array":
        """A new device array with the same contents."""
        return Array(self._impl.copy())

    def reshape(self, *shape) -> "Array":
        """A view with another shape and the same number of elements (shares the memory)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(s) for s in shape)
        if shape.count(-1) == 1:
            known = int(np.prod([s for s in shape if s != -1]))
            if known == 0 or self.size % known:
                raise ValueError(f"reshape: cannot reshape {self.shape} into {shape}")
            shape = tuple(self.size // known if s == -1 else s for s in shape)
        return Array(self._impl.reshape(list(shape)), self._owner)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """DLPack export (a legacy "dltensor" capsule). ``stream`` is the consumer's CUDA stream:
        None or 1 (legacy default), 2 (per-thread default), a stream handle, or -1 (no sync)."""
        return self._impl.dlpack(stream, dl_device, copy)

    def __dlpack_device__(self) -> tuple:
        return (_DLPACK_CUDA, self._impl.device)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"fastconv.cuda.Array(shape={self.shape}, dtype={self._impl.dtype}, device=cuda:{self.device})"

    def __array__(self, dtype=None, copy=None):
        raise TypeError("fastconv.cuda.Array lives on the GPU: call .numpy() to copy it to the host explicitly")


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


def _any_array(*xs) -> bool:
    """True when any argument is a device Array: the public functions then run on the GPU."""
    return any(isinstance(x, Array) for x in xs)


from . import _cuda_ops as ops  # noqa: E402  (the op functions need Array defined first)
