"""The device array type and its arithmetic, below both fastconv.cuda and the device op modules.

:class:`Array` behaves like a small numpy subset so that autograd and nn.functional run unchanged
on the device: ``+ - * / **`` with numpy broadcasting (Array with Array, or with a Python/numpy
scalar, which travels as a kernel argument, never as a copy), ``sum/mean/max`` over axes,
``reshape``, ``T`` and in-place ``+=``. Every result is a new device array; nothing here copies
data between host and device except :meth:`Array.numpy` (explicit). Mixing an Array with a
non-scalar numpy array raises ValueError instead of copying silently.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._validation import shape_str

try:
    from . import _cuda
except ImportError:  # built without nvcc (FASTCONV_CUDA=OFF or no CUDA toolkit)
    _cuda = None

CudaError = _cuda.CudaError if _cuda is not None else type("CudaError", (RuntimeError,), {})

_DTYPES = {"float32": np.dtype(np.float32), "int64": np.dtype(np.int64)}
_DLPACK_CUDA = 2  # DLPack device type kDLCUDA


def device_count() -> int:
    """Number of CUDA devices visible (0 without a driver or GPU)."""
    return _cuda.device_count() if _cuda is not None else 0


def require_device(i: int) -> None:
    """Raise a clear error unless CUDA device `i` can be used."""
    count = device_count()
    if count == 0:
        why = "no GPU or driver was found" if _cuda is not None else "fastconv was built without CUDA"
        raise RuntimeError(f"fastconv.cuda: no CUDA device is available ({why}; check fastconv.cuda.is_available())")
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < count:
        raise ValueError(f"device: expected an int in 0..{count - 1}, got {i!r}")


class Array:
    """A dense, C-contiguous array in GPU memory (float32, or int64 for indices and labels).

    Create one with :func:`fastconv.cuda.to_device`, ``empty`` or ``from_dlpack``; copy it back
    with :meth:`numpy`. It supports the DLPack protocol, so ``torch.from_dlpack(a)`` shares its
    memory, and the numpy-style arithmetic described in this module's docstring.
    """

    __slots__ = ("_impl", "_owner")
    __array_ufunc__ = None  # numpy defers to our operators (ndarray + Array) and refuses np.* ufuncs

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

    def astype(self, dtype) -> "Array":
        """A copy as `dtype`; only the array's own dtype is supported on the device."""
        if np.dtype(dtype) != self.dtype:
            raise TypeError(f"astype: converting {self.dtype.name} to {np.dtype(dtype).name} is not supported on the device")
        return self.copy()

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

    # -- arithmetic (numpy broadcasting; scalars travel as kernel arguments)
    def __add__(self, other):
        return binary("add", self, other)

    def __radd__(self, other):
        return binary("add", other, self)

    def __sub__(self, other):
        return binary("sub", self, other)

    def __rsub__(self, other):
        return binary("sub", other, self)

    def __mul__(self, other):
        return binary("mul", self, other)

    def __rmul__(self, other):
        return binary("mul", other, self)

    def __truediv__(self, other):
        return binary("div", self, other)

    def __rtruediv__(self, other):
        return binary("div", other, self)

    def __neg__(self):
        return unary("affine", self, -1.0, 0.0)

    def __pow__(self, exponent):
        s = _scalar(exponent)
        if s is None:
            raise TypeError(f"**: the exponent must be a real number on the device, got {type(exponent).__name__}")
        return unary("power", self, s, 1.0)

    def __iadd__(self, other):
        """In place: ``self += other`` for an Array of the same shape or a scalar (int64 too)."""
        s = _scalar(other)
        if self.dtype == np.int64:
            if s is None or s != int(s):
                raise TypeError("+=: an int64 device array takes only integer scalars")
            _cuda.add_int64(int(s), self._impl)
        elif s is not None:
            _cuda.unary("affine", 1.0, s, self._impl, self._impl)
        else:
            _check_operand(other, "other")
            if other.shape != self.shape:
                raise ValueError(f"+=: shapes {shape_str(self.shape)} and {shape_str(other.shape)} differ (in place "
                                 "needs equal shapes on the device)")
            _cuda.axpy(1.0, other._impl, self._impl)
        return self

    def __imul__(self, other):
        s = _scalar(other)
        if s is None or self.dtype != np.float32:
            raise TypeError("*=: a float32 device array is scaled in place only by a scalar")
        _cuda.unary("affine", s, 0.0, self._impl, self._impl)
        return self

    @property
    def T(self) -> "Array":
        """The transpose of a 2-D array (a new array)."""
        if self.ndim != 2:
            raise ValueError(f"T: expected a 2-D array on the device, got shape {shape_str(self.shape)}")
        rows, cols = self.shape
        out = _new((cols, rows), self.device, self.dtype)
        _cuda.strided_copy([cols, rows], self._impl, 0, [1, cols], out._impl, 0, [rows, 1])
        return out

    def sum(self, axis=None, keepdims: bool = False) -> "Array":
        """Sum over `axis` (None, int or tuple), deterministic."""
        return reduce("sum", self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> "Array":
        """Mean over `axis` (NaN over no elements, as numpy)."""
        return reduce("mean", self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False) -> "Array":
        """Maximum over `axis`."""
        return reduce("max", self, axis, keepdims)

    def argmax(self, axis=-1) -> "Array":
        """int64 indices of the first maximum along the last axis (the only axis supported)."""
        if self.ndim == 0 or axis is None or int(axis) % self.ndim != self.ndim - 1:
            raise ValueError(f"argmax: the device supports only the last axis, got axis={axis!r} for shape "
                             f"{shape_str(self.shape)}")
        out = _new(self.shape[:-1], self.device, np.int64)
        _cuda.argmax_rows(_check_operand(self, "x"), out._impl)
        return out


# ---- helpers over the bound kernels ---------------------------------------------------------------


def _new(shape, device: int, dtype=np.float32) -> Array:
    return Array(_cuda.empty([int(s) for s in shape], np.dtype(dtype).name, device))


def _scalar(x):
    """`x` as a Python float when it is a real number, a numpy scalar or a 0-d numpy array, else None."""
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "fiub":
        return float(x)
    if isinstance(x, np.generic) and x.dtype.kind in "fiub":
        return float(x)
    return None


def _check_operand(x, name: str, dtype=np.float32):
    if not isinstance(x, Array):
        if isinstance(x, np.ndarray):
            raise ValueError(f"{name}: is a numpy array of shape {shape_str(x.shape)} but the other operand is on "
                             "the GPU; move it with fastconv.cuda.to_device (inputs must all be on one device)")
        raise TypeError(f"{name}: expected a fastconv.cuda.Array or a number, got {type(x).__name__}")
    if x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {x.dtype.name}")
    return x._impl


def contiguous_strides(shape) -> list[int]:
    """Element strides of a C-contiguous array of `shape`."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= int(n)
    return strides[::-1]


def _broadcast_strides(shape, out_shape) -> list[int]:
    """Strides that read an array of `shape` as `out_shape` under numpy broadcasting (0 on expanded axes)."""
    own = contiguous_strides(shape)
    lead = len(out_shape) - len(shape)
    return [0] * lead + [0 if n == 1 and m != 1 else s for n, m, s in zip(shape, out_shape[lead:], own)]


_SCALAR_FORMS = {  # op -> (array op scalar, scalar op array) as (unary op, alpha, beta) of the scalar s
    "add": (lambda s: ("affine", 1.0, s), lambda s: ("affine", 1.0, s)),
    "sub": (lambda s: ("affine", 1.0, -s), lambda s: ("affine", -1.0, s)),
    "mul": (lambda s: ("affine", s, 0.0), lambda s: ("affine", s, 0.0)),
    "div": (lambda s: ("affine", 1.0 / s, 0.0), lambda s: ("reciprocal", s, 0.0)),
}


def binary(op: str, a, b) -> Array:
    """``a <op> b`` (op: add, sub, mul, div, maximum, greater) with numpy broadcasting; one of a, b may be
    a real scalar. Returns a new float32 Array."""
    sa, sb = _scalar(a), _scalar(b)
    if sa is not None and sb is not None:
        raise TypeError(f"{op}: at least one operand must be a device Array")
    if sa is not None or sb is not None:
        x, s, scalar_first = (b, sa, True) if sa is not None else (a, sb, False)
        _check_operand(x, "b" if scalar_first else "a")
        if op in _SCALAR_FORMS and not (op == "div" and not scalar_first and s == 0.0):
            name, alpha, beta = _SCALAR_FORMS[op][scalar_first](s)
            return unary(name, x, alpha, beta)
        const = full((), s, x.device)  # a broadcast 0-d operand filled on the device, no host copy
        a, b = (const, x) if scalar_first else (x, const)
    ia, ib = _check_operand(a, "a"), _check_operand(b, "b")
    if a.device != b.device:
        raise ValueError(f"{op}: operands are on cuda:{a.device} and cuda:{b.device}; move them to one device first")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {shape_str(a.shape)} and {shape_str(b.shape)} do not broadcast") from None
    out = _new(shape, a.device)
    _cuda.binary(op, ia, _broadcast_strides(a.shape, shape), ib, _broadcast_strides(b.shape, shape), out._impl)
    return out


def unary(op: str, x: Array, alpha: float = 0.0, beta: float = 0.0) -> Array:
    """A new array of op applied elementwise (affine: alpha x + beta; reciprocal: alpha / x; power:
    beta x^alpha; exp; log; rsqrt: 1 / sqrt(x + alpha))."""
    ix = _check_operand(x, "x")
    out = _new(x.shape, x.device)
    _cuda.unary(op, float(alpha), float(beta), ix, out._impl)
    return out


def full(shape, value: float, device: int = 0) -> Array:
    """A float32 device array of `shape` filled with `value` on the device (no host copy)."""
    out = _new(shape, device)
    _cuda.unary("fill", float(value), 0.0, None, out._impl)
    return out


def broadcast_to(x: Array, shape) -> Array:
    """`x` broadcast (numpy rules) to `shape`, materialized as a new array."""
    _check_operand(x, "x", x.dtype if isinstance(x, Array) else np.float32)
    shape = tuple(int(s) for s in shape)
    if np.broadcast_shapes(x.shape, shape) != shape:
        raise ValueError(f"broadcast_to: cannot broadcast {shape_str(x.shape)} to {shape_str(shape)}")
    out = _new(shape, x.device, x.dtype)
    _cuda.strided_copy(list(shape), x._impl, 0, _broadcast_strides(x.shape, shape), out._impl, 0,
                       contiguous_strides(shape))
    return out


def _norm_axes(axis, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    for a in axes:
        if not -ndim <= int(a) < max(ndim, 1):
            raise ValueError(f"axis: {a} is out of range for a {ndim}-D array")
    return tuple(sorted({int(a) % max(ndim, 1) for a in axes}))


def reduce(op: str, x: Array, axis=None, keepdims: bool = False) -> Array:
    """Sum, mean or max of `x` over `axis` (None, int or tuple), numpy's result shape."""
    ix = _check_operand(x, "x")
    axes = _norm_axes(axis, x.ndim)
    strides = contiguous_strides(x.shape)
    kept = [d for d in range(x.ndim) if d not in axes]
    count = int(np.prod([x.shape[d] for d in axes])) if axes else 1
    if op == "max" and count == 0:
        raise ValueError(f"max: zero-size reduction over axes {axes} of shape {shape_str(x.shape)}")
    out_shape = tuple(1 if d in axes else n for d, n in enumerate(x.shape)) if keepdims else tuple(x.shape[d] for d in kept)
    if x.size == 0:  # nothing to read: numpy's sum over no elements is 0, the mean NaN
        return full(out_shape, float("nan") if op == "mean" else 0.0, x.device)
    out = _new(out_shape, x.device)
    scale = 1.0 / count if op == "mean" else 1.0
    _cuda.reduce("max" if op == "max" else "sum", ix, [x.shape[d] for d in kept], [strides[d] for d in kept],
                 [x.shape[d] for d in axes], [strides[d] for d in axes], scale, out._impl)
    return out


def take_slice(x: Array, axis: int, start: int, stop: int) -> Array:
    """``x[..., start:stop, ...]`` along `axis`, as a new contiguous array."""
    _check_operand(x, "x", x.dtype)
    shape = list(x.shape)
    shape[axis] = stop - start
    strides = contiguous_strides(x.shape)
    out = _new(shape, x.device, x.dtype)
    _cuda.strided_copy(shape, x._impl, start * strides[axis], strides, out._impl, 0, contiguous_strides(shape))
    return out


def concatenate(arrays, axis: int) -> Array:
    """Join same-dtype Arrays along `axis` (the other dimensions must match; checked by the caller)."""
    first = arrays[0]
    shape = list(first.shape)
    shape[axis] = int(sum(a.shape[axis] for a in arrays))
    out = _new(shape, first.device, first.dtype)
    out_strides = contiguous_strides(shape)
    offset = 0
    for i, a in enumerate(arrays):
        _check_operand(a, f"tensors[{i}]", first.dtype)
        if a.device != first.device:
            raise ValueError(f"cat: tensors[{i}] is on cuda:{a.device}, tensors[0] on cuda:{first.device}")
        _cuda.strided_copy(list(a.shape), a._impl, 0, contiguous_strides(a.shape), out._impl,
                           offset * out_strides[axis], out_strides)
        offset += a.shape[axis]
    return out


def transfer_counts() -> dict:
    """``{"host_to_device": n, "device_to_host": m}``: copies made by to_device and Array.numpy()
    (and everything built on them) since the last :func:`reset_transfer_counts`."""
    if _cuda is None:
        return {"host_to_device": 0, "device_to_host": 0}
    return dict(_cuda.transfer_counts())


def reset_transfer_counts() -> None:
    """Set both :func:`transfer_counts` to zero."""
    if _cuda is not None:
        _cuda.reset_transfer_counts()
