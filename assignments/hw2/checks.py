"""Homework 2 checks: turn the probes' raw answers into item results, on the host.

Nothing the student's code reports about itself is a score. Every call of the student's `loss` and
`sample` runs under hooks (`harness.LatentTap`) that record what `model.encoder` answered (mu_z, log_std_z)
and hand `model.decoder` the host's latents: z = mu + exp(log_std) * eps with the host's eps (chosen
here, in `make_inputs`), or the host's prior draws. The metrics are computed here from those answers:
the -ELBO from the reference helpers (`reference_solutions.vae`) in float64 on the test set, the FD
(`grader.metrics.classifier.fd_classifier`) from the decoder's means at the prior draws. The gates read
the same calls: the student's loss terms must equal the host's recomputation from them, and the z the
student's code would have decoded must be a reparameterised draw around the encoder's mu. So a model
cannot pass the gate on one call and be measured on another, and whatever noise its own sampler uses,
the metric is the ELBO of its encoder and decoder at the host's draws. (A decoder that reads the test
images out of the kernel's memory is beyond any check in that process: a metric far better than the
reference goes to a TA, `review_at` in the rubric.) Probe keys are documented in `probes.py`.

Units. Images x in [0, 1] are modelled as x̃ = 2x - 1 with p(x̃|z) = N(x_recon, I); every loss term is
in nats per image (summed over pixels or latent dimensions, averaged over the batch). The `*_nll`
metric is the test -ELBO minus the D/2·log(2π) that a unit-variance Gaussian decoder pays whatever it
learns, i.e. distortion ½‖x̃ - x_recon‖² plus rate KL(q‖p), in bits/dim: the full -ELBO of such a model
is ~99% that constant, so its ratio to the reference would not tell models apart. The full bound on
-log P(x) in bits/dim (with the 8-bit bin width) is reported in the message.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from grader.checks import CheckContext, CheckResult, check, inputs
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.latent import active_units, prior_problem, reparam_problems, tapped_answers
from grader.metrics.classifier import fd_classifier
from grader.metrics.nll import bits_per_dim, dequantized_nll
from grader.rubric import load_rubric
from reference_solutions.vae import get_normal_KL, get_normal_nll

RUBRIC = load_rubric(Path(__file__).with_name("rubric.yaml"))  # budgets size the host's latents
# profile -> (dataset, train images, test images, FD extractor); None = the whole split
DATASET = {"ci": ("patches", None, None, "patches"), "full": ("cifar10", 20000, 2000, "cifar10")}
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
ELBO_BETA = 0.5  # the beta of the fresh model in `*_elbo`, so that ignoring beta shows
ELBO_BATCH = 64  # training images in that call
EVAL_CHUNK = 256  # test images per loss(x) call in `*_train`; the loss terms are compared per call
ELBO_RTOL, ELBO_ATOL = 1e-4, 1e-3
HELPER_RTOL, HELPER_ATOL = 1e-4, 1e-5
SAMPLE_ATOL = 1e-5  # sample(n) must return the decoder's mean mapped to [0, 1]
COURSE_VALUES = {  # COURSE.md §2.3: (args, expected)
    "kl_course_a": ("get_normal_KL(2, 3)", [200.2144]),
    "kl_course_b": ("get_normal_KL(2, 3, 4, 5)", [1.50925]),
    "kl_course_c": ("get_normal_KL([10, 10], [2, 4], [3, 5])", [49.2990, 1498.479]),
    "nll_course_a": ("get_normal_nll(2, 2, 3)", [3.9189]),
    "nll_course_b": ("get_normal_nll([10, 10], [2, 4], [3, 5])", [3.9982, 5.9197]),
}
MODELS = {"vae": "ConvVAE", "resnet": "ConvResNetVAE"}
# Blocks: (in, out, kernel, stride) cases on the first `in` channels of a (B, 8, H, W) input
BLOCK_INPUT = (2, 8, 8)  # (B, H, W)
BLOCK_CASES = [(4, 8, 3, 1), (8, 8, 3, 1), (4, 8, 3, 2), (8, 16, 5, 2), (4, 4, 3, 4)]
TRANSPOSE_CASES = [(8, 4, 4, 2), (8, 4, 6, 2), (8, 4, 8, 2), (4, 4, 3, 1), (8, 8, 4, 4)]
# Shortcut cases (final_relu=False), one with an identity-shaped and one with a projection shortcut
BLOCK_RESIDUAL_CASES = [(4, 4, 3, 1), (4, 8, 3, 2)]
TRANSPOSE_RESIDUAL_CASES = [(4, 4, 3, 1), (8, 4, 4, 2)]
AFFINE_RTOL, VARIES_RTOL = 1e-4, 1e-3  # relative to 1 + max |output|


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    """Images (float32 in [0, 1] for `ci`, uint8 for `full`), helper arguments, block inputs, and the
    noise of every latent the models decode: eps for q(z|x) draws and z for prior draws."""
    name, n_train, n_test, _ = DATASET[profile]
    train = load_dataset(name, "train")[0][:n_train]
    test = load_dataset(name, "test")[0][:n_test]
    if profile == "full":  # CIFAR-10 is 8-bit: ship bytes, the probes divide by 255
        train, test = (np.round(a * 255).astype(np.uint8) for a in (train, test))
    budgets = RUBRIC.profile(profile).budgets
    rng = np.random.default_rng(seed)

    def draw(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, size=(3, 5)).astype(np.float32)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    batch, height, width = BLOCK_INPUT
    a, b = normal(batch, 8, height, width), normal(batch, 8, height, width)
    data = {
        "train_images": train,
        "test_images": test,
        "image_shape": np.array(test.shape[1:], dtype=np.int64),
        "kl_m1": draw(-2, 2),
        "kl_s1": draw(-1.5, 1.5),
        "kl_m2": draw(-2, 2),
        "kl_s2": draw(-1.5, 1.5),
        "nll_x": draw(-2, 2),
        "nll_m": draw(-2, 2),
        "nll_s": draw(-1.5, 1.5),
        "block_x": normal(batch, 8, height, width),
        "residual_x": np.stack([a, b, a + b, np.zeros_like(a)]),  # (4, B, 8, H, W)
        "block_cases": np.array(BLOCK_CASES, dtype=np.int64),
        "transpose_cases": np.array(TRANSPOSE_CASES, dtype=np.int64),
        "block_residual_cases": np.array(BLOCK_RESIDUAL_CASES, dtype=np.int64),
        "transpose_residual_cases": np.array(TRANSPOSE_RESIDUAL_CASES, dtype=np.int64),
        "elbo_images": train[np.sort(rng.choice(len(train), ELBO_BATCH, replace=False))],
        "elbo_beta": np.array([ELBO_BETA], dtype=np.float64),
        "eval_chunk": np.array([EVAL_CHUNK], dtype=np.int64),
    }
    for prefix in MODELS:
        latent = int(budgets[f"{prefix}_model"]["n_latent"])
        data[f"{prefix}_elbo_eps"] = normal(ELBO_BATCH, latent)
        data[f"{prefix}_test_eps"] = normal(len(test), latent)
        data[f"{prefix}_prior_z"] = normal(int(budgets[f"{prefix}_sample"]["n"]), latent)
    return data


def _test(ctx: CheckContext) -> torch.Tensor:
    return ctx.images("test_images")


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
    return CheckResult.of_cases(
        failures,
        len(cases) + len(COURSE_VALUES),
        "KL and NLL of diagonal Gaussians match on random inputs and the test values",
    )


# ---------------------------------------------------------------- loss = -ELBO of the model's own answers


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


def _batch_problems(
    got: dict[str, float], recon_ref: float, kl_ref: float, key: str, beta: float, dims: int
) -> list[str]:
    """What is wrong with one call's loss terms against the host's recomputation from its answers."""
    problems = []
    if not _close(got["recon_loss"], recon_ref):
        hint = " (a mean over pixels? sum them)" if _close(got["recon_loss"], recon_ref / dims) else ""
        problems.append(
            f"recon_loss = {got['recon_loss']:.6g}, but -log N(2x - 1; x_recon, I) of the decoder's own "
            f"x_recon, summed over pixels and averaged over the batch, is {recon_ref:.6g}{hint}"
        )
    if not _close(got["kl_loss"], kl_ref):
        problems.append(
            f"kl_loss = {got['kl_loss']:.6g}, but KL(N(mu_z, exp(log_std_z)^2) || N(0, I)) of the "
            f"encoder's own mu_z, log_std_z is {kl_ref:.6g}{_diagnose_kl(got['kl_loss'], kl_ref)}"
        )
    want_total = got["recon_loss"] + beta * got["kl_loss"]
    if not _close(got[key], want_total):
        hint = " (beta ignored?)" if _close(got[key], got["recon_loss"] + got["kl_loss"]) else ""
        problems.append(
            f"with beta = {beta:g}, {key} = {got[key]:.6g} but recon_loss + beta * kl_loss = {want_total:.6g}{hint}"
        )
    return problems


def _loss_problems(
    ctx: CheckContext, probe: str, x: torch.Tensor, beta: float, chunk: int
) -> tuple[list[str], tuple[float, float]]:
    """The loss terms of a probe's calls (one per `chunk` rows of x) against the host's -ELBO of the
    same calls' answers; returns the problems of the first call that has any, and the mean terms."""
    record = ctx.probe(probe).values
    mu, log_std, x_recon, _ = tapped_answers(ctx, probe, tuple(x.shape))
    recon_ref, kl_ref = _reference_terms(x, mu, log_std, x_recon)
    key = str(record.get("loss_key", "total_loss"))
    starts = range(0, len(x), chunk)
    got = {k: ctx.tensor(f"{probe}/{k}", shape=(len(starts),)) for k in {"recon_loss", "kl_loss", key}}
    problems = [] if record.get("requires_grad") else [f"loss(x)[{key!r}] does not require grad: nothing is trained"]
    dims = int(np.prod(x.shape[1:]))
    for call, start in enumerate(starts):
        rows = slice(start, start + chunk)
        terms = {k: float(v[call]) for k, v in got.items()}
        found = _batch_problems(terms, float(recon_ref[rows].mean()), float(kl_ref[rows].mean()), key, beta, dims)
        if found:
            problems += found
            break
    return problems, (float(recon_ref.mean()), float(kl_ref.mean()))


def _elbo_problems(ctx: CheckContext, prefix: str) -> tuple[list[str], str]:
    """The fresh model's loss (beta = ELBO_BETA), then the trained model's on the metric's own calls."""
    x = ctx.images("elbo_images")
    problems, (recon, kl) = _loss_problems(ctx, f"{prefix}_elbo", x, ELBO_BETA, len(x))
    summary = f"recon {recon:.2f} + {ELBO_BETA} * KL {kl:.3f} nats/image on a fresh model"
    if problems or not ctx.ran(f"{prefix}_train"):
        return problems, summary
    beta = float(ctx.budget(f"{prefix}_model").get("beta", 1.0))
    trained, (recon, kl) = _loss_problems(ctx, f"{prefix}_train", _test(ctx), beta, EVAL_CHUNK)
    summary += f", recon {recon:.2f} + KL {kl:.3f} on the trained model's test images"
    return [f"on the trained model's test images, {p}" for p in trained], summary


def _reparam_problems(ctx: CheckContext, prefix: str) -> tuple[list[str], str]:
    """The student's own z in the fresh model's call, then in the trained model's test-set calls."""
    sources = [(f"{prefix}_elbo", ctx.images("elbo_images"), False, "a fresh model (encoder outputs shifted)")]
    if ctx.ran(f"{prefix}_train"):
        sources.append((f"{prefix}_train", _test(ctx), True, "the trained model's test images"))
    draws = []
    for probe, x, per_dim, what in sources:
        record = ctx.probe(probe).values
        mu, log_std, _, z = tapped_answers(ctx, probe, tuple(x.shape))
        problems = reparam_problems(record, mu, log_std, z, per_dim)
        if problems:
            return [f"on {what}: {p}" for p in problems], ""
        draws.append(f"{z.size} draws on {what}")
    return [], "z = mu + exp(log_std) * eps, with gradients to both, in " + " and ".join(draws)


def _elbo_item(ctx: CheckContext, prefix: str, with_reparam: bool) -> CheckResult:
    problems, summary = _elbo_problems(ctx, prefix)
    parts = [summary]
    if with_reparam:
        reparam, reparam_summary = _reparam_problems(ctx, prefix)
        problems += reparam
        parts.append(reparam_summary)
    if problems:
        return CheckResult(0.0, "; ".join(problems))
    return CheckResult(1.0, "loss is the -ELBO of the encoder's and decoder's own answers: " + "; ".join(parts))


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


def _reduces_to_shortcut(y: np.ndarray, batch: int) -> bool:
    """Whether zeroing one of the layers leaves an affine, non-constant map of x (the shortcut).

    `y` (layers, 4B, ...) holds the block's outputs on a, b, a + b, 0 with each layer zeroed in turn;
    affine: y(a + b) + y(0) = y(a) + y(b); non-constant: y(a) != y(0).
    """
    if y.ndim < 2 or y.shape[0] == 0 or y.shape[1] != 4 * batch:
        return False
    y = y.astype(np.float64).reshape(len(y), 4, -1)  # (layers, 4B, ...) -> (layers, [a, b, a+b, 0], B ...)
    scale = 1.0 + np.abs(y).max(axis=(1, 2))
    affine = np.abs(y[:, 2] + y[:, 3] - y[:, 0] - y[:, 1]).max(axis=1) <= AFFINE_RTOL * scale
    varies = np.abs(y[:, 0] - y[:, 3]).max(axis=1) > VARIES_RTOL * scale
    return bool((affine & varies).any())


@check("resnet_blocks")
def resnet_blocks(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("resnet_blocks").values
    batch, height, width = BLOCK_INPUT
    failures, n = [], 0
    for name, cls, cases, residual_cases in (
        ("block", "ResNetBlock", BLOCK_CASES, BLOCK_RESIDUAL_CASES),
        ("transpose", "ResNetTransposeBlock", TRANSPOSE_CASES, TRANSPOSE_RESIDUAL_CASES),
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
        for i, (c_in, c_out, k, s) in enumerate(residual_cases):
            n += 1
            call = f"{cls}({c_in}, {c_out}, kernel_size={k}, stride={s}, final_relu=False)"
            if f"{name}_residual_{i}_error" in record:
                failures.append(f"{call} failed: {record[f'{name}_residual_{i}_error']}")
            elif not _reduces_to_shortcut(ctx.tensor(f"resnet_blocks/{name}_residual_{i}", shape=None), batch):
                failures.append(
                    f"{call}: zeroing the residual branch's last layer must leave the shortcut, an affine map of "
                    "x, but with any one layer zeroed the block is constant or not affine: is the shortcut added?"
                )
        n += 1  # the model is built from the blocks (not a gate of the ResNet VAE's metrics: they do not need it)
        if not (ctx.ran("resnet_model") and ctx.probe("resnet_model").values.get(f"uses_{cls}") is True):
            failures.append(f"{MODELS['resnet']} could not be built or contains no {cls}")
    return CheckResult.of_cases(
        failures, n, f"all {n} block cases right (output shapes, final ReLU, shortcut, used by the model)"
    )


# ---------------------------------------------------------------- metrics


def _nll_item(ctx: CheckContext, prefix: str) -> CheckResult:
    """The host's -ELBO of the trained model's encoder and decoder answers on the test set (host eps)."""
    probe = f"{prefix}_train"
    record = ctx.probe(probe).values
    x = _test(ctx)
    mu, log_std, x_recon, _ = tapped_answers(ctx, probe, tuple(x.shape))
    recon, kl = _reference_terms(x, mu, log_std, x_recon)
    dims = int(np.prod(x.shape[1:]))
    neg_elbo = recon + kl  # (N,) nats per image
    excess = float((neg_elbo - dims * HALF_LOG_2PI).mean())
    value = float(bits_per_dim(excess, dims))
    # -log P(x) <= -ELBO(x̃) - D log(2/256): x̃ = 2x - 1 has bins of width 2/256
    bound = float(bits_per_dim(float(dequantized_nll(-neg_elbo, dims, scale=2 / 256, reduction="mean")), dims))
    active = active_units(mu)
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
    ctx.curve(
        f"{MODELS[prefix]}: training loss under the grader's loop (nats/image)", ctx.tensor(f"{probe}/losses").tolist()
    )
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
    """FD of the decoder's means at the host's prior draws, once sample(n) is shown to return them."""
    probe = f"{prefix}_sample"
    ctx.probe(probe)
    x = _test(ctx)
    n, latent = ctx.inputs[f"{prefix}_prior_z"].shape
    decoded = ctx.tensor(f"{probe}/decoded", shape=(n, *x.shape[1:]))
    returned = ctx.tensor(f"{probe}/samples", shape=(n, *x.shape[1:]), dtype="float32")
    z = ctx.tensor(f"{probe}/z", shape=(n, latent)).astype(np.float64)
    samples = np.clip((decoded.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)
    if not np.allclose(returned, samples, rtol=0.0, atol=SAMPLE_ATOL):
        raise ArtifactError(
            "sample(n) must return the decoder mean at z ~ p(z), clamped to [-1, 1] and mapped to [0, 1] "
            f"as (x̃ + 1) / 2; it differs from that by up to {float(np.abs(returned - samples).max()):.3g} "
            f"(its values lie in [{float(returned.min()):.3g}, {float(returned.max()):.3g}])"
        )
    if (problem := prior_problem(z, "sample(n)")) is not None:
        raise ArtifactError(problem)
    samples32 = samples.astype(np.float32)
    ctx.figure(f"{MODELS[prefix]} samples", samples32[:64])
    extractor = DATASET[ctx.profile][3]
    value = fd_classifier(extractor, samples32, x.numpy().astype(np.float32))
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
