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

__version__ = _core.build_info()["version"]


def _tune_malloc() -> bool:
    """Keep freed buffers up to 32 MiB in the heap (glibc; the process keeps up to 64 MiB of free
    heap instead of returning it). This is the state glibc's own dynamic rule reaches once a 32 MiB
    buffer has been freed; fixing it from the start stops every training step from page-faulting
    its activations in again (LeNet-5 at batch 256 on 2 threads: 12.9 -> 9.6 ms per step, 1,593 -> 1
    page faults; benchmarks/results/2026-11-26_epyc2c_malloc.md). FASTCONV_MALLOC_TUNING=0 leaves malloc as it was."""
    import os

    if os.environ.get("FASTCONV_MALLOC_TUNING", "1") == "0":
        return False
    return _core.tune_malloc(32 << 20, 64 << 20)


_malloc_tuned = _tune_malloc()


def get_num_threads() -> int:
    """Number of OpenMP threads every CPU kernel uses."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads every CPU kernel uses (n >= 1). Applies process-wide."""
    from ._validation import require_int

    _core.set_num_threads(require_int(n, "n", minimum=1))


def get_workspace_limit() -> int:
    """Most scratch bytes one kernel call may use (im2col chunks the batch to stay under it)."""
    return _core.get_workspace_limit()


def set_workspace_limit(nbytes: int) -> None:
    """Set the scratch-memory limit per call in bytes (at least 1 MiB; default 256 MiB)."""
    from ._validation import require_int

    _core.set_workspace_limit(require_int(nbytes, "nbytes", minimum=1 << 20))


def info() -> dict:
    """Build and run-time facts: version, compiler, threads, CPU path, CUDA build and devices."""
    import platform

    build = _core.build_info()
    devices = [cuda.get_device_name(i) for i in range(cuda.device_count())]
    return {
        "version": build["version"],
        "compiler": build["compiler"],
        "openmp": build["openmp"],
        "num_threads": get_num_threads(),
        "cpu_path": build["cpu_path"],
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "cuda_compiled": cuda.is_compiled(),
        "cuda_devices": devices,
    }


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
]
