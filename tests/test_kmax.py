"""k-max pooling against a reference written from the definition (ties included) and its gradient
against finite differences. Values are exact copies, so the bound is equality."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv.kmax import kmax_pool_backward


def kmax_ref(x, k, dim):
    """For each row: rank positions by (value descending, position ascending), keep the first k,
    restore original order. NaN ranks above everything."""
    xm = np.moveaxis(np.asarray(x), dim, -1)
    flat = xm.reshape(-1, xm.shape[-1])
    vals = np.empty((flat.shape[0], k), dtype=x.dtype)
    idx = np.empty((flat.shape[0], k), dtype=np.int64)
    for row in range(flat.shape[0]):
        r = flat[row]

        def rank(i):
            v = r[i]
            is_nan = isinstance(v, (float, np.floating)) and np.isnan(v)
            return (0 if is_nan else 1, 0 if is_nan else -float(v) if r.dtype.kind == "f" else -int(v), i)

        chosen = sorted(sorted(range(len(r)), key=rank)[:k])
        idx[row] = chosen
        vals[row] = r[chosen]
    shape = xm.shape[:-1] + (k,)
    return np.moveaxis(vals.reshape(shape), -1, dim), np.moveaxis(idx.reshape(shape), -1, dim)


def check(x, k, dim):
    values, indices = fastconv.kmax_pool(x, k, dim)
    ref_v, ref_i = kmax_ref(x, k, dim)
    assert values.dtype == x.dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_array_equal(values, ref_v)


def test_seed_example():
    x = np.array([1, 5, 2, 7, 3, 7, 0], dtype=np.float32)
    values, indices = fastconv.kmax_pool(x, 3)
    np.testing.assert_array_equal(values, [5, 7, 7])
    np.testing.assert_array_equal(indices, [1, 3, 5])


def test_ties_earlier_wins():
    x = np.array([[2, 1, 2, 2, 0, 2]], dtype=np.float32)
    values, indices = fastconv.kmax_pool(x, 2)
    np.testing.assert_array_equal(indices, [[0, 2]])
    x = np.zeros((3, 5), dtype=np.float32)
    np.testing.assert_array_equal(fastconv.kmax_pool(x, 3)[1], np.tile([0, 1, 2], (3, 1)))


def test_signed_zero_ties():
    x = np.array([0.0, -0.0, 0.0, -1.0], dtype=np.float32)
    np.testing.assert_array_equal(fastconv.kmax_pool(x, 2)[1], [0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.uint8, np.int64])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 11), -1), ((2, 5, 4), 1), ((4, 3, 2), 0), ((1, 1, 13), 2)])
def test_against_definition(rng, dtype, shape, dim):
    # Few distinct values so that ties are common.
    x = rng.integers(-3, 4, size=shape)
    if np.dtype(dtype).kind == "u":
        x = x + 3
    x = x.astype(dtype)
    for k in (1, max(1, x.shape[dim] // 2), x.shape[dim]):
        check(x, k, dim)


@settings(max_examples=25, deadline=None)
@given(
    data=st.lists(st.sampled_from([-2.0, -0.0, 0.0, 1.0, 1.0, 3.5, np.inf, -np.inf, np.nan]), min_size=1, max_size=12),
    rows=st.integers(1, 3),
    k=st.integers(1, 12),
)
def test_property_specials(data, rows, k):
    x = np.array([data] * rows, dtype=np.float32)
    x[-1] = x[-1][::-1]
    k = min(k, x.shape[1])
    check(x, k, 1)


def test_nan_propagates():
    x = np.array([1.0, np.nan, 3.0, 2.0], dtype=np.float32)
    values, indices = fastconv.kmax_pool(x, 2)
    np.testing.assert_array_equal(indices, [1, 2])
    assert np.isnan(values[0]) and values[1] == 3.0


def test_non_contiguous_input_unchanged(rng):
    base = rng.standard_normal((6, 8)).astype(np.float32)
    x = base[::2, ::-1].T  # (8, 3), non-contiguous
    saved = x.copy()
    check(x, 3, 0)
    np.testing.assert_array_equal(x, saved)


def test_gradient_finite_differences(rng):
    x = rng.standard_normal((3, 9, 4))  # float64, distinct values: the selection is locally constant
    k, dim = 4, 1
    gy = rng.standard_normal((3, k, 4))
    values, indices = fastconv.kmax_pool(x, k, dim)
    gx = kmax_pool_backward(gy, indices, x.shape, dim)
    assert gx.shape == x.shape
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = (np.sum(fastconv.kmax_pool(xp, k, dim)[0] * gy) - np.sum(fastconv.kmax_pool(xm, k, dim)[0] * gy)) / (2 * eps)
    np.testing.assert_allclose(gx, num, rtol=1e-6, atol=1e-8)


def test_gradient_is_scatter():
    x = np.array([[3.0, 1.0, 4.0, 1.0, 5.0]], dtype=np.float32)
    _, indices = fastconv.kmax_pool(x, 3)
    gx = kmax_pool_backward(np.array([[10.0, 20.0, 30.0]], np.float32), indices, x.shape)
    np.testing.assert_array_equal(gx, [[10.0, 0.0, 20.0, 0.0, 30.0]])


def test_bad_input():
    x = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match=r"k: must be <= the size of dim -1 \(5\)"):
        fastconv.kmax_pool(x, 6)
    with pytest.raises(ValueError, match="k: must be >= 1"):
        fastconv.kmax_pool(x, 0)
    with pytest.raises(TypeError, match="k"):
        fastconv.kmax_pool(x, 2.0)
    with pytest.raises(ValueError, match="dim"):
        fastconv.kmax_pool(x, 2, dim=2)
    with pytest.raises(TypeError, match="x"):
        fastconv.kmax_pool([1.0, 2.0], 1)
    with pytest.raises(TypeError, match="x: expected a real"):
        fastconv.kmax_pool(np.zeros(3, np.complex64), 1)
    with pytest.raises(ValueError, match="x: expected at least a 1-D"):
        fastconv.kmax_pool(np.zeros((), np.float32), 1)
    with pytest.raises(ValueError, match="k"):
        fastconv.kmax_pool(np.zeros((3, 0), np.float32), 1)
    values, indices = fastconv.kmax_pool(np.zeros((0, 4), np.float32), 2)
    assert values.shape == indices.shape == (0, 2)
    _, idx = fastconv.kmax_pool(x, 2)
    with pytest.raises(ValueError, match="indices: expected the shape"):
        kmax_pool_backward(np.zeros((2, 2), np.float32), idx[:, :1], x.shape)
    with pytest.raises(ValueError, match="grad_output"):
        kmax_pool_backward(np.zeros((3, 2), np.float32), np.zeros((3, 2), np.int64), x.shape)
    with pytest.raises(ValueError, match="indices: values must lie"):
        kmax_pool_backward(np.zeros((2, 2), np.float32), idx + 4, x.shape)
    with pytest.raises(TypeError, match="indices"):
        kmax_pool_backward(np.zeros((2, 2), np.float32), idx.astype(np.float32), x.shape)


def test_kernel_directly_overwrites_nan_prefilled_outputs(rng):
    from fastconv import _core

    x = rng.integers(-2, 3, size=(7, 13)).astype(np.float32)
    values = np.full((7, 5), np.nan, np.float32)
    indices = np.full((7, 5), -1, np.int64)
    _core.kmax_pool_forward(x, 5, values, indices)
    ref_v, ref_i = kmax_ref(x, 5, 1)
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_array_equal(values, ref_v)
    with pytest.raises(ValueError, match="k"):
        _core.kmax_pool_forward(x, 14, np.zeros((7, 14), np.float32), np.zeros((7, 14), np.int64))
    with pytest.raises(ValueError, match="values"):
        _core.kmax_pool_forward(x, 5, np.zeros((7, 4), np.float32), indices)


@pytest.mark.parametrize("length,k", [(1, 1), (2, 1), (97, 3), (1000, 999), (4096, 100)])
def test_float32_kernel_long_rows(rng, threads, length, k):
    x = np.round(rng.standard_normal((5, length)) * 4).astype(np.float32)  # many ties
    for n in (1, 2):
        fastconv.set_num_threads(n)
        values, indices = fastconv.kmax_pool(x, k)
        _, want = fastconv.kmax_pool(x.astype(np.float64), k)  # the numpy path, checked above
        np.testing.assert_array_equal(indices, want)
        np.testing.assert_array_equal(values, np.take_along_axis(x, want, 1))
