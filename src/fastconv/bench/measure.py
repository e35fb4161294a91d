"""Check, then time: every case is first compared with a float64 reference (a wrong algorithm is
marked and not timed), then ours and the references (torch, scipy, numpy) run interleaved
(A, B, A, B, ...) after warm-up, and the median with min/max is kept."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import conv
from .._conv_algorithms import ALGORITHMS, PASSES, error_bound
from ..runtime import set_num_threads
from . import reference as ref
from .suite import Shape

#: The conv passes the benchmark runs, named as everywhere else (fastconv.conv.PASSES).
CONV_PASSES = PASSES
# What --algos runs by default besides "auto": every registered algorithm but the variants a family
# name already picks between (winograd_f2/f4 under "winograd").
ALGO_FAMILIES = tuple(name for name in ALGORITHMS if not any(name in algo.kernels for algo in ALGORITHMS.values()))
SCIPY_MAX_BYTES = 512 << 20  # scipy's batched FFT convolution materialises N*K*C spectra: cap its memory


def tolerance(algo: str) -> float:
    """The relative-error bound of a convolution algorithm: the registry's, which the tests use too."""
    return error_bound(algo)


@dataclass
class Row:
    """One measured case. Times in ms (median, min, max); refs: reference name -> median ms."""

    section: str  # conv, sweep-kernel, sweep-image, sweep-channels, pool, gemm
    name: str
    dims: str
    pass_: str
    algo: str
    picked: str = ""  # the algorithm "auto" ran
    status: str = "ok"  # ok, WRONG, skipped
    note: str = ""
    ms: float | None = None
    ms_min: float | None = None
    ms_max: float | None = None
    flops: float | None = None
    bytes: int | None = None
    gflops: float | None = None
    pct_peak: float | None = None
    gbps: float | None = None
    workspace_bytes: int | None = None
    error: float | None = None
    refs: dict = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """torch (or numpy for GEMM) time / ours: > 1 means we are faster."""
        other = self.refs.get("torch", self.refs.get("numpy"))
        return other / self.ms if other and self.ms else None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["speedup"] = self.speedup
        return d


class QuietGate:
    """Holds each timing round until the machine is quiet, for shared machines whose neighbours
    come and go: a probe (a short fixed workload) is timed before the round, and the round starts
    once the probe is within ``tolerance`` of the fastest it has run, or after ``max_wait_s``
    (then the round counts as noisy). Both sides of a comparison are gated alike; what it removes
    is the minutes in which the whole machine is slower, which otherwise land on whichever side
    happens to run then.

    probe: a callable; each check times ``calls`` calls after one untimed call and keeps the median.
    """

    def __init__(self, probe, name: str = "probe", tolerance: float = 1.15, max_wait_s: float = 30.0,
                 calls: int = 15, pause_s: float = 0.5, clock=time.perf_counter):
        if not callable(probe):
            raise TypeError(f"probe: expected a callable, got {type(probe).__name__}")
        if not tolerance >= 1.0:
            raise ValueError(f"tolerance: expected >= 1 (a probe time over its fastest), got {tolerance}")
        if not (calls >= 1 and max_wait_s >= 0 and pause_s >= 0):
            raise ValueError(f"calls >= 1, max_wait_s >= 0 and pause_s >= 0 expected, got {calls}, {max_wait_s}, {pause_s}")
        self.probe, self.name, self.tolerance, self.max_wait_s = probe, name, tolerance, max_wait_s
        self.calls, self.pause_s, self.clock = calls, pause_s, clock
        self.rounds = self.noisy = 0
        self.waited_s = 0.0
        self.best = min(self.check() for _ in range(3))

    def check(self) -> float:
        """One probe measurement in seconds (the median of ``calls`` timed calls)."""
        self.probe()
        times = []
        for _ in range(self.calls):
            t0 = self.clock()
            self.probe()
            times.append(self.clock() - t0)
        return statistics.median(times)

    def wait(self) -> bool:
        """Blocks until the probe reads quiet (True) or ``max_wait_s`` has passed (False)."""
        self.rounds += 1
        start = time.perf_counter()
        while True:
            t = self.check()
            self.best = min(self.best, t)
            if t <= self.tolerance * self.best:
                self.waited_s += time.perf_counter() - start
                return True
            if time.perf_counter() - start >= self.max_wait_s:
                self.waited_s += time.perf_counter() - start
                self.noisy += 1
                return False
            time.sleep(self.pause_s)

    def summary(self) -> str:
        """One line for a report: the probe, its best time and how many rounds started quiet."""
        return (f"quiet gate: {self.name}, fastest {self.best * 1e3:.3f} ms, rounds start within "
                f"{self.tolerance:.2f}x of it: {self.rounds - self.noisy} of {self.rounds} did (the others after "
                f"waiting {self.max_wait_s:.0f} s), {self.waited_s:.0f} s spent waiting")


def conv_probe():
    """The default QuietGate probe, (callable, name): LeNet-5's first convolution by ``direct``
    (256 images, 1 -> 6 channels, 5x5 on 28x28) at the current thread count, ~0.5 ms on 2 quiet
    Zen 4 cores; in a busy neighbour's minutes it reads 0.8-0.9 ms."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 1, 28, 28), dtype=np.float32)
    w = rng.standard_normal((6, 1, 5, 5), dtype=np.float32)
    return (lambda: conv.conv2d(x, w, None, 1, 2, algo="direct")), "LeNet-5 conv1 (256 images, direct)"


def time_interleaved(fns: dict, repeat: int, warmup: int = 2, block: int = 1, settle: float = 0.0,
                     rotate: bool = False, clock=time.perf_counter, gate: QuietGate | None = None) -> dict:
    """name -> (median, min, max) seconds, calling the callables in turn after warm-up.

    With block > 1 each turn is `settle` seconds of idling, one untimed call, then `block` timed
    calls of the same callable. Use it against numpy: OpenBLAS's workers spin for ~0.1 s after a
    call and take a core from the next callable's threads, so alternating single calls measures
    the two libraries fighting over two cores instead of either one.

    rotate: round r starts with the r-th callable (A B C, B C A, C A B, ...), so none is always the
    one that follows the heaviest and pays for refilling the caches it evicted.

    clock: wall time by default; ``time.thread_time`` (the calling thread's CPU time, meaningful
    with 1 thread) on a machine too busy for a wall clock.

    gate: a QuietGate waited on before each round."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times = {k: [] for k in fns}
    order = list(fns.items())
    for r in range(repeat):
        if gate is not None:
            gate.wait()
        shift = r % len(order) if rotate else 0
        for k, f in order[shift:] + order[:shift]:
            if block > 1:
                time.sleep(settle)
                f()
            for _ in range(block):
                t0 = clock()
                f()
                times[k].append(clock() - t0)
    return {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()}


def optional_module(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


def set_threads_both(threads: int):
    """Give fastconv and, when installed, torch the same thread count (both sides of a
    side-by-side timing); returns the torch module, or None (with a note) when it is absent."""
    set_num_threads(threads)
    torch = optional_module("torch")
    if torch is None:
        print("torch not installed: no reference timings")
    else:
        torch.set_num_threads(threads)
    return torch


def expand_algos(requested: list[str]) -> list[str]:
    """Requested names -> registered algorithm names ("winograd" covers winograd_f2 and winograd_f4);
    a family with nothing registered stays as is and is reported as not built."""
    from ..conv import ALGORITHMS

    out = []
    for a in requested:
        matches = [n for n in ALGORITHMS if n == a or n.startswith(a + "_")] if a != "auto" else ["auto"]
        out.extend(m for m in (matches or [a]) if m not in out)
    return out


# ---- convolution ---------------------------------------------------------------------------------


def conv_problem(shape: Shape, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = shape.params()
    x = rng.standard_normal(shape.x_shape, dtype=np.float32)
    w = rng.standard_normal(shape.w_shape, dtype=np.float32)
    b = rng.standard_normal(shape.K, dtype=np.float32)
    dy = rng.standard_normal((p.N, p.K, p.P, p.Q), dtype=np.float32)
    return x, w, b, dy


def run_conv(pass_: str, algo: str, shape: Shape, x, w, b, dy):
    kw = shape.conv_kwargs
    if pass_ == "forward":
        return conv.conv2d(x, w, b, algo=algo, **kw)
    if pass_ == "input":
        return conv.conv2d_input(x.shape, w, dy, algo=algo, **kw)
    return conv.conv2d_weight(x, w.shape, dy, algo=algo, **kw)


def conv_reference(pass_: str, shape: Shape, x, w, b, dy):
    args = ((shape.stride,) * 2, (shape.pad,) * 2, (shape.dilation,) * 2, shape.groups)
    if pass_ == "forward":
        return ref.conv2d(x, w, b, *args)
    if pass_ == "input":
        return ref.conv2d_input(x.shape, w, dy, *args)
    return ref.conv2d_weight(x, w.shape, dy, *args)


def torch_conv(pass_: str, shape: Shape, x, w, b, dy, device: str = "cpu"):
    """torch's version of the pass (the reference timing), or None when torch (or, for
    device="cuda", a CUDA build of torch) is absent. On the GPU TF32 is off: an FP32 comparison."""
    torch = optional_module("torch")
    if torch is None or (device == "cuda" and not torch.cuda.is_available()):
        return None
    xt, wt, bt, dyt = (torch.from_numpy(a).to(device) for a in (x, w, b, dy))
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    kw = shape.conv_kwargs
    if pass_ == "forward":

        def call():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, bt, **kw)

    elif pass_ == "input":
        call = lambda: torch.nn.grad.conv2d_input(xt.shape, wt, dyt, **kw)  # noqa: E731
    else:
        call = lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, dyt, **kw)  # noqa: E731
    if device == "cpu":
        return call

    def synchronized():
        out = call()
        torch.cuda.synchronize()
        return out

    return synchronized


def scipy_conv(shape: Shape, x, w, b):
    """scipy.signal.fftconvolve over (C, H, W) for the whole batch (forward, stride 1, no dilation or
    groups): the FFT baseline. None when scipy is absent or the case does not apply (reason given)."""
    if optional_module("scipy") is None:
        return None, "scipy not installed"
    if shape.stride != 1 or shape.dilation != 1 or shape.groups != 1:
        return None, "scipy: stride/dilation/groups not supported"
    p = shape.params()
    Hf, Wf = shape.H + 2 * shape.pad + shape.R - 1, shape.W + 2 * shape.pad + shape.S - 1
    # complex64 product of the N x K x C spectra, plus about as much again for the inverse transform
    if 3 * 8 * shape.N * shape.K * shape.C * Hf * (Wf // 2 + 1) > SCIPY_MAX_BYTES:
        return None, "scipy: spectra too large"
    from scipy import signal

    xp = np.pad(x, ((0, 0), (0, 0), (shape.pad,) * 2, (shape.pad,) * 2))[:, None]
    wf = np.ascontiguousarray(w[None, :, :, ::-1, ::-1])  # correlation = convolution with the flipped kernel

    def f():
        y = signal.fftconvolve(xp, wf, mode="valid", axes=(2, 3, 4))[:, :, 0, : p.P, : p.Q]
        return y + b[None, :, None, None]

    return f, ""


def workspace_bytes(algo: str, shape: Shape, pass_: str):
    """Scratch bytes the algorithm reports for this pass, when fastconv.conv can tell (else None)."""
    query = getattr(conv, "workspace_bytes", None)
    return query(algo, shape.params(), pass_) if query else None


def conv_backend(device: str, shape: Shape, x, w, b, dy):
    """How to run our passes on `device`: (run, why_not, auto). run(pass_, algo, n) computes the pass
    on the first n images (all when n is None; on the GPU it waits for the result); why_not(pass_)
    maps algorithm names to None (can run) or the reason it cannot; auto(pass_) names the algorithm
    algo="auto" runs."""
    params = shape.params()
    why_not = lambda pass_: conv.available(params, pass_, device)  # noqa: E731
    auto = lambda pass_: conv.select_algorithm(params, pass_, device)  # noqa: E731
    if device == "cpu":

        def run(pass_, algo, n=None):
            return run_conv(pass_, algo, shape, x[:n], w, b, dy[:n])

        return run, why_not, auto

    from .. import cuda

    on_device = {}  # n -> device copies, made once

    def run(pass_, algo, n=None):
        if n not in on_device:
            on_device[n] = tuple(cuda.to_device(np.ascontiguousarray(a)) for a in (x[:n], w, b, dy[:n]))
        xd, wd, bd, dyd = on_device[n]
        kw = shape.conv_kwargs
        if pass_ == "forward":
            out = cuda.ops.conv2d(xd, wd, bd, algo=algo, **kw)
        elif pass_ == "input":
            out = cuda.ops.conv2d_input(xd.shape, wd, dyd, algo=algo, **kw)
        else:
            out = cuda.ops.conv2d_weight(xd, wd.shape, dyd, algo=algo, **kw)
        cuda.synchronize()
        return out

    return run, why_not, auto


def bench_conv_shape(shape: Shape, algos, passes, repeat: int, warmup: int, compare, peak: float | None,
                     check_batch: int = 2, section: str = "conv", device: str = "cpu") -> list[Row]:
    """Check then time each algorithm for each pass of one shape, with torch/scipy alongside."""
    x, w, b, dy = conv_problem(shape)
    run, available, select = conv_backend(device, shape, x, w, b, dy)
    n = min(check_batch, shape.N)
    rows = []
    for pass_ in passes:
        base = dict(section=section, name=shape.name, dims=shape.dims, pass_=pass_, flops=shape.flops, bytes=shape.min_bytes)
        why_not = available(pass_)
        auto = select(pass_)
        expected = conv_reference(pass_, shape, x[:n], w, b, dy[:n])
        fns, timed = {}, []
        for algo in algos:
            name = auto if algo == "auto" else algo
            row = Row(algo=algo, picked=name, **base)
            reason = why_not.get(name, "not built")
            if reason is not None:
                row.status, row.note = "skipped", reason
                rows.append(row)
                continue
            got = run(pass_, name, n)
            got = got if isinstance(got, np.ndarray) else got.numpy()
            row.error = ref.relative_error(got, expected)
            # The tests' check (tests/toolkit.py): every element within atol + rtol*|ref|, rtol the
            # registry's bound, atol rtol * max|ref|.
            if not ref.tolerance_ratio(got, expected, tolerance(name)) <= 1.0:
                row.status, row.note = "WRONG", f"relative error {row.error:.1e} > {tolerance(name):.0e}: not timed"
                rows.append(row)
                continue
            row.workspace_bytes = workspace_bytes(name, shape, pass_) if device == "cpu" else None
            fns[algo] = lambda a=name, p=pass_: run(p, a)
            timed.append(row)
        if "torch" in compare and (f := torch_conv(pass_, shape, x, w, b, dy, device)) is not None:
            fns["torch"] = f
        if "scipy" in compare and pass_ == "forward" and device == "cpu":
            f, _ = scipy_conv(shape, x, w, b)
            if f is not None:
                fns["scipy"] = f
        res = time_interleaved(fns, repeat, warmup) if fns else {}
        refs = {k: res[k][0] * 1e3 for k in ("torch", "scipy") if k in res}
        for row in timed:
            med, lo, hi = res[row.algo]
            row.ms, row.ms_min, row.ms_max = med * 1e3, lo * 1e3, hi * 1e3
            row.gflops = row.flops / med / 1e9
            row.pct_peak = 100 * row.gflops / peak if peak else None
            row.refs = dict(refs)
        rows.extend(timed)
    return rows
