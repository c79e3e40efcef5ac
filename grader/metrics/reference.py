"""Reference statistics (μ, Σ) of a dataset split under an extractor, cached as ``.npz``.

The real side of every FD comparison is fixed per (extractor, dataset, split), so it is computed once
(``dgm-grader metrics reference-stats DATASET --split test``) and cached in
``$DGM_CACHE_DIR/reference_stats/`` (default ``~/.cache/dgm-grader/reference_stats/``). Each file
records the extractor (for Inception, with its pre-processing) and the SHA-256 of the weights it was
computed with; a cache entry made with another extractor or other weights is recomputed rather than
silently reused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from grader.data import load_dataset
from grader.metrics import classifier as clf
from grader.metrics.fid import FrechetReference, StreamingStatistics

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "DGM_CACHE_DIR"
_BATCH = 1000


@dataclass(frozen=True)
class ReferenceStats:
    mu: np.ndarray
    sigma: np.ndarray
    count: int
    extractor: str
    weights_sha256: str

    def frechet(self) -> FrechetReference:
        """The reference side with its eigendecomposition cached, for repeated comparisons."""
        return FrechetReference(self.mu, self.sigma)


def cache_home() -> Path:
    """The project's cache folder: ``$DGM_CACHE_DIR``, default ``~/.cache/dgm-grader``."""
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root) if root else Path.home() / ".cache" / "dgm-grader"


def default_cache_dir() -> Path:
    return cache_home() / "reference_stats"


def _inception_extractor(weights: Path | None) -> tuple[str, str, Callable[[np.ndarray], np.ndarray]]:
    from grader.metrics.inception import inception_features, load_inception, weights_path

    path = weights_path(weights)
    model = load_inception(path)
    # the pre-processing is part of the extractor: stats made with another one are not reused
    return f"inception-{model.preprocess}", clf.sha256_file(path), lambda images: inception_features(model, images)[0]


def compute_reference_stats(
    dataset: str,
    split: str = "test",
    *,
    extractor: str = "classifier",
    binarize: bool = False,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    weights: Path | None = None,
    refresh: bool = False,
    progress: bool = False,
) -> ReferenceStats:
    """μ and Σ (ddof = 1, streamed in float64) of ``dataset``/``split`` features, from cache if valid.

    ``extractor="classifier"`` uses the dataset's classifier (``binarize`` picks the ``-binary`` net;
    ``weights`` is then a weights directory); ``extractor="inception"`` uses Inception pool3 features
    (``weights`` is the weight file, else ``$DGM_INCEPTION_WEIGHTS``, else the installed one).
    """
    from tqdm import tqdm

    features: Callable[[np.ndarray], np.ndarray]
    if extractor == "classifier":
        name = clf.extractor_name(dataset, binarize)
        sha = clf.sha256_file(clf.weights_path(name, weights))
        features = partial(clf.classifier_features, name, weights_dir=weights)
    elif extractor == "inception":
        name, sha, features = _inception_extractor(weights)
    else:
        raise ValueError(f"extractor: expected 'classifier' or 'inception', got {extractor!r}")
    # classifier-digits-binary-test.npz, inception-cifar10-test.npz
    subject = name if extractor == "classifier" else f"{dataset}{'-binary' if binarize else ''}"
    key = f"{extractor}-{subject}-{split}"
    path = Path(cache_dir or default_cache_dir()) / f"{key}.npz"
    if path.is_file() and not refresh:
        with np.load(path, allow_pickle=False) as cached:
            if str(cached["weights_sha256"]) == sha and str(cached["extractor"]) == name:
                logger.info("reference stats: using %s", path)
                return ReferenceStats(cached["mu"], cached["sigma"], int(cached["count"]), name, sha)
        logger.warning("reference stats: %s was computed with another extractor or other weights; recomputing", path)
    images, _ = load_dataset(dataset, split, data_dir=data_dir, binarize=binarize)
    stats: StreamingStatistics | None = None
    for start in tqdm(range(0, len(images), _BATCH), desc=f"features {key}", disable=not progress):
        batch = features(images[start : start + _BATCH])
        stats = stats or StreamingStatistics(batch.shape[1])
        stats.update(batch)
    if stats is None:
        raise ValueError(f"{dataset}/{split}: no images")
    mu, sigma = stats.statistics()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mu=mu, sigma=sigma, count=stats.count, weights_sha256=np.array(sha), extractor=np.array(name))
    logger.info("reference stats: wrote %s (%d images)", path, stats.count)
    return ReferenceStats(mu, sigma, stats.count, name, sha)
