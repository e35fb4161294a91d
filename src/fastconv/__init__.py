"""fastconv: readable, fast convolution, pooling and GEMM kernels for NCHW float32 arrays.

CPU kernels are C++ (OpenMP, AVX2/FMA chosen at run time); the CUDA backend is used when a GPU
is present. See README.md for the tour and benchmarks/results/ for measurements.
"""

from __future__ import annotations

from . import _core, cuda, grad
from .autotune import autotune_cache, clear_autotune, get_autotune, load_autotune, save_autotune, set_autotune
from .conv import conv2d, conv_algorithms
from .conv1d import conv1d
from .conv_transpose import conv_transpose2d
from . import filters
from .gemm import gemm
from ._validation import DimensionError
from .kmax import kmax_pool
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d

from . import nn, optim, data, models  # noqa: E402  (the Python layer; needs the kernels above)
from .autograd import Tensor, tensor, no_grad, is_grad_enabled, cat  # noqa: E402
from .nn.init import manual_seed  # noqa: E402
from .serialization import save, load  # noqa: E402
from .training import evaluate, fit  # noqa: E402

from .runtime import __version__, get_num_threads, get_workspace_limit, info, set_num_threads, \
    set_workspace_limit  # noqa: E402
from .runtime import tune_malloc as _tune_malloc  # noqa: E402

_malloc_tuned = _tune_malloc()


__all__ = [
    "DimensionError",
    "conv2d",
    "conv_algorithms",
    "set_autotune",
    "get_autotune",
    "autotune_cache",
    "clear_autotune",
    "save_autotune",
    "load_autotune",
    "grad",
    "gemm",
    "conv1d",
    "conv_transpose2d",
    "filters",
    "kmax_pool",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "cuda",
    "get_num_threads",
    "set_num_threads",
    "get_workspace_limit",
    "set_workspace_limit",
    "info",
    "__version__",
    "Tensor",
    "tensor",
    "no_grad",
    "is_grad_enabled",
    "cat",
    "manual_seed",
    "save",
    "load",
    "nn",
    "optim",
    "data",
    "models",
    "fit",
    "evaluate",
]
