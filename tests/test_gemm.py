"""fastconv.gemm against float64 numpy: shapes off every block size, transposes, alpha/beta, strided
views, thread counts, and each class of bad input. Every test of what both backends do runs on each
(the ``device`` fixture); strided views, threads and the portable kernels are the CPU's alone (device
arrays are contiguous: ``trans_a``/``trans_b`` are the device's only layouts).

Error bound: relative_error(ours, float64) / sqrt(K) < 1e-5 (FP32 dot products of length K with
random signs accumulate rounding error that grows like sqrt(K) * 2^-24)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _core
from reference import relative_error
from toolkit import GEMM_BOUND_PER_SQRT_K, on_device, per_device, to_numpy

BOUND = GEMM_BOUND_PER_SQRT_K


def ref_gemm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    r = alpha * ((a64.T if trans_a else a64) @ (b64.T if trans_b else b64))
    if c is not None and beta != 0.0:
        r += beta * np.asarray(c, np.float64)
    return r


def check(actual, expected, k):
    err = relative_error(actual, expected) / np.sqrt(max(k, 1))
    assert err < BOUND, f"relative error {err:.2e} / sqrt(K) above {BOUND}"


def operands(rng, m, n, k, trans_a=False, trans_b=False):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return a, b


# Shapes around the register tiles (6x16 AVX2, 4x8 portable), cache blocks (MC 144, KC 256,
# NC 4080) and the CUDA tiles (128x128, K steps of 8), primes, and the conv-shaped products (narrowed
# to keep the file fast).
SHAPES = [
    (1, 1, 1), (1, 17, 1), (17, 1, 3), (6, 16, 1), (5, 15, 7), (7, 17, 2), (12, 32, 8), (13, 31, 257),
    (97, 101, 103), (145, 33, 513), (6, 4097, 25), (16, 2000, 150), (64, 500, 576), (256, 196, 300),
    (1, 300, 700), (300, 1, 700), (37, 4100, 3), (128, 128, 8), (129, 130, 17), (300, 257, 259), (5, 3, 1000),
    (64, 2, 3),
    (300, 301, 1500),
]
# The device runs all but the largest (1.7 s a call on the CPU stand-in of the CUDA runtime).
CUDA_SHAPES = SHAPES[:-1]


@pytest.mark.parametrize("device, shape", per_device(SHAPES, CUDA_SHAPES, ids=lambda s: "x".join(map(str, s))))
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matches_float64(rng, device, shape, trans_a, trans_b):
    m, n, k = shape
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    a0, b0 = a.copy(), b.copy()
    out = fastconv.gemm(on_device(a, device), on_device(b, device), trans_a=trans_a, trans_b=trans_b)
    assert out.shape == (m, n) and out.dtype == np.float32
    check(to_numpy(out, device), ref_gemm(a, b, trans_a, trans_b), k)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_large_square(rng):
    a, b = operands(rng, 1100, 1031, 1500)
    check(fastconv.gemm(a, b), ref_gemm(a, b), 1500)


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.25), (0.0, 3.0), (2.0, 0.0)])
@pytest.mark.parametrize("m,n,k", [(7, 17, 3), (50, 70, 300), (6, 5000, 25)])
def test_alpha_beta(rng, device, m, n, k, alpha, beta):
    a, b = operands(rng, m, n, k)
    c = rng.standard_normal((m, n)).astype(np.float32)
    expected = ref_gemm(a, b, alpha=alpha, beta=beta, c=c)
    out = on_device(c.copy(), device)
    result = fastconv.gemm(on_device(a, device), on_device(b, device), alpha=alpha, beta=beta, out=out)
    assert result is out
    check(to_numpy(out, device), expected, k)


@pytest.mark.parametrize("m,n,k", [(7, 17, 3), (50, 70, 300), (6, 5000, 25), (20, 30, 0)])
def test_beta_zero_ignores_nan_in_out(rng, device, m, n, k):
    a, b = operands(rng, m, n, k)
    out = on_device(np.full((m, n), np.nan, np.float32), device)
    fastconv.gemm(on_device(a, device), on_device(b, device), beta=0.0, out=out)
    assert np.isfinite(to_numpy(out, device)).all()
    check(to_numpy(out, device), ref_gemm(a, b), k)


def test_k_zero_scales_out(rng, device):
    a, b = on_device(np.zeros((4, 0), np.float32), device), on_device(np.zeros((0, 5), np.float32), device)
    c = rng.standard_normal((4, 5)).astype(np.float32)
    out = on_device(c.copy(), device)
    fastconv.gemm(a, b, beta=0.5, out=out)
    np.testing.assert_allclose(to_numpy(out, device), 0.5 * c, rtol=1e-7)
    np.testing.assert_array_equal(to_numpy(fastconv.gemm(a, b), device), np.zeros((4, 5), np.float32))


@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (5, 0, 3), (0, 0, 0), (0, 3, 0)])
def test_empty(device, m, n, k):
    a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    assert fastconv.gemm(on_device(a, device), on_device(b, device)).shape == (m, n)


def views(rng, m, n, k):
    """(a, b) views with awkward strides: sliced, negative, Fortran order, transposed storage."""
    big_a = rng.standard_normal((2 * m + 3, 3 * k + 2)).astype(np.float32)
    big_b = rng.standard_normal((k + 4, 2 * n + 1)).astype(np.float32)
    yield big_a[1 : 2 * m + 1 : 2, 2 : 3 * k + 2 : 3], big_b[2 : k + 2, ::2][:, :n]
    yield big_a[::-2][:m, ::-3][:, :k], big_b[::-1][:k, ::-2][:, :n]
    yield np.asfortranarray(big_a[:m, :k]), np.asfortranarray(big_b[:k, :n])
    yield rng.standard_normal((k, m)).astype(np.float32).T, rng.standard_normal((n, k)).astype(np.float32).T
    # unit-stride rows further apart than K, forwards and backwards: with at most 64 columns the
    # AVX2 kernel reads such rows of A in place instead of packing them
    yield big_a[:m, :k], big_b[:k, :n]
    yield big_a[::-1][:m, :k], big_b[:k, :n]


@pytest.mark.parametrize("m,n,k", [(7, 17, 5), (40, 90, 300), (6, 700, 25), (150, 20, 40), (205, 49, 700), (13, 64, 400)])
def test_strided_views(rng, m, n, k):
    for a, b in views(rng, m, n, k):
        a0, b0 = a.copy(), b.copy()
        check(fastconv.gemm(a, b), ref_gemm(a, b), k)
        np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(b, b0)


def test_broadcast_inputs(rng):
    """Zero strides (np.broadcast_to) are valid read-only inputs."""
    row = rng.standard_normal((1, 300)).astype(np.float32)
    col = rng.standard_normal((300, 1)).astype(np.float32)
    for m, n in [(6, 40), (50, 17)]:
        a = np.broadcast_to(row, (m, 300))
        b = np.broadcast_to(col, (300, n))
        check(fastconv.gemm(a, b), ref_gemm(a, b), 300)
        check(fastconv.gemm(b, a, trans_a=True, trans_b=True), ref_gemm(b, a, True, True), 300)


@pytest.mark.parametrize("layout", ["fortran", "sliced", "negative", "both_strided"])
@pytest.mark.parametrize("m,n,k", [(7, 17, 5), (40, 90, 300), (6, 700, 25)])
def test_strided_out(rng, m, n, k, layout):
    a, b = operands(rng, m, n, k)
    c = rng.standard_normal((m, n)).astype(np.float32)
    if layout == "fortran":
        base = np.asfortranarray(c.copy())
        out = base
    elif layout == "sliced":
        base = np.zeros((m, 2 * n), np.float32)
        out = base[:, ::2]
    elif layout == "negative":
        base = np.zeros((m, n), np.float32)
        out = base[::-1, ::-1]
    else:
        base = np.zeros((2 * m, 3 * n), np.float32)
        out = base[::2, ::3]
    out[...] = c
    untouched = base.copy()
    fastconv.gemm(a, b, alpha=0.5, beta=1.5, out=out)
    check(out, ref_gemm(a, b, alpha=0.5, beta=1.5, c=c), k)
    if layout in ("sliced", "both_strided"):  # elements outside the view stay as they were
        mask = np.ones(base.shape, bool)
        mask[:: (2 if layout == "both_strided" else 1), :: (3 if layout == "both_strided" else 2)] = False
        np.testing.assert_array_equal(base[mask], untouched[mask])


@pytest.mark.parametrize("m,n,k", [(300, 301, 257), (6, 20000, 25), (256, 196, 600), (17, 3000, 150)])
def test_one_and_two_threads_bitwise_equal(rng, threads, m, n, k):
    a, b = operands(rng, m, n, k)
    fastconv.set_num_threads(1)
    one = fastconv.gemm(a, b)
    fastconv.set_num_threads(2)
    two = fastconv.gemm(a, b)
    check(two, ref_gemm(a, b), k)
    np.testing.assert_array_equal(one, two)


def test_matches_naive_kernel(rng):
    a, b = operands(rng, 23, 41, 37)
    out = np.full((23, 41), np.nan, np.float32)
    naive = np.full((23, 41), np.nan, np.float32)
    _core.sgemm(a, b, out, 1.0, 0.0, False, False)
    _core.sgemm(a, b, naive, 1.0, 0.0, False, False, naive=True)
    check(out, naive, 37)
    check(naive, ref_gemm(a, b), 37)


def test_called_from_python_threads(rng, threads):
    """Concurrent callers each get their own scratch buffers and the right answer."""
    from concurrent.futures import ThreadPoolExecutor

    fastconv.set_num_threads(2)
    pairs = [operands(rng, 60 + i, 200 - i, 100 + 7 * i) for i in range(6)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda ab: fastconv.gemm(*ab), pairs))
    for (a, b), r in zip(pairs, results):
        check(r, ref_gemm(a, b), a.shape[1])


def test_property_matches_float64(device):
    @settings(max_examples=25, deadline=None)
    @given(
        m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 300),
        trans_a=st.booleans(), trans_b=st.booleans(),
        alpha=st.sampled_from([1.0, -0.5, 2.0]), beta=st.sampled_from([0.0, 1.0, -0.75]),
        seed=st.integers(0, 2**32 - 1),
    )
    def check_one(m, n, k, trans_a, trans_b, alpha, beta, seed):
        rng = np.random.default_rng(seed)
        a, b = operands(rng, m, n, k, trans_a, trans_b)
        c = rng.standard_normal((m, n)).astype(np.float32)
        out = on_device(c.copy() if beta != 0.0 else np.full((m, n), np.nan, np.float32), device)
        fastconv.gemm(on_device(a, device), on_device(b, device), trans_a=trans_a, trans_b=trans_b, alpha=alpha,
                      beta=beta, out=out)
        check(to_numpy(out, device), ref_gemm(a, b, trans_a, trans_b, alpha, beta, c), k)

    check_one()


def test_portable_path_in_subprocess():
    """The same checks on the portable kernels (FASTCONV_CPU=portable is read once per process)."""
    env = dict(os.environ, FASTCONV_CPU="portable")
    here = Path(__file__).parent
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(here / "test_gemm.py"),
           "-k", "not portable_path and not large_square"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=here)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "passed" in done.stdout


def test_portable_path_is_active_in_subprocess():
    env = dict(os.environ, FASTCONV_CPU="portable")
    code = "import fastconv; print(fastconv.info()['cpu_path'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "portable"


# ---- bad input ---------------------------------------------------------------------------------

def test_rejects_non_array(device):
    one = on_device(np.ones((1, 1), np.float32), device)
    with pytest.raises(TypeError, match="a:.*list"):
        fastconv.gemm([[1.0]], one)
    with pytest.raises(TypeError, match="b:.*float"):
        fastconv.gemm(one, 3.0)


@pytest.mark.parametrize("device, dtype", per_device([np.float64, np.int32, np.float16], [np.int64],
                                                     ids=lambda d: np.dtype(d).name))
def test_rejects_wrong_dtype(device, dtype):
    good = on_device(np.ones((2, 2), np.float32), device)
    bad = on_device(np.ones((2, 2), dtype), device)
    with pytest.raises(TypeError, match=f"a:.*{np.dtype(dtype)}"):
        fastconv.gemm(bad, good)
    with pytest.raises(TypeError, match=f"b:.*{np.dtype(dtype)}"):
        fastconv.gemm(good, bad)
    with pytest.raises(TypeError, match=f"out:.*{np.dtype(dtype)}"):
        fastconv.gemm(good, good, out=bad)


@pytest.mark.parametrize("shape", [(3,), (2, 2, 2), ()])
def test_rejects_wrong_ndim(device, shape):
    good = on_device(np.ones((2, 2), np.float32), device)
    with pytest.raises(ValueError, match="a:.*2-D"):
        fastconv.gemm(on_device(np.ones(shape, np.float32), device), good)
    with pytest.raises(ValueError, match="b:.*2-D"):
        fastconv.gemm(good, on_device(np.ones(shape, np.float32), device))


def test_rejects_mismatched_inner_dims(device):
    a, b = on_device(np.ones((3, 4), np.float32), device), on_device(np.ones((5, 6), np.float32), device)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
        fastconv.gemm(a, b)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 6\)"):
        fastconv.gemm(a, b, trans_a=True)


def test_rejects_wrong_out_shape(device):
    a, b = on_device(np.ones((3, 4), np.float32), device), on_device(np.ones((4, 5), np.float32), device)
    with pytest.raises(ValueError, match=r"out:.*\(3, 5\).*\(5, 3\)"):
        fastconv.gemm(a, b, out=on_device(np.zeros((5, 3), np.float32), device))


def test_rejects_overlapping_out(device):
    buf = on_device(np.ones((4, 4), np.float32), device)
    other = on_device(np.ones((4, 4), np.float32), device)
    with pytest.raises(ValueError, match="out:.*overlaps.*'a'"):
        fastconv.gemm(buf, other, out=buf)
    with pytest.raises(ValueError, match="out:.*overlaps.*'b'"):
        fastconv.gemm(other, buf, out=buf)
    if device == "cpu":  # a view of the same memory (the device has no views that are not reshapes)
        with pytest.raises(ValueError, match="out:.*overlaps.*'b'"):
            fastconv.gemm(other, buf[:, ::-1], out=buf)


def test_rejects_read_only_out():
    out = np.zeros((2, 2), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out:.*read-only"):
        fastconv.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), out=out)


def test_peak_gflops_is_positive():
    from fastconv.bench import peak_gflops

    assert peak_gflops(threads=1, iterations=200_000, repeats=2) > 0.0


def test_wrong_ndim_is_a_type_error_and_a_value_error(device):
    """Issue 2 asks for TypeError on a wrong ndim; most callers expect ValueError: both work."""
    a = on_device(np.zeros((3, 4, 1), np.float32), device)
    with pytest.raises(TypeError, match="a: expected a 2-D array, got 3-D"):
        fastconv.gemm(a, on_device(np.zeros((4, 2), np.float32), device))
    with pytest.raises(ValueError, match="b: expected a 2-D array, got 1-D"):
        fastconv.gemm(on_device(np.zeros((3, 4), np.float32), device), on_device(np.zeros(4, np.float32), device))
