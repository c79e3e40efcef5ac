"""Fréchet distance between Gaussians fitted to features (FID when the features are Inception pool3).

    FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^{1/2}

Everything is float64 numpy. Statistics use the unbiased covariance (ddof = 1), as TTUR, pytorch-fid,
clean-fid, torch-fidelity and torchmetrics all do. The trace term avoids ``scipy.linalg.sqrtm`` (whose
API and numerics changed across SciPy releases): Σ₁Σ₂ is similar to the symmetric PSD matrix
R Σ₂ R with R = Σ₁^{1/2}, so

    tr (Σ₁ Σ₂)^{1/2} = Σᵢ √λᵢ(R Σ₂ R),   R = Σ₁^{1/2}.

For any factor Σ₁ = V Vᵀ, VᵀΣ₂V has the same eigenvalues as RΣ₂R (V = RQ with Q orthogonal). V is the
Cholesky factor when Σ₁ is positive definite (cheap), else U Λ^{1/2} from ``eigh`` (eigenvalues
clipped at 0) for singular Σ₁. One distance is then a factorisation, two matrix products and one
``eigvalsh``; ``FrechetReference`` caches the reference side's factor for repeated comparisons.

Round-off can make the exact-arithmetic-nonnegative result slightly negative (−1e-9 for identical
inputs); the API returns ``max(FD, 0)`` and never a complex or non-finite number.

FD is biased upward at finite N (E[FD_N] ≈ FD_∞ + c/N): compare values only at the same sample sizes,
and calibrate the real-vs-real floor at that size.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)


class FrechetWarning(UserWarning):
    """A Fréchet distance was computed from statistics that make it unreliable."""


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected features of shape (N, d), got {array.shape}")
    if array.shape[0] < 2:
        raise ValueError(f"{name}: expected at least 2 samples, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: features contain NaN or inf")
    return array


def _check_sample_size(n: int, d: int, name: str, allow_singular: bool) -> None:
    if n > d:
        return
    message = (
        f"{name}: {n} samples for {d}-dimensional features; the covariance has rank <= {n - 1} < {d}, "
        f"so the Fréchet distance is dominated by the missing directions. Use more than {d} samples "
        f"(10x more is advisable) or a lower-dimensional feature extractor"
    )
    if not allow_singular:
        raise ValueError(message + " (pass allow_singular=True to compute it anyway)")
    warnings.warn(message, FrechetWarning, stacklevel=3)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof = 1) of (N, d) features, in float64 (= ``np.cov(rowvar=False)``)."""
    array = _as_features(features, "features")
    mu = array.mean(axis=0)
    centred = array - mu
    sigma = centred.T @ centred / (array.shape[0] - 1)
    return mu, sigma


def _check_stats(mu: np.ndarray, sigma: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{name}: expected mu (d,) and sigma (d, d), got {mu.shape} and {sigma.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError(f"{name}: statistics contain NaN or inf")
    asymmetry = np.max(np.abs(sigma - sigma.T), initial=0.0)
    if asymmetry > 1e-6 * (1.0 + np.max(np.abs(sigma), initial=0.0)):
        raise ValueError(f"{name}: sigma is not symmetric (max |Σ − Σᵀ| = {asymmetry:.3g})")
    return mu, (sigma + sigma.T) / 2.0


def _clip_eigenvalues(eigenvalues: np.ndarray, name: str) -> np.ndarray:
    """Clip round-off negatives to 0; warn if a covariance is clearly not positive semi-definite."""
    scale = max(float(np.max(np.abs(eigenvalues), initial=0.0)), 1e-300)
    most_negative = float(np.min(eigenvalues, initial=0.0))
    if most_negative < -1e-6 * scale:
        warnings.warn(
            f"{name}: matrix has eigenvalue {most_negative:.3g} (largest {scale:.3g}); it is not a "
            f"covariance (not positive semi-definite); negative eigenvalues were clipped to 0",
            FrechetWarning,
            stacklevel=3,
        )
    return np.clip(eigenvalues, 0.0, None)


def _root_factor(sigma: np.ndarray) -> np.ndarray:
    """A factor V with V Vᵀ = Σ: Cholesky when Σ is positive definite (d³/3 flops), else U Λ^{1/2}.

    Any such V works: Vᵀ Σ₂ V = Qᵀ Σ₁^{1/2} Σ₂ Σ₁^{1/2} Q for an orthogonal Q, so the eigenvalues are
    those of Σ₁ Σ₂. No inverse is formed, so an ill-conditioned Σ costs no accuracy; a singular or
    indefinite one falls back to ``eigh`` with its eigenvalues clipped at 0.
    """
    try:
        return np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        eigenvalues, eigenvectors = np.linalg.eigh(sigma)
        return eigenvectors * np.sqrt(_clip_eigenvalues(eigenvalues, "reference sigma"))


@dataclass
class FrechetReference:
    """A fixed reference side (μ₁, Σ₁) with its eigendecomposition cached.

    ``distance(mu, sigma)`` then costs two matrix products and one ``eigvalsh`` instead of a full
    ``eigh`` as well: use it when many models are compared with the same real-data statistics.
    """

    mu: np.ndarray
    sigma: np.ndarray
    _root_basis: np.ndarray = field(init=False, repr=False)  # V with Σ₁ = V Vᵀ
    _trace: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.mu, self.sigma = _check_stats(self.mu, self.sigma, "reference")
        self._root_basis = _root_factor(self.sigma)
        self._trace = float(np.trace(self.sigma))

    def distance(self, mu: np.ndarray, sigma: np.ndarray) -> float:
        """Fréchet distance between this reference and N(mu, sigma); a finite float ≥ 0."""
        mu, sigma = _check_stats(mu, sigma, "other")
        if mu.shape != self.mu.shape:
            raise ValueError(f"dimension mismatch: reference d = {self.mu.shape[0]}, other d = {mu.shape[0]}")
        # eigenvalues of Vᵀ Σ₂ V equal those of Σ₁^{1/2} Σ₂ Σ₁^{1/2}, i.e. of Σ₁ Σ₂
        inner = self._root_basis.T @ sigma @ self._root_basis
        inner = (inner + inner.T) / 2.0
        eigenvalues = _clip_eigenvalues(np.linalg.eigvalsh(inner), "Σ₁^{1/2} Σ₂ Σ₁^{1/2}")
        trace_sqrt = float(np.sum(np.sqrt(eigenvalues)))
        diff = self.mu - mu
        value = float(diff @ diff) + self._trace + float(np.trace(sigma)) - 2.0 * trace_sqrt
        if not math.isfinite(value):
            raise FloatingPointError(f"Fréchet distance is not finite ({value}); check the statistics")
        tolerance = 1e-6 * (1.0 + self._trace + float(np.trace(sigma)))
        if value < -tolerance:
            # impossible in exact arithmetic for PSD inputs; far beyond round-off means broken inputs
            raise FloatingPointError(f"Fréchet distance is {value:.6g} < 0 beyond round-off ({tolerance:.3g})")
        return max(value, 0.0)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64; a finite float ≥ 0.

    Agrees with pytorch-fid's ``calculate_frechet_distance`` (scipy ``sqrtm``) to ~1e-10 relative on
    full-rank inputs and stays finite and real on singular ones, where ``sqrtm`` can go complex.
    """
    return FrechetReference(mu1, sigma1).distance(mu2, sigma2)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray, *, allow_singular: bool = False) -> float:
    """Fréchet distance between two feature sets of shape (N_a, d) and (N_b, d).

    Refuses (``ValueError``) when a set has N ≤ d samples — the covariance is then rank deficient
    and the value meaningless — unless ``allow_singular=True``, which computes it with a warning.
    """
    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_b: expected d = {a.shape[1]} like features_a, got {b.shape[1]}")
    _check_sample_size(a.shape[0], a.shape[1], "features_a", allow_singular)
    _check_sample_size(b.shape[0], b.shape[1], "features_b", allow_singular)
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


class StreamingStatistics:
    """Mean and covariance of features that arrive in batches, exact in float64.

    Chan et al.'s parallel update of (n, mean, M2) with M2 = Σ (x − mean)(x − mean)ᵀ: each batch is
    centred on its own mean before it is merged, so there is no catastrophic cancellation (unlike the
    one-pass ``(Σxxᵀ − nμμᵀ)/(n − 1)`` in float32). The result equals ``np.cov(all, rowvar=False)``.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.count = 0
        self._mean = np.zeros(dim, dtype=np.float64)
        self._m2 = np.zeros((dim, dim), dtype=np.float64)

    def update(self, batch: np.ndarray) -> None:
        """Add a batch of shape (n, d)."""
        batch = np.asarray(batch, dtype=np.float64)
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"batch: expected (n, {self.dim}), got {batch.shape}")
        if not np.all(np.isfinite(batch)):
            raise ValueError("batch: features contain NaN or inf")
        n_b = batch.shape[0]
        if n_b == 0:
            return
        mean_b = batch.mean(axis=0)
        centred = batch - mean_b
        self._merge(n_b, mean_b, centred.T @ centred)

    def merge(self, other: StreamingStatistics) -> None:
        """Fold in statistics accumulated elsewhere (e.g. another worker)."""
        if other.dim != self.dim:
            raise ValueError(f"other: expected d = {self.dim}, got {other.dim}")
        if other.count:
            self._merge(other.count, other._mean, other._m2)

    def _merge(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    @property
    def mean(self) -> np.ndarray:
        return self._mean.copy()

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased covariance (ddof = 1)."""
        if self.count < 2:
            raise ValueError(f"covariance needs at least 2 samples, got {self.count}")
        return self._m2 / (self.count - 1)

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, covariance)``, ready for ``frechet_distance``."""
        return self.mean, self.covariance
