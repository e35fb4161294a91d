import os
import re

import numpy as np
import pytest
from hypothesis import settings

# CI and the README's test command run a fixed set of hypothesis examples (derandomize), so a run is
# reproducible; HYPOTHESIS_PROFILE=explore draws new random examples on each run, for hunting bugs.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

import fastconv


def pytest_collection_modifyitems(config, items):
    if fastconv.cuda.is_available():
        return
    reason = "no CUDA device: " + ("module built but no GPU/driver" if fastconv.cuda.is_compiled() else "built without CUDA")
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        # The marker itself, not item.keywords: keywords also hold directory and file names
        # (a checkout in a folder named "cuda" would skip every test).
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


# How to get each optional test dependency, appended to the reasons of the tests it skips (`-rs` in
# pyproject.toml prints them): `pytest.importorskip`'s "could not import 'torch'" or a skipif's "needs torch".
_CPU_TORCH = "--extra-index-url https://download.pytorch.org/whl/cpu"
INSTALL_HINTS = {
    "torch": f"pip install '.[compare]' {_CPU_TORCH}",
    "scipy": f"pip install '.[compare]' {_CPU_TORCH}",
    "expecttest": f"pip install '.[compare]' {_CPU_TORCH}",
    "matplotlib": "pip install '.[plot]'",
    "PIL": "pip install '.[plot]' (Pillow comes with matplotlib)",
}
_MISSING = re.compile(r"could not import '(\w+)|\bneeds (\w+)")


def _with_install_hint(report) -> None:
    if not (report.skipped and isinstance(report.longrepr, tuple)):
        return
    path, line, reason = report.longrepr
    m = _MISSING.search(reason)
    module = m and (m.group(1) or m.group(2))
    if module in INSTALL_HINTS and INSTALL_HINTS[module] not in reason:
        report.longrepr = (path, line, f"{reason} -- {INSTALL_HINTS[module]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _with_install_hint(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _with_install_hint(outcome.get_result())


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """Every backend in turn: "cpu", then "cuda". The "cuda" run carries the `cuda` marker, so it is
    skipped without a GPU (above) and selected by `-m cuda` (CI's run on the CPU stand-in of the CUDA
    runtime). Tests move operands with toolkit.on_device / tensor and read results back with
    toolkit.to_numpy; the float64 oracle (reference.py) always runs on the host. Where a test needs
    smaller cases on the device, it parametrizes "device" itself with toolkit.per_device."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restore the thread count after a test that changes it."""
    saved = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(saved)
