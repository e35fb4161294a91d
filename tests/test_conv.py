"""fastconv.conv2d and its gradients: every registered algorithm, every pass, against the float64
reference (tests/reference.py), finite differences and torch; argument checking; bounded workspace.

Error bounds: each algorithm's ``bound`` in the registry (fastconv._conv_algorithms, read through
tests/toolkit.py): relative_error (max |a - e| / max |e|) at most 1e-5 for direct, im2col and gemm
(float32 accumulation over at most a few thousand terms); FFT 1e-4 (transforms round in float32
over the whole tile), Winograd F(4x4) 5e-4. Tests iterate over fastconv.conv_algorithms(...) so newly registered algorithms
are covered without edits here.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import conv as conv_mod
from reference import conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref, out_size, relative_error
from toolkit import WRONG_DTYPE, assert_close, conv_bound, examples, on_device, per_device, to_numpy
from toolkit import conv_bound as tolerance


def make_problem(rng, N, C, H, W, K, R, S, groups=1):
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((K, C // groups, R, S), dtype=np.float32)
    b = rng.standard_normal(K, dtype=np.float32)
    return x, w, b


def check_every_algorithm(rng, N, C, H, W, K, R, S, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                          device="cpu"):
    """Every algorithm valid for each pass on ``device`` agrees with the float64 reference."""
    x, w, b = make_problem(rng, N, C, H, W, K, R, S, groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y_ref = conv2d_ref(x, w, b, **kw)
    dy = rng.standard_normal(y_ref.shape, dtype=np.float32)
    dx_ref = conv2d_input_grad_ref(x.shape, w, dy, **kw)
    dw_ref = conv2d_weight_grad_ref(x, w.shape, dy, **kw)
    ran = set()
    params = conv_mod.conv_plan(x.shape, w.shape, stride, padding, dilation, groups).params
    xd, wd, bd, dyd = (on_device(a, device) for a in (x, w, b, dy))
    for pass_, ref in (("forward", y_ref), ("input", dx_ref), ("weight", dw_ref)):
        algos = fastconv.conv_algorithms(x.shape, w.shape, pass_=pass_, device=device, **kw)
        assert {"direct", "im2col"} <= set(algos)
        for algo in algos + ["auto"]:
            if pass_ == "forward":
                got = fastconv.conv2d(xd, wd, bd, algo=algo, **kw)
            elif pass_ == "input":
                got = fastconv.grad.conv2d_input(x.shape, wd, dyd, algo=algo, **kw)
            else:
                got = fastconv.grad.conv2d_weight(xd, w.shape, dyd, algo=algo, **kw)
            got = to_numpy(got, device)
            assert got.shape == ref.shape and got.dtype == np.float32
            assert np.isfinite(got).all(), (algo, pass_)
            err = relative_error(got, ref)
            bound = conv_bound(algo, params, pass_, device)
            assert err <= bound, f"{algo} {pass_}: relative error {err:.2e}"
            assert_close(got, ref, bound, what=f"{algo} {pass_}")
            ran.add((algo, pass_))
    return ran


# (N, C, H, W, K, R, S, stride, padding, dilation, groups): the odd cases named by the issue.
CASES = [
    (2, 3, 9, 11, 4, 3, 3, 1, 1, 1, 1),
    (3, 1, 28, 28, 6, 5, 5, 1, 2, 1, 1),  # LeNet conv1 (C = 1)
    (2, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),  # LeNet conv2
    (2, 3, 23, 29, 5, 11, 11, 4, 2, 1, 1),  # AlexNet-like: big kernel, stride 4, primes
    (2, 4, 13, 17, 6, 3, 5, (2, 3), (1, 2), (2, 1), 2),  # everything asymmetric, groups
    (2, 6, 7, 7, 6, 3, 3, 1, 1, 1, 6),  # depthwise
    (2, 8, 9, 9, 16, 1, 1, 1, 0, 1, 1),  # 1x1: pure GEMM path
    (2, 8, 9, 9, 4, 1, 1, 2, 0, 1, 1),  # 1x1 strided: unfold path
    (1, 1024, 24, 24, 3, 1, 1, 1, 0, 1, 1),  # 1x1 with many channels: GEMM in column blocks (forward)
    (1, 3, 24, 24, 1024, 1, 1, 1, 0, 1, 1),  # ... (input gradient)
    (2, 3, 5, 5, 2, 5, 5, 1, 0, 1, 1),  # kernel == input
    (1, 2, 1, 1, 3, 1, 1, 1, 0, 1, 1),  # 1x1 image
    (3, 2, 6, 6, 3, 2, 2, 5, 0, 1, 1),  # stride > kernel
    (2, 2, 8, 8, 4, 3, 3, 2, 3, 3, 2),  # padding and dilation larger than the stride
    (1, 67, 5, 7, 3, 3, 3, 1, 1, 1, 1),  # large C (prime)
    (2, 5, 31, 37, 7, 2, 4, 1, (0, 3), 1, 1),  # even kernel, one-sided padding
    # narrow outputs with many channels: direct's channel-vectorised tiles, every pass
    (2, 16, 5, 6, 9, 3, 3, 2, 1, 1, 1),
    (2, 24, 7, 7, 8, 3, 3, 1, 1, 1, 1),
    (2, 32, 6, 6, 48, 3, 2, (1, 2), 1, (1, 2), 2),
    # ... with several images per thread, so the weight gradient reduces over chunks of images
    (9, 16, 4, 4, 16, 3, 3, 1, 1, 1, 1),
    (7, 12, 3, 5, 18, 3, 3, 1, 1, 1, 2),  # 9 outputs per group: vectors padded past the channels
    (6, 16, 7, 6, 16, 3, 3, (2, 1), (1, 0), 1, 1),
    (40, 8, 2, 2, 8, 3, 3, 1, 1, 1, 1),  # 2x2 images: chunks of 20 images
    # strides 2-4 and rectangular kernels (implicit_gemm: tiles of 6 outputs crossing rows, padded
    # copies, reduction blocks, partial channel panels)
    (2, 5, 17, 40, 7, 5, 20, 2, 0, 1, 1),  # DeepSpeech-like 5x20, stride 2: 7x11 outputs
    (3, 4, 19, 19, 13, 3, 3, 3, 1, 1, 1),  # stride 3
    (2, 3, 30, 33, 10, 7, 3, (4, 2), (3, 1), (1, 2), 1),  # rectangular kernel, stride and dilation
    (1, 3, 20, 70, 8, 3, 3, 2, 1, 1, 1),  # 35 outputs a row: whole panels in one row, padded lanes
    (1, 128, 9, 9, 350, 3, 3, 2, 1, 1, 1),  # 1152-long reductions, 350 output channels: K and M blocks
    (2, 2, 2, 1, 1, 1, 1, 1, (0, 2), 1, 1),  # padding wider than the row: row segments shorter than their padding
    # implicit_gemm's tiles (6 pixels or taps x 16 output channels, reductions in blocks of 128)
    (2, 8, 15, 13, 20, 1, 1, 2, 0, 1, 1),  # 1x1 stride 2, 20 outputs: a full and a partial panel
    (2, 3, 17, 19, 8, 3, 3, 4, 1, 1, 1),  # stride 4 > kernel 3
    (2, 40, 9, 7, 34, 3, 1, (2, 1), (1, 0), 1, 2),  # 2 groups of 17 outputs, 60 taps, stride 2 x 1
    (1, 3, 6, 6, 5, 6, 6, 1, 2, 1, 1),  # kernel = input, padded
    (3, 30, 12, 11, 16, 3, 2, 1, 1, (2, 1), 1),  # 180 taps: two reduction blocks, dilated rows
    (1, 64, 14, 15, 232, 3, 3, 1, 1, 1, 1),  # 0.5+ MB of weights over 210 pixels: one pixel block, panels packed on use
    (1, 300, 9, 9, 200, 3, 3, 1, 1, 1, 2),  # ... per group (1350 taps: 11 reduction blocks, the last short)
    # heavy padding on small maps (implicit_gemm's padded copy, several reduction blocks)
    (2, 3, 2, 3, 5, 3, 3, 1, 4, 1, 1),  # padding wider than the kernel: windows wholly in padding
    (1, 40, 5, 6, 20, 5, 5, 1, 2, 1, 1),  # 1000 taps on a 5x6 map
    (1, 160, 7, 7, 24, 3, 3, 1, 1, 1, 1),  # 1440 taps on 7x7
    (2, 24, 9, 8, 18, 3, 5, (2, 1), (3, 2), (2, 1), 1),  # strided, dilated, rectangular
    # implicit_gemm's input gradient by stride phases (dy padded as the phases read it)
    (2, 12, 9, 10, 20, 1, 1, 2, 1, 1, 1),  # 1x1 stride 2, padded: dy's first row and column cropped
    (2, 40, 11, 8, 24, 3, 3, 2, (2, 3), 1, 1),  # padding past half the kernel: phases start at different rows
    (1, 36, 12, 13, 21, 4, 3, (3, 2), 1, 1, 3),  # 6 phases of unequal taps, groups
]


# The CUDA backend runs fewer (under its CPU stand-in the whole list took 12 min): asymmetric with
# groups, depthwise, a 1x1 image, stride > kernel, an even kernel with one-sided padding, and small
# odd ones of its own: primes, kernel == input, stride > kernel on both axes, C = 1, grouped and
# dilated, a pointwise layer with many channels, three groups of 11 channels, an empty batch.
CUDA_CASES = [CASES[4], CASES[5], CASES[11], CASES[12], CASES[15],
              (2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1),
              (3, 2, 5, 5, 3, 5, 5, 1, 0, 1, 1),
              (2, 5, 11, 13, 7, 2, 3, (3, 4), (1, 0), 1, 1),
              (1, 1, 17, 19, 6, 5, 5, 1, 2, 1, 1),
              (2, 6, 9, 8, 4, 3, 3, (2, 1), (2, 1), (2, 3), 2),
              (2, 40, 6, 5, 36, 1, 1, 1, 0, 1, 1),
              (1, 33, 8, 8, 48, 3, 3, 2, 1, 1, 3),
              (0, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1)]


@pytest.mark.parametrize("device, case", per_device(CASES, CUDA_CASES, ids=lambda c: "x".join(map(str, c[:7]))))
def test_every_algorithm_every_pass(rng, case, device):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = case
    pairs = [v if isinstance(v, tuple) else (v, v) for v in (stride, padding, dilation)]
    check_every_algorithm(rng, N, C, H, W, K, R, S, *pairs, groups=groups, device=device)


@st.composite
def problems(draw):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    C = groups * draw(st.integers(1, 4))
    K = groups * draw(st.integers(1, 5))
    R, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    H = draw(st.integers(max(1, dilation[0] * (R - 1) + 1 - 2 * padding[0]), 17))
    W = draw(st.integers(max(1, dilation[1] * (S - 1) + 1 - 2 * padding[1]), 17))
    N = draw(st.integers(1, 3))
    return N, C, H, W, K, R, S, stride, padding, dilation, groups


def test_random_shapes(device):
    @settings(max_examples=examples(device, 25, 10), deadline=None)
    @given(problem=problems(), seed=st.integers(0, 2**32 - 1))
    def check(problem, seed):
        N, C, H, W, K, R, S, stride, padding, dilation, groups = problem
        check_every_algorithm(np.random.default_rng(seed), N, C, H, W, K, R, S, stride, padding, dilation, groups,
                              device=device)

    check()


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_thread_counts_agree(rng, threads, nthreads):
    """Batch smaller and larger than the thread count (im2col switches strategy at N = threads)."""
    fastconv.set_num_threads(nthreads)
    for N in (1, 4):
        check_every_algorithm(rng, N, 4, 10, 12, 5, 3, 3, (1, 1), (1, 1))


def test_portable_path_agrees(tmp_path):
    """FASTCONV_CPU=portable runs the non-AVX2 kernels; they must pass the same checks."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'tests'); import numpy as np, fastconv; from test_conv import check_every_algorithm;"
        "assert fastconv.info()['cpu_path'] == 'portable';"
        "rng = np.random.default_rng(1);"
        "check_every_algorithm(rng, 2, 3, 11, 13, 5, 3, 5, (2, 1), (1, 2), (1, 2), 1);"
        "check_every_algorithm(rng, 2, 1, 28, 28, 6, 5, 5, (1, 1), (2, 2));"
        "check_every_algorithm(rng, 2, 16, 5, 6, 9, 3, 3, (2, 1), (1, 1))"
    )
    env = dict(os.environ, FASTCONV_CPU="portable")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)


@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_finite_differences(rng, algo):
    """The gradients are derivatives of sum(conv2d(x, w) * g): central differences (exact for a
    linear map up to float32 rounding, so a step of 0.5 keeps rounding small)."""
    x, w, _ = make_problem(rng, 2, 3, 7, 8, 4, 3, 2, groups=1)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    g = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape).astype(np.float32)

    def loss(xx, ww):
        return float(np.sum(fastconv.conv2d(xx, ww, algo=algo, **kw).astype(np.float64) * g))

    dx = fastconv.grad.conv2d_input(x.shape, w, g, algo=algo, **kw)
    dw = fastconv.grad.conv2d_weight(x, w.shape, g, algo=algo, **kw)
    eps = 0.5
    for arr, grad, wrt_x in ((x, dx, True), (w, dw, False)):
        for idx in zip(*[rng.integers(0, d, 6) for d in arr.shape]):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            num = (loss(plus, w) - loss(minus, w)) if wrt_x else (loss(x, plus) - loss(x, minus))
            assert abs(num / (2 * eps) - grad[idx]) <= 1e-3 * (1 + abs(grad[idx]))


@pytest.mark.parametrize(
    "kw",
    [
        dict(stride=1, padding=2),
        dict(stride=2, padding=1, dilation=2),
        dict(stride=(1, 3), padding=(2, 0), groups=2),
        dict(padding="same"),
        dict(padding="same", dilation=(1, 2)),
        dict(padding="valid", groups=4),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_matches_torch(rng, kw):
    torch = pytest.importorskip("torch")
    groups = kw.get("groups", 1)
    x, w, b = make_problem(rng, 3, 4, 12, 11, 8, 4, 3, groups)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, torch.tensor(b), **kw)
    g = rng.standard_normal(tuple(yt.shape), dtype=np.float32)
    yt.backward(torch.tensor(g))
    for algo in fastconv.conv_algorithms(x.shape, w.shape, **kw):
        tol = tolerance(algo)
        y = fastconv.conv2d(x, w, b, algo=algo, **kw)
        assert relative_error(y, yt.detach().numpy()) <= tol
    for algo in fastconv.conv_algorithms(x.shape, w.shape, pass_="input", **kw):
        dx = fastconv.grad.conv2d_input(x.shape, w, g, algo=algo, **kw)
        assert relative_error(dx, xt.grad.numpy()) <= tolerance(algo)
    for algo in fastconv.conv_algorithms(x.shape, w.shape, pass_="weight", **kw):
        dw = fastconv.grad.conv2d_weight(x, w.shape, g, algo=algo, **kw)
        assert relative_error(dw, wt.grad.numpy()) <= tolerance(algo)


def test_workspace_limit_chunks(rng, threads):
    """A 1 MiB limit forces im2col to split images into row chunks (and chunks across images)."""
    saved = fastconv.get_workspace_limit()
    try:
        fastconv.set_workspace_limit(1 << 20)
        for nthreads in (1, 2):
            fastconv.set_num_threads(nthreads)
            # one image's columns: (16*9 + 8) * 40 rows * 40 cols * 4 B = 0.97 MiB > the per-thread share
            for N in (1, 3):
                x, w, b = make_problem(rng, N, 16, 40, 40, 8, 3, 3)
                kw = dict(padding=1)
                y_ref = conv2d_ref(x, w, b, padding=(1, 1))
                dy = rng.standard_normal(y_ref.shape, dtype=np.float32)
                assert relative_error(fastconv.conv2d(x, w, b, algo="im2col", **kw), y_ref) <= 1e-5
                dx = fastconv.grad.conv2d_input(x.shape, w, dy, algo="im2col", **kw)
                assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, padding=(1, 1))) <= 1e-5
                dw = fastconv.grad.conv2d_weight(x, w.shape, dy, algo="im2col", **kw)
                assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy, padding=(1, 1))) <= 1e-5
    finally:
        fastconv.set_workspace_limit(saved)


def test_implicit_gemm_padded_images_in_chunks(rng, threads):
    """A 1 MiB limit makes implicit_gemm pad the batch in chunks of images under half the limit:
    with 16 channels the 3 images in one chunk (105 KiB each), with 64 one image per chunk
    (64 * 41 * 41 * 4 B = 420 KiB), forward and weight gradient. The input gradient pads grad_output
    likewise: 200 channels of 21 x 21 (353 KiB) one image per chunk."""
    saved = fastconv.get_workspace_limit()
    try:
        fastconv.set_workspace_limit(1 << 20)
        for C in (16, 64):
            x, w, b = make_problem(rng, 3, C, 40, 40, 20, 3, 3)
            kw = dict(stride=2, padding=1)
            y_ref = conv2d_ref(x, w, b, stride=(2, 2), padding=(1, 1))
            dy = rng.standard_normal(y_ref.shape, dtype=np.float32)
            assert relative_error(fastconv.conv2d(x, w, b, algo="implicit_gemm", **kw), y_ref) <= 1e-5
            dw = fastconv.grad.conv2d_weight(x, w.shape, dy, algo="implicit_gemm", **kw)
            assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy, stride=(2, 2), padding=(1, 1))) <= 1e-5
        w = rng.standard_normal((200, 8, 3, 3), dtype=np.float32)
        dy = rng.standard_normal((3, 200, 20, 20), dtype=np.float32)
        dx = fastconv.grad.conv2d_input((3, 8, 40, 40), w, dy, algo="implicit_gemm", stride=2, padding=1)
        assert relative_error(dx, conv2d_input_grad_ref((3, 8, 40, 40), w, dy, stride=(2, 2), padding=(1, 1))) <= 1e-5
    finally:
        fastconv.set_workspace_limit(saved)


def test_implicit_gemm_weight_grad_slots_first_written_in_a_later_chunk(rng, threads):
    """Under a 1 MiB limit 5 images are padded in chunks of 3 and 2: on 2 threads the first chunk
    splits the taps (the first per-thread sum only), the second the images, so the second sum is
    first written there and must be stored, not added to stale memory. Both ways of summing: into
    the sum directly (225 pixels per image) and through per-image parts (400 pixels)."""
    saved = fastconv.get_workspace_limit()
    try:
        fastconv.set_workspace_limit(1 << 20)
        for C, H in ((40, 30), (24, 40)):  # padded images of 150 and 158 KiB: 3 per 512 KiB chunk
            x, w, _ = make_problem(rng, 5, C, H, H, 20, 3, 3)
            kw = dict(stride=2, padding=1)
            dy = rng.standard_normal((5, 20, H // 2, H // 2), dtype=np.float32)
            ref = conv2d_weight_grad_ref(x, w.shape, dy, stride=(2, 2), padding=(1, 1))
            for nthreads in (1, 2):
                fastconv.set_num_threads(nthreads)
                fastconv.grad.conv2d_weight(x, w.shape, dy * 7, algo="implicit_gemm", **kw)  # leaves other sums in the scratch
                dw = fastconv.grad.conv2d_weight(x, w.shape, dy, algo="implicit_gemm", **kw)
                assert relative_error(dw, ref) <= 1e-5, (C, H, nthreads)
    finally:
        fastconv.set_workspace_limit(saved)


def test_direct_weight_grad_under_small_limit(rng):
    """direct's weight gradient switches to one partial per weight when 8 would pass the limit."""
    saved = fastconv.get_workspace_limit()
    try:
        fastconv.set_workspace_limit(1 << 20)
        x, w, _ = make_problem(rng, 2, 64, 5, 6, 64, 3, 3)  # 36864 weights x 8 x 4 B > 1 MiB
        dy = rng.standard_normal((2, 64, 3, 4), dtype=np.float32)
        dw = fastconv.grad.conv2d_weight(x, w.shape, dy, algo="direct")
        assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy)) <= 1e-5
    finally:
        fastconv.set_workspace_limit(saved)


def test_non_contiguous_inputs_are_not_modified(rng):
    base = rng.standard_normal((2, 8, 12, 10), dtype=np.float32)
    x = base[:, ::2, :, ::-1]  # strided and reversed view
    w = rng.standard_normal((4, 4, 3, 3), dtype=np.float32)
    w_nc = np.asfortranarray(w)
    dy = np.asfortranarray(rng.standard_normal((2, 4, 10, 8), dtype=np.float32))
    copies = [a.copy() for a in (base, w_nc, dy)]
    for algo in fastconv.conv_algorithms(x.shape, w.shape):
        y = fastconv.conv2d(x, w_nc, algo=algo)
        assert relative_error(y, conv2d_ref(x, w)) <= tolerance(algo)
    for algo in fastconv.conv_algorithms(x.shape, w.shape, pass_="input"):
        dx = fastconv.grad.conv2d_input(x.shape, w_nc, dy, algo=algo)
        assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy)) <= tolerance(algo)
    for algo in fastconv.conv_algorithms(x.shape, w.shape, pass_="weight"):
        dw = fastconv.grad.conv2d_weight(x, w.shape, dy, algo=algo)
        assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy)) <= tolerance(algo)
    for a, c in zip((base, w_nc, dy), copies):
        np.testing.assert_array_equal(a, c)


def test_empty_batch(device):
    x = on_device(np.zeros((0, 3, 8, 8), np.float32), device)
    w = on_device(np.ones((4, 3, 3, 3), np.float32), device)
    for algo in ("auto", "direct", "im2col"):
        assert fastconv.conv2d(x, w, algo=algo).shape == (0, 4, 6, 6)
        dy = on_device(np.zeros((0, 4, 6, 6), np.float32), device)
        assert fastconv.grad.conv2d_input(x.shape, w, dy, algo=algo).shape == (0, 3, 8, 8)
        dw = to_numpy(fastconv.grad.conv2d_weight(x, w.shape, dy, algo=algo), device)
        assert dw.shape == w.shape and not dw.any()


@pytest.mark.parametrize("algo", ["auto", "direct", "im2col"])
def test_empty_batch_with_uneven_same_padding(algo):
    """padding="same" with an even dilated kernel appends a row/column; the gradients of an empty
    batch must still have the input's and the weight's shapes (dx was (0, 4, 6, 5) here)."""
    x = np.zeros((0, 4, 5, 5), np.float32)
    w = np.ones((1, 4, 2, 3), np.float32)
    y = fastconv.conv2d(x, w, padding="same", dilation=3, algo=algo)
    assert y.shape == (0, 1, 5, 5)
    assert fastconv.grad.conv2d_input(x.shape, w, y, padding="same", dilation=3, algo=algo).shape == x.shape
    dw = fastconv.grad.conv2d_weight(x, w.shape, y, padding="same", dilation=3, algo=algo)
    assert dw.shape == w.shape and not dw.any()
    X, W = fastconv.Tensor(x, requires_grad=True), fastconv.Tensor(w, requires_grad=True)
    out = fastconv.nn.functional.conv2d(X, W, padding="same", dilation=3, algo=algo)
    out.backward(np.zeros(out.shape, np.float32))
    assert X.grad.shape == x.shape and W.grad.shape == w.shape


@pytest.mark.parametrize("padding", [1, "same"])
def test_unbatched_input_is_a_batch_of_one(rng, device, padding):
    """x (C, H, W) gives (K, P, Q), as torch.nn.functional.conv2d."""
    x, w, b = make_problem(rng, 1, 3, 7, 5, 4, 3, 2)
    y = fastconv.conv2d(on_device(x[0], device), on_device(w, device), on_device(b, device), padding=padding,
                        dilation=(1, 2))
    expected = conv2d_ref(x, w, b, padding=(1, 1), dilation=(1, 2))[0]  # "same" pads (1, 1) here
    assert y.shape == expected.shape == (4, 7, 5)
    assert relative_error(to_numpy(y, device), expected) <= 1e-5


def test_same_padding_matches_pytorch_rule(rng, device):
    """Even kernels put the odd padding at the bottom/right (PyTorch's rule), for every pass. The CUDA
    backend has no asymmetric padding: it refuses with a ValueError that says so."""
    x, w, b = make_problem(rng, 2, 3, 9, 8, 4, 4, 2)
    xd, wd, bd = (on_device(a, device) for a in (x, w, b))
    if device == "cuda":
        dy = on_device(np.zeros((2, 4, 9, 8), np.float32), device)
        for call in (lambda: fastconv.conv2d(xd, wd, bd, padding="same"),
                     lambda: fastconv.grad.conv2d_input(x.shape, wd, dy, padding="same"),
                     lambda: fastconv.grad.conv2d_weight(xd, w.shape, dy, padding="same")):
            with pytest.raises(ValueError, match="padding: 'same' with an even .* pads asymmetrically"):
                call()
        return
    padded = np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)))
    y = fastconv.conv2d(xd, wd, bd, padding="same")
    assert y.shape == (2, 4, 9, 8)
    assert relative_error(y, conv2d_ref(padded, w, b)) <= 1e-5
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = fastconv.grad.conv2d_input(x.shape, w, dy, padding="same")
    assert relative_error(dx, conv2d_input_grad_ref(padded.shape, w, dy)[:, :, 1:10, 0:8]) <= 1e-5
    dw = fastconv.grad.conv2d_weight(x, w.shape, dy, padding="same")
    assert relative_error(dw, conv2d_weight_grad_ref(padded, w.shape, dy)) <= 1e-5


def test_auto_picks_a_valid_algorithm():
    for x_shape, w_shape, kw in [
        ((256, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)),
        ((8, 256, 56, 56), (64, 256, 1, 1), {}),
        ((8, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1)),
        ((2, 32, 9, 9), (32, 1, 3, 3), dict(groups=32)),
    ]:
        plan = conv_mod.conv_plan(x_shape, w_shape, kw.get("stride", 1), kw.get("padding", 0), 1, kw.get("groups", 1))
        for pass_ in conv_mod.PASSES:
            assert conv_mod.select_algorithm(plan.params, pass_) in fastconv.conv_algorithms(x_shape, w_shape, pass_=pass_, **kw)


def test_explicit_invalid_algorithm_says_why(rng, monkeypatch):
    x, w, _ = make_problem(rng, 1, 2, 9, 9, 2, 5, 5)
    with pytest.raises(ValueError, match="algo"):
        fastconv.conv2d(x, w, algo="nope")
    with pytest.raises(TypeError, match="algo"):
        fastconv.conv2d(x, w, algo=3)
    monkeypatch.setitem(conv_mod.ALGORITHMS, "bogus", conv_mod.Algorithm("bogus", lambda p: "never"))
    assert "bogus" not in fastconv.conv_algorithms(x.shape, w.shape)
    with pytest.raises(ValueError, match="algo: 'bogus' cannot run"):
        fastconv.conv2d(x, w, algo="bogus")
    # every registered algorithm that is not listed for a problem refuses it with a reason
    for pass_ in conv_mod.PASSES:
        listed = fastconv.conv_algorithms(x.shape, w.shape, stride=2, dilation=2, pass_=pass_)
        for name in set(conv_mod.ALGORITHMS) - set(listed):
            with pytest.raises(ValueError, match=f"algo: '{name}' cannot run"):
                conv_mod.resolve(conv_mod.conv_plan(x.shape, w.shape, 2, 0, 2, 1), name, pass_)


def _arr(device, shape, dtype=np.float32):
    return on_device(np.zeros(shape, dtype), device)


X, Wt = (2, 4, 8, 8), (6, 4, 3, 3)  # the shapes of a valid problem; each row breaks one thing


@pytest.mark.parametrize(
    "call, exc, names",
    [
        (lambda d: fastconv.conv2d(_arr(d, (8, 8)), _arr(d, Wt)), ValueError, ["x", "4-D (N, C, H, W) or 3-D (C, H, W)", "(8, 8)"]),
        (lambda d: fastconv.conv2d(_arr(d, X[1:]), _arr(d, (6, 2, 3, 3))), ValueError, ["weight", "expected 4 input channels", "(6, 2, 3, 3)"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt[1:])), ValueError, ["weight", "3-D"]),
        (lambda d: fastconv.conv2d(_arr(d, X, WRONG_DTYPE[d]), _arr(d, Wt)), TypeError, ["x", "float64|int64"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt, WRONG_DTYPE[d])), TypeError, ["weight", "float64|int64"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, (6, 3, 3, 3))), ValueError, ["weight", "(2, 4, 8, 8)", "(6, 3, 3, 3)"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, (6, 1, 3, 3)), groups=3), ValueError, ["groups", "3"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, (5, 2, 3, 3)), groups=2), ValueError, ["groups", "5"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), bias=_arr(d, (5,))), ValueError, ["bias", "(6,)", "(5,)"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), bias=_arr(d, (6,), WRONG_DTYPE[d])), TypeError, ["bias"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), stride=0), ValueError, ["stride"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), stride=(1, -1)), ValueError, ["stride"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), dilation=0), ValueError, ["dilation"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), padding=-1), ValueError, ["padding"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), padding="full"), ValueError, ["padding"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), padding="same", stride=2), ValueError, ["padding", "stride"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), stride=1.5), TypeError, ["stride"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, (6, 4, 9, 3))), ValueError, ["weight", "(2, 4, 8, 8)", "9x3"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), dilation=5), ValueError, ["weight", "dilation"]),
        (lambda d: fastconv.conv2d(_arr(d, X), _arr(d, Wt), algo="nope"), ValueError, ["algo"]),
        (lambda d: fastconv.grad.conv2d_input((2, 4, 8), _arr(d, Wt), _arr(d, (2, 6, 6, 6))), ValueError, ["input_shape"]),
        (lambda d: fastconv.grad.conv2d_input(X, _arr(d, Wt), _arr(d, (2, 6, 5, 6))), ValueError, ["grad_output", "(2, 6, 6, 6)", "(2, 6, 5, 6)"]),
        (lambda d: fastconv.grad.conv2d_input(X, _arr(d, Wt), _arr(d, (2, 6, 6, 6), WRONG_DTYPE[d])), TypeError, ["grad_output"]),
        (lambda d: fastconv.grad.conv2d_weight(_arr(d, X), (6, 4, 3), _arr(d, (2, 6, 6, 6))), ValueError, ["weight_shape"]),
        (lambda d: fastconv.grad.conv2d_weight(_arr(d, X), Wt, _arr(d, (2, 6, 6, 6), WRONG_DTYPE[d])), TypeError, ["grad_output"]),
        (lambda d: fastconv.grad.conv2d_weight(_arr(d, X), Wt, _arr(d, (2, 6, 6, 5))), ValueError, ["grad_output", "(2, 6, 6, 6)"]),
        (lambda d: fastconv.conv_algorithms(X, Wt, pass_="backward", device=d), ValueError, ["pass_"]),
        (lambda d: fastconv.conv_algorithms((2**40, 2**20, 8, 8), (6, 2**20, 3, 3), device=d), ValueError, ["overflow"]),
    ],
)
def test_bad_input(device, call, exc, names):
    with pytest.raises(exc) as info:
        call(device)
    for name in names:
        assert re.search(name if "|" in name else re.escape(name), str(info.value)), (name, str(info.value))


def test_a_list_is_refused():
    with pytest.raises(TypeError, match="x"):
        fastconv.conv2d(np.zeros((2, 4, 8, 8), np.float32).tolist(), np.zeros((6, 4, 3, 3), np.float32))


# ---- auto on small images: kernel taps that only see padding are dropped -------------------------------


@settings(max_examples=60, deadline=None)
@example(N=2, C=3, K=2, H=1, W=1, R=1, S=1, stride=1, pad=1, dil=1)  # 1x1 on 1x1, padded: 3x3 output
@example(N=2, C=3, K=2, H=1, W=1, R=3, S=3, stride=1, pad=1, dil=1)  # the centre tap only
@given(N=st.integers(1, 3), C=st.integers(1, 6), K=st.integers(1, 6), H=st.integers(1, 4), W=st.integers(1, 4),
       R=st.sampled_from([1, 2, 3, 5, 7]), S=st.sampled_from([1, 3, 5]), stride=st.integers(1, 3),
       pad=st.integers(0, 3), dil=st.integers(1, 2))
def test_auto_on_images_smaller_than_the_kernel_reach(N, C, K, H, W, R, S, stride, pad, dil):
    """All three passes of "auto" against the float64 definition where the kernel reaches past the
    image (1x1 to 4x4 images, kernels up to 7x7, padding up to 3): there "auto" drops the taps that
    only ever read padding and, for 1x1 images left with a 1x1 kernel, runs one GEMM over the batch.
    Relative error bound 1e-5."""
    P, Q = out_size(H, R, stride, pad, dil), out_size(W, S, stride, pad, dil)
    assume(P >= 1 and Q >= 1)
    rng = np.random.default_rng(N * 1000 + C * 100 + H * 10 + W)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, R, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    dy = rng.standard_normal((N, K, P, Q)).astype(np.float32)
    kw = dict(stride=stride, padding=pad, dilation=dil)
    ref_kw = dict(stride=(stride, stride), padding=(pad, pad), dilation=(dil, dil))
    assert relative_error(fastconv.conv2d(x, w, b, **kw), conv2d_ref(x, w, b, **ref_kw)) <= 1e-5
    assert relative_error(fastconv.grad.conv2d_input(x.shape, w, dy, **kw), conv2d_input_grad_ref(x.shape, w, dy, **ref_kw)) <= 1e-5
    assert relative_error(fastconv.grad.conv2d_weight(x, w.shape, dy, **kw), conv2d_weight_grad_ref(x, w.shape, dy, **ref_kw)) <= 1e-5


def test_crop_of_a_3x3_kernel_on_a_1x1_image_is_its_centre():
    from fastconv._geometry import dead_tap_crop as _crop

    assert _crop(1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1) == (slice(1, 2), slice(1, 2), (0, 0))
    assert _crop(8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8) is None  # every tap sees the image
    calls = []
    real = fastconv._core.conv2d_forward
    try:
        fastconv._core.conv2d_forward = lambda *a: (calls.append(a[0]), real(*a))
        x = np.ones((4, 8, 1, 1), np.float32)
        y = fastconv.conv2d(x, np.ones((5, 8, 3, 3), np.float32), padding=1)
    finally:
        fastconv._core.conv2d_forward = real
    assert calls == [] and np.array_equal(y, np.full((4, 5, 1, 1), 8.0, np.float32))  # one GEMM, no conv kernel


@pytest.mark.parametrize(
    "x_shape, w_shape, kw",
    [
        ((4, 8, 1, 1), (5, 8, 3, 3), dict(padding=1)),  # centre tap, one GEMM over the batch
        ((2, 16, 2, 2), (16, 16, 3, 3), dict(stride=2, padding=1)),  # 2x2 of the 3x3 taps, a conv kernel
        ((2, 16, 8, 8), (16, 16, 3, 3), dict(padding=1)),  # nothing to crop
        ((3, 6, 1, 1), (4, 6, 1, 1), {}),  # a 1x1 kernel on 1x1 maps
        ((2, 8, 1, 5), (8, 8, 5, 5), dict(padding=2)),  # one row of taps
        ((0, 8, 1, 1), (5, 8, 3, 3), dict(padding=1)),  # an empty batch is no GEMM
    ],
)
def test_auto_forward_is_what_conv2d_runs(x_shape, w_shape, kw, monkeypatch):
    """conv.auto_forward (what `summary` reports) names the kernel, and the kernel size after dropping
    dead taps, that conv2d(algo="auto") then runs: "gemm" exactly when it calls sgemm and no kernel."""
    ran = []
    real_gemm, real_forward = fastconv._core.sgemm, fastconv._core.conv2d_forward
    monkeypatch.setattr(fastconv._core, "sgemm", lambda *a: (ran.append(("gemm", None)), real_gemm(*a))[1])
    monkeypatch.setattr(fastconv._core, "conv2d_forward",
                        lambda kernel, p, *a: (ran.append((kernel, (p.R, p.S))), real_forward(kernel, p, *a))[1])
    algo, params = conv_mod.auto_forward(x_shape, w_shape, **kw)
    rng = np.random.default_rng(0)
    fastconv.conv2d(rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32), **kw)
    if algo == "gemm":
        assert ran == [("gemm", None)] and (params.R, params.S) == (1, 1)
    elif x_shape[0] == 0:
        assert ran == []
    else:
        assert ran == [(conv_mod.ALGORITHMS[algo].kernel(params), (params.R, params.S))]


def test_gemm_algorithm_runs_every_pass_of_a_whole_batch_problem(rng):
    """The registered "gemm" algorithm: listed only for 1x1 kernels on 1x1 maps, all three passes
    within its registry bound, and refused with a reason elsewhere."""
    x, w, b = make_problem(rng, 5, 7, 1, 1, 3, 1, 1)
    assert "gemm" in fastconv.conv_algorithms(x.shape, w.shape)
    assert check_every_algorithm(rng, 5, 7, 1, 1, 3, 1, 1) >= {("gemm", "forward"), ("gemm", "input"), ("gemm", "weight")}
    assert "gemm" not in fastconv.conv_algorithms((5, 7, 2, 2), w.shape)
    assert "gemm" not in fastconv.conv_algorithms(x.shape, (3, 7, 1, 1), padding=1)
    with pytest.raises(ValueError, match="algo: 'gemm' cannot run .*1x1 maps"):
        fastconv.conv2d(np.zeros((1, 2, 3, 3), np.float32), np.zeros((2, 2, 1, 1), np.float32), algo="gemm")


def test_registry_answers_per_device():
    assert fastconv.conv_algorithms((2, 8, 9, 9), (8, 8, 3, 3), padding=1, device="cuda") == ["direct", "im2col"]
    assert "winograd" in fastconv.conv_algorithms((2, 8, 9, 9), (8, 8, 3, 3), padding=1, device="cpu")
    with pytest.raises(ValueError, match="device"):
        fastconv.conv_algorithms((2, 8, 9, 9), (8, 8, 3, 3), device="tpu")
    params = conv_mod.conv_plan((2, 8, 9, 9), (8, 8, 3, 3), 1, 1, 1, 1).params
    with pytest.raises(ValueError, match="algo: 'fft' cannot run .*on cuda.*has no cuda kernel"):
        conv_mod.kernel_for(params, "fft", "forward", "cuda")


def test_tolerance_check_is_value_scaled_and_can_fail():
    from fastconv.bench.reference import tolerance_ratio

    ref = np.array([[100.0, -1.0], [0.0, 3.0]])
    ok = ref + 0.9e-5 * 100.0  # the largest value's rounding, everywhere: within atol
    assert tolerance_ratio(ok, ref, 1e-5) <= 1.0
    assert_close(ok.astype(np.float32), ref, 1e-5)
    bad = ref.copy()
    bad[1, 0] = 3e-3  # 3x the absolute tolerance (1e-3) next to the zero
    assert 2.9 < tolerance_ratio(bad, ref, 1e-5) < 3.1
    with pytest.raises(AssertionError, match=r"worst at \(1, 0\)"):
        assert_close(bad, ref, 1e-5)
    with pytest.raises(AssertionError):
        assert_close(np.where(ref == 0, np.nan, ref), ref, 1e-5)


def test_selection_table_is_select_algorithm():
    from fastconv.bench import report, suite

    shapes = suite.load_shapes()
    rows = conv_mod.selection_table([(s.name, s.params()) for s in shapes])
    for shape, row in zip(shapes, rows):
        p = shape.params()
        for pass_ in conv_mod.PASSES:
            assert row[pass_] == conv_mod.ALGORITHMS[conv_mod.select_algorithm(p, pass_)].kernel(p)
    lines = report.rules_lines(shapes)
    assert len(lines) == 2 + len(shapes) and lines[0].startswith("| shape |")
    assert "| vgg_3x3 |" in "\n".join(lines)


@pytest.mark.parametrize("case", [(2, 3, 23, 29, 5, 11, 11, 4, 2), (2, 6, 15, 15, 9, 3, 3, 2, 1), (1, 4, 9, 40, 7, 1, 1, 2, 0)])
def test_forward_kernels_overwrite_nan_outputs(rng, case):
    """Every compiled forward kernel writes every output without reading it: an output buffer full
    of NaN comes back finite and right."""
    N, C, H, W, K, R, S, stride, pad = case
    x, w, b = make_problem(rng, N, C, H, W, K, R, S)
    params = conv_mod.conv_plan(x.shape, w.shape, stride, pad, 1, 1).params
    ref = conv2d_ref(x, w, b, stride=(stride, stride), padding=(pad, pad))
    for name, (has_forward, _, _) in sorted(fastconv._core.conv2d_kernels().items()):
        if not has_forward or conv_mod.ALGORITHMS[name].check(params) is not None:
            continue
        out = np.full(ref.shape, np.nan, dtype=np.float32)
        fastconv._core.conv2d_forward(name, params, x, w, b, out)
        assert np.isfinite(out).all(), name
        assert_close(out, ref, conv_bound(name, params, "forward", "cpu"), what=name)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 9), st.integers(1, 9), st.integers(1, 20),
       st.integers(1, 6), st.integers(1, 5), st.integers(1, 3), st.integers(0, 5), st.integers(1, 2), st.integers(0, 2**31 - 1))
@example(1, 32, 7, 7, 20, 3, 3, 1, 1, 1, 0)  # 7x7 maps, 3x3 pad 1: the first and last rows' tiles skip a kernel row
@example(2, 40, 7, 7, 17, 5, 5, 1, 2, 1, 1)  # 5x5 pad 2: tiles spanning rows 0-1 skip one row, row 0 alone two
@example(1, 8, 3, 2, 5, 6, 3, 1, 4, 1, 2)  # kernel taller than the padded rows' reach: tiles over several rows
@example(1, 5, 4, 4, 3, 3, 3, 3, 5, 2, 3)  # stride 3 and dilation 2 over padding wider than the map
def test_implicit_gemm_forward_skips_only_padding_rows(N, C, H, W, K, R, S, stride, pad, dil, seed):
    """Where tiles skip the kernel rows that read only padding (ImplicitGemmForwardPlan.by_rows: 5%+
    of the steps), the forward still equals the float64 reference: small maps, padding up to 5,
    tiles spanning several output rows, stride, dilation."""
    rng = np.random.default_rng(seed)
    assume((H + 2 * pad - dil * (R - 1) - 1) // stride >= 0 and (W + 2 * pad - dil * (S - 1) - 1) // stride >= 0)
    x, w, b = make_problem(rng, N, C, H, W, K, R, S)
    kw = dict(stride=stride, padding=pad, dilation=dil)
    ref = conv2d_ref(x, w, b, stride=(stride, stride), padding=(pad, pad), dilation=(dil, dil))
    y = fastconv.conv2d(x, w, b, algo="implicit_gemm", **kw)
    params = conv_mod.conv_plan(x.shape, w.shape, stride, pad, dil, 1).params
    assert_close(y, ref, conv_bound("implicit_gemm", params, "forward", "cpu"), what="implicit_gemm")


@pytest.mark.parametrize("N, C, K, groups", [(1, 64, 40, 2), (3, 12, 36, 3), (1, 832, 20, 1)])
def test_implicit_gemm_forward_skips_padding_rows_per_group(rng, N, C, K, groups):
    """The row order with groups and bias, several images (weights packed up front) and one image
    with 832 channels (weights packed as used, 5x5 on 7x7: chunks of 6 channels, 150 steps)."""
    R = 5 if C == 832 else 3
    x = rng.standard_normal((N, C, 7, 7), dtype=np.float32)
    w = rng.standard_normal((K, C // groups, R, R), dtype=np.float32)
    b = rng.standard_normal(K, dtype=np.float32)
    pad = R // 2
    params = conv_mod.conv_plan(x.shape, w.shape, 1, pad, 1, groups).params
    assert fastconv._core.implicit_gemm_forward_plan(params, N, 2)["by_rows"]
    ref = conv2d_ref(x, w, b, padding=(pad, pad), groups=groups)
    y = fastconv.conv2d(x, w, b, padding=pad, groups=groups, algo="implicit_gemm")
    assert_close(y, ref, conv_bound("implicit_gemm", params, "forward", "cpu"), what="implicit_gemm")


def test_implicit_gemm_input_gradient_phases_of_uneven_blocks(rng):
    """11x11 stride 4 on 37x41: the 16 stride phases hold 90 to 110 pixels, and the phase with the
    most (110: two blocks of 60) does not have the largest block (90: one of 90). The scratch sized
    from the largest phase was overrun (heap corruption) before it was sized from the largest block."""
    x_shape, w = (2, 3, 37, 41), rng.standard_normal((8, 3, 11, 11), dtype=np.float32)
    dy = rng.standard_normal((2, 8, 8, 9), dtype=np.float32)
    dx = fastconv.grad.conv2d_input(x_shape, w, dy, stride=4, padding=2, algo="implicit_gemm")
    assert relative_error(dx, conv2d_input_grad_ref(x_shape, w, dy, stride=(4, 4), padding=(2, 2))) <= 1e-5


def test_implicit_gemm_input_gradient_rejects_bad_input(rng):
    """The input gradient's checks come before its kernel: a grad_output of the wrong shape or dtype
    is refused by name, and the operands are left as they were."""
    w = rng.standard_normal((6, 4, 3, 3), dtype=np.float32)
    dy = rng.standard_normal((2, 6, 4, 4), dtype=np.float32)
    w0, dy0 = w.copy(), dy.copy()
    with pytest.raises(ValueError, match="grad_output"):
        fastconv.grad.conv2d_input((2, 4, 8, 8), w, dy[:, :, :3], stride=2, padding=1, algo="implicit_gemm")
    with pytest.raises(TypeError, match="grad_output"):
        fastconv.grad.conv2d_input((2, 4, 8, 8), w, dy.astype(np.int32), stride=2, padding=1, algo="implicit_gemm")
    with pytest.raises(ValueError, match="input_shape"):
        fastconv.grad.conv2d_input((2, 4, 8), w, dy, stride=2, padding=1, algo="implicit_gemm")
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(dy, dy0)
