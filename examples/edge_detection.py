"""Edge detection with hand-made filters (seed 002, the Udacity walk-through; seed 000's softmax view).

Four 4x4 filters -- columns [-1, -1, 1, 1], its negative and both transposed -- slide over a real
image; after a ReLU each keeps only the edges of one orientation and polarity. Then the classic
3x3 operators (Sobel gradient magnitude, Laplacian) from fastconv.filters, and the softmax of the
Sobel kernel read as a diffusion propagator.

    python examples/edge_detection.py [--image PATH | --index N] [--out DIR] [--small]

--small uses a synthetic 32x32 picture (no dataset needed). Writes DIR/edges.png and
DIR/classic_edges.png when matplotlib is installed.
"""

import argparse
from pathlib import Path

import numpy as np

import fastconv
from fastconv import filters


def synthetic_image(size: int = 32) -> np.ndarray:
    """A bright square and a disc on a dark background: edges in every orientation."""
    yy, xx = np.mgrid[:size, :size] / size
    img = ((np.abs(xx - 0.3) < 0.18) & (np.abs(yy - 0.35) < 0.2)).astype(np.float32)
    img[(xx - 0.7) ** 2 + (yy - 0.7) ** 2 < 0.04] = 0.7
    return img


def load_image(args):
    if args.small:
        return synthetic_image(), "a synthetic 32x32 image"
    if args.image:
        from fastconv._viz_cli import read_gray_image

        return read_gray_image(args.image), args.image
    test = fastconv.data.fashion_mnist("test")
    label = int(test.labels[args.index])
    return test.images[args.index, 0], f"Fashion-MNIST test image {args.index} ({test.classes[label]})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--image", help="a PNG/JPEG (needs Pillow)")
    src.add_argument("--index", type=int, default=0, help="Fashion-MNIST test image (default: %(default)s)")
    src.add_argument("--small", action="store_true", help="a synthetic 32x32 image, no dataset")
    parser.add_argument("--out", default=".", help="directory for the PNGs (default: %(default)s)")
    args = parser.parse_args(argv)
    image, what = load_image(args)
    print(f"image: {what}, shape {image.shape}")

    # The seed's four filters as one conv layer: weight (4, 1, 4, 4), valid cross-correlation, ReLU.
    bank = filters.edge4()
    maps = np.maximum(fastconv.conv2d(np.ascontiguousarray(image, np.float32)[None, None], bank[:, None]), 0)[0]
    for i, m in enumerate(maps):
        print(f"filter {i + 1}: fires on {np.mean(m > 0.5):6.1%} of positions, strongest response {m.max():.2f}")

    gx = filters.correlate2d(image, filters.sobel(1), boundary="nearest")
    gy = filters.correlate2d(image, filters.sobel(0), boundary="nearest")
    magnitude = np.hypot(gx, gy)
    lap = filters.correlate2d(image, filters.laplacian(), boundary="nearest")
    print(f"Sobel gradient magnitude: max {magnitude.max():.2f}; Laplacian range [{lap.min():.2f}, {lap.max():.2f}]")
    soft = filters.normalize(filters.sobel(1), "softmax")
    print("Sobel (d/dx) as a probability density (softmax, seed 000):")
    print(np.array2string(soft, precision=4, suppress_small=True))

    from fastconv import viz

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        fig = viz.show_edge_walkthrough(image)
    except ImportError as e:  # no matplotlib: the numbers above are the example
        print(e)
        return 0
    fig.suptitle(f"Edge filters and their activation maps on {what}", fontsize=10)
    fig.savefig(out / "edges.png", dpi=100)
    viz.show_feature_maps(
        np.stack([gx, gy, magnitude, lap]),
        titles=["Sobel d/dx", "Sobel d/dy", "gradient magnitude", "Laplacian"],
        title=f"Classic edge operators on {what}",
        image=image,
        save=out / "classic_edges.png",
    )
    print(f"wrote {out / 'edges.png'} and {out / 'classic_edges.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
