"""Issue 8: the IDX reader and fastconv.load survive corrupted files (truncated, bit-flipped,
oversized header dimensions, wrong magic) with a ValueError naming the file, never a crash, a hang,
a huge allocation or an unpickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastconv
from fastconv.data import read_idx, write_idx

FLIPS = 300  # bit-flipped variants per file: enough to hit header, sizes and payload


def _variants(raw: bytes, rng):
    yield "empty", b""
    for cut in sorted(set(rng.integers(1, len(raw), 20).tolist())):
        yield f"truncated at {cut}", raw[:cut]
    for i in range(FLIPS):
        pos = int(rng.integers(0, len(raw)))
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        yield f"bit flip at byte {pos} ({i})", bytes(flipped)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_reader_fuzz(tmp_path, compress):
    rng = np.random.default_rng(1)
    good = tmp_path / ("good.idx.gz" if compress else "good.idx")
    write_idx(good, rng.integers(0, 255, (7, 5, 3), dtype=np.uint8))
    raw = good.read_bytes()
    bad = tmp_path / "bad"
    for what, data in _variants(raw, rng):
        bad.write_bytes(data)
        try:
            arr = read_idx(bad)
        except ValueError as e:
            assert str(bad) in str(e), (what, e)
        else:  # a flip inside the payload is still a valid file of the same shape
            assert arr.shape == (7, 5, 3), what


@pytest.mark.parametrize("dims", [(2**31, 2**31, 2**31), (2**32 - 1,), (65536, 65536, 16)])
def test_idx_oversized_dimensions_refused_before_allocating(tmp_path, dims):
    header = bytes([0, 0, 0x0D, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path = tmp_path / "huge.idx"
    path.write_bytes(header + b"\0" * 64)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_idx_wrong_magic(tmp_path):
    path = tmp_path / "png.idx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)


def test_load_fuzz(tmp_path):
    rng = np.random.default_rng(2)
    good = fastconv.save({"w": rng.standard_normal((4, 3)).astype(np.float32), "b": np.arange(4)}, tmp_path / "m.npz")
    raw = good.read_bytes()
    bad = tmp_path / "bad.npz"
    for what, data in _variants(raw, rng):
        bad.write_bytes(data)
        try:
            state = fastconv.load(bad)
        except ValueError as e:
            assert str(bad) in str(e), (what, e)
        else:  # a flip inside array data (or a member's name) still loads: plain arrays only
            assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values()), what


def test_load_never_unpickles(tmp_path):
    """An .npz holding a pickled object array is refused, and the pickle is never run."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([Evil()], dtype=object))
    assert pickle  # the object array above was written with pickle, as np.savez does
    with pytest.raises(ValueError, match="evil.npz"):
        fastconv.load(path)
    assert not marker.exists()
