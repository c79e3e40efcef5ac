"""Inception Score and Fréchet Inception Distance, written as the course asks students to write them.

Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016 (IS); Heusel et al., "GANs Trained by a
Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (FID).

    IS  = exp(E_x KL(p(y|x) || p(y))), p(y) = E_x p(y|x), averaged over consecutive splits of the samples;
    FID = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) of the pool features' Gaussians.

`model` is any network: logits (B, K) for IS, pool features (B, d, 1, 1) for FID (Inception-v3's pool3 in the
course; a stand-in the grader knows when it checks these functions). The matrix square root is scipy's `sqrtm`
of S_1 S_2, with pytorch-fid's guard: if it is not finite (singular products), both covariances get eps I.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn


@torch.no_grad()
def get_inception_probs(model: nn.Module, images: torch.Tensor, batch_size: int = 100) -> np.ndarray:
    """p(y|x) = softmax of the model's logits, (N, K), in the order of `images`."""
    probs = [F.softmax(model(images[i : i + batch_size]), dim=1) for i in range(0, len(images), batch_size)]
    return torch.cat(probs).double().numpy()


def get_inception_score(probs: np.ndarray, n_splits: int = 10) -> tuple[float, float]:
    """Mean and std (ddof 0) over `n_splits` consecutive splits of exp(E_x KL(p(y|x) || p(y)))."""
    scores = []
    for part in np.array_split(probs, n_splits):
        marginal = part.mean(axis=0, keepdims=True)  # p(y) of the split: the mean of p(y|x), not of logs
        kl = (part * (np.log(part + 1e-12) - np.log(marginal + 1e-12))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


@torch.no_grad()
def get_features(model: nn.Module, images: torch.Tensor, batch_size: int = 100) -> np.ndarray:
    """Pool features (N, d): the model's (B, d, 1, 1) outputs with the spatial dimensions dropped."""
    features = [model(images[i : i + batch_size]).flatten(1) for i in range(0, len(images), batch_size)]
    return torch.cat(features).double().numpy()


def get_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean (d,) and covariance (d, d) of (N, d) features; samples are rows."""
    return features.mean(axis=0), np.cov(features, rowvar=False)


def get_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)  # rounding leaves a tiny imaginary part
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def get_frechet_inception_distance(
    model: nn.Module, images1: torch.Tensor, images2: torch.Tensor, batch_size: int = 100
) -> float:
    """FID between two image sets through `model`'s pool features."""
    mu1, sigma1 = get_statistics(get_features(model, images1, batch_size))
    mu2, sigma2 = get_statistics(get_features(model, images2, batch_size))
    return get_distance(mu1, sigma1, mu2, sigma2)
