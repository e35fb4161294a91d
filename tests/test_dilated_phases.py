"""The dilated_phases algorithm: a stride-1 dilated convolution as an undilated one over the
input's phase sub-images (csrc/conv/conv2d_phases.cpp, fastconv._conv_algorithms._dilated_phases).

The layout moves are exact (round trips compared bit for bit); the convolutions are compared with
the float64 reference in every pass (bound: the registry's, 5e-4, that of the Winograd F(4x4) it
runs inside; the other inner kernels are plain sums, 1e-5 by the same reference); auto's pick is
checked where the phase problem is Winograd's and where it is not.
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


def _params(N, C, H, W, K, R, S, pad, dil, groups=1):
    return _core.Conv2dParams(N, C, H, W, K, R, S, 1, 1, pad[0], pad[1], dil[0], dil[1], groups)


@st.composite
def dilated_problems(draw):
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    pad = (draw(st.integers(0, 7)), draw(st.integers(0, 7)))
    H = draw(st.integers(max(1, dil[0] * (R - 1) + 1 - 2 * pad[0]), 23))
    W = draw(st.integers(max(1, dil[1] * (S - 1) + 1 - 2 * pad[1]), 23))
    return draw(st.integers(1, 3)), draw(st.integers(1, 4)), H, W, draw(st.integers(1, 4)), R, S, pad, dil


@settings(max_examples=60, deadline=None)
@given(problem=dilated_problems(), seed=st.integers(0, 2**32 - 1))
def test_layout_moves_round_trip_exactly(problem, seed):
    """merge_input(split_input(x)) == x and merge_output(split_output(y)) == y, bit for bit, for
    padding that is a multiple of the dilation (the sub-images keep padding) and not (materialised),
    phases of unequal length (H not a multiple of the dilation) included; the phase problem's
    output is ceil(P / d) x ceil(Q / d)."""
    N, C, H, W, K, R, S, pad, dil = problem
    rng = np.random.default_rng(seed)
    p = _params(N, C, H, W, K, R, S, pad, dil)
    sub = _core.conv2d_phase_params(p)
    assert (sub.N, sub.P, sub.Q) == (N * dil[0] * dil[1], -(-p.P // dil[0]), -(-p.Q // dil[1]))
    assert (sub.dil_h, sub.dil_w, sub.stride_h, sub.stride_w) == (1, 1, 1, 1)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    xs = np.full((sub.N, C, sub.H, sub.W), np.nan, np.float32)
    _core.conv2d_phases("split_input", p, x, xs)
    assert np.isfinite(xs).all()  # every element written: x's values or padding zeros
    back = np.full_like(x, np.nan)
    _core.conv2d_phases("merge_input", p, xs, back)
    np.testing.assert_array_equal(back, x)
    y = rng.standard_normal((N, K, p.P, p.Q), dtype=np.float32)
    ys = np.full((sub.N, K, sub.P, sub.Q), np.nan, np.float32)
    _core.conv2d_phases("split_output", p, y, ys)
    back = np.full_like(y, np.nan)
    _core.conv2d_phases("merge_output", p, ys, back)
    np.testing.assert_array_equal(back, y)


def test_layout_moves_check_their_arguments():
    p = _params(1, 2, 8, 8, 3, 3, 3, (2, 2), (2, 2))
    sub = _core.conv2d_phase_params(p)
    x = np.zeros((1, 2, 8, 8), np.float32)
    with pytest.raises(ValueError, match="out: expected shape"):
        _core.conv2d_phases("split_input", p, x, np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="src: expected a C-contiguous float32"):
        _core.conv2d_phases("split_input", p, x.astype(np.float64), np.zeros((sub.N, 2, sub.H, sub.W), np.float32))
    with pytest.raises(ValueError, match="move: unknown phase move"):
        _core.conv2d_phases("split", p, x, x)
    strided = _core.Conv2dParams(1, 2, 8, 8, 3, 3, 3, 2, 2, 2, 2, 2, 2, 1)
    with pytest.raises(ValueError, match="stride 1"):
        _core.conv2d_phases("split_input", strided, x, x)


# (N, C, H, W, K, R, S, padding, dilation, groups)
CASES = [
    (1, 16, 20, 20, 16, 3, 3, (2, 2), (2, 2), 1),  # DeepLab-like: auto runs Winograd on the phases
    (2, 12, 19, 17, 8, 3, 3, (3, 2), (2, 2), 1),  # padding not a multiple of dilation (rows)
    (1, 10, 23, 13, 9, 3, 3, (4, 4), (4, 4), 1),  # 23 rows over 4 phases: unequal phases
    (2, 9, 16, 11, 7, 3, 1, (3, 0), (3, 1), 1),  # ERFNet-like 3x1, dilated rows only
    (1, 8, 14, 14, 12, 3, 3, (2, 2), (2, 2), 2),  # groups
    (2, 6, 13, 13, 6, 3, 3, (2, 2), (2, 2), 6),  # depthwise
    (1, 3, 9, 9, 4, 5, 5, (6, 6), (3, 3), 1),  # padding wider than the image's phases
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])))
def test_every_algorithm_on_dilated_layers(rng, case):
    N, C, H, W, K, R, S, pad, dil, groups = case
    ran = check_every_algorithm(rng, N, C, H, W, K, R, S, (1, 1), pad, dil, groups)
    assert {("dilated_phases", p) for p in conv_mod.PASSES} <= ran


def test_auto_runs_winograd_on_the_phases_of_a_deeplab_layer(rng, monkeypatch):
    """DeepLab's 3x3 dilation-4 layer (scaled down): auto picks dilated_phases in every pass, and
    dilated_phases hands Winograd the phase problem."""
    x_shape, w_shape, kw = (1, 64, 28, 28), (64, 64, 3, 3), dict(padding=4, dilation=4)
    plan = conv_mod.conv_plan(x_shape, w_shape, 1, 4, 4, 1)
    sub = _core.conv2d_phase_params(plan.params)
    assert (sub.N, sub.H, sub.W, sub.pad_h, sub.pad_w) == (16, 7, 7, 1, 1)
    for pass_ in conv_mod.PASSES:
        assert conv_mod.select_algorithm(plan.params, pass_) == "dilated_phases", pass_
        assert conv_mod.select_algorithm(sub, pass_) in ("winograd", "winograd_f2", "winograd_f4"), pass_
    inner = []
    forward = _core.conv2d_forward
    monkeypatch.setattr(_core, "conv2d_forward", lambda k, *a: (inner.append(k), forward(k, *a))[1])
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    y = fastconv.conv2d(x, w, **kw)
    assert inner and inner[0].startswith("winograd")
    assert_close(y, conv2d_ref(x, w, padding=(4, 4), dilation=(4, 4)), 5e-4, what="auto")


@pytest.mark.parametrize("pass_", conv_mod.PASSES)
def test_auto_keeps_other_dilated_layers_off_the_phases(pass_):
    """Dilated depthwise layers go to the depthwise kernel (it takes a dilation); a dilated kernel
    whose phase problem no transform runs (5x5 with 4 channels) stays with the direct kernels."""
    depthwise = conv_mod.conv_plan((1, 32, 33, 33), (32, 1, 3, 3), 1, 2, 2, 32).params
    assert conv_mod.select_algorithm(depthwise, pass_) == "depthwise"
    few = conv_mod.conv_plan((1, 4, 20, 20), (4, 4, 5, 5), 1, 4, 2, 1).params
    assert conv_mod.select_algorithm(few, pass_) != "dilated_phases"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_input_gives_the_definitions_mask(rng, bad):
    """Winograd inside the phases would spread a NaN over a tile: the rerun gives the definition's."""
    x = rng.standard_normal((1, 16, 20, 20), dtype=np.float32)
    w = rng.standard_normal((16, 16, 3, 3), dtype=np.float32)
    x[0, 3, 7, 9] = bad
    ref = conv2d_ref(x, w, padding=(2, 2), dilation=(2, 2))
    for algo in ("dilated_phases", "auto"):
        ours = fastconv.conv2d(x, w, padding=2, dilation=2, algo=algo)
        assert_same_nonfinite(ours, ref, algo)


def test_gradients_of_a_training_batch(rng):
    """Batch 8, 24 channels, dilation 3 on 17x17 (phases of 6 and 5 rows): all three passes."""
    x = rng.standard_normal((8, 24, 17, 17), dtype=np.float32)
    w = rng.standard_normal((24, 24, 3, 3), dtype=np.float32)
    kw = dict(padding=(3, 3), dilation=(3, 3))
    y = fastconv.conv2d(x, w, algo="dilated_phases", **kw)
    assert relative_error(y, conv2d_ref(x, w, **kw)) < 5e-4
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = fastconv.grad.conv2d_input(x.shape, w, dy, algo="dilated_phases", **kw)
    assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, **kw)) < 5e-4
    dw = fastconv.grad.conv2d_weight(x, w.shape, dy, algo="dilated_phases", **kw)
    assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy, **kw)) < 5e-4


def test_bad_input_is_refused_before_the_phases(rng):
    """dilated_phases sits behind the same checks as every algorithm, and names what it needs."""
    x = rng.standard_normal((1, 4, 12, 12), dtype=np.float32)
    w = rng.standard_normal((4, 4, 3, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="x"):
        fastconv.conv2d(x.astype(np.float64), w, padding=2, dilation=2, algo="dilated_phases")
    with pytest.raises(ValueError, match="weight"):
        fastconv.conv2d(x, w[:, :3], padding=2, dilation=2, algo="dilated_phases")
    with pytest.raises(ValueError, match="needs a dilated kernel"):
        fastconv.conv2d(x, w, padding=1, algo="dilated_phases")
    with pytest.raises(ValueError, match="needs stride 1"):
        fastconv.conv2d(x, w, stride=2, padding=2, dilation=2, algo="dilated_phases")
    with pytest.raises(ValueError, match="grad_output: expected shape"):
        fastconv.grad.conv2d_input(x.shape, w, np.zeros((1, 4, 5, 5), np.float32), padding=2, dilation=2,
                                   algo="dilated_phases")
