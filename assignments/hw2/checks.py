"""Homework 2 checks: turn the probes' raw outputs into item results, on the host.

Nothing the student's code reports about itself is trusted as a score. The ELBO items recompute the
reconstruction and KL terms with the reference helpers (`reference_solutions.vae`) from the model's
own mu_z, log_std_z and x_recon, and compare them with the loss dict; the metrics are computed here
from the same returned terms on the test set (`grader.metrics.nll`) and from samples
(`grader.metrics.classifier.fd_classifier`). Probe keys are documented in `probes.py`.

Units. Images x in [0, 1] are modelled as x̃ = 2x - 1 with p(x̃|z) = N(x_recon, I); every loss term is
in nats per image (summed over pixels or latent dimensions, averaged over the batch). The `*_nll`
metric is the test -ELBO minus the D/2·log(2π) that a unit-variance Gaussian decoder pays whatever it
learns, i.e. distortion ½‖x̃ - x_recon‖² plus rate KL(q‖p), in bits/dim: the full -ELBO of such a model
is ~99% that constant, so its ratio to the reference would not tell models apart. The full bound on
-log P(x) in bits/dim (with the 8-bit bin width) is reported in the message.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from grader.checks import CheckContext, CheckResult, check, inputs
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.metrics.classifier import fd_classifier
from grader.metrics.nll import bits_per_dim, dequantized_nll
from reference_solutions.vae import get_normal_KL, get_normal_nll

# profile -> (dataset, train images, test images, FD extractor); None = the whole split
DATASET = {"ci": ("patches", None, None, "patches"), "full": ("cifar10", 20000, 2000, "cifar10")}
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
ELBO_BETA = 0.5  # the beta of the loss-consistency model, so that ignoring beta shows
ELBO_RTOL, ELBO_ATOL = 1e-4, 1e-3
HELPER_RTOL, HELPER_ATOL = 1e-4, 1e-5
# Reparameterisation: per latent dimension, (z - mu) / exp(log_std) over images x draws must look N(0, 1).
EPS_MEAN_TOL = 0.3  # ~7 standard errors with 512 draws per dimension
EPS_STD_RANGE = (0.8, 1.25)
MIN_STD = 1e-3  # dimensions with a narrower posterior are skipped (float32 rounding of z)
ACTIVE_UNIT_VAR = 0.01  # Burda et al. (2016): a latent dimension is active if Var_x E_q[z_d] > 0.01
COURSE_VALUES = {  # COURSE.md §2.3: (args, expected)
    "kl_course_a": ("get_normal_KL(2, 3)", [200.2144]),
    "kl_course_b": ("get_normal_KL(2, 3, 4, 5)", [1.50925]),
    "kl_course_c": ("get_normal_KL([10, 10], [2, 4], [3, 5])", [49.2990, 1498.479]),
    "nll_course_a": ("get_normal_nll(2, 2, 3)", [3.9189]),
    "nll_course_b": ("get_normal_nll([10, 10], [2, 4], [3, 5])", [3.9982, 5.9197]),
}
MODELS = {"vae": "ConvVAE", "resnet": "ConvResNetVAE"}
# Block probes (sent to the sandbox as inputs): (in, out, kernel, stride) cases on a (B, C_in, H, W) input
BLOCK_INPUT = (2, 8, 8)  # (B, H, W)
BLOCK_CASES = [(4, 8, 3, 1), (8, 8, 3, 1), (4, 8, 3, 2), (8, 16, 5, 2), (4, 4, 3, 4)]
TRANSPOSE_CASES = [(8, 4, 4, 2), (8, 4, 6, 2), (8, 4, 8, 2), (4, 4, 3, 1), (8, 8, 4, 4)]


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    """Train/test images (float32 in [0, 1] for `ci`, uint8 for `full`) and random helper arguments."""
    name, n_train, n_test, _ = DATASET[profile]
    train = load_dataset(name, "train")[0][:n_train]
    test = load_dataset(name, "test")[0][:n_test]
    if profile == "full":  # CIFAR-10 is 8-bit: ship bytes, the probes divide by 255
        train, test = (np.round(a * 255).astype(np.uint8) for a in (train, test))
    rng = np.random.default_rng(seed)

    def draw(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, size=(3, 5)).astype(np.float32)

    return {
        "train_images": train,
        "test_images": test,
        "kl_m1": draw(-2, 2),
        "kl_s1": draw(-1.5, 1.5),
        "kl_m2": draw(-2, 2),
        "kl_s2": draw(-1.5, 1.5),
        "nll_x": draw(-2, 2),
        "nll_m": draw(-2, 2),
        "nll_s": draw(-1.5, 1.5),
        "elbo_beta": np.array([ELBO_BETA], dtype=np.float64),
        "block_input": np.array(BLOCK_INPUT, dtype=np.int64),
        "block_cases": np.array(BLOCK_CASES, dtype=np.int64),
        "transpose_cases": np.array(TRANSPOSE_CASES, dtype=np.int64),
    }


def _test(ctx: CheckContext) -> torch.Tensor:
    test = ctx.inputs["test_images"]
    return torch.from_numpy(test.astype(np.float64) / 255.0 if test.dtype == np.uint8 else test.astype(np.float64))


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float64))


# ---------------------------------------------------------------- helpers


def _compare(got: np.ndarray, want: torch.Tensor, what: str) -> str | None:
    want_np = want.numpy()
    if got.shape != want_np.shape:
        return f"{what} returned shape {got.shape}, expected the elementwise shape {want_np.shape} (no reduction)"
    close = np.isclose(got, want_np, rtol=HELPER_RTOL, atol=HELPER_ATOL)
    if close.all():
        return None
    err = float(np.abs(got - want_np).max())
    hint = ""
    if np.allclose(got, -want_np, rtol=1e-3):
        hint = " (the sign is flipped)"
    elif np.allclose(got, 2 * want_np, rtol=1e-3):
        hint = " (twice the right value: a missing 1/2?)"
    return f"{what} differs on {int((~close).sum())} of {close.size} elements (max abs error {err:.3g}){hint}"


@check("vae_helpers")
def vae_helpers(ctx: CheckContext) -> CheckResult:
    ctx.probe("helpers")
    d = {k: _t(v) for k, v in ctx.inputs.items() if k.startswith(("kl_", "nll_"))}
    cases = {
        "kl_default": ("get_normal_KL(mean1, logstd1) against N(0, 1)", get_normal_KL(d["kl_m1"], d["kl_s1"])),
        "kl_full": (
            "get_normal_KL(mean1, logstd1, mean2, logstd2)",
            get_normal_KL(d["kl_m1"], d["kl_s1"], d["kl_m2"], d["kl_s2"]),
        ),
        "kl_mean2": (
            "get_normal_KL(mean1, logstd1, mean2) with logstd2 left out",
            get_normal_KL(d["kl_m1"], d["kl_s1"], d["kl_m2"]),
        ),
        "nll": ("get_normal_nll(x, mean, logstd)", get_normal_nll(d["nll_x"], d["nll_m"], d["nll_s"])),
    }
    failures = []
    for key, (what, want) in cases.items():
        got = ctx.tensor(f"helpers/{key}")
        if (problem := _compare(got, want, f"{what} on random inputs")) is not None:
            failures.append(problem)
    for key, (call, values) in COURSE_VALUES.items():
        got = ctx.tensor(f"helpers/{key}")
        want = np.asarray(values)
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3):
            shown = np.array2string(got.ravel()[:4], precision=5)
            failures.append(f"{call} = {shown}, expected {values} (the notebook's own test values)")
    n = len(cases) + len(COURSE_VALUES)
    message = "; ".join(failures) or "KL and NLL of diagonal Gaussians match on random inputs and the test values"
    return CheckResult((n - len(failures)) / n, message)


# ---------------------------------------------------------------- loss = -ELBO of the model's outputs


def _reference_terms(
    x: torch.Tensor, mu: np.ndarray, log_std: np.ndarray, x_recon: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image -log p(x̃|z) (constant included) and KL(q(z|x) || N(0, I)), both (B,), float64."""
    x_tilde = 2.0 * x - 1.0
    recon = get_normal_nll(x_tilde, _t(x_recon), torch.zeros_like(x_tilde)).flatten(1).sum(1)
    kl = get_normal_KL(_t(mu), _t(log_std)).sum(1)
    return recon, kl


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=ELBO_RTOL, abs_tol=ELBO_ATOL)


def _diagnose_kl(got: float, want: float) -> str:
    if _close(got, -want):
        return " (the sign is flipped)"
    if _close(got, 2 * want):
        return " (twice the KL: a missing 1/2?)"
    return ""


def _elbo_problems(ctx: CheckContext, prefix: str) -> tuple[list[str], str]:
    probe = f"{prefix}_elbo"
    record = ctx.probe(probe)
    x = _test(ctx)
    n = ctx.tensor(f"{probe}/mu_z", shape=(None, None)).shape[0]
    x = x[:n]
    mu = ctx.tensor(f"{probe}/mu_z", shape=(n, None))
    log_std = ctx.tensor(f"{probe}/log_std_z", shape=mu.shape)
    x_recon = ctx.tensor(f"{probe}/x_recon", shape=tuple(x.shape))
    recon_ref, kl_ref = (float(v.mean()) for v in _reference_terms(x, mu, log_std, x_recon))
    got = {k: float(ctx.tensor(f"{probe}/{k}", shape=(1,))[0]) for k in ("recon_loss", "kl_loss")}
    key = str(record.values.get("loss_key", "total_loss"))
    total = float(ctx.tensor(f"{probe}/{key}", shape=(1,))[0])
    problems = []
    if not record.values.get("requires_grad", False):
        problems.append(f"loss(x)[{key!r}] does not require grad: nothing would be trained")
    dims = int(np.prod(x.shape[1:]))
    if not _close(got["recon_loss"], recon_ref):
        hint = " (a mean over pixels? sum them)" if _close(got["recon_loss"], recon_ref / dims) else ""
        problems.append(
            f"recon_loss = {got['recon_loss']:.6g}, but -log N(2x - 1; x_recon, I) of the model's own "
            f"x_recon, summed over pixels and averaged over the batch, is {recon_ref:.6g}{hint}"
        )
    if not _close(got["kl_loss"], kl_ref):
        problems.append(
            f"kl_loss = {got['kl_loss']:.6g}, but KL(N(mu_z, exp(log_std_z)^2) || N(0, I)) of the "
            f"model's own mu_z, log_std_z is {kl_ref:.6g}{_diagnose_kl(got['kl_loss'], kl_ref)}"
        )
    want_total = got["recon_loss"] + ELBO_BETA * got["kl_loss"]
    if not _close(total, want_total):
        hint = " (beta ignored?)" if _close(total, got["recon_loss"] + got["kl_loss"]) else ""
        problems.append(
            f"with beta = {ELBO_BETA}, {key} = {total:.6g} but recon_loss + beta * kl_loss = {want_total:.6g}{hint}"
        )
    summary = f"recon {recon_ref:.2f} + {ELBO_BETA} * KL {kl_ref:.3f} nats/image"
    return problems, summary


def _reparam_problems(ctx: CheckContext, prefix: str) -> tuple[list[str], str]:
    probe = f"{prefix}_reparam"
    record = ctx.probe(probe).values
    problems = []
    enc, dec = float(record.get("encoder_grad", 0.0)), float(record.get("decoder_grad", 0.0))
    if not enc > 1e-6 * max(dec, 1e-6):
        problems.append(
            f"the reconstruction term sends no gradient to the encoder (|grad| = {enc:.3g}, decoder "
            f"{dec:.3g}): sample z = mu + exp(log_std) * eps inside the graph, without detach() or "
            "torch.no_grad()"
        )
    mu = ctx.tensor(f"{probe}/mu_z", shape=(None, None, None))
    log_std = ctx.tensor(f"{probe}/log_std_z", shape=mu.shape)
    z = ctx.tensor(f"{probe}/z", shape=(mu.shape[0], mu.shape[1], None))
    if z.shape != mu.shape:
        return [
            *problems,
            f"the decoder received z with {z.shape[2]} values per image, but mu_z has {mu.shape[2]} dimensions",
        ], ""
    std = np.exp(log_std.astype(np.float64))
    eps = (z - mu) / std  # (draws, B, L): must be N(0, 1) noise
    usable = (std > MIN_STD).all(axis=(0, 1))
    if not usable.any():
        return [*problems, "every posterior standard deviation is below 1e-3; cannot check the sampler"], ""
    eps = eps[:, :, usable].reshape(-1, int(usable.sum()))
    mean, spread = eps.mean(axis=0), eps.std(axis=0)
    if float(np.abs(z - z[:1]).max()) == 0.0:
        problems.append("z is the same in every forward pass: forward(x) must draw z ~ q(z|x) with fresh noise")
    else:
        bad_std = (spread < EPS_STD_RANGE[0]) | (spread > EPS_STD_RANGE[1])
        if bad_std.any():
            j = int(np.argmax(np.abs(np.log(spread))))
            problems.append(
                f"the spread of z around mu_z is not exp(log_std_z) in {int(bad_std.sum())} of "
                f"{len(spread)} latent dimensions (e.g. std of (z - mu)/exp(log_std) = {spread[j]:.2f}, "
                "expected 1); is log_std read as a log-variance somewhere?"
            )
        if (np.abs(mean) > EPS_MEAN_TOL).any():
            problems.append(f"z is not centred on mu_z (mean of (z - mu)/exp(log_std) up to {np.abs(mean).max():.2f})")
    trained = "the trained model" if record.get("trained") else "an untrained model"
    return problems, f"z = mu + exp(log_std) * eps on {eps.size} draws of {trained} (encoder outputs shifted)"


def _elbo_item(ctx: CheckContext, prefix: str, with_reparam: bool) -> CheckResult:
    problems, summary = _elbo_problems(ctx, prefix)
    parts = [summary]
    if with_reparam:
        record = ctx.probe(f"{prefix}_model").values
        for block in ("ResNetBlock", "ResNetTransposeBlock"):
            if not record.get(f"uses_{block}", False):
                problems.append(f"{MODELS[prefix]} contains no {block}")
        reparam, reparam_summary = _reparam_problems(ctx, prefix)
        problems += reparam
        parts.append(reparam_summary)
    if problems:
        return CheckResult(0.0, "; ".join(problems))
    return CheckResult(1.0, "loss is the -ELBO of the model's own outputs: " + "; ".join(p for p in parts if p))


@check("vae_elbo")
def vae_elbo(ctx: CheckContext) -> CheckResult:
    return _elbo_item(ctx, "vae", with_reparam=False)


@check("resnet_elbo")
def resnet_elbo(ctx: CheckContext) -> CheckResult:
    return _elbo_item(ctx, "resnet", with_reparam=True)


@check("vae_reparam")
def vae_reparam(ctx: CheckContext) -> CheckResult:
    problems, summary = _reparam_problems(ctx, "vae")
    return CheckResult(0.0 if problems else 1.0, "; ".join(problems) or summary)


# ---------------------------------------------------------------- ResNet blocks


@check("resnet_blocks")
def resnet_blocks(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("resnet_blocks").values
    batch, height, width = BLOCK_INPUT
    failures, n = [], 0
    for name, cls, cases in (
        ("block", "ResNetBlock", BLOCK_CASES),
        ("transpose", "ResNetTransposeBlock", TRANSPOSE_CASES),
    ):
        for i, (c_in, c_out, k, s) in enumerate(cases):
            n += 1
            h, w = (height // s, width // s) if name == "block" else (height * s, width * s)
            call = f"{cls}({c_in}, {c_out}, kernel_size={k}, stride={s})"
            if f"{name}_{i}_error" in record:
                failures.append(
                    f"{call} failed on a ({batch}, {c_in}, {height}, {width}) input: {record[f'{name}_{i}_error']}"
                )
                continue
            got = tuple(int(v) for v in ctx.tensor(f"resnet_blocks/{name}_{i}_shape", shape=(4,), dtype="int64"))
            if got != (batch, c_out, h, w):
                failures.append(
                    f"{call} maps ({batch}, {c_in}, {height}, {width}) to {got}, expected {(batch, c_out, h, w)}"
                )
        n += 1
        low_on, low_off = record.get(f"{name}_min_relu_True"), record.get(f"{name}_min_relu_False")
        if not isinstance(low_on, float) or not isinstance(low_off, float):
            failures.append(
                f"{cls}(4, 4, 3, 1, final_relu=...) failed: "
                f"{record.get(f'{name}_relu_True_error') or record.get(f'{name}_relu_False_error')}"
            )
        elif low_on < 0 or low_off >= 0:
            failures.append(
                f"{cls}: final_relu=True must end with a ReLU (min {low_on:.3g}) and final_relu=False "
                f"must not (min {low_off:.3g} on random input)"
            )
    message = "; ".join(failures) or f"all {n} block cases have the right output shapes and final ReLU behaviour"
    return CheckResult((n - len(failures)) / n, message)


# ---------------------------------------------------------------- metrics


def _nll_item(ctx: CheckContext, prefix: str) -> CheckResult:
    probe = f"{prefix}_train"
    record = ctx.probe(probe).values
    x = _test(ctx)
    mu = ctx.tensor(f"{probe}/mu_z", shape=(len(x), None))
    log_std = ctx.tensor(f"{probe}/log_std_z", shape=mu.shape)
    x_recon = ctx.tensor(f"{probe}/x_recon", shape=tuple(x.shape))
    recon, kl = _reference_terms(x, mu, log_std, x_recon)
    dims = int(np.prod(x.shape[1:]))
    neg_elbo = recon + kl  # (N,) nats per image
    excess = float((neg_elbo - dims * HALF_LOG_2PI).mean())
    value = float(bits_per_dim(excess, dims))
    # -log P(x) <= -ELBO(x̃) - D log(2/256): x̃ = 2x - 1 has bins of width 2/256
    bound = float(bits_per_dim(float(dequantized_nll(-neg_elbo, dims, scale=2 / 256, reduction="mean")), dims))
    active = int((mu.astype(np.float64).var(axis=0) > ACTIVE_UNIT_VAR).sum())
    x_tilde = 2.0 * x - 1.0
    distortion = float((0.5 * (x_tilde - _t(x_recon)) ** 2).flatten(1).sum(1).mean())
    first, last = record.get("first_loss", float("nan")), record.get("last_loss", float("nan"))
    message = (
        f"rate (KL) {float(kl.mean()):.2f} + distortion {distortion:.2f} nats/image; -ELBO bound "
        f"{bound:.4f} bits/dim with the bin width; {active} of {mu.shape[1]} latent dimensions active; "
        f"train loss {first:.1f} -> {last:.1f} in {ctx.budget(probe).get('steps')} steps"
    )
    if active == 0:
        message += (
            "; posterior collapse: no latent dimension carries information about x (costs no points "
            "by itself, but the reconstructions are then one blurred average image)"
        )
    n_show = min(8, len(x))
    pairs = torch.cat([x[:n_show], ((_t(x_recon[:n_show]) + 1) / 2).clamp(0, 1)])
    ctx.figure(f"{MODELS[prefix]}: test images (top) and decoder means (bottom)", pairs.numpy(), nrow=n_show)
    return CheckResult(
        value=value,
        message=message,
        details={
            "bound_bits_per_dim": bound,
            "kl_nats": float(kl.mean()),
            "distortion_nats": distortion,
            "active_units": active,
        },
    )


def _fd_item(ctx: CheckContext, prefix: str) -> CheckResult:
    probe = f"{prefix}_sample"
    ctx.probe(probe)
    x = _test(ctx)
    n = int(ctx.budget(probe)["n"])
    samples = ctx.tensor(f"{probe}/samples", shape=(n, *x.shape[1:]), dtype="float32")
    low, high = float(samples.min()), float(samples.max())
    if low < 0.0 or high > 1.0:
        raise ArtifactError(
            f"samples: expected values in [0, 1] (sample() maps the decoder mean back from "
            f"[-1, 1]), got [{low:.3g}, {high:.3g}]"
        )
    ctx.figure(f"{MODELS[prefix]} samples", samples[:64])
    extractor = DATASET[ctx.profile][3]
    value = fd_classifier(extractor, samples, x.numpy().astype(np.float32))
    return CheckResult(value=value, message=f"FD-{extractor} of {n} samples against {len(x)} test images")


@check("vae_nll")
def vae_nll(ctx: CheckContext) -> CheckResult:
    return _nll_item(ctx, "vae")


@check("resnet_nll")
def resnet_nll(ctx: CheckContext) -> CheckResult:
    return _nll_item(ctx, "resnet")


@check("vae_fd")
def vae_fd(ctx: CheckContext) -> CheckResult:
    return _fd_item(ctx, "vae")


@check("resnet_fd")
def resnet_fd(ctx: CheckContext) -> CheckResult:
    return _fd_item(ctx, "resnet")
