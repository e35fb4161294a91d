"""One small call of every CPU op: the workload scripts/sanitize.sh runs under valgrind."""

import numpy as np

import fastconv
from fastconv import grad

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
b = rng.standard_normal(4).astype(np.float32)
fastconv.gemm(rng.standard_normal((13, 7)).astype(np.float32), rng.standard_normal((7, 11)).astype(np.float32))
for algo in fastconv.conv_algorithms(x.shape, w.shape, padding=1):
    y = fastconv.conv2d(x, w, b, padding=1, algo=algo)
for algo in fastconv.conv_algorithms(x.shape, w.shape, padding=1, pass_="input"):
    grad.conv2d_input(x.shape, w, y, padding=1, algo=algo)
for algo in fastconv.conv_algorithms(x.shape, w.shape, padding=1, pass_="weight"):
    grad.conv2d_weight(x, w.shape, y, padding=1, algo=algo)
p, idx = fastconv.max_pool2d(x, 2, return_indices=True)
grad.max_pool2d(p, idx, x.shape)
grad.avg_pool2d(fastconv.avg_pool2d(x, 3, 2, 1), x.shape, 3, 2, 1, False, True)
fastconv.adaptive_avg_pool2d(x, (2, 3))
grad.avg_pool2d(fastconv.avg_pool2d(x, 2), x.shape, 2)  # windows tile the input (a remainder on both axes)
# direct weight gradient over chunks of small images (channel-vector tiles)
xs, ws = rng.standard_normal((6, 16, 4, 4)).astype(np.float32), rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
grad.conv2d_weight(xs, ws.shape, fastconv.conv2d(xs, ws, padding=1), padding=1, algo="direct")
# depthwise (groups == C): stride 1 and 2, multiplier 2, a row tail
xd, wd = rng.standard_normal((2, 4, 9, 11)).astype(np.float32), rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
for s in (1, 2):
    yd = fastconv.conv2d(xd, wd, stride=s, padding=1, groups=4, algo="depthwise")
    grad.conv2d_input(xd.shape, wd, yd, stride=s, padding=1, groups=4, algo="depthwise")
    grad.conv2d_weight(xd, wd.shape, yd, stride=s, padding=1, groups=4, algo="depthwise")
# dilated_phases: the phase split and merge of every pass, padding a multiple of the dilation and not
xp, wp = rng.standard_normal((1, 3, 11, 9)).astype(np.float32), rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
for pad, dil in ((2, 2), (3, 2)):
    yp = fastconv.conv2d(xp, wp, padding=pad, dilation=dil, algo="dilated_phases")
    grad.conv2d_input(xp.shape, wp, yp, padding=pad, dilation=dil, algo="dilated_phases")
    grad.conv2d_weight(xp, wp.shape, yp, padding=pad, dilation=dil, algo="dilated_phases")
# stride 2 (winograd_s2 among them): forward and input gradient, both padding parities
for pad in (1, 2):
    for algo in fastconv.conv_algorithms(x.shape, w.shape, stride=2, padding=pad):
        y2 = fastconv.conv2d(x, w, b, stride=2, padding=pad, algo=algo)
    for algo in fastconv.conv_algorithms(x.shape, w.shape, stride=2, padding=pad, pass_="input"):
        grad.conv2d_input(x.shape, w, y2, stride=2, padding=pad, algo=algo)
# the Python layer's fused kernels: BatchNorm + ReLU, gradient accumulation of cat's slices, a
# conv bias gradient of a slice, resize
from fastconv import Tensor, nn  # noqa: E402

t = Tensor(rng.standard_normal((16, 16, 16, 16)).astype(np.float32), requires_grad=True)  # 2^16: C++ accumulation
seq = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 4, 3, padding=1))
out = fastconv.cat([t, seq(t)], 1)
(out * Tensor(rng.standard_normal(out.shape).astype(np.float32))).sum().backward()
fastconv.data.resize(x, (11, 5))
print("small case: ok")
