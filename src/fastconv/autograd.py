"""Reverse-mode automatic differentiation over coarse ops.

A :class:`Tensor` wraps an array (a numpy array on the CPU, a ``fastconv.cuda.Array`` on the GPU) and,
when it was produced by an op while gradients are enabled, the op's backward rule and its inputs.
``loss.backward()`` walks that recorded graph (the tape) once in reverse topological order. Ops are
coarse (a whole convolution, a whole loss), so the Python work per op is a few attribute lookups
next to a kernel call. Every op keeps its backward rule beside its forward: see :func:`record`.
"""

from __future__ import annotations

import contextlib
import numbers
import threading
from typing import Callable

import numpy as np

from . import _core, _cuda_array
from ._cuda_array import Array as _DeviceArray
from ._dispatch import DEVICES as _DEVICES, device_of
from ._validation import planes_contiguous, shape_str

# ---- devices (which array type lives where is decided in _dispatch.device_of) -----------------------


def is_array(x) -> bool:
    """True for the array types a Tensor can hold: numpy arrays and fastconv.cuda.Array."""
    return isinstance(x, (np.ndarray, _DeviceArray))


def to_device(array, device: str):
    """Move an array to `device` ("cpu" or "cuda"); returns it unchanged when it is already there."""
    if device not in _DEVICES:
        raise ValueError(f"device: expected one of {_DEVICES}, got {device!r}")
    if device_of(array) == device:
        return array
    if device == "cpu":
        return array.numpy()
    if _cuda_array.device_count() == 0:
        raise RuntimeError(
            "device 'cuda' requested but fastconv.cuda.is_available() is False "
            f"({'no GPU or driver' if _cuda_array._cuda is not None else 'fastconv was built without CUDA'}); "
            "use device='cpu'"
        )
    array = np.asarray(array)
    if array.dtype not in (np.float32, np.int64):
        raise TypeError(f"to('cuda'): the device holds float32 or int64 arrays, got {array.dtype}")
    return _cuda_array.Array(_cuda_array._cuda.to_device(np.ascontiguousarray(array) if array.ndim else array, 0))


# ---- grad mode -------------------------------------------------------------------------------------

_state = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside :func:`no_grad` (per thread)."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    saved = is_grad_enabled()
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = saved


class no_grad(contextlib.ContextDecorator):
    """Context manager (or decorator) in which ops record nothing: no graph, no saved arrays."""

    def __enter__(self):
        self._saved = is_grad_enabled()
        _state.enabled = False
        return self

    def __exit__(self, *exc):
        _state.enabled = self._saved
        return False


# ---- Tensor ----------------------------------------------------------------------------------------


class Tensor:
    """An array with an optional gradient.

    ``Tensor(data, requires_grad=False)``: `data` is a numpy array (float32 for anything that runs
    through our kernels; float64 works for the numpy-only ops, which gradient checks use), a number
    or nested lists (converted to float32), or a fastconv.cuda.Array. The array is not copied.
    """

    __slots__ = ("data", "grad", "requires_grad", "_backward", "_parents", "_grad_hooks", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our operators in `ndarray + Tensor`

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        elif not is_array(data):
            data = np.asarray(data, dtype=np.float32)
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._backward = None
        self._parents = ()
        self._grad_hooks = None

    # -- basic properties
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def numel(self) -> int:
        return int(np.prod(self.data.shape))

    def __len__(self) -> int:
        return self.data.shape[0]

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (the array itself on the CPU, a copy from a GPU)."""
        return to_device(self.data, "cpu")

    def item(self) -> float:
        return float(self.numpy().reshape(-1)[0]) if self.numel() == 1 else _raise_item(self.shape)

    def to(self, device: str) -> "Tensor":
        """This tensor on `device` ("cpu" or "cuda"); itself when already there (gradients flow back)."""
        if device_of(self.data) == device:
            return self
        moved = to_device(self.data, device)
        src = self.device
        return record(moved, (self,), lambda g: (to_device(g, src),))

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device == "cpu" else f", device='{self.device}'"
        return f"Tensor({np.array2string(self.numpy(), precision=4, threshold=20)}{dev}{extra})"

    # -- autograd
    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires a gradient.

        `grad` defaults to 1 for a single-element tensor. The graph is freed afterwards (saved
        arrays are released), so call backward once per forward pass.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require a gradient (no input had requires_grad=True, or it was made under no_grad)")
        if grad is None:
            if self.numel() != 1:
                raise RuntimeError(f"backward: grad can be implied only for a single-element tensor, this one has shape {shape_str(self.shape)}")
            grad = _ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward: grad has shape {shape_str(grad.shape)}, expected {shape_str(self.shape)}")
        _run_backward(self, grad)

    def register_post_accumulate_grad_hook(self, hook: Callable[["Tensor"], None]) -> "HookHandle":
        """Call ``hook(self)`` during every backward pass, as soon as this leaf's ``.grad`` holds its
        complete gradient for that pass (as ``torch.Tensor.register_post_accumulate_grad_hook``).
        Data-parallel training uses it to send gradients while the rest of backward still runs."""
        if self._backward is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors (parameters) accumulate gradients")
        if self._grad_hooks is None:
            self._grad_hooks = []
        self._grad_hooks.append(hook)
        return HookHandle(self._grad_hooks, hook)

    # -- arithmetic (broadcasting as numpy)
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __neg__(self):
        return mul(self, -1.0)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __pow__(self, exponent):
        return power(self, exponent)

    def reshape(self, *shape) -> "Tensor":
        return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def flatten(self, start_dim: int = 0) -> "Tensor":
        s = self.shape
        start_dim = start_dim % max(len(s), 1)
        return reshape(self, s[:start_dim] + (-1,))

    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        return sum_(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        return mean(self, axis, keepdims)

    @property
    def T(self) -> "Tensor":
        return transpose(self)

    def argmax(self, axis=None):
        """Indices of maxima, not differentiable: a numpy array on the CPU; on the device an int64
        fastconv.cuda.Array (last axis only), so no copy to the host is made."""
        if isinstance(self.data, _DeviceArray):
            return self.data.argmax(-1 if axis is None and self.ndim == 1 else axis)
        return self.data.argmax(axis=axis)


def _ones_like(array):
    """Ones of `array`'s shape, dtype and device (the implied gradient of a scalar loss)."""
    if isinstance(array, _DeviceArray):
        return _cuda_array.full(array.shape, 1.0, array.device)
    return np.ones(array.shape, dtype=array.dtype)


def _as_array(out, like):
    """A reduction's result as an array of `like`'s kind (numpy turns 0-d results into scalars)."""
    return out if isinstance(out, _DeviceArray) else np.asarray(out, dtype=like.dtype)


def _broadcast_to(array, shape):
    """`array` broadcast to `shape`: a read-only view on the CPU, a new array on the device."""
    if isinstance(array, _DeviceArray):
        return _cuda_array.broadcast_to(array, shape)
    return np.broadcast_to(array, shape)


def _raise_item(shape):
    raise ValueError(f"item: only a single-element tensor converts to a number, this one has shape {shape_str(shape)}")


def tensor(data, requires_grad: bool = False) -> Tensor:
    """Shorthand for :class:`Tensor`."""
    return Tensor(data, requires_grad)


def as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def record(out_data, parents, backward) -> Tensor:
    """Wrap an op's output. `backward(grad_out)` returns one gradient (or None) per parent, shaped
    like that parent. Nothing is kept when gradients are off or no parent needs one."""
    out = Tensor(out_data)
    if is_grad_enabled() and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._backward = backward
        out._parents = parents
    return out


def _topological_order(root: Tensor) -> list:
    """Depth-first post-order from `root` (every node after the nodes it was computed from).

    Leaf parents are pushed before the other parents, so they are popped last and land in the
    order right before the op that consumed them: the backward pass (which walks the order in
    reverse) finishes a parameter's gradient right after its layer's backward instead of after
    the whole rest of the graph, which lets data-parallel training send it early."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for want_leaf in (True, False):
            for p in node._parents:
                if p.requires_grad and id(p) not in seen and (p._backward is None) == want_leaf:
                    stack.append((p, False))
    return order


class HookHandle:
    """Returned by ``register_post_accumulate_grad_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


_end_of_backward_callbacks: list = []


def queue_callback(callback: Callable[[], None]) -> None:
    """Run ``callback()`` once, when the backward pass now running has finished (a gradient hook uses
    it to wait for work it started). Outside a backward pass it runs at the end of the next one."""
    _end_of_backward_callbacks.append(callback)


def _run_backward(root: Tensor, grad) -> None:
    try:
        _backward_pass(root, grad)
    except BaseException:
        _end_of_backward_callbacks.clear()
        raise
    while _end_of_backward_callbacks:
        _end_of_backward_callbacks.pop(0)()


def _accumulate(prev, pg):
    """prev + pg, a new array. Large 4-D float32 gradients (a DenseNet layer's input gets two) add
    in C++ across the kernel threads: numpy's single-threaded strided add of cat's slices took
    3.6 ms of a ~90 ms DenseNet step (2026-11-26, batch 256)."""
    if prev.shape == pg.shape and prev.size >= 1 << 16 and planes_contiguous(prev) and planes_contiguous(pg):
        out = np.empty(prev.shape, np.float32)
        _core.add_planes(prev, pg, out)
        return out
    return prev + pg


def _backward_pass(root: Tensor, grad) -> None:
    grads = {id(root): grad}
    for node in reversed(_topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._backward is None:  # leaf: accumulate (copy first: an op may hand the same array to two parents)
            if node.grad is None:
                node.grad = g.copy()
            else:
                node.grad += g
            if node._grad_hooks:
                for hook in list(node._grad_hooks):
                    hook(node)
            continue
        parent_grads = node._backward(g)
        for p, pg in zip(node._parents, parent_grads):
            if pg is None or not p.requires_grad:
                continue
            if pg.dtype != p.data.dtype:  # e.g. a float64 constant multiplied into a float32 result
                pg = pg.astype(p.data.dtype)
            key = id(p)
            prev = grads.get(key)
            grads[key] = pg if prev is None else _accumulate(prev, pg)
        # Free the graph behind us: saved arrays go with the closure.
        node._backward = None
        node._parents = ()


# ---- elementwise arithmetic with broadcasting ------------------------------------------------------


def _operand(x, like: Tensor):
    """A number or array becomes a constant Tensor of `like`'s dtype (no silent upcast to float64)."""
    if isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x, dtype=like.dtype))


def _pair(a, b):
    if isinstance(a, Tensor):
        return a, _operand(b, a)
    return _operand(a, b), b


def unbroadcast(grad, shape) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting expanded to reach grad.shape from `shape`."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def _check_broadcast(op, a, b):
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {shape_str(a.shape)} and {shape_str(b.shape)} do not broadcast") from None


def add(a, b) -> Tensor:
    """a + b with numpy broadcasting (residual connections, biases)."""
    a, b = _pair(a, b)
    _check_broadcast("add", a, b)
    sa, sb = a.shape, b.shape
    return record(a.data + b.data, (a, b), lambda g: (unbroadcast(g, sa), unbroadcast(g, sb)))


def sub(a, b) -> Tensor:
    a, b = _pair(a, b)
    _check_broadcast("sub", a, b)
    sa, sb = a.shape, b.shape
    return record(a.data - b.data, (a, b), lambda g: (unbroadcast(g, sa), unbroadcast(-g, sb)))


def mul(a, b) -> Tensor:
    a, b = _pair(a, b)
    _check_broadcast("mul", a, b)
    ad, bd = a.data, b.data

    def backward(g):
        return (unbroadcast(g * bd, ad.shape) if a.requires_grad else None,
                unbroadcast(g * ad, bd.shape) if b.requires_grad else None)

    return record(ad * bd, (a, b), backward)


def div(a, b) -> Tensor:
    a, b = _pair(a, b)
    _check_broadcast("div", a, b)
    ad, bd = a.data, b.data
    out = ad / bd

    def backward(g):
        ga = g / bd
        return (unbroadcast(ga, ad.shape) if a.requires_grad else None,
                unbroadcast(-ga * out, bd.shape) if b.requires_grad else None)

    return record(out, (a, b), backward)


def power(a: Tensor, exponent) -> Tensor:
    """a ** exponent for a constant real exponent."""
    if isinstance(exponent, Tensor) or not isinstance(exponent, numbers.Real):
        raise TypeError(f"power: exponent must be a real number, got {type(exponent).__name__}")
    ad = a.data
    e = ad.dtype.type(exponent)
    return record(ad**e, (a,), lambda g: (g * e * ad ** (e - 1),))


def matmul(a, b) -> Tensor:
    """2-D matrix product; float32 runs through fastconv.gemm, other dtypes through numpy."""
    a, b = _pair(a, b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: expected 2-D operands, got shapes {shape_str(a.shape)} and {shape_str(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: inner dimensions differ: {shape_str(a.shape)} @ {shape_str(b.shape)}")
    ad, bd = a.data, b.data

    def backward(g):
        return (mm(g, bd, trans_b=True) if a.requires_grad else None,
                mm(ad, g, trans_a=True) if b.requires_grad else None)

    return record(mm(ad, bd), (a, b), backward)


def mm(a, b, trans_a=False, trans_b=False, out=None, beta=0.0):
    """op(a) @ op(b) (+ beta * out): fastconv.gemm for float32 pairs and device arrays, numpy otherwise."""
    device = isinstance(a, _DeviceArray) or isinstance(b, _DeviceArray)
    if device or (a.dtype == np.float32 and b.dtype == np.float32 and isinstance(a, np.ndarray)
                  and isinstance(b, np.ndarray)):
        from .gemm import gemm  # the gemm op: its dispatch picks the device

        return gemm(a, b, trans_a=trans_a, trans_b=trans_b, out=out, beta=beta)
    r = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if out is None:
        return r
    out *= beta
    out += r
    return out


def transpose(a: Tensor) -> Tensor:
    if a.ndim != 2:
        raise ValueError(f"transpose: expected a 2-D tensor, got shape {shape_str(a.shape)}")
    return record(a.data.T, (a,), lambda g: (g.T,))


# ---- shape ops and reductions -----------------------------------------------------------------------


def reshape(a: Tensor, shape) -> Tensor:
    shape = tuple(int(s) for s in shape)
    src = a.shape
    try:
        out = a.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape {shape_str(src)} ({a.numel()} elements) into {shape}") from None
    return record(out, (a,), lambda g: (g.reshape(src),))


def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    return tuple(int(x) % ndim for x in axes)


def sum_(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (int, tuple or None for all)."""
    axes = _norm_axes(axis, a.ndim)
    src = a.shape
    kept = tuple(1 if i in axes else n for i, n in enumerate(src))
    out = a.data.sum(axis=axes, keepdims=keepdims)
    return record(_as_array(out, a.data), (a,), lambda g: (_broadcast_to(g.reshape(kept), src),))


def mean(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (int, tuple or None for all)."""
    axes = _norm_axes(axis, a.ndim)
    src = a.shape
    count = int(np.prod([src[i] for i in axes])) if axes else 1
    kept = tuple(1 if i in axes else n for i, n in enumerate(src))
    scale = a.dtype.type(1.0 / count)
    out = a.data.mean(axis=axes, keepdims=keepdims)
    return record(_as_array(out, a.data), (a,), lambda g: (_broadcast_to(g.reshape(kept) * scale, src),))


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate tensors along `dim`; the other dimensions must match."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected at least one tensor")
    ref = tensors[0]
    dim = int(dim) % ref.ndim
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != ref.ndim:
            raise ValueError(f"cat: tensor {i} has {t.ndim} dimensions, tensor 0 has {ref.ndim}")
        for d in range(ref.ndim):
            if d != dim and t.shape[d] != ref.shape[d]:
                raise ValueError(
                    f"cat: dimension {d} differs: tensor 0 has shape {shape_str(ref.shape)}, tensor {i} has {shape_str(t.shape)}"
                )
    sizes = [t.shape[dim] for t in tensors]
    bounds = np.cumsum([0] + sizes)
    if isinstance(ref.data, _DeviceArray):
        pieces = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        out = _cuda_array.concatenate([t.data for t in tensors], dim)
        return record(out, tuple(tensors), lambda g: tuple(_cuda_array.take_slice(g, dim, lo, hi) for lo, hi in pieces))

    def backward(g):
        index = [slice(None)] * g.ndim
        grads = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            index[dim] = slice(int(lo), int(hi))
            grads.append(g[tuple(index)])
        return tuple(grads)

    return record(np.concatenate([t.data for t in tensors], axis=dim), tuple(tensors), backward)


def grad_enabled(enabled: bool):
    """Context manager that sets grad mode explicitly."""
    return _grad_mode(enabled)


__all__ = ["Tensor", "tensor", "no_grad", "is_grad_enabled", "cat", "record", "queue_callback", "HookHandle"]
