"""The CUDA backend. ``import fastconv`` never needs a GPU: without the compiled module, a driver
or a device, :func:`is_available` is False and everything runs on the CPU."""

from __future__ import annotations

try:
    from . import _cuda
except ImportError:  # built without nvcc (FASTCONV_CUDA=OFF or no CUDA toolkit)
    _cuda = None

CudaError = _cuda.CudaError if _cuda is not None else type("CudaError", (RuntimeError,), {})


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
    _require_device(i)
    return _cuda.device_name(i)


def synchronize() -> None:
    """Wait for all work queued on the current device."""
    _require_device(0)
    _cuda.synchronize()


def _require_device(i: int) -> None:
    count = device_count()
    if count == 0:
        raise RuntimeError("fastconv.cuda: no CUDA device is available (check fastconv.cuda.is_available())")
    if not isinstance(i, int) or not 0 <= i < count:
        raise ValueError(f"device index: expected 0..{count - 1}, got {i!r}")
