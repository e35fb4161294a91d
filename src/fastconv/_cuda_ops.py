"""Device implementations behind the public functions, one per op, for fastconv.cuda.Array inputs.

Each function checks its arguments the way the CPU function does (TypeError/ValueError naming the
argument, before anything is allocated), allocates the output on the inputs' device and queues the
kernel. Mixing devices (a numpy array with an Array, or Arrays on two GPUs) raises ValueError.
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _cuda_array as cuda  # Array and the bound module (fastconv.cuda itself imports this module)
from ._conv_algorithms import kernel_for
from ._geometry import adaptive_output_size, conv_plan, output_shape, pool_input_shape, pool_params
from ._validation import DimensionError, require_finite, require_int, require_shape, shape_str

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
        raise DimensionError(f"{name}: expected a {ndim}-D array, got {x.ndim}-D with shape {shape_str(x.shape)}")
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


def gemm(a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Device version of :func:`fastconv.gemm` (same semantics and errors). The arguments may also be
    given in this order by position: the operands first, as the op table (``gemm.GEMM``) calls it."""
    ia, ib = _arr(a, "a", ndim=2), _arr(b, "b", ndim=2)
    alpha, beta = require_finite(alpha, "alpha"), require_finite(beta, "beta")
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
    _cuda.sgemm(ia, ib, out._impl, alpha, beta, bool(trans_a), bool(trans_b))
    return out


# ---- conv2d (geometry from _geometry, algorithms from the registry in _conv_algorithms) ----------------

def _conv_plan(x_shape, w_shape, stride, padding, dilation, groups, x_name="x", w_name="weight"):
    """The validated ``_core.Conv2dParams`` (the CPU API's checks and messages)."""
    plan = conv_plan(x_shape, w_shape, stride, padding, dilation, groups, x_name, w_name)
    if plan.extra != (0, 0):
        raise ValueError("padding: 'same' with an even (dilated) kernel extent pads asymmetrically, which the "
                         "CUDA backend does not support; pass explicit padding")
    return plan.params


def _workspace_limit() -> int:
    return _core.get_workspace_limit()


def _check_grad_output(grad_output, p):
    expected = output_shape(p)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output: expected shape {shape_str(expected)} (the convolution's output), "
                         f"got {shape_str(grad_output.shape)}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Device version of :func:`fastconv.conv2d` (NCHW float32 Arrays; returns a new Array)."""
    ix, iw = _arr(x, "x", ndim=4), _arr(weight, "weight", ndim=4)
    ib = None if bias is None else _arr(bias, "bias", ndim=1)
    device = _same_device(x=x, weight=weight, bias=bias)
    p = _conv_plan(x.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None and bias.shape != (p.K,):
        raise ValueError(f"bias: expected shape ({p.K},) for weight shape {shape_str(weight.shape)}, got {shape_str(bias.shape)}")
    name = kernel_for(p, algo, "forward", "cuda")
    y = _empty(output_shape(p), device)
    _cuda.conv2d_forward(name, p, ix, iw, ib, y._impl, _workspace_limit())
    return y


def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Device version of :func:`fastconv.grad.conv2d_input`: the gradient with respect to the input."""
    iw, idy = _arr(weight, "weight", ndim=4), _arr(grad_output, "grad_output", ndim=4)
    device = _same_device(weight=weight, grad_output=grad_output)
    input_shape = require_shape(input_shape, "input_shape", 4)
    p = _conv_plan(input_shape, weight.shape, stride, padding, dilation, groups, "input_shape")
    _check_grad_output(grad_output, p)
    name = kernel_for(p, algo, "input", "cuda")
    dx = _empty(input_shape, device)
    _cuda.conv2d_backward_input(name, p, idy, iw, dx._impl, _workspace_limit())
    return dx


def conv2d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Device version of :func:`fastconv.grad.conv2d_weight`: the gradient with respect to the weight."""
    ix, idy = _arr(input, "input", ndim=4), _arr(grad_output, "grad_output", ndim=4)
    device = _same_device(input=input, grad_output=grad_output)
    weight_shape = require_shape(weight_shape, "weight_shape", 4)
    p = _conv_plan(input.shape, weight_shape, stride, padding, dilation, groups, "input", "weight_shape")
    _check_grad_output(grad_output, p)
    name = kernel_for(p, algo, "weight", "cuda")
    dw = _empty(weight_shape, device)
    _cuda.conv2d_backward_weight(name, p, ix, idy, dw._impl, _workspace_limit())
    return dw


def pad_bottom_right(a, rows: int, cols: int):
    """``a`` (N, C, H, W) with ``rows`` rows and ``cols`` columns of zeros appended at the bottom and
    right, as a new Array (``a`` itself when there are none): conv_transpose2d's x when
    output_padding >= stride."""
    _arr(a, "a", ndim=4)
    N, C, H, W = a.shape
    if rows:
        a = concatenate([a, full((N, C, rows, W), 0.0, a.device)], 2)
    if cols:
        a = concatenate([a, full((N, C, H + rows, cols), 0.0, a.device)], 3)
    return a


def crop_bottom_right(a, H: int, W: int):
    """The first ``H`` rows and ``W`` columns of ``a`` (N, C, H', W') as a new Array (``a`` itself
    when it has no more): the gradient of :func:`pad_bottom_right`."""
    _arr(a, "a", ndim=4)
    if a.shape[2] > H:
        a = take_slice(a, 2, 0, H)
    if a.shape[3] > W:
        a = take_slice(a, 3, 0, W)
    return a


# ---- pooling (geometry from _geometry, as fastconv.pooling) ---------------------------------------------------

def _nchw(x, name: str):
    """(4-D Array view, whether the caller passed 3-D (C, H, W))."""
    _arr(x, name)
    if x.ndim not in (3, 4):
        raise DimensionError(f"{name}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) array, got {x.ndim}-D with shape {shape_str(x.shape)}")
    if 0 in x.shape[1:]:
        raise ValueError(f"{name}: C, H and W must be positive, got shape {shape_str(x.shape)}")
    return (x.reshape((1,) + x.shape), True) if x.ndim == 3 else (x, False)


def _squeezed(a, squeeze: bool):
    return a.reshape(a.shape[1:]) if squeeze else a


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Device version of :func:`fastconv.max_pool2d`; indices are an int64 Array (h * W + w per plane)."""
    x4, squeeze = _nchw(x, "x")
    p = pool_params(x4.shape, kernel_size, stride, padding, ceil_mode, dilation=dilation)
    y = _empty((p.N, p.C, p.P, p.Q), x.device)
    idx = _empty((p.N, p.C, p.P, p.Q), x.device, np.int64) if return_indices else None
    _cuda.max_pool2d_forward(p, x4._impl, y._impl, None if idx is None else idx._impl)
    y = _squeezed(y, squeeze)
    return (y, _squeezed(idx, squeeze)) if return_indices else y


def _grad4(grad_output, input_shape):
    """(4-D grad_output view, 4-D input shape) for a pooling gradient given as 3-D or 4-D."""
    g4, _ = _nchw(grad_output, "grad_output")
    shape4 = pool_input_shape(input_shape, grad_output.ndim)
    if tuple(g4.shape[:2]) != tuple(shape4[:2]):
        raise ValueError(f"grad_output: shape {shape_str(grad_output.shape)} does not match input_shape "
                         f"{shape_str(input_shape)} in N and C")
    return g4, shape4


def max_pool2d_backward(grad_output, indices, input_shape):
    """Device version of :func:`fastconv.grad.max_pool2d`: grad_output added at the argmax positions.
    Unlike the CPU version, an index outside the plane cannot be reported from the GPU: it is skipped."""
    g4, shape4 = _grad4(grad_output, input_shape)
    _arr(indices, "indices", dtype=np.int64)
    device = _same_device(grad_output=grad_output, indices=indices)
    if indices.shape != grad_output.shape:
        raise ValueError(f"indices: expected the shape of grad_output {shape_str(grad_output.shape)}, got {shape_str(indices.shape)}")
    dx = _empty(shape4, device)
    _cuda.max_pool2d_backward(g4._impl, indices.reshape(g4.shape)._impl, dx._impl)
    return dx.reshape(tuple(input_shape))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Device version of :func:`fastconv.avg_pool2d`."""
    x4, squeeze = _nchw(x, "x")
    p = pool_params(x4.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor_override)
    y = _empty((p.N, p.C, p.P, p.Q), x.device)
    _cuda.avg_pool2d_forward(p, x4._impl, y._impl)
    return _squeezed(y, squeeze)


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """Device version of :func:`fastconv.grad.avg_pool2d`."""
    g4, shape4 = _grad4(grad_output, input_shape)
    p = pool_params(shape4, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor_override)
    if g4.shape != (p.N, p.C, p.P, p.Q):
        expected = (p.N, p.C, p.P, p.Q)[4 - grad_output.ndim:]
        raise ValueError(f"grad_output: expected shape {shape_str(expected)} for input_shape {shape_str(input_shape)}, "
                         f"got {shape_str(grad_output.shape)}")
    dx = _empty(shape4, grad_output.device)
    _cuda.avg_pool2d_backward(p, g4._impl, dx._impl)
    return dx.reshape(tuple(input_shape))


def adaptive_avg_pool2d(x, output_size):
    """Device version of :func:`fastconv.adaptive_avg_pool2d`."""
    x4, squeeze = _nchw(x, "x")
    P, Q = adaptive_output_size(output_size, x4.shape[2:])
    y = _empty((x4.shape[0], x4.shape[1], P, Q), x.device)
    _cuda.adaptive_avg_pool2d_forward(x4._impl, y._impl)
    return _squeezed(y, squeeze)


def adaptive_avg_pool2d_backward(grad_output, input_shape):
    """Device version of :func:`fastconv.grad.adaptive_avg_pool2d`."""
    g4, shape4 = _grad4(grad_output, input_shape)
    dx = _empty(shape4, grad_output.device)
    _cuda.adaptive_avg_pool2d_backward(g4._impl, dx._impl)
    return dx.reshape(tuple(input_shape))


# ---- training kernels --------------------------------------------------------------------------------

def add_bias(x, bias):
    """``x + bias`` broadcast over axis 1 (x of shape (N, C, ...), bias (C,)); returns a new Array."""
    _arr(x, "x"), _arr(bias, "bias", ndim=1)
    _same_device(x=x, bias=bias)
    if x.ndim < 2 or bias.shape != (x.shape[1],):
        raise ValueError(f"bias: expected shape (C,) for x of shape (N, C, ...), got {shape_str(bias.shape)} for {shape_str(x.shape)}")
    y = x.copy()
    _cuda.bias_add(y._impl, bias._impl)
    return y


def bias_grad(grad_output):
    """Gradient of :func:`add_bias` with respect to the bias: ``grad_output`` summed over all axes but 1."""
    _arr(grad_output, "grad_output")
    if grad_output.ndim < 2:
        raise ValueError(f"grad_output: expected shape (N, C, ...), got {shape_str(grad_output.shape)}")
    db = _empty((grad_output.shape[1],), grad_output.device)
    _cuda.bias_grad(grad_output._impl, db._impl)
    return db


def _activation(name, x, slope=0.0):
    y = _empty(x.shape, x.device)
    _cuda.activation_forward(name, float(slope), _arr(x, "x"), y._impl)
    return y


def _activation_grad(name, grad_output, saved, saved_name, slope=0.0):
    idy, isv = _arr(grad_output, "grad_output"), _arr(saved, saved_name)
    device = _same_device(grad_output=grad_output, **{saved_name: saved})
    if saved.shape != grad_output.shape:
        raise ValueError(f"{saved_name}: expected shape {shape_str(grad_output.shape)} (as grad_output), got {shape_str(saved.shape)}")
    dx = _empty(grad_output.shape, device)
    _cuda.activation_backward(name, float(slope), isv, idy, dx._impl)
    return dx


def relu(x):
    """max(x, 0) elementwise."""
    return _activation("relu", x)


def relu_backward(grad_output, x):
    """Gradient of :func:`relu` given its input ``x``."""
    return _activation_grad("relu", grad_output, x, "x")


def leaky_relu(x, negative_slope=0.01):
    """x if x > 0 else negative_slope * x."""
    return _activation("leaky_relu", x, require_finite(negative_slope, "negative_slope"))


def leaky_relu_backward(grad_output, x, negative_slope=0.01):
    """Gradient of :func:`leaky_relu` given its input ``x``."""
    return _activation_grad("leaky_relu", grad_output, x, "x", require_finite(negative_slope, "negative_slope"))


def sigmoid(x):
    """1 / (1 + exp(-x)) elementwise."""
    return _activation("sigmoid", x)


def sigmoid_backward(grad_output, y):
    """Gradient of :func:`sigmoid` given its output ``y``."""
    return _activation_grad("sigmoid", grad_output, y, "y")


def tanh(x):
    """tanh(x) elementwise."""
    return _activation("tanh", x)


def tanh_backward(grad_output, y):
    """Gradient of :func:`tanh` given its output ``y``."""
    return _activation_grad("tanh", grad_output, y, "y")


def sum(x):  # noqa: A001  (mirrors numpy's name inside this namespace)
    """Sum of all elements as a 0-d Array (deterministic order)."""
    ix = _arr(x, "x")
    out = _empty((), x.device)
    _cuda.sum(ix, 1.0, out._impl)
    return out


def mean(x):
    """Mean of all elements as a 0-d Array (NaN for an empty array, as numpy and torch)."""
    ix = _arr(x, "x")
    out = _empty((), x.device)
    _cuda.sum(ix, 1.0 / x.size if x.size else float("nan"), out._impl)
    return out


def _logits_labels(logits, labels):
    il, ib = _arr(logits, "logits", ndim=2), _arr(labels, "labels", ndim=1, dtype=np.int64)
    device = _same_device(logits=logits, labels=labels)
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels: expected shape {shape_str((logits.shape[0],))} for logits {shape_str(logits.shape)}, got {shape_str(labels.shape)}")
    if logits.shape[1] < 1:
        raise ValueError("logits: need at least one class")
    return il, ib, device


def softmax_cross_entropy(logits, labels):
    """Mean over rows of ``-log softmax(logits)[label]`` as a 0-d Array. labels: int64 Array in
    [0, classes); a label out of range cannot be reported from the GPU and makes the loss NaN."""
    il, ib, device = _logits_labels(logits, labels)
    loss = _empty((), device)
    _cuda.softmax_cross_entropy(il, ib, loss._impl)
    return loss


def softmax_cross_entropy_backward(logits, labels, grad_loss=1.0):
    """Gradient of :func:`softmax_cross_entropy` w.r.t. the logits: grad_loss / N * (softmax - onehot)."""
    il, ib, device = _logits_labels(logits, labels)
    dlogits = _empty(logits.shape, device)
    _cuda.softmax_cross_entropy_backward(il, ib, require_finite(grad_loss, "grad_loss"), dlogits._impl)
    return dlogits


def axpy(alpha, x, y):
    """``y += alpha * x`` in place (gradient accumulation)."""
    ix, iy = _arr(x, "x"), _arr(y, "y")
    _same_device(x=x, y=y)
    if x.shape != y.shape:
        raise ValueError(f"y: expected shape {shape_str(x.shape)} (as x), got {shape_str(y.shape)}")
    _cuda.axpy(require_finite(alpha, "alpha"), ix, iy)


def _param_like(param, **others):
    _arr(param, "param")
    for name, a in others.items():
        if a is not None:
            _arr(a, name)
            if a.shape != param.shape:
                raise ValueError(f"{name}: expected shape {shape_str(param.shape)} (as param), got {shape_str(a.shape)}")
    _same_device(param=param, **others)


def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
             nesterov=False, first_step=False):
    """One torch.optim.SGD step in place on ``param`` (and ``momentum_buffer``, needed when
    momentum != 0; on the first step pass ``first_step=True`` so the buffer starts at the gradient)."""
    _param_like(param, grad=grad, momentum_buffer=momentum_buffer)
    momentum = require_finite(momentum, "momentum")
    if momentum != 0.0 and momentum_buffer is None:
        raise ValueError("momentum_buffer: required when momentum != 0")
    _cuda.sgd_step(param._impl, grad._impl, None if momentum_buffer is None else momentum_buffer._impl,
                   require_finite(lr, "lr"), momentum, require_finite(dampening, "dampening"),
                   require_finite(weight_decay, "weight_decay"), bool(nesterov), bool(first_step))


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False):
    """One torch.optim.Adam step in place (``step`` counts from 1; the moments start at zero).
    ``decoupled=True`` is AdamW: ``param *= 1 - lr * weight_decay`` first, no L2 term in the gradient."""
    _param_like(param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    step = require_int(step, "step", minimum=1)
    beta1, beta2 = require_finite(beta1, "beta1"), require_finite(beta2, "beta2")
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"beta1, beta2: expected values in [0, 1), got {beta1}, {beta2}")
    lr = require_finite(lr, "lr")
    step_size = lr / (1.0 - beta1**step)
    sqrt_bc2 = (1.0 - beta2**step) ** 0.5
    _cuda.adam_step(param._impl, grad._impl, exp_avg._impl, exp_avg_sq._impl, step_size, sqrt_bc2, beta1, beta2,
                    require_finite(eps, "eps"), require_finite(weight_decay, "weight_decay"), lr, bool(decoupled))


def adamw_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=1e-2):
    """One torch.optim.AdamW step in place (decoupled weight decay; see :func:`adam_step`)."""
    adam_step(param, grad, exp_avg, exp_avg_sq, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
              weight_decay=weight_decay, decoupled=True)


# Array arithmetic (broadcasting binary ops, reductions, copies) lives with the Array type.
binary, unary, full, broadcast_to, reduce = cuda.binary, cuda.unary, cuda.full, cuda.broadcast_to, cuda.reduce
take_slice, concatenate = cuda.take_slice, cuda.concatenate


def scale(x, alpha):
    """``alpha * x`` as a new Array."""
    return unary("affine", x, require_finite(alpha, "alpha"), 0.0)


def axpby(alpha, x, beta, y):
    """``y = alpha * x + beta * y`` in place (running statistics)."""
    ix, iy = _arr(x, "x"), _arr(y, "y")
    _same_device(x=x, y=y)
    if x.shape != y.shape:
        raise ValueError(f"y: expected shape {shape_str(x.shape)} (as x), got {shape_str(y.shape)}")
    _cuda.axpby(require_finite(alpha, "alpha"), ix, require_finite(beta, "beta"), iy)


def log_softmax(x):
    """log(softmax(x)) over axis 1 of a 2-D Array, the row maximum subtracted first (stable)."""
    z = x - x.max(axis=1, keepdims=True)
    return z - unary("log", unary("exp", z).sum(axis=1, keepdims=True))


def log_softmax_backward(grad_output, y):
    """Gradient of :func:`log_softmax` given its output ``y``."""
    return grad_output - unary("exp", y) * grad_output.sum(axis=1, keepdims=True)


def argmax(x):
    """int64 indices of the first maximum along the last axis."""
    _arr(x, "x")
    return x.argmax(-1)


def correct_count(logits, labels):
    """Number of rows whose argmax equals the label, as a 0-d float32 Array (accuracy stays on the device)."""
    il, ib, device = _logits_labels(logits, labels)
    hits = _empty((logits.shape[0],), device)
    _cuda.argmax_hits(il, ib, hits._impl)
    return sum(hits)


def dropout(x, p, seed):
    """(x * mask, mask): mask[i] = 0 with probability p, else 1 / (1 - p), drawn on the device from
    the integer `seed` (a counter-based hash: the same seed gives the same mask). `seed` may also be
    a numpy Generator, which one is drawn from (as nn.functional.dropout passes its rng)."""
    ix = _arr(x, "x")
    p = require_finite(p, "p")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p: expected a probability in [0, 1), got {p}")
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(0, 1 << 63))
    seed = require_int(seed, "seed", minimum=0)
    y, mask = _empty(x.shape, x.device), _empty(x.shape, x.device)
    _cuda.dropout(p, seed % (1 << 64), ix, y._impl, mask._impl)
    return y, mask
