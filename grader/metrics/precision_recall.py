"""Improved precision and recall (Kynkäänniemi et al. 2019), k-NN manifold estimate.

Each reference point gets the radius of its k-th nearest neighbour within its own set (itself
excluded; k = 3). precision = fraction of generated samples inside ANY real ball (‖φ_g − φ_r‖ ≤ r(φ_r));
recall = fraction of real samples inside any generated ball. Same conventions as the official NVIDIA
code and torch-fidelity (``<=``, squared Euclidean distances in float64). Needs comparable, large N.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_ROW_BLOCK = 1024


class PRResult(NamedTuple):
    precision: float
    recall: float


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.maximum(d2, 0.0)


def _knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Squared distance to the k-th nearest neighbour, self excluded (index k after the 0 self-distance)."""
    radii = np.empty(features.shape[0])
    for start in range(0, features.shape[0], _ROW_BLOCK):
        block = _squared_distances(features[start : start + _ROW_BLOCK], features)
        radii[start : start + _ROW_BLOCK] = np.partition(block, k, axis=1)[:, k]
    return radii


def _coverage(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    inside = 0
    for start in range(0, queries.shape[0], _ROW_BLOCK):
        block = _squared_distances(queries[start : start + _ROW_BLOCK], centres)
        inside += int(np.any(block <= radii[None, :], axis=1).sum())
    return inside / queries.shape[0]


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, *, k: int = 3) -> PRResult:
    """Precision (fidelity of ``fake``) and recall (coverage of ``real``) from (N, d) features."""
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected features (N_real, d) and (N_fake, d), got {real.shape} and {fake.shape}")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise ValueError(f"need more than k = {k} samples per side, got {real.shape[0]} and {fake.shape[0]}")
    if not (np.all(np.isfinite(real)) and np.all(np.isfinite(fake))):
        raise ValueError("features contain NaN or inf")
    precision = _coverage(fake, real, _knn_radii(real, k))
    recall = _coverage(real, fake, _knn_radii(fake, k))
    return PRResult(precision, recall)
