"""Process-wide settings and facts of the compiled kernels: OpenMP threads, the scratch-memory limit,
the malloc setting chosen at import, and info() (version, compiler, CPU path, CUDA devices, which
op runs on which device).

Kept apart from the package root so that the CLI and the benchmarks can read them without
importing `fastconv` itself (no module below the root does)."""

from __future__ import annotations

import math
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


# libgomp's spin counts without GOMP_SPINCOUNT (its env.c, which estimates ~100,000 spins per ms:
# ~3 ms by default, ~5 minutes with OMP_WAIT_POLICY=active, none with passive).
_GOMP_DEFAULT_SPIN, _GOMP_ACTIVE_SPIN = 300_000, 30_000_000_000
_SPIN_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def _parse_spincount(text: str) -> float | None:
    """GOMP_SPINCOUNT as libgomp reads it (a count with an optional k/M/G/T suffix, or "infinite" /
    "infinity"); None when it would ignore the value."""
    text = text.strip().lower()
    if text in ("infinite", "infinity"):
        return math.inf
    scale = _SPIN_SUFFIXES.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    return int(digits) * scale if digits.isdigit() else None


def openmp_wait_policy(environ=None) -> dict:
    """How the OpenMP worker threads wait between parallel regions in this process: the
    ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` environment settings and ``spin_count``, the spins a
    worker makes (GCC's libgomp, which fastconv and torch's wheels use) before it sleeps (``math.inf``:
    never; libgomp's own rule of thumb is ~100,000 spins per millisecond). The runtime reads both variables once, when it loads (the first import of
    fastconv or torch), so set them before that, in the shell or at the very top of the program.

    Measured on the 2-core VM (benchmarks/results/2026-12-04_epyc2c_real_models.md): after each call
    the default spins ~5 ms, so a model's layers keep the threads awake, but a lone batch-1 call after
    a longer idle pays the threads' wake-up; ``OMP_WAIT_POLICY=active`` removes that at the price of
    every worker burning its core at 100% while the program idles; see README "Batch-1 latency".
    ``environ`` (default: ``os.environ``) is for tests."""
    env = os.environ if environ is None else environ
    policy = env.get("OMP_WAIT_POLICY", "").strip().lower()
    policy = policy if policy in ("active", "passive") else "default"
    spin = _parse_spincount(env["GOMP_SPINCOUNT"]) if "GOMP_SPINCOUNT" in env else None
    if spin is None:
        spin = {"active": _GOMP_ACTIVE_SPIN, "passive": 0}.get(policy, _GOMP_DEFAULT_SPIN)
    return {"OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY"), "GOMP_SPINCOUNT": env.get("GOMP_SPINCOUNT"),
            "policy": policy, "spin_count": spin}


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
        "openmp_wait": _WAIT_AT_IMPORT,
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


_WAIT_AT_IMPORT = openmp_wait_policy()  # what the runtime read when it loaded, just before this import

__all__ = ["__version__", "tune_malloc", "openmp_wait_policy", "get_num_threads", "set_num_threads", "get_workspace_limit",
           "set_workspace_limit", "info", "cpu_model"]
