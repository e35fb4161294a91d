"""Every script in examples/ runs with its small-size flag, so the examples never rot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastconv

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg")
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--small", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"{name} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_edge_detection(tmp_path):
    out = run_example("edge_detection.py", "--out", str(tmp_path), cwd=tmp_path)
    assert "filter 4: fires on" in out and "softmax" in out
    if has_matplotlib():
        assert (tmp_path / "edges.png").stat().st_size > 5000
        assert (tmp_path / "classic_edges.png").stat().st_size > 5000


def test_learn_edge_kernel(tmp_path):
    out = run_example("learn_edge_kernel.py", cwd=tmp_path)
    line = next(line for line in out.splitlines() if line.startswith("max |learned - true|"))
    assert float(line.split("=")[1]) < 1e-2  # the bar: [1, -1] recovered to within 1e-2


def test_fft_blur(tmp_path):
    if not {"fft", "direct"} <= set(fastconv.conv_algorithms((1, 1, 112, 112), (1, 1, 15, 15))):
        pytest.skip("needs both the fft and the direct conv2d algorithms")
    out = run_example("fft_blur.py", "--out", str(tmp_path), cwd=tmp_path)
    assert "max relative difference fft vs direct" in out
    if has_matplotlib():
        assert (tmp_path / "fft_blur.png").stat().st_size > 5000


def test_diffusion(tmp_path):
    out = run_example("diffusion.py", "--out", str(tmp_path), cwd=tmp_path)
    totals = {line.split("total intensity")[1].split(",")[0].strip() for line in out.splitlines() if "total intensity" in line}
    assert len(totals) == 1  # conserved to the printed precision
    if has_matplotlib():
        assert (tmp_path / "diffusion.png").stat().st_size > 5000
