import os

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


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restore the thread count after a test that changes it."""
    saved = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(saved)
