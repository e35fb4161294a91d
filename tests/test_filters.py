"""fastconv.filters: named kernels, normalize, correlate2d/convolve2d against scipy.ndimage and
scipy.signal (test-only dependency, skipped when absent), moving_average, bad input.
Bound: 1e-5 relative error (float32 computation against scipy's float64; see filter_error)."""

import numpy as np
import pytest

import fastconv
from fastconv import filters as F

TOL = 1e-5
SCIPY_MODE = {"zero": "constant", "reflect": "reflect", "nearest": "nearest", "wrap": "wrap"}
SIGNAL_BOUNDARY = {"zero": "fill", "reflect": "symm", "wrap": "wrap"}  # scipy.signal has no "nearest"

NAMED = {
    "sobel0": F.sobel(0),
    "sobel1": F.sobel(1),
    "prewitt0": F.prewitt(0),
    "prewitt1": F.prewitt(1),
    "scharr0": F.scharr(0),
    "scharr1": F.scharr(1),
    "laplacian": F.laplacian(),
    "laplacian_diag": F.laplacian(diagonal=True),
    "gaussian5": F.gaussian(5, 1.0),
    "gaussian4": F.gaussian(4, 0.8),
    "box3": F.box(3),
    "box2": F.box(2),
    "sharpen": F.sharpen(),
    "emboss": F.emboss(),
    **{f"edge4_{i}": f for i, f in enumerate(F.edge4())},
}


def filter_error(got, want, image, kernel) -> float:
    """relative_error, except that the scale is at least sum|kernel| * max|image| (the size of the
    terms summed): exact cancellations (a derivative of a constant row) give want == 0 while float32
    rounding leaves ~1e-7 of those terms."""
    scale = max(np.abs(want).max(), np.abs(kernel).sum() * np.abs(image).max())
    return float(np.abs(np.asarray(got, np.float64) - want).max() / scale)


@pytest.fixture(scope="module")
def ndimage():
    return pytest.importorskip("scipy.ndimage")


@pytest.fixture(scope="module")
def signal():
    return pytest.importorskip("scipy.signal")


# ----------------------------------------------------------------------------- named kernels


def test_named_kernels_are_float32():
    for name, k in NAMED.items():
        assert k.dtype == np.float32 and k.ndim == 2, name


def test_edge4_matches_the_seed():
    f = F.edge4()
    assert f.shape == (4, 4, 4)
    np.testing.assert_array_equal(f[0], [[-1, -1, 1, 1]] * 4)
    np.testing.assert_array_equal(f[1], -f[0])
    np.testing.assert_array_equal(f[2], f[0].T)
    np.testing.assert_array_equal(f[3], -f[0].T)


def test_kernel_values():
    np.testing.assert_array_equal(F.sobel(1), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(F.sobel(0), F.sobel(1).T)
    np.testing.assert_array_equal(F.scharr(1)[:, 2], [3, 10, 3])
    assert F.laplacian().sum() == 0 and F.laplacian(diagonal=True)[1, 1] == -8
    for size in (1, 4, 7):
        g = F.gaussian(size, 1.5)
        assert g.shape == (size, size) and abs(g.sum() - 1) < 1e-6
        np.testing.assert_allclose(g, g.T)
        np.testing.assert_allclose(g, g[::-1, ::-1], rtol=1e-6)
    assert abs(F.box(5).sum() - 1) < 1e-6


def test_normalize():
    soft = F.normalize(F.sobel(1), "softmax")
    assert soft.dtype == np.float32 and abs(soft.sum() - 1) < 1e-6 and (soft > 0).all()
    assert soft.argmax() in (2, 5, 8) and soft[1, 2] == soft.max()  # the +2 weight dominates
    np.testing.assert_allclose(F.normalize(np.array([[1, 3]]), "sum"), [[0.25, 0.75]])
    np.testing.assert_allclose(np.linalg.norm(F.normalize(F.emboss(), "l2")), 1.0, rtol=1e-6)
    big = F.normalize(np.array([1000.0, 1000.0]), "softmax")  # stable for large values
    np.testing.assert_allclose(big, [0.5, 0.5])
    with pytest.raises(ValueError, match="kernel: cannot normalize by its sum"):
        F.normalize(F.sobel(0), "sum")
    with pytest.raises(ValueError, match="how"):
        F.normalize(F.box(3), "max")


def test_named_kernels_match_scipy_filters(ndimage, rng):
    img = rng.standard_normal((13, 11))
    for boundary, mode in SCIPY_MODE.items():
        def err(k, want):
            return filter_error(F.correlate2d(img, k, boundary=boundary), want, img, k)

        for axis in (0, 1):
            assert err(F.sobel(axis), ndimage.sobel(img, axis, mode=mode)) < TOL
            assert err(F.prewitt(axis), ndimage.prewitt(img, axis, mode=mode)) < TOL
        assert err(F.laplacian(), ndimage.laplace(img, mode=mode)) < TOL
        for size in (3, 4):
            assert err(F.box(size), ndimage.uniform_filter(img, size, mode=mode)) < TOL
        assert err(F.gaussian(7, 1.3), ndimage.gaussian_filter(img, 1.3, mode=mode, truncate=3 / 1.3)) < TOL  # radius 3


# ----------------------------------------------------------------------------- correlate2d / convolve2d


IMAGE_SHAPES = [(7, 9), (5, 5), (3, 4), (1, 6), (16, 13)]


@pytest.mark.parametrize("boundary", list(SCIPY_MODE))
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_same_mode_vs_ndimage(ndimage, rng, boundary, shape):
    img = rng.standard_normal(shape).astype(np.float32)
    kernels = list(NAMED.values()) + [rng.standard_normal(s).astype(np.float32) for s in [(2, 5), (6, 1), (1, 1), (8, 3)]]
    for k in kernels:
        for ours, theirs in ((F.correlate2d, ndimage.correlate), (F.convolve2d, ndimage.convolve)):
            got = ours(img, k, "same", boundary)
            want = theirs(img.astype(np.float64), k.astype(np.float64), mode=SCIPY_MODE[boundary])
            assert got.dtype == np.float32 and got.shape == img.shape
            assert filter_error(got, want, img, k) < TOL, (ours.__name__, k.shape)


@pytest.mark.parametrize("boundary", list(SIGNAL_BOUNDARY))
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_full_and_valid_vs_signal(signal, rng, boundary, shape):
    img = rng.standard_normal(shape)
    for kshape in [(3, 3), (4, 2), (1, 1), (5, 6)]:
        k = rng.standard_normal(kshape)
        for ours, theirs in ((F.correlate2d, signal.correlate2d), (F.convolve2d, signal.convolve2d)):
            got = ours(img, k, "full", boundary)
            assert filter_error(got, theirs(img, k, "full", SIGNAL_BOUNDARY[boundary]), img, k) < TOL
            if kshape[0] <= shape[0] and kshape[1] <= shape[1]:
                assert filter_error(ours(img, k, "valid", boundary), theirs(img, k, "valid"), img, k) < TOL


def test_full_nearest_is_edge_padding(rng):
    img = rng.standard_normal((5, 6)).astype(np.float32)
    k = rng.standard_normal((3, 4)).astype(np.float32)
    padded = np.pad(img, ((2, 2), (3, 3)), mode="edge")
    np.testing.assert_allclose(F.correlate2d(img, k, "full", "nearest"), F.correlate2d(padded, k, "valid"), rtol=1e-6)


def test_even_kernel_extra_row_on_top_left():
    img = np.zeros((5, 5), np.float32)
    img[2, 2] = 1.0
    k = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
    # correlate: out[i, j] = sum k[u, v] img[i + u - 2, j + v - 2]; the impulse at (2, 2) lands at
    # out[4 - u, 4 - v] = k[u, v]: the window reaches 2 pixels up/left and 1 down/right.
    out = F.correlate2d(img, k)
    np.testing.assert_array_equal(out[1:, 1:], k[::-1, ::-1])
    assert not out[0].any() and not out[:, 0].any()
    out = F.convolve2d(img, k)
    np.testing.assert_array_equal(out[:4, :4], k)


def test_layouts_and_dtypes(rng):
    k = F.gaussian(3, 1.0)
    hw = rng.integers(0, 256, size=(9, 7)).astype(np.uint8)
    ref = F.correlate2d(hw.astype(np.float32), k)
    for dtype in (np.uint8, np.int16, np.int64, np.float16, np.float64):
        got = F.correlate2d(hw.astype(dtype), k)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-6)
    hwc = rng.standard_normal((9, 7, 3)).astype(np.float32)
    out = F.correlate2d(hwc, k, boundary="reflect")
    assert out.shape == (9, 7, 3)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], F.correlate2d(hwc[..., c], k, boundary="reflect"), rtol=1e-6)
    nchw = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    out = F.convolve2d(nchw, k, mode="valid")
    assert out.shape == (2, 3, 7, 5)
    np.testing.assert_allclose(out[1, 2], F.convolve2d(nchw[1, 2], k, mode="valid"), rtol=1e-6)
    # non-contiguous input, never modified
    view = nchw[:, ::-1, ::2]
    saved = view.copy()
    np.testing.assert_allclose(F.correlate2d(view, k), F.correlate2d(saved, k), rtol=1e-6)
    np.testing.assert_array_equal(view, saved)
    # kernel as a nested list
    np.testing.assert_allclose(F.correlate2d(hw, k.tolist()), ref, rtol=1e-6)


def test_nan_and_inf_propagate():
    img = np.ones((9, 9), np.float32)
    img[4, 4] = np.nan
    img[0, 8] = np.inf
    for algo in fastconv.conv_algorithms((1, 1, 11, 11), (1, 1, 3, 3)):
        out = F.correlate2d(img, F.box(3), algo=algo)
        assert np.isnan(out[3:6, 3:6]).all(), algo
        assert not np.isfinite(out[0, 7]), algo
        assert np.isfinite(out[8, 0]) and np.isfinite(out[3, 0]), algo  # local: far from both


def test_bad_input(rng):
    img = rng.standard_normal((5, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=r"kernel: \(6, 3\) is larger than the image's \(H, W\) = \(5, 6\) in mode='valid'"):
        F.correlate2d(img, np.ones((6, 3)), mode="valid")
    with pytest.raises(ValueError, match="boundary: expected one of"):
        F.correlate2d(img, F.box(3), boundary="mirror")
    with pytest.raises(ValueError, match="mode: expected one of"):
        F.convolve2d(img, F.box(3), mode="circular")
    with pytest.raises(ValueError, match=r"image: expected shape \(H, W\), \(H, W, C\) or \(N, C, H, W\), got 1-D"):
        F.correlate2d(np.ones(5), F.box(3))
    with pytest.raises(ValueError, match="image: expected shape"):
        F.correlate2d(np.ones((1, 1, 1, 4, 4)), F.box(3))
    with pytest.raises(ValueError, match="kernel: expected a 2-D array"):
        F.correlate2d(img, np.ones(3))
    with pytest.raises(ValueError, match="image: has a 0-sized axis"):
        F.correlate2d(np.ones((0, 5)), F.box(3))
    with pytest.raises(ValueError, match="image: has a 0-sized axis"):
        F.correlate2d(np.ones((2, 0, 5, 5)), F.box(3))
    with pytest.raises(ValueError, match="kernel: has a 0-sized axis"):
        F.correlate2d(img, np.ones((0, 3)))
    with pytest.raises(TypeError, match="image: expected a real floating or integer array"):
        F.correlate2d(img.astype(np.complex64), F.box(3))
    with pytest.raises(TypeError, match="kernel"):
        F.correlate2d(img, np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="axis"):
        F.sobel(2)
    with pytest.raises(ValueError, match="sigma"):
        F.gaussian(5, 0.0)
    with pytest.raises(ValueError, match="size"):
        F.box(0)


# ----------------------------------------------------------------------------- moving_average


def test_moving_average(rng):
    s = rng.standard_normal(50)
    got = F.moving_average(s, 5)
    assert got.dtype == np.float32 and got.shape == (46,)
    np.testing.assert_allclose(got, np.convolve(s, np.ones(5) / 5, "valid"), rtol=1e-5, atol=1e-6)
    w = np.array([1.0, 2.0, 3.0, 4.0])
    got = F.moving_average(s, 4, weights=w)
    expected = np.array([np.dot(w, s[t : t + 4]) / w.sum() for t in range(47)])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    batch = rng.integers(0, 10, size=(3, 2, 12))
    got = F.moving_average(batch, 3)
    assert got.shape == (3, 2, 10)
    np.testing.assert_allclose(got[2, 1], np.convolve(batch[2, 1], np.ones(3) / 3, "valid"), rtol=1e-6)


def test_moving_average_bad_input():
    s = np.arange(10.0)
    with pytest.raises(ValueError, match="window: must be <= the series length 10"):
        F.moving_average(s, 11)
    with pytest.raises(ValueError, match=r"weights: expected shape \(3,\)"):
        F.moving_average(s, 3, weights=[1, 2])
    with pytest.raises(ValueError, match="weights: must have a finite, non-zero sum"):
        F.moving_average(s, 2, weights=[1, -1])
    with pytest.raises(ValueError, match="series"):
        F.moving_average(np.float32(3), 1)
