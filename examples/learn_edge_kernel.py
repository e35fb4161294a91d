"""Learn an edge-detection kernel from input/output pairs (d2l 7.2 "Learning a Kernel").

X is a 6x8 image of ones with a dark vertical band; Y = X cross-correlated with K = [1, -1] marks its
two vertical edges (+1 and -1). Starting from a random 1x2 kernel, gradient descent on the squared
error through fastconv's autograd (nn.Conv2d, Tensor.backward) recovers K.

    python examples/learn_edge_kernel.py [--steps N] [--lr LR] [--small]
"""

import argparse

import numpy as np

import fastconv
from fastconv import nn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="gradient steps (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.03, help="learning rate (default: %(default)s)")
    parser.add_argument("--small", action="store_true", help="accepted for the example test; the problem is already small")
    args = parser.parse_args(argv)

    X = np.ones((6, 8), np.float32)
    X[:, 2:6] = 0
    K = np.array([[1.0, -1.0]], np.float32)
    Y = fastconv.filters.correlate2d(X, K, mode="valid")  # (6, 7): +1 / -1 at the two edges

    rng = np.random.default_rng(0)
    conv = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False)
    conv.weight.data[...] = rng.standard_normal((1, 1, 1, 2)).astype(np.float32)
    x = fastconv.Tensor(X[None, None])
    target = Y[None, None]
    for step in range(1, args.steps + 1):
        y_hat = conv(x)
        loss = ((y_hat - target) ** 2).sum()
        conv.zero_grad()
        loss.backward()
        conv.weight.data -= args.lr * conv.weight.grad  # plain gradient descent, as in d2l
        if step % 10 == 0 or step == 1:
            print(f"step {step:3d}: loss {loss.item():.6f}")
    learned = conv.weight.data.reshape(1, 2)
    print(f"learned kernel: {np.array2string(learned, precision=4)}   (true kernel: [[ 1. -1.]])")
    error = float(np.abs(learned - K).max())
    print(f"max |learned - true| = {error:.2e}")
    return 0 if error < 1e-2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
