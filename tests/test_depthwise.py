"""The "depthwise" algorithm (groups == C, K = C * multiplier): every pass against the float64
reference (tests/reference.py) on odd shapes, outputs pre-filled with NaN, both CPU paths, thread
counts, finite differences through autograd, and what the registry and auto do with it.

Error bound: the registry's for "depthwise", 1e-5 relative (relative_error = max|a - e| / max|e|):
each output is a float32 sum of R*S products (forward, input gradient: at most M*R*S) or, for the
weight gradient, of N*P*Q products in 8 float32 lanes per image, added up in double.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from gradcheck import check_gradients
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref
from test_conv import check_every_algorithm
from toolkit import assert_close, conv_bound

import fastconv
from fastconv import _core
from fastconv import conv as conv_mod

BOUND = conv_bound("depthwise")


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


def run_kernels(rng, N, C, H, W, M, R, S, stride=1, padding=0, dilation=1, bias=True):
    """The three compiled passes into NaN-filled outputs, each checked against the float64 reference."""
    (sh, sw), (ph, pw), (dh, dwl) = pair(stride), pair(padding), pair(dilation)
    p = _core.Conv2dParams(N, C, H, W, C * M, R, S, sh, sw, ph, pw, dh, dwl, C)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((C * M, 1, R, S), dtype=np.float32)
    b = rng.standard_normal(C * M, dtype=np.float32) if bias else None
    dy = rng.standard_normal((N, C * M, p.P, p.Q), dtype=np.float32)
    kw = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dwl), groups=C)
    saved = [a.copy() for a in (x, w, dy)]
    y = np.full((N, C * M, p.P, p.Q), np.nan, np.float32)
    _core.conv2d_forward("depthwise", p, x, w, b, y)
    dx = np.full(x.shape, np.nan, np.float32)
    _core.conv2d_backward_input("depthwise", p, dy, w, dx)
    dw = np.full(w.shape, np.nan, np.float32)
    _core.conv2d_backward_weight("depthwise", p, x, dy, dw)
    for a, s in zip((x, w, dy), saved):
        np.testing.assert_array_equal(a, s)  # inputs untouched
    assert_close(y, conv2d_ref(x, w, b, **kw), BOUND, what="forward")
    assert_close(dx, conv2d_input_grad_ref(x.shape, w, dy, **kw), BOUND, what="input")
    assert_close(dw, conv2d_weight_grad_ref(x, w.shape, dy, **kw), BOUND, what="weight")
    return y, dx, dw


# (N, C, H, W, multiplier, R, S, stride, padding, dilation)
SHAPES = [
    (2, 3, 9, 11, 1, 3, 3, 1, 1, 1),  # 3x3 stride 1 (MobileNet), odd widths
    (2, 4, 13, 17, 1, 3, 3, 2, 1, 1),  # 3x3 stride 2
    (1, 5, 14, 14, 1, 5, 5, 2, 2, 1),  # MobileNetV3's 5x5 stride 2
    (1, 6, 31, 37, 1, 7, 7, 1, 3, 1),  # ConvNeXt's 7x7, primes
    (2, 3, 40, 45, 1, 3, 3, 3, 1, 1),  # stride 3: the generic column phases
    (2, 3, 10, 23, 2, 3, 5, (2, 3), (1, 2), (2, 1)),  # multiplier 2, everything asymmetric
    (1, 2, 1, 1, 1, 1, 1, 1, 0, 1),  # 1x1 map, 1x1 kernel
    (2, 2, 1, 1, 3, 3, 3, 1, 1, 1),  # 1x1 map, padded 3x3: only the centre tap sees data
    (2, 3, 5, 5, 1, 5, 5, 1, 0, 1),  # kernel = input
    (3, 2, 6, 6, 1, 2, 2, 5, 0, 1),  # stride > kernel: phases with no tap at all
    (1, 2, 3, 3, 2, 3, 3, 4, 0, 1),  # stride > input
    (2, 4, 8, 8, 2, 3, 3, 2, 3, 3),  # padding and dilation larger than the stride
    (1, 7, 2, 37, 1, 1, 3, (1, 2), (0, 1), 1),  # rows shorter than the kernel's reach
    (1, 3, 33, 67, 1, 3, 3, 1, 1, 1),  # rows of 32-column blocks, vectors and a tail
    (2, 1, 4, 4, 1, 4, 4, 1, (2, 1), 1),  # even kernel, C = 1
    (1, 13, 7, 7, 1, 3, 3, 1, 1, 1),  # MobileNet's 7x7 maps
    (1, 11, 4, 4, 1, 3, 3, 2, 1, 1),  # stride 2 down to 2x2
    (1, 2, 9, 9, 1, 3, 3, 1, 4, 1),  # padding beyond the kernel's reach: zero border outputs
]


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s[:7])) for s in SHAPES])
def test_kernels_match_the_reference(rng, shape):
    run_kernels(rng, *shape)


def test_forward_without_bias(rng):
    run_kernels(rng, 2, 5, 9, 8, 2, 3, 3, 1, 1, bias=False)


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[2], SHAPES[5], SHAPES[9]])
def test_every_algorithm_and_auto_agree(rng, shape):
    """The public functions, every registered algorithm that applies and auto, on depthwise problems."""
    N, C, H, W, M, R, S, stride, padding, dilation = shape
    ran = check_every_algorithm(rng, N, C, H, W, C * M, R, S, pair(stride), pair(padding), pair(dilation), groups=C)
    assert {("depthwise", p) for p in conv_mod.PASSES} <= ran


@st.composite
def depthwise_problems(draw):
    C, M = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    R, S = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    H = draw(st.integers(max(1, dilation[0] * (R - 1) + 1 - 2 * padding[0]), 40))
    W = draw(st.integers(max(1, dilation[1] * (S - 1) + 1 - 2 * padding[1]), 40))
    return draw(st.integers(1, 3)), C, H, W, M, R, S, stride, padding, dilation


@settings(max_examples=40, deadline=None)
@given(problem=depthwise_problems(), seed=st.integers(0, 2**32 - 1))
def test_random_shapes(problem, seed):
    run_kernels(np.random.default_rng(seed), *problem)


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_thread_counts_agree(rng, threads, nthreads):
    """Batch 1 with more channels than threads, and more images than channels: bitwise the same
    result at any thread count (each plane and each channel's weights are one thread's work)."""
    outs = {}
    for n in (1, nthreads):
        fastconv.set_num_threads(n)
        for shape in [(1, 37, 12, 11, 1, 3, 3, 2, 1, 1), (5, 2, 9, 20, 2, 5, 5, 1, 2, 1)]:
            outs.setdefault(shape, []).append(run_kernels(np.random.default_rng(7), *shape))
    for (a, b) in outs.values():
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


def test_portable_path_agrees():
    """FASTCONV_CPU=portable runs the non-AVX2 loops through the same checks."""
    code = ("import sys; sys.path.insert(0, 'tests'); import numpy as np, fastconv; import test_depthwise as t;"
            "assert fastconv.info()['cpu_path'] == 'portable';"
            "[t.run_kernels(np.random.default_rng(1), *s) for s in t.SHAPES]")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, FASTCONV_CPU="portable"), cwd=root)


def test_empty_batch():
    x = np.zeros((0, 4, 8, 8), np.float32)
    w = np.ones((8, 1, 3, 3), np.float32)
    y = fastconv.conv2d(x, w, padding=1, groups=4, algo="depthwise")
    assert y.shape == (0, 8, 8, 8)
    assert fastconv.grad.conv2d_input(x.shape, w, y, padding=1, groups=4, algo="depthwise").shape == x.shape
    dw = fastconv.grad.conv2d_weight(x, w.shape, y, padding=1, groups=4, algo="depthwise")
    assert dw.shape == w.shape and not dw.any()
    # the kernels themselves leave an empty batch's outputs alone and zero the weight gradient
    p = _core.Conv2dParams(0, 4, 8, 8, 8, 3, 3, pad_h=1, pad_w=1, groups=4)
    dw = np.full(w.shape, np.nan, np.float32)
    _core.conv2d_backward_weight("depthwise", p, x, y, dw)
    assert not dw.any()


def test_finite_differences():
    """Autograd through nn.functional.conv2d(algo="depthwise"): both gradients against central
    differences (a linear map: exact up to float32 rounding)."""
    rng = np.random.default_rng(3)
    x = fastconv.Tensor(rng.standard_normal((2, 3, 9, 8)).astype(np.float32), requires_grad=True)
    w = fastconv.Tensor(rng.standard_normal((6, 1, 3, 3)).astype(np.float32), requires_grad=True)
    kw = dict(stride=2, padding=1, groups=3, algo="depthwise")
    check_gradients(lambda a, b: fastconv.nn.functional.conv2d(a, b, **kw), [x, w], eps=0.5, rtol=1e-3, atol=1e-3)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 6, 15, 13), dtype=np.float32)
    w = rng.standard_normal((12, 1, 5, 5), dtype=np.float32)
    kw = dict(stride=2, padding=2, groups=6)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, **kw)
    g = rng.standard_normal(tuple(yt.shape), dtype=np.float32)
    yt.backward(torch.tensor(g))
    assert_close(fastconv.conv2d(x, w, algo="depthwise", **kw), yt.detach().numpy(), BOUND, what="forward")
    assert_close(fastconv.grad.conv2d_input(x.shape, w, g, algo="depthwise", **kw), xt.grad.numpy(), BOUND, what="input")
    assert_close(fastconv.grad.conv2d_weight(x, w.shape, g, algo="depthwise", **kw), wt.grad.numpy(), BOUND, what="weight")


def test_registry_lists_it_only_for_one_channel_per_group():
    assert "depthwise" in fastconv.conv_algorithms((1, 8, 9, 9), (8, 1, 3, 3), padding=1, groups=8)
    assert "depthwise" in fastconv.conv_algorithms((1, 8, 9, 9), (16, 1, 3, 3), groups=8, pass_="weight")
    assert "depthwise" in fastconv.conv_algorithms((1, 1, 9, 9), (3, 1, 3, 3))  # C = groups = 1
    assert "depthwise" not in fastconv.conv_algorithms((1, 8, 9, 9), (8, 2, 3, 3), groups=4)
    assert "depthwise" not in fastconv.conv_algorithms((1, 8, 9, 9), (8, 8, 3, 3))
    with pytest.raises(ValueError, match="algo: 'depthwise' cannot run .*groups == C"):
        fastconv.conv2d(np.zeros((1, 8, 9, 9), np.float32), np.zeros((8, 2, 3, 3), np.float32), groups=4,
                        algo="depthwise")


def test_kernel_refuses_other_groupings():
    """A direct call with two channels per group is refused, not computed with the wrong weights."""
    p = _core.Conv2dParams(1, 4, 6, 6, 4, 3, 3, groups=2)
    x, w = np.zeros((1, 4, 6, 6), np.float32), np.zeros((4, 2, 3, 3), np.float32)
    y = np.zeros((1, 4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="one input channel per group"):
        _core.conv2d_forward("depthwise", p, x, w, None, y)
    with pytest.raises(ValueError, match="one input channel per group"):
        _core.conv2d_backward_input("depthwise", p, y, w, x)
    with pytest.raises(ValueError, match="one input channel per group"):
        _core.conv2d_backward_weight("depthwise", p, x, y, w)



def test_narrow_rows_at_every_padding():
    """Rows of 1-16 columns at column stride 1 and 2 with padding 0-4: the packing writes short
    rows as whole vectors whose spare lanes are zeros; they must land only on padding or on data
    written after them (a stride-2 row's lower phase was once stored after the upper one and
    zeroed its first columns with padding 3-4)."""
    rng = np.random.default_rng(5)
    for W in range(1, 17):
        for pw in range(5):
            for S in (1, 3, 5):
                for sw in (1, 2):
                    if W + 2 * pw >= S:
                        run_kernels(rng, 1, 2, 4, W, 1, 3, S, (1, sw), (1, pw), 1)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", [
    ((1, 32, 16, 16), (32, 1, 3, 3), 1, 1),  # MobileNetV2
    ((2, 24, 15, 15), (24, 1, 5, 5), 2, 2),  # MobileNetV3 / EfficientNet
    ((1, 16, 9, 9), (16, 1, 7, 7), 1, 3),  # ConvNeXt
])
def test_auto_runs_the_depthwise_kernel_on_depthwise_layers(monkeypatch, x_shape, w_shape, stride, padding):
    """auto's depthwise rule is reached (no earlier rule takes these layers) in every pass."""
    ran = []
    for name in ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"):
        real = getattr(_core, name)
        monkeypatch.setattr(_core, name, lambda kernel, *a, real=real: (ran.append(kernel), real(kernel, *a))[1])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    kw = dict(stride=stride, padding=padding, groups=x_shape[1])
    y = fastconv.conv2d(x, w, **kw)
    fastconv.grad.conv2d_input(x.shape, w, y, **kw)
    fastconv.grad.conv2d_weight(x, w.shape, y, **kw)
    assert ran == ["depthwise"] * 3
