"""2-D convolution (NCHW, float32, PyTorch semantics), its three passes under one dispatch:
``fastconv.conv2d`` (forward), ``conv2d_input`` and ``conv2d_weight`` (the gradients, re-exported by
``fastconv.grad``), ``fastconv.conv_algorithms`` and ``auto_forward``.

The geometry is validated once (``_geometry.conv_plan``); the algorithms, their checks and error
bounds and the "auto" rules live in the registry (``_conv_algorithms``); the op ``CONV2D`` decides the
device once (``_dispatch``) and runs its kernel table: on the CPU ``_conv_pass``, which holds the
dead-tap crop, autotuning, the non-finite fallback, padding="same"'s appended zeros and the empty
batch for all three passes; on the GPU ``_cuda_ops.conv2d*``. ``BIAS`` adds a bias over axis 1 and
sums its gradient (conv_transpose2d, nn's linear and convolution layers). See DEVELOPING.md.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from . import _core, autotune
from . import _cuda_ops as _dev
from ._conv_algorithms import (  # noqa: F401  (the registry's names are part of this module's API)
    ALGORITHMS, PASSES, Algorithm, available, check_device, check_pass, kernel_for, select_algorithm, selection_table,
    tunable,
)
from ._dispatch import Op
from ._geometry import ConvPlan, conv_plan, cropped, pad_extra
from ._validation import batch_of_one, drop_batch, planes_contiguous, require_float32, require_shape, shape_str


def auto_forward(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """What ``conv2d(..., algo="auto")`` runs for this problem with autotuning off, as (algorithm,
    params). ``params`` (a ``_core.Conv2dParams``) describe the problem actually computed: its kernel
    (``params.R`` x ``params.S``) is smaller than ``w_shape``'s when taps that only ever see zero
    padding are dropped (a 3x3 convolution with padding 1 on 1x1 maps keeps its centre tap); the
    algorithm is ``select_algorithm``'s pick for it. Raises ValueError for an invalid problem."""
    w_shape = require_shape(w_shape, "w_shape", 4)
    plan = conv_plan(require_shape(x_shape, "x_shape", 4), w_shape, stride, padding, dilation, groups, "x_shape", "w_shape")
    plan, _ = cropped(plan, "auto", w_shape, stride, dilation, groups)
    return select_algorithm(plan.params, "forward"), plan.params


def conv_algorithms(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, *, pass_="forward",
                    device="cpu") -> list[str]:
    """Names of the algorithms that can run this convolution's ``pass_`` ("forward", "input" or
    "weight" gradient) on ``device`` ("cpu" or "cuda"), in registry order. Raises ValueError for
    an invalid problem."""
    plan = conv_plan(require_shape(x_shape, "x_shape", 4), require_shape(w_shape, "w_shape", 4), stride, padding,
                     dilation, groups, "x_shape", "w_shape")
    why_not = available(plan.params, check_pass(pass_), check_device(device))
    return [name for name, why in why_not.items() if why is None]


def resolve(plan: ConvPlan, algo, pass_: str, run: Callable[[str], None] | None = None) -> str:
    """The CPU kernel to run for ``algo`` ("auto" or a registered name) on this pass.

    With autotuning on (``fastconv.set_autotune``) and ``run`` given (``run(kernel)`` computes the
    pass with that kernel), "auto" times every valid algorithm once per problem and caches the winner.
    """
    if algo == "auto":
        if run is not None and autotune.get_autotune():
            return autotune.choose(plan.params, pass_, lambda: tunable(plan.params, pass_), run)
        return ALGORITHMS[select_algorithm(plan.params, pass_)].kernel(plan.params)
    return kernel_for(plan.params, algo, pass_)


def _check_grad_output(grad_output, p) -> np.ndarray:
    grad_output = require_float32(grad_output, "grad_output", ndim=4)
    expected = (p.N, p.K, p.P, p.Q)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output: expected shape {shape_str(expected)} (the convolution's output), "
                         f"got {shape_str(grad_output.shape)}")
    return np.ascontiguousarray(grad_output)


#: pass -> the public function's operand names
_OPERANDS = {
    "forward": ("x", "weight", "bias"),
    "input": ("input_shape", "weight", "grad_output"),
    "weight": ("input", "weight_shape", "grad_output"),
}


def _conv_pass(pass_: str, a, b, c, stride, padding, dilation, groups, algo):
    """One pass of a convolution on the CPU (the op's CPU kernels). Operands in the public
    functions' order: forward (x, weight, bias), input (input_shape, weight, grad_output), weight
    (input, weight_shape, grad_output). Returns a new array."""
    a_name, b_name, _ = _OPERANDS[pass_]
    x = weight = grad_output = bias = None
    if pass_ == "input":
        x_shape = require_shape(a, a_name, 4)
    else:
        x = require_float32(a, a_name, ndim=4)
        x_shape = x.shape
    if pass_ == "weight":
        w_shape = require_shape(b, b_name, 4)
    else:
        weight = require_float32(b, b_name, ndim=4)
        w_shape = weight.shape
    plan = conv_plan(x_shape, w_shape, stride, padding, dilation, groups, a_name, b_name)
    p = plan.params
    if pass_ == "forward":
        if c is not None:
            bias = require_float32(c, "bias", ndim=1)
            if bias.shape != (p.K,):
                raise ValueError(f"bias: expected shape ({p.K},) for weight shape {shape_str(w_shape)}, got {shape_str(bias.shape)}")
            bias = np.ascontiguousarray(bias)
    else:
        grad_output = _check_grad_output(c, p)
    # Under "auto", kernel taps that only ever see padding are dropped: they add nothing to the
    # output or the input gradient, and their weight gradient is exactly zero.
    plan, crop = cropped(plan, algo, w_shape, stride, dilation, groups, a_name, b_name)
    if crop is not None and weight is not None:
        weight = weight[:, :, crop[0], crop[1]]
    out = _kernel_pass(pass_, plan, algo, x, weight, grad_output, bias)
    if pass_ == "input" and plan.extra != (0, 0):  # drop the gradient of the zeros appended for padding="same"
        out = np.ascontiguousarray(out[:, :, : x_shape[2], : x_shape[3]])
    if pass_ == "weight" and crop is not None:
        full = np.zeros(w_shape, dtype=np.float32)
        full[:, :, crop[0], crop[1]] = out
        return full
    return out


#: The CPU backend: pass -> how to call a compiled kernel.
_CPU_KERNELS = {
    "forward": lambda k, p, x, w, dy, b, out: _core.conv2d_forward(k, p, x, w, b, out),
    "input": lambda k, p, x, w, dy, b, out: _core.conv2d_backward_input(k, p, dy, w, out),
    "weight": lambda k, p, x, w, dy, b, out: _core.conv2d_backward_weight(k, p, x, dy, out),
}


def _kernel_pass(pass_, plan, algo, x, weight, grad_output, bias):
    """A pass through the kernels: pick (or validate) the kernel, allocate, run."""
    p = plan.params
    name = None if algo == "auto" else resolve(plan, algo, pass_)  # an explicit algo is checked even for N == 0
    if pass_ == "forward":
        out = np.empty((p.N, p.K, p.P, p.Q), dtype=np.float32)
    elif pass_ == "input":
        out = np.empty((p.N, p.C, p.H, p.W), dtype=np.float32)
    else:
        out = np.empty((p.K, p.C // p.groups, p.R, p.S), dtype=np.float32)
    if p.N == 0:
        if pass_ == "weight":
            out[...] = 0.0
        return out
    if x is not None:
        x = pad_extra(x, plan.extra)
    if weight is not None:
        weight = np.ascontiguousarray(weight)
    call = _CPU_KERNELS[pass_]

    def run(kernel):
        python_kernel = ALGORITHMS[kernel].run
        if python_kernel is None:
            call(kernel, p, x, weight, grad_output, bias, out)
        else:
            python_kernel(pass_, p, x, weight, grad_output, bias, out)
        # A tile transform (FFT, Winograd: stride 1, no dilation) spreads a NaN or Inf of any input
        # over its whole tile, where im2col puts it exactly where the definition does. Every input
        # value reaches some output at stride 1, so the output is finite exactly when the inputs
        # are (or a transform overflowed): one sum of the output, not of every input, decides the
        # rerun. At batch 1 a late layer's weights outweigh its output 100x (512x512x3x3 on 7x7:
        # 0.40 ms to sum the weights, 6 us the output; the layer takes ~2 ms).
        if ALGORITHMS[kernel].tile_transform:
            with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf is the case looked for
                finite = np.isfinite(out.sum())
            if not finite:
                call("im2col", p, x, weight, grad_output, bias, out)

    run(resolve(plan, algo, pass_, run) if algo == "auto" else name)
    return out


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto") -> np.ndarray:
    """2-D cross-correlation of ``x`` (N, C, H, W) with ``weight`` (K, C // groups, R, S), plus
    ``bias`` (K,), as ``torch.nn.functional.conv2d``; returns a new (N, K, P, Q) float32 array
    (unbatched x (C, H, W) gives (K, P, Q), as torch).

    stride, dilation: int or (h, w) pair, >= 1. padding: int or pair (>= 0), "valid" (0) or "same"
    (stride 1 only; an odd total pad puts the extra row/column at the bottom/right, as PyTorch).
    groups: splits C and K into that many independent convolutions (groups == C: depthwise).
    algo: "auto" (see ``select_algorithm``) or one of ``conv_algorithms(...)``.
    Raises TypeError for non-float32 arrays and ValueError naming the bad argument.
    With ``fastconv.cuda.Array`` inputs it runs on the GPU and returns an Array.
    """
    x, unbatched = batch_of_one(x, "x", "(N, C, H, W)")
    if unbatched:
        return drop_batch(conv2d(x, weight, bias, stride, padding, dilation, groups, algo))
    return CONV2D.run("forward", x, weight, bias, stride, padding, dilation, groups, algo)


def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto") -> np.ndarray:
    """Gradient of ``conv2d(x, weight, ...)`` with respect to ``x`` of shape ``input_shape``,
    given ``grad_output`` (N, K, P, Q). Same conventions and errors as ``fastconv.conv2d``."""
    return CONV2D.run("input", input_shape, weight, grad_output, stride, padding, dilation, groups, algo)


def conv2d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto") -> np.ndarray:
    """Gradient of ``conv2d(input, w, ...)`` with respect to ``w`` of shape ``weight_shape``,
    given ``grad_output`` (N, K, P, Q). Same conventions and errors as ``fastconv.conv2d``."""
    return CONV2D.run("weight", input, weight_shape, grad_output, stride, padding, dilation, groups, algo)


#: The three passes, each with its three operands first (a shape in place of the array a gradient
#: has the shape of); the CPU kernels are _conv_pass, the CUDA ones _cuda_ops.conv2d*.
CONV2D = Op("conv2d", {"forward": 3, "input": 3, "weight": 3},
            cpu={p: partial(_conv_pass, p) for p in PASSES},
            cuda={"forward": _dev.conv2d, "input": _dev.conv2d_input, "weight": _dev.conv2d_weight})


def _add_bias_cpu(y, bias):
    """``y`` (N, C, ...) plus ``bias`` (C,) over axis 1, added in place: ``y`` is a new output of
    the caller's (the CUDA kernel returns a new Array instead)."""
    y += bias.reshape(bias.shape + (1,) * (y.ndim - 2))
    return y


def _bias_grad_cpu(g):
    """The bias gradient: ``g`` (N, C, ...) summed over every axis but 1. A float32 (N, C, H, W)
    array with contiguous planes, also a channel slice of a larger one (the gradient of a `cat`
    input), takes one pass in C++ instead of numpy's strided reduction."""
    if not planes_contiguous(g):
        return g.sum(axis=(0, *range(2, g.ndim)))
    db = np.empty(g.shape[1], np.float32)
    _core.bias_grad_nchw(g, db)
    return db


#: A bias over axis 1 (conv_transpose2d, nn's linear and convolution layers; conv2d adds its own in
#: the kernel): forward (y, bias) -> y + bias, backward (grad_output) -> the bias gradient.
BIAS = Op("add_bias", {"forward": 2, "backward": 1},
          cpu={"forward": _add_bias_cpu, "backward": _bias_grad_cpu},
          cuda={"forward": _dev.add_bias, "backward": _dev.bias_grad})
