"""Coarse sample-quality scores for GAN samples on a dataset's classifier features (hw4, hw5).

GAN quality is noisy at a CPU budget, so it is scored against a fixed anchor rather than as a raw
distance: ``1 - KID(samples) / KID("mean training image + noise")``, with KID on the classifier's features
standardised by the test set (every feature weighs the same). 1 is the test set itself, 0 the anchor; a
collapsed generator lands far below 0. ``class_coverage`` counts the classes the classifier finds in at
least a given share of the samples.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from grader.data import load_dataset
from grader.metrics.classifier import load_classifier
from grader.metrics.kid import kid

ANCHOR_NOISE = 0.1  # "mean image + noise": N(0, 0.1^2) per pixel around the mean training image, clipped
KID_SUBSETS, KID_SUBSET_SIZE = 100, 300


class KIDScore(NamedTuple):
    score: float  # 1 - kid / anchor
    kid: float
    anchor: float


@lru_cache(maxsize=4)
def _reference(dataset: str, n_test: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardised test features, their mean and sd, and the KID of "mean image + noise" (fixed seed)."""
    classifier = load_classifier(dataset)
    test = load_dataset(dataset, "test")[0][:n_test]
    mean_image = load_dataset(dataset, "train")[0].mean(axis=0, keepdims=True)
    noise = np.random.default_rng(0).standard_normal((len(test), *test.shape[1:]))
    anchor = np.clip(mean_image + ANCHOR_NOISE * noise, 0.0, 1.0).astype(np.float32)
    with torch.no_grad():
        real = classifier.embed(torch.from_numpy(test)).double().numpy()
        fake = classifier.embed(torch.from_numpy(anchor)).double().numpy()
    mu, sd = real.mean(0), real.std(0) + 1e-8
    size = min(KID_SUBSET_SIZE, len(test))
    anchor_kid = kid((fake - mu) / sd, (real - mu) / sd, num_subsets=KID_SUBSETS, subset_size=size, seed=0).mean
    return (real - mu) / sd, mu, sd, float(anchor_kid)


def kid_score(dataset: str, samples: np.ndarray, *, seed: int, n_test: int | None = None) -> KIDScore:
    """``1 - KID / anchor KID`` of float images (N, C, H, W) in [0, 1] against the first ``n_test`` test images."""
    real, mu, sd, anchor = _reference(dataset, n_test)
    with torch.no_grad():
        features = (load_classifier(dataset).embed(torch.from_numpy(samples)).double().numpy() - mu) / sd
    size = min(KID_SUBSET_SIZE, len(real), len(features))
    value = kid(features, real, num_subsets=KID_SUBSETS, subset_size=size, seed=seed).mean
    return KIDScore(1.0 - value / anchor, float(value), anchor)


def class_shares(dataset: str, samples: np.ndarray) -> np.ndarray:
    """The share of the samples the dataset's classifier puts in each class."""
    classifier = load_classifier(dataset)
    with torch.no_grad():
        predicted = classifier(torch.from_numpy(samples)).argmax(1).numpy()
    return np.bincount(predicted, minlength=classifier.head.out_features) / len(predicted)
