"""Pooling kernels against the float64 references in reference.py (and torch when installed), on
every backend (the ``device`` fixture: the CPU and, when present, the CUDA device; the device runs
the smaller case lists and fewer hypothesis examples, since CI runs it on a slow CPU stand-in).

Bounds: max pooling selects input values, so forward values and indices must match exactly; the
max backward sums at most a few float32 gradients per input (relative error <= 1e-6); average
pooling sums at most k*k float32 values then divides (relative error <= 1e-6 on these sizes).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _core
from fastconv.pooling import pool_params
from reference import (
    adaptive_avg_pool2d_backward_ref,
    adaptive_avg_pool2d_ref,
    avg_pool2d_backward_ref,
    avg_pool2d_ref,
    max_pool2d_backward_ref,
    max_pool2d_ref,
    pool_out_size,
    pool_taps,
    relative_error,
)
from toolkit import POOL_BOUNDS, WRONG_DTYPE, nan_filled, on_device, run_kernel, to_numpy

# Relative error bounds vs float64, per pass (fastconv._error_bounds says why they are these).
AVG_TOL = POOL_BOUNDS["forward"]
GRAD_TOL = POOL_BOUNDS["input"]

# (N, C, H, W), kernel, stride, padding, ceil_mode: the hot cases and the odd ones.
CASES = [
    ((2, 3, 28, 28), (2, 2), (2, 2), (0, 0), False),  # LeNet
    ((1, 4, 33, 40), (2, 2), (2, 2), (0, 0), False),  # odd H: last row dropped
    ((1, 4, 33, 41), (2, 2), (2, 2), (0, 0), True),   # ceil_mode keeps a clipped last window
    ((2, 2, 29, 37), (3, 3), (2, 2), (1, 1), False),  # ResNet stem
    ((2, 2, 29, 37), (3, 3), (2, 2), (1, 1), True),
    ((1, 3, 17, 23), (3, 3), (1, 1), (1, 1), False),  # stride 1, padding
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), False),    # 1x1 image
    ((3, 1, 7, 5), (7, 5), (1, 1), (0, 0), False),    # kernel == input
    ((1, 2, 13, 31), (2, 3), (5, 4), (1, 1), True),   # stride > kernel, rectangular
    ((1, 2, 11, 50), (1, 1), (3, 3), (0, 0), True),
    ((1, 1, 5, 40), (4, 2), (1, 2), (2, 1), True),    # padding == half the kernel
    ((2, 3, 6, 19), (3, 2), (3, 1), (0, 1), False),
    ((2, 3, 16, 16), (3, 3), (2, 2), (1, 1), False),  # 7 interior outputs per row: the 4-wide path
    ((1, 2, 9, 12), (3, 3), (1, 1), (1, 1), False),   # stride 1 with 4-7 interior outputs
    ((1, 2, 10, 13), (2, 2), (2, 2), (0, 0), True),   # 6 outputs, the last clipped
    ((2, 3, 7, 11), (3, 2), (3, 2), (0, 0), False),   # windows tile the input, a remainder on both axes
    ((5, 7, 4, 4), (2, 2), (2, 2), (0, 0), False),    # DenseNet transition on a 4x4 map
]


def run_kernels(x, kernel_size, stride, padding, ceil_mode, count_include_pad=True, device="cpu"):
    """Call ``device``'s kernels directly with NaN / -1 pre-filled outputs; returns p, y_max, idx (on
    ``device``, for the backward), y_avg (y_max and y_avg as numpy arrays)."""
    p = pool_params(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad)
    out = (p.N, p.C, p.P, p.Q)
    xd = on_device(x, device)
    y, idx = nan_filled(out, device), nan_filled(out, device, np.int64)
    run_kernel(device, "max_pool2d_forward", p, xd, y, idx)
    y_only = nan_filled(out, device)
    run_kernel(device, "max_pool2d_forward", p, xd, y_only, None)  # the loop without index tracking
    np.testing.assert_array_equal(to_numpy(y_only, device), to_numpy(y, device))
    y_avg = nan_filled(out, device)
    run_kernel(device, "avg_pool2d_forward", p, xd, y_avg)
    return p, to_numpy(y, device), idx, to_numpy(y_avg, device)


def check_all(x, kernel_size, stride, padding, ceil_mode, count_include_pad, rng, device="cpu"):
    p, y, idx, y_avg = run_kernels(x, kernel_size, stride, padding, ceil_mode, count_include_pad, device)
    y_ref, idx_ref = max_pool2d_ref(x, kernel_size, stride, padding, ceil_mode)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(to_numpy(idx, device), idx_ref)
    assert relative_error(y_avg, avg_pool2d_ref(x, kernel_size, stride, padding, ceil_mode, count_include_pad)) <= AVG_TOL

    dy = rng.standard_normal(y.shape).astype(np.float32)
    dyd = on_device(dy, device)
    dx = nan_filled(x.shape, device)
    run_kernel(device, "max_pool2d_backward", dyd, idx, dx)
    assert relative_error(to_numpy(dx, device), max_pool2d_backward_ref(dy, idx_ref, x.shape)) <= GRAD_TOL
    dx = nan_filled(x.shape, device)
    run_kernel(device, "avg_pool2d_backward", p, dyd, dx)
    ref = avg_pool2d_backward_ref(dy, x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad)
    assert relative_error(to_numpy(dx, device), ref) <= GRAD_TOL


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_against_reference(device, case, count_include_pad, rng):
    shape, kernel_size, stride, padding, ceil_mode = case
    x = rng.standard_normal(shape).astype(np.float32)
    check_all(x, kernel_size, stride, padding, ceil_mode, count_include_pad, rng, device)


def test_random_shapes(device):
    @settings(max_examples=25, deadline=None)
    @given(
        n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 40), w=st.integers(1, 40),
        kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 6), sw=st.integers(1, 6),
        ph=st.integers(0, 2), pw=st.integers(0, 2), ceil_mode=st.booleans(), count_include_pad=st.booleans(),
        seed=st.integers(0, 2**31),
    )
    def check(n, c, h, w, kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad, seed):
        assume(2 * ph <= kh and 2 * pw <= kw)
        assume(pool_out_size(h, kh, sh, ph, ceil_mode) >= 1 and pool_out_size(w, kw, sw, pw, ceil_mode) >= 1)
        rng = np.random.default_rng(seed)
        # Few distinct values, so windows have ties: the first maximum must win, as in PyTorch.
        x = rng.integers(-3, 4, size=(n, c, h, w)).astype(np.float32)
        check_all(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode, count_include_pad, rng, device)

    check()


def test_adaptive_random_shapes(device):
    @settings(max_examples=25, deadline=None)
    @given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 30), w=st.integers(1, 30),
           p=st.integers(1, 12), q=st.integers(1, 12), seed=st.integers(0, 2**31))
    def check(n, c, h, w, p, q, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        y = nan_filled((n, c, p, q), device)
        run_kernel(device, "adaptive_avg_pool2d_forward", on_device(x, device), y)
        assert relative_error(to_numpy(y, device), adaptive_avg_pool2d_ref(x, (p, q))) <= AVG_TOL
        dy = rng.standard_normal((n, c, p, q)).astype(np.float32)
        dx = nan_filled(x.shape, device)
        run_kernel(device, "adaptive_avg_pool2d_backward", on_device(dy, device), dx)
        assert relative_error(to_numpy(dx, device), adaptive_avg_pool2d_backward_ref(dy, x.shape)) <= GRAD_TOL

    check()


def test_ties_and_nans_in_short_rows(rng, device):
    """Rows of 4-7 interior outputs (the 4-wide vector path): ties keep the first index in row-major
    order, a NaN wins and the last NaN's index is kept, exactly as the reference scan."""
    for shape, kernel_size, stride, padding in [((2, 2, 16, 16), 3, 2, 1), ((1, 3, 6, 9), 3, 1, 1), ((1, 1, 8, 10), 2, 2, 0)]:
        x = rng.integers(0, 3, shape).astype(np.float32)  # many ties
        x[rng.random(shape) < 0.05] = np.nan
        y, idx = fastconv.max_pool2d(on_device(x, device), kernel_size, stride, padding, return_indices=True)
        y_ref, idx_ref = max_pool2d_ref(x, (kernel_size,) * 2, (stride,) * 2, (padding,) * 2)
        np.testing.assert_array_equal(to_numpy(idx, device), idx_ref)
        np.testing.assert_array_equal(to_numpy(y, device), y_ref.astype(np.float32))


def test_nan_wins_and_last_nan_index(device):
    x = np.zeros((1, 1, 4, 20), np.float32)
    x[0, 0, 0, 0] = np.nan  # first window of the first output row
    x[0, 0, 1, 3] = np.nan  # two NaNs in one window: the later (row-major) one's index
    x[0, 0, 0, 2] = np.nan
    x[0, 0, 2, 16:18] = -np.inf
    x[0, 0, 3, 16:18] = -np.inf  # an all -inf window: value -inf, index of its first element
    y, idx = (to_numpy(a, device) for a in fastconv.max_pool2d(on_device(x, device), 2, return_indices=True))
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 0
    assert np.isnan(y[0, 0, 0, 1]) and idx[0, 0, 0, 1] == 1 * 20 + 3
    assert y[0, 0, 1, 8] == -np.inf and idx[0, 0, 1, 8] == 2 * 20 + 16
    y_ref, idx_ref = max_pool2d_ref(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))


def test_public_api_non_contiguous_inputs_untouched(rng):
    """(CPU only: device arrays are always contiguous.)"""
    base = rng.standard_normal((3, 2, 20, 26)).astype(np.float32)
    x = base[:, :, ::2, 1::2].transpose(1, 0, 2, 3)  # non-contiguous (2, 3, 10, 13)
    saved = x.copy()
    y, idx = fastconv.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    y_ref, idx_ref = max_pool2d_ref(x, (3, 3), (2, 2), (1, 1), True)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(idx, idx_ref)
    a = fastconv.avg_pool2d(x, (2, 3), (1, 2), (1, 0), count_include_pad=False)
    assert relative_error(a, avg_pool2d_ref(x, (2, 3), (1, 2), (1, 0), False, False)) <= AVG_TOL
    np.testing.assert_array_equal(x, saved)  # inputs untouched


def test_public_api_3d_input_is_a_batch_of_one(rng, device):
    """Every public pooling function and gradient takes (C, H, W) as a batch of one, on each backend,
    with the values of the reference."""
    x = rng.standard_normal((3, 10, 13)).astype(np.float32)
    X = on_device(x, device)
    y3, idx3 = fastconv.max_pool2d(X, 3, 2, 1, ceil_mode=True, return_indices=True)
    y_ref, idx_ref = max_pool2d_ref(x[None], (3, 3), (2, 2), (1, 1), True)
    np.testing.assert_array_equal(to_numpy(y3, device), y_ref[0].astype(np.float32))
    np.testing.assert_array_equal(to_numpy(idx3, device), idx_ref[0])
    dy = rng.standard_normal(y3.shape).astype(np.float32)
    dx = fastconv.grad.max_pool2d(on_device(dy, device), idx3, x.shape)
    assert dx.shape == x.shape
    assert relative_error(to_numpy(dx, device), max_pool2d_backward_ref(dy[None], idx_ref, (1,) + x.shape)[0]) <= GRAD_TOL
    a = fastconv.avg_pool2d(X, (2, 3), (1, 2), (1, 0), count_include_pad=False)
    assert relative_error(to_numpy(a, device), avg_pool2d_ref(x[None], (2, 3), (1, 2), (1, 0), False, False)[0]) <= AVG_TOL
    da = fastconv.grad.avg_pool2d(on_device(np.ones(a.shape, np.float32), device), x.shape, (2, 3), (1, 2), (1, 0),
                                  False, False)
    ref = avg_pool2d_backward_ref(np.ones((1,) + a.shape), (1,) + x.shape, (2, 3), (1, 2), (1, 0), False, False)[0]
    assert da.shape == x.shape and relative_error(to_numpy(da, device), ref) <= GRAD_TOL
    g = fastconv.adaptive_avg_pool2d(X, (None, 4))
    assert g.shape == (3, 10, 4)
    assert relative_error(to_numpy(g, device), adaptive_avg_pool2d_ref(x[None], (10, 4))[0]) <= AVG_TOL
    dg = fastconv.grad.adaptive_avg_pool2d(on_device(np.ones(g.shape, np.float32), device), x.shape)
    ref = adaptive_avg_pool2d_backward_ref(np.ones((1,) + g.shape), (1,) + x.shape)[0]
    assert dg.shape == x.shape and relative_error(to_numpy(dg, device), ref) <= GRAD_TOL


def test_empty_batch(device):
    x = on_device(np.zeros((0, 3, 8, 8), np.float32), device)
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    assert y.shape == idx.shape == (0, 3, 4, 4)
    assert fastconv.grad.max_pool2d(y, idx, x.shape).shape == x.shape
    assert fastconv.avg_pool2d(x, 2).shape == (0, 3, 4, 4)
    assert fastconv.grad.avg_pool2d(fastconv.avg_pool2d(x, 2), x.shape, 2).shape == x.shape
    assert fastconv.adaptive_avg_pool2d(x, 3).shape == (0, 3, 3, 3)


def test_threads_agree(rng, threads):
    # Large enough (> 2^15 elements) that the kernels split the work across threads.
    x = rng.standard_normal((4, 8, 33, 40)).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        y, idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
        results.append((y, idx, fastconv.avg_pool2d(x, 3, 2, 1), fastconv.grad.avg_pool2d(y, x.shape, 3, 2, 1)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    y_ref, idx_ref = max_pool2d_ref(x, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(results[0][1], idx_ref)
    # An out-of-range index found by a worker thread still becomes a ValueError.
    bad = results[0][1].copy()
    bad[-1, -1, -1, -1] = x.shape[2] * x.shape[3]
    with pytest.raises(ValueError, match="indices: value"):
        fastconv.grad.max_pool2d(results[0][0], bad, x.shape)


def test_portable_path_matches_reference():
    """FASTCONV_CPU=portable runs the non-AVX2 loops (chosen once per process, hence the subprocess):
    the plain, dilated and divisor_override cases."""
    code = (
        "import numpy as np, fastconv, sys; sys.path.insert(0, 'tests'); import test_pool as t;"
        "assert fastconv.info()['cpu_path'] == 'portable';"
        "rng = np.random.default_rng(1);"
        "[t.check_all(rng.standard_normal(c[0]).astype(np.float32), *c[1:], True, rng) for c in t.CASES];"
        "[t.check_dilated(rng.integers(-3, 4, c[0]).astype(np.float32), *c[1:], rng) for c in t.DILATED_CASES];"
        "[t.check_divisor_override(rng.uniform(-1, 2, c[0]).astype(np.float32), *c[1:], rng) for c in t.DIVISOR_CASES]"
    )
    env = dict(os.environ, FASTCONV_CPU="portable")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# ---- max pooling dilation ----------------------------------------------------------------------

# (N, C, H, W), kernel, stride, padding, dilation, ceil_mode. Interior rows of >= 8 and of 4-7
# outputs take the vector paths (strides 1 and 2), the rest the scalar loop.
DILATED_CASES = [
    ((2, 3, 20, 41), (3, 3), (1, 1), (1, 1), (2, 2), False),  # 8-wide rows, stride 1
    ((1, 2, 23, 47), (3, 2), (2, 2), (1, 1), (2, 3), True),   # 8-wide rows, stride 2, ceil_mode
    ((1, 2, 12, 14), (2, 3), (1, 2), (1, 1), (3, 2), False),  # 4-7 interior outputs
    ((1, 1, 9, 31), (3, 3), (3, 3), (1, 1), (4, 2), True),    # stride 3: the scalar loop only
    ((2, 1, 7, 7), (2, 2), (1, 1), (1, 1), (6, 6), False),    # dilated window = padded input
    ((1, 3, 11, 5), (1, 1), (2, 1), (0, 0), (5, 7), True),    # a 1x1 kernel ignores dilation
    ((1, 2, 13, 29), (5, 4), (2, 1), (2, 2), (2, 1), False),  # dilation on one axis only
    ((3, 2, 5, 6), (2, 2), (5, 4), (0, 0), (2, 3), True),     # stride > dilated kernel
]


def check_dilated(x, kernel, stride, padding, dilation, ceil_mode, rng, device="cpu"):
    """The kernels with NaN / -1 pre-filled outputs against the reference: values and indices exactly,
    the backward (which follows the indices) within GRAD_TOL."""
    p = pool_params(x.shape, kernel, stride, padding, ceil_mode, dilation=dilation)
    out = (p.N, p.C, p.P, p.Q)
    xd = on_device(x, device)
    y, idx = nan_filled(out, device), nan_filled(out, device, np.int64)
    run_kernel(device, "max_pool2d_forward", p, xd, y, idx)
    y_only = nan_filled(out, device)
    run_kernel(device, "max_pool2d_forward", p, xd, y_only, None)
    y_ref, idx_ref = max_pool2d_ref(x, kernel, stride, padding, ceil_mode, dilation)
    np.testing.assert_array_equal(to_numpy(y, device), y_ref.astype(np.float32))
    np.testing.assert_array_equal(to_numpy(y_only, device), to_numpy(y, device))
    np.testing.assert_array_equal(to_numpy(idx, device), idx_ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = fastconv.grad.max_pool2d(on_device(dy, device), idx, x.shape)
    assert relative_error(to_numpy(dx, device), max_pool2d_backward_ref(dy, idx_ref, x.shape)) <= GRAD_TOL


@pytest.mark.parametrize("case", DILATED_CASES, ids=str)
def test_dilated_against_reference(device, case, rng):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = rng.integers(-3, 4, size=shape).astype(np.float32)  # ties: the first tap in row-major order wins
    x[rng.random(shape) < 0.02] = np.nan
    check_dilated(x, kernel, stride, padding, dilation, ceil_mode, rng, device)


def test_dilated_random_shapes(device):
    @settings(max_examples=30, deadline=None)
    @given(
        n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 40), w=st.integers(1, 40),
        kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
        ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 5), dw=st.integers(1, 5),
        ceil_mode=st.booleans(), seed=st.integers(0, 2**31),
    )
    def check(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode, seed):
        assume(2 * ph <= kh and 2 * pw <= kw)
        P, Q = pool_out_size(h, kh, sh, ph, ceil_mode, dh), pool_out_size(w, kw, sw, pw, ceil_mode, dw)
        assume(P >= 1 and Q >= 1)
        # Windows that hold only padding are refused (test_dilated_window_of_padding_only).
        assume(all(pool_taps(o, h, kh, sh, ph, dh) for o in range(P)) and all(pool_taps(o, w, kw, sw, pw, dw) for o in range(Q)))
        rng = np.random.default_rng(seed)
        check_dilated(rng.integers(-3, 4, size=(n, c, h, w)).astype(np.float32), (kh, kw), (sh, sw), (ph, pw), (dh, dw),
                      ceil_mode, rng, device)

    check()


def test_dilated_window_of_padding_only():
    """Where a dilated window's taps all fall in the padding (input shorter than the dilation), PyTorch
    returns -inf with an index outside the plane; fastconv refuses with a ValueError instead. Every
    small configuration on each axis: refused exactly when the reference finds such a window. (The
    refusal is the shared geometry's, before any kernel: the device's is in test_bad_forward_arguments.)"""
    refused = 0
    for n in range(1, 7):
        for k in range(1, 5):
            for s in range(1, 4):
                for pad in range(k // 2 + 1):
                    for d in range(1, 6):
                        for ceil_mode in (False, True):
                            out = pool_out_size(n, k, s, pad, ceil_mode, d)
                            if out < 1:
                                continue
                            empty = not all(pool_taps(o, n, k, s, pad, d) for o in range(out))
                            for axis in (0, 1):  # the pooled axis: H, then W (the other of size 1, window 1)
                                shape, kernel, padding, dilation = [1, 1, 1, 1], [1, 1], [0, 0], [1, 1]
                                shape[2 + axis], kernel[axis], padding[axis], dilation[axis] = n, k, pad, d
                                x = np.arange(n, dtype=np.float32).reshape(shape)
                                args = (x, kernel, s, padding, dilation, ceil_mode, True)
                                if empty:
                                    with pytest.raises(ValueError, match="dilation: a window covers only padding"):
                                        fastconv.max_pool2d(*args)
                                else:
                                    y, idx = fastconv.max_pool2d(*args)
                                    assert y.shape[2 + axis] == out
                                    y_ref, idx_ref = max_pool2d_ref(x, kernel, (s, s), padding, ceil_mode, dilation)
                                    np.testing.assert_array_equal(idx, idx_ref)
                                    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
                            refused += empty
    assert refused > 0  # the sweep did meet such windows


def test_dilated_grad_finite_differences(rng):
    # Distinct values at least 0.01 apart, so a 1e-3 step never changes which element is the max.
    x = (rng.permutation(2 * 2 * 13 * 15) * 0.01).astype(np.float32).reshape(2, 2, 13, 15)
    args = dict(kernel_size=3, stride=2, padding=1, dilation=(2, 3), ceil_mode=True)
    y, idx = fastconv.max_pool2d(x, return_indices=True, **args)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grad = fastconv.grad.max_pool2d(dy, idx, x.shape)
    _fd_check(lambda v: fastconv.max_pool2d(v, **args), x, dy, grad, rng, eps=1e-3, count=40)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", DILATED_CASES)
def test_dilated_against_torch(shape, kernel, stride, padding, dilation, ceil_mode, rng):
    torch = pytest.importorskip("torch")
    x = rng.integers(-3, 4, size=shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty, tidx = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    y, idx = fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    np.testing.assert_allclose(fastconv.grad.max_pool2d(dy, idx, x.shape), tdx.numpy(), rtol=1e-6, atol=1e-6)


# ---- average pooling divisor_override -----------------------------------------------------------

# (N, C, H, W), kernel, stride, padding, ceil_mode, count_include_pad (which the override replaces),
# divisor_override.
DIVISOR_CASES = [
    ((2, 3, 12, 20), (2, 2), (2, 2), (0, 0), False, True, 3),    # windows tile the input: the backward's copy path
    ((1, 2, 15, 37), (3, 3), (1, 1), (1, 1), False, False, 5),   # 8-wide interior rows, stride 1
    ((1, 2, 17, 40), (3, 2), (2, 2), (1, 1), True, True, 1),     # stride 2, ceil_mode
    ((1, 1, 7, 9), (7, 9), (1, 1), (0, 0), False, True, 100),    # kernel == input
    ((2, 2, 11, 13), (2, 3), (5, 4), (1, 1), True, False, 2),    # stride > kernel, clipped windows
]


def check_divisor_override(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor, rng, device="cpu"):
    p = pool_params(x.shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor)
    y = nan_filled((p.N, p.C, p.P, p.Q), device)
    run_kernel(device, "avg_pool2d_forward", p, on_device(x, device), y)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    assert relative_error(to_numpy(y, device), avg_pool2d_ref(x, *args)) <= AVG_TOL
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = nan_filled(x.shape, device)
    run_kernel(device, "avg_pool2d_backward", p, on_device(dy, device), dx)
    assert relative_error(to_numpy(dx, device), avg_pool2d_backward_ref(dy, x.shape, *args)) <= GRAD_TOL


@pytest.mark.parametrize("case", DIVISOR_CASES, ids=str)
def test_divisor_override_against_reference(device, case, rng):
    shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor = case
    # Mostly positive, so no window sum cancels to near zero (the bound is relative to the largest output).
    check_divisor_override(rng.uniform(-1, 2, shape).astype(np.float32), kernel, stride, padding, ceil_mode,
                           count_include_pad, divisor, rng, device)
    x = rng.uniform(-1, 2, shape).astype(np.float32)
    y = fastconv.avg_pool2d(on_device(x, device), kernel, stride, padding, ceil_mode, count_include_pad,
                            divisor_override=divisor)
    ones = on_device(np.ones(y.shape, np.float32), device)
    dx = fastconv.grad.avg_pool2d(ones, x.shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    # With every gradient 1, an input's gradient counts the windows holding it, over the divisor.
    ref = avg_pool2d_backward_ref(np.ones(y.shape), x.shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    assert relative_error(to_numpy(dx, device), ref) <= GRAD_TOL
    ref = avg_pool2d_ref(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    assert relative_error(to_numpy(y, device), ref) <= AVG_TOL


def test_divisor_override_grad_finite_differences(rng):
    x = rng.standard_normal((2, 2, 11, 13)).astype(np.float32)
    args = (3, 2, 1, True, False, 4)
    dy = rng.standard_normal(fastconv.avg_pool2d(x, *args).shape).astype(np.float32)
    grad = fastconv.grad.avg_pool2d(dy, x.shape, *args)
    _fd_check(lambda v: fastconv.avg_pool2d(v, *args), x, dy, grad, rng, eps=1e-2)


@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor", DIVISOR_CASES)
def test_divisor_override_against_torch(shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.avg_pool2d(tx, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor)
    y = fastconv.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    dx = fastconv.grad.avg_pool2d(dy, x.shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=divisor)
    np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-6, atol=1e-6)


# ---- gradients by finite differences ------------------------------------------------------


def _fd_check(f, x, dy, grad, rng, eps, count=12, tol=2e-3):
    """Central differences of sum(f(x) * dy) at a few random coordinates against the analytic gradient."""
    flat = x.reshape(-1)
    for i in rng.choice(flat.size, size=min(count, flat.size), replace=False):
        old = flat[i]
        flat[i] = old + eps
        up = np.sum(f(x).astype(np.float64) * dy)
        flat[i] = old - eps
        down = np.sum(f(x).astype(np.float64) * dy)
        flat[i] = old
        fd = (up - down) / (2 * eps)
        assert abs(fd - grad.reshape(-1)[i]) <= tol * max(1.0, abs(fd)), (i, fd, grad.reshape(-1)[i])


@pytest.mark.parametrize("ceil_mode, count_include_pad", [(False, True), (True, False)])
def test_avg_grad_finite_differences(rng, ceil_mode, count_include_pad):
    x = rng.standard_normal((2, 2, 11, 13)).astype(np.float32)
    args = (3, 2, 1, ceil_mode, count_include_pad)
    dy = rng.standard_normal(fastconv.avg_pool2d(x, *args).shape).astype(np.float32)
    grad = fastconv.grad.avg_pool2d(dy, x.shape, *args)
    _fd_check(lambda v: fastconv.avg_pool2d(v, *args), x, dy, grad, rng, eps=1e-2)


def test_max_grad_finite_differences(rng):
    # Distinct values at least 0.01 apart, so a 1e-3 step never changes which element is the max.
    x = (rng.permutation(2 * 2 * 12 * 14) * 0.01).astype(np.float32).reshape(2, 2, 12, 14)
    y, idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grad = fastconv.grad.max_pool2d(dy, idx, x.shape)
    _fd_check(lambda v: fastconv.max_pool2d(v, 3, 2, 1), x, dy, grad, rng, eps=1e-3, count=40)


def test_adaptive_grad_finite_differences(rng):
    x = rng.standard_normal((1, 3, 10, 7)).astype(np.float32)
    dy = rng.standard_normal((1, 3, 4, 3)).astype(np.float32)
    grad = fastconv.grad.adaptive_avg_pool2d(dy, x.shape)
    _fd_check(lambda v: fastconv.adaptive_avg_pool2d(v, (4, 3)), x, dy, grad, rng, eps=1e-2)


# ---- against torch ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", CASES)
def test_against_torch(shape, kernel, stride, padding, ceil_mode, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., ::3, ::4] = x.max()  # ties within and across windows
    tx = torch.from_numpy(x).requires_grad_()
    ty, tidx = F.max_pool2d(tx, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True)
    y, idx = fastconv.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    np.testing.assert_allclose(fastconv.grad.max_pool2d(dy, idx, x.shape), tdx.numpy(), rtol=1e-6, atol=1e-6)
    for cip in (True, False):
        ta = F.avg_pool2d(tx, kernel, stride, padding, ceil_mode, cip)
        a = fastconv.avg_pool2d(x, kernel, stride, padding, ceil_mode, cip)
        np.testing.assert_allclose(a, ta.detach().numpy(), rtol=1e-6, atol=1e-6)
        (tdx,) = torch.autograd.grad(ta, tx, torch.from_numpy(dy))
        dx = fastconv.grad.avg_pool2d(dy, x.shape, kernel, stride, padding, ceil_mode, cip)
        np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape, out", [((2, 3, 14, 14), (7, 7)), ((1, 2, 10, 7), (4, 3)), ((2, 4, 7, 9), (1, 1)), ((1, 1, 3, 5), (6, 8))])
def test_adaptive_against_torch(shape, out, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, out)
    np.testing.assert_allclose(fastconv.adaptive_avg_pool2d(x, out), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(ty.shape).astype(np.float32)
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    np.testing.assert_allclose(fastconv.grad.adaptive_avg_pool2d(dy, shape), tdx.numpy(), rtol=1e-6, atol=1e-6)


# ---- bad input --------------------------------------------------------------------------------

def _zeros(device, shape=(2, 3, 8, 8), dtype=np.float32):
    return on_device(np.zeros(shape, dtype), device)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda d: fastconv.max_pool2d(_zeros(d, (8, 8)), 2), ValueError, r"x: expected a 4-D .* got 2-D"),
        (lambda d: fastconv.max_pool2d(_zeros(d, dtype=WRONG_DTYPE[d]), 2), TypeError, "x: expected dtype float32, got (float64|int64)"),
        (lambda d: fastconv.avg_pool2d(_zeros(d, dtype=WRONG_DTYPE[d]), 2), TypeError, "x: expected dtype float32"),
        (lambda d: fastconv.adaptive_avg_pool2d(_zeros(d, dtype=WRONG_DTYPE[d]), 2), TypeError, "x: expected dtype float32"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 0), ValueError, "kernel_size: must be >= 1"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 2.0), TypeError, "kernel_size"),
        (lambda d: fastconv.max_pool2d(_zeros(d), (2, 2, 2)), ValueError, "kernel_size"),
        (lambda d: fastconv.avg_pool2d(_zeros(d), 2, stride=0), ValueError, "stride: must be >= 1"),
        (lambda d: fastconv.avg_pool2d(_zeros(d), 2, padding=-1), ValueError, "padding: must be >= 0"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 3, padding=2), ValueError, "padding: must be at most half of kernel_size"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 9), ValueError, r"kernel_size: window .* does not fit input \(2, 3, 8, 8\)"),
        (lambda d: fastconv.avg_pool2d(_zeros(d), 9), ValueError, r"kernel_size: window .* does not fit input \(2, 3, 8, 8\)"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 2**40), ValueError, "kernel_size: must be < 2"),
        (lambda d: fastconv.max_pool2d(_zeros(d, (2, 0, 8, 8)), 2), ValueError, "x: C, H and W must be positive"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 2, dilation=0), ValueError, "dilation: must be >= 1, got 0"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 2, dilation=(1, 2, 3)), ValueError, "dilation: expected an int, a pair"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 2, dilation=1.5), TypeError, "dilation: expected an int"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 2, 2, 0, True), TypeError, "dilation: expected an int, got bool"),  # torch's order
        (lambda d: fastconv.max_pool2d(_zeros(d), 2, dilation=2**31), ValueError, "dilation: must be < 2"),
        (lambda d: fastconv.max_pool2d(_zeros(d), 3, dilation=4), ValueError, r"kernel_size: window \(3, 3\) dilated by \(4, 4\)"),
        (lambda d: fastconv.max_pool2d(_zeros(d, (1, 1, 1, 3)), 2, 1, 1, 2), ValueError, "dilation: a window covers only padding"),
        (lambda d: fastconv.avg_pool2d(_zeros(d), 2, divisor_override=0), ValueError, "divisor_override: must be >= 1, got 0"),
        (lambda d: fastconv.avg_pool2d(_zeros(d), 2, divisor_override=2.0), TypeError, "divisor_override: expected an int"),
        (lambda d: fastconv.avg_pool2d(_zeros(d), 2, dilation=2), TypeError, "dilation"),  # torch's avg_pool2d has none
        (lambda d: fastconv.adaptive_avg_pool2d(_zeros(d), 0), ValueError, "output_size: must be >= 1"),
        (lambda d: fastconv.adaptive_avg_pool2d(_zeros(d), (1, 2, 3)), ValueError, "output_size"),
    ],
)
def test_bad_forward_arguments(device, call, exc, match):
    with pytest.raises(exc, match=match):
        call(device)


def test_a_list_is_refused():
    with pytest.raises(TypeError, match="x: expected a numpy.ndarray"):
        fastconv.max_pool2d(np.zeros((2, 3, 8, 8), np.float32).tolist(), 2)


def test_bad_backward_arguments(device):
    X = _zeros(device)
    y, idx = fastconv.max_pool2d(X, 2, return_indices=True)
    idx_host = to_numpy(idx, device)
    g = on_device(np.ones(y.shape, np.float32), device)
    with pytest.raises(TypeError, match="indices: expected dtype int64"):
        fastconv.grad.max_pool2d(g, y, X.shape)
    with pytest.raises(ValueError, match=r"indices: expected the shape of grad_output \(2, 3, 4, 4\), got \(2, 3, 4, 3\)"):
        fastconv.grad.max_pool2d(g, on_device(np.ascontiguousarray(idx_host[..., :3]), device), X.shape)
    with pytest.raises(ValueError, match="grad_output: shape .* does not match input_shape"):
        fastconv.grad.max_pool2d(g, idx, (2, 4, 8, 8))
    with pytest.raises(ValueError, match="input_shape: expected a sequence of 4 ints"):
        fastconv.grad.max_pool2d(g, idx, (3, 8, 8))
    with pytest.raises(TypeError, match="grad_output: expected dtype float32"):
        fastconv.grad.avg_pool2d(_zeros(device, y.shape, WRONG_DTYPE[device]), X.shape, 2)
    with pytest.raises(ValueError, match=r"grad_output: expected shape \(2, 3, 5, 5\) for input_shape"):
        fastconv.grad.avg_pool2d(g, X.shape, 3, 2, 1, True)
    with pytest.raises(ValueError, match="padding: must be at most half"):
        fastconv.grad.avg_pool2d(g, X.shape, 2, 2, 2)
    with pytest.raises(ValueError, match="grad_output: shape .* does not match"):
        fastconv.grad.adaptive_avg_pool2d(g, (1, 3, 8, 8))


@pytest.mark.parametrize("bad", [-1, 64])
def test_max_backward_index_out_of_range(device, bad):
    """The CPU refuses an index outside the H*W plane; the GPU cannot report one from a kernel, so it
    skips that entry (fastconv.cuda.ops.max_pool2d_backward): the other gradients still land."""
    x = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    y, idx = fastconv.max_pool2d(on_device(x, device), 2, return_indices=True)
    wrong = to_numpy(idx, device).copy()
    wrong[1, 2, 3, 3] = bad
    dy = np.ones(y.shape, np.float32)
    if device == "cpu":
        with pytest.raises(ValueError, match=rf"indices: value {bad} .* outside \[0, H\*W = 64\)"):
            fastconv.grad.max_pool2d(dy, wrong, x.shape)
        return
    dx = fastconv.grad.max_pool2d(on_device(dy, device), on_device(wrong, device), x.shape)
    dy[1, 2, 3, 3] = 0.0  # the skipped entry
    np.testing.assert_array_equal(to_numpy(dx, device), max_pool2d_backward_ref(dy, to_numpy(idx, device), x.shape))


def test_params_object():
    p = _core.Pool2dParams(2, 3, 28, 28, 2, 2, 2, 2)
    assert (p.P, p.Q) == (14, 14)
    assert "kernel=(2, 2)" in repr(p)
    with pytest.raises(ValueError, match="padding"):
        _core.Pool2dParams(1, 1, 8, 8, 2, 2, 1, 1, 2, 0).validate()
    with pytest.raises(ValueError, match="output size < 1"):
        _core.Pool2dParams(1, 1, 4, 4, 5, 5).validate()
    # ceil_mode: the last window must start inside the input or its left padding (PyTorch's rule).
    assert _core.Pool2dParams(1, 1, 5, 5, 2, 2, 2, 2, 1, 1, True).P == pool_out_size(5, 2, 2, 1, True) == 3
    d = _core.Pool2dParams(1, 1, 20, 9, 3, 2, 2, 1, 1, 0, True, dil_h=3, dil_w=2, divisor_override=0)
    assert (d.P, d.Q) == (pool_out_size(20, 3, 2, 1, True, 3), pool_out_size(9, 2, 1, 0, True, 2)) == (9, 7)
    assert "dilation=(3, 2)" in repr(d)
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        _core.Pool2dParams(1, 1, 8, 8, 2, 2, dil_h=0).validate()
    # The binding refuses the field the other kind of pooling has no use for.
    x, y = np.zeros((1, 1, 8, 8), np.float32), np.zeros((1, 1, 7, 7), np.float32)
    with pytest.raises(ValueError, match="dilation: average pooling takes none"):
        _core.avg_pool2d_forward(_core.Pool2dParams(1, 1, 8, 8, 2, 2, dil_h=2, dil_w=2), x, np.zeros((1, 1, 6, 6), np.float32))
    with pytest.raises(ValueError, match="divisor_override: max pooling takes none"):
        _core.max_pool2d_forward(_core.Pool2dParams(1, 1, 8, 8, 2, 2, divisor_override=3), x, y)


def test_ceil_mode_window_past_the_end():
    # ceil_mode keeps a window that starts inside the input even if the kernel is longer than it.
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 1, 2, 3)
    assert _core.Pool2dParams(1, 1, 1, 1, 2, 2, 2, 2, 0, 0, True).P == 1
    assert fastconv.max_pool2d(x, 4, ceil_mode=True).shape == (1, 1, 1, 1)
    np.testing.assert_array_equal(fastconv.avg_pool2d(x, (2, 4), ceil_mode=True), [[[[3.5]]]])
    with pytest.raises(ValueError, match="does not fit"):
        fastconv.max_pool2d(x, 4)
