"""Datasets: an IDX reader, Fashion-MNIST / MNIST finders (with verified download) and a DataLoader."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from . import _core
from ._validation import pair, require_int

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed: detected from the content, not the name).

    Checks the magic number (two zero bytes, a known type code, 1..4 dimensions), that every
    dimension is positive, and that the data length equals the product of the dimensions. Raises
    ValueError saying what is wrong for a truncated or corrupt file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or type_code not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}; expected 0x0000 then a type "
                         f"code in {sorted(hex(t) for t in _IDX_TYPES)} and the number of dimensions)")
    if not 1 <= ndim <= 4:
        raise ValueError(f"{path}: IDX header says {ndim} dimensions, expected 1 to 4")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if any(d == 0 for d in dims):
        raise ValueError(f"{path}: IDX dimensions {dims} include a zero")
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: dimensions up to 2^32 - 1 cannot wrap
    actual = len(raw) - header
    if actual < expected:
        raise ValueError(f"{path}: truncated: dimensions {dims} need {expected} data bytes, found {actual}")
    if actual > expected:
        raise ValueError(f"{path}: {actual - expected} unexpected bytes after the data of dimensions {dims}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` as an IDX file (gzip when `compress`, or when the name ends in .gz)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(f"write_idx: dtype {array.dtype} has no IDX type code")
    if not 1 <= array.ndim <= 4:
        raise ValueError(f"write_idx: expected 1 to 4 dimensions, got {array.ndim}")
    body = struct.pack(">HBB", 0, codes[native], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    body += array.astype(_IDX_TYPES[codes[native]]).tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        body = gzip.compress(body)
    path.write_bytes(body)


class ArrayDataset:
    """Images (N, C, H, W) float32 in [0, 1] and integer labels (N,), indexable by an index array."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes=None):
        if len(images) != len(labels):
            raise ValueError(f"ArrayDataset: {len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels
        self.classes = list(classes) if classes is not None else [str(i) for i in range(int(labels.max()) + 1)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


# ---- Fashion-MNIST and MNIST --------------------------------------------------------------------------

_SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

# Official locations and the SHA-256 of the published .gz files.
_DATASETS = {
    "fashion-mnist": {
        "urls": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "sha256": {
            "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
            "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
            "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
            "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
        },
        "system_dir": "/usr/share/datasets/fashion-mnist",
        "debian_package": "dataset-fashion-mnist",
        "mean_std": (0.2860, 0.3530),
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                    "Ankle boot"],
    },
    "mnist": {
        "urls": ["https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"],
        "sha256": {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        "system_dir": "/usr/share/datasets/mnist",
        "debian_package": None,
        "mean_std": (0.1307, 0.3081),
        "classes": [str(i) for i in range(10)],
    },
}


def cache_dir() -> Path:
    """~/.cache/fastconv (where downloads go)."""
    return Path(os.path.expanduser("~")) / ".cache" / "fastconv"


def search_dirs(name: str, root=None) -> list:
    """Directories searched, in order. With `root`: root and root/<name> only (a directory named
    explicitly is never silently replaced by another). Without: $FASTCONV_DATA/<name> (and
    $FASTCONV_DATA itself), ~/.cache/fastconv/<name>, then the system directory."""
    if root is not None:
        return [Path(root), Path(root) / name]
    dirs = []
    env = os.environ.get("FASTCONV_DATA")
    if env:
        dirs += [Path(env) / name, Path(env)]
    dirs.append(cache_dir() / name)
    dirs.append(Path(_DATASETS[name]["system_dir"]))
    return dirs


def _find(directory: Path, stem: str):
    for candidate in (directory / (stem + ".gz"), directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _download(name: str, stem: str, dest_dir: Path, looked_in: list) -> Path:
    info = _DATASETS[name]
    fname = stem + ".gz"
    errors = []
    for base in info["urls"]:
        url = base + fname
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                payload = response.read()
        except OSError as e:
            errors.append(f"{url}: {e}")
            continue
        digest = hashlib.sha256(payload).hexdigest()
        if digest != info["sha256"][fname]:
            errors.append(f"{url}: SHA-256 {digest} differs from the published {info['sha256'][fname]}")
            continue
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / fname
        tmp = target.with_suffix(".part")
        tmp.write_bytes(payload)
        tmp.replace(target)
        return target
    raise DatasetNotFoundError(name, stem, looked_in, errors)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file in none of the searched directories, and not downloaded.

    Attributes: ``dataset``, ``stem`` (the file's name without .gz), ``looked_in`` (the directories
    searched, in order) and ``attempts`` (why each download failed, or "download=False")."""

    def __init__(self, dataset: str, stem: str, looked_in, attempts):
        self.dataset, self.stem = dataset, stem
        self.looked_in, self.attempts = list(looked_in), list(attempts)
        super().__init__(self.explain("pass root=..."))

    def explain(self, choose_dir: str) -> str:
        """The message, with `choose_dir` saying how the caller names a directory ("pass root=..."
        for the library, "pass --data DIR" for the command line)."""
        info = _DATASETS[self.dataset]
        dirs = "\n  ".join(map(str, self.looked_in))
        msg = (f"{self.dataset}: could not find {self.stem}(.gz) and could not download it.\n"
               f"Looked in:\n  {dirs}\nDownload attempts:\n  " + "\n  ".join(self.attempts) +
               f"\nPut the four IDX files ({', '.join(info['sha256'])}) in one of those directories "
               f"(or {choose_dir}, or set FASTCONV_DATA).")
        if info["debian_package"]:
            msg += f" On Debian/Ubuntu: apt-get install {info['debian_package']}"
        return msg


def _locate(name: str, stem: str, root, download: bool) -> Path:
    dirs = search_dirs(name, root)
    for d in dirs:
        found = _find(d, stem)
        if found is not None:
            return found
    if not download:
        raise DatasetNotFoundError(name, stem, dirs, ["download=False"])
    return _download(name, stem, Path(root) if root is not None else cache_dir() / name, dirs)


def load_idx_dataset(name: str, split: str = "train", root=None, download: bool = True,
                     normalize: bool = False) -> ArrayDataset:
    """Load the `split` ("train" or "test") of dataset `name` ("fashion-mnist" or "mnist") as
    float32 images (N, 1, 28, 28) scaled to [0, 1] and int64 labels. With `normalize`, images are
    standardised with the training set's published pixel mean and standard deviation.

    Files are looked up in :func:`search_dirs` (only `root` when given), then downloaded (SHA-256
    checked) into `root` or ~/.cache/fastconv/<name> when `download`; DatasetNotFoundError (a
    FileNotFoundError) says where it looked otherwise."""
    if name not in _DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(_DATASETS)}, got {name!r}")
    if split not in _SPLIT_FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    image_stem, label_stem = _SPLIT_FILES[split]
    image_path = _locate(name, image_stem, root, download)
    label_path = _locate(name, label_stem, root, download)
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3:
        raise ValueError(f"{image_path}: expected images of shape (N, H, W), got dimensions {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{label_path}: expected {len(images)} labels to match {image_path}, got dimensions {labels.shape}")
    x = images[:, None].astype(np.float32)
    x *= np.float32(1 / 255)
    if normalize:
        mean, std = _DATASETS[name]["mean_std"]
        x -= np.float32(mean)
        x *= np.float32(1 / std)
    return ArrayDataset(x, labels.astype(np.int64), _DATASETS[name]["classes"])


def fashion_mnist(split: str = "train", root=None, download: bool = True, normalize: bool = False) -> ArrayDataset:
    """Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test 28x28 images, 10 classes."""
    return load_idx_dataset("fashion-mnist", split, root, download, normalize)


def mnist(split: str = "train", root=None, download: bool = True, normalize: bool = False) -> ArrayDataset:
    """MNIST handwritten digits: 60,000 train / 10,000 test 28x28 images, 10 classes."""
    return load_idx_dataset("mnist", split, root, download, normalize)


# ---- resizing ---------------------------------------------------------------------------------------------


def resize(images, size) -> np.ndarray:
    """Bilinear resize of (N, C, H, W) or (C, H, W) images to `size` (int or (H', W')), as torch's
    ``interpolate(mode="bilinear", align_corners=False)`` without antialiasing; returns float32.
    One C++ pass per image plane (each source row interpolated once, then blended in pairs), across
    the kernel threads."""
    x = np.asarray(images)
    if x.ndim not in (3, 4):
        raise ValueError(f"resize: expected (N, C, H, W) or (C, H, W) images, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"resize: expected floating-point images, got dtype {x.dtype}")
    if min(x.shape[-2:]) < 1:
        raise ValueError(f"resize: images must have positive height and width, got shape {x.shape}")
    out_h, out_w = pair(size, "size", minimum=1)
    x4 = np.ascontiguousarray(x.reshape((-1,) + x.shape[-3:]), dtype=np.float32)
    out = np.empty(x4.shape[:2] + (out_h, out_w), np.float32)
    _core.resize_bilinear(x4, out)
    return out.reshape(x.shape[:-2] + (out_h, out_w))


class ResizedDataset:
    """`dataset` with each batch of images resized by :func:`resize` when it is read (nothing is
    stored at the new size); labels and classes are the original dataset's."""

    def __init__(self, dataset, size):
        self.dataset = dataset
        self.size = size
        self.labels = dataset.labels
        self.classes = dataset.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        images, labels = self.dataset[index]
        return resize(images, self.size), labels


# ---- batching ---------------------------------------------------------------------------------------------


class DataLoader:
    """Iterates over (images, labels) numpy batches of `dataset`.

    shuffle: a new permutation each epoch from a generator seeded with `seed` (reproducible);
    drop_last: skip a final batch smaller than batch_size. `dataset` needs __len__ and indexing by a
    slice or an index array (ArrayDataset does).
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, seed=None, drop_last: bool = False):
        self.dataset = dataset
        self.batch_size = require_int(batch_size, "batch_size", 1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            yield self.dataset[slice(lo, hi) if order is None else order[lo:hi]]


__all__ = ["read_idx", "write_idx", "ArrayDataset", "resize", "ResizedDataset", "fashion_mnist", "mnist", "load_idx_dataset", "DataLoader",
           "search_dirs", "cache_dir", "DatasetNotFoundError"]
