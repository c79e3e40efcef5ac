"""Dataset-specific classifier features for Fréchet distances that run offline ("FD-<dataset>").

Inception-FID needs weights nobody may download at grading time and is a poor fit for 8x8 digits, so,
like TF-GAN's MNIST "Fréchet classifier distance", each dataset gets a small CNN trained by this
project (``dgm-grader metrics train-classifier DATASET``). Its penultimate layer (pre-activation,
``feature_dim`` values, far below the sample sizes the rubrics use so that Σ is full rank) is the
feature map. Values are reported as ``FD-<extractor>`` and are comparable only with values from the
same extractor, the same sample size and the same reference split — never with papers' FID.

Weights are safetensors files under ``grader/metrics/weights/`` (or ``$DGM_WEIGHTS_DIR`` / a
``weights_dir`` argument for the full-profile nets trained on a data machine); the loader checks the
file's SHA-256 against ``PINNED_SHA256`` (or, for nets not pinned in code, against the JSON written
next to them at training time) and refuses a mismatch.

Real-vs-real floors (500 random train images vs the whole test split, mean ± std over 5 draws;
also in ``weights/<name>.json``), i.e. the FD of a perfect model at that sample size:

- ``digits``:        FD = 21.8 ± 4.4  (359 test images; test accuracy 0.983; d = 32)
- ``digits-binary``: FD = 17.7 ± 3.0  (359 test images; test accuracy 0.967; d = 32)
- ``patches``:       FD =  6.7 ± 2.6  (1540 test images; test accuracy 0.786 on the 8 photo-quadrant
  classes, which overlap in texture; d = 64)

The scale is the extractor's own (features are unnormalised pre-activations): read a model's FD
against these floors and against the calibrated reference model, not as an absolute number.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grader.data import load_dataset
from grader.metrics.fid import fid_from_features

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_DIR_ENV = "DGM_WEIGHTS_DIR"
FLOOR_SAMPLES = 500
FLOOR_REPEATS = 5

# SHA-256 of the committed weight files; a file that does not match is refused.
PINNED_SHA256: dict[str, str] = {
    "digits": "8c2570813b3488369d3181d0fafc17c4c058fadd85bb684438ea7c36717dee18",
    "digits-binary": "2d60315f15863c846ab6dca638c4f572114a24a87fbbee26357b2e28eec1605f",
    "patches": "1579d7fc9e6315beb09665456870642c847414d45e5ea63c5951c4e3985eb904",
}


@dataclass(frozen=True)
class ExtractorSpec:
    """Architecture and training recipe of one classifier extractor (the code, not the file, owns it)."""

    dataset: str
    binarize: bool
    in_channels: int
    image_size: int
    num_classes: int
    feature_dim: int
    width: int
    epochs: int
    batch_size: int = 64
    lr: float = 2e-3


EXTRACTORS: dict[str, ExtractorSpec] = {
    "digits": ExtractorSpec("digits", False, 1, 8, 10, feature_dim=32, width=32, epochs=30),
    "digits-binary": ExtractorSpec("digits", True, 1, 8, 10, feature_dim=32, width=32, epochs=30),
    "patches": ExtractorSpec("patches", False, 3, 16, 8, feature_dim=64, width=16, epochs=15),
    "mnist": ExtractorSpec("mnist", False, 1, 28, 10, feature_dim=64, width=32, epochs=5, batch_size=128),
    "mnist-binary": ExtractorSpec("mnist", True, 1, 28, 10, feature_dim=64, width=32, epochs=5, batch_size=128),
    "cifar10": ExtractorSpec("cifar10", False, 3, 32, 10, feature_dim=128, width=64, epochs=15, batch_size=128),
}


class FeatureClassifier(nn.Module):
    """conv3x3 → ReLU, then stride-2 conv3x3 → ReLU (channels doubling) down to 4x4, then two linears.

    ``embed`` returns the pre-activation output of the first linear layer: (B, feature_dim).
    """

    def __init__(self, spec: ExtractorSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(spec.in_channels, spec.width, 3, padding=1), nn.ReLU()]
        channels, size = spec.width, spec.image_size
        while size > 4:
            layers += [nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU()]
            channels, size = 2 * channels, (size + 1) // 2
        self.body = nn.Sequential(*layers)
        self.features = nn.Linear(channels * size * size, spec.feature_dim)
        self.head = nn.Linear(spec.feature_dim, spec.num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.body(x).flatten(1))  # (B, C, S, S) -> (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.embed(x)))  # (B, num_classes) logits


def _spec(name: str) -> ExtractorSpec:
    if name not in EXTRACTORS:
        raise ValueError(f"extractor: expected one of {sorted(EXTRACTORS)}, got {name!r}")
    return EXTRACTORS[name]


def extractor_name(dataset: str, binarize: bool = False) -> str:
    """``digits`` + binarize → ``digits-binary``; names that already are extractor names pass through."""
    name = f"{dataset}-binary" if binarize and not dataset.endswith("-binary") else dataset
    _spec(name)
    return name


def _weights_dir(weights_dir: Path | None) -> list[Path]:
    if weights_dir is not None:
        return [Path(weights_dir)]
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return [Path(env), WEIGHTS_DIR] if env else [WEIGHTS_DIR]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(name: str, weights_dir: Path | None = None) -> Path:
    """Where the extractor's weights are: ``weights_dir``, else ``$DGM_WEIGHTS_DIR``, else the package."""
    searched = _weights_dir(weights_dir)
    for folder in searched:
        path = folder / f"{name}.safetensors"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"classifier extractor {name!r}: {name}.safetensors not found in "
        f"{', '.join(str(p) for p in searched)}; train it with "
        f"`dgm-grader metrics train-classifier {_spec(name).dataset}"
        f"{' --binarize' if _spec(name).binarize else ''} --out DIR` and set ${WEIGHTS_DIR_ENV}=DIR"
    )


@lru_cache(maxsize=16)
def _expected_sha256(name: str, path: Path) -> str:
    pinned = PINNED_SHA256.get(name, "")
    if pinned:
        return pinned
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise FileNotFoundError(f"classifier extractor {name!r}: no pinned SHA-256 and no {sidecar} to check against")
    logger.warning("classifier extractor %r: SHA-256 not pinned in code; checking against %s", name, sidecar)
    return str(json.loads(sidecar.read_text())["sha256"])


@lru_cache(maxsize=16)
def _load_cached(name: str, path: Path, sha256: str) -> FeatureClassifier:
    from safetensors.torch import load

    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise ValueError(
            f"classifier extractor {name!r}: {path} has SHA-256 {got}, expected {sha256}; refusing to "
            f"use weights that are not the calibrated ones"
        )
    model = FeatureClassifier(_spec(name))
    model.load_state_dict(load(data))
    return model.eval()


def load_classifier(name: str, weights_dir: Path | None = None) -> FeatureClassifier:
    """Load a trained extractor by name (``digits``, ``digits-binary``, ``patches``, ``mnist``, ...),
    verifying the file's SHA-256. Raises ``FileNotFoundError`` / ``ValueError`` with the fix."""
    path = weights_path(name, weights_dir)
    resolved = path.resolve()
    return _load_cached(name, resolved, _expected_sha256(name, resolved))


def _check_images(images: np.ndarray, spec: ExtractorSpec, name: str) -> torch.Tensor:
    array = np.asarray(images)
    shape = (spec.in_channels, spec.image_size, spec.image_size)
    if array.ndim != 4 or array.shape[1:] != shape or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"images for {name!r}: expected (N, {', '.join(map(str, shape))}) float in [0, 1], "
            f"got {array.shape} {array.dtype}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"images for {name!r}: contain NaN or inf")
    low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
    if low < -1e-4 or high > 1 + 1e-4:
        raise ValueError(f"images for {name!r}: expected values in [0, 1], got range [{low:.4g}, {high:.4g}]")
    return torch.as_tensor(array, dtype=torch.float32).clamp(0.0, 1.0)


def classifier_features(
    dataset: str, images: np.ndarray, *, weights_dir: Path | None = None, batch_size: int = 1000
) -> np.ndarray:
    """Features (N, feature_dim) float64 of float NCHW images in [0, 1] under ``dataset``'s extractor.

    ``dataset`` is an extractor name: ``digits``, ``digits-binary``, ``patches``, ``mnist``,
    ``mnist-binary``, ``cifar10``.
    """
    model = load_classifier(dataset, weights_dir)
    x = _check_images(images, _spec(dataset), dataset)
    with torch.no_grad():
        chunks = [model.embed(batch) for batch in torch.split(x, batch_size)]
    return torch.cat(chunks).to(torch.float64).numpy()


def fd_classifier(
    dataset: str, images_a: np.ndarray, images_b: np.ndarray, *, weights_dir: Path | None = None
) -> float:
    """``FD-<dataset>``: Fréchet distance between two image sets in the extractor's feature space.

    Compare with the extractor's real-vs-real floor at the same sample size (module docstring).
    """
    return fid_from_features(
        classifier_features(dataset, images_a, weights_dir=weights_dir),
        classifier_features(dataset, images_b, weights_dir=weights_dir),
    )


# --------------------------------------------------------------------------------------------------
# Training (the `dgm-grader metrics train-classifier` command)


def _accuracy(model: FeatureClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        predictions = torch.cat([model(b).argmax(1) for b in torch.split(images, 1000)])
    return float((predictions == labels).double().mean())


def real_floor(
    model: FeatureClassifier, train: np.ndarray, test: np.ndarray, *, seed: int = 0
) -> dict[str, float | int | str]:
    """FD between ``FLOOR_SAMPLES`` random train images and the whole test split, over repeats."""
    with torch.no_grad():
        test_features = model.embed(torch.as_tensor(test)).double().numpy()
        rng = np.random.default_rng(seed)
        values = []
        for _ in range(FLOOR_REPEATS):
            idx = rng.choice(len(train), min(FLOOR_SAMPLES, len(train)), replace=False)
            values.append(fid_from_features(model.embed(torch.as_tensor(train[idx])).double().numpy(), test_features))
    return {
        "protocol": f"{FLOOR_SAMPLES} random train images vs the whole test split ({len(test)} images)",
        "n_samples": min(FLOOR_SAMPLES, len(train)),
        "n_reference": len(test),
        "repeats": FLOOR_REPEATS,
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
    }


def train_classifier(
    dataset: str,
    *,
    binarize: bool = False,
    out_dir: Path | None = None,
    data_dir: Path | None = None,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
) -> Path:
    """Train ``dataset``'s extractor on the train split; write ``<name>.safetensors`` and ``<name>.json``.

    The JSON holds the SHA-256 (pin it in ``PINNED_SHA256`` when committing the file), the test
    accuracy and the real-vs-real floor. Deterministic for a given seed, torch build and thread count.
    """
    from safetensors.torch import save_file

    name = extractor_name(dataset, binarize)
    spec = _spec(name)
    out = Path(out_dir) if out_dir is not None else _weights_dir(None)[0]
    out.mkdir(parents=True, exist_ok=True)
    train_x, train_y = load_dataset(spec.dataset, "train", data_dir=data_dir, binarize=spec.binarize)
    test_x, test_y = load_dataset(spec.dataset, "test", data_dir=data_dir, binarize=spec.binarize)
    if train_y is None or test_y is None:
        raise ValueError(f"{spec.dataset}: the classifier extractor needs labels")

    # the ci nets are so small that torch's thread pool costs more than it saves (10x slower on a
    # shared 2-core machine); the full-profile nets use every core
    threads = torch.get_num_threads()
    if spec.image_size <= 16:
        torch.set_num_threads(1)
    try:
        model = _fit(spec, train_x, train_y, seed, epochs if epochs is not None else spec.epochs, progress, name)
        accuracy = _accuracy(model, torch.as_tensor(test_x), torch.as_tensor(test_y))
        floor = real_floor(model, train_x, test_x, seed=seed)
    finally:
        torch.set_num_threads(threads)

    weights_file = out / f"{name}.safetensors"
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_file), metadata={"extractor": name, "spec": json.dumps(asdict(spec))})
    sha = sha256_file(weights_file)
    record = {
        "extractor": name,
        "metric_name": f"FD-{name}",
        "sha256": sha,
        "spec": asdict(spec),
        "train": {
            "seed": seed,
            "epochs": epochs if epochs is not None else spec.epochs,
            "n_train": len(train_x),
            "torch": torch.__version__,
        },
        "test_accuracy": accuracy,
        "floor": floor,
    }
    weights_file.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    logger.info("%s: test accuracy %.4f, floor FD %.4f, sha256 %s", name, accuracy, floor["mean"], sha)
    return weights_file


def _fit(
    spec: ExtractorSpec, train_x: np.ndarray, train_y: np.ndarray, seed: int, n_epochs: int, progress: bool, name: str
) -> FeatureClassifier:
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = FeatureClassifier(spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    steps_per_epoch = (len(train_x) + spec.batch_size - 1) // spec.batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_epochs * steps_per_epoch)
    x_all, y_all = torch.as_tensor(train_x), torch.as_tensor(train_y)
    model.train()
    for _ in tqdm(range(n_epochs), desc=f"train {name}", disable=not progress):
        order = torch.as_tensor(rng.permutation(len(train_x)))
        for idx in torch.split(order, spec.batch_size):
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()
