"""Host-side verdicts on what a latent variable model's networks answered (hw2's VAEs, the UPM cVAE).

The probes record, under `harness.LatentTap`, the encoder's (mu, log_std), the z the student's own
code would have decoded, and whether that z carried gradient back to mu and log_std. From those, the
host decides whether the student's sampler is a working reparameterisation and whether `sample` draws
from the prior; the thresholds live here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from grader.checks import CheckContext

# Reparameterisation: (z - mu) / exp(log_std) of the student's own z must look N(0, 1): pooled over a
# fresh model's batch x n_latent draws, or per latent dimension over a trained model's test images.
EPS_MEAN_TOL = 0.3  # > 5 standard errors with the 360 test images of `digits` per dimension
EPS_STD_RANGE = (0.8, 1.25)
MIN_STD = 1e-3  # dimensions with a narrower posterior are skipped (float32 rounding of z)
# sample: the student's own z must look N(0, I), pooled over n x n_latent >= 8000 draws
PRIOR_MEAN_TOL, PRIOR_STD_RANGE = 0.1, (0.9, 1.1)
ACTIVE_UNIT_VAR = 0.01  # Burda et al. (2016): a latent dimension is active if Var_x E_q[z_d] > 0.01


def tapped_answers(ctx: CheckContext, probe: str, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """What a probe's tapped calls on inputs of `shape` (N, ...) recorded: mu_z, log_std_z (N, L), the decoder's
    outputs (like the inputs) and the student's own z (N, L), each checked for shape and finiteness."""
    mu = ctx.tensor(f"{probe}/mu_z", shape=(shape[0], None))
    log_std = ctx.tensor(f"{probe}/log_std_z", shape=mu.shape)
    decoded = ctx.tensor(f"{probe}/decoded", shape=tuple(shape))
    z = ctx.tensor(f"{probe}/z", shape=mu.shape)
    return mu, log_std, decoded, z


def reparam_problems(
    record: Mapping[str, object], mu: np.ndarray, log_std: np.ndarray, z: np.ndarray, per_dim: bool
) -> list[str]:
    """What is wrong with the student's own z (N, L) as a reparameterised draw from N(mu, exp(log_std)^2):
    gradient to the encoder (`z_reaches_mu`, `z_reaches_log_std` in the probe's `record`), then the
    standardised noise (z - mu) / exp(log_std), per latent dimension or pooled; dimensions with a
    posterior narrower than MIN_STD are left out."""
    cut = [name for name in ("mu", "log_std") if record.get(f"z_reaches_{name}") is not True]
    if cut:
        return [
            f"the reconstruction term sends no gradient to the encoder (the decoder's z does not depend "
            f"on {' and '.join(cut)} in the graph): sample z = mu + exp(log_std) * eps inside the graph, "
            "without detach() or torch.no_grad()"
        ]
    std = np.exp(log_std.astype(np.float64))
    usable = (std > MIN_STD).all(axis=0)
    if not usable.any():
        return ["every posterior standard deviation is below 1e-3; cannot check the sampler"]
    eps = ((z - mu) / std)[:, usable]  # (N, usable L)
    if float(np.abs(eps).max()) == 0.0:
        return ["z = mu_z in every draw: draw z ~ q(z|x) with fresh noise"]
    draws = eps if per_dim else eps.reshape(-1, 1)  # (N, L) or (N L, 1)
    mean, spread = draws.mean(axis=0), draws.std(axis=0)
    problems = []
    bad_std = (spread < EPS_STD_RANGE[0]) | (spread > EPS_STD_RANGE[1])
    if bad_std.any():
        j = int(np.argmax(np.abs(np.log(spread))))
        where = f"in {int(bad_std.sum())} of {len(spread)} latent dimensions " if per_dim else ""
        problems.append(
            f"the spread of z around mu_z is not exp(log_std_z) {where}(std of (z - mu)/exp(log_std) = "
            f"{spread[j]:.2f}, expected 1); is log_std read as a log-variance somewhere?"
        )
    if (np.abs(mean) > EPS_MEAN_TOL).any():
        problems.append(f"z is not centred on mu_z (mean of (z - mu)/exp(log_std) up to {np.abs(mean).max():.2f})")
    return problems


def prior_problem(z: np.ndarray, call: str) -> str | None:
    """Why the z (n, L) that `call` decoded does not look drawn from N(0, I), or None."""
    mean, spread = float(z.mean()), float(z.std())
    if abs(mean) > PRIOR_MEAN_TOL or not PRIOR_STD_RANGE[0] < spread < PRIOR_STD_RANGE[1]:
        return f"{call} decodes z with mean {mean:.2f} and std {spread:.2f}: draw z ~ p(z) = N(0, I)"
    return None


def active_units(mu: np.ndarray) -> int:
    """Latent dimensions whose posterior mean varies across the inputs (N, L) by more than ACTIVE_UNIT_VAR."""
    return int((mu.astype(np.float64).var(axis=0) > ACTIVE_UNIT_VAR).sum())


def host_z_samples(ctx: CheckContext, probe: str, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """The samples `harness.sample_host_z` saved for `probe`, (n, *shape) with n the host's z, and '' or what is
    wrong with them: images outside [0, 1], not the generator's outputs, or the student's own z not N(0, I)."""
    n, z_dim = ctx.inputs["gan_z"].shape
    samples = ctx.tensor(f"{probe}/samples", shape=(n, *shape))
    if samples.min() < -1e-4 or samples.max() > 1 + 1e-4:
        return samples, f"sample(n) must return images in [0, 1], got [{samples.min():.3g}, {samples.max():.3g}]"
    generated = ctx.tensor(f"{probe}/generated", shape=samples.shape)
    if not np.allclose(samples, generated, rtol=1e-5, atol=1e-5):
        return samples, "sample(n) must return the generator's outputs G(z)"
    return samples, prior_problem(ctx.tensor(f"{probe}/z", shape=(n, z_dim)).astype(np.float64), "sample(n)") or ""
