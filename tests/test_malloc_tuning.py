"""fastconv fixes glibc's malloc thresholds on import, so the few-MiB activations a training step
allocates and frees are reused from the heap instead of being mapped and page-faulted in again on
every step (which doubled LeNet's step time). Linux/glibc only; FASTCONV_MALLOC_TUNING=0 opts out."""

import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="mallopt thresholds are glibc's")

STEPS = """
import resource, sys, numpy as np, fastconv
from fastconv.nn import functional as F
fastconv.set_num_threads(1)
net = fastconv.models.LeNet5("modern")
opt = fastconv.optim.SGD(net.parameters(), 0.01)
rng = np.random.default_rng(0)
x, y = rng.standard_normal((128, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 128)
def step():
    loss = F.cross_entropy(net(fastconv.Tensor(x)), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(fastconv._malloc_tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _faults_per_step(**env):
    out = subprocess.run([sys.executable, "-c", STEPS], env=dict(os.environ, **env), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    tuned, faults = out.stdout.split()
    return tuned == "True", float(faults)


@glibc
def test_training_steps_reuse_heap_memory():
    tuned, faults = _faults_per_step()
    assert tuned
    # A LeNet step at batch 128 frees and reallocates ~9 MiB of activations: 2,000+ page faults
    # when they are mapped afresh (the opt-out run below), a handful when the heap keeps them.
    assert faults < 100, faults


@glibc
@pytest.mark.skipif(any(k.startswith("MALLOC_") or k.startswith("GLIBC_TUNABLES") for k in os.environ),
                    reason="malloc tuned from the environment")
def test_opt_out_leaves_malloc_alone():
    tuned, faults = _faults_per_step(FASTCONV_MALLOC_TUNING="0")
    assert not tuned
    assert faults > 500, faults  # the behaviour the tuning exists to avoid is real on this libc
