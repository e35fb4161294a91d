"""Winograd at stride 2 (winograd_s2: a 3x3 stride-2 kernel split by tap parity into 2x2, 2x1, 1x2
and 1x1 kernels over the input's parity phases, the 2-tap axes by F(2, 2)), forward and input
gradient, against the float64 reference.

Error bound: the registry's 1e-4 (relative_error = max|a - e| / max|e|). The transforms only add
and subtract, but the products are of sums of inputs, so the error is relative to those: measured
1e-7 to 3e-7 with several channels and outputs (x ~ N(0, 1), w ~ N(0, 1/(9C))), 1.8e-5 with one
channel and one output (nothing larger to measure it against); the input gradient 3e-8 to 4e-7
(dy ~ N(0, 1)) with every padding parity.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _core
from fastconv import conv as conv_mod
from reference import conv2d_input_grad_ref, conv2d_ref, relative_error
from toolkit import assert_same_nonfinite, conv_bound

ALGO = "winograd_s2"
BOUND = conv_bound(ALGO)


def _problem(rng, N, C, H, W, K, pad):
    pad_h, pad_w = pad if isinstance(pad, tuple) else (pad, pad)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(K, dtype=np.float32)
    p = _core.Conv2dParams(N, C, H, W, K, 3, 3, stride_h=2, stride_w=2, pad_h=pad_h, pad_w=pad_w)
    return x, w, b, p


def _forward(x, w, b, p):
    y = np.full((p.N, p.K, p.P, p.Q), np.nan, np.float32)
    _core.conv2d_forward(ALGO, p, x, w, b, y)
    return y


def _input_grad(dy, w, p):
    dx = np.full((p.N, p.C, p.H, p.W), np.nan, np.float32)
    _core.conv2d_backward_input(ALGO, p, dy, w, dx)
    return dx


def _check(rng, N, C, H, W, K, pad, bias=True):
    x, w, b, p = _problem(rng, N, C, H, W, K, pad)
    b = b if bias else None
    x0, w0 = x.copy(), w.copy()
    y = _forward(x, w, b, p)
    assert np.array_equal(x, x0) and np.array_equal(w, w0)  # inputs untouched
    err = relative_error(y, conv2d_ref(x, w, b, stride=(2, 2), padding=(p.pad_h, p.pad_w)))
    assert err <= BOUND, ((N, C, H, W, K, pad), err)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dy0 = dy.copy()
    dx = _input_grad(dy, w, p)
    assert np.array_equal(dy, dy0) and np.array_equal(w, w0)
    err = relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, stride=(2, 2), padding=(p.pad_h, p.pad_w)))
    assert err <= BOUND, ("input", (N, C, H, W, K, pad), err)


@pytest.mark.parametrize("shape", [
    (1, 1, 3, 3, 1, 0),      # one output: the kernel covers the input
    (1, 1, 5, 5, 1, 1),
    (2, 3, 7, 9, 5, 1),      # odd sizes, a ragged last tile row and column
    (1, 4, 4, 4, 3, 2),      # padding 2: corner tiles read mostly padding
    (3, 17, 13, 11, 9, 0),   # primes, no padding
    (2, 9, 31, 8, 33, 1),
    (1, 5, 6, 6, 7, (0, 1)),  # rectangular padding
    (1, 5, 12, 7, 7, (2, 1)),
    (1, 6, 10, 10, 4, 3),    # padding 3: dx blocks start on an odd phase, dy patches a row down
    (2, 40, 28, 28, 24, 1),  # several blocks of tiles, more than 16 tiles a thread
    (1, 8, 2, 9, 4, 1),      # fewer rows than a patch
])
def test_forward_fixed_shapes(shape, rng):
    _check(rng, *shape)


def test_forward_without_bias(rng):
    _check(rng, 2, 6, 11, 11, 5, 1, bias=False)


@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 20), H=st.integers(1, 23), W=st.integers(1, 23),
       K=st.integers(1, 20), pad_h=st.integers(0, 2), pad_w=st.integers(0, 2), seed=st.integers(0, 2**31))
def test_random_shapes(N, C, H, W, K, pad_h, pad_w, seed):
    if H + 2 * pad_h < 3 or W + 2 * pad_w < 3:
        return  # no output
    _check(np.random.default_rng(seed), N, C, H, W, K, (pad_h, pad_w))


@pytest.mark.parametrize("shape", [(3, 9, 17, 15, 7), (2, 64, 30, 30, 48)])
def test_thread_counts_agree(shape, rng, threads):
    """Each tile's sums run in the same order whatever thread computes it: results are bitwise equal."""
    x, w, b, p = _problem(rng, *shape, 1)
    dy = rng.standard_normal((p.N, p.K, p.P, p.Q), dtype=np.float32)
    outs = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        outs.append((_forward(x, w, b, p), _input_grad(dy, w, p)))
    for y, dx in outs[1:]:
        assert np.array_equal(y, outs[0][0]) and np.array_equal(dx, outs[0][1])


@pytest.mark.parametrize("kwargs", [dict(stride_h=1, stride_w=1), dict(stride_h=2, stride_w=1), dict(R=5, S=5),
                                    dict(dil_h=2, dil_w=2), dict(groups=2)],
                         ids=["stride1", "stride2x1", "5x5", "dilation2", "groups2"])
def test_kernel_rejects_unsupported(kwargs):
    base = dict(N=1, C=4, H=12, W=12, K=4, R=3, S=3, stride_h=2, stride_w=2)
    base.update(kwargs)
    p = _core.Conv2dParams(**base)
    x = np.zeros((1, 4, 12, 12), np.float32)
    w = np.zeros((4, 4 // p.groups, p.R, p.S), np.float32)
    y = np.zeros((1, 4, p.P, p.Q), np.float32)
    with pytest.raises(ValueError, match="winograd_s2 needs a 3x3 kernel, stride 2, dilation 1 and groups 1"):
        _core.conv2d_forward(ALGO, p, x, w, None, y)


def test_kernel_cache_keeps_stride1_and_stride2_apart(rng):
    """The transformed kernels are cached by weight content: the same weights through F(2x2) at
    stride 1 and at stride 2 (16 and 25 positions) must each get their own, and an in-place update
    must never reuse a stale one."""
    x = rng.standard_normal((2, 6, 13, 13), dtype=np.float32)
    w = (rng.standard_normal((5, 6, 3, 3)) / 7).astype(np.float32)
    for step in range(3):
        for stride, algo in ((1, "winograd_f2"), (2, ALGO)):
            y = fastconv.conv2d(x, w, padding=1, stride=stride, algo=algo)
            err = relative_error(y, conv2d_ref(x, w, stride=(stride, stride), padding=(1, 1)))
            assert err <= conv_bound(algo), (algo, step, err)
        w[step, 0, 1, 2] += 1.0  # same pointer, new content


def test_public_api_forward_and_input_gradient(rng):
    """algo="winograd_s2" runs the forward pass and the input gradient through the public API and is
    listed only where it applies; the weight gradient refuses it with the reason."""
    x, w, b, _ = _problem(rng, 2, 5, 10, 7, 3, 1)
    y = fastconv.conv2d(x, w, b, stride=2, padding=1, algo=ALGO)
    assert relative_error(y, conv2d_ref(x, w, b, stride=(2, 2), padding=(1, 1))) <= BOUND
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = fastconv.grad.conv2d_input(x.shape, w, dy, stride=2, padding=1, algo=ALGO)
    assert relative_error(dx, conv2d_input_grad_ref(x.shape, w, dy, stride=(2, 2), padding=(1, 1))) <= BOUND
    for pass_ in ("forward", "input"):
        assert ALGO in fastconv.conv_algorithms(x.shape, w.shape, stride=2, padding=1, pass_=pass_)
        assert ALGO not in fastconv.conv_algorithms(x.shape, w.shape, stride=1, padding=1, pass_=pass_)
    assert ALGO not in fastconv.conv_algorithms(x.shape, w.shape, stride=2, padding=1, pass_="weight")
    with pytest.raises(ValueError, match="'winograd_s2' cannot run.*has no weight pass"):
        fastconv.grad.conv2d_weight(x, w.shape, dy, stride=2, padding=1, algo=ALGO)
    with pytest.raises(ValueError, match="'winograd_s2' cannot run.*stride 2"):
        fastconv.conv2d(x, w, stride=1, padding=1, algo=ALGO)


def test_auto_takes_it_for_both_passes_where_the_model_prices_it_cheapest(threads):
    """The suite's stride2 (128 -> 256 channels, batch 8) goes to it in both passes; a 3-channel stem,
    whose transforms outweigh its products, does not; Inception-v3's unpadded 17x17 -> 8x8 at batch
    16 takes it forward but not for the input gradient (25 blocks of dx per 16 forward tiles)."""
    from fastconv import _conv_algorithms as registry

    def picks(x_shape, w_shape, pad):
        p = conv_mod.conv_plan(x_shape, w_shape, 2, pad, 1, 1).params
        return [registry.select_algorithm(p, pass_) for pass_ in ("forward", "input")]

    fastconv.set_num_threads(2)
    assert picks((8, 128, 28, 28), (256, 128, 3, 3), 1) == [ALGO, ALGO]
    assert ALGO not in picks((1, 3, 224, 224), (32, 3, 3, 3), 1)
    forward, input_grad = picks((16, 192, 17, 17), (320, 192, 3, 3), 0)
    assert forward == ALGO and input_grad != ALGO


@pytest.mark.parametrize("operand", ["x", "weight"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_operand_gives_the_definitions_mask(operand, bad, rng):
    """A NaN or Inf would spread over a tile through the transforms; the rerun that a non-finite
    output triggers gives the definition's mask."""
    x, w, _, _ = _problem(rng, 1, 8, 12, 12, 8, 1)
    (x if operand == "x" else w)[0, 2, 1, 1] = bad
    ref = conv2d_ref(x, w, stride=(2, 2), padding=(1, 1))
    ours = fastconv.conv2d(x, w, stride=2, padding=1, algo=ALGO)
    assert_same_nonfinite(ours, ref, ALGO)
    if operand == "weight":
        dy = rng.standard_normal(ref.shape).astype(np.float32)
        dx = fastconv.grad.conv2d_input(x.shape, w, dy, stride=2, padding=1, algo=ALGO)
        assert_same_nonfinite(dx, conv2d_input_grad_ref(x.shape, w, dy, stride=(2, 2), padding=(1, 1)), ALGO)
