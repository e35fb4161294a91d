"""The space_to_depth algorithm: a strided convolution as a stride-1 one over the input's stride
phases stacked as channels (csrc/conv/conv2d_phases.cpp, fastconv._conv_algorithms._space_to_depth).

The layout moves are exact (the split weight is compared with the definition, bit for bit); the
convolutions are compared with the float64 reference in every pass (bound: the registry's, 5e-4,
that of the Winograd F(4x4) it runs inside); auto's pick is checked where the phase problem is
Winograd's and where it is not.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _core
from fastconv import conv as conv_mod
from reference import conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref, relative_error
from test_conv import check_every_algorithm
from toolkit import assert_close, assert_same_nonfinite


def _params(N, C, H, W, K, R, S, stride, pad, groups=1):
    return _core.Conv2dParams(N, C, H, W, K, R, S, stride[0], stride[1], pad[0], pad[1], 1, 1, groups)


@st.composite
def strided_problems(draw):
    R, S = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    stride = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    pad = (draw(st.integers(0, R - 1)), draw(st.integers(0, S - 1)))
    H = draw(st.integers(max(1, R - 2 * pad[0]), 30))
    W = draw(st.integers(max(1, S - 2 * pad[1]), 30))
    return draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W, draw(st.integers(1, 3)), R, S, stride, pad


@settings(max_examples=60, deadline=None)
@given(problem=strided_problems(), seed=st.integers(0, 2**32 - 1))
def test_layout_moves_follow_the_definition(problem, seed):
    """split_input puts padded input row a + s i, column b + s j of channel c at channel
    (c * s_h + a) * s_w + b, row i, column j (zero in the padding and past it); split_weight puts
    tap (a + s u, b + s v) at (u, v) of the same channel (zero past R, S); merge_weight inverts
    split_weight exactly; the problem keeps the output size (strides up to 5, kernels up to 11x11,
    stride above the kernel included)."""
    N, C, H, W, K, R, S, stride, pad = problem
    sh, sw = stride
    rng = np.random.default_rng(seed)
    p = _params(N, C, H, W, K, R, S, stride, pad)
    sub = _core.conv2d_space_to_depth_params(p)
    assert (sub.C, sub.R, sub.S, sub.P, sub.Q) == (C * sh * sw, -(-R // sh), -(-S // sw), p.P, p.Q)
    assert (sub.stride_h, sub.stride_w, sub.pad_h, sub.pad_w) == (1, 1, 0, 0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    xs = np.full((N, sub.C, sub.H, sub.W), np.nan, np.float32)
    _core.conv2d_space_to_depth("split_input", p, x, xs)
    padded = np.zeros((N, C, sub.H * sh + pad[0] + H, sub.W * sw + pad[1] + W), np.float32)
    padded[:, :, pad[0]:pad[0] + H, pad[1]:pad[1] + W] = x
    for a in range(sh):
        for b in range(sw):
            want = padded[:, :, a:a + sh * sub.H:sh, b:b + sw * sub.W:sw]
            np.testing.assert_array_equal(xs[:, a * sw + b::sh * sw], want)
    w = rng.standard_normal((K, C, R, S), dtype=np.float32)
    ws = np.full((K, sub.C, sub.R, sub.S), np.nan, np.float32)
    _core.conv2d_space_to_depth("split_weight", p, w, ws)
    taps = np.zeros((K, C, sub.R * sh, sub.S * sw), np.float32)
    taps[:, :, :R, :S] = w
    for a in range(sh):
        for b in range(sw):
            np.testing.assert_array_equal(ws[:, a * sw + b::sh * sw], taps[:, :, a::sh, b::sw])
    back = np.full_like(w, np.nan)
    _core.conv2d_space_to_depth("merge_weight", p, ws, back)
    np.testing.assert_array_equal(back, w)


CASES = [
    # N, C, H, W, K, R, S, stride, pad, groups
    (2, 3, 37, 41, 8, 11, 11, (4, 4), (2, 2), 1),  # AlexNet's first layer, scaled down
    (1, 4, 13, 11, 6, 5, 5, (2, 2), (2, 2), 1),
    (2, 6, 15, 16, 4, 5, 3, (2, 3), (1, 0), 2),  # rectangular kernel and strides, groups
    (1, 2, 9, 9, 3, 3, 3, (3, 3), (0, 0), 1),  # one tap per phase: a 1x1 problem
    (1, 2, 7, 8, 5, 2, 2, (3, 3), (1, 1), 1),  # stride above the kernel
    (1, 3, 5, 5, 2, 5, 5, (2, 2), (0, 0), 1),  # kernel = input
    (3, 5, 17, 13, 7, 6, 6, (2, 2), (3, 1), 1),  # primes, whole 3x3 phases
]


@pytest.mark.parametrize("case", CASES)
def test_every_algorithm_on_strided_layers(rng, case):
    N, C, H, W, K, R, S, stride, pad, groups = case
    ran = check_every_algorithm(rng, N, C, H, W, K, R, S, stride, pad, (1, 1), groups)
    assert {("space_to_depth", p) for p in conv_mod.PASSES} <= ran


def test_auto_runs_winograd_on_the_phases_of_alexnets_first_layer(rng, monkeypatch):
    """AlexNet's 11x11 stride-4 layer: auto picks space_to_depth in every pass, and space_to_depth
    hands Winograd the 3x3 problem over 48 channels of 57x57."""
    x_shape, w_shape = (1, 3, 224, 224), (64, 3, 11, 11)
    plan = conv_mod.conv_plan(x_shape, w_shape, 4, 2, 1, 1)
    sub = _core.conv2d_space_to_depth_params(plan.params)
    assert (sub.C, sub.H, sub.W, sub.R, sub.S) == (48, 57, 57, 3, 3)
    for pass_ in conv_mod.PASSES:
        assert conv_mod.select_algorithm(plan.params, pass_) == "space_to_depth", pass_
        assert conv_mod.select_algorithm(sub, pass_) in ("winograd", "winograd_f2", "winograd_f4"), pass_
    inner = []
    forward = _core.conv2d_forward
    monkeypatch.setattr(_core, "conv2d_forward", lambda k, *a: (inner.append(k), forward(k, *a))[1])
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    y = fastconv.conv2d(x, w, stride=4, padding=2)
    assert inner and inner[0].startswith("winograd")
    assert_close(y, conv2d_ref(x, w, stride=(4, 4), padding=(2, 2)), 5e-4, what="auto")


def test_auto_runs_the_fft_on_the_phases_of_a_deepspeech2_layer(rng, monkeypatch):
    """DeepSpeech2's 21x11 stride-2x1 layer (scaled down to 8 channels on 41x200): its phase problem
    (16 channels, 11x11 taps, stride 1) is the FFT's; auto runs it through the phases in every
    pass, and the results match the definition within the FFT's bound."""
    x_shape, w_shape, kw = (1, 8, 41, 200), (16, 8, 21, 11), dict(stride=(2, 1), padding=(10, 5))
    plan = conv_mod.conv_plan(x_shape, w_shape, (2, 1), (10, 5), 1, 1)
    sub = _core.conv2d_space_to_depth_params(plan.params)
    assert (sub.C, sub.R, sub.S, sub.stride_h) == (16, 11, 11, 1)
    for pass_ in conv_mod.PASSES:
        assert conv_mod.select_algorithm(plan.params, pass_) == "space_to_depth", pass_
        assert conv_mod.select_algorithm(sub, pass_) == "fft", pass_
    inner = []
    backward_input = _core.conv2d_backward_input
    monkeypatch.setattr(_core, "conv2d_backward_input", lambda k, *a: (inner.append(k), backward_input(k, *a))[1])
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    y = fastconv.conv2d(x, w, **kw)
    assert_close(y, conv2d_ref(x, w, **kw), 1e-4, what="auto forward")
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = fastconv.grad.conv2d_input(x_shape, w, dy, **kw)
    assert inner == ["fft"]
    assert_close(dx, conv2d_input_grad_ref(x_shape, w, dy, **kw), 1e-4, what="auto input")
    dw = fastconv.grad.conv2d_weight(x, w_shape, dy, **kw)
    assert_close(dw, conv2d_weight_grad_ref(x, w_shape, dy, **kw), 1e-4, what="auto weight")


@pytest.mark.parametrize("pass_", conv_mod.PASSES)
def test_auto_keeps_other_strided_layers_off_the_phases(pass_):
    """3x3 stride 2 (2x2 phase kernels: no Winograd), a 3-channel 5x5 stem (12 phase channels),
    5x5 stride 2 over 64 channels at batch 1 (256) and over 32 channels on 16x16 outputs at batch 1
    (16 tiles): measured slower through the phases, they keep their kernels; so does ResNet's 7x7
    stem (not measured through the phases, whose forward the cost model would give the FFT)."""
    for x_shape, w_shape, pad in [((8, 128, 28, 28), (256, 128, 3, 3), 1), ((4, 3, 128, 128), (32, 3, 5, 5), 2),
                                  ((1, 64, 32, 32), (128, 64, 5, 5), 2), ((1, 32, 32, 32), (64, 32, 5, 5), 2),
                                  ((1, 3, 224, 224), (64, 3, 7, 7), 3)]:
        params = conv_mod.conv_plan(x_shape, w_shape, 2, pad, 1, 1).params
        assert conv_mod.select_algorithm(params, pass_) != "space_to_depth", (x_shape, w_shape)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_input_gives_the_definitions_mask(rng, bad):
    """Winograd inside the phases would spread a NaN over a tile: the rerun gives the definition's."""
    x = rng.standard_normal((1, 3, 67, 67), dtype=np.float32)
    w = rng.standard_normal((16, 3, 11, 11), dtype=np.float32)
    x[0, 1, 30, 41] = bad
    ref = conv2d_ref(x, w, stride=(4, 4), padding=(2, 2))
    for algo in ("space_to_depth", "auto"):
        ours = fastconv.conv2d(x, w, stride=4, padding=2, algo=algo)
        assert_same_nonfinite(ours, ref, algo)


def test_gradients_of_a_training_batch(rng):
    """Batch 8 of AlexNet's first layer at 67x67 (16x16 outputs): all three passes, inputs untouched."""
    x = rng.standard_normal((8, 3, 67, 67), dtype=np.float32)
    w = rng.standard_normal((32, 3, 11, 11), dtype=np.float32)
    kw = dict(stride=(4, 4), padding=(2, 2))
    copies = (x.copy(), w.copy())
    y = fastconv.conv2d(x, w, algo="space_to_depth", **kw)
    assert relative_error(y, conv2d_ref(x, w, **kw)) < 5e-4
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = fastconv.grad.conv2d_input(x.shape, w, dy, algo="space_to_depth", **kw)
    assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, **kw)) < 5e-4
    dw = fastconv.grad.conv2d_weight(x, w.shape, dy, algo="space_to_depth", **kw)
    assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy, **kw)) < 5e-4
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(w, copies[1])


def test_bad_input_is_refused_before_the_phases(rng):
    """space_to_depth sits behind the same checks as every algorithm, and names what it needs; the
    layout binding checks its arrays' shapes."""
    x = rng.standard_normal((1, 4, 12, 12), dtype=np.float32)
    w = rng.standard_normal((4, 4, 5, 5), dtype=np.float32)
    with pytest.raises(TypeError, match="x"):
        fastconv.conv2d(x.astype(np.float64), w, stride=2, algo="space_to_depth")
    with pytest.raises(ValueError, match="weight"):
        fastconv.conv2d(x, w[:, :3], stride=2, algo="space_to_depth")
    with pytest.raises(ValueError, match="needs a stride above 1"):
        fastconv.conv2d(x, w, padding=2, algo="space_to_depth")
    with pytest.raises(ValueError, match="needs dilation 1"):
        fastconv.conv2d(x, w, stride=2, padding=4, dilation=2, algo="space_to_depth")
    with pytest.raises(ValueError, match="grad_output: expected shape"):
        fastconv.grad.conv2d_input(x.shape, w, np.zeros((1, 4, 5, 5), np.float32), stride=2, algo="space_to_depth")
    p = _params(1, 4, 12, 12, 4, 5, 5, (2, 2), (0, 0))
    with pytest.raises(ValueError, match="src"):
        _core.conv2d_space_to_depth("split_input", p, x[:, :3], np.empty((1, 16, 6, 6), np.float32))
    with pytest.raises(ValueError, match="out"):
        _core.conv2d_space_to_depth("split_input", p, x, np.empty((1, 16, 5, 5), np.float32))
    with pytest.raises(ValueError, match="move"):
        _core.conv2d_space_to_depth("shuffle", p, x, np.empty((1, 16, 6, 6), np.float32))
