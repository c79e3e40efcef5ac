"""Negative log-likelihood in every convention the course uses, and the conversion to bits/dim.

Convention for every function here: inputs are ``torch.Tensor`` (numpy arrays are accepted and
converted); the leading dimension is the batch; computation is in float64 whatever the input dtype;
the result is a float64 ``torch.Tensor``. ``reduction`` chooses what comes back:

- ``"none"``: per-example NLL in nats, shape (B,) (summed over every non-batch dimension);
- ``"mean"``: mean over the batch of the per-example NLL (nats per image; what papers tabulate);
- ``"sum"``: total over the batch;
- ``"per_dim"``: the ``"mean"`` value divided by D, the number of dimensions per example
  (nats per pixel/sub-pixel, the course's PixelCNN loss).

D = C·H·W. ``bits_per_dim`` is the one place that converts nats to bits/dim: ``nll / (D ln 2)``.
Sanity anchors (tested): a uniform model over 256 levels gives exactly 8 bits/dim; Bernoulli(0.5) on
784 pixels gives 784 ln 2 = 543.43 nats.
"""

from __future__ import annotations

import math
from typing import Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

Reduction = Literal["none", "mean", "sum", "per_dim"]
ArrayLike = torch.Tensor | np.ndarray
_Number = TypeVar("_Number", float, torch.Tensor, np.ndarray)

LN2 = math.log(2.0)


def bits_per_dim(nll_nats: _Number, num_dims: int) -> _Number:
    """Convert an NLL in nats (per example) to bits per dimension: ``bpd = nll / (D · ln 2)``.

    Works on floats, numpy arrays and tensors alike. ``num_dims`` is D (784 for MNIST, 3072 for
    CIFAR-10). Dequantization terms must already be inside ``nll_nats`` (see ``dequantized_nll``).
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims: expected a positive integer, got {num_dims}")
    return nll_nats / (num_dims * LN2)


def _t(x: ArrayLike | float) -> torch.Tensor:
    return torch.as_tensor(x).to(torch.float64)


def _per_example(values: torch.Tensor) -> torch.Tensor:
    """Sum an elementwise NLL over every non-batch dimension: (B, ...) -> (B,)."""
    return values.reshape(values.shape[0], -1).sum(dim=1) if values.dim() > 1 else values


def _reduce(per_example: torch.Tensor, reduction: Reduction, num_dims: int) -> torch.Tensor:
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    if reduction == "mean":
        return per_example.mean()
    if reduction == "per_dim":
        return per_example.mean() / num_dims
    raise ValueError(f"reduction: expected 'none', 'mean', 'sum' or 'per_dim', got {reduction!r}")


def _dims(x: torch.Tensor) -> int:
    return int(np.prod(x.shape[1:])) if x.dim() > 1 else 1


def _as_labels(x: ArrayLike, num_classes: int, name: str = "x") -> torch.Tensor:
    """Integer class indices from a tensor holding whole numbers in [0, num_classes)."""
    x = torch.as_tensor(x)
    if x.is_floating_point():
        if not torch.equal(x, x.round()):
            raise ValueError(f"{name}: expected integer levels in [0, {num_classes}), got non-integer values")
        x = x.round()
    labels = x.to(torch.int64)
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name}: expected levels in [0, {num_classes}), got range [{int(labels.min())}, {int(labels.max())}]"
        )
    return labels


def bernoulli_nll(logits: ArrayLike, x: ArrayLike, reduction: Reduction = "none") -> torch.Tensor:
    """NLL of binary data under independent Bernoulli(sigmoid(ℓ)) pixels — ONE logit per pixel.

    ``−ln p(x) = Σᵢ [softplus(ℓᵢ) − xᵢ ℓᵢ]`` (= ``BCEWithLogits(reduction='sum')`` per example), in
    nats. ``logits`` and ``x`` have the same shape, e.g. (B, 1, H, W) or (B, L); x ∈ {0, 1}.
    For two-class logits of shape (B, 2, ...) (the course's PixelCNN) use ``two_class_nll``.
    """
    logits = _t(logits)
    target = _t(x)
    if logits.shape != target.shape:
        raise ValueError(f"logits: expected the shape of x {tuple(target.shape)}, got {tuple(logits.shape)}")
    _as_labels(target, 2)  # checks x is binary
    nll = F.softplus(logits) - target * logits
    return _reduce(_per_example(nll), reduction, _dims(target))


def categorical_nll(
    logits: ArrayLike, x: ArrayLike, reduction: Reduction = "none", *, class_dim: int = 1
) -> torch.Tensor:
    """NLL of discrete data under a softmax over K levels per dimension (e.g. K = 256, PixelCNN).

    ``−ln p(x) = Σᵢ [logsumexp_k ℓᵢₖ − ℓᵢ,ₓᵢ]`` in nats. ``logits`` has the class axis at
    ``class_dim`` (default 1): (B, K, ...) for ``x`` of shape (B, ...) holding integer levels in
    [0, K) (integer-valued floats are accepted; images in [0, 1] must be mapped to levels first,
    e.g. ``round(255·x)``). A uniform model (equal logits) gives exactly log2(K) bits/dim.
    """
    logits = _t(logits)
    num_classes = logits.shape[class_dim]
    labels = _as_labels(x, num_classes)
    log_probs = torch.log_softmax(logits, dim=class_dim)
    expected = tuple(s for i, s in enumerate(log_probs.shape) if i != class_dim % log_probs.dim())
    if tuple(labels.shape) != expected:
        raise ValueError(
            f"x: expected shape {expected} to match logits {tuple(logits.shape)}, got {tuple(labels.shape)}"
        )
    nll = -log_probs.gather(class_dim, labels.unsqueeze(class_dim)).squeeze(class_dim)
    return _reduce(_per_example(nll), reduction, _dims(labels))


def two_class_nll(logits: ArrayLike, x: ArrayLike, reduction: Reduction = "none") -> torch.Tensor:
    """NLL of binary data from TWO logits per pixel (softmax over {0, 1}), class axis 1.

    The course's PixelCNN returns (B, 2, 1, H, W); ``x`` is (B, 1, H, W) in {0, 1}. Equivalent to
    ``bernoulli_nll(ℓ₁ − ℓ₀, x)``; its ``"per_dim"`` value is the course's ``F.cross_entropy`` loss.
    """
    logits = _t(logits)
    if logits.dim() < 2 or logits.shape[1] != 2:
        raise ValueError(f"logits: expected (B, 2, ...) two-class logits, got {tuple(logits.shape)}")
    return categorical_nll(logits, x, reduction, class_dim=1)


def dequantized_nll(
    log_density: ArrayLike,
    num_dims: int,
    *,
    scale: float = 1.0 / 256,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Upper bound on the discrete NLL of a continuous density under uniform dequantization.

    The model sees ``z = a·(x + u) + b`` with integer data x, u ~ U[0, 1)^D and ``scale`` = a; it
    returns ``log_density`` = ln p_Z(z) per example (B,). Since P(x) = ∫_bin p ≥ exp E_u[ln p_Z]·a^D
    (Jensen), ``−ln P(x) ≤ E_u[−ln p_Z(z)] − D ln a``. Common cases: y = (x+u)/256 in [0, 1]
    (a = 1/256, the default) adds ``D ln 256``; 2y − 1 in [−1, 1] (a = 2/256) adds ``D ln 128``;
    raw [0, 256) (a = 1) adds nothing; the course's binarized data with ``nbins = 2`` is a = 1/2.
    The offset b does not matter. One draw of u gives a stochastic estimate of the bound; averaging
    over the test set (and more draws) estimates the expectation. A uniform density on [0, 1]^D
    (log_density = 0) gives exactly 8 bits/dim.
    """
    if scale <= 0:
        raise ValueError(f"scale: expected a > 0, got {scale}")
    log_density = _t(log_density)
    if log_density.dim() != 1:
        raise ValueError(f"log_density: expected per-example values (B,), got {tuple(log_density.shape)}")
    per_example = -log_density - num_dims * math.log(scale)
    return _reduce(per_example, reduction, num_dims)


def logit_transform(y: ArrayLike, alpha: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """RealNVP/Glow/MAF logit pre-processing and its per-example log-Jacobian.

    ``s = α + (1 − 2α) y``, ``z = ln s − ln(1 − s)``; ``ln |dz/dy| = Σᵢ [ln(1 − 2α) − ln sᵢ −
    ln(1 − sᵢ)]``. Returns ``(z, log_det)`` with z shaped like y and log_det of shape (B,). Then
    ``ln p_Y(y) = ln p_Z(z) + log_det`` and ``dequantized_nll`` adds the bin width. α = 0.05 for
    CIFAR-10 (RealNVP, the course), 1e-6 for MNIST (MAF).
    """
    if not 0.0 <= alpha < 0.5:
        raise ValueError(f"alpha: expected 0 <= alpha < 0.5, got {alpha}")
    y = _t(y)
    s = alpha + (1.0 - 2.0 * alpha) * y
    z = torch.log(s) - torch.log1p(-s)
    log_det = math.log(1.0 - 2.0 * alpha) - torch.log(s) - torch.log1p(-s)
    return z, _per_example(log_det)


def logit_dequantized_nll(
    log_density_z: ArrayLike,
    y: ArrayLike,
    *,
    alpha: float = 0.05,
    scale: float = 1.0 / 256,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Data-space NLL bound of a flow trained on logit-transformed dequantized data.

    ``log_density_z`` = ln p_Z(z) (B,) for z = logit(α + (1 − 2α) y), y = a(x + u) the dequantized
    data (shape (B, ...)). ``−ln P(x) ≤ −[ln p_Z(z) + log_det(y)] − D ln a``: the Jacobian of the
    logit map (``logit_transform``) and the bin width (``dequantized_nll``) are both included —
    reporting −ln p_Z alone (logit space) is not comparable with anything.
    """
    y = _t(y)
    _, log_det = logit_transform(y, alpha)
    return dequantized_nll(_t(log_density_z) + log_det, _dims(y), scale=scale, reduction=reduction)


def discretized_logistic_mixture_nll(
    x: ArrayLike,
    logit_probs: ArrayLike,
    means: ArrayLike,
    log_scales: ArrayLike,
    coeffs: ArrayLike | None = None,
    reduction: Reduction = "none",
    *,
    num_levels: int = 256,
) -> torch.Tensor:
    """NLL of 8-bit images under PixelCNN++'s discretized logistic mixture (Salimans et al. 2017).

    Shapes: ``x`` (B, C, H, W) integer levels in [0, 255]; ``logit_probs`` (B, K, H, W) mixture
    logits (one component per pixel, shared by its channels); ``means``, ``log_scales`` (B, K, C, H, W);
    ``coeffs`` (B, K, 3, H, W) for RGB, already squashed (openai/pixel-cnn applies tanh) or None.
    With x̃ = 2x/255 − 1 and bin half-width 1/255, per sub-pixel and component k:
      P(x̃|k) = σ((x̃ + 1/255 − μ)/s) − σ((x̃ − 1/255 − μ)/s)   for 0 < x < 255,
      P(x̃|k) = σ((x̃ + 1/255 − μ)/s) at x = 0, and 1 − σ((x̃ − 1/255 − μ)/s) at x = 255,
    with μ_G += c₀ x̃_R, μ_B += c₁ x̃_R + c₂ x̃_G (autoregressive RGB coupling); log s is clamped at
    −7 and a bin mass below 1e-5 falls back to ln pdf(x̃) − ln 127.5, as in openai/pixel-cnn.
    ``ln P(pixel) = logsumexp_k [ln π_k + Σ_c ln P(x̃_c|k)]``; the NLL is −Σ over pixels.
    """
    levels = _as_labels(x, num_levels)
    x_t = 2.0 * levels.to(torch.float64) / (num_levels - 1) - 1.0  # (B, C, H, W) in [-1, 1]
    logit_probs, means, log_scales = _t(logit_probs), _t(means), _t(log_scales)
    batch, channels, height, width = x_t.shape
    k = logit_probs.shape[1]
    if logit_probs.shape != (batch, k, height, width):
        raise ValueError(
            f"logit_probs: expected (B, K, H, W) = {(batch, k, height, width)}, got {tuple(logit_probs.shape)}"
        )
    for name, value in (("means", means), ("log_scales", log_scales)):
        if value.shape != (batch, k, channels, height, width):
            raise ValueError(
                f"{name}: expected (B, K, C, H, W) = {(batch, k, channels, height, width)}, got {tuple(value.shape)}"
            )
    x_k = x_t.unsqueeze(1).expand(batch, k, channels, height, width)  # (B, C, H, W) -> (B, K, C, H, W)
    if coeffs is not None:
        c = _t(coeffs)
        if channels != 3 or c.shape != (batch, k, 3, height, width):
            raise ValueError(f"coeffs: expected (B, K, 3, H, W) for RGB data, got {tuple(c.shape)}")
        mean_r = means[:, :, 0]
        mean_g = means[:, :, 1] + c[:, :, 0] * x_k[:, :, 0]
        mean_b = means[:, :, 2] + c[:, :, 1] * x_k[:, :, 0] + c[:, :, 2] * x_k[:, :, 1]
        means = torch.stack([mean_r, mean_g, mean_b], dim=2)
    log_scales = log_scales.clamp(min=-7.0)
    half_bin = 1.0 / (num_levels - 1)
    centred = x_k - means
    inv_s = torch.exp(-log_scales)
    plus_in = inv_s * (centred + half_bin)
    min_in = inv_s * (centred - half_bin)
    mid_in = inv_s * centred
    log_cdf_plus = plus_in - F.softplus(plus_in)  # ln σ(plus_in), used at x = 0
    log_one_minus_cdf_min = -F.softplus(min_in)  # ln(1 − σ(min_in)), used at x = 255
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    log_mass = torch.where(
        cdf_delta > 1e-5,
        torch.log(cdf_delta.clamp(min=1e-300)),
        log_pdf_mid - math.log((num_levels - 1) / 2.0),
    )
    log_probs = torch.where(x_k < -0.999, log_cdf_plus, torch.where(x_k > 0.999, log_one_minus_cdf_min, log_mass))
    # sum the channels of a pixel under component k, add ln π_k, then mix: (B, K, C, H, W) -> (B, H, W)
    log_pixel = torch.logsumexp(log_probs.sum(dim=2) + torch.log_softmax(logit_probs, dim=1), dim=1)
    return _reduce(-_per_example(log_pixel), reduction, channels * height * width)


def gaussian_kl(mu: ArrayLike, log_std: ArrayLike) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per example for a diagonal Gaussian: ½ Σⱼ (μⱼ² + σⱼ² − 1 − ln σⱼ²)."""
    mu, log_std = _t(mu), _t(log_std)
    kl = 0.5 * (mu**2 + torch.exp(2.0 * log_std) - 1.0 - 2.0 * log_std)
    return _per_example(kl)


def negative_elbo(
    log_px_given_z: ArrayLike, kl: ArrayLike, reduction: Reduction = "none", *, num_dims: int = 1
) -> torch.Tensor:
    """VAE bound: ``−ELBO = −E_q[ln p(x|z)] + KL(q(z|x) ‖ p(z)) ≥ −ln p(x)``, per example (B,).

    ``log_px_given_z`` is the single- (or multi-) sample reconstruction log-likelihood per example; it
    must be a mass (Bernoulli/categorical/discretized decoder) or a dequantized density (then add the
    bin width with ``dequantized_nll``). ``num_dims`` only matters for ``reduction="per_dim"``.
    """
    log_px_given_z, kl = _t(log_px_given_z), _t(kl)
    if log_px_given_z.shape != kl.shape or log_px_given_z.dim() != 1:
        raise ValueError(
            f"expected per-example (B,) terms, got log p(x|z) {tuple(log_px_given_z.shape)} and KL {tuple(kl.shape)}"
        )
    return _reduce(kl - log_px_given_z, reduction, num_dims)


def iwae_nll(log_weights: ArrayLike, reduction: Reduction = "none", *, num_dims: int = 1) -> torch.Tensor:
    """Importance-weighted NLL estimate (Burda et al. 2016), per example (B,).

    ``log_weights`` (B, k): ln wᵢ = ln p(x|zᵢ) + ln p(zᵢ) − ln q(zᵢ|x), zᵢ ~ q(·|x), with full
    log-densities (2π constants included, not the analytic KL). ``L_k = logsumexp_i ln wᵢ − ln k``
    and the NLL estimate is ``−L_k``. In expectation ELBO = L₁ ≤ L_k ≤ L_{k'} ≤ ln p(x) for k < k'.
    """
    log_weights = _t(log_weights)
    if log_weights.dim() != 2:
        raise ValueError(f"log_weights: expected (B, k), got {tuple(log_weights.shape)}")
    k = log_weights.shape[1]
    bound = torch.logsumexp(log_weights, dim=1) - math.log(k)
    return _reduce(-bound, reduction, num_dims)
