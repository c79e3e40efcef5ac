"""Metrics for 2-D samples (moons): energy distance, nearest-neighbour recall, the exact score of noised moons.

Energy distance (Székely & Rizzo 2013): E‖X - Y‖ - ½E‖X - X'‖ - ½E‖Y - Y'‖ with V-statistics, ≥ 0 and 0 only
for equal distributions; a proper score, unlike a KDE log-likelihood, which over-sharp samples beat.
Recall catches a dropped mode that precision misses: the fraction of reference points with a sample within
`radius`. Measured on moons (1000 samples vs 1000 test points, ../shared/HW4-6.md): perfect 0.0004, noise
0.2 instead of 0.1 0.0018, a Gaussian fit 0.016, one moon 0.296 (recall 0.52).

`moons_score`: scikit-learn's `make_moons` draws points uniformly in angle on two half circles and adds
N(0, noise² I); noised with σ, the density is a mixture of N(μ_k, (noise² + σ²) I) over the arcs, so its
score at x is Σ_k w_k(x) (μ_k - x) / v with softmax weights w_k(x) ∝ exp(-‖x - μ_k‖² / 2v): exact up to
the arcs' discretisation (`ARC_POINTS` per arc).
"""

from __future__ import annotations

import numpy as np

ARC_POINTS = 2000
_BLOCK = 2048


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    total = 0.0
    for start in range(0, len(a), _BLOCK):
        block = a[start : start + _BLOCK]
        d2 = (block * block).sum(1)[:, None] - 2.0 * block @ b.T + (b * b).sum(1)[None, :]
        total += float(np.sqrt(np.maximum(d2, 0.0)).sum())
    return total / (len(a) * len(b))


def energy_distance(samples: np.ndarray, reference: np.ndarray) -> float:
    """The energy distance between two point sets (N, D) and (M, D), in float64."""
    a, b = np.asarray(samples, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return 2.0 * _mean_distance(a, b) - _mean_distance(a, a) - _mean_distance(b, b)


def nn_recall(samples: np.ndarray, reference: np.ndarray, radius: float) -> float:
    """The fraction of reference points with a sample within `radius`."""
    a, b = np.asarray(samples, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    covered = 0
    for start in range(0, len(b), _BLOCK):
        block = b[start : start + _BLOCK]
        d2 = (block * block).sum(1)[:, None] - 2.0 * block @ a.T + (a * a).sum(1)[None, :]
        covered += int((d2.min(axis=1) <= radius**2).sum())
    return covered / len(b)


def _arcs() -> np.ndarray:
    theta = np.linspace(0.0, np.pi, ARC_POINTS)
    outer = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    inner = np.stack([1.0 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
    return np.concatenate([outer, inner])


def moons_score(x: np.ndarray, sigma: float, noise: float = 0.1) -> np.ndarray:
    """∇ log p_σ(x) for `make_moons(noise=noise)` data noised with N(0, σ² I); x (N, 2), float64."""
    centres, variance = _arcs(), noise**2 + sigma**2
    points = np.asarray(x, dtype=np.float64)
    scores = np.empty_like(points)
    for start in range(0, len(points), _BLOCK):
        block = points[start : start + _BLOCK]
        logits = -((block[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * variance)  # (b, K)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        scores[start : start + _BLOCK] = (weights @ centres - block) / variance
    return scores
