"""IDX reader (good and corrupt files), dataset lookup and download, DataLoader."""

import gzip
import hashlib
import io
import struct

import numpy as np
import pytest

from fastconv import data


def idx_bytes(array, type_code=0x08):
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, rng, dtype, compress):
    a = (rng.random((3, 5, 2)) * 100).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    data.write_idx(path, a)
    b = data.read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x05", "not an IDX file"),
        (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x05", "not an IDX file"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x09", "9 dimensions"),
        (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02", "truncated IDX header"),
        (b"\x00\x00\x08\x02" + struct.pack(">2I", 2, 0), "include a zero"),
        (idx_bytes(np.zeros((10, 4, 4), np.uint8))[:-7], "truncated: dimensions .* need 160 data bytes, found 153"),
        (idx_bytes(np.zeros((3,), np.uint8)) + b"xx", "2 unexpected bytes"),
        (gzip.compress(idx_bytes(np.zeros((100,), np.uint8)))[:-9], "gzip"),
    ],
)
def test_corrupt_files_raise_value_error(tmp_path, payload, message):
    path = tmp_path / "bad"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=message):
        data.read_idx(path)


def write_split(directory, images, labels, prefix="train"):
    stems = data._SPLIT_FILES["train" if prefix == "train" else "test"]
    directory.mkdir(parents=True, exist_ok=True)
    data.write_idx(directory / (stems[0] + ".gz"), images)
    data.write_idx(directory / stems[1], labels)  # raw: both forms are found


def test_load_from_root_scales_images(tmp_path, rng):
    images = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    write_split(tmp_path, images, labels)
    ds = data.mnist("train", root=tmp_path, download=False)
    assert ds.images.shape == (7, 1, 28, 28) and ds.images.dtype == np.float32
    np.testing.assert_allclose(ds.images[:, 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(ds.labels, labels)
    norm = data.mnist("train", root=tmp_path, download=False, normalize=True)
    np.testing.assert_allclose(norm.images, (ds.images - 0.1307) / 0.3081, atol=1e-5)


def test_label_count_mismatch(tmp_path, rng):
    write_split(tmp_path, np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="expected 5 labels"):
        data.mnist("train", root=tmp_path, download=False)


def test_search_order_env_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dirs = data.search_dirs("fashion-mnist")
    assert dirs[:2] == [tmp_path / "env" / "fashion-mnist", tmp_path / "env"]
    assert dirs[2] == tmp_path / "home" / ".cache" / "fastconv" / "fashion-mnist"
    assert [str(d) for d in dirs[3:]] == ["/usr/share/datasets/fashion-mnist"]
    write_split(tmp_path / "env" / "fashion-mnist", np.zeros((2, 28, 28), np.uint8), np.array([3, 4], np.uint8))
    assert list(data.fashion_mnist("train", download=False).labels) == [3, 4]


def test_root_is_the_only_place_searched(tmp_path, monkeypatch):
    """A root that holds no dataset is an error naming it, even when the dataset is elsewhere."""
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "env"))
    write_split(tmp_path / "env", np.zeros((2, 28, 28), np.uint8), np.array([3, 4], np.uint8))
    root = tmp_path / "empty"
    root.mkdir()
    assert data.search_dirs("fashion-mnist", root=root) == [root, root / "fashion-mnist"]
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.fashion_mnist("train", root=root, download=False)
    assert info.value.looked_in == [root, root / "fashion-mnist"]
    assert info.value.stem == "train-images-idx3-ubyte"
    assert str(root) in str(info.value) and str(tmp_path / "env") not in str(info.value)
    assert "pass root=..." in str(info.value)
    assert "pass --data DIR" in info.value.explain("pass --data DIR")


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def isolate(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setitem(data._DATASETS["fashion-mnist"], "system_dir", str(tmp_path / "nowhere"))


def test_no_network_error_says_where_to_put_files(tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path)

    def offline(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError) as info:
        data.fashion_mnist("test")
    text = str(info.value)
    assert "network unreachable" in text and "apt-get install dataset-fashion-mnist" in text
    assert str(tmp_path / "home" / ".cache" / "fastconv" / "fashion-mnist") in text


def test_download_checks_sha256_and_caches(tmp_path, monkeypatch, rng):
    isolate(monkeypatch, tmp_path)
    files = {"t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(np.zeros((2, 28, 28), np.uint8))),
             "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.array([1, 2], np.uint8)))}
    sums = dict(data._DATASETS["fashion-mnist"]["sha256"])
    sums.update({k: hashlib.sha256(v).hexdigest() for k, v in files.items()})
    monkeypatch.setitem(data._DATASETS["fashion-mnist"], "sha256", sums)
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: FakeResponse(files[url.rsplit("/", 1)[1]]))
    ds = data.fashion_mnist("test")
    assert list(ds.labels) == [1, 2] and ds.classes[1] == "Trouser"
    assert (tmp_path / "home" / ".cache" / "fastconv" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
    # A file whose checksum differs is refused and nothing is written.
    monkeypatch.setenv("HOME", str(tmp_path / "home2"))
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: FakeResponse(b"tampered"))
    with pytest.raises(FileNotFoundError, match="SHA-256"):
        data.fashion_mnist("test")
    assert not (tmp_path / "home2" / ".cache").exists()


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        data.fashion_mnist("validation")
    with pytest.raises(ValueError, match="dataset"):
        data.load_idx_dataset("cifar")


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_dataloader(shuffle, drop_last):
    ds = data.ArrayDataset(np.arange(10, dtype=np.float32)[:, None], np.arange(10))
    loader = data.DataLoader(ds, batch_size=4, shuffle=shuffle, seed=7, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader) == (2 if drop_last else 3)
    assert [len(y) for _, y in batches] == ([4, 4] if drop_last else [4, 4, 2])
    labels = np.concatenate([y for _, y in batches])
    for x, y in batches:
        np.testing.assert_array_equal(x[:, 0], y)
    if not drop_last:
        assert sorted(labels) == list(range(10))
    assert (list(labels) != sorted(labels)) == shuffle
    # Same seed, same order; a new epoch reshuffles.
    again = data.DataLoader(ds, batch_size=4, shuffle=shuffle, seed=7, drop_last=drop_last)
    np.testing.assert_array_equal(np.concatenate([y for _, y in again]), labels)
