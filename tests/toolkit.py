"""The shared test toolkit: error bounds from the algorithm registry and fastconv._error_bounds
(the one place for every tolerance; re-exported here for the tests), the value-scaled closeness check the benchmark uses too, and the registry's algorithm
lists per device. The float64 oracle itself is tests/reference.py.

Running one test body on every backend: the ``device`` fixture (tests/conftest.py) gives "cpu" and
"cuda" (the latter marked ``cuda``); ``per_device`` parametrizes "device" together with a case list
when the device should run fewer or smaller cases (the CPU stand-in of the CUDA runtime in CI is
slow); ``on_device`` / ``tensor`` move operands there, ``to_numpy`` brings results back,
``nan_filled`` and ``run_kernel`` call a backend's compiled kernel into a NaN-prefilled output (so an
element the kernel never writes fails the check)."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv

from fastconv._conv_algorithms import ALGORITHMS, error_bound, select_algorithm
from fastconv._error_bounds import ELEMENTWISE_BOUND, GEMM_BOUND_PER_SQRT_K, POOL_BOUNDS, SUM_BOUND, gemm_bound  # noqa: F401
from fastconv.bench.reference import tolerance_ratio


def conv_bound(algo: str, params=None, pass_: str = "forward", device: str = "cpu") -> float:
    """The relative error bound of convolution algorithm ``algo``; for "auto", that of the kernel
    auto picks for ``params`` (a Conv2dParams) when given, else the bound of plain sums."""
    if algo == "auto":
        if params is None:
            return SUM_BOUND
        name = select_algorithm(params, pass_, device)
        return error_bound(ALGORITHMS[name].kernel(params)) if device == "cpu" else error_bound(name)
    return error_bound(algo)


def conv_algorithm_names(device: str = "cpu") -> list[str]:
    """Every registered convolution algorithm with a kernel on ``device``, in registry order."""
    return [name for name, algo in ALGORITHMS.items() if device in algo.devices]


def assert_close(actual, expected, rtol: float, atol: float | None = None, what: str = "") -> None:
    """Every element within ``atol + rtol * |expected|`` (``atol`` default: ``rtol * max|expected|``),
    shape and finiteness included; the message names the worst element."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    ratio = tolerance_ratio(actual, expected, rtol, atol)
    if not ratio <= 1.0:
        magnitude = np.abs(expected.astype(np.float64))
        allowed = (rtol * magnitude.max() if atol is None else atol) + rtol * magnitude
        excess = np.abs(actual.astype(np.float64) - expected) / np.maximum(allowed, 1e-300)
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.where(np.isnan(excess), np.inf, excess)), excess.shape))
        raise AssertionError(f"{what}: {ratio:.2f}x the tolerance (rtol {rtol:.0e}); worst at {worst}: "
                             f"{float(actual[worst])} vs {float(expected[worst])}")


def assert_same_nonfinite(actual, expected, what: str = "") -> None:
    """NaN and Inf exactly where the float64 definition has them (a transform that spreads one
    non-finite input over a tile fails this)."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=what)
    np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected), err_msg=what)


def on_device(a, device: str):
    """``a`` (a numpy array or None) as the public functions take it on ``device``."""
    # (cuda.to_device copies a non-contiguous array itself; np.ascontiguousarray would make a 0-d one 1-d)
    return a if device == "cpu" or a is None else fastconv.cuda.to_device(np.asarray(a))


def to_numpy(a, device: str | None = None) -> np.ndarray:
    """A result of either backend (an array, or a Tensor holding one) as a numpy array. With ``device``,
    first asserts that the result lives there, so that a device test cannot pass by running on the host."""
    data = a.data if isinstance(a, fastconv.Tensor) else a
    if device is not None:
        where = "cpu" if isinstance(data, np.ndarray) else "cuda" if isinstance(data, fastconv.cuda.Array) else None
        assert where == device, f"a result on {where or type(data).__name__}, expected it on {device}"
    return data if isinstance(data, np.ndarray) else data.numpy()


DEVICES = ("cpu", "cuda")

#: A dtype each backend can hold but its float32 ops refuse (the device holds only float32 and int64).
WRONG_DTYPE = {"cpu": np.float64, "cuda": np.int64}


def per_device(cpu_cases, cuda_cases=None, ids=None):
    """Parameters for ``@pytest.mark.parametrize("device, case", ...)``: every case of ``cpu_cases`` on
    "cpu" and of ``cuda_cases`` (default: the same) on "cuda", the latter marked ``cuda``. ``ids``: a
    function of a case (default ``str``)."""
    ids = ids or str
    cuda_cases = cpu_cases if cuda_cases is None else cuda_cases
    return ([pytest.param("cpu", c, id=f"cpu-{ids(c)}") for c in cpu_cases]
            + [pytest.param("cuda", c, id=f"cuda-{ids(c)}", marks=pytest.mark.cuda) for c in cuda_cases])


def examples(device: str, cpu: int, cuda: int) -> int:
    """How many hypothesis examples to draw on ``device`` (few on "cuda": CI runs it on a slow stand-in)."""
    return cpu if device == "cpu" else cuda


def tensor(a, device: str, requires_grad: bool = False):
    """A fastconv.Tensor holding numpy array ``a`` on ``device`` (a leaf, so it collects gradients there)."""
    return fastconv.Tensor(on_device(np.asarray(a), device), requires_grad=requires_grad)


def nan_filled(shape, device: str, dtype=np.float32):
    """An output array on ``device`` filled with NaN (float32) or -1 (int64), for a kernel to overwrite."""
    return on_device(np.full(shape, np.nan if np.dtype(dtype) == np.float32 else -1, dtype), device)


def run_kernel(device: str, name: str, *args):
    """Call the compiled kernel ``name`` of ``device``'s extension module (fastconv._core on the CPU,
    fastconv.cuda._cuda on the GPU: sgemm and the pooling kernels take the same arguments on both)
    with ``args``: numpy arrays or fastconv.cuda.Arrays (None for an output it may skip)."""
    fn = getattr(fastconv._core if device == "cpu" else fastconv.cuda._cuda, name)
    return fn(*(a._impl if isinstance(a, fastconv.cuda.Array) else a for a in args))
