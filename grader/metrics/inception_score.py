"""Inception Score (Salimans et al. 2016) from classifier logits.

    p(y|x) = softmax(logits),  p̂ₛ(y) = mean_{x∈s} p(y|x),  ISₛ = exp( mean_{x∈s} KL(p(y|x) ‖ p̂ₛ(y)) )

over ``splits`` consecutive splits (10 in the literature, 5 in the course's 1000-sample check);
returns the mean and the std (ddof = 0, as torch-fidelity; torchmetrics uses ddof = 1) over splits.
Takes LOGITS, not probabilities (softmax of probabilities is a classic bug). With TF-Inception's 1008
logits this is the usual IS; with a dataset classifier it is the "classifier score" (max = #classes).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class ISResult(NamedTuple):
    mean: float
    std: float


def inception_score(logits: np.ndarray, *, splits: int = 10, seed: int | None = None) -> ISResult:
    """IS of (N, K) logits; ``seed`` shuffles the samples before splitting (None keeps their order)."""
    log_p = torch.log_softmax(torch.as_tensor(np.asarray(logits), dtype=torch.float64), dim=1)
    if log_p.dim() != 2:
        raise ValueError(f"logits: expected (N, K), got {tuple(log_p.shape)}")
    if not torch.isfinite(log_p).all():
        raise ValueError("logits contain NaN or inf")
    n = log_p.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits: expected 1 <= splits <= N = {n}, got {splits}")
    if seed is not None:
        log_p = log_p[torch.as_tensor(np.random.default_rng(seed).permutation(n))]
    scores = []
    for part in torch.tensor_split(log_p, splits):
        # ln p̂(y) = ln mean_x p(y|x): log of the mean, not the mean of logs
        log_marginal = torch.logsumexp(part, dim=0) - np.log(part.shape[0])
        kl = (part.exp() * (part - log_marginal)).sum(dim=1)
        scores.append(float(torch.exp(kl.mean())))
    values = np.asarray(scores)
    return ISResult(float(values.mean()), float(values.std()))
