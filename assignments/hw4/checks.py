"""Homework 4 checks: turn the probes' raw answers into item results, on the host.

The quantiser runs on the host's codebook and encoder outputs z_e (B, D, h, w) with beta = VQ_BETA, so every
answer has a closed form (arXiv:1711.00937, eq. 1-3; N = B D h w elements, e the chosen codes):

    indices     k = argmin_j ||z_e - e_j||_2 at every position,
    forward     value e_k; d(sum w * z_q)/dz_e = w (straight-through),
    VQ loss     (1 + beta) mean (z_e - e)^2;  d/de_j = sum over positions with k = j of 2 (e_j - z_e) / N,
                d/dz_e = 2 beta (z_e - e) / N.

The forward and the loss are compared with the codes of the student's own indices, so a wrong nearest-code
search costs `vq_indices` only. The VQ-VAE's metrics come from its answers on the test images: the
reconstruction cross-entropy from the returned logits (which must equal the decoder's output on the codes
alone: the gate), the prior's NLL per code from its logits on the test images' codes, over the NLL of a
unigram model the host fits to the training codes. The prior's causality is read from the same batch: copies
of test code maps with one code changed are shuffled among them, and the logits at positions <= the changed
one must not move.

The GAN's losses run against a stub discriminator whose value is p on real rows and q on generated ones (and
whose gradient is 1 everywhere): loss_discriminator = -log p - log(1 - q), loss_generator = -log q. Its samples
are G(z) of the host's z; quality is 1 - KID / KID of "mean image + noise" on the host classifier's features
standardised by the test set, and class coverage counts the classes the classifier finds in >= 3% of them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from grader.checks import CheckContext, CheckResult, check, generator_reach, inputs, stub_calls
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.latent import host_z_samples
from grader.metrics.nll import two_class_nll
from grader.metrics.sample_quality import class_shares, kid_score
from grader.rubric import load_rubric

RUBRIC = load_rubric(Path(__file__).with_name("rubric.yaml"))
VQ_DATA = {"ci": "digits", "full": "mnist"}  # binarized
GAN_DATA = {"ci": ("digits", None), "full": ("cifar10", 5000)}  # (dataset and classifier, test images used)
VQ_CODES, VQ_DIM, VQ_BETA = 12, 5, 0.4  # the host's quantiser: beta != 1 exposes beta on the wrong term
VQ_INPUT = (6, VQ_DIM, 3, 4)  # z_e (B, D, h, w): a non-square grid, so that a missing permute shows
LOSS_BATCH = 64  # training images in the VQ-VAE's loss-consistency call
DEPENDENCE_BASES = 4  # test code maps that get one code changed, at every position
SAMPLE_LOGITS = (64, 2, 1)  # host logits for sample_from_logits: (B, 2, 1, H, W)
STUB_CASES = ((0.8, 0.3), (0.35, 0.6))  # (p = D(real), q = D(fake)) of the stub discriminator
STUB_REAL = 32  # real images in the stub-D calls
RTOL, ATOL = 1e-4, 1e-6
CAUSAL_RTOL = 1e-5  # a change below this times the logit scale is rounding, not dependence
CALIBRATION_Z = 5.0  # |z| above this is a sampler bug (false alarm ~1e-6)
COVERAGE_SHARE = 0.03  # a class is covered when it holds at least this share of the samples


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    """Everything the probes get (`needs=` in probes.py); `gan_test` stays on the host."""
    budgets = RUBRIC.profile(profile).budgets
    rng = np.random.default_rng(seed)
    train = load_dataset(VQ_DATA[profile], "train", binarize=True)[0].astype(np.uint8)
    test = load_dataset(VQ_DATA[profile], "test", binarize=True)[0].astype(np.uint8)
    model = budgets["vqvae_model"]
    classes, grid = int(model["num_embeddings"]), [s >> int(model["downsample"]) for s in train.shape[-2:]]
    length = grid[0] * grid[1]
    bases = rng.choice(len(test), DEPENDENCE_BASES, replace=False)
    dependence = np.array(
        [(b, j, rng.integers(1, classes)) for b in bases for j in range(length)], dtype=np.int64
    )  # (test row, raster position, code offset)

    gan_name, n_gan_test = GAN_DATA[profile]
    gan_train = load_dataset(gan_name, "train")[0]
    gan_test = load_dataset(gan_name, "test")[0][:n_gan_test]
    if profile == "full":  # CIFAR-10 is 8-bit: ship bytes, the probes divide by 255
        gan_train = np.round(gan_train * 255).astype(np.uint8)
    n_samples, z_dim = int(budgets["gan_sample"]["n"]), int(budgets["gan_model"]["z_dim"])
    return {
        "vq_codebook": rng.standard_normal((VQ_CODES, VQ_DIM)).astype(np.float32),
        "vq_z": rng.standard_normal(VQ_INPUT).astype(np.float32),
        "vq_weight": rng.standard_normal(VQ_INPUT).astype(np.float32),
        "vq_beta": np.array([VQ_BETA], dtype=np.float64),
        "vq_indices": rng.integers(0, VQ_CODES, (VQ_INPUT[0], *VQ_INPUT[2:])).astype(np.int64),
        "image_shape": np.array(train.shape[1:], dtype=np.int64),
        "train_images": train,
        "test_images": test,
        "loss_images": train[np.sort(rng.choice(len(train), LOSS_BATCH, replace=False))],
        "prior_shape": np.array([classes, *grid], dtype=np.int64),
        "prior_dependence": dependence,
        "prior_order": rng.permutation(len(test) + len(dependence)).astype(np.int64),
        "sample_logits": (1.5 * rng.standard_normal((*SAMPLE_LOGITS, *train.shape[-2:]))).astype(np.float32),
        "gan_shape": np.array(gan_train.shape[1:], dtype=np.int64),
        "gan_images": gan_train,
        "gan_test": gan_test.astype(np.float32),
        "gan_real": gan_train[np.sort(rng.choice(len(gan_train), STUB_REAL, replace=False))],
        "gan_stub": np.array(STUB_CASES, dtype=np.float64),
        "gan_z": rng.standard_normal((n_samples, z_dim)).astype(np.float32),
    }


def _close(got: np.ndarray | float, want: np.ndarray | float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=atol))


def _grid_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5) -> bool:
    """Elementwise closeness relative to the scale of `want` (gradients of a mean are small numbers)."""
    scale = max(float(np.abs(want).max()), 1e-12)
    return got.shape == want.shape and float(np.abs(got - want).max()) <= rtol * scale + 1e-9


# ---------------------------------------------------------------- the quantiser


def _host_quantiser(ctx: CheckContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The host's codebook (K, D), z_e (B, D, h, w) in float64, and the squared distances (B, h, w, K)."""
    codebook = ctx.inputs["vq_codebook"].astype(np.float64)
    z = ctx.inputs["vq_z"].astype(np.float64)
    distances = ((z.transpose(0, 2, 3, 1)[..., None, :] - codebook) ** 2).sum(-1)  # (B, h, w, K)
    return codebook, z, distances


def _student_indices(ctx: CheckContext) -> np.ndarray:
    batch, _, height, width = VQ_INPUT
    got = ctx.tensor("vq_quantizer/indices")
    if got.size != batch * height * width:
        raise ArtifactError(f"get_code_indices: expected (B, h, w) = {(batch, height, width)}, got {got.shape}")
    idx = got.reshape(batch, height, width).astype(np.int64)
    if idx.min() < 0 or idx.max() >= VQ_CODES:
        raise ArtifactError(f"get_code_indices: indices must lie in [0, {VQ_CODES}), got [{idx.min()}, {idx.max()}]")
    return idx


def _codes_of(codebook: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return codebook[idx].transpose(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w)


def _index_hint(z: np.ndarray, codebook: np.ndarray, distances: np.ndarray, got: np.ndarray) -> str:
    flat = z.reshape(-1, VQ_DIM)  # what `z_e.reshape(-1, D)` without the permute reads
    candidates = {
        "the farthest code (argmax instead of argmin)": distances.argmax(-1),
        "the L1 distance, not the L2 distance": np.abs(z.transpose(0, 2, 3, 1)[..., None, :] - codebook)
        .sum(-1)
        .argmin(-1),
        "z_e reshaped to (-1, D) without moving the channel axis last (B, D, h, w) -> (B, h, w, D)": (
            ((flat[:, None] - codebook) ** 2).sum(-1).argmin(-1).reshape(got.shape)
        ),
        "the largest dot product z_e . e_j, which ignores ||e_j||": (z.transpose(0, 2, 3, 1) @ codebook.T).argmax(-1),
    }
    for what, idx in candidates.items():
        if np.array_equal(idx, got):
            return f" (they are {what})"
    return ""


@check("vq_indices")
def vq_indices(ctx: CheckContext) -> CheckResult:
    codebook, z, distances = _host_quantiser(ctx)
    got = _student_indices(ctx)
    failures = []
    chosen = np.take_along_axis(distances, got[..., None], -1)[..., 0]
    best = distances.min(-1)
    wrong = chosen > best + 1e-5 * (1.0 + best)
    if wrong.any():
        failures.append(
            f"get_code_indices picks a code that is not the nearest (in L2) at {int(wrong.sum())} of {wrong.size} "
            f"positions{_index_hint(z, codebook, distances, got)}"
        )
    want = _codes_of(codebook, ctx.inputs["vq_indices"])
    quantized = ctx.tensor("vq_quantizer/quantized")
    if not _close(quantized, want, 1e-5, 1e-6):
        failures.append(
            f"get_quantized(indices) must return the codebook vectors as (B, D, h, w) = {want.shape}, got "
            f"{quantized.shape} that differs from them"
        )
    return CheckResult.of_cases(failures, 2, f"nearest codes at all {got.size} positions; get_quantized (B, D, h, w)")


@check("vq_straight_through")
def vq_straight_through(ctx: CheckContext) -> CheckResult:
    codebook, z, _ = _host_quantiser(ctx)
    e = _codes_of(codebook, _student_indices(ctx))
    forward = ctx.tensor("vq_quantizer/forward")
    failures = []
    if not _close(forward, e, 1e-5, 1e-5):
        if _close(forward, z, 1e-5, 1e-5):
            hint = ": it returns z_e itself (the stop-gradient on the wrong side? z_q + sg[z_e - z_q] has value z_e)"
        elif _close(forward, 2 * z - e, 1e-5, 1e-5):
            hint = ": it returns 2 z_e - z_q (z_e + sg[z_e - z_q] instead of z_e + sg[z_q - z_e])"
        else:
            hint = ""
        failures.append(f"forward(z_e)[0] must have the value of the quantized vectors z_q{hint}")
    weight = ctx.inputs["vq_weight"].astype(np.float64)
    grad = ctx.tensor("vq_quantizer/st_grad")
    if not _close(grad, weight, 1e-5, 1e-6):
        if not ctx.probe("vq_quantizer").values.get("st_reaches") or not np.abs(grad).any():
            hint = "no gradient reaches z_e: pass it straight through, z_q = z_e + (z_q - z_e).detach()"
        else:
            hint = "it is not copied unchanged: use z_q = z_e + (z_q - z_e).detach()"
        failures.append(f"the gradient of sum(w * z_q) w.r.t. z_e must be w; {hint}")
    return CheckResult.of_cases(failures, 2, "value z_q, gradient copied straight through to z_e")


@check("vq_loss")
def vq_loss(ctx: CheckContext) -> CheckResult:
    codebook, z, _ = _host_quantiser(ctx)
    idx = _student_indices(ctx)
    e = _codes_of(codebook, idx)
    n, beta = z.size, VQ_BETA
    if not ctx.probe("vq_quantizer").values.get("vq_loss_scalar"):
        return CheckResult(0.0, "forward(z_e)[1], the VQ loss, must be a scalar tensor")
    want_value = (1 + beta) * float(((z - e) ** 2).mean())
    per_position = (2.0 * (e - z) / n).transpose(0, 2, 3, 1).reshape(-1, VQ_DIM)  # (B h w, D)
    want_codebook = np.zeros_like(codebook)
    np.add.at(want_codebook, idx.reshape(-1), per_position)
    want_z = 2.0 * beta * (z - e) / n
    got_value = float(ctx.tensor("vq_quantizer/vq_loss", shape=(1,))[0])
    got_codebook = ctx.tensor("vq_quantizer/loss_grad_codebook", shape=codebook.shape)
    got_z = ctx.tensor("vq_quantizer/loss_grad_z", shape=z.shape)
    ok = [
        math.isclose(got_value, want_value, rel_tol=RTOL),
        _grid_close(got_codebook, want_codebook),
        _grid_close(got_z, want_z),
    ]
    if all(ok):
        return CheckResult(1.0, f"VQ loss {got_value:.5f} = (1 + beta) MSE; codebook and commitment gradients right")
    factor = got_value / want_value if want_value else float("nan")
    if factor > 1.5 and _grid_close(got_codebook, factor * want_codebook) and _grid_close(got_z, factor * want_z):
        return CheckResult(
            0.5, f"the VQ loss is {factor:.4g} times the mean-squared form: take means over the elements, not sums"
        )
    problems = []
    if not ok[0]:
        problems.append(f"value {got_value:.6g}, expected (1 + beta) * MSE(z_e, z_q) = {want_value:.6g}")
    if not ok[1] or not ok[2]:
        if _grid_close(got_codebook, beta * want_codebook) and _grid_close(got_z, want_z / beta):
            problems.append("beta weighs the codebook term: it belongs to the commitment term ||z_e - sg[e]||^2")
        elif _grid_close(got_codebook, (1 + beta) * want_codebook) and _grid_close(got_z, (1 + beta) / beta * want_z):
            problems.append("both terms reach both sides: the stop-gradients (detach) are missing")
        elif not np.abs(got_codebook).any():
            problems.append("the codebook gets no gradient: the codebook term is ||sg[z_e] - e||^2")
        elif not np.abs(got_z).any():
            problems.append("z_e gets no gradient: the commitment term is beta ||z_e - sg[e]||^2")
        else:
            problems.append(
                "its gradients differ from those of ||sg[z_e] - e||^2 (codebook) + beta ||z_e - sg[e]||^2 (z_e)"
            )
    # one third for the value, one for each gradient
    return CheckResult(sum(ok) / len(ok), "; ".join(problems))


# ---------------------------------------------------------------- the VQ-VAE


def _binary_images(ctx: CheckContext, key: str) -> np.ndarray:
    return ctx.inputs[key].astype(np.float64)


def _test_logits(ctx: CheckContext, key: str = "test_logits") -> np.ndarray:
    test = ctx.inputs["test_images"]
    return ctx.tensor(f"vqvae_train/{key}", shape=(len(test), 2, *test.shape[1:]))


@check("vqvae_loss")
def vqvae_loss(ctx: CheckContext) -> CheckResult:
    ctx.probe("vqvae_loss")
    x = _binary_images(ctx, "loss_images")
    logits = ctx.tensor("vqvae_loss/logits", shape=(len(x), 2, *x.shape[1:]))
    got = {k: float(ctx.tensor(f"vqvae_loss/{k}", shape=(1,))[0]) for k in ("total_loss", "ce_loss", "vq_loss")}
    forward_vq = float(ctx.tensor("vqvae_loss/forward_vq_loss", shape=(1,))[0])
    ce = float(two_class_nll(logits, x, "per_dim"))
    failures = []
    if not math.isclose(got["ce_loss"], ce, rel_tol=RTOL, abs_tol=ATOL):
        failures.append(
            f"ce_loss = {got['ce_loss']:.6g}, but the cross-entropy of the model's own logits is {ce:.6g} nats/pixel"
        )
    elif not math.isclose(got["vq_loss"], forward_vq, rel_tol=RTOL, abs_tol=ATOL):
        failures.append(f"loss(x)['vq_loss'] = {got['vq_loss']:.6g}, but forward(x) returns {forward_vq:.6g}")
    elif not math.isclose(got["total_loss"], got["ce_loss"] + got["vq_loss"], rel_tol=RTOL, abs_tol=ATOL):
        failures.append(f"total_loss = {got['total_loss']:.6g} is not ce_loss + vq_loss")
    record = ctx.probe("vqvae_loss").values
    if not record.get("ce_requires_grad") or not float(record.get("ce_encoder_grad", 0.0)) > 0:
        failures.append(
            "ce_loss alone gives the encoder no gradient: the decoder's input must be z_e + (z_q - z_e).detach()"
        )
    elif float(record.get("ce_codebook_grad", 0.0)) > 0:
        failures.append(
            "ce_loss alone moves the codebook: only the VQ loss may train it, so stop the reconstruction "
            "gradient at z_q (z_e + (z_q - z_e).detach())"
        )
    test = ctx.inputs["test_images"]
    cases = 2
    try:
        decoded, returned = _test_logits(ctx, "decoded_logits"), _test_logits(ctx)
    except ArtifactError:  # training failed: the metric has nothing to protect
        pass
    else:
        cases += 1
        scale = max(1.0, float(np.abs(returned).max()))
        if float(np.abs(decoded - returned).max()) > 1e-4 * scale:
            failures.append(
                f"on the trained model's {len(test)} test images, forward(x)'s logits differ from "
                "decoder(get_quantized(get_indices(x))): the reconstruction must be decoded from the codes alone"
            )
    return CheckResult.of_cases(
        failures, cases, "loss terms of the model's own outputs; ce_loss trains the encoder, not the codebook"
    )


def _usage(indices: np.ndarray, classes: int) -> str:
    counts = np.bincount(indices.reshape(-1), minlength=classes)
    p = counts[counts > 0] / counts.sum()
    return (
        f"code usage: perplexity {float(np.exp(-(p * np.log(p)).sum())):.1f} of {classes}, "
        f"{int((counts == 0).sum())} dead codes"
    )


@check("vq_recon")
def vq_recon(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("vqvae_train").values
    test = _binary_images(ctx, "test_images")
    logits = _test_logits(ctx)
    value = float(two_class_nll(logits, test, "per_dim"))
    classes = int(ctx.budget("vqvae_model")["num_embeddings"])
    n_show = min(10, len(test))
    probs = torch.softmax(torch.from_numpy(logits[:n_show]).double(), dim=1)[:, 1].numpy()  # (n, 1, H, W)
    ctx.figure(
        "Test images (top) and the VQ-VAE's reconstructions p(x = 1) (bottom)",
        np.concatenate([test[:n_show], probs]),
        nrow=n_show,
    )
    ctx.curve("VQ-VAE: training loss under the grader's loop", ctx.tensor("vqvae_train/losses").tolist())
    usage = _usage(ctx.tensor("vqvae_train/test_indices"), classes)
    return CheckResult(
        value=value,
        message=f"test reconstruction {value:.4f} nats/pixel on {len(test)} images after "
        f"{ctx.budget('vqvae_train').get('steps')} steps (train loss {record.get('first_loss', float('nan')):.3f} -> "
        f"{record.get('last_loss', float('nan')):.3f}); {usage} on the test images",
    )


# ---------------------------------------------------------------- the prior


def _prior_batch(ctx: CheckContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The test codes (N, L), the prior's logits (rows, K, L), and where the test rows and the dependence
    rows sit in the batch."""
    classes, height, width = ctx.inputs["prior_shape"].tolist()
    test_codes = ctx.tensor("vqvae_train/test_indices", shape=(len(ctx.inputs["test_images"]), 1, height, width))
    dep, order = ctx.inputs["prior_dependence"], ctx.inputs["prior_order"]
    n_test, length = len(test_codes), height * width
    codes = test_codes.reshape(n_test, length)
    changed = codes[dep[:, 0]].copy()
    rows = np.arange(len(dep))
    changed[rows, dep[:, 1]] = (changed[rows, dep[:, 1]] + dep[:, 2]) % classes
    want = np.concatenate([codes, changed])[order]
    ctx.probe("prior_eval")
    got = ctx.tensor("prior_eval/codes", shape=(len(order), 1, height, width)).reshape(len(order), length)
    if not np.array_equal(got, want):
        raise ArtifactError("the prior was not evaluated on the test images' codes (the kernel changed them)")
    logits = ctx.tensor("prior_eval/logits", shape=(len(order), classes, 1, height, width))
    where = np.argsort(order)  # row r of the concatenation sits at batch row where[r]
    return codes, logits.reshape(len(order), classes, length), where[:n_test], where[n_test:]


def _prior_causality(ctx: CheckContext) -> tuple[bool, str]:
    _, logits, test_rows, dep_rows = _prior_batch(ctx)
    dep = ctx.inputs["prior_dependence"]
    width = int(ctx.inputs["prior_shape"][2])
    tol = CAUSAL_RTOL * max(1.0, float(np.abs(logits).max()))
    bad = []
    for d, (base, j, _) in enumerate(dep.tolist()):
        change = np.abs(logits[dep_rows[d], :, : j + 1] - logits[test_rows[base], :, : j + 1]).max(axis=0)
        if (change > tol).any():
            bad.append((int(np.argmax(change > tol)), j))
    if bad:
        i, j = bad[0]
        what = "itself" if i == j else f"the later code ({j // width}, {j % width})"
        return False, (
            f"the prior's logits at code ({i // width}, {i % width}) change with {what} ({len(bad)} of "
            f"{len(dep)} changed codes move logits at or before them): code i may only depend on codes before "
            "it in raster order (mask 'A' in the first layer, 'B' after)"
        )
    return True, f"causal: {len(dep)} single-code changes moved no logit at or before the changed code"


@check("prior_causal")
def prior_causal(ctx: CheckContext) -> CheckResult:
    ok, message = _prior_causality(ctx)
    return CheckResult(float(ok), message)


@check("prior_nll")
def prior_nll(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("prior_train").values
    codes, logits, test_rows, _ = _prior_batch(ctx)
    classes = logits.shape[1]
    test_logits = torch.from_numpy(logits[test_rows]).double()  # (N, K, L)
    nll = float(F.cross_entropy(test_logits, torch.from_numpy(codes)))
    train_codes = ctx.tensor("vqvae_train/train_indices").reshape(-1).astype(np.int64)
    counts = np.bincount(train_codes, minlength=classes).astype(np.float64)
    unigram = (counts + 1.0) / (counts.sum() + classes)  # add-one smoothing
    unigram_nll = float(-np.log(unigram[codes.reshape(-1)]).mean())
    ctx.curve("PixelCNN prior: training loss under the grader's loop", ctx.tensor("prior_train/losses").tolist())
    if unigram_nll < 1e-3:
        return CheckResult(
            value=float("inf"), message=f"the codes carry no information: {_usage(train_codes, classes)}"
        )
    return CheckResult(
        value=nll / unigram_nll,
        message=f"prior NLL {nll:.3f} nats/code on the test images' codes vs {unigram_nll:.3f} for the unigram fit "
        f"of the training codes (ratio {nll / unigram_nll:.3f}); train loss "
        f"{record.get('first_loss', float('nan')):.3f} -> {record.get('last_loss', float('nan')):.3f}; "
        f"{_usage(train_codes, classes)} on the training images",
        details={"prior_nll": nll, "unigram_nll": unigram_nll},
    )


# ---------------------------------------------------------------- sampling


def _calibration(x: np.ndarray, p: np.ndarray, what: str) -> str | None:
    """Binary draws x against their probabilities p, z-scores in two bins of p; None when they agree."""
    for name, sel in (("p < 0.5", p < 0.5), ("p >= 0.5", p >= 0.5)):
        if sel.sum() < 20:
            continue
        z = float((x[sel] - p[sel]).sum() / math.sqrt(max(float((p[sel] * (1 - p[sel])).sum()), 1e-3)))
        if abs(z) > CALIBRATION_Z:
            return (
                f"{what}: the drawn pixels do not follow the probabilities (pixels with {name}: mean value "
                f"{x[sel].mean():.3f}, mean probability {p[sel].mean():.3f}, z = {z:.1f}); draw each pixel, "
                "do not take the argmax"
            )
    return None


def _categorical_calibration(codes: np.ndarray, probs: np.ndarray) -> str | None:
    """Drawn codes (n, L) against their conditionals (n, K, L): sum p(drawn) vs its mean sum_k p_k^2."""
    p_drawn = np.take_along_axis(probs, codes[:, None], 1)[:, 0]
    mean = (probs**2).sum(1)
    var = (probs**3).sum(1) - mean**2
    z = float((p_drawn - mean).sum() / math.sqrt(max(float(var.sum()), 1e-6)))
    if abs(z) > CALIBRATION_Z:
        return (
            f"the prior's sample(n) does not draw from its own conditionals (mean probability of the drawn code "
            f"{p_drawn.mean():.3f}, expected {mean.mean():.3f} for draws, z = {z:.1f}): draw each code from "
            "Categorical(logits) in raster order, not the argmax"
        )
    return None


@check("vq_sample")
def vq_sample(ctx: CheckContext) -> CheckResult:
    logits = ctx.inputs["sample_logits"].astype(np.float64)
    draws = ctx.tensor("vq_sample/draws")
    failures, cases = [], 3
    probs = torch.softmax(torch.from_numpy(logits), dim=1)[:, 1].numpy()  # (B, 1, H, W)
    if draws.shape != probs.shape or not np.isin(draws, (0.0, 1.0)).all():
        failures.append(f"sample_from_logits: expected {probs.shape} values in {{0, 1}}, got {draws.shape}")
    elif problem := _calibration(draws.reshape(-1), probs.reshape(-1), "sample_from_logits"):
        failures.append(problem)
    classes, height, width = ctx.inputs["prior_shape"].tolist()
    n = int(ctx.budget("vq_sample")["n"])
    codes = ctx.tensor("vq_sample/prior_codes")
    if codes.shape != (n, 1, height, width) or codes.min() < 0 or codes.max() >= classes:
        failures.append(f"PixelCNNPrior.sample(n): expected codes (n, 1, {height}, {width}) in [0, {classes})")
    else:
        causal = _causal_or_none(ctx)
        if causal:
            prior_logits = ctx.tensor("vq_sample/prior_code_logits", shape=(n, classes, 1, height, width))
            probs_codes = torch.softmax(torch.from_numpy(prior_logits).double(), dim=1).numpy().reshape(n, classes, -1)
            if problem := _categorical_calibration(codes.reshape(n, -1), probs_codes):
                failures.append(problem)
        else:
            cases -= 1  # a non-causal prior's logits on the finished codes are not the conditionals it drew from
        images = ctx.tensor("vq_sample/images")
        want = (n, *ctx.inputs["image_shape"].tolist())
        if images.shape != want or not np.isin(images, (0.0, 1.0)).all():
            failures.append(f"sample(n, indices): expected images {want} in {{0, 1}}, got {images.shape}")
        else:
            ctx.figure("VQ-VAE samples decoded from the PixelCNN prior's codes", images[:64])
    return CheckResult.of_cases(failures, cases, "sample_from_logits and the prior's sample draw from the model")


def _causal_or_none(ctx: CheckContext) -> bool | None:
    try:
        return _prior_causality(ctx)[0]
    except ArtifactError:
        return None


# ---------------------------------------------------------------- the GAN


@check("gan_d_loss")
def gan_d_loss(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("gan_losses").values
    failures = []
    for case, (p, q) in enumerate(STUB_CASES):
        got = {
            k: float(ctx.tensor(f"gan_losses/{k}_{case}", shape=(1,))[0])
            for k in ("discriminator_loss", "discriminator_loss_real", "discriminator_loss_fake")
        }
        real, fake = -math.log(p), -math.log(1 - q)
        where = f"with D = {p} on real and {q} on generated images"
        calls = stub_calls(record.get(f"d_calls_{case}"))
        if sum(r for r, _ in calls) != STUB_REAL:
            failures.append(f"{where}: loss_discriminator(x) must call D on the {STUB_REAL} real images x once")
            continue
        if not math.isclose(got["discriminator_loss_real"], real, rel_tol=RTOL):
            failures.append(
                f"{where}: discriminator_loss_real = {got['discriminator_loss_real']:.6g}, expected "
                f"-log D(x) = {real:.6g}{_sign_hint(got['discriminator_loss_real'], real, p, True)}"
            )
        if not math.isclose(got["discriminator_loss_fake"], fake, rel_tol=RTOL):
            failures.append(
                f"{where}: discriminator_loss_fake = {got['discriminator_loss_fake']:.6g}, expected "
                f"-log(1 - D(G(z))) = {fake:.6g}{_sign_hint(got['discriminator_loss_fake'], fake, q, False)}"
            )
        total = got["discriminator_loss"]
        if not any(math.isclose(total, c * (real + fake), rel_tol=RTOL) for c in (1.0, 0.5)):
            failures.append(
                f"{where}: discriminator_loss = {total:.6g}, expected -log D(x) - log(1 - D(G(z))) = "
                f"{real + fake:.6g} (or half of it)"
            )
    return CheckResult.of_cases(failures, 2 * len(STUB_CASES), "discriminator loss -log D(x) - log(1 - D(G(z)))")


def _sign_hint(got: float, want: float, d: float, target_one: bool) -> str:
    """What a wrong loss value on a stub output d is, when it is a known mistake."""
    softplus = math.log1p(math.exp(-d)) if target_one else math.log1p(math.exp(d))  # BCE-with-logits on d
    if math.isclose(got, softplus, rel_tol=RTOL):
        return (
            " (a sigmoid applied to D's probabilities again: BCE with logits on D(x), which already is a probability)"
        )
    if math.isclose(got, -want, rel_tol=RTOL):
        return " (the sign is flipped)"
    return ""


@check("gan_g_loss")
def gan_g_loss(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("gan_losses").values
    failures = []
    for case, (_, q) in enumerate(STUB_CASES):
        got = float(ctx.tensor(f"gan_losses/generator_loss_{case}", shape=(1,))[0])
        want = -math.log(q)
        where = f"with D = {q} on generated images"
        calls = stub_calls(record.get(f"g_calls_{case}"))
        if not calls or sum(f for _, f in calls) == 0:
            failures.append(f"{where}: loss_generator(n) must call D on generated images")
            continue
        if not math.isclose(got, want, rel_tol=RTOL):
            if math.isclose(got, math.log(1 - q), rel_tol=RTOL):
                hint = " (the saturating loss log(1 - D(G(z))): minimise -log D(G(z)) instead)"
            else:
                hint = _sign_hint(got, want, q, True)
            failures.append(f"{where}: generator_loss = {got:.6g}, expected -log D(G(z)) = {want:.6g}{hint}")
    params, reached, problem = generator_reach(record)
    failures += [problem] if problem else []
    message = f"non-saturating loss -log D(G(z)); its gradient reaches {reached} of {params} generator parameters"
    return CheckResult.of_cases(failures, len(STUB_CASES) + 1, message)


@check("gan_samples")
def gan_samples(ctx: CheckContext) -> CheckResult:
    ctx.probe("gan_sample")
    samples, problem = host_z_samples(ctx, "gan_sample", tuple(ctx.inputs["gan_shape"].tolist()))
    if problem:
        return CheckResult(0.0, problem)
    ctx.figure("GAN samples (the host's z)", samples[:64])
    return CheckResult(1.0, f"{len(samples)} samples G(z), z ~ N(0, I), shape {samples.shape[1:]}, values in [0, 1]")


def _trained_samples(ctx: CheckContext) -> np.ndarray:
    if ctx.probe("gan_sample").values.get("trained") is not True:
        raise ArtifactError("the GAN did not train (see the gan_train probe): no trained samples to score")
    samples, _ = host_z_samples(ctx, "gan_sample", tuple(ctx.inputs["gan_shape"].tolist()))
    return np.clip(samples, 0.0, 1.0).astype(np.float32)


@check("gan_kid")
def gan_kid(ctx: CheckContext) -> CheckResult:
    name, n_test = GAN_DATA[ctx.profile]
    score = kid_score(name, _trained_samples(ctx), seed=ctx.seed, n_test=n_test)
    d_losses = ctx.tensor("gan_train/d_losses")
    ctx.curve("GAN: discriminator loss under the grader's loop", d_losses.tolist())
    return CheckResult(
        value=score.score,
        message=f"KID {score.kid:.4f} on standardised classifier features vs {score.anchor:.4f} for 'mean image + "
        f"noise' (score 1 - KID / anchor = {score.score:.3f}); D loss at the end {float(d_losses[-100:].mean()):.3f}",
        details={"kid": score.kid, "anchor_kid": score.anchor},
    )


@check("gan_coverage")
def gan_coverage(ctx: CheckContext) -> CheckResult:
    samples = _trained_samples(ctx)
    share = class_shares(GAN_DATA[ctx.profile][0], samples)
    covered = int((share >= COVERAGE_SHARE).sum())
    return CheckResult(
        value=float(covered),
        message=f"{covered} of 10 classes hold at least {COVERAGE_SHARE:.0%} of {len(samples)} samples "
        f"(shares {', '.join(f'{s:.2f}' for s in share)})",
        details={f"share_{k}": float(s) for k, s in enumerate(share)},
    )
