"""fastconv kernels as PyTorch custom operators (``torch.ops.fastconv.*``).

Each op takes and returns torch tensors. CPU float32 tensors reach the kernels without a copy
(``Tensor.numpy`` shares memory, results come back through ``torch.from_numpy``); non-contiguous
inputs are made contiguous once. The ops have fake (meta) implementations, so ``torch.compile`` and
``torch.export`` trace through them, and autograd formulas that call the gradient ops below.
"""

from __future__ import annotations

import torch

from .. import cuda as fc_cuda, grad as fc_grad
from .._validation import pair
from ..conv import conv2d as fc_conv2d
from ..conv1d import conv1d as fc_conv1d
from ..conv_transpose import conv_transpose2d as fc_conv_transpose2d
from ..pooling import adaptive_avg_pool2d as fc_adaptive_avg_pool2d, avg_pool2d as fc_avg_pool2d, \
    max_pool2d as fc_max_pool2d


def _pair(v, name: str) -> list[int]:
    v = [v, v] if isinstance(v, int) else list(v)
    if len(v) != 2:
        raise ValueError(f"{name}: expected an int or a pair, got {v!r}")
    return v


def _check(t: torch.Tensor, name: str, dtype=torch.float32, cuda_ok: bool = True) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (fastconv kernels are float32), got {t.dtype}")
    if t.device.type == "cuda":
        if not cuda_ok:
            raise RuntimeError(f"{name}: fastconv's pooling has no CUDA kernel; got a tensor on {t.device}")
        if not fc_cuda.is_available():
            raise RuntimeError(f"{name}: is a CUDA tensor but fastconv has no usable CUDA device "
                               f"(built with CUDA: {fc_cuda.is_compiled()}); move it to the CPU")
    elif t.device.type != "cpu":
        raise RuntimeError(f"{name}: fastconv runs on CPU or CUDA tensors, got device {t.device}")


def _same_device(*named) -> None:
    devices = {t.device for _, t in named if t is not None}
    if len(devices) > 1:
        raise RuntimeError("fastconv: tensors on different devices: " +
                           ", ".join(f"{n} on {t.device}" for n, t in named if t is not None))


def _arr(t: torch.Tensor | None):
    """The tensor's memory as a numpy array (CPU) or fastconv.cuda.Array (CUDA), contiguous, no copy
    when already contiguous."""
    if t is None:
        return None
    t = t.detach().contiguous()
    return fc_cuda.from_dlpack(t) if t.is_cuda else t.numpy()


def _out(a) -> torch.Tensor:
    return torch.from_dlpack(a) if isinstance(a, fc_cuda.Array) else torch.from_numpy(a)


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input or left pad
        out -= 1
    return out


def _pool_shape(x, kernel_size, stride, padding, dilation, ceil_mode) -> tuple[int, int, int, int]:
    """The output shape of a pooling of the 4-D x, for the fake implementations; the window arguments
    as the real ones take them (ints or lists of 1 or 2, an empty stride meaning the kernel size)."""
    k, p, d = pair(kernel_size, "kernel_size"), pair(padding, "padding"), pair(dilation, "dilation")
    s = k if not stride else pair(stride, "stride")
    return (x.shape[0], x.shape[1], *(_pool_out(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(2)))


# --- calling an op's implementation directly ----------------------------------------------------

#: op -> its Python implementation (what the dispatcher ends up calling for a CPU or CUDA tensor).
_DIRECT = {}


def direct_call_ok(*tensors: torch.Tensor) -> bool:
    """Whether calling a forward op's implementation directly does exactly what calling the op does,
    minus the dispatcher (about 25 us per call on this 2-core machine; a batch-1 MobileNetV2 makes 52
    such calls in ~13 ms): no gradient to record (grad mode off, or no tensor requires it), plain
    tensors (not the fake, functional or batched tensors of torch.compile, torch.export, vmap), and
    nothing that must see the op (jit tracing, dispatch modes such as FlopCounterMode, the profiler)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if any(type(t) not in (torch.Tensor, torch.nn.Parameter) for t in tensors):
        return False
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._len_torch_dispatch_stack()
                or torch._C._are_functorch_transforms_active() or torch.autograd.profiler._is_profiler_enabled)


def call(op, *args):
    """``op(*args)``, or its implementation called directly where ``direct_call_ok`` holds for the
    tensor arguments (the same result without the dispatcher's overhead). The drop-in layers call
    their ops through this."""
    impl = _DIRECT.get(op)
    if impl is not None and direct_call_ok(*(a for a in args if isinstance(a, torch.Tensor))):
        return impl(*args)
    return op(*args)


# --- convolution --------------------------------------------------------------------------------

def _conv2d_cpu_or_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
                        padding: list[int], dilation: list[int], groups: int, algo: str) -> torch.Tensor:
    """``torch.nn.functional.conv2d`` on fastconv's kernels (x: N, C, H, W or unbatched C, H, W; weight: K, C/groups, R, S)."""
    _check(x, "x"), _check(weight, "weight")
    if bias is not None:
        _check(bias, "bias")
    _same_device(("x", x), ("weight", weight), ("bias", bias))
    return _out(fc_conv2d(_arr(x), _arr(weight), _arr(bias), tuple(stride), tuple(padding),
                                tuple(dilation), groups, algo))


conv2d = torch.library.custom_op("fastconv::conv2d", _conv2d_cpu_or_cuda, mutates_args=())
_DIRECT[conv2d] = _conv2d_cpu_or_cuda


@conv2d.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, algo):
    P = _conv_out(x.shape[-2], weight.shape[2], stride[0], padding[0], dilation[0])
    Q = _conv_out(x.shape[-1], weight.shape[3], stride[1], padding[1], dilation[1])
    return x.new_empty((*x.shape[:-3], weight.shape[0], P, Q))


@torch.library.custom_op("fastconv::conv2d_input_grad", mutates_args=())
def conv2d_input_grad(input_shape: list[int], weight: torch.Tensor, grad_output: torch.Tensor, stride: list[int],
                      padding: list[int], dilation: list[int], groups: int, algo: str) -> torch.Tensor:
    """Gradient of ``fastconv::conv2d`` with respect to its input of shape ``input_shape``."""
    _check(weight, "weight"), _check(grad_output, "grad_output")
    _same_device(("weight", weight), ("grad_output", grad_output))
    return _out(fc_grad.conv2d_input(tuple(input_shape), _arr(weight), _arr(grad_output), tuple(stride),
                                           tuple(padding), tuple(dilation), groups, algo))


@conv2d_input_grad.register_fake
def _(input_shape, weight, grad_output, stride, padding, dilation, groups, algo):
    return grad_output.new_empty(input_shape)


@torch.library.custom_op("fastconv::conv2d_weight_grad", mutates_args=())
def conv2d_weight_grad(input: torch.Tensor, weight_shape: list[int], grad_output: torch.Tensor, stride: list[int],
                       padding: list[int], dilation: list[int], groups: int, algo: str) -> torch.Tensor:
    """Gradient of ``fastconv::conv2d`` with respect to its weight of shape ``weight_shape``."""
    _check(input, "input"), _check(grad_output, "grad_output")
    _same_device(("input", input), ("grad_output", grad_output))
    return _out(fc_grad.conv2d_weight(_arr(input), tuple(weight_shape), _arr(grad_output), tuple(stride),
                                            tuple(padding), tuple(dilation), groups, algo))


@conv2d_weight_grad.register_fake
def _(input, weight_shape, grad_output, stride, padding, dilation, groups, algo):
    return grad_output.new_empty(weight_shape)


def _conv2d_setup(ctx, inputs, output):
    x, weight, bias, stride, padding, dilation, groups, algo = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None
    ctx.args = (stride, padding, dilation, groups, algo)


def _unbatched_too(backward, batched_ndim: int):
    """``backward(ctx, grad, x, weight)`` of a convolution written for batched x, made to serve the
    unbatched input torch also accepts (x without its batch dimension) as a batch of one."""

    def run(ctx, grad):
        x, weight = ctx.saved_tensors
        if x.dim() == batched_ndim:
            return backward(ctx, grad.contiguous(), x, weight)
        gx, *rest = backward(ctx, grad.unsqueeze(0).contiguous(), x.unsqueeze(0), weight)
        return (None if gx is None else gx.squeeze(0), *rest)

    return run


def _conv2d_backward(ctx, grad, x, weight):
    gx = conv2d_input_grad(list(x.shape), weight, grad, *ctx.args) if ctx.needs_input_grad[0] else None
    gw = conv2d_weight_grad(x, list(weight.shape), grad, *ctx.args) if ctx.needs_input_grad[1] else None
    gb = grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return gx, gw, gb, None, None, None, None, None


conv2d.register_autograd(_unbatched_too(_conv2d_backward, 4), setup_context=_conv2d_setup)


def _conv1d_cpu_or_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
                        padding: list[int], dilation: list[int], groups: int, algo: str) -> torch.Tensor:
    """``torch.nn.functional.conv1d`` on fastconv's kernels (x: N, C, L or unbatched C, L; weight: K, C/groups, S)."""
    _check(x, "x"), _check(weight, "weight")
    if bias is not None:
        _check(bias, "bias")
    _same_device(("x", x), ("weight", weight), ("bias", bias))
    return _out(fc_conv1d(_arr(x), _arr(weight), _arr(bias), tuple(stride), tuple(padding), tuple(dilation),
                                groups, algo))


conv1d = torch.library.custom_op("fastconv::conv1d", _conv1d_cpu_or_cuda, mutates_args=())
_DIRECT[conv1d] = _conv1d_cpu_or_cuda


@conv1d.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, algo):
    L = _conv_out(x.shape[-1], weight.shape[2], stride[0], padding[0], dilation[0])
    return x.new_empty((*x.shape[:-2], weight.shape[0], L))


def _conv1d_setup(ctx, inputs, output):
    x, weight, bias, stride, padding, dilation, groups, algo = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None
    # The gradients are those of the height-1 conv2d that fastconv.conv1d runs.
    ctx.args = ([1, stride[0]], [0, padding[0]], [1, dilation[0]], groups, algo)


def _conv1d_backward(ctx, grad, x, weight):
    grad = grad.unsqueeze(2)
    gx = gw = gb = None
    if ctx.needs_input_grad[0]:
        N, C, L = x.shape
        gx = conv2d_input_grad([N, C, 1, L], weight.unsqueeze(2), grad, *ctx.args).squeeze(2)
    if ctx.needs_input_grad[1]:
        K, Cg, S = weight.shape
        gw = conv2d_weight_grad(x.unsqueeze(2), [K, Cg, 1, S], grad, *ctx.args).squeeze(2)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        gb = grad.sum((0, 2, 3))
    return gx, gw, gb, None, None, None, None, None


conv1d.register_autograd(_unbatched_too(_conv1d_backward, 3), setup_context=_conv1d_setup)


def _conv_transpose_out(size: int, k: int, s: int, p: int, op: int, d: int) -> int:
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


def _conv_transpose2d_cpu_or_cuda(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                                  stride: list[int], padding: list[int], output_padding: list[int], groups: int,
                                  dilation: list[int], algo: str) -> torch.Tensor:
    """``torch.nn.functional.conv_transpose2d`` (same argument order) on fastconv's kernels
    (x: N, C_in, H, W or unbatched; weight: C_in, C_out/groups, R, S)."""
    _check(x, "x"), _check(weight, "weight")
    if bias is not None:
        _check(bias, "bias")
    _same_device(("x", x), ("weight", weight), ("bias", bias))
    return _out(fc_conv_transpose2d(_arr(x), _arr(weight), _arr(bias), tuple(stride), tuple(padding),
                                          tuple(output_padding), groups, tuple(dilation), algo))


conv_transpose2d = torch.library.custom_op("fastconv::conv_transpose2d", _conv_transpose2d_cpu_or_cuda,
                                           mutates_args=())
_DIRECT[conv_transpose2d] = _conv_transpose2d_cpu_or_cuda


@conv_transpose2d.register_fake
def _(x, weight, bias, stride, padding, output_padding, groups, dilation, algo):
    H, W = (_conv_transpose_out(x.shape[i - 2], weight.shape[2 + i], stride[i], padding[i], output_padding[i],
                                dilation[i]) for i in range(2))
    return x.new_empty((*x.shape[:-3], weight.shape[1] * groups, H, W))


def _conv_transpose2d_setup(ctx, inputs, output):
    x, weight, bias, stride, padding, output_padding, groups, dilation, algo = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None
    ctx.conv_args = (stride, padding, dilation, groups, algo)  # of the conv2d whose input gradient this is
    # output_padding >= stride: that conv2d has more output rows/columns than x (see fastconv.conv_transpose)
    ctx.extra = [output_padding[i] // stride[i] for i in range(2)]


def _conv_transpose2d_backward(ctx, grad, x, weight):
    gx = gw = gb = None
    if ctx.needs_input_grad[0]:  # the convolution of the output gradient, cut to x's size
        gx = conv2d(grad, weight, None, *ctx.conv_args)[:, :, : x.shape[2], : x.shape[3]]
    if ctx.needs_input_grad[1]:  # conv2d's weight gradient, input and output gradient swapped
        x_ext = torch.nn.functional.pad(x, (0, ctx.extra[1], 0, ctx.extra[0])) if any(ctx.extra) else x
        gw = conv2d_weight_grad(grad, list(weight.shape), x_ext, *ctx.conv_args)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        gb = grad.sum((0, 2, 3))
    return gx, gw, gb, None, None, None, None, None, None


conv_transpose2d.register_autograd(_unbatched_too(_conv_transpose2d_backward, 4),
                                   setup_context=_conv_transpose2d_setup)


# --- pooling ------------------------------------------------------------------------------------

def _max_pool2d_cpu(x: torch.Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                    dilation: list[int], ceil_mode: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.nn.functional.max_pool2d(..., return_indices=True)`` on a 4-D x: (output, int64 indices)."""
    _check(x, "x", cuda_ok=False)
    out, idx = fc_max_pool2d(_arr(x), tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation),
                                   ceil_mode, return_indices=True)
    return _out(out), _out(idx)


max_pool2d = torch.library.custom_op("fastconv::max_pool2d", _max_pool2d_cpu, mutates_args=())


def max_pool2d_values(x: torch.Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                      dilation: list[int], ceil_mode: bool) -> torch.Tensor:
    """The output of ``max_pool2d`` alone: where ``direct_call_ok(x)``, without computing the indices
    (nothing will need them), else the op's first output."""
    if direct_call_ok(x):
        _check(x, "x", cuda_ok=False)
        return _out(fc_max_pool2d(_arr(x), tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation),
                                  ceil_mode))
    return max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)[0]


@max_pool2d.register_fake
def _(x, kernel_size, stride, padding, dilation, ceil_mode):
    shape = _pool_shape(x, kernel_size, stride, padding, dilation, ceil_mode)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int64)


@torch.library.custom_op("fastconv::max_pool2d_grad", mutates_args=())
def max_pool2d_grad(grad_output: torch.Tensor, indices: torch.Tensor, input_shape: list[int]) -> torch.Tensor:
    """Gradient of ``fastconv::max_pool2d``: ``grad_output`` scattered to ``indices`` in zeros of ``input_shape``."""
    _check(grad_output, "grad_output", cuda_ok=False), _check(indices, "indices", torch.int64, cuda_ok=False)
    return _out(fc_grad.max_pool2d(_arr(grad_output), _arr(indices), tuple(input_shape)))


@max_pool2d_grad.register_fake
def _(grad_output, indices, input_shape):
    return grad_output.new_empty(input_shape)


def _max_pool2d_setup(ctx, inputs, output):
    ctx.input_shape = list(inputs[0].shape)
    ctx.save_for_backward(output[1])
    ctx.mark_non_differentiable(output[1])


def _max_pool2d_backward(ctx, grad, _grad_indices):
    (indices,) = ctx.saved_tensors
    return max_pool2d_grad(grad.contiguous(), indices, ctx.input_shape), None, None, None, None, None


max_pool2d.register_autograd(_max_pool2d_backward, setup_context=_max_pool2d_setup)


def _avg_pool2d_cpu(x: torch.Tensor, kernel_size: list[int], stride: list[int], padding: list[int], ceil_mode: bool,
                    count_include_pad: bool, divisor_override: int | None) -> torch.Tensor:
    """``torch.nn.functional.avg_pool2d`` on a 4-D x."""
    _check(x, "x", cuda_ok=False)
    return _out(fc_avg_pool2d(_arr(x), tuple(kernel_size), tuple(stride), tuple(padding), ceil_mode,
                                    count_include_pad, divisor_override))


avg_pool2d = torch.library.custom_op("fastconv::avg_pool2d", _avg_pool2d_cpu, mutates_args=())
_DIRECT[avg_pool2d] = _avg_pool2d_cpu


@avg_pool2d.register_fake
def _(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return x.new_empty(_pool_shape(x, kernel_size, stride, padding, 1, ceil_mode))


@torch.library.custom_op("fastconv::avg_pool2d_grad", mutates_args=())
def avg_pool2d_grad(grad_output: torch.Tensor, input_shape: list[int], kernel_size: list[int], stride: list[int],
                    padding: list[int], ceil_mode: bool, count_include_pad: bool,
                    divisor_override: int | None) -> torch.Tensor:
    """Gradient of ``fastconv::avg_pool2d`` with the same window arguments."""
    _check(grad_output, "grad_output", cuda_ok=False)
    return _out(fc_grad.avg_pool2d(_arr(grad_output), tuple(input_shape), tuple(kernel_size), tuple(stride),
                                         tuple(padding), ceil_mode, count_include_pad, divisor_override))


@avg_pool2d_grad.register_fake
def _(grad_output, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return grad_output.new_empty(input_shape)


def _avg_pool2d_setup(ctx, inputs, output):
    ctx.input_shape = list(inputs[0].shape)
    ctx.args = inputs[1:]


def _avg_pool2d_backward(ctx, grad):
    return (avg_pool2d_grad(grad.contiguous(), ctx.input_shape, *ctx.args),) + (None,) * len(ctx.args)


avg_pool2d.register_autograd(_avg_pool2d_backward, setup_context=_avg_pool2d_setup)


def _adaptive_avg_pool2d_cpu(x: torch.Tensor, output_size: list[int]) -> torch.Tensor:
    """``torch.nn.functional.adaptive_avg_pool2d`` on a 4-D x to ``output_size`` [P, Q] (entries >= 1)."""
    _check(x, "x", cuda_ok=False)
    return _out(fc_adaptive_avg_pool2d(_arr(x), tuple(output_size)))


adaptive_avg_pool2d = torch.library.custom_op("fastconv::adaptive_avg_pool2d", _adaptive_avg_pool2d_cpu, mutates_args=())
_DIRECT[adaptive_avg_pool2d] = _adaptive_avg_pool2d_cpu


@adaptive_avg_pool2d.register_fake
def _(x, output_size):
    return x.new_empty((x.shape[0], x.shape[1], *pair(output_size, "output_size")))


@torch.library.custom_op("fastconv::adaptive_avg_pool2d_grad", mutates_args=())
def adaptive_avg_pool2d_grad(grad_output: torch.Tensor, input_shape: list[int]) -> torch.Tensor:
    """Gradient of ``fastconv::adaptive_avg_pool2d``; the output size is grad_output's."""
    _check(grad_output, "grad_output", cuda_ok=False)
    return _out(fc_grad.adaptive_avg_pool2d(_arr(grad_output), tuple(input_shape)))


@adaptive_avg_pool2d_grad.register_fake
def _(grad_output, input_shape):
    return grad_output.new_empty(input_shape)


def _adaptive_avg_pool2d_setup(ctx, inputs, output):
    ctx.input_shape = list(inputs[0].shape)


def _adaptive_avg_pool2d_backward(ctx, grad):
    return adaptive_avg_pool2d_grad(grad.contiguous(), ctx.input_shape), None


adaptive_avg_pool2d.register_autograd(_adaptive_avg_pool2d_backward, setup_context=_adaptive_avg_pool2d_setup)


__all__ = ["call", "direct_call_ok", "max_pool2d_values", "conv2d", "conv2d_input_grad", "conv2d_weight_grad", "conv1d", "conv_transpose2d", "max_pool2d",
           "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad", "adaptive_avg_pool2d", "adaptive_avg_pool2d_grad"]
