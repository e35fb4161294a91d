"""Issue 8's battery for the functional ops (gemm, conv2d and its gradients, pooling and theirs):
inputs never modified, unusual but valid arrays, NaN/Inf propagation, concurrency, GIL release,
determinism and leaks. Bad-input messages are tested per area in test_<area>.py."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import fastconv
from fastconv import grad
from reference import conv2d_input_grad_ref, conv2d_ref, relative_error
from toolkit import assert_same_nonfinite

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 4, 11, 9)).astype(np.float32)
W = RNG.standard_normal((6, 4, 3, 3)).astype(np.float32)
B = RNG.standard_normal(6).astype(np.float32)
DY = RNG.standard_normal((2, 6, 11, 9)).astype(np.float32)  # conv2d(X, W, padding=1) output shape
A = RNG.standard_normal((37, 29)).astype(np.float32)
M = RNG.standard_normal((29, 41)).astype(np.float32)
PX = RNG.standard_normal((2, 3, 12, 10)).astype(np.float32)
PY, PIDX = fastconv.max_pool2d(PX, 2, return_indices=True)


def ops(algo="auto"):
    """name -> (function of the arrays, the arrays) for every functional op on the CPU."""
    return {
        "gemm": (lambda a, b: fastconv.gemm(a, b), (A, M)),
        "conv2d": (lambda x, w, b: fastconv.conv2d(x, w, b, padding=1, algo=algo), (X, W, B)),
        "conv2d_input": (lambda w, dy: grad.conv2d_input(X.shape, w, dy, padding=1, algo=algo), (W, DY)),
        "conv2d_weight": (lambda x, dy: grad.conv2d_weight(x, W.shape, dy, padding=1, algo=algo), (X, DY)),
        "max_pool2d": (lambda x: fastconv.max_pool2d(x, 2), (PX,)),
        "avg_pool2d": (lambda x: fastconv.avg_pool2d(x, 3, 2, 1), (PX,)),
        "adaptive_avg_pool2d": (lambda x: fastconv.adaptive_avg_pool2d(x, (5, 3)), (PX,)),
        "max_pool2d_grad": (lambda g: grad.max_pool2d(g, PIDX, PX.shape), (PY,)),
        "avg_pool2d_grad": (lambda g: grad.avg_pool2d(g, PX.shape, 2, 2, 0, False, True), (PY,)),
    }


CONV_ALGOS = sorted(fastconv.conv_algorithms(X.shape, W.shape, padding=1))


def all_cases():
    cases = [(name, "auto") for name in ops()]
    cases += [(name, algo) for algo in CONV_ALGOS for name in ("conv2d", "conv2d_input", "conv2d_weight")
              if name == "conv2d" or algo in fastconv.conv_algorithms(X.shape, W.shape, padding=1,
                                                                        pass_={"conv2d_input": "input", "conv2d_weight": "weight"}[name])]
    return cases


@pytest.mark.parametrize("name,algo", all_cases())
def test_inputs_never_modified(name, algo):
    fn, args = ops(algo)[name]
    copies = [a.copy() for a in args]
    fn(*args)
    for before, after in zip(copies, args):
        assert np.array_equal(before, after, equal_nan=True)


def variants(a: np.ndarray):
    """The same values as `a` in layouts a kernel must not trip over."""
    fortran = np.asfortranarray(a)
    reversed_ = a[..., ::-1].copy()[..., ::-1]  # negative last stride, same values
    readonly = a.copy()
    readonly.flags.writeable = False
    padded = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), np.float32)
    padded[..., ::2] = a
    return {"fortran": fortran, "negative_stride": reversed_, "readonly": readonly, "strided": padded[..., ::2]}


@pytest.mark.parametrize("name", list(ops()))
@pytest.mark.parametrize("layout", ["fortran", "negative_stride", "readonly", "strided"])
def test_unusual_layouts_give_the_same_result(name, layout):
    fn, args = ops()[name]
    expected = fn(*args)
    got = fn(*[variants(a)[layout] if a.dtype == np.float32 else a for a in args])
    np.testing.assert_array_equal(got, expected)


def test_broadcast_views():
    """Stride-0 views (np.broadcast_to) are read correctly."""
    row = RNG.standard_normal((1, 29)).astype(np.float32)
    a = np.broadcast_to(row, (37, 29))
    np.testing.assert_array_equal(fastconv.gemm(a, M), fastconv.gemm(np.ascontiguousarray(a), M))
    plane = RNG.standard_normal((1, 1, 11, 9)).astype(np.float32)
    x = np.broadcast_to(plane, (2, 4, 11, 9))
    np.testing.assert_array_equal(fastconv.conv2d(x, W, padding=1), fastconv.conv2d(x.copy(), W, padding=1))
    np.testing.assert_array_equal(fastconv.max_pool2d(x, 2), fastconv.max_pool2d(x.copy(), 2))


def test_zero_size_batch():
    x = np.zeros((0, 4, 11, 9), np.float32)
    assert fastconv.conv2d(x, W, padding=1).shape == (0, 6, 11, 9)
    assert fastconv.max_pool2d(x, 2).shape == (0, 4, 5, 4)
    assert fastconv.avg_pool2d(x, 2).shape == (0, 4, 5, 4)
    dw = grad.conv2d_weight(x, W.shape, np.zeros((0, 6, 11, 9), np.float32), padding=1)
    np.testing.assert_array_equal(dw, np.zeros(W.shape, np.float32))


@pytest.mark.parametrize("algo", ["direct", "im2col"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_conv_nonfinite_propagates_like_float64(algo, bad):
    """direct and im2col put NaN/Inf exactly where the float64 definition does."""
    x = X.copy()
    x[1, 2, 5, 4] = bad
    x[0, 0, 0, 0] = bad
    ours = fastconv.conv2d(x, W, B, padding=1, algo=algo)
    ref = conv2d_ref(x, W, B, padding=(1, 1))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(ref))
    finite = np.isfinite(ref)
    assert relative_error(ours[finite], ref[finite]) < 1e-5


def test_auto_never_invents_nonfinite_values():
    """Whatever auto picks (transform-based algorithms spread a NaN across a tile), the NaN mask
    matches the definition."""
    x = RNG.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = RNG.standard_normal((16, 16, 3, 3)).astype(np.float32)
    x[0, 3, 7, 7] = np.nan
    for algo in fastconv.conv_algorithms(x.shape, w.shape, padding=1) + ["auto"]:
        ours = fastconv.conv2d(x, w, padding=1, algo=algo)
        ref = conv2d_ref(x, w, padding=(1, 1))
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=algo)


@pytest.mark.parametrize("operand", ["x", "weight"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_tile_transforms_rerun_on_nonfinite_output(operand, bad):
    """A NaN or Inf in the input or in the weights: FFT and Winograd (which would spread it over a
    tile) give the definition's NaN/Inf mask in both passes they run, through the rerun that a
    non-finite output triggers."""
    x = RNG.standard_normal((1, 8, 12, 12)).astype(np.float32)
    w = RNG.standard_normal((8, 8, 3, 3)).astype(np.float32)
    (x if operand == "x" else w)[0, 2, 1, 1] = bad
    ref = conv2d_ref(x, w, padding=(1, 1))
    dy = RNG.standard_normal(ref.shape).astype(np.float32)
    ref_dx = conv2d_input_grad_ref(x.shape, w, dy, padding=(1, 1))
    for algo in ("fft", "winograd_f2", "winograd_f4"):
        ours = fastconv.conv2d(x, w, padding=1, algo=algo)
        assert_same_nonfinite(ours, ref, algo)
        if operand == "weight":
            dx = fastconv.grad.conv2d_input(x.shape, w, dy, padding=1, algo=algo)
            np.testing.assert_array_equal(np.isnan(dx), np.isnan(ref_dx), err_msg=algo)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_nan_propagates(kind):
    x = PX.copy()
    x[0, 1, 3, 3] = np.nan
    y = fastconv.max_pool2d(x, 2) if kind == "max" else fastconv.avg_pool2d(x, 2)
    expected = np.zeros(y.shape, bool)
    expected[0, 1, 1, 1] = True
    np.testing.assert_array_equal(np.isnan(y), expected)


@pytest.mark.parametrize("name,algo", all_cases())
def test_concurrent_calls_are_bitwise_equal_to_serial(name, algo, threads):
    fastconv.set_num_threads(2)
    fn, args = ops(algo)[name]
    expected = fn(*args)
    results = [None] * 8
    errors = []

    def work(i):
        try:
            for _ in range(3):
                results[i] = fn(*args)
        except Exception as e:  # surfaced below: an assert in a thread would be lost
            errors.append(e)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r, expected)


@pytest.mark.parametrize("name,algo", all_cases())
def test_same_call_same_threads_is_deterministic(name, algo):
    fn, args = ops(algo)[name]
    first = fn(*args)
    for _ in range(3):
        np.testing.assert_array_equal(fn(*args), first)


def test_gil_is_released_during_a_long_convolution(threads):
    """A pure-Python thread keeps counting while one long conv2d runs."""
    fastconv.set_num_threads(1)
    x = RNG.standard_normal((16, 64, 56, 56)).astype(np.float32)
    w = RNG.standard_normal((64, 64, 3, 3)).astype(np.float32)
    counter = [0]
    done = threading.Event()

    def count():
        while not done.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.01)
    start = counter[0]
    t0 = time.perf_counter()
    fastconv.conv2d(x, w, padding=1, algo="im2col")
    elapsed = time.perf_counter() - t0
    progressed = counter[0] - start
    done.set()
    t.join()
    assert elapsed > 0.02, "convolution too short to tell"
    assert progressed > 1000, f"the Python thread made only {progressed} steps in {elapsed:.3f} s"


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


@pytest.mark.parametrize("name", list(ops()))
def test_no_leak_over_5000_calls(name):
    fn, args = ops()[name]
    for _ in range(200):  # warm caches, plans and scratch buffers first
        fn(*args)
    before = _rss_mib()
    for _ in range(5000):
        fn(*args)
    assert _rss_mib() - before < 10, f"{name}: resident memory grew by {_rss_mib() - before:.1f} MiB"


def test_thread_count_invariance(threads):
    """What the README promises: bitwise the same result for 1, 2 and 3 threads, except the direct,
    im2col and implicit_gemm weight gradients (per-thread partial sums over the batch)."""
    x = RNG.standard_normal((5, 16, 23, 21)).astype(np.float32)
    w = RNG.standard_normal((16, 16, 3, 3)).astype(np.float32)
    dy = RNG.standard_normal((5, 16, 23, 21)).astype(np.float32)

    def outputs():
        out = {("gemm",): fastconv.gemm(x.reshape(80, -1), x.reshape(80, -1).T.copy()),
               ("max_pool2d",): fastconv.max_pool2d(x, 2), ("avg_pool2d",): fastconv.avg_pool2d(x, 3, 2, 1)}
        for algo in fastconv.conv_algorithms(x.shape, w.shape, padding=1):
            out["forward", algo] = fastconv.conv2d(x, w, padding=1, algo=algo)
        for algo in fastconv.conv_algorithms(x.shape, w.shape, padding=1, pass_="input"):
            out["input", algo] = grad.conv2d_input(x.shape, w, dy, padding=1, algo=algo)
        per_thread_sums = {"direct", "im2col", "implicit_gemm"}
        for algo in set(fastconv.conv_algorithms(x.shape, w.shape, padding=1, pass_="weight")) - per_thread_sums:
            out["weight", algo] = grad.conv2d_weight(x, w.shape, dy, padding=1, algo=algo)
        return out

    results = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        results.append(outputs())
    for key in results[0]:
        for other in results[1:]:
            np.testing.assert_array_equal(other[key], results[0][key], err_msg=str(key))
