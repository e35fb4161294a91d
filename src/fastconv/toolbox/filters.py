"""Classic image filters and image convolution on top of `fastconv.conv2d`.

Named kernels (float32): `sobel`, `prewitt`, `scharr`, `laplacian`, `gaussian`, `box`, `sharpen`,
`emboss` and the four 4x4 edge filters of the Udacity walk-through (`edge4`). `normalize` turns a
kernel into weights that sum to one, a softmax "probability density" or a unit vector.

`correlate2d` / `convolve2d` filter an image of shape (H, W), (H, W, C) (each channel on its own) or
(N, C, H, W) with one 2-D kernel. Every mode is "pad the image in numpy, then a valid
cross-correlation by `fastconv.conv2d`", so the algorithm chooser (`algo="auto"`) may send a large
kernel through the FFT. Boundaries (the values assumed outside the image) and the equivalent
`scipy.ndimage` / `numpy.pad` modes:

    boundary   scipy.ndimage mode     numpy.pad mode   extension of  a b c d
    "zero"     "constant", cval=0     "constant"       0 0 | a b c d | 0 0
    "reflect"  "reflect"              "symmetric"      b a | a b c d | d c
    "nearest"  "nearest"              "edge"           a a | a b c d | d d
    "wrap"     "wrap" / "grid-wrap"   "wrap"           c d | a b c d | a b

Modes: "same" gives the image's size, "valid" only positions where the kernel fits inside the
image, "full" every position where kernel and image overlap (the image grows by kernel - 1).

Kernels of even size in "same" mode: `correlate2d` follows `scipy.ndimage.correlate` (origin 0): the
kernel's centre is index size // 2, so the window reaches size // 2 pixels before the output pixel
and (size - 1) // 2 after it; the extra row/column is on the top/left. `convolve2d` follows
`scipy.ndimage.convolve`: the flipped kernel's window has its extra row/column on the bottom/right.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import require_int, shape_str

BOUNDARIES = {"zero": "constant", "reflect": "symmetric", "nearest": "edge", "wrap": "wrap"}
MODES = ("same", "valid", "full")


# ----------------------------------------------------------------------------- named kernels


def _axis01(axis) -> int:
    axis = require_int(axis, "axis")
    if axis not in (0, 1):
        raise ValueError(f"axis: expected 0 (derivative down the rows) or 1 (along the columns), got {axis}")
    return axis


def _derivative(smooth, axis) -> np.ndarray:
    """Outer product of a smoothing vector across `axis` and the central difference [-1, 0, 1] along it."""
    k = np.outer(np.asarray(smooth, np.float32), np.array([-1, 0, 1], np.float32))
    return np.ascontiguousarray(k.T if _axis01(axis) == 0 else k)


def sobel(axis: int = 1) -> np.ndarray:
    """3x3 Sobel derivative along `axis` (1: d/dx, responds to vertical edges; 0: d/dy).
    Matches `scipy.ndimage.sobel(image, axis)` when used with `correlate2d`."""
    return _derivative([1, 2, 1], axis)


def prewitt(axis: int = 1) -> np.ndarray:
    """3x3 Prewitt derivative along `axis`; matches `scipy.ndimage.prewitt(image, axis)` with `correlate2d`."""
    return _derivative([1, 1, 1], axis)


def scharr(axis: int = 1) -> np.ndarray:
    """3x3 Scharr derivative along `axis` (smoothing [3, 10, 3]: better rotational symmetry than Sobel)."""
    return _derivative([3, 10, 3], axis)


def laplacian(diagonal: bool = False) -> np.ndarray:
    """3x3 discrete Laplacian: the 4-neighbour stencil (as `scipy.ndimage.laplace`), or with
    `diagonal=True` the 8-neighbour one (centre -8)."""
    if diagonal:
        k = np.ones((3, 3), np.float32)
        k[1, 1] = -8
        return k
    return np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)


def _size(size, name="size") -> int:
    return require_int(size, name, minimum=1)


def gaussian(size: int, sigma: float) -> np.ndarray:
    """size x size Gaussian exp(-(x^2 + y^2) / (2 sigma^2)) centred on the kernel, summing to one.
    Equals `scipy.ndimage.gaussian_filter(image, sigma, radius=size // 2)` for odd sizes."""
    size = _size(size)
    if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma: expected a real number, got {type(sigma).__name__}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma: must be a finite number > 0, got {sigma}")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(t * t) / (2.0 * float(sigma) ** 2))
    g /= g.sum()
    return np.outer(g, g).astype(np.float32)


def box(size: int) -> np.ndarray:
    """size x size mean filter (every weight 1 / size^2): `scipy.ndimage.uniform_filter`."""
    size = _size(size)
    return np.full((size, size), 1.0 / (size * size), np.float32)


def sharpen() -> np.ndarray:
    """3x3 sharpening kernel: the image plus its negative 4-neighbour Laplacian."""
    return np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)


def emboss() -> np.ndarray:
    """3x3 emboss kernel (light from the top left)."""
    return np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)


def edge4() -> np.ndarray:
    """The four 4x4 edge filters of the seed walk-through, stacked as shape (4, 4, 4):
    filter 1 has columns [-1, -1, 1, 1] (dark-to-bright vertical edges), filter 2 = -filter 1,
    filter 3 = filter 1 transposed (horizontal edges), filter 4 = -filter 3.
    Use `edge4()[:, None]` as a (4, 1, 4, 4) conv2d weight."""
    f1 = np.tile(np.array([-1, -1, 1, 1], np.float32), (4, 1))
    return np.stack([f1, -f1, f1.T, -f1.T])


def normalize(kernel, how: str = "sum") -> np.ndarray:
    """A float32 copy of `kernel` rescaled:
    "sum": divided by its sum (a weighted average; ValueError when the sum is zero, e.g. edge filters);
    "softmax": exp(k) / sum(exp(k)), a probability density even for kernels with negative or
    zero-sum weights (seed 000 reads an edge detector as a diffusion propagator this way);
    "l2": divided by its Euclidean norm."""
    k = _as_float32(kernel, "kernel", min_ndim=1)
    if how == "sum":
        total = float(k.astype(np.float64).sum())
        if total == 0.0 or not np.isfinite(total):
            raise ValueError(f"kernel: cannot normalize by its sum {total} (use how='softmax' or 'l2')")
        return (k / np.float32(total)).astype(np.float32)
    if how == "softmax":
        e = np.exp(k.astype(np.float64) - k.max())  # shifted by the max: no overflow
        return (e / e.sum()).astype(np.float32)
    if how == "l2":
        norm = float(np.sqrt(np.sum(k.astype(np.float64) ** 2)))
        if norm == 0.0 or not np.isfinite(norm):
            raise ValueError(f"kernel: cannot normalize by its L2 norm {norm}")
        return (k / np.float32(norm)).astype(np.float32)
    raise ValueError(f"how: expected one of 'sum', 'softmax', 'l2', got {how!r}")


# ----------------------------------------------------------------------------- image filtering


def _as_float32(a, name: str, min_ndim: int = 0) -> np.ndarray:
    """`a` as a float32 array (a new array when a cast is needed; the caller's is never modified)."""
    arr = np.asarray(a) if not isinstance(a, np.ndarray) else a
    if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real floating or integer array, got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least a {min_ndim}-D array, got shape {shape_str(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{name}: has a 0-sized axis, shape {shape_str(arr.shape)}")
    return arr.astype(np.float32, copy=False)


def _to_nchw(image: np.ndarray):
    """(N*C, 1, H, W) float32 view/copy of `image` and a function restoring the caller's layout."""
    img = _as_float32(image, "image")
    if img.ndim == 2:
        return img[None, None], lambda y: y[0, 0]
    if img.ndim == 3:  # (H, W, C): channels filtered independently, moved into the batch
        chw = np.moveaxis(img, -1, 0)[:, None]
        return chw, lambda y: np.moveaxis(y[:, 0], 0, -1)
    if img.ndim == 4:
        n, c = img.shape[:2]
        return img.reshape(n * c, 1, *img.shape[2:]), lambda y: y.reshape(n, c, *y.shape[2:])
    raise ValueError(f"image: expected shape (H, W), (H, W, C) or (N, C, H, W), got {img.ndim}-D {shape_str(img.shape)}")


def _pads(ksize: int, mode: str, flipped: bool) -> tuple[int, int]:
    if mode == "valid":
        return (0, 0)
    if mode == "full":
        return (ksize - 1, ksize - 1)
    before, after = ksize // 2, (ksize - 1) // 2
    return (after, before) if flipped else (before, after)  # scipy.ndimage's origin convention


def _filter(image, kernel, mode, boundary, algo, flipped) -> np.ndarray:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary: expected one of {', '.join(map(repr, BOUNDARIES))}, got {boundary!r}")
    k = _as_float32(kernel, "kernel")
    if k.ndim != 2:
        raise ValueError(f"kernel: expected a 2-D array (kh, kw), got {k.ndim}-D {shape_str(k.shape)}")
    x, restore = _to_nchw(image)
    H, W = x.shape[2:]
    kh, kw = k.shape
    if mode == "valid" and (kh > H or kw > W):
        raise ValueError(
            f"kernel: {shape_str(k.shape)} is larger than the image's (H, W) = {shape_str((H, W))} in mode='valid'"
        )
    if flipped:
        k = k[::-1, ::-1]
    ph, pw = _pads(kh, mode, flipped), _pads(kw, mode, flipped)
    if ph != (0, 0) or pw != (0, 0):
        x = np.pad(x, ((0, 0), (0, 0), ph, pw), mode=BOUNDARIES[boundary])
    from ..conv import conv2d

    y = conv2d(np.ascontiguousarray(x), np.ascontiguousarray(k)[None, None], algo=algo)
    return restore(y)


def correlate2d(image, kernel, mode: str = "same", boundary: str = "zero", algo: str = "auto") -> np.ndarray:
    """Cross-correlation of `image` with a 2-D `kernel` (what a conv layer computes):
    out[i, j] = sum_{u, v} kernel[u, v] * image[i + u - oh, j + v - ow], oh = kh // 2 in "same" mode.

    image: (H, W), (H, W, C) (each channel on its own) or (N, C, H, W); any float or integer dtype,
    computed in float32; result float32 in the same layout. mode: "same" | "valid" | "full";
    boundary: "zero" | "reflect" | "nearest" | "wrap" (see the module docstring for the scipy
    equivalents); algo: passed to `fastconv.conv2d` ("auto" picks FFT for large kernels).
    NaN/inf propagate to exactly the outputs whose window covers them, whatever the algorithm
    (fastconv.conv2d sends non-finite inputs away from the FFT, which would smear them)."""
    return _filter(image, kernel, mode, boundary, algo, flipped=False)


def convolve2d(image, kernel, mode: str = "same", boundary: str = "zero", algo: str = "auto") -> np.ndarray:
    """True convolution: `correlate2d` with the kernel flipped in both axes,
    out[i, j] = sum_{u, v} kernel[u, v] * image[i - u + oh, j - v + ow]. Matches
    `scipy.ndimage.convolve` in "same" mode (even kernels included) and `scipy.signal.convolve2d`
    in "full" and "valid" modes. Same arguments as `correlate2d`."""
    return _filter(image, kernel, mode, boundary, algo, flipped=True)


def moving_average(series, window: int, weights=None) -> np.ndarray:
    """Weighted moving average along the last axis, written as a 1-D convolution (seed 000):
    out[..., t] = sum_i w[i] * series[..., t + i] / sum(w) for t in 0 .. L - window, so
    out[..., t] averages series[..., t : t + window] and weights[-1] weighs the newest sample.
    Without `weights` all weights are equal. Result float32 of length L - window + 1."""
    s = _as_float32(series, "series", min_ndim=1)
    window = require_int(window, "window", minimum=1)
    if weights is None:
        w = np.full(window, 1.0 / window, np.float32)
    else:
        w = _as_float32(weights, "weights")
        if w.shape != (window,):
            raise ValueError(f"weights: expected shape {shape_str((window,))} (window), got {shape_str(w.shape)}")
        total = float(w.astype(np.float64).sum())
        if total == 0.0 or not np.isfinite(total):
            raise ValueError(f"weights: must have a finite, non-zero sum, got {total}")
        w = (w / np.float32(total)).astype(np.float32)
    L = s.shape[-1]
    if window > L:
        raise ValueError(f"window: must be <= the series length {L}, got {window}")
    from ..conv1d import conv1d

    batch = s.reshape(-1, 1, L)
    y = conv1d(np.ascontiguousarray(batch), np.ascontiguousarray(w)[None, None])
    return y.reshape(s.shape[:-1] + (L - window + 1,))
