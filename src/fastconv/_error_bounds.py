"""The error bounds of the ops that are not convolution algorithms, beside the one they all start
from. Each is a relative error against float64 computed from the definition:
relative_error = max|got - exact| / max|exact|. The tests (tests/toolkit.py) and the benchmark's
check-then-time (fastconv.bench) read them here; each convolution algorithm's bound is its entry in
the registry (_conv_algorithms.ALGORITHMS[name].bound), which starts from SUM_BOUND.
"""

from __future__ import annotations

import math

#: Outputs that are float32 sums of at most a few thousand products (no transform).
SUM_BOUND = 1e-5

#: GEMM: FP32 dot products of length K with random signs accumulate rounding error that grows like
#: sqrt(K) * 2^-24, so the bound is this times sqrt(K) (see gemm_bound).
GEMM_BOUND_PER_SQRT_K = 1e-5

#: Pooling, per pass. Forward: max is exact, average sums at most k*k float32 values then divides.
#: Input gradient: an element sums up to one term per overlapping window (144 for an adaptive pool
#: of a 1x1 input to 12x12), about sqrt(terms) * 6e-8 plus the per-window division; 1e-6 was seen
#: to fail at 1.06e-6 there.
POOL_BOUNDS = {"forward": 1e-6, "input": 1e-5}

#: One float32 operation per element (bias add, activations, optimizer updates).
ELEMENTWISE_BOUND = 1e-6


def gemm_bound(k: int) -> float:
    """The relative error bound of a float32 GEMM with inner dimension ``k``."""
    return GEMM_BOUND_PER_SQRT_K * math.sqrt(max(int(k), 1))
