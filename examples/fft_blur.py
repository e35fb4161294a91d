"""A large Gaussian blur by FFT and by direct convolution: same picture, different cost (seed 000,
the convolution theorem: convolution in space is multiplication in frequency).

The direct algorithm does kh*kw multiply-adds per pixel; the FFT's cost barely depends on the
kernel size, so for large kernels it wins by a wide margin. Both results agree to float32 rounding.

    python examples/fft_blur.py [--size N] [--kernel K] [--sigma S] [--out DIR] [--small]

The image is a mosaic of Fashion-MNIST test images (a synthetic pattern if the dataset is absent).
Writes DIR/fft_blur.png when matplotlib is installed.
"""

import argparse
import time
from pathlib import Path

import numpy as np

import fastconv
from fastconv import filters


def mosaic(size: int) -> np.ndarray:
    """A size x size gray image tiled from Fashion-MNIST test images (or a synthetic one)."""
    tiles = -(-size // 28)
    try:
        images = fastconv.data.fashion_mnist("test", download=False).images[: tiles * tiles, 0]
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[:size, :size]
        return (((xx // 16 + yy // 16) % 2) * 0.8 + 0.2 * rng.random((size, size))).astype(np.float32)
    grid = images.reshape(tiles, tiles, 28, 28).transpose(0, 2, 1, 3).reshape(tiles * 28, tiles * 28)
    return np.ascontiguousarray(grid[:size, :size])


def median_time(f, repeat: int) -> float:
    f()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--kernel", type=int, default=41, help="Gaussian kernel side (default: %(default)s)")
    parser.add_argument("--sigma", type=float, default=7.0, help="Gaussian sigma in pixels (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per algorithm (default: %(default)s)")
    parser.add_argument("--out", default=".", help="directory for the PNG (default: %(default)s)")
    parser.add_argument("--small", action="store_true", help="a 112x112 image and a 15x15 kernel")
    args = parser.parse_args(argv)
    if args.small:
        args.size, args.kernel, args.sigma, args.repeat = 112, 15, 2.5, 1

    image = mosaic(args.size)
    kernel = filters.gaussian(args.kernel, args.sigma)
    print(f"image {image.shape[0]}x{image.shape[1]}, Gaussian {args.kernel}x{args.kernel} (sigma {args.sigma}), "
          f"{fastconv.get_num_threads()} threads")

    results, times = {}, {}
    for algo in ("direct", "fft"):
        def blur(algo=algo):
            return filters.correlate2d(image, kernel, boundary="reflect", algo=algo)

        results[algo] = blur()
        times[algo] = median_time(blur, args.repeat)
        print(f"  {algo:>6}: {times[algo] * 1e3:9.2f} ms")
    diff = np.abs(results["fft"] - results["direct"]).max() / np.abs(results["direct"]).max()
    print(f"  max relative difference fft vs direct: {diff:.1e}; fft is {times['direct'] / times['fft']:.1f}x "
          f"{'faster' if times['fft'] < times['direct'] else 'slower'}")

    try:
        from fastconv import viz

        crop = (slice(0, min(args.size, 224)),) * 2  # a corner, so that the tiles stay visible
        fig = viz.show_feature_maps(
            np.stack([image[crop], results["direct"][crop], results["fft"][crop]]),
            titles=["input", f"direct ({times['direct'] * 1e3:.0f} ms)", f"FFT ({times['fft'] * 1e3:.0f} ms)"],
            title=f"Gaussian blur {args.kernel}x{args.kernel}, sigma {args.sigma} of a {args.size}x{args.size} image "
            f"(top-left corner shown): max relative difference {diff:.1e}",
        )
        fig.set_size_inches(10, 4)
    except ImportError as e:
        print(e)
        return 0 if diff < 1e-4 else 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "fft_blur.png", dpi=100)
    print(f"wrote {out / 'fft_blur.png'}")
    return 0 if diff < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
