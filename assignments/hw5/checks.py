"""Homework 5 checks: turn the probes' raw answers into item results, on the host.

Every correctness check runs on inputs whose answer has a closed form:

    losses      stub critic f = p on real rows, q on generated ones (input gradient 1 everywhere):
                critic loss q - p + lambda GP, generator loss -q; with that stub GP = (sqrt(D) - 1)^2;
    clipping    critic parameters set half far outside [-c, c]: after one loss_critic, every Conv/Linear weight
                equals clamp(before, -c, c), and the critic's outputs in that call equal a forward with them;
    penalty     spies in the critic slot log their inputs x_hat, so the host recovers t per row
                (x_hat = t real + (1 - t) fake) and recomputes E (||grad f(x_hat)|| - 1)^2: linear f = <w, x>
                gives (||w|| - 1)^2 and d/dw = 2 (||w|| - 1) w / ||w||, quadratic f = 1/2 ||a x||^2 has gradient
                a^2 x_hat, zero f gives 1 (arXiv:1704.00028, eq. 3);
    power       one step from u_init: v = W^T u / ||.||, u = W v / ||.||, sigma = u^T W v; 100 steps reach the
                largest singular value (the host's W has a spectral gap of 3);
    SN layers   the output of every call is x (W / sigma_k)^T + b (conv: conv(x, W / sigma_k) + b, sigma of W
                reshaped (out, -1)); sigma_k never exceeds sigma_max and reaches it after 40 one-step calls when
                u is kept between calls;
    IS / FID    a stand-in network with the host's weights (linear logits; linear (B, d, 1, 1) features), every
                value recomputed in float64 (grader.metrics: inception_score, feature_statistics,
                frechet_distance), get_distance on non-commuting and rank-deficient covariances.

Sample quality of the WGAN-GP and the SN-GAN trained by the grader's loop: 1 - KID / KID of "mean image + noise"
on the host classifier's standardised features (grader.metrics.sample_quality), at the host's z.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg, stats

from grader.checks import CheckContext, CheckResult, check, generator_reach, inputs, stub_calls
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.latent import host_z_samples
from grader.metrics.fid import feature_statistics, frechet_distance
from grader.metrics.inception import inception_features, load_inception, weights_path
from grader.metrics.inception_score import inception_score
from grader.metrics.reference import compute_reference_stats
from grader.metrics.sample_quality import class_shares, kid_score
from grader.rubric import load_rubric

RUBRIC = load_rubric(Path(__file__).with_name("rubric.yaml"))
GAN_DATA = {"ci": ("digits", None), "full": ("cifar10", 5000)}  # (dataset and classifier, test images used)
STUB_REAL = 32  # real images in the stub-critic calls
STUB_CASES = ((0.8, -0.3, 0.0), (-1.2, 0.6, 0.0), (0.4, 0.9, 2.5))  # (f on real rows, f on others, gp_weight)
CRITIC_SCALES = (1.0, 1e2, 1e4)  # a fresh critic on real images times these: raw scores grow, squashed ones do not
CLIP_C = 0.05
GP_BATCH, GP_CALLS, GP_NORM = 64, 4, 1.7  # ||w|| of the linear spy: not 1, so the penalty is not 0
PI_SINGULAR = (3.0, 1.0, 0.7, 0.4, 0.2)  # the power-iteration matrix (7 x 5): a gap of 3
SN_LINEAR_SINGULAR = (3.0, 1.0, 0.8, 0.5, 0.3, 0.2)  # (6 x 10)
SN_CONV_SINGULAR = (2.5, 0.8, 0.6, 0.4)  # (4, 3, 3, 3) reshaped to (4 x 27)
SN_CALLS = 40
IS_SPLITS = (10, 4)
IS_N, FID_DIM, STATS_N = 1000, 12, 500
METRIC_BATCH = 64  # batches of the IS / FID functions: the images are not a multiple of it
RTOL, ATOL = 1e-4, 1e-6
COVERAGE_SHARE = 0.03


def _with_singular_values(rng: np.random.Generator, rows: int, cols: int, singular: tuple[float, ...]) -> np.ndarray:
    u = np.linalg.qr(rng.standard_normal((rows, rows)))[0][:, : len(singular)]
    v = np.linalg.qr(rng.standard_normal((cols, cols)))[0][:, : len(singular)]
    return (u * np.asarray(singular)) @ v.T


def _covariance(rng: np.random.Generator, d: int, rank: int) -> np.ndarray:
    a = rng.standard_normal((d, rank))
    return a @ a.T / rank


def _is_probs(rng: np.random.Generator) -> np.ndarray:
    """Class probabilities whose confidence and classes drift along the rows, so each split has its own IS."""
    logits = rng.standard_normal((IS_N, 10))
    sharp = np.linspace(0.2, 4.0, IS_N)[:, None]
    favoured = (np.arange(IS_N) * 10 // IS_N + rng.integers(0, 3, IS_N)) % 10
    logits[np.arange(IS_N), favoured] += 2.0
    z = sharp * logits
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    """Everything the probes get (`needs=` in probes.py)."""
    budgets = RUBRIC.profile(profile).budgets
    if profile == "full":
        weights_path()  # no grading without the Inception weights: the error names the command that installs them
    rng = np.random.default_rng(seed)
    name, _ = GAN_DATA[profile]
    train = load_dataset(name, "train")[0]
    test = load_dataset(name, "test")[0]
    shape = train.shape[1:]
    dim = int(np.prod(shape))
    gan_images = np.round(train * 255).astype(np.uint8) if profile == "full" else train
    gp_real = train[rng.choice(len(train), GP_BATCH, replace=False)]
    linear_w = rng.standard_normal(dim)
    gp_weights = np.stack([GP_NORM * linear_w / np.linalg.norm(linear_w), rng.uniform(0.5, 1.5, dim), np.zeros(dim)])
    pi_weight = _with_singular_values(rng, 7, 5, PI_SINGULAR)
    sn_conv = _with_singular_values(rng, 4, 27, SN_CONV_SINGULAR).reshape(4, 3, 3, 3)
    features = rng.standard_normal((STATS_N, FID_DIM)) @ rng.standard_normal((FID_DIM, FID_DIM)) + rng.normal(
        0, 2, FID_DIM
    )
    mus = rng.normal(0, 1, (8, 6))
    sigmas = np.stack(  # pairs (2k, 2k + 1): full rank, two of ranks 2 and 3 (as from fewer samples than features)
        [_covariance(rng, 6, rank) for rank in (6, 6, 2, 3, 3, 2)] + [_covariance(rng, 6, 6)] * 2
    )
    mus[7] = mus[6]  # a pair of equal distributions: distance 0
    n_samples, z_dim = int(budgets["wgan_gp_sample"]["n"]), int(budgets["wgan_model"]["z_dim"])
    noisy = np.clip(0.8 * train[: len(test)] + rng.normal(0, 0.15, test.shape), 0, 1)  # FID of a few units
    return {
        "gan_shape": np.array(shape, dtype=np.int64),
        "gan_images": gan_images,
        "gan_real": train[np.sort(rng.choice(len(train), STUB_REAL, replace=False))],
        "wgan_stub": np.array(STUB_CASES, dtype=np.float64),
        "critic_scales": np.array(CRITIC_SCALES, dtype=np.float32),
        "clip_c": np.array([CLIP_C], dtype=np.float64),
        "gp_real": gp_real,
        "gp_fake": rng.uniform(0, 1, gp_real.shape).astype(np.float32),
        "gp_weights": gp_weights.astype(np.float32),
        "gp_calls": np.array([GP_CALLS], dtype=np.int64),
        "pi_weight": pi_weight.astype(np.float32),
        "pi_u": rng.standard_normal(7).astype(np.float32),
        "pi_v": rng.standard_normal(5).astype(np.float32),
        "pi_iters": np.array([1, 100], dtype=np.int64),
        "sn_linear_weight": _with_singular_values(rng, 6, 10, SN_LINEAR_SINGULAR).astype(np.float32),
        "sn_linear_bias": rng.normal(0, 0.5, 6).astype(np.float32),
        "sn_linear_x": rng.standard_normal((5, 10)).astype(np.float32),
        "sn_conv_weight": sn_conv.astype(np.float32),
        "sn_conv_bias": rng.normal(0, 0.5, 4).astype(np.float32),
        "sn_conv_x": rng.standard_normal((2, 3, 6, 6)).astype(np.float32),
        "sn_calls": np.array([SN_CALLS], dtype=np.int64),
        "gan_z": rng.standard_normal((n_samples, z_dim)).astype(np.float32),
        "metric_batch": np.array([METRIC_BATCH], dtype=np.int64),
        "standin_logits_weight": (rng.standard_normal((10, dim)) * 3 / math.sqrt(dim)).astype(np.float32),
        "standin_logits_bias": rng.normal(0, 0.5, 10).astype(np.float32),
        "standin_features_weight": (rng.standard_normal((FID_DIM, dim)) * 4 / math.sqrt(dim)).astype(np.float32),
        "standin_features_bias": rng.normal(0, 0.5, FID_DIM).astype(np.float32),
        "is_images": test.astype(np.float32),
        "is_host_probs": _is_probs(rng),
        "is_splits": np.array(IS_SPLITS, dtype=np.int64),
        "fid_images_a": test.astype(np.float32),
        "fid_images_b": noisy.astype(np.float32),
        "fid_host_features": features,
        "fid_cases_mu": mus,
        "fid_cases_sigma": sigmas,
    }


def _close(got: np.ndarray | float, want: np.ndarray | float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=atol))


def _one(ctx: CheckContext, key: str) -> float:
    return float(ctx.tensor(key, shape=(1,))[0])


# ---------------------------------------------------------------- losses and clipping


def _critic_hint(got: float, p: float, q: float, penalty: float) -> str:
    sig = 1 / (1 + math.exp(-q)) - 1 / (1 + math.exp(-p))
    if math.isclose(got, p - q + penalty, rel_tol=RTOL):
        return " (the sign is flipped: the critic minimises E f(G(z)) - E f(x))"
    if math.isclose(got, sig + penalty, rel_tol=RTOL, abs_tol=ATOL):
        return " (a sigmoid on the critic's output: a WGAN critic returns raw scores)"
    if penalty and math.isclose(got, q - p, rel_tol=RTOL):
        return " (gp_weight * gradient_penalty(x, fake) is missing from critic_loss)"
    return ""


@check("wgan_losses")
def wgan_losses(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("wgan_losses").values
    failures = []
    outputs = ctx.tensor("wgan_losses/critic_outputs", shape=(len(CRITIC_SCALES), STUB_REAL))
    if np.abs(outputs[-1]).max() <= 1 + 1e-6:
        failures.append(
            f"the critic's outputs stay in [{outputs.min():.3g}, {outputs.max():.3g}] on images scaled by "
            f"{CRITIC_SCALES[-1]:g}: a sigmoid or tanh at the end; a WGAN critic returns raw, unbounded scores"
        )
    for case, (p, q, gp_weight) in enumerate(STUB_CASES):
        where = f"with f = {p} on real and {q} on generated images" + (f", gp_weight {gp_weight}" if gp_weight else "")
        penalty = gp_weight * _one(ctx, f"wgan_losses/penalty_{case}") if gp_weight else 0.0
        calls = stub_calls(record.get(f"critic_calls_{case}"))
        if sum(r for r, _ in calls) != STUB_REAL or sum(f for _, f in calls) == 0:
            failures.append(
                f"{where}: loss_critic(x) must call the critic on the {STUB_REAL} real images x and on G(z)"
            )
            continue
        got, want = _one(ctx, f"wgan_losses/critic_loss_{case}"), q - p + penalty
        if not math.isclose(got, want, rel_tol=RTOL, abs_tol=ATOL):
            failures.append(
                f"{where}: critic_loss = {got:.6g}, expected E f(G(z)) - E f(x)"
                + (" + gp_weight * penalty" if gp_weight else "")
                + f" = {want:.6g}{_critic_hint(got, p, q, penalty)}"
            )
        got = _one(ctx, f"wgan_losses/generator_loss_{case}")
        if not stub_calls(record.get(f"g_calls_{case}")):
            failures.append(f"{where}: loss_generator(n) must call the critic on generated images")
        elif not math.isclose(got, -q, rel_tol=RTOL, abs_tol=ATOL):
            hint = (
                " (the sign is flipped)"
                if math.isclose(got, q, rel_tol=RTOL)
                else " (a sigmoid on the critic's output)"
                if math.isclose(got, -1 / (1 + math.exp(-q)), rel_tol=RTOL)
                else ""
            )
            failures.append(f"{where}: generator_loss = {got:.6g}, expected -E f(G(z)) = {-q:.6g}{hint}")
    params, reached, problem = generator_reach(record)
    failures += [problem] if problem else []
    message = (
        f"critic loss E f(G(z)) - E f(x) (+ lambda GP), generator loss -E f(G(z)); {reached} of {params} generator "
        "parameters reached"
    )
    return CheckResult.of_cases(failures, 2 * len(STUB_CASES) + 2, message)


@check("wgan_clip")
def wgan_clip(ctx: CheckContext) -> CheckResult:
    ctx.probe("wgan_clip")
    before = ctx.tensor("wgan_clip/before")
    after = ctx.tensor("wgan_clip/after", shape=before.shape)
    weight = ctx.tensor("wgan_clip/is_weight", shape=before.shape).astype(bool)
    want = np.clip(before, -CLIP_C, CLIP_C)
    wrong = weight & ~np.isclose(after, want, rtol=0, atol=1e-7)
    if wrong.any():
        outside = weight & (np.abs(before) > CLIP_C)
        if np.array_equal(after[weight], before[weight]):
            why = (
                "no weight changed: clip_weights must clamp the parameters' values (not their gradients), and "
                "loss_critic must call it when clip_c is set"
            )
        elif np.all(np.abs(after[weight]) <= CLIP_C + 1e-7):
            why = "the weights are inside [-c, c] but in-range values changed: clamp each value, do not rescale"
        elif (wrong & outside).sum() < outside.sum():
            missed = int((wrong & outside).sum())
            why = f"{missed} of {int(outside.sum())} weights out of range stayed: clip every Conv2d and Linear layer"
        else:
            why = "the weights do not equal clamp(w, -c, c)"
        return CheckResult(0.0, f"after loss_critic(x) with clip_c = {CLIP_C}: {why}")
    outputs = ctx.tensor("wgan_clip/outputs")
    reforward = ctx.tensor("wgan_clip/reforward", shape=outputs.shape)
    if not _close(outputs, reforward, 1e-4, 1e-6):
        return CheckResult(
            0.0,
            "the weights were clipped only after the critic ran: loss_critic must clip first, so that the loss is "
            "computed by the clipped critic",
        )
    return CheckResult(
        1.0, f"{int(weight.sum())} Conv/Linear weight values clamped into [-{CLIP_C}, {CLIP_C}] before the critic ran"
    )


# ---------------------------------------------------------------- the gradient penalty


def _interpolation(ctx: CheckContext, kind: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The spy's inputs (calls, B, D) and t per row; '' or what is wrong with the interpolation."""
    real = ctx.inputs["gp_real"].reshape(GP_BATCH, -1).astype(np.float64)
    fake = ctx.inputs["gp_fake"].reshape(GP_BATCH, -1).astype(np.float64)
    calls = int(ctx.probe("gradient_penalty").values.get(f"calls_{kind}", 0))
    if calls != GP_CALLS:
        return (
            np.zeros(0),
            np.zeros(0),
            (
                f"{GP_CALLS} calls of gradient_penalty(real, fake) ran the critic {calls} times: once per call, on the "
                "interpolates"
            ),
        )
    x_hat = ctx.tensor(f"gradient_penalty/inputs_{kind}").reshape(GP_CALLS, GP_BATCH, -1)
    diff = real - fake
    t = ((x_hat - fake) * diff).sum(-1) / (diff * diff).sum(-1)
    residual = np.abs(x_hat - (t[..., None] * real + (1 - t[..., None]) * fake)).max()
    if residual > 1e-4:
        return (
            x_hat,
            t,
            (
                "the critic's inputs are not t real + (1 - t) fake with one t per sample (a t per element, or other "
                f"points: off by up to {residual:.3g})"
            ),
        )
    if t.min() < -1e-6 or t.max() > 1 + 1e-6:
        return x_hat, t, f"the interpolation weights leave [0, 1] (from {t.min():.3g} to {t.max():.3g}): t ~ U[0, 1]"
    if np.ptp(t, axis=1).max() < 1e-6:
        return x_hat, t, "one t for the whole batch: draw one t ~ U[0, 1] per sample"
    return x_hat, t, ""


def _host_penalty(kind: str, weights: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """E (||grad f(x_hat)|| - 1)^2 per call, for the spy `kind` with weight row `weights`."""
    if kind == "linear":
        norms = np.full(x_hat.shape[:2], np.linalg.norm(weights))
    elif kind == "quadratic":
        norms = np.linalg.norm(weights**2 * x_hat, axis=-1)
    else:
        norms = np.zeros(x_hat.shape[:2])
    return ((norms - 1) ** 2).mean(axis=1)


@check("gradient_penalty")
def gradient_penalty(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("gradient_penalty").values
    weights = ctx.inputs["gp_weights"].astype(np.float64)
    failures, ts = [], []
    for kind, w in zip(("linear", "quadratic", "zero"), weights, strict=True):
        x_hat, t, problem = _interpolation(ctx, kind)
        if problem:
            failures.append(f"{kind} critic: {problem}")
            continue
        ts.append(t.ravel())
        got = ctx.tensor(f"gradient_penalty/values_{kind}", shape=(GP_CALLS,))
        want = _host_penalty(kind, w, x_hat.astype(np.float64))
        if not _close(got, want, RTOL, 1e-6):
            hint = ""
            if kind == "linear" and _close(got, (np.linalg.norm(w) ** 2 - 1) ** 2 * np.ones(GP_CALLS)):
                hint = " (the squared norm: use ||grad||_2, not ||grad||^2)"
            failures.append(
                f"{kind} critic: penalty {got[0]:.6g}, expected E(||grad f(x_hat)||_2 - 1)^2 = {want[0]:.6g} (the norm "
                f"over all of a sample's elements, the mean over the batch){hint}"
            )
    w = weights[0]
    want_grad = 2 * (np.linalg.norm(w) - 1) * w / np.linalg.norm(w)
    if not record.get("requires_grad"):
        failures.append(
            "the penalty does not depend on the critic's weights: torch.autograd.grad(..., create_graph=True), so "
            "that its gradient reaches the critic"
        )
    elif not _close(ctx.tensor("gradient_penalty/weight_grad", shape=w.shape), want_grad, 1e-4, 1e-6):
        failures.append("the penalty's gradient w.r.t. a linear critic's w is not 2 (||w|| - 1) w / ||w||")
    if ts and not failures:
        pooled = np.concatenate(ts)
        p_value = stats.kstest(pooled, "uniform").pvalue
        if p_value < 1e-6:
            failures.append(f"t is not uniform on [0, 1] (KS p = {p_value:.2g} over {len(pooled)} draws)")
    return CheckResult.of_cases(
        failures,
        5,
        f"penalty E(||grad f(x_hat)||_2 - 1)^2 as the closed forms of 3 critics, {GP_CALLS} calls each; t ~ U[0, 1]",
    )


# ---------------------------------------------------------------- spectral normalisation


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


@check("sn_power_iteration")
def sn_power_iteration(ctx: CheckContext) -> CheckResult:
    ctx.probe("power_iteration")
    w = ctx.inputs["pi_weight"].astype(np.float64)
    u0, v0 = ctx.inputs["pi_u"].astype(np.float64), ctx.inputs["pi_v"].astype(np.float64)
    got = {key: ctx.tensor(f"power_iteration/{key}_1") for key in ("sigma", "u", "v")}
    v = _normalize(w.T @ u0)
    u = _normalize(w @ v)
    u_first = _normalize(w @ v0)
    v_second = _normalize(w.T @ u_first)
    candidates = [(u @ w @ v, u, v), (u_first @ w @ v_second, u_first, v_second)]
    if not any(
        _close(got["sigma"], [s], 1e-5, 1e-6) and _close(got["u"], cu, 1e-4, 1e-5) and _close(got["v"], cv, 1e-4, 1e-5)
        for s, cu, cv in candidates
    ):
        return CheckResult(
            0.0,
            f"one step from u_init: sigma = {float(got['sigma'][0]):.6g}, expected {candidates[0][0]:.6g} "
            "(v = W^T u / ||W^T u||, u = W v / ||W v||, sigma = u^T W v)",
        )
    sigma = ctx.tensor("power_iteration/sigma_100")
    left, _, right = np.linalg.svd(w)
    u100, v100 = ctx.tensor("power_iteration/u_100", shape=(7,)), ctx.tensor("power_iteration/v_100", shape=(5,))
    if (
        not _close(sigma, [PI_SINGULAR[0]], 1e-5, 1e-6)
        or abs(u100 @ left[:, 0]) < 1 - 1e-5
        or abs(v100 @ right[0]) < 1 - 1e-5
    ):
        return CheckResult(
            0.0,
            f"100 steps: sigma = {float(sigma[0]):.6g}, expected the largest singular value {PI_SINGULAR[0]} (and its "
            "singular vectors as u, v)",
        )
    return CheckResult(1.0, f"one step exact; 100 steps give sigma = {float(sigma[0]):.6f} = ||W||_2")


def _sigmas(outputs: np.ndarray, base: np.ndarray, bias: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    """sigma_k with outputs[k] = base / sigma_k + bias, or what is wrong."""
    shifted = outputs - bias
    sigmas = (base * base).sum() / (base * shifted).reshape(len(outputs), -1).sum(axis=1)
    residual = np.abs(shifted - base[None] / sigmas.reshape(-1, *[1] * base.ndim)).max()
    if not np.all(np.isfinite(sigmas)) or residual > 1e-4 * np.abs(base).max() / sigmas.min():
        return (
            sigmas,
            f"{what}: the output is not the layer's function with the weight W / sigma (off by {residual:.3g})",
        )
    return sigmas, ""


@check("sn_layers")
def sn_layers(ctx: CheckContext) -> CheckResult:
    ctx.probe("sn_layers")
    w = ctx.inputs["sn_linear_weight"].astype(np.float64)
    x = ctx.inputs["sn_linear_x"].astype(np.float64)
    conv_w = ctx.inputs["sn_conv_weight"].astype(np.float64)
    conv_x = ctx.inputs["sn_conv_x"].astype(np.float64)
    conv_base = F.conv2d(torch.from_numpy(conv_x), torch.from_numpy(conv_w), padding=1).numpy()
    layers = (
        ("SpectralNormLinear", "linear", x @ w.T, ctx.inputs["sn_linear_bias"], SN_LINEAR_SINGULAR[0]),
        ("SpectralNormConv2D", "conv", conv_base, ctx.inputs["sn_conv_bias"].reshape(-1, 1, 1), SN_CONV_SINGULAR[0]),
    )
    failures, found = [], []
    for name, key, base, bias, sigma_max in layers:
        outputs = ctx.tensor(f"sn_layers/{key}", shape=(SN_CALLS, *base.shape))
        sigmas, problem = _sigmas(outputs, base, bias.astype(np.float64), name)
        if problem or np.allclose(sigmas, 1.0, rtol=1e-6):
            failures.append(problem or f"{name}: the output uses W itself: divide the weight by sigma")
            continue
        found.append(f"{name} sigma {sigmas[0]:.4f} -> {sigmas[-1]:.5f} (||W||_2 = {sigma_max})")
        if sigmas.max() > sigma_max * (1 + 1e-4):
            failures.append(
                f"{name}: sigma reached {sigmas.max():.5g} > ||W||_2 = {sigma_max}: sigma = u^T W v of the weight "
                "reshaped to (out_channels, -1)"
            )
        elif abs(sigmas[-1] / sigma_max - 1) > 1e-4:
            hint = (
                ": u is not kept between calls (store the new u, e.g. in a buffer)"
                if np.ptp(sigmas) < 1e-6 * sigma_max
                else ": sigma of the weight reshaped to (out_channels, -1)"
            )
            failures.append(
                f"{name}: after {SN_CALLS} calls with power_iterations=1, sigma = {sigmas[-1]:.5g}, expected "
                f"||W||_2 = {sigma_max}{hint}"
            )
    return CheckResult.of_cases(failures, 2, "; ".join(found))


# ---------------------------------------------------------------- the trained WGAN-GP and SN-GAN


def _trained_samples(ctx: CheckContext, variant: str) -> np.ndarray:
    """The variant's samples at the host's z, validated: G(z) in [0, 1] with z ~ N(0, I)."""
    probe = f"{variant}_sample"
    if ctx.probe(probe).values.get("trained") is not True:
        raise ArtifactError(f"the {variant} did not train (see the {variant}_train probe): no trained samples to score")
    samples, problem = host_z_samples(ctx, probe, tuple(ctx.inputs["gan_shape"].tolist()))
    if problem:
        raise ArtifactError(problem)
    return np.clip(samples, 0.0, 1.0).astype(np.float32)


def _quality(ctx: CheckContext, variant: str, title: str) -> CheckResult:
    samples = _trained_samples(ctx, variant)
    name, n_test = GAN_DATA[ctx.profile]
    score = kid_score(name, samples, seed=ctx.seed, n_test=n_test)
    covered = int((class_shares(name, samples) >= COVERAGE_SHARE).sum())
    d_losses = ctx.tensor(f"{variant}_train/d_losses")
    ctx.figure(f"{title} samples (the host's z)", samples[:64])
    ctx.curve(f"{title}: critic loss under the grader's loop", d_losses.tolist())
    details: dict[str, float | str | bool | None] = {
        "kid": score.kid,
        "anchor_kid": score.anchor,
        "classes_covered": covered,
    }
    fid = ""
    if ctx.profile == "full":  # the standard FID as well (reported, not scored: it needs 10k samples to be stable)
        details["inception_fid"] = _inception_fid(samples)
        fid = f"; Inception FID {details['inception_fid']:.2f} against the CIFAR-10 test set"
    return CheckResult(
        value=score.score,
        message=f"KID {score.kid:.4f} on standardised classifier features vs {score.anchor:.4f} for 'mean image + "
        f"noise' (score 1 - KID / anchor = {score.score:.3f}); {covered} of 10 classes hold >= {COVERAGE_SHARE:.0%} "
        f"of the samples; critic loss at the end {float(d_losses[-100:].mean()):.3f}{fid}",
        details=details,
    )


def _inception_fid(samples: np.ndarray) -> float:
    """FID of the samples' Inception pool3 features against the CIFAR-10 test set's (cached statistics). Without
    installed weights this raises the error that names the install command."""
    reference = compute_reference_stats("cifar10", "test", extractor="inception")
    pool, _ = inception_features(load_inception(), samples)
    return reference.frechet().distance(*feature_statistics(pool))


@check("wgan_gp_quality")
def wgan_gp_quality(ctx: CheckContext) -> CheckResult:
    return _quality(ctx, "wgan_gp", "WGAN-GP")


@check("sngan_quality")
def sngan_quality(ctx: CheckContext) -> CheckResult:
    return _quality(ctx, "sngan", "SN-GAN")


# ---------------------------------------------------------------- IS and FID


def _standin(ctx: CheckContext, images_key: str, kind: str) -> np.ndarray:
    """The stand-in network's output on the input images, in float64."""
    x = ctx.inputs[images_key].reshape(len(ctx.inputs[images_key]), -1).astype(np.float64)
    weight = ctx.inputs[f"standin_{kind}_weight"].astype(np.float64)
    return x @ weight.T + ctx.inputs[f"standin_{kind}_bias"].astype(np.float64)


def _batches_hint(ctx: CheckContext, probe: str, key: str, n: int) -> str:
    batches = ctx.tensor(f"{probe}/{key}_batches").astype(int).tolist()
    if sum(batches) != n:
        return f" (the network saw {sum(batches)} images in batches {batches[:6]}...: every image once, in order)"
    return ""


@check("is_probs")
def is_probs(ctx: CheckContext) -> CheckResult:
    ctx.probe("is_probs")
    logits = _standin(ctx, "is_images", "logits")
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    got = ctx.tensor("is_probs/probs")
    if _close(got, want, 1e-4, 1e-6):
        return CheckResult(1.0, f"p(y|x) = softmax(logits) for {len(want)} images, in order")
    hint = _batches_hint(ctx, "is_probs", "probs", len(want))
    if not hint and _close(got, logits, 1e-4, 1e-5):
        hint = " (the logits themselves: apply a softmax)"
    elif not hint and got.shape == want.shape:
        twice = np.exp(want) / np.exp(want).sum(1, keepdims=True)
        if _close(got, twice, 1e-4, 1e-6):
            hint = " (softmax applied twice)"
    return CheckResult(
        0.0,
        f"get_inception_probs: expected softmax of the network's logits, shape {want.shape}; "
        f"got shape {got.shape}{hint}",
    )


def _is_mistakes(probs: np.ndarray, splits: int) -> dict[str, float]:
    """The IS that classic mistakes give, by what the message should say."""
    log_p = np.log(probs)

    def score(parts: list[np.ndarray], kl: object) -> float:
        return float(np.mean([np.exp(kl(part).mean()) for part in parts]))  # type: ignore[operator]

    consecutive = np.array_split(np.arange(len(probs)), splits)
    strided = [np.arange(k, len(probs), splits) for k in range(splits)]

    def forward(rows: np.ndarray, marginal: np.ndarray | None = None) -> np.ndarray:
        m = np.log(probs[rows].mean(0)) if marginal is None else marginal
        return (probs[rows] * (log_p[rows] - m)).sum(1)

    def reverse(rows: np.ndarray) -> np.ndarray:
        m = probs[rows].mean(0)
        return (m * (np.log(m) - log_p[rows])).sum(1)

    return {
        "KL(p(y) || p(y|x)): the KL is reversed": score(consecutive, reverse),
        "p(y) as the exponent of the mean of the logs: p(y) is the mean of p(y|x)": score(
            consecutive, lambda rows: forward(rows, log_p[rows].mean(0))
        ),
        "splits of every n-th sample: the splits are consecutive slices": score(strided, forward),
    }


@check("is_score")
def is_score(ctx: CheckContext) -> CheckResult:
    ctx.probe("is_score")
    probs = ctx.inputs["is_host_probs"]
    failures, found = [], []
    for splits in IS_SPLITS:
        got = ctx.tensor(f"is_score/score_{splits}", shape=(2,))
        want = inception_score(np.log(probs), splits=splits)
        std_ddof1 = want.std * math.sqrt(splits / (splits - 1))
        if not math.isclose(got[0], want.mean, rel_tol=RTOL):
            # 1e-2: a student's log(p + eps) moves a reversed KL by ~2e-4 on the host's near-zero probabilities
            mistakes = _is_mistakes(probs, splits)
            hints = [why for why, value in mistakes.items() if math.isclose(got[0], value, rel_tol=1e-2)]
            failures.append(
                f"{splits} splits: IS = {got[0]:.6g}, expected {want.mean:.6g} (the mean over consecutive splits of "
                "exp(E_x KL(p(y|x) || p(y))), p(y) the split's mean of p(y|x))" + "".join(f" ({h})" for h in hints)
            )
        elif not any(math.isclose(got[1], s, rel_tol=1e-3, abs_tol=1e-8) for s in (want.std, std_ddof1)):
            failures.append(f"{splits} splits: std = {got[1]:.6g}, expected the std over splits {want.std:.6g}")
        else:
            found.append(f"{want.mean:.4f} ({splits} splits)")
    return CheckResult.of_cases(failures, len(IS_SPLITS), "IS " + ", ".join(found))


@check("fid_features")
def fid_features(ctx: CheckContext) -> CheckResult:
    ctx.probe("fid_features")
    failures = []
    want = _standin(ctx, "fid_images_a", "features")
    got = ctx.tensor("fid_features/features")
    if not _close(got, want, 1e-4, 1e-5):
        hint = _batches_hint(ctx, "fid_features", "features", len(want))
        if got.shape == (*want.shape, 1, 1):
            hint = " (the spatial dimensions are kept: features must be (N, d))"
        failures.append(
            f"get_features: expected the network's (N, d) = {want.shape} pool features, got {got.shape}{hint}"
        )
    features = ctx.inputs["fid_host_features"]
    mu, sigma = feature_statistics(features)
    got_mu, got_sigma = ctx.tensor("fid_features/mu"), ctx.tensor("fid_features/sigma")
    ddof0 = sigma * (len(features) - 1) / len(features)
    if not _close(got_mu, mu, 1e-4, 1e-6):
        failures.append(f"get_statistics: mu must be the mean over samples, shape ({FID_DIM},); got {got_mu.shape}")
    elif not (_close(got_sigma, sigma, 1e-4, 1e-6) or _close(got_sigma, ddof0, 1e-4, 1e-6)):
        hint = (
            " (rows taken as variables: np.cov(features, rowvar=False))"
            if got_sigma.shape == (len(features),) * 2
            else ""
        )
        failures.append(f"get_statistics: sigma must be the ({FID_DIM}, {FID_DIM}) covariance of the features{hint}")
    return CheckResult.of_cases(failures, 2, "features (N, d) in order; mean and covariance over samples")


def _distance_hint(got: float, want: float, diff: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> str:
    """What a wrong Frechet distance is, when it is a classic mistake."""
    root = float(np.trace(np.real(linalg.sqrtm(s1 @ s2))))
    base = want + 2 * root
    mistakes = {
        "||mu1 - mu2|| is not squared": want - diff @ diff + np.linalg.norm(diff),
        "the square root is taken elementwise: use the matrix square root of S1 S2": base
        - 2 * np.trace(np.sqrt(np.abs(s1 @ s2))),
        "sqrtm(S1) sqrtm(S2) is (S1 S2)^(1/2) only when S1 and S2 commute": base
        - 2 * float(np.trace(np.real(linalg.sqrtm(s1) @ linalg.sqrtm(s2)))),
    }
    return "".join(f" ({why})" for why, value in mistakes.items() if math.isclose(got, value, rel_tol=1e-4))


@check("fid_distance")
def fid_distance(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("fid_distance").values
    mus, sigmas = ctx.inputs["fid_cases_mu"], ctx.inputs["fid_cases_sigma"]
    names = (
        "full-rank covariances that do not commute",
        "rank-deficient covariances",
        "rank-deficient covariances (another pair)",
        "equal distributions",
    )
    got = ctx.tensor("fid_distance/distances", shape=(len(names),), finite=False)
    failures = []
    for k, name in enumerate(names):
        want = frechet_distance(mus[2 * k], sigmas[2 * k], mus[2 * k + 1], sigmas[2 * k + 1])
        if not np.isfinite(got[k]) or record.get(f"complex_{k}"):
            what = "a complex number" if record.get(f"complex_{k}") else str(got[k])
            failures.append(
                f"{name}: got {what}, expected {want:.6g} (the result must stay finite and real: scipy's sqrtm of a "
                "singular S1 S2 can be complex, take its real part)"
            )
            continue
        if math.isclose(got[k], want, rel_tol=1e-4, abs_tol=1e-6):
            continue
        hint = _distance_hint(got[k], want, mus[2 * k] - mus[2 * k + 1], sigmas[2 * k], sigmas[2 * k + 1])
        failures.append(
            f"{name}: distance {got[k]:.6g}, expected ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) = "
            f"{want:.6g}{hint}"
        )
    return CheckResult.of_cases(
        failures, len(names), "Frechet distance on non-commuting, rank-deficient and equal cases"
    )


@check("fid_end_to_end")
def fid_end_to_end(ctx: CheckContext) -> CheckResult:
    ctx.probe("fid_end_to_end")
    a, b = _standin(ctx, "fid_images_a", "features"), _standin(ctx, "fid_images_b", "features")
    want = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    got = float(ctx.tensor("fid_end_to_end/fid", shape=(1,))[0])
    if math.isclose(got, want, rel_tol=1e-3):
        return CheckResult(1.0, f"FID {got:.6g} of the stand-in network's features (host: {want:.6g})")
    return CheckResult(
        0.0, f"get_frechet_inception_distance: {got:.6g}, expected {want:.6g} from the network's features"
    )
