"""Build-level facts: the package imports without a GPU, reports itself, and controls threads."""

import subprocess
import sys

import numpy as np
import pytest

import fastconv


def test_info_fields():
    info = fastconv.info()
    for key in ("version", "compiler", "openmp", "num_threads", "cpu_path", "cuda_compiled", "cuda_devices"):
        assert key in info
    assert info["cpu_path"] in ("avx2", "portable")
    assert info["version"] == fastconv.__version__


def test_threads_round_trip(threads):
    fastconv.set_num_threads(1)
    assert fastconv.get_num_threads() == 1
    fastconv.set_num_threads(2)
    assert fastconv.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -3])
def test_threads_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="n"):
        fastconv.set_num_threads(bad)


def test_threads_rejects_non_int():
    with pytest.raises(TypeError, match="n"):
        fastconv.set_num_threads(1.5)


def test_workspace_limit(threads):
    saved = fastconv.get_workspace_limit()
    try:
        fastconv.set_workspace_limit(8 << 20)
        assert fastconv.get_workspace_limit() == 8 << 20
        with pytest.raises(ValueError, match="nbytes"):
            fastconv.set_workspace_limit(1000)
    finally:
        fastconv.set_workspace_limit(saved)


def test_cuda_absent_is_clean():
    if fastconv.cuda.is_available():
        pytest.skip("a GPU is present")
    assert fastconv.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="no CUDA device"):
        fastconv.cuda.get_device_name(0)


def test_cli_info_runs():
    out = subprocess.run([sys.executable, "-m", "fastconv", "info"], capture_output=True, text=True, check=True)
    assert "cpu_path" in out.stdout


def test_portable_path_can_be_forced():
    """FASTCONV_CPU=portable selects the non-AVX2 kernels (how the fallback is tested on AVX2 machines)."""
    code = "import fastconv; print(fastconv.info()['cpu_path'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "FASTCONV_CPU": "portable"})
    assert out.stdout.strip() == "portable"


@pytest.mark.cuda
def test_cuda_saxpy_on_device():
    x = np.arange(1000, dtype=np.float32)
    y = np.ones(1000, dtype=np.float32)
    fastconv.cuda._cuda.saxpy(2.0, x, y)
    np.testing.assert_array_equal(y, 2 * np.arange(1000, dtype=np.float32) + 1)


@pytest.mark.parametrize("env,policy,spin", [
    ({}, "default", 300_000),
    ({"OMP_WAIT_POLICY": "passive"}, "passive", 0),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "active", 30_000_000_000),
    ({"GOMP_SPINCOUNT": "10M"}, "default", 10_000_000),
    ({"OMP_WAIT_POLICY": "passive", "GOMP_SPINCOUNT": "2500"}, "passive", 2500),
    ({"GOMP_SPINCOUNT": "infinite"}, "default", float("inf")),
    ({"GOMP_SPINCOUNT": "lots"}, "default", 300_000),  # libgomp ignores a malformed count
])
def test_openmp_wait_policy_reads_the_environment_as_libgomp(env, policy, spin):
    from fastconv.runtime import openmp_wait_policy

    got = openmp_wait_policy(env)
    assert (got["policy"], got["spin_count"]) == (policy, spin)
    assert got["OMP_WAIT_POLICY"] == env.get("OMP_WAIT_POLICY")


def test_info_reports_the_wait_policy_the_process_started_with():
    code = "import fastconv; w = fastconv.info()['openmp_wait']; print(w['policy'], w['spin_count'])"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "passive"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["passive", "0"]
