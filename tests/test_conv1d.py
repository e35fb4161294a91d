"""conv1d and its gradients against a float64 reference written from the definition, and against
torch.nn.functional.conv1d when torch is importable, on every backend (the ``device`` fixture; the
CUDA backend runs conv1d as a height-1 conv2d too). Bound: 1e-5 relative error."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import grad
from reference import relative_error
from toolkit import WRONG_DTYPE, examples, on_device, to_numpy

TOL = 1e-5


def conv1d_ref(x, w, bias, stride, padding, dilation, groups):
    """y[n,k,l] = b[k] + sum_{c,s} x[n, g*Cg + c, l*stride - padding + s*dilation] * w[k,c,s] in float64."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, L = x.shape
    K, Cg, S = w.shape
    Kg = K // groups
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    L_out = (L + 2 * padding - dilation * (S - 1) - 1) // stride + 1
    y = np.zeros((N, K, L_out))
    for k in range(K):
        g = k // Kg
        for s in range(S):
            taps = xp[:, g * Cg : (g + 1) * Cg, s * dilation : s * dilation + (L_out - 1) * stride + 1 : stride]
            y[:, k] += np.einsum("ncl,c->nl", taps, w[k, :, s])
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None]
    return y


def grads_ref(x, w, dy, stride, padding, dilation, groups):
    """Both gradients of sum(conv1d(x, w) * dy), exactly, via the linearity of conv1d in x and in w."""
    dx = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[i] = 1.0
        dx[i] = np.sum(conv1d_ref(e, w, None, stride, padding, dilation, groups) * dy)
    dw = np.zeros(w.shape)
    for i in np.ndindex(w.shape):
        e = np.zeros(w.shape)
        e[i] = 1.0
        dw[i] = np.sum(conv1d_ref(x, e, None, stride, padding, dilation, groups) * dy)
    return dx, dw


CASES = [
    # N, C, L, K, S, stride, padding, dilation, groups
    (2, 3, 11, 4, 3, 1, 0, 1, 1),
    (1, 1, 7, 1, 7, 1, 0, 1, 1),  # kernel == input
    (3, 4, 13, 6, 2, 3, 1, 1, 2),  # groups, stride > kernel
    (2, 2, 17, 2, 3, 2, 2, 3, 1),  # dilation
    (1, 6, 5, 6, 1, 1, 0, 1, 6),  # depthwise 1x1
    (2, 1, 1, 3, 1, 1, 0, 1, 1),  # L = 1
    (1, 5, 23, 7, 5, 1, 2, 2, 1),
]


def _random_case(rng, case):
    N, C, L, K, S, stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C, L)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("case", CASES)
def test_forward_and_grads_vs_float64(rng, device, case):
    x, w, b, hp = _random_case(rng, case)
    y = fastconv.conv1d(on_device(x, device), on_device(w, device), on_device(b, device), **hp)
    ref = conv1d_ref(x, w, b, **hp)
    assert y.dtype == np.float32 and y.shape == ref.shape
    assert relative_error(to_numpy(y, device), ref) < TOL
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    dx_ref, dw_ref = grads_ref(x, w, dy, **hp)
    dx = grad.conv1d_input(x.shape, on_device(w, device), on_device(dy, device), **hp)
    dw = grad.conv1d_weight(on_device(x, device), w.shape, on_device(dy, device), **hp)
    assert dx.shape == x.shape and dw.shape == w.shape
    assert relative_error(to_numpy(dx, device), dx_ref) < TOL
    assert relative_error(to_numpy(dw, device), dw_ref) < TOL


@pytest.mark.parametrize("case", CASES)
def test_vs_torch(rng, case):
    torch = pytest.importorskip("torch")
    x, w, b, hp = _random_case(rng, case)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.conv1d(xt, wt, torch.tensor(b, dtype=torch.float64), **hp)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    assert relative_error(fastconv.conv1d(x, w, b, **hp), yt.detach().numpy()) < TOL
    assert relative_error(grad.conv1d_input(x.shape, w, dy, **hp), xt.grad.numpy()) < TOL
    assert relative_error(grad.conv1d_weight(x, w.shape, dy, **hp), wt.grad.numpy()) < TOL


STRING_PADDING_CASES = [
    # N, C, L, K, S, dilation, groups
    (2, 3, 11, 4, 4, 1, 1),  # even kernel: the odd pad goes to the right
    (1, 2, 7, 2, 3, 3, 2),  # dilation, groups
    (2, 1, 5, 3, 2, 4, 1),  # dilated even kernel wider than the input
    (1, 4, 13, 4, 1, 1, 4),  # 1-tap depthwise
    (0, 4, 5, 1, 2, 3, 1),  # empty batch
]


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("case", STRING_PADDING_CASES)
def test_string_padding_vs_float64(rng, device, case, padding):
    """"same" pads dilation*(S-1) in total, the odd element on the right; "valid" is padding 0.
    Reference: the definition on the explicitly padded input. The CUDA backend has no asymmetric
    padding: an odd total refuses with a ValueError that says so."""
    N, C, L, K, S, dilation, groups = case
    if padding == "valid" and L < dilation * (S - 1) + 1:
        return
    x = rng.standard_normal((N, C, L)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    total = dilation * (S - 1) if padding == "same" else 0
    left = total // 2
    xp = np.pad(x, ((0, 0), (0, 0), (left, total - left)))
    hp = dict(padding=padding, dilation=dilation, groups=groups)
    xd, wd = on_device(x, device), on_device(w, device)
    if device == "cuda" and total % 2:
        with pytest.raises(ValueError, match="padding: 'same' with an even .* pads asymmetrically"):
            fastconv.conv1d(xd, wd, on_device(b, device), **hp)
        return
    y = fastconv.conv1d(xd, wd, on_device(b, device), **hp)
    ref = conv1d_ref(xp, w, b, 1, 0, dilation, groups)
    assert y.shape == ref.shape and (padding == "valid" or y.shape[2] == L)
    assert relative_error(to_numpy(y, device), ref) < TOL
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    dxp_ref, dw_ref = grads_ref(xp, w, dy, 1, 0, dilation, groups)
    dx = grad.conv1d_input(x.shape, wd, on_device(dy, device), **hp)
    dw = grad.conv1d_weight(xd, w.shape, on_device(dy, device), **hp)
    assert dx.shape == x.shape and dw.shape == w.shape
    assert relative_error(to_numpy(dx, device), dxp_ref[:, :, left : left + L]) < TOL
    assert relative_error(to_numpy(dw, device), dw_ref) < TOL


@pytest.mark.parametrize("padding", ["same", "valid", 2])
def test_string_padding_vs_torch(rng, padding):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 4)).astype(np.float32)
    hp = dict(padding=padding, dilation=2, groups=2)
    ref = torch.nn.functional.conv1d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64), **hp)
    assert relative_error(fastconv.conv1d(x, w, **hp), ref.numpy()) < TOL


def test_unbatched_input_is_a_batch_of_one(rng, device):
    x = rng.standard_normal((3, 10)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y = fastconv.conv1d(on_device(x, device), on_device(w, device), on_device(b, device), stride=2, padding=1)
    assert y.shape == (5, 5)
    assert relative_error(to_numpy(y, device), conv1d_ref(x[None], w, b, 2, 1, 1, 1)[0]) < TOL
    with pytest.raises(ValueError, match=r"x: expected a 3-D \(N, C, L\) or 2-D \(C, L\) array, got 1-D"):
        fastconv.conv1d(on_device(x[0], device), on_device(w, device))


def test_property_forward(device):
    @settings(max_examples=examples(device, 25, 10), deadline=None)
    @given(
        N=st.integers(1, 2),
        Cg=st.integers(1, 3),
        groups=st.integers(1, 2),
        Kg=st.integers(1, 3),
        L=st.integers(1, 19),
        S=st.integers(1, 5),
        stride=st.integers(1, 3),
        padding=st.integers(0, 2),
        dilation=st.integers(1, 3),
        seed=st.integers(0, 2**16),
    )
    def check(N, Cg, groups, Kg, L, S, stride, padding, dilation, seed):
        if L + 2 * padding < dilation * (S - 1) + 1:
            return
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((N, Cg * groups, L)).astype(np.float32)
        w = rng.standard_normal((Kg * groups, Cg, S)).astype(np.float32)
        hp = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        y = fastconv.conv1d(on_device(x, device), on_device(w, device), **hp)
        assert relative_error(to_numpy(y, device), conv1d_ref(x, w, None, **hp)) < TOL

    check()


def test_tuple_arguments_and_non_contiguous(rng):
    x = rng.standard_normal((2, 6, 20)).astype(np.float32)[:, ::2, ::-1]
    w = rng.standard_normal((4, 3, 3)).astype(np.float32)
    saved = x.copy()
    y = fastconv.conv1d(x, w, stride=(2,), padding=[1], dilation=(1,))
    assert relative_error(y, conv1d_ref(saved, w, None, 2, 1, 1, 1)) < TOL
    np.testing.assert_array_equal(x, saved)


def test_bad_input(device):
    def arr(shape, dtype=np.float32):
        return on_device(np.zeros(shape, dtype), device)

    x, w = arr((2, 4, 10)), arr((3, 4, 3))
    with pytest.raises(ValueError, match=r"x: expected a 3-D \(N, C, L\) or 2-D \(C, L\) array, got 4-D"):
        fastconv.conv1d(arr((1, 2, 4, 10)), w)
    with pytest.raises(TypeError, match=f"x: expected dtype float32, got {np.dtype(WRONG_DTYPE[device])}"):
        fastconv.conv1d(arr(x.shape, WRONG_DTYPE[device]), w)
    with pytest.raises(ValueError, match="weight: expected a 3-D array"):
        fastconv.conv1d(x, arr((4, 3)))
    with pytest.raises(ValueError, match=r"weight: expected shape \(K, C/groups, S\) with C/groups = 2"):
        fastconv.conv1d(x, arr((4, 4, 3)), groups=2)
    with pytest.raises(ValueError, match="groups: 3 must divide"):
        fastconv.conv1d(x, w, groups=3)
    with pytest.raises(ValueError, match="weight: kernel of length 11"):
        fastconv.conv1d(x, arr((3, 4, 11)))
    with pytest.raises(ValueError, match="stride: must be >= 1"):
        fastconv.conv1d(x, w, stride=0)
    with pytest.raises(ValueError, match="padding: expected an int or a 1-element tuple"):
        fastconv.conv1d(x, w, padding=(1, 1))
    with pytest.raises(ValueError, match="padding: expected an int, a 1-element tuple, 'valid' or 'same', got 'full'"):
        fastconv.conv1d(x, w, padding="full")
    with pytest.raises(ValueError, match="padding: 'same' needs stride 1, got stride 2"):
        fastconv.conv1d(x, w, padding="same", stride=2)
    with pytest.raises(ValueError, match="x: channels and length must be >= 1"):
        fastconv.conv1d(arr((2, 4, 0)), w)
    with pytest.raises(ValueError, match=r"grad_output: expected shape \(2, 3, 8\)"):
        grad.conv1d_input(x.shape, w, arr((2, 3, 9)))
    with pytest.raises(ValueError, match="input_shape: expected a 3-tuple"):
        grad.conv1d_input((2, 4), w, arr((2, 3, 8)))
    with pytest.raises(ValueError, match=r"grad_output: expected shape \(2, 3, 8\)"):
        grad.conv1d_weight(x, w.shape, arr((2, 3, 7)))
