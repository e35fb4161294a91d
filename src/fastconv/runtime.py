"""Process-wide settings and facts of the compiled kernels: OpenMP threads, the scratch-memory limit,
the malloc setting chosen at import, and info() (version, compiler, CPU path, CUDA devices, which
op runs on which device).

Kept apart from the package root so that the CLI and the benchmarks can read them without
importing `fastconv` itself (no module below the root does)."""

from __future__ import annotations

import os
import platform

from . import _core, cuda
from ._dispatch import op_devices
from ._validation import require_int

__version__ = _core.build_info()["version"]


def tune_malloc() -> bool:
    """Keep freed buffers up to 32 MiB in the heap (glibc; the process keeps up to 64 MiB of free
    heap instead of returning it). This is the state glibc's own dynamic rule reaches once a 32 MiB
    buffer has been freed; fixing it from the start stops every training step from page-faulting
    its activations in again (LeNet-5 at batch 256 on 2 threads: 12.9 -> 9.6 ms per step, 1,593 -> 1
    page faults; benchmarks/results/2026-11-26_epyc2c_malloc.md). FASTCONV_MALLOC_TUNING=0 leaves malloc as it was."""
    if os.environ.get("FASTCONV_MALLOC_TUNING", "1") == "0":
        return False
    return _core.tune_malloc(32 << 20, 64 << 20)


def get_num_threads() -> int:
    """Number of OpenMP threads every CPU kernel uses."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads every CPU kernel uses (n >= 1). Applies process-wide."""
    _core.set_num_threads(require_int(n, "n", minimum=1))


def get_workspace_limit() -> int:
    """Most scratch bytes one kernel call may use (im2col chunks the batch to stay under it)."""
    return _core.get_workspace_limit()


def set_workspace_limit(nbytes: int) -> None:
    """Set the scratch-memory limit per call in bytes (at least 1 MiB; default 256 MiB)."""
    _core.set_workspace_limit(require_int(nbytes, "nbytes", minimum=1 << 20))


def info() -> dict:
    """Build and run-time facts: version, compiler, threads, CPU path, CUDA build and devices, and
    ``ops``: each declared op (``_dispatch.OPS``) with the devices that run all its passes."""
    build = _core.build_info()
    devices = [cuda.get_device_name(i) for i in range(cuda.device_count())]
    return {
        "version": build["version"],
        "compiler": build["compiler"],
        "openmp": build["openmp"],
        "num_threads": get_num_threads(),
        "cpu_path": build["cpu_path"],
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "cuda_compiled": cuda.is_compiled(),
        "cuda_devices": devices,
        "ops": op_devices(),
    }


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


__all__ = ["__version__", "tune_malloc", "get_num_threads", "set_num_threads", "get_workspace_limit",
           "set_workspace_limit", "info", "cpu_model"]
