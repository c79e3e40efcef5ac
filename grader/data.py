"""Datasets shared by the homeworks, the reference solutions and the metrics.

``load_dataset(name, split)`` returns ``(images, labels)``: images are float32 NCHW in [0, 1], labels
int64 (or ``None``). One loader per dataset:

========  ==================================================================  ==========  =========
name      source                                                              shape       profile
========  ==================================================================  ==========  =========
digits    scikit-learn's real 8x8 digits (its ``digits.csv.gz``), pixel / 16   1x8x8       ci
patches   RGB patches cropped from scikit-learn's two bundled sample photos   3x16x16     ci
moons     ``make_moons(noise=0.1)``; 2-D points, not images                  (N, 2)      ci
mnist     official IDX files (``*-ubyte`` or ``*-ubyte.gz``) in the data dir  1x28x28     full
cifar10   official python batches ``cifar-10-batches-py/`` in the data dir   3x32x32     full
========  ==================================================================  ==========  =========

The data directory is the ``data_dir`` argument, else ``$DGM_DATA_DIR``. Nothing here downloads at
load time; ``dgm-grader data download mnist|cifar10 --dir DIR`` (``download_dataset``) fetches the
official archives on a machine with internet and checks their MD5 sums.

Binarization follows the course: digits ``pixel > 0.5``; MNIST ``pixel > 128/255`` (raw byte > 128).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DATASETS = ("digits", "patches", "moons", "mnist", "cifar10")
SPLITS = ("train", "test")
DATA_DIR_ENV = "DGM_DATA_DIR"

# Seeds of the deterministic splits; changing one changes every calibrated baseline.
_SPLIT_SEED = 0
_MOONS_SEED = 0
_MOONS_TOTAL = 6250  # 5000 train + 1250 test (80/20)
_TRAIN_FRACTION = 0.8

# `patches`: 32x32 windows on a stride-8 grid of each photo, 2x2-average-pooled to 16x16 (7700 patches).
# The pooling keeps a CIFAR-like amount of scene per patch (a 16x16 crop at full resolution is mostly flat
# texture) while staying small enough for seconds-long CPU training; 8x8 would leave too little structure
# for a convolutional generator or the feature classifier. Label = source photo x quadrant of the photo
# (2 x 4 = 8 classes: sky/roof/trees/temple for china.jpg, petals/background for flower.jpg), so the
# classifier extractor has meaningful classes. Windows overlap, so train and test patches share pixels:
# fine for generative models and FD, which compare distributions, not memorisation.
PATCH_SIZE = 16
_PATCH_WINDOW = 32
_PATCH_STRIDE = 8

# Official archives for the `full` profile (URLs and MD5 sums as published by the dataset authors and
# mirrored by torchvision).
_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"


@dataclass(frozen=True)
class _Idx:
    images: str
    labels: str


_MNIST_SPLITS = {
    "train": _Idx("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": _Idx("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: Path | None = None,
    binarize: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a dataset split as ``(images, labels)``.

    Images are float32 NCHW in [0, 1] (``moons``: float32 points of shape (N, 2)); labels are int64 or
    ``None``. ``binarize`` maps images to {0, 1} with the course's threshold (see the module docstring).
    Raises ``ValueError`` for an unknown name/split and ``FileNotFoundError`` (naming the directory and
    the download command) when the files of ``mnist`` / ``cifar10`` are absent.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if name in ("digits", "patches"):
        # built once per process (patches decode two JPEGs); callers get their own copies
        images, labels = _load_digits(split) if name == "digits" else _load_patches(split)
        return (images > 0.5).astype(np.float32) if binarize else images.copy(), labels.copy()
    if name == "moons":
        if binarize:
            raise ValueError("moons: binarize does not apply to 2-D points")
        points, labels = _load_moons(split)
        return points.copy(), labels.copy()
    if name == "mnist":
        raw, labels = _load_mnist(split, _resolve_dir(data_dir, "mnist"))
        images = (raw > 128) if binarize else raw.astype(np.float32) / 255.0
        return images.astype(np.float32)[:, None], labels
    if name == "cifar10":
        if binarize:
            raise ValueError("cifar10: binarize is not defined for RGB images")
        raw, labels = _load_cifar10(split, _resolve_dir(data_dir, "cifar10"))
        return raw.astype(np.float32) / 255.0, labels
    raise ValueError(f"dataset: expected one of {DATASETS}, got {name!r}")


def _split_indices(n: int, split: str, seed: int = _SPLIT_SEED) -> np.ndarray:
    """Deterministic 80/20 split: a seeded permutation, first 80% train, rest test (each sorted)."""
    order = np.random.default_rng(seed).permutation(n)
    cut = round(_TRAIN_FRACTION * n)
    return np.sort(order[:cut] if split == "train" else order[cut:])


def _sklearn_dataset_file(*parts: str) -> Path:
    """A file under scikit-learn's `datasets/`, found without importing scikit-learn: that import (scipy.stats
    and all) takes 1-2 s, which every command-line grading would pay for reading a few files."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the digits and patches data sets ship with scikit-learn: pip install scikit-learn")
    return Path(next(iter(spec.submodule_search_locations)), "datasets", *parts)


@lru_cache(maxsize=2)
def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    # the file behind sklearn.datasets.load_digits: (1797, 65), 64 pixels in 0..16 and then the label
    rows = np.loadtxt(_sklearn_dataset_file("data", "digits.csv.gz"), delimiter=",", dtype=np.float64)
    images = (rows[:, :64] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = rows[:, 64].astype(np.int64)
    idx = _split_indices(len(images), split)
    return images[idx], labels[idx]


@lru_cache(maxsize=2)
def _load_patches(split: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    # the files behind sklearn.datasets.load_sample_images: two (427, 640, 3) uint8 photos, china.jpg and flower.jpg
    photos = [np.asarray(Image.open(path)) for path in sorted(_sklearn_dataset_file("images").glob("*.jpg"))]
    patches, labels = [], []
    for photo_index, photo in enumerate(photos):
        height, width, _ = photo.shape
        pooled = photo.astype(np.float64)[: height // 2 * 2, : width // 2 * 2]
        # 2x2 average pooling of the whole photo: (H, W, 3) -> (H/2, 2, W/2, 2, 3) -> (H/2, W/2, 3)
        pooled = pooled.reshape(height // 2, 2, width // 2, 2, 3).mean(axis=(1, 3))
        step = _PATCH_STRIDE // 2
        # (h, w, 3) -> (rows, cols, 3, 16, 16) sliding windows, subsampled to the stride grid
        windows = np.lib.stride_tricks.sliding_window_view(pooled, (PATCH_SIZE, PATCH_SIZE), axis=(0, 1))
        windows = windows[::step, ::step]
        rows, cols = windows.shape[:2]
        patches.append(windows.reshape(rows * cols, 3, PATCH_SIZE, PATCH_SIZE))
        centre_row = (np.arange(rows) * step + PATCH_SIZE / 2) >= pooled.shape[0] / 2
        centre_col = (np.arange(cols) * step + PATCH_SIZE / 2) >= pooled.shape[1] / 2
        quadrant = 2 * centre_row[:, None].astype(np.int64) + centre_col[None, :].astype(np.int64)
        labels.append((4 * photo_index + quadrant).reshape(-1))
    images = (np.concatenate(patches) / 255.0).astype(np.float32)
    label_array = np.concatenate(labels).astype(np.int64)
    idx = _split_indices(len(images), split)
    return images[idx], label_array[idx]


@lru_cache(maxsize=2)
def _load_moons(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    points, labels = make_moons(n_samples=_MOONS_TOTAL, noise=0.1, random_state=_MOONS_SEED)
    idx = _split_indices(len(points), split)
    return points[idx].astype(np.float32), labels[idx].astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Local files (full profile)


def _resolve_dir(data_dir: Path | None, name: str) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    raise FileNotFoundError(
        f"{name}: no data directory given; pass data_dir or set ${DATA_DIR_ENV}, and fetch the files with "
        f"`dgm-grader data download {name} --dir DIR`"
    )


def _missing(name: str, data_dir: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name}: {what} not found in {data_dir}; download it with `dgm-grader data download {name} --dir {data_dir}`"
    )


def _find_idx(data_dir: Path, stem: str) -> Path | None:
    """Look for ``stem`` (or ``stem.gz``) in ``DIR``, ``DIR/mnist``, ``DIR/MNIST/raw`` (torchvision)."""
    for folder in (data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"):
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's format; gzip-compressed or not) into a uint8 array.

    Header: two zero bytes, a type code (0x08 = unsigned byte, the only one MNIST uses), the number of
    dimensions, then one big-endian int32 per dimension; the data follow in C order.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: IDX type code 0x{data[2]:02x}, expected 0x08 (unsigned byte)")
    ndim = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(shape)) + 4 + 4 * ndim
    if len(data) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes), file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_mnist(split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    names = _MNIST_SPLITS[split]
    image_path, label_path = _find_idx(data_dir, names.images), _find_idx(data_dir, names.labels)
    if image_path is None or label_path is None:
        raise _missing("mnist", data_dir, f"{names.images}[.gz] / {names.labels}[.gz]")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"mnist: inconsistent IDX files: images {images.shape}, labels {labels.shape}")
    return images, labels.astype(np.int64)


def _load_cifar10(split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = data_dir / "cifar-10-batches-py"
    if not folder.is_dir() and (data_dir / "data_batch_1").is_file():
        folder = data_dir
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    paths = [folder / n for n in names]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise _missing("cifar10", data_dir, f"cifar-10-batches-py/{', '.join(absent)}")
    images, labels = [], []
    for path in paths:
        # pickle is acceptable ONLY because these are the official CIFAR-10 batches that the course
        # staff downloaded onto the host (trusted local data). Nothing that a student produced is ever
        # unpickled: sandbox outputs come back as safetensors/JSON.
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32))  # (N, 3072) -> (N, 3, 32, 32), rows are R, G, B planes
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


# --------------------------------------------------------------------------------------------------
# Download (needs internet; never called at grading time)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, md5: str) -> None:
    from tqdm import tqdm

    logger.info("downloading %s", url)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        tmp.write(chunk)
                        bar.update(len(chunk))
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    got = _md5(tmp_path)
    if got != md5:
        tmp_path.unlink(missing_ok=True)
        raise OSError(f"{url}: MD5 {got} does not match the published {md5}")
    tmp_path.replace(target)


def download_dataset(name: str, data_dir: Path) -> Path:
    """Download the official files of ``mnist`` or ``cifar10`` into ``data_dir`` (MD5-checked).

    MNIST goes to ``DIR/mnist/*.gz``; CIFAR-10 is extracted to ``DIR/cifar-10-batches-py/``. Files that
    are already present with the right checksum are kept. Returns the dataset folder.
    """
    data_dir = Path(data_dir)
    if name == "mnist":
        folder = data_dir / "mnist"
        folder.mkdir(parents=True, exist_ok=True)
        for filename, md5 in _MNIST_FILES.items():
            target = folder / filename
            if target.is_file() and _md5(target) == md5:
                continue
            errors = []
            for mirror in _MNIST_MIRRORS:
                try:
                    _fetch(mirror + filename, target, md5)
                    break
                except OSError as exc:  # URLError is an OSError
                    errors.append(f"{mirror}: {exc}")
            else:
                raise OSError(f"mnist: could not download {filename}: " + "; ".join(errors))
        return folder
    if name == "cifar10":
        data_dir.mkdir(parents=True, exist_ok=True)
        archive = data_dir / "cifar-10-python.tar.gz"
        if not (archive.is_file() and _md5(archive) == _CIFAR10_MD5):
            _fetch(_CIFAR10_URL, archive, _CIFAR10_MD5)
        folder = data_dir / "cifar-10-batches-py"
        if folder.exists():
            shutil.rmtree(folder)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(data_dir, filter="data")
        return folder
    raise ValueError(f"download: expected 'mnist' or 'cifar10', got {name!r}")
