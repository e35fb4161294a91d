"""Our FFT (csrc/conv/fft.cpp) against numpy.fft in float64, and the FFT convolution against the
float64 references of tests/reference.py."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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


# ---- FFT convolution ----
import fastconv  # noqa: E402
from reference import conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref, relative_error  # noqa: E402
from toolkit import conv_bound  # noqa: E402

# The registry's bound (1e-4), looser than direct/im2col's 1e-5: every output is a sum over the
# whole transform tile, so its round-off grows with log2 of the transform size and is relative to
# the largest values in the tile (a small output next to large ones carries their absolute error).
# Measured: <= 3e-7 here.
CONV_BOUND = conv_bound("fft")


@pytest.fixture
def forced_tile():
    """Force the transform size for one test (exercises many-tile overlap-save paths)."""
    yield lambda t1, t2: _core.fft_conv_force_tile(t1, t2)
    _core.fft_conv_force_tile(0, 0)


def check_fft_passes(rng, N, C, H, W, K, R, S, ph, pw):
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((K, C, R, S), dtype=np.float32)
    b = rng.standard_normal(K, dtype=np.float32)
    p = _core.Conv2dParams(N, C, H, W, K, R, S, pad_h=ph, pad_w=pw)
    y = np.full((N, K, p.P, p.Q), np.nan, np.float32)  # NaN: an unwritten element cannot pass
    _core.conv2d_forward("fft", p, x, w, b, y)
    assert relative_error(y, conv2d_ref(x, w, b, padding=(ph, pw))) <= CONV_BOUND
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = np.full(x.shape, np.nan, np.float32)
    _core.conv2d_backward_input("fft", p, dy, w, dx)
    assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, padding=(ph, pw))) <= CONV_BOUND
    dw = np.full(w.shape, np.nan, np.float32)
    _core.conv2d_backward_weight("fft", p, x, dy, dw)
    assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy, padding=(ph, pw))) <= CONV_BOUND


# (N, C, H, W, K, R, S, pad_h, pad_w)
CONV_CASES = [
    (2, 3, 10, 12, 4, 3, 3, 1, 1),
    (1, 1, 1, 1, 1, 1, 1, 0, 0),  # 1x1 everything
    (3, 5, 7, 9, 2, 7, 9, 0, 0),  # kernel == input
    (2, 1, 13, 11, 3, 5, 4, 2, 0),  # C = 1, even kernel width, one-sided padding
    (1, 4, 17, 19, 9, 1, 1, 0, 0),  # 1x1 kernel, primes
    (2, 3, 9, 8, 5, 9, 9, 4, 4),  # big_kernel's geometry, small
    (2, 2, 6, 6, 3, 4, 4, 3, 3),  # padding close to the kernel size
    (9, 3, 5, 7, 10, 2, 3, 1, 1),  # more tiles than lanes, K not a multiple of 8
    (1, 17, 8, 8, 11, 3, 3, 1, 1),  # C and K not multiples of 8
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
def test_conv_model_tiling(rng, case):
    check_fft_passes(rng, *case)


@pytest.mark.parametrize("tile", [(1, 2), (5, 6), (8, 8), (9, 10), (16, 12)])
@pytest.mark.parametrize("case", [(2, 3, 13, 11, 4, 3, 3, 1, 1), (1, 2, 20, 17, 3, 4, 6, 3, 2), (3, 2, 7, 7, 5, 5, 5, 2, 2)])
def test_conv_forced_tiles(rng, forced_tile, tile, case):
    forced_tile(*tile)  # clamped up to the smallest valid tile for the kernel
    check_fft_passes(rng, *case)


@pytest.mark.parametrize("nthreads", [1, 3])
def test_conv_threads(rng, threads, forced_tile, nthreads):
    fastconv.set_num_threads(nthreads)
    forced_tile(8, 8)
    check_fft_passes(rng, 5, 3, 14, 15, 4, 3, 3, 1, 1)


def test_conv_tiling_rule():
    big = _core.Conv2dParams(4, 16, 128, 128, 16, 9, 9, pad_h=4, pad_w=4)
    for pass_ in ("forward", "input", "weight"):
        t = _core.fft_conv_tiling(big, pass_)
        assert t["O1"] == t["T1"] - 8 and t["O2"] == t["T2"] - 8 and t["T2"] % 2 == 0
        assert t["tiles_h"] * t["O1"] >= 128 and t["tiles_w"] * t["O2"] >= 128
    small = _core.Conv2dParams(1, 1, 3, 3, 1, 3, 3)
    assert _core.fft_conv_tiling(small, "forward")["T1"] >= 3


def test_conv_api_validity():
    assert "fft" in fastconv.conv_algorithms((2, 3, 8, 8), (4, 3, 3, 3), padding=1)
    for kw, why in ((dict(stride=2), "stride"), (dict(dilation=2), "dilation"), (dict(groups=3), "groups")):
        w_shape = (3, 1, 3, 3) if "groups" in kw else (4, 3, 3, 3)
        for pass_ in ("forward", "input", "weight"):
            assert "fft" not in fastconv.conv_algorithms((2, 3, 8, 8), w_shape, pass_=pass_, **kw)
        x = np.zeros((2, 3, 8, 8), np.float32)
        with pytest.raises(ValueError, match=why):
            fastconv.conv2d(x, np.zeros(w_shape, np.float32), algo="fft", **kw)


def test_conv_api_all_passes(rng):
    x = rng.standard_normal((2, 3, 12, 10), dtype=np.float32)
    w = rng.standard_normal((4, 3, 5, 5), dtype=np.float32)
    y = fastconv.conv2d(x, w, padding="same", algo="fft")
    assert relative_error(y, conv2d_ref(x, w, padding=(2, 2))) <= CONV_BOUND
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = fastconv.grad.conv2d_input(x.shape, w, dy, padding=2, algo="fft")
    assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, padding=(2, 2))) <= CONV_BOUND
    dw = fastconv.grad.conv2d_weight(x, w.shape, dy, padding=2, algo="fft")
    assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy, padding=(2, 2))) <= CONV_BOUND


def test_conv_portable_path():
    """FASTCONV_CPU=portable runs the non-AVX2 FFT and inner loops."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'tests'); import numpy as np, fastconv; from test_fft import check_fft_passes;"
        "assert fastconv.info()['cpu_path'] == 'portable';"
        "rng = np.random.default_rng(3);"
        "check_fft_passes(rng, 2, 3, 13, 11, 4, 3, 3, 1, 1); check_fft_passes(rng, 9, 5, 9, 8, 6, 9, 9, 4, 4)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, FASTCONV_CPU="portable"), cwd=root)


@settings(max_examples=25, deadline=None)
@given(
    dims=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 14), st.integers(1, 14), st.integers(1, 9)),
    kernel=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    pad=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    tile=st.tuples(st.integers(0, 20), st.integers(0, 20)),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv_random_shapes_and_tiles(dims, kernel, pad, tile, seed):
    N, C, H, W, K = dims
    R, S = kernel
    assume(H + 2 * pad[0] >= R and W + 2 * pad[1] >= S)
    _core.fft_conv_force_tile(*tile)  # (0, 0) or one coordinate 0: the cost model decides
    try:
        check_fft_passes(np.random.default_rng(seed), N, C, H, W, K, R, S, *pad)
    finally:
        _core.fft_conv_force_tile(0, 0)


def test_conv_small_workspace_limit(rng):
    """Under a 1 MiB limit the tiling falls back to the tiles that need the least memory."""
    saved = fastconv.get_workspace_limit()
    try:
        fastconv.set_workspace_limit(1 << 20)
        p = _core.Conv2dParams(2, 32, 24, 24, 40, 7, 7, pad_h=3, pad_w=3)
        assert _core.fft_conv_tiling(p, "forward")["T1"] <= 16
        check_fft_passes(rng, 2, 32, 24, 24, 40, 7, 7, 3, 3)
    finally:
        fastconv.set_workspace_limit(saved)
