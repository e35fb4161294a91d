"""python -m fastconv bench: a one-shape --quick run writes every output; argument errors are one
line and exit code 2; FLOP counts match hand-computed values; a wrong algorithm fails the run."""

import argparse
import csv
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from fastconv.__main__ import main
from fastconv.bench import measure, suite
from fastconv.bench.cli import register

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_one_shape_writes_every_file(tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "fastconv", "bench", "--quick", "--shape", "2,3,12,12,4,3,3,1,1",
           "--passes", "forward,weight", "--threads", "1", "--no-progress", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    pictures = ("gflops_by_shape.png", "kernel_crossover.png", "roofline.png")
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    for name in ("results.csv", "results.json", "results.md") + (pictures if has_matplotlib else ()):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    for key in ("date", "machine", "cpu_model", "threads", "versions", "command", "peak_gflops"):
        assert key in data["meta"], key
    assert data["meta"]["threads"] == 1
    rows = list(csv.DictReader((out / "results.csv").open()))
    timed = [r for r in rows if r["section"] == "conv" and r["status"] == "ok"]
    assert {r["pass_"] for r in timed} == {"forward", "weight"}
    assert all(float(r["ms"]) > 0 and float(r["gflops"]) > 0 for r in timed)
    assert any(r["section"] == "sweep-kernel" for r in rows)
    assert "shape_2x3x12x12x4x3x3x1x1" in res.stdout  # the terminal table


@pytest.mark.parametrize(
    "args, message",
    [
        (["--algos", "direct,magic"], "unknown 'magic'"),
        (["--shape", "1,2,3"], "expected 9 comma-separated integers"),
        (["--shape", "1,1,4,4,1,x,3,1,0"], "expected 9 comma-separated integers"),
        (["--shape", "1,1,4,4,1,7,7,1,0"], "does not fit"),  # empty output
        (["--shape", "1,1,4,4,1,3,3,0,0"], "stride must be >= 1"),
        (["--shapes", "lenet_c1", "no_such_shape"], "unknown no_such_shape"),
        (["--passes", "forward,sideways"], "unknown 'sideways'"),
        (["--compare", "matlab"], "unknown 'matlab'"),
        (["--repeat", "0"], "--repeat: must be >= 1"),
        (["--shapes", "/nonexistent/shapes.csv"], "--shapes:"),
    ],
)
def test_argument_errors_are_one_line_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and message in err, err


def test_cuda_without_a_device_is_an_argument_error(capsys):
    import fastconv

    if fastconv.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit) as e:
        main(["bench", "--device", "cuda"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda: no CUDA device" in err


def test_flop_counts_by_hand():
    lenet = {s.name: s for s in suite.load_shapes()}["lenet_c1"]
    # 2 * N * K * C * R * S * P * Q with P = Q = 28 (5x5, padding 2)
    assert lenet.flops == 2 * 256 * 6 * 1 * 5 * 5 * 28 * 28 == 60_211_200
    s = suite.parse_shape("2,4,9,9,6,3,3,2,1")  # P = Q = (9 + 2 - 3) // 2 + 1 = 5
    assert s.flops == 2 * 2 * 6 * 4 * 3 * 3 * 5 * 5
    assert s.min_bytes == 4 * (2 * 4 * 9 * 9 + 6 * 4 * 3 * 3 + 2 * 6 * 5 * 5)


def test_packaged_suite_matches_benchmarks_csv():
    src = os.path.join(ROOT, "benchmarks", "shapes.csv")
    if not os.path.exists(src):
        pytest.skip("not a source checkout")
    with open(src) as a, open(suite.SHAPES_CSV) as b:
        assert a.read() == b.read(), "src/fastconv/bench/shapes.csv must stay a copy of benchmarks/shapes.csv"


def test_sweeps_fix_everything_but_one_parameter():
    ks = suite.sweep_shapes("kernel", quick=False)
    assert [s.R for s in ks] == [1, 3, 5, 7, 9, 11, 13, 15]
    assert len({(s.N, s.C, s.H, s.W, s.K) for s in ks}) == 1
    assert all(s.pad == s.R // 2 for s in ks)
    assert [s.C for s in suite.sweep_shapes("channels", quick=True)] == [4, 16, 32]


def test_wrong_algorithm_is_not_timed_and_fails_the_run(tmp_path, monkeypatch, capsys):
    real = measure.run_conv

    def broken(pass_, algo, shape, *arrays):
        y = real(pass_, algo, shape, *arrays)
        return y + 1.0 if algo == "direct" else y

    monkeypatch.setattr(measure, "run_conv", broken)
    code = main(["bench", "--quick", "--shape", "1,2,8,8,2,3,3,1,1", "--passes", "forward", "--algos", "direct,im2col",
                 "--compare", "torch", "--no-progress", "--out", str(tmp_path)])
    assert code == 1
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    direct = [r for r in rows if r["algo"] == "direct" and r["section"] == "conv"]
    assert direct[0]["status"] == "WRONG" and direct[0]["ms"] is None
    assert [r["status"] for r in rows if r["algo"] == "im2col" and r["section"] == "conv"] == ["ok"]
    assert "FAILED the correctness check" in capsys.readouterr().out


def test_missing_reference_is_skipped_not_failed(monkeypatch):
    real = measure.optional_module
    monkeypatch.setattr(measure, "optional_module", lambda name: None if name == "torch" else real(name))
    shape = suite.parse_shape("1,2,8,8,2,3,3,1,1")
    rows = measure.bench_conv_shape(shape, ["im2col"], ["forward"], repeat=1, warmup=0, compare=["torch"], peak=100.0)
    assert rows[0].status == "ok" and rows[0].refs == {} and rows[0].speedup is None


def test_out_must_be_new_or_empty(tmp_path, capsys):
    """Committed results are not overwritten by accident: a non-empty --out needs --force."""
    (tmp_path / "results.md").write_text("earlier results\n")
    with pytest.raises(SystemExit) as e:
        main(["bench", "--quick", "--shape", "1,2,8,8,2,3,3,1,1", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {tmp_path}: not empty" in err and "--force" in err
    assert (tmp_path / "results.md").read_text() == "earlier results\n"


def test_without_torch_nothing_claims_a_torch_comparison(tmp_path, monkeypatch, capsys):
    """No torch: the run says so, the markdown and plots draw no torch line they lack; the crossover
    plot names the swept problem; the roofline has one legend entry per algorithm, beside the axes.
    (--force into a folder holding an earlier file.)"""
    figure = pytest.importorskip("matplotlib.figure")
    real_optional = measure.optional_module
    monkeypatch.setattr(measure, "optional_module", lambda name: None if name == "torch" else real_optional(name))
    figures = {}
    real_savefig = figure.Figure.savefig
    monkeypatch.setattr(figure.Figure, "savefig",
                        lambda fig, path, **k: (figures.__setitem__(os.path.basename(path), fig), real_savefig(fig, path, **k))[1])
    (tmp_path / "old.txt").write_text("from an earlier run\n")
    code = main(["bench", "--quick", "--shape", "1,2,8,8,2,3,3,1,1", "--passes", "forward", "--algos", "direct,im2col",
                 "--compare", "torch", "--no-progress", "--force", "--out", str(tmp_path)])
    assert code == 0
    assert "nothing is compared against torch (pip install torch to add it)" in capsys.readouterr().out
    md = (tmp_path / "results.md").read_text()
    assert "torch was not timed: nothing here is compared against torch" in md and "speed-up = reference" not in md
    assert set(figures) == {"gflops_by_shape.png", "kernel_crossover.png", "roofline.png"}
    for name, fig in figures.items():
        texts = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
        texts += [t.get_text() for ax in fig.axes for legend in ax.findobj(match=lambda o: type(o).__name__ == "Legend")
                  for t in legend.get_texts()]
        assert not any("torch" in t and "torch not timed" not in t for t in texts), (name, texts)
    assert figures["kernel_crossover.png"].get_suptitle().startswith(
        "kernel size R = S swept: N=1, C=2, K=2, 8x8 images, stride 1, padding R // 2")
    roofline_ax = figures["roofline.png"].axes[0]
    legends = roofline_ax.findobj(match=lambda o: type(o).__name__ == "Legend")
    entries = sorted(t.get_text() for legend in legends for t in legend.get_texts())
    assert entries == sorted(["direct", "im2col", "forward"]), entries
    for legend in legends:  # anchored right of the axes: no point is hidden under it
        assert legend.get_bbox_to_anchor().transformed(roofline_ax.transAxes.inverted()).x0 > 1


def test_quick_duration_in_help_matches_readme():
    readme = os.path.join(ROOT, "README.md")
    if not os.path.exists(readme):
        pytest.skip("not a source checkout")
    text = open(readme).read()
    full_s, quick_s = re.search(r"default suite, (\d+) s on the quiet 2-core machine; `--quick` took (\d+) s", text).groups()
    parser = register(argparse.ArgumentParser().add_subparsers())
    quick_help = next(a.help for a in parser._actions if "--quick" in a.option_strings)
    assert f"about {quick_s} s" in quick_help and f"about {full_s} s" in quick_help, (quick_s, full_s, quick_help)
