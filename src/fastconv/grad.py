"""Gradients of the operators, with the argument order of ``torch.nn.grad``.

``conv2d_input`` and ``conv2d_weight`` give the gradients of ``fastconv.conv2d`` with respect to
its input and its weight; the bias gradient is ``grad_output.sum(axis=(0, 2, 3))``.
``max_pool2d``, ``avg_pool2d`` and ``adaptive_avg_pool2d`` give the input gradients of the pooling
functions of the same names; ``conv1d_input``, ``conv1d_weight`` and ``kmax_pool`` those of
``fastconv.conv1d`` and ``fastconv.kmax_pool``; ``conv_transpose2d_input`` and ``conv_transpose2d_weight``
those of ``fastconv.conv_transpose2d``.
"""

from __future__ import annotations

import numpy as np

from . import _core, cuda
from ._validation import require_float32, require_shape, shape_str
from .conv import _cropped, _pad_extra, _plan, _resolve, _whole_batch_gemm, nonfinite_safe
from .conv1d import conv1d_input, conv1d_weight  # height-1 views of the 2-D gradients
from .conv_transpose import conv_transpose2d_input, conv_transpose2d_weight
from .gemm import gemm
from .kmax import kmax_pool_backward as kmax_pool
from .pooling import adaptive_avg_pool2d_backward as adaptive_avg_pool2d
from .pooling import avg_pool2d_backward as avg_pool2d
from .pooling import max_pool2d_backward as max_pool2d


def _check_grad_output(grad_output, p) -> np.ndarray:
    grad_output = require_float32(grad_output, "grad_output", ndim=4)
    expected = (p.N, p.K, p.P, p.Q)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output: expected shape {shape_str(expected)} (the convolution's output), "
                         f"got {shape_str(grad_output.shape)}")
    return np.ascontiguousarray(grad_output)


def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto") -> np.ndarray:
    """Gradient of ``conv2d(x, weight, ...)`` with respect to ``x`` of shape ``input_shape``,
    given ``grad_output`` (N, K, P, Q). Same conventions and errors as ``fastconv.conv2d``."""
    if cuda._any_array(weight, grad_output):
        return cuda.ops.conv2d_input(input_shape, weight, grad_output, stride, padding, dilation, groups, algo)
    input_shape = require_shape(input_shape, "input_shape", 4)
    weight = require_float32(weight, "weight", ndim=4)
    plan = _plan(input_shape, weight.shape, stride, padding, dilation, groups, "input_shape")
    p = plan.params
    grad_output = _check_grad_output(grad_output, p)
    plan, crop = _cropped(plan, algo, weight.shape, stride, dilation, groups, "input_shape")
    if crop is not None:  # taps that only see padding contribute nothing to the input gradient
        weight = weight[:, :, crop[0], crop[1]]
        p = plan.params
    if algo == "auto" and p.N and _whole_batch_gemm(p):  # dx (N, C) = dy (N, K) @ w (K, C)
        return gemm(grad_output.reshape(p.N, p.K), weight.reshape(p.K, p.C)).reshape(input_shape)
    name = _resolve(plan, algo, "input")
    if p.N == 0:  # input_shape, not (p.H, p.W): those include the rows/columns padding="same" appends
        return np.empty(input_shape, dtype=np.float32)
    out = np.empty((p.N, p.C, p.H, p.W), dtype=np.float32)
    weight = np.ascontiguousarray(weight)

    def run(kernel):
        _core.conv2d_backward_input(nonfinite_safe(kernel, grad_output, weight), p, grad_output, weight, out)

    run(_resolve(plan, algo, "input", run) if algo == "auto" else name)
    if plan.extra != (0, 0):  # drop the gradient of the zeros appended for padding="same"
        out = np.ascontiguousarray(out[:, :, : input_shape[2], : input_shape[3]])
    return out


def conv2d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto") -> np.ndarray:
    """Gradient of ``conv2d(input, w, ...)`` with respect to ``w`` of shape ``weight_shape``,
    given ``grad_output`` (N, K, P, Q). Same conventions and errors as ``fastconv.conv2d``."""
    if cuda._any_array(input, grad_output):
        return cuda.ops.conv2d_weight(input, weight_shape, grad_output, stride, padding, dilation, groups, algo)
    input = require_float32(input, "input", ndim=4)
    weight_shape = require_shape(weight_shape, "weight_shape", 4)
    plan = _plan(input.shape, weight_shape, stride, padding, dilation, groups, "input", "weight_shape")
    p = plan.params
    grad_output = _check_grad_output(grad_output, p)
    plan, crop = _cropped(plan, algo, weight_shape, stride, dilation, groups, "input", "weight_shape")
    if crop is not None:  # the gradient of a tap that only sees padding is exactly zero
        full = np.zeros(weight_shape, dtype=np.float32)
        full[:, :, crop[0], crop[1]] = conv2d_weight(input, (p.K, p.C // p.groups, plan.params.R, plan.params.S),
                                                     grad_output, stride, (plan.params.pad_h, plan.params.pad_w),
                                                     dilation, groups, algo)
        return full
    if algo == "auto" and p.N and _whole_batch_gemm(p):  # dw (K, C) = dy^T (K, N) @ x (N, C)
        return gemm(grad_output.reshape(p.N, p.K).T, np.ascontiguousarray(input).reshape(p.N, p.C)).reshape(weight_shape)
    name = _resolve(plan, algo, "weight")
    out = np.empty(weight_shape, dtype=np.float32)
    if p.N == 0:
        out[...] = 0.0
        return out
    input = _pad_extra(input, plan.extra)

    def run(kernel):
        _core.conv2d_backward_weight(nonfinite_safe(kernel, input, grad_output), p, input, grad_output, out)

    run(_resolve(plan, algo, "weight", run) if algo == "auto" else name)
    return out


__all__ = ["conv2d_input", "conv2d_weight", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "conv1d_input",
           "conv1d_weight", "kmax_pool", "conv_transpose2d_input", "conv_transpose2d_weight"]
