"""The helpers the benchmark scripts share (fastconv.bench.sweep, conv_table, torch_mirror,
model_pairs), checked on small cases so a script that only runs for hours cannot break unseen."""

import re

import numpy as np
import pytest

import fastconv
from fastconv.bench import conv_table, sweep
from fastconv.bench.suite import Shape


def test_machine_tag_and_write_sweep(tmp_path):
    tag = sweep.machine_tag()
    assert re.fullmatch(r"[a-z0-9_]+\d+c", tag), tag
    path = sweep.write_sweep("demo", "A sweep", ["note one"], ["| a |", "|---|"], results_dir=str(tmp_path))
    assert path.startswith(str(tmp_path)) and path.endswith(f"_{tag}_demo.md")
    text = open(path).read()
    assert text.startswith("# A sweep (") and "- note one\n" in text and f"fastconv {fastconv.__version__}" in text
    assert text.rstrip().endswith("|---|")
    explicit = tmp_path / "x.md"
    assert sweep.write_sweep("demo", "B", [], [], out=str(explicit)) == str(explicit) and explicit.is_file()


def test_time_against_auto_reports_the_pick_against_the_fastest():
    calls = {"slow": lambda: sum(range(20000)), "fast": lambda: None}
    cells, ratio, ms = sweep.time_against_auto(calls, "slow", number=2)
    assert set(ms) == {"slow", "fast"} and ms["slow"] > ms["fast"]
    assert ratio == pytest.approx(ms["slow"] / ms["fast"]) and ratio > 1
    assert cells.endswith(f"| fast | slow | {ratio:.2f} |")


def test_conv_table_checks_then_times_each_algorithm():
    shape = Shape(name="tiny", N=2, C=3, H=9, W=9, K=4, R=3, S=3, stride=1, pad=1)
    rows = conv_table.bench_shape(shape, ["auto", "direct", "im2col"], ["forward", "weight"], repeat=1, log=lambda *a: None)
    timed = [r for r in rows if r.ms is not None]
    assert {(r.pass_, r.algo) for r in timed} >= {("forward", "auto"), ("forward", "direct"), ("weight", "im2col")}
    assert all(r.error <= 1e-5 for r in timed)
    x, w, b, dy, _ = conv_table.make_problem(shape)
    error, ok = conv_table.check("forward", "direct", shape, x, w, b, dy, ref=np.zeros((2, 4, 9, 9)) + 1.0)
    assert error > 1 and not ok  # the check compares with the reference it is given


def test_conv_table_summary_states_issue_19s_bar():
    def row(shape, pass_, ms, torch_ms, algo="auto"):
        return conv_table.Row(shape, pass_, algo, "direct", ms, torch_ms, None, None)

    rows = [row("a", "forward", 1.0, 2.0), row("b", "forward", 3.0, 2.0), row("a", "input", 1.0, 4.0),
            row("a", "weight", 3.0, 4.0), row("b", "forward", 0.1, 2.0, algo="fft")]
    slower, fwd, grads = conv_table.summarize(rows)
    assert slower == "- slower than torch (auto): 1 of 4 (shape, pass) pairs: b forward (1.50)"
    # forward: ours/torch 0.5 and 1.5, geometric mean sqrt(0.75); gradients: (1 + 3) / (4 + 4)
    assert fwd.startswith(f"- forward (auto): {0.75 ** -0.5:.2f}x torch's speed") and "worst 1.50" in fwd
    assert grads.startswith("- input + weight gradient (auto): 2.00x torch's speed") and "over 1 shapes" in grads


def test_layer_bench_summary_separates_the_choice_from_timing_auto_twice():
    from fastconv.bench.layer_bench import summary

    def row(name, picked, **ms):
        return dict(name=name, picked=picked, ms=ms, held_out=False)

    rows = [row("a", "direct", torch=1.0, auto=0.5, direct=0.5, fft=0.6),  # right pick
            row("b", "direct", torch=1.0, auto=0.7, direct=0.5, fft=0.45),  # same kernel timed 0.7 and 0.5
            row("c", "fft", torch=1.0, auto=2.0, direct=1.0, fft=1.9)]  # wrong pick
    lines = summary(rows, "all")
    assert lines[0].startswith("all: 3 layers")
    assert "under 0.8x: c 0.50" in lines[1]
    assert lines[2] == "  auto > 1.25x the best algorithm on 2: b 1.56, c 2.00"
    assert lines[3].startswith("  auto's pick (its own timing) > 1.25x the best on 1: c 1.90")
    assert f"pick/best geometric mean {(1.0 * (0.5 / 0.45) * 1.9) ** (1 / 3):.3f}" in lines[3]


def test_torch_mirror_computes_what_our_model_computes():
    torch = pytest.importorskip("torch")
    from fastconv.bench.torch_mirror import copy_weights, to_torch, torch_lenet

    fastconv.manual_seed(0)
    ours = fastconv.models.get("resnet18", small=True, width=0.125).eval()
    mirror = to_torch(ours).eval()
    copy_weights(mirror, ours)
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    with fastconv.no_grad(), torch.no_grad():
        np.testing.assert_allclose(ours(fastconv.Tensor(x)).numpy(), mirror(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-4)
    lenet = fastconv.models.LeNet5("classic")
    assert set(torch_lenet("classic").state_dict()) == set(lenet.state_dict())


class _ProbeClock:
    """A probe whose calls take the listed durations on a clock of its own (no real waiting)."""

    def __init__(self, durations):
        self.durations, self.now = list(durations), 0.0

    def probe(self):
        self.now += self.durations.pop(0) if self.durations else 1.0

    def clock(self):
        return self.now


def test_quiet_gate_holds_a_round_until_the_probe_reads_quiet():
    from fastconv.bench.measure import QuietGate

    # calibration: 3 checks of (untimed, timed) quiet calls; then two noisy checks, then a quiet one
    p = _ProbeClock([1.0] * 6 + [2.0, 2.0] * 2 + [1.05, 1.05])
    gate = QuietGate(p.probe, tolerance=1.15, calls=1, pause_s=0.0, max_wait_s=60.0, clock=p.clock)
    assert gate.best == 1.0
    assert gate.wait() is True
    assert not p.durations  # it took the third check
    assert (gate.rounds, gate.noisy) == (1, 0)


def test_quiet_gate_gives_up_after_max_wait_and_counts_the_round_noisy():
    from fastconv.bench.measure import QuietGate

    p = _ProbeClock([1.0] * 6 + [3.0] * 10_000)
    gate = QuietGate(p.probe, tolerance=1.15, calls=1, pause_s=0.005, max_wait_s=0.05, clock=p.clock)
    assert gate.wait() is False
    assert (gate.rounds, gate.noisy) == (1, 1)
    assert "0 of 1" in gate.summary()


def test_time_interleaved_waits_on_the_gate_before_each_round():
    from fastconv.bench.measure import time_interleaved

    class Gate:
        waits = 0

        def wait(self):
            Gate.waits += 1
            return True

    calls = []
    res = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeat=3, warmup=0,
                           gate=Gate())
    assert Gate.waits == 3 and calls == ["a", "b"] * 3
    assert set(res) == {"a", "b"}


def test_quiet_gate_refuses_settings_it_could_never_meet():
    from fastconv.bench.measure import QuietGate

    with pytest.raises(TypeError, match="probe"):
        QuietGate(None)
    with pytest.raises(ValueError, match="tolerance"):
        QuietGate(lambda: None, tolerance=0.9)  # no probe reads below its own fastest
    with pytest.raises(ValueError, match="calls"):
        QuietGate(lambda: None, calls=0)
