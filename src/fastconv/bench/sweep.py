"""What the sweep scripts of benchmarks/ share: the machine's tag in result file names, where a
report goes and how it is written, timing a set of algorithms against auto's pick, and writing a
sweep's markdown table under a header."""

from __future__ import annotations

import datetime
import os
import platform
import re
import timeit

from ..runtime import __version__, cpu_model, info


def machine_tag() -> str:
    """A short name for this machine in result file names, e.g. "epyc2c" (CPU family, logical CPUs)."""
    m = re.search(r"(EPYC|Xeon|Ryzen|Core|Apple M\d)", cpu_model())
    return (m.group(1).lower().replace(" ", "") if m else platform.machine()) + f"{os.cpu_count()}c"


def results_path(slug: str, results_dir: str, out: str = "") -> str:
    """`out` when given, else <results_dir>/<date>_<machine>_<slug>.md."""
    return out or os.path.join(results_dir, f"{datetime.date.today():%Y-%m-%d}_{machine_tag()}_{slug}.md")


def save_text(path: str, text: str, append: bool = False) -> None:
    """Write (or append) a report to `path`, creating its folder, and say where."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a" if append else "w") as f:
        f.write(text)
    print(f"wrote {path}")


def time_against_auto(calls: dict, pick: str, number: int, digits: int = 2) -> tuple[str, float, dict]:
    """Time each algorithm's call (best of 5 repeats of `number` calls, after a warm-up call) and
    compare with `pick`, auto's choice. Returns the table cells "ms | ms | ... | fastest | pick |
    pick / fastest |", that ratio, and the ms per call of each algorithm."""
    ms = {}
    for algo, call in calls.items():
        call()
        ms[algo] = min(timeit.repeat(call, number=number, repeat=5)) / number * 1e3
    fastest = min(ms, key=ms.get)
    ratio = ms[pick] / ms[fastest]
    return " | ".join(f"{v:.{digits}f}" for v in ms.values()) + f" | {fastest} | {pick} | {ratio:.2f} |", ratio, ms


def write_sweep(slug: str, title: str, notes: list[str], table: list[str], out: str = "", results_dir: str = "") -> str:
    """Write a sweep's markdown table to `out` or <results_dir>/<date>_<machine>_<slug>.md, under a
    header with the date, `notes` (one bullet each) and this build; returns the path."""
    today = datetime.date.today()
    facts = info()
    lines = [f"# {title} ({today})", "", *(f"- {note}" for note in notes),
             f"- fastconv {__version__}, {facts['cpu_model']}, path {facts['cpu_path']}", "", *table, ""]
    path = results_path(slug, results_dir, out)
    save_text(path, "\n".join(lines))
    return path
