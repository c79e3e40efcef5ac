import gzip
import hashlib
import io
import pickle
import struct
from typing import ClassVar

import numpy as np
import pytest

from grader.data import DATA_DIR_ENV, load_dataset, read_idx


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", s) for s in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = {"train": rng.integers(0, 256, (6, 28, 28)), "t10k": rng.integers(0, 256, (4, 28, 28))}
    images["train"][0, 0, :4] = [0, 128, 129, 255]
    labels = {"train": np.arange(6) % 10, "t10k": np.array([7, 2, 1, 0])}
    for prefix in ("train", "t10k"):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images[prefix], compress=prefix == "train")
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels[prefix], compress=False)
    return tmp_path, images, labels


def test_mnist_reads_idx_files_gzipped_or_not(mnist_dir):
    data_dir, images, labels = mnist_dir
    x, y = load_dataset("mnist", "train", data_dir=data_dir)
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images["train"], atol=1e-4)
    np.testing.assert_array_equal(y, labels["train"])
    x_test, y_test = load_dataset("mnist", "test", data_dir=data_dir)
    assert x_test.shape == (4, 1, 28, 28) and list(y_test) == [7, 2, 1, 0]


def test_mnist_binarizes_above_128_of_255(mnist_dir, monkeypatch):
    data_dir, _, _ = mnist_dir
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    x, _ = load_dataset("mnist", "train", binarize=True)
    assert list(x[0, 0, 0, :4]) == [0.0, 0.0, 1.0, 1.0]
    assert set(np.unique(x)) <= {0.0, 1.0}


def test_idx_reader_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02\x00\x00")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">i", 5) + b"\x00\x00")
    with pytest.raises(ValueError, match="shape"):
        read_idx(short)


def test_cifar10_reads_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        batches[name] = data
        with (folder / name).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": [1, 2, 3], b"batch_label": name.encode()}, handle)
    x, y = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    # rows are 1024 R values, then G, then B (row-major 32x32 planes)
    first = batches["data_batch_1"][0]
    np.testing.assert_allclose(x[0, 1, 0, 5] * 255, first[1024 + 5], atol=1e-4)
    np.testing.assert_allclose(x[0, 2, 31, 31] * 255, first[3071], atol=1e-4)
    x_test, y_test = load_dataset("cifar10", "test", data_dir=tmp_path)
    assert x_test.shape == (3, 3, 32, 32) and list(y_test) == [1, 2, 3]


def test_missing_files_name_the_directory_and_the_download_command(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*dgm-grader data download mnist"):
        load_dataset("mnist", "train", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*dgm-grader data download cifar10"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="DGM_DATA_DIR"):
        load_dataset("mnist")


def test_digits_are_the_real_sklearn_digits_with_a_fixed_80_20_split():
    from sklearn.datasets import load_digits

    x_train, y_train = load_dataset("digits", "train")
    x_test, y_test = load_dataset("digits", "test")
    assert x_train.shape == (1438, 1, 8, 8) and x_test.shape == (359, 1, 8, 8)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0
    reference = load_digits().images / 16.0
    joined = np.concatenate([x_train, x_test])[:, 0].reshape(len(reference), -1)
    assert sorted(map(bytes, joined.astype(np.float32))) == sorted(
        map(bytes, reference.reshape(len(reference), -1).astype(np.float32))
    )
    again, _ = load_dataset("digits", "train")
    np.testing.assert_array_equal(again, x_train)
    binary, _ = load_dataset("digits", "test", binarize=True)
    np.testing.assert_array_equal(binary, (x_test > 0.5).astype(np.float32))
    assert np.bincount(y_test).min() > 20


def test_patches_are_rgb_16x16_with_photo_quadrant_labels():
    x, y = load_dataset("patches", "train")
    x_test, y_test = load_dataset("patches", "test")
    assert x.shape[1:] == (3, 16, 16) and x.dtype == np.float32 and len(x) + len(x_test) == 7700
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(8)) and set(np.unique(y_test)) == set(range(8))
    assert x[y < 4].mean() != pytest.approx(x[y >= 4].mean(), abs=1e-3)  # two different photos


def test_moons_are_2d_points_with_a_fixed_seed():
    x, y = load_dataset("moons", "train")
    x_test, _ = load_dataset("moons", "test")
    assert x.shape == (5000, 2) and x_test.shape == (1250, 2) and x.dtype == np.float32
    assert set(np.unique(y)) == {0, 1}
    np.testing.assert_array_equal(load_dataset("moons", "train")[0], x)
    with pytest.raises(ValueError, match="binarize"):
        load_dataset("moons", binarize=True)


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match="dataset"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="split"):
        load_dataset("digits", "val")


def test_returned_arrays_are_private_copies():
    x, y = load_dataset("digits", "test")
    x[:] = 7.0
    y[:] = -1
    again, labels = load_dataset("digits", "test")
    assert again.max() <= 1.0 and labels.min() >= 0


class _FakeResponse(io.BytesIO):
    headers: ClassVar[dict[str, str]] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_checks_md5_and_produces_loadable_files(tmp_path, monkeypatch):
    import grader.data as data

    rng = np.random.default_rng(2)
    served = {}
    for prefix, n in (("train", 3), ("t10k", 2)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1", np.arange(n))):
            raw = tmp_path / "src" / f"{prefix}-{kind}-ubyte"
            raw.parent.mkdir(exist_ok=True)
            _write_idx(raw, array, compress=True)
            served[f"{prefix}-{kind}-ubyte.gz"] = raw.with_name(raw.name + ".gz").read_bytes()
    md5s = {name: hashlib.md5(body).hexdigest() for name, body in served.items()}
    monkeypatch.setattr(data, "_MNIST_FILES", md5s)
    monkeypatch.setattr(
        data.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(served[url.rsplit("/", 1)[1]])
    )
    folder = data.download_dataset("mnist", tmp_path / "data")
    assert sorted(p.name for p in folder.iterdir()) == sorted(served)
    x, y = load_dataset("mnist", "train", data_dir=tmp_path / "data")
    assert x.shape == (3, 1, 28, 28) and list(y) == [0, 1, 2]

    monkeypatch.setattr(data, "_MNIST_FILES", dict.fromkeys(md5s, "0" * 32))
    with pytest.raises(OSError, match="MD5"):
        data.download_dataset("mnist", tmp_path / "other")
    assert not any((tmp_path / "other" / "mnist").iterdir())  # no partial files left behind
