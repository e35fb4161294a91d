"""Our FFT (csrc/conv/fft.cpp) against numpy.fft in float64, and the FFT convolution against the
float64 references of tests/reference.py."""

import numpy as np
import pytest

from fastconv import _core

# Float32 FFT round-off grows like eps * log2(n); measured max ~1e-6 up to n = 100.
FFT_BOUND = 1e-5

SIZES = [n for n in range(1, 101) if _core.fft_size_supported(n)]


def rel(actual, expected):
    expected = np.asarray(expected)
    return float(np.abs(np.asarray(actual, np.complex128) - expected).max() / max(np.abs(expected).max(), 1e-30))


def crandn(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_supported_sizes_are_the_5_smooth_numbers():
    smooth = {2**a * 3**b * 5**c for a in range(8) for b in range(5) for c in range(4)}
    assert SIZES == sorted(n for n in smooth if n <= 100)
    assert [_core.fft_next_size(n) for n in (1, 7, 11, 13, 97, 101)] == [1, 8, 12, 15, 100, 108]


@pytest.mark.parametrize("n", [7, 11, 14, 49, 97])
def test_other_prime_factors_rejected(n, rng):
    with pytest.raises(ValueError, match=f"size {n} is not supported"):
        _core.fft_c2c(crandn(rng, (2, n)), 1, False)
    with pytest.raises(ValueError, match=f"size {n} is not supported"):
        _core.fft_r2c(rng.standard_normal((2, n)).astype(np.float32), 1)


@pytest.mark.parametrize("n", SIZES)
def test_1d_against_numpy(n, rng):
    batch = 11  # not a multiple of the 8 interleaved lanes
    x = crandn(rng, (batch, n))
    assert rel(_core.fft_c2c(x, 1, False), np.fft.fft(x.astype(np.complex128))) < FFT_BOUND
    assert rel(_core.fft_c2c(x, 1, True), np.fft.ifft(x.astype(np.complex128))) < FFT_BOUND
    xr = rng.standard_normal((batch, n)).astype(np.float32)
    spectrum = np.fft.rfft(xr.astype(np.float64))
    assert rel(_core.fft_r2c(xr, 1), spectrum) < FFT_BOUND
    # irfft of an arbitrary (non-Hermitian) half spectrum: numpy ignores Im X_0 (and Im X_n/2).
    half = crandn(rng, (batch, n // 2 + 1))
    assert rel(_core.fft_c2r(half, n, 1), np.fft.irfft(half.astype(np.complex128), n)) < FFT_BOUND


@pytest.mark.parametrize("n", SIZES)
def test_1d_round_trip(n, rng):
    x = rng.standard_normal((3, n)).astype(np.float32)
    back = _core.fft_c2r(_core.fft_r2c(x, 1), n, 1)
    assert rel(back, x) < FFT_BOUND
    z = crandn(rng, (3, n))
    assert rel(_core.fft_c2c(_core.fft_c2c(z, 1, False), 1, True), z) < FFT_BOUND


@pytest.mark.parametrize("shape", [(1, 1), (1, 8), (8, 1), (3, 4), (8, 6), (5, 9), (16, 32), (12, 10), (15, 15), (2, 3), (40, 36), (64, 64), (45, 50)])
def test_2d_against_numpy(shape, rng):
    x = rng.standard_normal((9,) + shape).astype(np.float32)
    spectrum = np.fft.rfft2(x.astype(np.float64))
    got = _core.fft_r2c(x, 2)
    assert got.shape == spectrum.shape
    assert rel(got, spectrum) < FFT_BOUND
    assert rel(_core.fft_c2r(spectrum.astype(np.complex64), shape[1], 2), x) < FFT_BOUND
    z = crandn(rng, (9,) + shape)
    assert rel(_core.fft_c2c(z, 2, False), np.fft.fft2(z.astype(np.complex128))) < FFT_BOUND
    assert rel(_core.fft_c2c(z, 2, True), np.fft.ifft2(z.astype(np.complex128))) < FFT_BOUND


def test_inputs_not_modified(rng):
    x = rng.standard_normal((4, 6, 10)).astype(np.float32)
    copy = x.copy()
    spectrum = _core.fft_r2c(x, 2)
    s_copy = spectrum.copy()
    _core.fft_c2r(spectrum, 10, 2)
    assert np.array_equal(x, copy) and np.array_equal(spectrum, s_copy)
