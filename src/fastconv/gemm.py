"""Single-precision matrix multiply on strided views: fastconv.gemm, the op GEMM (a CPU and a CUDA kernel)."""

from __future__ import annotations

import numpy as np

from . import _core
from . import _cuda_ops as _dev
from ._dispatch import Op
from ._validation import require_finite, require_float32, require_writable_out, shape_str


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """Return ``alpha * op(a) @ op(b) + beta * out`` for 2-D float32 arrays.

    ``op(x)`` is ``x.T`` when the matching ``trans_*`` flag is set. Any strides are accepted
    (transposed or sliced views need no copy). With ``out=None`` a new array is returned and
    ``beta`` is ignored; otherwise the result is written into ``out`` and ``out`` is returned.
    As in BLAS, ``beta == 0`` overwrites ``out`` without reading it.

    Raises TypeError for non-arrays or dtypes other than float32 (nothing is cast silently) and
    ValueError for wrong ndim, mismatched inner dimensions, or an ``out`` of the wrong shape or
    one that overlaps ``a`` or ``b``. With ``fastconv.cuda.Array`` inputs it runs on the GPU and
    returns an Array (all arguments must then be Arrays on one device).
    """
    return GEMM.run("forward", a, b, out, trans_a, trans_b, alpha, beta)


def _gemm_cpu(a, b, out, trans_a, trans_b, alpha, beta):
    a = require_float32(a, "a", ndim=2)
    b = require_float32(b, "b", ndim=2)
    alpha = require_finite(alpha, "alpha")
    beta = require_finite(beta, "beta")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) has shape {shape_str((m, k))} and op(b) has shape {shape_str((k2, n))}"
        )
    if out is None:
        out = np.empty((m, n), dtype=np.float32)
        beta = 0.0
    else:
        out = require_writable_out(out, "out", (m, n), [("a", a), ("b", b)])
    if m == 0 or n == 0:
        return out
    if k == 0:  # empty sum: alpha * 0 + beta * out
        if beta == 0.0:
            out[...] = 0.0
        else:
            out *= np.float32(beta)
        return out
    a, b = _aligned(a), _aligned(b)
    _core.sgemm(a, b, out, alpha, beta, bool(trans_a), bool(trans_b))
    return out


def _aligned(x: np.ndarray) -> np.ndarray:
    """Strides the kernel can index in whole floats (a view into a byte buffer may have others)."""
    if x.strides[0] % 4 or x.strides[1] % 4:
        return np.ascontiguousarray(x)
    return x


#: The operands a, b and out first (they decide the device), then the flags and scalars.
GEMM = Op("gemm", {"forward": 3}, cpu={"forward": _gemm_cpu}, cuda={"forward": _dev.gemm})
