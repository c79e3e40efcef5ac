"""UPM conditional VAE checks: turn the probes' raw answers into item results, on the host.

Every call of the student's `loss(x, y)` and `sample(n, y)` runs under `harness.LatentTap`, which
records what `model.encoder` answered (mu_z, log_std_z), the label codes the encoder and decoder were
given, and hands `model.decoder` the host's latents (z = mu + exp(log_std) * eps with the host's eps,
or the host's prior draws). The metrics are computed here from those answers in float64: the test
-ELBO from the decoder's logits and the encoder's posterior, the conditional accuracy from the host's
digit classifier on the decoder's means at the host's prior draws. The gates read the same calls. A
model far better than the reference under the same budget goes to a TA (`review_at` in the rubric).

Units. x in [0, 1] with p(x|z, c) = prod Bernoulli(x_d; sigmoid(l_d)): every loss term is in nats per
image (summed over pixels or latent dimensions, averaged over the batch). The `cvae_nll` metric is the
test -ELBO minus the binary entropy of the grayscale targets, sum_d H(x_d), which the cross-entropy of
any model pays; without it the ratio to the reference would be squeezed towards 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from grader.checks import CheckContext, CheckResult, check, inputs
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.latent import active_units, prior_problem, reparam_problems, tapped_answers
from grader.metrics.classifier import load_classifier
from grader.metrics.nll import gaussian_kl
from grader.rubric import load_rubric

RUBRIC = load_rubric(Path(__file__).with_name("rubric.yaml"))  # budgets size the host's latents
DATASET = {"ci": ("digits", None), "full": ("mnist", 10000)}  # profile -> (dataset and classifier, test images)
ELBO_BETA = 0.5  # the beta of the fresh model in `cvae_elbo`, so that ignoring beta shows
ELBO_BATCH = 64  # training images in that call
EVAL_CHUNK = 128  # test images per loss(x, y) call in `cvae_train`; the loss terms are compared per call
ELBO_RTOL, ELBO_ATOL = 1e-4, 1e-3
CODE_ATOL = 1e-6
SAMPLE_ATOL = 1e-5
# cvae_condition: with z fixed, the decoder's means for different labels differ on average by more than
# this (probability units, mean over pixels and latents); a decoder that ignores c gives exactly 0, the
# reference ~0.2.
CONDITION_MIN_SPREAD = 0.01


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    """Images (float32 in [0, 1] for `ci`, uint8 for `full`) and labels; the noise of every latent the
    model decodes: eps for q(z|x, c) draws, and prior z shared by all classes in `cvae_sample`."""
    name, n_test = DATASET[profile]
    train, train_labels = load_dataset(name, "train")
    test, test_labels = (a[:n_test] for a in load_dataset(name, "test"))
    if profile == "full":  # MNIST is 8-bit: ship bytes, the probes divide by 255
        train, test = (np.round(a * 255).astype(np.uint8) for a in (train, test))
    budgets = RUBRIC.profile(profile).budgets
    latent, classes = int(budgets["cvae_model"]["n_latent"]), int(budgets["cvae_model"]["num_classes"])
    per_class = int(budgets["cvae_sample"]["per_class"])
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    elbo_rows = np.sort(rng.choice(len(train), ELBO_BATCH, replace=False))
    return {
        "train_images": train,
        "train_labels": train_labels.astype(np.int64),
        "test_images": test,
        "test_labels": test_labels.astype(np.int64),
        "image_shape": np.array(test.shape[1:], dtype=np.int64),
        "elbo_images": train[elbo_rows],
        "elbo_labels": train_labels[elbo_rows].astype(np.int64),
        "elbo_beta": np.array([ELBO_BETA], dtype=np.float64),
        "elbo_eps": normal(ELBO_BATCH, latent),
        "test_eps": normal(len(test), latent),
        "eval_chunk": np.array([EVAL_CHUNK], dtype=np.int64),
        "sample_labels": np.repeat(np.arange(classes, dtype=np.int64), per_class),  # (K per_class,)
        "prior_z": np.tile(normal(per_class, latent), (classes, 1)),  # the same z for every class
    }


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float64))


def _calls(ctx: CheckContext) -> list[tuple[str, str, str]]:
    """The probes whose loss calls the checks read: (probe, images key, what it was)."""
    calls = [("cvae_elbo", "elbo", "a fresh model (encoder outputs shifted)")]
    if ctx.ran("cvae_train"):
        calls.append(("cvae_train", "test", "the trained model's test images"))
    return calls


def _reference_terms(
    x: torch.Tensor, mu: np.ndarray, log_std: np.ndarray, logits: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Bernoulli cross-entropy of x against the logits, and KL(q || N(0, I)); both (B,), float64."""
    recon = F.binary_cross_entropy_with_logits(_t(logits), x, reduction="none").flatten(1).sum(1)
    return recon, gaussian_kl(_t(mu), _t(log_std))


def _binary_entropy(x: torch.Tensor) -> torch.Tensor:
    """sum_d H(x_d) per image (B,): the least cross-entropy any model pays on grayscale targets."""
    p = x.clamp(1e-12, 1 - 1e-12)
    return -(p * p.log() + (1 - p) * (1 - p).log()).flatten(1).sum(1)


# ---------------------------------------------------------------- labels


def _optional(ctx: CheckContext, key: str, shape: tuple[int | None, ...]) -> np.ndarray | None:
    """A probe output that is absent when the student's code did not pass what it records (a label code)."""
    return ctx.tensor(key, shape=shape) if key in ctx.artifacts.tensors else None


def _code_problem(codes: np.ndarray | None, labels: np.ndarray, who: str, classes: int) -> str | None:
    if codes is None:
        return f"model.{who} was not given a label code: call it as self.{who}(..., c) with c = encode_label(y)"
    if codes.shape[1] != classes:
        return (
            f"model.{who} got a label code of {codes.shape[1]} column(s) per image: encode the labels as "
            f"one-hot vectors (B, {classes}) as the template says, not as numbers"
        )
    want = np.eye(classes, dtype=np.float64)[labels]
    if not np.allclose(codes, want, rtol=0.0, atol=CODE_ATOL):
        return f"model.{who}'s label code is not the one-hot encoding of y (first row {codes[0].round(3).tolist()})"
    return None


@check("cvae_labels")
def cvae_labels(ctx: CheckContext) -> CheckResult:
    classes = int(ctx.budget("cvae_model")["num_classes"])
    failures, cases = [], 0
    for probe, key, what in _calls(ctx):
        ctx.probe(probe)
        labels = ctx.inputs[f"{key}_labels"]
        for who in ("encoder", "decoder"):
            cases += 1
            codes = _optional(ctx, f"{probe}/{who}_c", (len(labels), None))
            if (problem := _code_problem(codes, labels, who, classes)) is not None:
                failures.append(f"on {what}: {problem}")
    return CheckResult.of_cases(failures, cases, f"the encoder and the decoder get one-hot codes (B, {classes})")


# ---------------------------------------------------------------- loss = -ELBO of the model's own answers


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=ELBO_RTOL, abs_tol=ELBO_ATOL)


def _batch_problems(got: dict[str, float], recon_ref: float, kl_ref: float, beta: float, dims: int) -> list[str]:
    """What is wrong with one call's loss terms against the host's recomputation from its answers."""
    problems = []
    if not _close(got["recon_loss"], recon_ref):
        hint = " (a mean over pixels? sum them)" if _close(got["recon_loss"], recon_ref / dims) else ""
        problems.append(
            f"recon_loss = {got['recon_loss']:.6g}, but the binary cross-entropy of x against the decoder's own "
            f"logits, summed over pixels and averaged over the batch, is {recon_ref:.6g}{hint}"
        )
    if not _close(got["kl_loss"], kl_ref):
        hint = " (the sign is flipped)" if _close(got["kl_loss"], -kl_ref) else ""
        hint = hint or (" (twice the KL: a missing 1/2?)" if _close(got["kl_loss"], 2 * kl_ref) else "")
        problems.append(
            f"kl_loss = {got['kl_loss']:.6g}, but KL(N(mu_z, exp(log_std_z)^2) || N(0, I)) of the encoder's own "
            f"mu_z, log_std_z is {kl_ref:.6g}{hint}"
        )
    want = got["recon_loss"] + beta * got["kl_loss"]
    if not _close(got["elbo_loss"], want):
        hint = " (beta ignored?)" if _close(got["elbo_loss"], got["recon_loss"] + got["kl_loss"]) else ""
        problems.append(
            f"with beta = {beta:g}, elbo_loss = {got['elbo_loss']:.6g} but recon_loss + beta * kl_loss = "
            f"{want:.6g}{hint}"
        )
    return problems


@check("cvae_elbo")
def cvae_elbo(ctx: CheckContext) -> CheckResult:
    """The fresh model's loss (beta = ELBO_BETA), then the trained model's on the metric's own calls."""
    summary = []
    for probe, key, what in _calls(ctx):
        record = ctx.probe(probe).values
        x = ctx.images(f"{key}_images")
        mu, log_std, logits, _ = tapped_answers(ctx, probe, tuple(x.shape))
        recon_ref, kl_ref = _reference_terms(x, mu, log_std, logits)
        chunk = len(x) if probe == "cvae_elbo" else EVAL_CHUNK
        beta = ELBO_BETA if probe == "cvae_elbo" else float(ctx.budget("cvae_model").get("beta", 1.0))
        starts = range(0, len(x), chunk)
        got = {k: ctx.tensor(f"{probe}/{k}", shape=(len(starts),)) for k in ("elbo_loss", "recon_loss", "kl_loss")}
        if not record.get("requires_grad"):
            return CheckResult(0.0, f"on {what}: loss(x, y)['elbo_loss'] does not require grad: nothing is trained")
        for call, start in enumerate(starts):
            rows = slice(start, start + chunk)
            terms = {k: float(v[call]) for k, v in got.items()}
            problems = _batch_problems(
                terms, float(recon_ref[rows].mean()), float(kl_ref[rows].mean()), beta, int(np.prod(x.shape[1:]))
            )
            if problems:
                return CheckResult(0.0, f"on {what}: " + "; ".join(problems))
        summary.append(f"recon {float(recon_ref.mean()):.2f} + {beta:g} * KL {float(kl_ref.mean()):.3f} on {what}")
    return CheckResult(1.0, "loss is the -ELBO of the encoder's and decoder's own answers: " + "; ".join(summary))


@check("cvae_reparam")
def cvae_reparam(ctx: CheckContext) -> CheckResult:
    draws = []
    for probe, key, what in _calls(ctx):
        record = ctx.probe(probe).values
        mu, log_std, _, z = tapped_answers(ctx, probe, ctx.inputs[f"{key}_images"].shape)
        problems = reparam_problems(record, mu, log_std, z, per_dim=probe == "cvae_train")
        if problems:
            return CheckResult(0.0, f"on {what}: " + "; ".join(problems))
        draws.append(f"{z.size} draws on {what}")
    return CheckResult(1.0, "z = mu + exp(log_std) * eps, with gradients to both, in " + " and ".join(draws))


# ---------------------------------------------------------------- conditioning and sampling


def _per_class(ctx: CheckContext, key: str) -> np.ndarray:
    """A `cvae_sample` output of the trained model reshaped (classes, per_class, ...)."""
    if ctx.probe("cvae_sample").values.get("trained") is not True:
        raise ArtifactError("the model did not train (see the test -ELBO item): nothing trained to check")
    labels = ctx.inputs["sample_labels"]
    classes = int(labels.max()) + 1
    x = ctx.tensor(f"cvae_sample/{key}", shape=(len(labels), *ctx.inputs["test_images"].shape[1:]))
    return x.astype(np.float64).reshape(classes, len(labels) // classes, *x.shape[1:])


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


@check("cvae_condition")
def cvae_condition(ctx: CheckContext) -> CheckResult:
    means = _sigmoid(_per_class(ctx, "direct"))  # (classes, per_class, C, H, W): the same z in every class
    spread = float(means.std(axis=0).mean())
    if spread <= CONDITION_MIN_SPREAD:
        return CheckResult(
            0.0,
            f"with z fixed, decoder(z, c) hardly changes with the label (mean spread across labels {spread:.2g} "
            "per pixel): the decoder must use c",
        )
    return CheckResult(1.0, f"with z fixed, the decoder's means change with the label (spread {spread:.3f} per pixel)")


@check("cvae_sample")
def cvae_sample(ctx: CheckContext) -> CheckResult:
    ctx.probe("cvae_sample")
    labels, shape = ctx.inputs["sample_labels"], ctx.inputs["test_images"].shape[1:]
    n, latent = ctx.inputs["prior_z"].shape
    codes = ctx.tensor("cvae_sample/codes", shape=(n, None))
    used = _optional(ctx, "cvae_sample/decoder_c", codes.shape)
    if used is None or not np.allclose(used, codes, rtol=0.0, atol=CODE_ATOL):
        return CheckResult(
            0.0, "sample(n, y) does not decode with the requested labels: call self.decoder(z, encode_label(y))"
        )
    if problem := prior_problem(ctx.tensor("cvae_sample/z", shape=(n, latent)).astype(np.float64), "sample(n, y)"):
        return CheckResult(0.0, problem)
    returned = ctx.tensor("cvae_sample/samples", shape=(n, *shape), dtype="float32")
    means = _sigmoid(ctx.tensor("cvae_sample/decoded", shape=(n, *shape)).astype(np.float64))
    if not np.allclose(returned, means, rtol=0.0, atol=SAMPLE_ATOL):
        return CheckResult(
            0.0,
            "sample(n, y) must return the decoder's Bernoulli means sigmoid(logits) in [0, 1]; it differs from "
            f"them by up to {float(np.abs(returned - means).max()):.3g} (values in "
            f"[{float(returned.min()):.3g}, {float(returned.max()):.3g}])",
        )
    return CheckResult(1.0, f"{n} samples of {int(labels.max()) + 1} classes: prior z, the requested labels, means")


# ---------------------------------------------------------------- metrics


@check("cvae_nll")
def cvae_nll(ctx: CheckContext) -> CheckResult:
    """The host's -ELBO of the trained model's answers on the test set (host eps), above the entropy floor."""
    record = ctx.probe("cvae_train").values
    x = ctx.images("test_images")
    mu, log_std, logits, _ = tapped_answers(ctx, "cvae_train", tuple(x.shape))
    recon, kl = _reference_terms(x, mu, log_std, logits)
    floor = _binary_entropy(x)
    value = float((recon + kl - floor).mean())
    active = active_units(mu)
    first, last = record.get("first_loss", float("nan")), record.get("last_loss", float("nan"))
    message = (
        f"-ELBO {float((recon + kl).mean()):.2f} nats/image = recon {float(recon.mean()):.2f} + KL "
        f"{float(kl.mean()):.2f}, of which {float(floor.mean()):.2f} is the targets' own entropy; "
        f"{active} of {mu.shape[1]} latent dimensions active; train loss {first:.1f} -> {last:.1f} in "
        f"{ctx.budget('cvae_train').get('steps')} steps"
    )
    if active == 0:
        message += "; posterior collapse: z carries nothing about x beyond the label (costs no points by itself)"
    n_show = min(10, len(x))
    pairs = torch.cat([x[:n_show], torch.sigmoid(_t(logits[:n_show]))])
    ctx.figure("Test images (top) and the decoder's means (bottom)", pairs.numpy(), nrow=n_show)
    ctx.curve("Training loss under the grader's loop (nats/image)", ctx.tensor("cvae_train/losses").tolist())
    return CheckResult(
        value=value,
        message=message,
        details={"recon_nats": float(recon.mean()), "kl_nats": float(kl.mean()), "active_units": active},
    )


@check("cvae_accuracy")
def cvae_accuracy(ctx: CheckContext) -> CheckResult:
    """The host classifier's accuracy on the samples `sample(n, y)` decoded, against the requested labels."""
    ctx.probe("cvae_sample")
    means = _sigmoid(_per_class(ctx, "decoded"))  # (classes, per_class, C, H, W)
    classes, per_class = means.shape[:2]
    classifier = load_classifier(DATASET[ctx.profile][0])
    with torch.no_grad():
        predicted = classifier(torch.from_numpy(means.reshape(-1, *means.shape[2:])).float()).argmax(1).numpy()
    hits = (predicted.reshape(classes, per_class) == np.arange(classes)[:, None]).mean(axis=1)
    ctx.figure("Samples: one row per requested class", means[:, :10].reshape(-1, *means.shape[2:]), nrow=10)
    worst = int(np.argmin(hits))
    return CheckResult(
        value=float(hits.mean()),
        message=f"{float(hits.mean()):.1%} of {classes * per_class} samples are classified as the requested digit "
        f"(worst: {worst}, {hits[worst]:.0%})",
        details={f"accuracy_{k}": float(h) for k, h in enumerate(hits)},
    )
