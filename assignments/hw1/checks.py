"""Homework 1 checks: turn the probes' raw answers into item results, on the host.

Every input the checks compare against is made here (`make_inputs`, from the run's seed) and every
verdict is computed here from those inputs and the kernel's raw answers; the oracle side comes from
`reference_solutions.pixelcnn` / `reference_solutions.image_gpt`. Probe keys are documented in
`probes.py`.

Test NLL and causality come from the same stepped queries (probe `eval`, both models at once). For
L = H W pixels there are L + 1 steps; step k's batch holds every test image with its pixels at raster
positions >= k replaced by host-random bits, plus this step's share of the dependence rows (train
images and host-random binary images, each as is and with every single pixel flipped), in a
host-random order and with the same batch size at every step. The NLL of pixel k is read from step k,
so it was answered before the kernel had seen pixel k or any later pixel of any test image: neither a
model that peeks at the future nor one that remembers earlier queries can lower it. A causal model's
logits at pixel i do not change between steps k >= i (only pixels >= k differ), so its NLL is the
one-shot NLL of the full images; the causality items demand exactly that of the test rows, and that
no flip of pixel j moves a logit at a pixel <= j in the dependence rows.

Sampling is checked by calibration: for a causal model, the logits of the finished image at pixel i
are exactly the conditional p(x_i | x_<i) the sampler had to draw from, so over many drawn pixels
sum(x_i - p_i) / sqrt(sum p_i (1 - p_i)) is approximately N(0, 1) — separately for p < 0.5 and p >= 0.5,
which exposes argmax "sampling", coin flips, inverted classes and one-shot (non-sequential) sampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from grader.checks import CheckContext, CheckResult, check, inputs
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.metrics.nll import bernoulli_nll, two_class_nll
from grader.rubric import load_rubric
from reference_solutions.image_gpt import get_attention_mask
from reference_solutions.pixelcnn import MaskedConv2d, PixelCNN, get_receptive_field

RUBRIC = Path(__file__).with_name("rubric.yaml")
DATASET = {"ci": "digits", "full": "mnist"}  # binarized; the budget `eval.n_eval` caps the test images used
CALIBRATION_Z = 5.0  # |z| above this is a sampler bug (false alarm rate ~1e-6 per bin)
CAUSAL_RTOL = 1e-5  # a change below this times the logit scale is rounding, not dependence
MIN_EARLIER_FRACTION = 0.9  # share of pixels i >= 1 whose logits must react to some pixel j < i
# Inputs sent to the sandbox (the probes read the cases from there, never from a copy of their own)
MASK_CASES = [(t, k) for k in (3, 5, 7) for t in ("A", "B")]  # MaskedConv2d(type, 2, 3, k, padding=k // 2)
MASK_INPUT = (2, 2, 9, 9)  # x per case: (B, C_in, H, W)
ATTENTION_LENGTHS = (1, 2, 5, 16)  # and L = H W
LOSS_BATCH = 64  # train images in the loss-consistency batch
SOS_INPUT = (2, 3)  # batches x rows of random embeddings (B, L, E) for add_sos_token / add_pos_embeddings
DEPENDENCE_BASES = 2  # train images, and as many host-random binary images, in the dependence rows
MODELS = {"pixelcnn": ("PixelCNN", 2), "imagegpt": ("ImageGPT", 1)}  # -> (name, logits per pixel)


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    """Everything the probes get (see `needs=` in probes.py), and the layout of the stepped batches.

    Images are binarized uint8 (N, 1, H, W): 8x8 digits (ci), MNIST (full). `test_images`,
    `eval_test_rows` and `eval_dependence_rows` stay on the host; the test images reach the kernel only
    through `eval_batches`.
    """
    budgets = load_rubric(RUBRIC).profile(profile).budgets
    train = load_dataset(DATASET[profile], "train", binarize=True)[0].astype(np.uint8)
    test = load_dataset(DATASET[profile], "test", binarize=True)[0].astype(np.uint8)
    test = test[: budgets.get("eval", {}).get("n_eval")]
    height, width = train.shape[-2:]
    length = height * width
    rng = np.random.default_rng(seed)

    n_cases, k_max = len(MASK_CASES), max(k for _, k in MASK_CASES)
    mask_weight = np.zeros((n_cases, 3, 2, k_max, k_max), dtype=np.float32)  # case i uses [i, :, :, :k, :k]
    for i, (_, k) in enumerate(MASK_CASES):
        mask_weight[i, :, :, :k, :k] = rng.standard_normal((3, 2, k, k))

    n_complete = int(budgets["pixelcnn_autocomplete"]["n"])
    init = train[rng.choice(len(train), n_complete, replace=False)].astype(np.float32)
    init[:, :, height // 2 :] = -1.0  # the lower half is unknown

    bases = np.concatenate(
        [
            train[rng.choice(len(train), DEPENDENCE_BASES, replace=False)],
            rng.integers(0, 2, (DEPENDENCE_BASES, 1, height, width), dtype=np.uint8),
        ]
    )
    embed_dim = int(budgets["imagegpt_model"]["embed_dim"])
    return {
        "train_images": train,
        "test_images": test,
        "image_shape": np.array([height, width], dtype=np.int64),
        "loss_images": train[:LOSS_BATCH],
        "mask_cases": np.array([(ord(t), k) for t, k in MASK_CASES], dtype=np.int64),
        "mask_x": rng.standard_normal((n_cases, *MASK_INPUT)).astype(np.float32),
        "mask_weight": mask_weight,
        "mask_bias": rng.standard_normal((n_cases, 3)).astype(np.float32),
        "autocomplete_init": init,
        "attention_lengths": np.array([*ATTENTION_LENGTHS, length], dtype=np.int64),
        "shapes_small_tokens": rng.integers(0, 2, (2, 4), dtype=np.int64),
        "shapes_small_images": rng.integers(0, 2, (2, 1, 2, 2), dtype=np.uint8),
        "shapes_tokens": rng.integers(0, 2, (3, length), dtype=np.int64),
        "sos_x": rng.standard_normal((*SOS_INPUT, length, embed_dim)).astype(np.float32),
        **_eval_batches(test, bases, rng),
    }


def _eval_batches(test: np.ndarray, bases: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The stepped evaluation: batches (L + 1, B, 1, H, W) and where each test image and dependence row is.

    B = N test images + one dependence row per base; the n_bases (L + 1) dependence rows (each base as
    is, then with pixel j flipped for every j) are dealt to the L + 1 steps in a host-random order.
    """
    n_test, n_bases = len(test), len(bases)
    height, width = test.shape[-2:]
    length = height * width
    steps, batch = length + 1, n_test + n_bases
    variants = np.repeat(bases.reshape(n_bases, 1, length), steps, axis=1)  # (n_bases, L + 1, L)
    variants[:, np.arange(length) + 1, np.arange(length)] ^= 1  # variant j + 1 has pixel j flipped
    variants = variants.reshape(n_bases * steps, length)
    slots = rng.permutation(n_bases * steps).reshape(steps, n_bases)  # step k holds variants[slots[k]]
    batches = np.empty((steps, batch, length), dtype=np.uint8)
    test_rows = np.empty((steps, n_test), dtype=np.int64)
    dependence_rows = np.empty((n_bases * steps, 2), dtype=np.int64)
    for k in range(steps):
        rows = np.concatenate([test.reshape(n_test, length), variants[slots[k]]])  # (B, L)
        rows[:n_test, k:] = rng.integers(0, 2, (n_test, length - k), dtype=np.uint8)
        order = rng.permutation(batch)  # batch row r holds rows[order[r]]
        batches[k] = rows[order]
        where = np.argsort(order)  # rows[i] sits at batch row where[i]
        test_rows[k] = where[:n_test]
        dependence_rows[slots[k]] = np.stack([np.full(n_bases, k), where[n_test:]], axis=1)
    return {
        "eval_batches": batches.reshape(steps, batch, 1, height, width),
        "eval_test_rows": test_rows,  # (L + 1, N): the row of test image n in step k's batch
        "eval_dependence_rows": dependence_rows.reshape(n_bases, steps, 2),  # (step, row) of base b, variant v
    }


def _test(ctx: CheckContext) -> np.ndarray:
    return ctx.inputs["test_images"]


def _shape(ctx: CheckContext) -> tuple[int, int]:
    height, width = ctx.inputs["image_shape"].tolist()
    return height, width


def _pixel(index: int, width: int) -> str:
    return f"({index // width}, {index % width})"


def _eval_logits(ctx: CheckContext, model: str, step: int) -> np.ndarray:
    """`model`'s logits on step `step`'s batch, (B, K, L) with K logits per pixel."""
    record = ctx.probe("eval")
    name, per_pixel = MODELS[model]
    if error := record.values.get(f"{model}_error"):
        raise ArtifactError(f"the {name} could not be evaluated on the grader's images: {error}")
    height, width = _shape(ctx)
    batch = ctx.inputs["eval_batches"].shape[1]
    if model == "pixelcnn":  # (B, 2, 1, H, W) -> (B, 2, L)
        logits = ctx.tensor(f"eval/{step}/{model}", shape=(batch, 2, 1, height, width), dtype="float32")
        return logits.reshape(batch, per_pixel, height * width)
    logits = ctx.tensor(f"eval/{step}/{model}", shape=(batch, height * width, 1), dtype="float32")
    return logits.transpose(0, 2, 1)  # (B, L, 1) -> (B, 1, L)


def _causality(ctx: CheckContext, model: str) -> tuple[bool, str]:
    """Whether the logits at pixel i react to no pixel j >= i and, for most i, to some j < i.

    From the dependence rows (a flip of pixel j must leave every logit at a pixel <= j unchanged) and
    from the test rows (their logits at pixel i must not change between steps k >= i).
    """
    height, width = _shape(ctx)
    length = height * width
    test_rows = ctx.inputs["eval_test_rows"]  # (S, N)
    where = ctx.inputs["eval_dependence_rows"]  # (n_bases, L + 1, 2)
    steps = len(test_rows)
    final = _eval_logits(ctx, model, steps - 1)[test_rows[-1]]  # (N, K, L): the full test images
    variants = np.empty((*where.shape[:2], *final.shape[1:]), dtype=np.float32)  # (n_bases, L + 1, K, L)
    drift = np.zeros(length, dtype=np.float32)  # max change of a test row's logits at pixel i over steps k >= i
    for k in range(steps):
        logits = _eval_logits(ctx, model, k)
        here = where[..., 0] == k
        variants[here] = logits[where[..., 1][here]]
        seen = min(k + 1, length)  # pixels < k are the test image's own, so logits at pixels <= k are fixed
        change = np.abs(logits[test_rows[k], :, :seen] - final[:, :, :seen]).max(axis=(0, 1))
        drift[:seen] = np.maximum(drift[:seen], change)
    scale = max(float(np.abs(variants[:, 0]).max()), float(np.abs(final).max()))
    tol = CAUSAL_RTOL * max(1.0, scale)
    # [j, i]: the largest change of the logits at pixel i when pixel j flips, over bases and logits
    dependence = np.abs(variants[:, 1:] - variants[:, :1]).max(axis=(0, 2))
    reacts = dependence > tol
    future = np.tril(reacts)  # j >= i
    if future.any():
        j, i = np.argwhere(future)[0].tolist()
        what = "on the pixel itself" if i == j else f"on the later pixel {_pixel(j, width)}"
        return False, (
            f"the logits at pixel {_pixel(i, width)} depend {what} ({int(future.sum())} such pairs); "
            "pixel i may only depend on pixels before it in raster order"
        )
    if (drift > tol).any():
        i = int(np.argmax(drift > tol))
        return False, (
            f"the logits of the test images at pixel {_pixel(i, width)} change when only pixels at or after "
            f"it change ({int((drift > tol).sum())} such pixels); pixel i may only depend on pixels before it "
            "in raster order"
        )
    sees_earlier = float(reacts[:, 1:].any(axis=0).mean())
    if sees_earlier < MIN_EARLIER_FRACTION:
        return False, (
            f"only {sees_earlier:.0%} of the pixels react to any earlier pixel; "
            "the model ignores the context it is given"
        )
    return True, f"causal: no logit depends on its own or a later pixel; {sees_earlier:.0%} see earlier pixels"


def _causal_or_none(ctx: CheckContext, model: str) -> bool | None:
    try:
        return _causality(ctx, model)[0]
    except ArtifactError:
        return None


def _test_nll(ctx: CheckContext, model: str) -> float:
    """Test NLL in nats/pixel, pixel k's logits from step k (answered before pixel k was revealed)."""
    test = _test(ctx)  # (N, 1, H, W)
    n_test = len(test)
    height, width = _shape(ctx)
    length = height * width
    test_rows = ctx.inputs["eval_test_rows"]
    logits = np.empty((n_test, MODELS[model][1], length), dtype=np.float32)  # (N, K, L)
    for k in range(length):
        logits[:, :, k] = _eval_logits(ctx, model, k)[test_rows[k], :, k]
    x = test.astype(np.float64)
    if model == "pixelcnn":  # (N, 2, L) -> (N, 2, 1, H, W)
        return float(two_class_nll(logits.reshape(n_test, 2, 1, height, width), x, "per_dim"))
    return float(bernoulli_nll(logits[:, 0], x.reshape(n_test, length), "per_dim"))


def _calibration(x: torch.Tensor, p: torch.Tensor) -> tuple[bool, str]:
    """z-scores of drawn pixels x against the model's probabilities p, in two bins of p."""
    parts = []
    for name, sel in (("p < 0.5", p < 0.5), ("p >= 0.5", p >= 0.5)):
        if sel.sum() < 20:
            continue
        var = (p[sel] * (1 - p[sel])).sum().clamp(min=1e-3)
        z = float((x[sel] - p[sel]).sum() / var.sqrt())
        if abs(z) > CALIBRATION_Z:
            return False, (
                f"the drawn pixels do not follow the model's own probabilities (pixels with {name}: "
                f"mean value {x[sel].mean():.3f}, mean probability {p[sel].mean():.3f}, z = {z:.1f}); "
                "draw each pixel from p(x_i | x_<i), in raster order"
            )
        parts.append(f"z = {z:+.1f} for {name}")
    return True, "drawn pixels match the model's probabilities (" + ", ".join(parts) + ")"


def _binary(name: str, x: np.ndarray) -> None:
    if not np.isin(x, (0.0, 1.0)).all():
        raise ArtifactError(f"{name}: expected values in {{0, 1}}, got values in [{x.min():.3g}, {x.max():.3g}]")


def _check_samples(
    ctx: CheckContext, probe: str, model: str, to_prob: Callable[[CheckContext, str, int], torch.Tensor], title: str
) -> CheckResult:
    height, width = _shape(ctx)
    n = int(ctx.budget(probe).get("n", 0)) or None
    samples = ctx.tensor(f"{probe}/samples", shape=(n, 1, height, width), dtype="float32")
    _binary("samples", samples)
    ctx.figure(title, samples)
    if not _causal_or_none(ctx, model):
        return CheckResult(
            1.0,
            f"{len(samples)} samples of the right shape, binary; calibration not checked "
            "because the model is not causal",
        )
    ok, message = _calibration(torch.from_numpy(samples).flatten(), to_prob(ctx, f"{probe}/logits", len(samples)))
    return CheckResult(float(ok), message)


def _two_class_prob(ctx: CheckContext, key: str, n: int) -> torch.Tensor:
    logits = torch.from_numpy(ctx.tensor(key, shape=(n, 2, 1, *_shape(ctx)), dtype="float32")).double()
    return torch.softmax(logits, dim=1)[:, 1].flatten()  # (n, 2, 1, H, W) -> (n H W,)


def _bernoulli_prob(ctx: CheckContext, key: str, n: int) -> torch.Tensor:
    height, width = _shape(ctx)
    logits = torch.from_numpy(ctx.tensor(key, shape=(n, height * width, 1), dtype="float32")).double()
    return torch.sigmoid(logits).flatten()  # (n, L, 1) -> (n L,)


def _loss_matches(ctx: CheckContext, probe: str, recomputed: torch.Tensor) -> CheckResult:
    # Whether the loss carries gradient is the kernel's word only (it could report anything); a loss
    # that does not train shows where the host can see it, in the NLL after the grader's training.
    ctx.probe(probe)
    got = float(ctx.tensor(f"{probe}/loss", shape=(1,), dtype="float64")[0])
    want = float(recomputed)
    if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
        return CheckResult(
            0.0,
            f"loss(x)['total_loss'] = {got:.6g}, but the mean cross-entropy of the model's "
            f"own logits on the same batch is {want:.6g} nats/pixel",
        )
    return CheckResult(1.0, f"loss = {got:.5f} nats/pixel, equal to the cross-entropy of the returned logits")


def _loss_images(ctx: CheckContext) -> torch.Tensor:
    return torch.from_numpy(ctx.inputs["loss_images"].astype(np.float64))  # (N, 1, H, W) in {0, 1}


def _nll_result(ctx: CheckContext, model: str) -> CheckResult:
    """The metric value; the score stage maps it against the calibrated reference (`ctx.baseline`)."""
    probe = f"{model}_train"
    record = ctx.probe(probe).values  # no metric for a model the grader's loop could not train
    steps = ctx.budget(probe).get("steps")
    losses = ctx.tensor(f"{probe}/losses", shape=(steps,))
    ctx.curve(f"{model}: training loss under the grader's loop (nats/pixel)", losses.tolist())
    return CheckResult(
        value=_test_nll(ctx, model),
        message=f"after {steps} training steps of the grader's loop (train loss "
        f"{record.get('first_loss', float('nan')):.3f} -> "
        f"{record.get('last_loss', float('nan')):.3f}); "
        f"NLL of {len(_test(ctx))} test images, each pixel's logits computed before the pixel was revealed",
    )


# ---------------------------------------------------------------- PixelCNN


def _mask_problem(ctx: CheckContext, case: int, oracle: torch.Tensor) -> str:
    """Why case `case`'s output is wrong: the student's `mask` where it is readable, else the forward."""
    mask_type, k = MASK_CASES[case]
    forward = f"forward with mask '{mask_type}' {k}x{k} is not conv2d(x, weight * mask, bias) with the grader's weights"
    raw = ctx.artifacts.tensors.get(f"pixelcnn_mask/mask_{case}")
    if raw is None:
        return forward
    try:
        mask = np.broadcast_to(raw, oracle.shape)
    except ValueError:
        return f"mask '{mask_type}' {k}x{k} has shape {raw.shape}, expected {tuple(oracle.shape)}"
    if not np.array_equal(mask, oracle.numpy()):
        bad = np.argwhere(mask != oracle.numpy())[0][2:].tolist()
        return f"mask '{mask_type}' {k}x{k} differs from the reference at kernel position {tuple(bad)}"
    return forward


@check("pixelcnn_mask")
def pixelcnn_mask(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("pixelcnn_mask")
    failures: list[str] = []
    for i, (mask_type, k) in enumerate(MASK_CASES):
        oracle = MaskedConv2d(mask_type, 2, 3, k).create_mask()  # (3, 2, k, k)
        x = torch.from_numpy(ctx.inputs["mask_x"][i])
        weight = torch.from_numpy(ctx.inputs["mask_weight"][i, :, :, :k, :k])
        bias = torch.from_numpy(ctx.inputs["mask_bias"][i]) if record.values.get(f"bias_{i}", False) else None
        want = F.conv2d(x, weight * oracle, bias, padding=k // 2)
        y = ctx.tensor(f"pixelcnn_mask/y_{i}")
        if y.shape != tuple(want.shape) or not torch.allclose(torch.from_numpy(y).float(), want, rtol=1e-4, atol=1e-4):
            failures.append(_mask_problem(ctx, i, oracle))
    return CheckResult.of_cases(
        failures, len(MASK_CASES), "all 6 masks ('A'/'B', kernels 3, 5, 7) and forwards are right"
    )


@check("pixelcnn_causal")
def pixelcnn_causal(ctx: CheckContext) -> CheckResult:
    ok, message = _causality(ctx, "pixelcnn")
    return CheckResult(float(ok), message)


@check("pixelcnn_loss")
def pixelcnn_loss(ctx: CheckContext) -> CheckResult:
    x = _loss_images(ctx)
    logits = ctx.tensor("pixelcnn_loss/logits", shape=(len(x), 2, 1, *_shape(ctx)), dtype="float32")
    return _loss_matches(ctx, "pixelcnn_loss", two_class_nll(logits, x, "per_dim"))


@check("pixelcnn_receptive_field")
def pixelcnn_receptive_field(ctx: CheckContext) -> CheckResult:
    ctx.probe("pixelcnn_receptive_field")
    budget = ctx.budget("pixelcnn_receptive_field")
    arch = ctx.budget("pixelcnn_model")
    shape = _shape(ctx)
    cases, failures = 0, []
    for n_layers in range(1, int(budget["max_layers"]) + 1):
        student = ctx.tensor(f"pixelcnn_receptive_field/student_{n_layers}", shape=shape) != 0
        grader = ctx.tensor(f"pixelcnn_receptive_field/grader_{n_layers}", shape=shape, dtype="bool")
        torch.manual_seed(ctx.seed + n_layers)
        reference = PixelCNN(
            shape, n_filters=int(arch["n_filters"]), kernel_size=int(budget["kernel_size"]), n_layers=n_layers
        )
        oracle = get_receptive_field(reference, shape).numpy()
        cases += 2
        if not np.array_equal(student, grader):
            failures.append(
                f"n_layers={n_layers}: get_receptive_field marks {int(student.sum())} pixels, "
                f"the gradient of the centre logits reaches {int(grader.sum())}"
            )
        if not np.array_equal(grader, oracle):
            failures.append(
                f"n_layers={n_layers}: the model's receptive field ({int(grader.sum())} pixels) is "
                f"not the specified architecture's ({int(oracle.sum())} pixels)"
            )
    return CheckResult.of_cases(failures, cases, "receptive fields (with the blind spot) match for every depth")


@check("pixelcnn_sample")
def pixelcnn_sample(ctx: CheckContext) -> CheckResult:
    ctx.probe("pixelcnn_sample")
    return _check_samples(ctx, "pixelcnn_sample", "pixelcnn", _two_class_prob, "PixelCNN samples")


@check("pixelcnn_autocomplete")
def pixelcnn_autocomplete(ctx: CheckContext) -> CheckResult:
    ctx.probe("pixelcnn_autocomplete")
    init = torch.from_numpy(ctx.inputs["autocomplete_init"])  # (n, 1, H, W): -1 where unknown
    out = ctx.tensor("pixelcnn_autocomplete/completed", shape=tuple(init.shape), dtype="float32")
    out_t = torch.from_numpy(out)
    known = init >= 0
    if not torch.equal(out_t[known], init[known]):
        changed = int((out_t[known] != init[known]).sum())
        return CheckResult(
            0.0, f"{changed} known pixels (the upper half) were changed; only pixels equal to -1 may be filled"
        )
    _binary("completed pixels", out)
    ctx.figure("PixelCNN completions of the lower half", out)
    if not _causal_or_none(ctx, "pixelcnn"):
        return CheckResult(
            1.0,
            "known pixels kept, unknown pixels filled with 0/1; calibration not checked "
            "because the model is not causal",
        )
    p = _two_class_prob(ctx, "pixelcnn_autocomplete/logits", len(init))
    ok, message = _calibration(out_t.flatten()[~known.flatten()], p[~known.flatten()])
    return CheckResult(float(ok), "known pixels kept; " + message)


@check("pixelcnn_nll")
def pixelcnn_nll(ctx: CheckContext) -> CheckResult:
    return _nll_result(ctx, "pixelcnn")


# ---------------------------------------------------------------- ImageGPT


@check("imagegpt_attention_mask")
def imagegpt_attention_mask(ctx: CheckContext) -> CheckResult:
    ctx.probe("imagegpt_attention_mask")
    lengths = tuple(ctx.inputs["attention_lengths"].tolist())
    failures = []
    for seq_len in lengths:
        got = ctx.tensor(f"imagegpt_attention_mask/mask_{seq_len}", shape=(seq_len, seq_len), finite=False)
        want = get_attention_mask(seq_len).numpy()
        if got.dtype.kind != "f":
            failures.append(f"L={seq_len}: expected a float mask (0 / -inf), got {got.dtype}")
        elif not np.array_equal(got, want):
            i, j = np.argwhere(got != want)[0].tolist()
            failures.append(f"L={seq_len}: entry ({i}, {j}) is {got[i, j]}, expected {want[i, j]}")
    return CheckResult.of_cases(failures, len(lengths), f"causal masks right for L in {lengths}")


@check("imagegpt_causal")
def imagegpt_causal(ctx: CheckContext) -> CheckResult:
    ok, message = _causality(ctx, "imagegpt")
    return CheckResult(float(ok), message)


@check("imagegpt_sos")
def imagegpt_sos(ctx: CheckContext) -> CheckResult:
    ctx.probe("imagegpt_sos")
    train = ctx.artifacts.probes.get("imagegpt_train")
    trained = train is not None and train.status == "ok"  # the host's own record, not the kernel's word
    failures = []
    firsts = []
    for i, x in enumerate(ctx.inputs["sos_x"]):  # (3, L, E) each
        shifted = ctx.tensor(f"imagegpt_sos/shifted_{i}", shape=x.shape, dtype="float32")
        pos = ctx.tensor(f"imagegpt_sos/pos_{i}", shape=x.shape, dtype="float32")
        if not np.allclose(shifted[:, 1:], x[:, :-1]):
            failures.append("add_sos_token must shift the sequence right by one (out[:, i] = x_emb[:, i - 1])")
        if not np.allclose(shifted[:, :1], shifted[:1, :1]):
            failures.append("the start token differs between the sequences of a batch")
        firsts.append(shifted[0, 0])
        delta = pos - x
        if not np.allclose(delta, delta[:1], atol=1e-5):
            failures.append("add_pos_embeddings adds something that depends on the input, not only on the position")
        elif trained and np.allclose(delta[0], delta[0, :1], atol=1e-6):
            failures.append("add_pos_embeddings adds the same vector at every position (after training)")
    if not np.allclose(firsts[0], firsts[1]):
        failures.append("the start token depends on the input")
    failures = list(dict.fromkeys(failures))
    return CheckResult(
        0.0 if failures else 1.0,
        "; ".join(failures) or "SOS shift, learned start token and positional embeddings are right",
    )


@check("imagegpt_shapes")
def imagegpt_shapes(ctx: CheckContext) -> CheckResult:
    ctx.probe("imagegpt_shapes")
    small = ctx.inputs["shapes_small_tokens"]
    tokens = ctx.inputs["shapes_tokens"]
    ctx.tensor("imagegpt_shapes/forward_small", shape=(*small.shape, 1))
    sample = ctx.tensor("imagegpt_shapes/sample_small", shape=(1, 1, 2, 2))
    _binary("sample(1)", sample)
    ctx.tensor("imagegpt_shapes/forward", shape=(*tokens.shape, 1))
    return CheckResult(
        1.0,
        f"smoke test passed: forward {small.shape} -> {(*small.shape, 1)}, a scalar loss, "
        f"sample(1) -> (1, 1, 2, 2); forward {tokens.shape} -> {(*tokens.shape, 1)}",
    )


@check("imagegpt_loss")
def imagegpt_loss(ctx: CheckContext) -> CheckResult:
    x = _loss_images(ctx).flatten(1)  # (N, 1, H, W) -> (N, L)
    logits = ctx.tensor("imagegpt_loss/logits", shape=(*x.shape, 1), dtype="float32")
    return _loss_matches(ctx, "imagegpt_loss", bernoulli_nll(logits[..., 0], x, "per_dim"))


@check("imagegpt_sample")
def imagegpt_sample(ctx: CheckContext) -> CheckResult:
    ctx.probe("imagegpt_sample")
    return _check_samples(ctx, "imagegpt_sample", "imagegpt", _bernoulli_prob, "ImageGPT samples")


@check("imagegpt_nll")
def imagegpt_nll(ctx: CheckContext) -> CheckResult:
    return _nll_result(ctx, "imagegpt")
