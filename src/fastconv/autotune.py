"""Measured algorithm selection for ``algo="auto"`` (like ``torch.backends.cudnn.benchmark``).

With autotuning on, the first ``auto`` call for a given problem (input and weight shapes, stride,
padding, dilation, groups, pass, device, thread count) runs every valid algorithm once as a
warm-up, then times them in interleaved rounds (A, B, C, A, B, C, ...) and keeps the one with the
best time: 2 rounds, and up to 5 while the tuning has taken under half a second (on a shared
machine a single timing picks a loser too often; the minimum of a few is robust to interruptions,
and the time cap bounds the first call of a large problem). The winner is cached in-process; ``save_autotune``/``load_autotune`` carry the cache across processes as JSON.
With autotuning off, ``auto`` uses the rule in ``fastconv.conv.select_algorithm``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Callable

from . import _core

_MIN_ROUNDS, _MAX_ROUNDS, _ROUNDS_BUDGET_S = 2, 5, 0.5
_FORMAT = "fastconv-autotune-1"

_lock = threading.Lock()
_enabled = False
_cache: dict[str, str] = {}


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


def save_autotune(path) -> None:
    """Write the cache to ``path`` as JSON (keys are readable problem descriptions)."""
    data = {"format": _FORMAT, "entries": autotune_cache()}
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)


def load_autotune(path) -> None:
    """Merge the winners saved by ``save_autotune`` into the cache. Raises ValueError naming the
    file when it is not such a file or names an unknown algorithm (the cache is then unchanged)."""
    from .conv import ALGORITHMS

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


def problem_key(params, pass_: str, device: str = "cpu") -> str:
    """The cache key of one pass of a problem (a ``_core.Conv2dParams``) at the current thread count."""
    p = params
    return (
        f"{pass_} x=({p.N}, {p.C}, {p.H}, {p.W}) w=({p.K}, {p.C // p.groups}, {p.R}, {p.S}) "
        f"stride=({p.stride_h}, {p.stride_w}) padding=({p.pad_h}, {p.pad_w}) dilation=({p.dil_h}, {p.dil_w}) "
        f"groups={p.groups} device={device} threads={_core.get_num_threads()}"
    )


def choose(params, pass_: str, candidates: list[str], run: Callable[[str], None]) -> str:
    """The cached winner for this problem, or race ``candidates`` (``run(name)`` computes the pass
    with that algorithm) and cache the fastest."""
    key = problem_key(params, pass_)
    with _lock:
        cached = _cache.get(key)
    if cached in candidates:
        return cached
    if len(candidates) == 1:
        winner = candidates[0]
    else:
        for name in candidates:
            run(name)
        best = {name: float("inf") for name in candidates}
        begin = time.perf_counter()
        rounds = 0
        while rounds < _MIN_ROUNDS or (rounds < _MAX_ROUNDS and time.perf_counter() - begin < _ROUNDS_BUDGET_S):
            rounds += 1
            for name in candidates:
                start = time.perf_counter()
                run(name)
                best[name] = min(best[name], time.perf_counter() - start)
        winner = min(candidates, key=best.__getitem__)
    with _lock:
        _cache[key] = winner
    return winner
