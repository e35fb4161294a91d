"""Convolution as diffusion (seed 000): a Gaussian kernel is the propagator of the heat equation,
so convolving again and again lets pixel intensity spread like salt in water.

Two facts the frames show: with the "reflect" boundary (no flux through the walls) and a kernel that
sums to one, the total intensity is conserved; and t steps of a Gaussian of width sigma equal one
Gaussian of width sigma * sqrt(t) (the variances add).

    python examples/diffusion.py [--steps T] [--out DIR] [--small]

Writes DIR/diffusion.png (a strip of frames) when matplotlib is installed.
"""

import argparse
from pathlib import Path

import numpy as np

from fastconv import filters


def ink_drops(size: int) -> np.ndarray:
    """A few sharp drops of ink and a bar on clear water."""
    img = np.zeros((size, size), np.float32)
    s = size // 16
    for cy, cx in [(4, 4), (4, 11), (11, 7)]:
        img[cy * s : cy * s + s, cx * s : cx * s + s] = 1.0
    img[13 * s : 14 * s, 2 * s : 14 * s] = 0.6
    return img


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="image side (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=64, help="diffusion steps (default: %(default)s)")
    parser.add_argument("--out", default=".", help="directory for the PNG (default: %(default)s)")
    parser.add_argument("--small", action="store_true", help="a 32x32 image and 8 steps")
    args = parser.parse_args(argv)
    if args.small:
        args.size, args.steps = 32, 8

    sigma = 1.0
    kernel = filters.gaussian(7, sigma)  # +-3 sigma: the truncated tails are negligible
    image = ink_drops(args.size)
    frames, times = [image], [0]
    state = image
    for t in range(1, args.steps + 1):
        state = filters.convolve2d(state, kernel, boundary="reflect")
        if t & (t - 1) == 0:  # keep t = 1, 2, 4, 8, ...
            frames.append(state)
            times.append(t)
    for t, f in zip(times, frames):
        print(f"t = {t:3d}: total intensity {f.sum(dtype=np.float64):10.3f}, peak {f.max():.3f}")

    # t steps of sigma == one Gaussian of sigma * sqrt(t), compared away from the walls.
    t = args.steps
    wide = sigma * np.sqrt(t)
    size = 2 * int(np.ceil(4 * wide)) + 1
    once = filters.convolve2d(image, filters.gaussian(size, wide), boundary="reflect")
    m = min(size // 2, args.size // 4)
    inner = (slice(m, args.size - m),) * 2
    diff = np.abs(once - state)[inner].max() / np.abs(once).max()
    print(f"{t} steps of sigma {sigma} vs one Gaussian of sigma {wide:.2f}: max relative difference {diff:.1e}")

    try:
        from fastconv import viz

        fig = viz.show_feature_maps(
            np.stack(frames), titles=[f"t = {t}" for t in times], shared_scale=True,
            title=f"Repeated Gaussian convolution (sigma {sigma}) as diffusion",
        )
    except ImportError as e:
        print(e)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "diffusion.png", dpi=100)
    print(f"wrote {out / 'diffusion.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
