"""Outputs of a benchmark run: terminal table, results.csv / .json / .md, and PNG plots (GFLOP/s
per shape per algorithm, kernel-size crossover, roofline-style achieved vs peak)."""

from __future__ import annotations

import csv
import json
import os

from .._conv_algorithms import PASSES, selection_table
from .measure import Row

CSV_FIELDS = ["section", "name", "dims", "pass_", "algo", "picked", "status", "ms", "ms_min", "ms_max", "flops",
              "bytes", "gflops", "pct_peak", "gbps", "workspace_bytes", "error", "torch_ms", "scipy_ms", "numpy_ms",
              "speedup", "note"]


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table_lines(rows: list[Row]) -> list[str]:
    """A plain-text table: one line per case."""
    head = f"{'case':<22} {'dims':<26} {'pass':<11} {'algo':<16} {'ms (min-max)':>24} {'GFLOP/s':>8} {'%peak':>6} {'GB/s':>6} {'vs ref':>7}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        algo = r.algo if r.picked in ("", r.algo) else f"{r.algo}->{r.picked}"
        ms = "-" if r.ms is None else f"{r.ms:.3f} ({r.ms_min:.3f}-{r.ms_max:.3f})"
        ref = "-" if r.speedup is None else f"{r.speedup:.2f}x"
        note = r.note if r.status == "ok" else f"{r.status}: {r.note}"
        lines.append(f"{r.name:<22} {r.dims:<26} {r.pass_:<11} {algo:<16} {ms:>24} {_fmt(r.gflops, '.1f'):>8} "
                     f"{_fmt(r.pct_peak, '.1f'):>6} {_fmt(r.gbps, '.1f'):>6} {ref:>7}  {note}")
    return lines


def _flat(r: Row) -> dict:
    d = r.as_dict()
    refs = d.pop("refs")
    for k in ("torch", "scipy", "numpy"):
        d[f"{k}_ms"] = refs.get(k)
    return d


def write_csv(rows: list[Row], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in _flat(r).items() if k in CSV_FIELDS})


def write_json(rows: list[Row], meta: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": [r.as_dict() for r in rows]}, f, indent=1)


def torch_timed(rows: list[Row]) -> bool:
    """Whether any row was timed against torch (torch installed and requested)."""
    return any(r.refs.get("torch") for r in rows)


def write_md(rows: list[Row], meta: dict, path: str, plots: list[str]) -> None:
    lines = ["# fastconv benchmark", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    if torch_timed(rows):
        lines += ["", "speed-up = reference time / our time (torch; numpy for GEMM): > 1 means fastconv is faster.", ""]
    else:
        lines += ["", "torch was not timed: nothing here is compared against torch (the torch columns are empty; "
                  "speed-up is numpy's time / ours for GEMM only).", ""]
    for section in dict.fromkeys(r.section for r in rows):
        lines += [f"## {section}", "", "| case | dims | pass | algo | runs | status | ms | min-max | GFLOP/s | % peak | GB/s | "
                  "torch ms | scipy ms | numpy ms | speed-up | rel. error | note |", "|" + "---|" * 17]
        for r in (r for r in rows if r.section == section):
            lines.append(
                f"| {r.name} | {r.dims} | {r.pass_} | {r.algo} | {r.picked} | {r.status} | {_fmt(r.ms, '.3f')} | "
                + ("-" if r.ms is None else f"{r.ms_min:.3f}-{r.ms_max:.3f}")
                + f" | {_fmt(r.gflops, '.1f')} | {_fmt(r.pct_peak, '.1f')} | {_fmt(r.gbps, '.1f')} | "
                f"{_fmt(r.refs.get('torch'), '.3f')} | {_fmt(r.refs.get('scipy'), '.3f')} | {_fmt(r.refs.get('numpy'), '.3f')} | "
                f"{_fmt(r.speedup, '.2f')} | {_fmt(r.error, '.1e')} | {r.note} |")
        lines.append("")
    lines += ["## Plots", ""] + [f"![{os.path.splitext(p)[0]}]({p})" for p in plots]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ---- plots ---------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _algos(rows):
    return list(dict.fromkeys(r.algo for r in rows if r.algo != "auto")) + (["auto"] if any(r.algo == "auto" for r in rows) else [])


def plot_gflops(rows: list[Row], path: str) -> None:
    """Grouped bars: GFLOP/s per shape (groups) per algorithm (bars), one panel per pass; torch's
    GFLOP/s on the same shape is the black line across each group."""
    plt = _pyplot()
    conv = [r for r in rows if r.section == "conv" and r.status == "ok"]
    passes = list(dict.fromkeys(r.pass_ for r in conv)) or ["forward"]
    color = {a: f"C{i % 10}" for i, a in enumerate(_algos(conv))}  # the same colour in every panel
    fig, axes = plt.subplots(len(passes), 1, figsize=(11, 3.2 * len(passes)), squeeze=False)
    for ax, pass_ in zip(axes[:, 0], passes):
        sub = [r for r in conv if r.pass_ == pass_]
        shapes = list(dict.fromkeys(r.name for r in sub))
        algos = _algos(sub)
        width = 0.8 / max(len(algos), 1)
        for j, algo in enumerate(algos):
            xs, ys = [], []
            for i, s in enumerate(shapes):
                hit = [r for r in sub if r.name == s and r.algo == algo]
                if hit:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(hit[0].gflops)
            ax.bar(xs, ys, width, label=algo, color=color[algo])
        for i, s in enumerate(shapes):
            hit = [r for r in sub if r.name == s and r.refs.get("torch")]
            if hit:
                ax.hlines(hit[0].flops / hit[0].refs["torch"] / 1e6, i - 0.45, i + 0.45, colors="k",
                          label="torch" if i == 0 else None)
        ax.set_xticks(range(len(shapes)), shapes, rotation=20, fontsize=8)
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"{pass_}: achieved GFLOP/s per shape" + (" (black line: torch)" if torch_timed(sub) else " (torch not timed)"))
        ax.legend(fontsize=7, ncol=6)
        if not sub:
            ax.text(0.5, 0.5, "no timed convolution rows", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(rows: list[Row], section: str, xlabel: str, key, path: str, title: str = "") -> None:
    """Time vs the swept parameter, one line per algorithm (torch dashed), one panel per pass;
    `title` (e.g. suite.sweep_title) says which problem was swept."""
    plt = _pyplot()
    sub = [r for r in rows if r.section == section and r.status == "ok"]
    passes = list(dict.fromkeys(r.pass_ for r in sub)) or ["forward"]
    color = {a: f"C{i % 10}" for i, a in enumerate(_algos(sub))}
    fig, axes = plt.subplots(1, len(passes), figsize=(4.5 * len(passes), 3.6), squeeze=False)
    for ax, pass_ in zip(axes[0], passes):
        pr = [r for r in sub if r.pass_ == pass_]
        for algo in _algos(pr):
            pts = sorted((key(r), r.ms) for r in pr if r.algo == algo)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=algo, color=color[algo])
        torch_pts = sorted({(key(r), r.refs["torch"]) for r in pr if r.refs.get("torch")})
        if torch_pts:
            ax.plot([p[0] for p in torch_pts], [p[1] for p in torch_pts], "k--", label="torch")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms (median)")
        ax.set_title(pass_)
        ax.legend(fontsize=7)
        if not pr:
            ax.text(0.5, 0.5, "no sweep rows", ha="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title + ("" if torch_timed(sub) else " (torch not timed)"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roofline(rows: list[Row], peak: float, bandwidth: float, path: str) -> None:
    """Achieved GFLOP/s against arithmetic intensity (FLOPs / minimum bytes moved), under the
    measured FMA peak and the measured copy bandwidth. Colour is the algorithm, marker shape the
    pass: two short legends beside the axes instead of one entry per (algorithm, pass)."""
    import numpy as np
    from matplotlib.lines import Line2D

    plt = _pyplot()
    pts = [r for r in rows if r.status == "ok" and r.gflops and r.bytes and r.section in ("conv", "gemm")]
    fig, ax = plt.subplots(figsize=(9.5, 5))
    ai = np.logspace(-1, 4, 200)
    roof = ""
    if peak and bandwidth:
        ax.plot(ai, np.minimum(peak, bandwidth * ai), "k-", lw=1)
        roof = f"roof (line): {peak:.0f} GFLOP/s FMA loop, {bandwidth:.0f} GB/s numpy copy, measured in this run"
    markers = {"forward": "o", "input": "s", "weight": "^"}
    color = {a: f"C{i % 10}" for i, a in enumerate(_algos(pts))}
    for algo in _algos(pts):
        sub = [r for r in pts if r.algo == algo]
        for pass_, m in markers.items():
            ps = [r for r in sub if r.pass_ == pass_]
            if ps:
                ax.scatter([r.flops / r.bytes for r in ps], [r.gflops for r in ps], marker=m, s=22, color=color[algo])
        ax.scatter([], [], marker="o", s=22, color=color[algo], label=algo)  # one legend entry per algorithm
    tp = list({(r.name, r.pass_): r for r in pts if r.refs.get("torch")}.values())
    if tp:
        ax.scatter([r.flops / r.bytes for r in tp], [r.flops / r.refs["torch"] / 1e6 for r in tp], marker="x",
                   c="k", label="torch")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte of input + weight + output)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("achieved GFLOP/s vs arithmetic intensity" + ("" if tp else " (torch not timed)")
                 + (f"\n{roof}" if roof else ""), fontsize=9)
    algo_legend = ax.legend(title="algorithm", fontsize=7, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.add_artist(algo_legend)
    passes = [p for p in markers if any(r.pass_ == p for r in pts)]
    ax.legend([Line2D([], [], ls="", marker=markers[p], color="gray") for p in passes], passes, title="pass",
              fontsize=7, title_fontsize=8, loc="lower left", bbox_to_anchor=(1.01, 0))
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the legends sit outside the axes
    plt.close(fig)


def rules_lines(shapes, device: str = "cpu") -> list[str]:
    """The selection rules as a markdown table: for each benchmark shape (``suite.Shape``), the
    kernel ``algo="auto"`` runs for each pass on ``device`` with autotuning off (before the
    dead-tap crop, which only applies to taps that read padding alone)."""
    rows = selection_table(((s.name, s.params()) for s in shapes), device)
    lines = [f"| shape | problem | {' | '.join(PASSES)} |", "|" + "---|" * (2 + len(PASSES))]
    lines += [f"| {r['name']} | {r['dims']} | {' | '.join(r[p] for p in PASSES)} |" for r in rows]
    return lines
