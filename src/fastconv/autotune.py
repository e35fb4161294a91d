"""Measured algorithm selection for ``algo="auto"`` (like ``torch.backends.cudnn.benchmark``).

With autotuning on, the first ``auto`` call for a given problem (input and weight shapes, stride,
padding, dilation, groups, pass, device, thread count) runs every valid algorithm once as a
warm-up, then times them in rounds and keeps the one with the best time: 3 rounds, and up to 25
while the rounds have taken under a quarter second (on a shared machine a single timing picks a
loser too often, and sub-millisecond passes need many samples: with 9, lenet_c2's forward once went
to the FFT, 14% slower; the minimum of many is robust to interruptions, and the time cap bounds
the first call of a large problem). In each round a candidate runs once untimed, then once timed: the first call
after another algorithm pays for refilling the caches that algorithm evicted (measured: +24-29%
on lenet_c1's 0.56 ms weight gradient after the FFT, benchmarks/results/2026-11-26_epyc2c_measurements.md), which would favour whichever candidate
follows the cheapest one rather than the fastest. The winner is cached in-process;
``save_autotune``/``load_autotune`` carry the cache across processes as JSON.
With autotuning off, ``auto`` uses the rule in ``fastconv.conv.select_algorithm`` (the registry's).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Callable

from . import _core
from ._conv_algorithms import ALGORITHMS

_MIN_ROUNDS, _MAX_ROUNDS, _ROUNDS_BUDGET_S = 3, 25, 0.25
_FORMAT = "fastconv-autotune-1"

_lock = threading.Lock()
_enabled = False
_cache: dict[str, str] = {}
_checked: set[str] = set()  # keys whose winner is known valid for its problem (raced, or checked once)


def set_autotune(enabled: bool) -> None:
    """Turn measured selection for ``algo="auto"`` on or off (off by default)."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected a bool, got {type(enabled).__name__}")
    _enabled = enabled


def get_autotune() -> bool:
    """Whether ``algo="auto"`` times the algorithms (True) or uses the heuristic (False)."""
    return _enabled


def autotune_cache() -> dict[str, str]:
    """A copy of the cache: problem key -> the algorithm that won it."""
    with _lock:
        return dict(_cache)


def clear_autotune() -> None:
    """Forget every cached winner."""
    with _lock:
        _cache.clear()
        _checked.clear()


def save_autotune(path) -> None:
    """Write the cache to ``path`` as JSON (keys are readable problem descriptions)."""
    data = {"format": _FORMAT, "entries": autotune_cache()}
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)


def load_autotune(path) -> None:
    """Merge the winners saved by ``save_autotune`` into the cache. Raises ValueError naming the
    file when it is not such a file or names an unknown algorithm (the cache is then unchanged)."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"path: {path!r} is not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("entries"), dict):
        raise ValueError(f"path: {path!r} is not a fastconv autotune file (expected format {_FORMAT!r})")
    entries = data["entries"]
    for key, name in entries.items():
        if not isinstance(name, str) or name not in ALGORITHMS or ALGORITHMS[name].pick:
            raise ValueError(f"path: {path!r} names an unknown algorithm {name!r} for {key!r}")
    with _lock:
        _cache.update(entries)
        _checked.difference_update(entries)


def problem_key(params, pass_: str, device: str = "cpu") -> str:
    """The cache key of one pass of a problem (a ``_core.Conv2dParams``) at the current thread count."""
    p = params
    return (
        f"{pass_} x=({p.N}, {p.C}, {p.H}, {p.W}) w=({p.K}, {p.C // p.groups}, {p.R}, {p.S}) "
        f"stride=({p.stride_h}, {p.stride_w}) padding=({p.pad_h}, {p.pad_w}) dilation=({p.dil_h}, {p.dil_w}) "
        f"groups={p.groups} device={device} threads={_core.get_num_threads()}"
    )


def choose(params, pass_: str, candidates: Callable[[], list[str]], run: Callable[[str], None]) -> str:
    """The cached winner for this problem, or race the algorithms ``candidates()`` lists (``run(name)``
    computes the pass with that algorithm) and cache the fastest. ``candidates`` is called only on a
    cache miss (or once for an entry loaded from a file): a hit costs one key lookup (~3 us), not a
    validity check of every algorithm."""
    key = problem_key(params, pass_)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and key in _checked:
            return cached
    names = candidates()
    if cached in names:  # loaded from a file: valid for this problem, check once
        with _lock:
            _checked.add(key)
        return cached
    if len(names) == 1:
        winner = names[0]
    else:
        for name in names:
            run(name)
        best = {name: float("inf") for name in names}
        begin = time.perf_counter()
        rounds = 0
        while rounds < _MIN_ROUNDS or (rounds < _MAX_ROUNDS and time.perf_counter() - begin < _ROUNDS_BUDGET_S):
            rounds += 1
            for name in names:
                run(name)  # untimed: refills the caches the previous candidate evicted
                start = time.perf_counter()
                run(name)
                best[name] = min(best[name], time.perf_counter() - start)
        winner = min(names, key=best.__getitem__)
    with _lock:
        _cache[key] = winner
        _checked.add(key)
    return winner
