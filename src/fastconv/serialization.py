"""fastconv.save / fastconv.load: state dicts as .npz files, never pickle."""

from __future__ import annotations

import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ._cuda_array import Array as DeviceArray
from .autograd import Tensor

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local file header, or an empty archive


def save(state_dict, path) -> Path:
    """Write a mapping of name -> array (e.g. ``model.state_dict()``) to `path` as an uncompressed .npz.
    Device arrays (fastconv.cuda.Array, or Tensors holding one) are copied to the host first.

    Only numeric arrays are stored (object arrays are refused), so loading never runs pickle.
    Returns the path written (".npz" is appended when missing, as numpy does).
    """
    arrays = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"save: keys must be strings, got {type(key).__name__} {key!r}")
        arr = np.asarray(value.numpy() if isinstance(value, (Tensor, DeviceArray)) else value)
        if arr.dtype == object:
            raise TypeError(f"save: '{key}' is an object array; only numeric arrays can be saved")
        arrays[key] = arr
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written member by member (np.savez would reserve key names such as "file").
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
    return path


def load(path) -> "OrderedDict[str, np.ndarray]":
    """Read a .npz written by :func:`save` into an ordered name -> array mapping (no pickle)."""
    path = Path(path)
    with open(path, "rb") as f:  # a missing file raises FileNotFoundError as it is
        magic = f.read(4)
    # Anything but a zip archive (numpy would try a text file as a pickle and suggest allow_pickle).
    if magic not in _ZIP_MAGIC:
        raise ValueError(f"{path}: not a fastconv .npz weights file (fastconv.save writes a zip archive of .npy "
                         f"arrays; this file starts with {magic!r})")
    try:
        with np.load(path, allow_pickle=False) as f:
            return OrderedDict((k, f[k]) for k in f.files)
    except FileNotFoundError:
        raise
    # A damaged archive surfaces as whichever layer notices first (zip directory, zlib, the .npy
    # header, zipfile taking flipped flag bits for encryption, or numpy refusing an object array that
    # would need pickle): one clear error instead.
    except (ValueError, OSError, EOFError, KeyError, RuntimeError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"{path}: not a readable fastconv/numpy .npz state dict ({type(e).__name__}: {e})") from None
