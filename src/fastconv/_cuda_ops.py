"""Device implementations behind the public functions, one per op, for fastconv.cuda.Array inputs.

Each function checks its arguments the way the CPU function does (TypeError/ValueError naming the
argument, before anything is allocated), allocates the output on the inputs' device and queues the
kernel. Mixing devices (a numpy array with an Array, or Arrays on two GPUs) raises ValueError.
"""

from __future__ import annotations

import numpy as np

from . import cuda
from ._validation import shape_str

_cuda = cuda._cuda


def _arr(x, name: str, ndim: int | None = None, dtype=np.float32):
    """The C++ array behind Array `x`, checked for dtype and ndim."""
    if not isinstance(x, cuda.Array):
        if isinstance(x, np.ndarray):
            raise ValueError(f"{name}: is a numpy array but the other inputs are on the GPU; "
                             "move it with fastconv.cuda.to_device (inputs must all be on one device)")
        raise TypeError(f"{name}: expected a fastconv.cuda.Array, got {type(x).__name__}")
    if x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {x.dtype.name}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got {x.ndim}-D with shape {shape_str(x.shape)}")
    return x._impl


def _same_device(**arrays) -> int:
    """The one device all given Arrays (None entries skipped) live on; ValueError otherwise."""
    devices = {name: a.device for name, a in arrays.items() if a is not None}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{n} on cuda:{d}" for n, d in devices.items())
        raise ValueError(f"inputs are on different devices ({listing}); move them to one device first")
    return next(iter(devices.values()), 0)


def _empty(shape, device: int, dtype=np.float32) -> cuda.Array:
    return cuda.Array(_cuda.empty([int(s) for s in shape], np.dtype(dtype).name, device))


def fill_zero(a: cuda.Array) -> None:
    """Set every element of `a` to zero (in place)."""
    _cuda.fill_zero(_arr(a, "a", dtype=a.dtype if isinstance(a, cuda.Array) else np.float32))


def _overlaps(a: cuda.Array, b: cuda.Array) -> bool:
    if a.nbytes == 0 or b.nbytes == 0 or a.device != b.device:
        return False
    pa, pb = a._impl.data_ptr, b._impl.data_ptr
    return pa < pb + b.nbytes and pb < pa + a.nbytes


def _check_out(out, name: str, shape, device: int, inputs) -> cuda.Array:
    _arr(out, name)
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {shape_str(shape)}, got {shape_str(out.shape)}")
    if out.device != device:
        raise ValueError(f"{name}: is on cuda:{out.device} but the inputs are on cuda:{device}")
    for input_name, x in inputs:
        if x is not None and _overlaps(out, x):
            raise ValueError(f"{name}: overlaps input {input_name!r}; pass a separate output array")
    return out


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """Device version of :func:`fastconv.gemm` (same semantics; alpha and beta already checked)."""
    ia, ib = _arr(a, "a", ndim=2), _arr(b, "b", ndim=2)
    device = _same_device(a=a, b=b)
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) has shape {shape_str((m, k))} and op(b) has shape {shape_str((k2, n))}"
        )
    if out is None:
        out, beta = _empty((m, n), device), 0.0
    else:
        _check_out(out, "out", (m, n), device, [("a", a), ("b", b)])
    _cuda.sgemm(ia, ib, out._impl, float(alpha), float(beta), bool(trans_a), bool(trans_b))
    return out
