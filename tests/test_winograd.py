"""Winograd F(2x2,3x3) and F(4x4,3x3) against the float64 reference.

Error bounds (relative_error = max|a - e| / max|e|): 1e-5 for F(2x2), 5e-4 for F(4x4). Measured on
inputs of realistic scale (x ~ N(0, 1), w ~ N(0, 1/(9C))), forward and input gradient alike:
F(2x2) 1.2e-7 (C = 16..64 on small images) to 7e-7 ((2, 256, 14, 14), K = 256); F(4x4) 2e-6 to
1.1e-5 on the same shapes (6e-6 on (2, 64, 56, 56)): its transforms have entries up to 8 and 1/24,
so rounding grows ~15x over F(2x2) and with the channel count; still 45x inside the bound.
Weight gradient (x, dy ~ N(0, 1); sums over all tiles of the batch): F(2x2) 1e-7 to 1.1e-6, F(4x4)
2e-6 to 8.1e-6 up to (32, 64, 56, 56) and (32, 16, 112, 112) with padding 1 (im2col: 5-7e-7).
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _core
from fastconv import conv as conv_mod
from reference import conv2d_input_grad_ref, conv2d_ref, conv2d_weight_grad_ref, relative_error
from toolkit import conv_bound

ALGOS = ["winograd_f2", "winograd_f4"]
BOUND = {algo: conv_bound(algo) for algo in ALGOS}  # the registry's


def _problem(rng, N, C, H, W, K, pad):
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(K, dtype=np.float32)
    return x, w, b, _core.Conv2dParams(N, C, H, W, K, 3, 3, pad_h=pad, pad_w=pad)


def _check_forward(algo, rng, N, C, H, W, K, pad, bias=True):
    x, w, b, p = _problem(rng, N, C, H, W, K, pad)
    b = b if bias else None
    x0, w0 = x.copy(), w.copy()
    y = np.full((N, K, p.P, p.Q), np.nan, np.float32)
    _core.conv2d_forward(algo, p, x, w, b, y)
    assert np.array_equal(x, x0) and np.array_equal(w, w0)
    err = relative_error(y, conv2d_ref(x, w, b, padding=(pad, pad)))
    assert err <= BOUND[algo], (algo, (N, C, H, W, K, pad), err)


def _check_input_grad(algo, rng, N, C, H, W, K, pad):
    x, w, _, p = _problem(rng, N, C, H, W, K, pad)
    dy = rng.standard_normal((N, K, p.P, p.Q), dtype=np.float32)
    dx = np.full(x.shape, np.nan, np.float32)
    _core.conv2d_backward_input(algo, p, dy, w, dx)
    err = relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, padding=(pad, pad)))
    assert err <= BOUND[algo], (algo, (N, C, H, W, K, pad), err)


def _check_weight_grad(algo, rng, N, C, H, W, K, pad):
    x, _, _, p = _problem(rng, N, C, H, W, K, pad)
    dy = rng.standard_normal((N, K, p.P, p.Q), dtype=np.float32)
    x0, dy0 = x.copy(), dy.copy()
    dw = np.full((K, C, 3, 3), np.nan, np.float32)
    _core.conv2d_backward_weight(algo, p, x, dy, dw)
    assert np.array_equal(x, x0) and np.array_equal(dy, dy0)
    err = relative_error(dw, conv2d_weight_grad_ref(x, (K, C, 3, 3), dy, padding=(pad, pad)))
    assert err <= BOUND[algo], (algo, (N, C, H, W, K, pad), err)


# Image sizes not a multiple of either tile, primes, C = 1, K = 1, the smallest image (3x3, and 1x1
# with padding 1), padding 0..3 (padding > 2 makes the input gradient's own padding negative).
SHAPES = [
    (1, 1, 3, 3, 1, 0),
    (1, 1, 1, 1, 1, 1),
    (2, 3, 7, 9, 5, 1),
    (1, 1, 13, 11, 1, 2),
    (2, 4, 11, 6, 3, 2),
    (1, 2, 5, 5, 2, 3),
    (3, 17, 13, 10, 9, 0),
    (2, 64, 20, 20, 32, 1),
    (1, 130, 6, 7, 67, 1),
    # >= 128 x 128 channels and few tiles: the three-phase schedule at 1 thread (all tiles at once)
    (2, 128, 6, 7, 129, 1),
    (1, 160, 5, 5, 130, 2),
]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_fixed_shapes(algo, shape, rng):
    _check_forward(algo, rng, *shape)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", SHAPES)
def test_input_grad_fixed_shapes(algo, shape, rng):
    _check_input_grad(algo, rng, *shape)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", SHAPES)
def test_weight_grad_fixed_shapes(algo, shape, rng):
    _check_weight_grad(algo, rng, *shape)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize(
    "shape",
    [
        (1, 8, 64, 60, 8, 1),  # F(4x4) (240 tiles) runs shared, F(2x2) (960 tiles) private
        (5, 8, 64, 64, 16, 1),  # private, slices not a multiple of the block
        (2, 256, 30, 29, 256, 1),  # 9.4 MB of sums (F(4x4)): shared, tiles in two chunks
        (3, 5, 40, 41, 7, 0),  # rectangular, padding 0; F(2x2) private
    ],
)
def test_weight_grad_schedules(algo, shape, rng, threads):
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        _check_weight_grad(algo, rng, *shape)


@pytest.mark.parametrize("algo", ALGOS)
def test_weight_grad_thread_counts_agree(algo, rng, threads):
    """Both schedules fix their partial sums independently of the thread count: bitwise equal."""
    for shape in [(4, 8, 40, 40, 8), (2, 64, 12, 12, 64)]:  # private, shared
        x, _, _, p = _problem(rng, *shape, 1)
        dy = rng.standard_normal((shape[0], shape[4], p.P, p.Q), dtype=np.float32)
        outs = []
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            dw = np.full((shape[4], shape[1], 3, 3), np.nan, np.float32)
            _core.conv2d_backward_weight(algo, p, x, dy, dw)
            outs.append(dw)
        ref = conv2d_weight_grad_ref(x, (shape[4], shape[1], 3, 3), dy, padding=(1, 1))
        assert relative_error(outs[0], ref) <= BOUND[algo]
        assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2]), shape


@pytest.mark.parametrize("algo", ALGOS)
def test_forward_without_bias(algo, rng):
    _check_forward(algo, rng, 2, 5, 9, 8, 4, 1, bias=False)


@pytest.mark.parametrize("algo", ALGOS)
def test_realistic_scale_vgg_like(algo, rng):
    """A larger image and more channels: many tile blocks, so every thread takes several."""
    _check_forward(algo, rng, 2, 32, 30, 29, 24, 1)
    _check_input_grad(algo, rng, 2, 32, 30, 29, 24, 1)
    _check_weight_grad(algo, rng, 2, 32, 30, 29, 24, 1)


shape_strategy = st.tuples(
    st.integers(1, 3),  # N
    st.integers(1, 20),  # C
    st.integers(1, 19),  # H
    st.integers(1, 19),  # W
    st.integers(1, 20),  # K
    st.integers(0, 2),  # padding
).filter(lambda s: s[2] + 2 * s[5] >= 3 and s[3] + 2 * s[5] >= 3)


@settings(max_examples=25, deadline=None)
@given(shape=shape_strategy, algo=st.sampled_from(ALGOS), seed=st.integers(0, 2**31))
def test_random_shapes(shape, algo, seed):
    rng = np.random.default_rng(seed)
    _check_forward(algo, rng, *shape)
    _check_input_grad(algo, rng, *shape)
    _check_weight_grad(algo, rng, *shape)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", [(3, 9, 17, 15, 7), (2, 128, 9, 9, 128)], ids=["blocked", "three-phase"])
def test_thread_counts_agree(algo, shape, rng, threads):
    x, w, b, p = _problem(rng, *shape, 1)
    outs = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        y = np.full((shape[0], shape[4], p.P, p.Q), np.nan, np.float32)
        _core.conv2d_forward(algo, p, x, w, b, y)
        outs.append(y)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize(
    "kwargs",
    [dict(R=5, S=5), dict(stride_h=2, stride_w=2), dict(dil_h=2, dil_w=2), dict(groups=2)],
    ids=["5x5", "stride2", "dilation2", "groups2"],
)
def test_kernel_rejects_unsupported(algo, kwargs):
    base = dict(N=1, C=4, H=12, W=12, K=4, R=3, S=3)
    base.update(kwargs)
    p = _core.Conv2dParams(**base)
    x = np.zeros((1, 4, 12, 12), np.float32)
    w = np.zeros((4, 4 // p.groups, p.R, p.S), np.float32)
    y = np.zeros((1, 4, p.P, p.Q), np.float32)
    with pytest.raises(ValueError, match="3x3 kernel, stride 1, dilation 1 and groups 1"):
        _core.conv2d_forward(algo, p, x, w, None, y)


def test_empty_batch(rng):
    p = _core.Conv2dParams(0, 3, 5, 5, 2, 3, 3)
    y = np.zeros((0, 2, 3, 3), np.float32)
    for algo in ALGOS:
        _core.conv2d_forward(algo, p, np.zeros((0, 3, 5, 5), np.float32), np.ones((2, 3, 3, 3), np.float32), None, y)
        dw = np.full((2, 3, 3, 3), np.nan, np.float32)
        _core.conv2d_backward_weight(algo, p, np.zeros((0, 3, 5, 5), np.float32), y, dw)
        assert np.array_equal(dw, np.zeros_like(dw))  # a sum over no images


@pytest.mark.parametrize("algo", ALGOS)
def test_kernel_cache_sees_in_place_weight_updates(algo, rng):
    """Transformed kernels are cached by content: updating the weights in place (as an optimizer
    does) must never reuse the stale transform, in either pass."""
    x, w, b, p = _problem(rng, 2, 6, 9, 9, 5, 1)
    dy = rng.standard_normal((2, 5, p.P, p.Q), dtype=np.float32)
    for step in range(3):
        y = np.full((2, 5, p.P, p.Q), np.nan, np.float32)
        _core.conv2d_forward(algo, p, x, w, b, y)
        assert relative_error(y, conv2d_ref(x, w, b, padding=(1, 1))) <= BOUND[algo]
        dx = np.full(x.shape, np.nan, np.float32)
        _core.conv2d_backward_input(algo, p, dy, w, dx)
        assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, padding=(1, 1))) <= BOUND[algo]
        w[step % 5, 0, 1, 1] += 1.0  # one element changes, same pointer
    y2 = np.full((2, 5, p.P, p.Q), np.nan, np.float32)
    _core.conv2d_forward(algo, p, x, w.copy(), b, y2)  # same content, another pointer
    assert relative_error(y2, conv2d_ref(x, w, b, padding=(1, 1))) <= BOUND[algo]


# ---- Python API: registry, validity, autotune ------------------------------------------------

WINOGRAD = {"winograd", "winograd_f2", "winograd_f4"}


def test_conv_algorithms_lists_winograd_only_where_valid():
    x_shape = (2, 4, 12, 12)
    for pass_ in conv_mod.PASSES:
        assert WINOGRAD <= set(fastconv.conv_algorithms(x_shape, (6, 4, 3, 3), padding=1, pass_=pass_))
    for w_shape, kw in [
        ((6, 4, 5, 5), {}),
        ((6, 4, 3, 3), dict(stride=2)),
        ((6, 4, 3, 3), dict(dilation=2)),
        ((6, 2, 3, 3), dict(groups=2)),
        ((6, 4, 3, 1), {}),
    ]:
        for pass_ in conv_mod.PASSES:
            assert not WINOGRAD & set(fastconv.conv_algorithms(x_shape, w_shape, pass_=pass_, **kw)), (w_shape, kw)


def test_explicit_winograd_refuses_with_reason(rng):
    x = rng.standard_normal((1, 4, 9, 9), dtype=np.float32)
    with pytest.raises(ValueError, match="'winograd_f4' cannot run.*3x3 kernel, got 5x5"):
        fastconv.conv2d(x, np.ones((2, 4, 5, 5), np.float32), algo="winograd_f4")
    with pytest.raises(ValueError, match="'winograd' cannot run.*stride 1"):
        fastconv.conv2d(x, np.ones((2, 4, 3, 3), np.float32), stride=2, algo="winograd")
    with pytest.raises(ValueError, match="'winograd' cannot run.*dilation 1"):
        fastconv.grad.conv2d_weight(x, (2, 4, 3, 3), np.ones((1, 2, 5, 5), np.float32), dilation=2, algo="winograd")


@pytest.mark.parametrize("algo", sorted(WINOGRAD))
def test_public_api_matches_reference(algo, rng):
    x, w, b, _ = _problem(rng, 2, 5, 10, 7, 3, 1)
    bound = 5e-4 if algo != "winograd_f2" else 1e-5
    y = fastconv.conv2d(x, w, b, padding="same", algo=algo)
    assert relative_error(y, conv2d_ref(x, w, b, padding=(1, 1))) <= bound
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = fastconv.grad.conv2d_input(x.shape, w, dy, padding=1, algo=algo)
    assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, padding=(1, 1))) <= bound
    dw = fastconv.grad.conv2d_weight(x, w.shape, dy, padding=1, algo=algo)
    assert relative_error(dw, conv2d_weight_grad_ref(x, w.shape, dy, padding=(1, 1))) <= bound


def test_winograd_family_picks_a_variant():
    for x_shape, K in [((8, 64, 56, 56), 64), ((8, 256, 14, 14), 256), ((1, 8, 2, 2), 8), ((8, 512, 7, 7), 512)]:
        plan = conv_mod.conv_plan(x_shape, (K, x_shape[1], 3, 3), 1, 1, 1, 1)
        assert conv_mod.ALGORITHMS["winograd"].kernel(plan.params) in ("winograd_f2", "winograd_f4")


@pytest.mark.parametrize(
    "x_shape, K, kernel",
    [
        ((8, 64, 56, 56), 64, "winograd_f4"),  # vgg_3x3
        ((8, 256, 14, 14), 256, "winograd_f4"),  # resnet_3x3
        ((1, 256, 14, 14), 256, "winograd_f2"),  # 16 F(4x4) tiles for a 9.4 MB transformed sum
        ((1, 512, 7, 7), 512, "im2col"),  # 16 F(2x2) tiles for 16 MiB of sums
        ((32, 32, 8, 8), 16, "winograd_f4"),
        ((32, 16, 16, 16), 16, "direct"),  # at most 16 channels each side: direct
        ((8, 8, 28, 28), 64, None),  # under 16 input channels: the rules before Winograd
    ],
)
def test_weight_pass_auto_picks(x_shape, K, kernel):
    """The weight-pass choices 2026-12-04_epyc2c_winograd_weight.md justifies (None: not Winograd)."""
    plan = conv_mod.conv_plan(x_shape, (K, x_shape[1], 3, 3), 1, 1, 1, 1)
    pick = conv_mod.select_algorithm(plan.params, "weight")
    got = conv_mod.ALGORITHMS[pick].kernel(plan.params)
    if kernel is None:
        assert pick != "winograd"
    else:
        assert got == kernel


def test_auto_heuristic_uses_winograd_on_vgg_like_layers():
    plan = conv_mod.conv_plan((8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1)
    assert conv_mod.select_algorithm(plan.params, "forward") == "winograd_f4"  # the cost model names the kernel
    assert conv_mod.select_algorithm(plan.params, "input") == "winograd"
    assert conv_mod.select_algorithm(plan.params, "weight") == "winograd"


@pytest.mark.parametrize(
    "x_shape, K, kernel",
    [
        ((8, 64, 56, 56), 64, "winograd_f4"),  # vgg_3x3
        ((8, 256, 14, 14), 256, "winograd_f4"),  # resnet_3x3
        ((15, 256, 4, 4), 256, "winograd_f2"),  # 9.4 MB F(4x4) kernel for 15 tiles
        ((1, 512, 7, 7), 512, None),  # 16 MiB F(2x2) kernel for 16 tiles
        ((8, 8, 56, 56), 8, None),  # few channels, large image
        ((8, 3, 224, 224), 64, None),  # first layer: C < 8
    ],
)
def test_auto_heuristic_follows_the_sweep(x_shape, K, kernel):
    """The input-gradient choices benchmarks/results/2026-11-25_epyc2c_winograd.md (sweep) justifies
    (None: not Winograd, and which other algorithm runs is the cost model's or the direct/im2col
    rules' business: on 512 channels of 7x7 implicit_gemm, im2col and F(2x2) measured within 5% of
    each other, 2026-12-05_epyc2c_input_grad.md). The forward pass follows the cost model
    (tests/test_conv_cost.py)."""
    plan = conv_mod.conv_plan(x_shape, (K, x_shape[1], 3, 3), 1, 1, 1, 1)
    name = conv_mod.select_algorithm(plan.params, "input")
    if kernel is None:
        assert name not in WINOGRAD
    else:
        assert conv_mod.ALGORITHMS[name].kernel(plan.params) == kernel


@pytest.fixture
def autotune_on():
    saved = fastconv.get_autotune()
    fastconv.clear_autotune()
    fastconv.set_autotune(True)
    yield
    fastconv.set_autotune(saved)
    fastconv.clear_autotune()


def test_autotune_fills_cache_with_valid_winners(autotune_on, rng, tmp_path):
    x, w, b, _ = _problem(rng, 2, 8, 12, 12, 8, 1)
    assert fastconv.autotune_cache() == {}
    y = fastconv.conv2d(x, w, b, padding=1)
    assert relative_error(y, conv2d_ref(x, w, b, padding=(1, 1))) <= 5e-4
    dx = fastconv.grad.conv2d_input(x.shape, w, y, padding=1)
    assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, y, padding=(1, 1))) <= 5e-4
    dw = fastconv.grad.conv2d_weight(x, w.shape, y, padding=1)
    cache = fastconv.autotune_cache()
    assert len(cache) == 3
    for key, winner in cache.items():
        pass_ = key.split()[0]
        assert winner in fastconv.conv_algorithms(x.shape, w.shape, padding=1, pass_=pass_)
        assert winner != "winograd"  # the family is raced through its kernels
        assert f"threads={fastconv.get_num_threads()}" in key and "x=(2, 8, 12, 12)" in key
    assert dw.shape == w.shape
    # a second call is served from the cache, and another shape adds an entry
    fastconv.conv2d(x, w, b, padding=1)
    assert fastconv.autotune_cache() == cache
    fastconv.conv2d(x[:1], w, b, padding=1)
    assert len(fastconv.autotune_cache()) == 4

    path = tmp_path / "tune.json"
    fastconv.save_autotune(path)
    fastconv.clear_autotune()
    assert fastconv.autotune_cache() == {}
    fastconv.load_autotune(str(path))
    assert len(fastconv.autotune_cache()) == 4 and cache.items() <= fastconv.autotune_cache().items()


def _load_winner_and_record_calls(tmp_path, monkeypatch, params, algo):
    """Load an autotune file naming `algo` for the forward pass of `params`; return (key, the list
    that collects the kernel names conv2d_forward is called with from now on)."""
    key = fastconv.autotune.problem_key(params, "forward")
    path = tmp_path / "tune.json"
    path.write_text(json.dumps({"format": "fastconv-autotune-1", "entries": {key: algo}}))
    fastconv.load_autotune(path)
    calls = []
    real = _core.conv2d_forward
    monkeypatch.setattr(_core, "conv2d_forward", lambda name, *a: (calls.append(name), real(name, *a)))
    return key, calls


def test_autotune_uses_loaded_winner(autotune_on, rng, tmp_path, monkeypatch):
    """A loaded entry is used as is: nothing is timed again."""
    x, w, b, _ = _problem(rng, 1, 4, 8, 8, 4, 1)
    plan = conv_mod.conv_plan(x.shape, w.shape, 1, 1, 1, 1)
    _, calls = _load_winner_and_record_calls(tmp_path, monkeypatch, plan.params, "winograd_f2")
    fastconv.conv2d(x, w, b, padding=1)
    assert calls == ["winograd_f2"]


def test_autotune_reraces_loaded_winner_invalid_for_its_problem(autotune_on, rng, tmp_path, monkeypatch):
    """A hand-edited file naming an algorithm that cannot run the problem (Winograd at stride 2)
    is not trusted: the problem is raced again and the entry replaced by a valid winner."""
    x, w, b, _ = _problem(rng, 1, 4, 9, 9, 4, 1)
    plan = conv_mod.conv_plan(x.shape, w.shape, 2, 1, 1, 1)
    key, calls = _load_winner_and_record_calls(tmp_path, monkeypatch, plan.params, "winograd_f2")
    out = fastconv.conv2d(x, w, b, stride=2, padding=1)
    assert "winograd_f2" not in calls and len(set(calls)) >= 2
    assert fastconv.autotune_cache()[key] in conv_mod.tunable(plan.params, "forward")
    np.testing.assert_allclose(out, fastconv.conv2d(x, w, b, stride=2, padding=1, algo="direct"), rtol=1e-4, atol=1e-4)


def test_load_autotune_rejects_bad_files(autotune_on, tmp_path):
    bad = [
        ("not json", "not JSON"),
        (json.dumps([1, 2]), "not a fastconv autotune file"),
        (json.dumps({"format": "fastconv-autotune-1", "entries": {"k": "magic"}}), "unknown algorithm 'magic'"),
        (json.dumps({"format": "fastconv-autotune-1", "entries": {"k": "winograd"}}), "unknown algorithm"),
    ]
    for text, message in bad:
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            fastconv.load_autotune(path)
    assert fastconv.autotune_cache() == {}
    with pytest.raises(TypeError, match="enabled"):
        fastconv.set_autotune(1)


def test_autotune_off_uses_heuristic(rng):
    assert not fastconv.get_autotune()
    x, w, b, _ = _problem(rng, 1, 4, 8, 8, 4, 1)
    before = fastconv.autotune_cache()
    fastconv.conv2d(x, w, b, padding=1)
    assert fastconv.autotune_cache() == before


@pytest.mark.parametrize("algo", ALGOS)
def test_three_phase_schedule_single_thread(algo, rng, threads):
    """At 1 thread, >= 128 x 128 channels with few tiles take the all-tiles-at-once schedule."""
    fastconv.set_num_threads(1)
    _check_forward(algo, rng, 2, 128, 6, 7, 129, 1)
    _check_input_grad(algo, rng, 1, 160, 5, 5, 130, 2)
