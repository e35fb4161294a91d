"""The shared test toolkit: error bounds from the algorithm registry and fastconv._error_bounds
(the one place for every tolerance; re-exported here for the tests), the value-scaled closeness check the benchmark uses too, and the registry's algorithm
lists per device. The float64 oracle itself is tests/reference.py."""

from __future__ import annotations

import numpy as np

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


def on_device(a, device: str):
    """``a`` (a numpy array or None) as the public functions take it on ``device``."""
    return a if device == "cpu" or a is None else fastconv.cuda.to_device(np.ascontiguousarray(a))


def to_numpy(a) -> np.ndarray:
    """A result of either backend as a numpy array."""
    return a if isinstance(a, np.ndarray) else a.numpy()
