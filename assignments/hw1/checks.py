"""Homework 1 checks: turn the probes' raw outputs into item results, on the host.

The oracle side comes from `reference_solutions.pixelcnn` / `reference_solutions.image_gpt` (masks,
receptive fields, attention masks); metrics are computed here from the logits the probes returned
(`grader.metrics.nll`), never taken from the student's own numbers. Probe keys are documented in
`probes.py`.

Sampling is checked by calibration: for a causal model, the logits of the finished image at pixel i
are exactly the conditional p(x_i | x_<i) the sampler had to draw from, so over many drawn pixels
sum(x_i - p_i) / sqrt(sum p_i (1 - p_i)) is approximately N(0, 1) — separately for p < 0.5 and p >= 0.5,
which exposes argmax "sampling", coin flips, inverted classes and one-shot (non-sequential) sampling.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from grader.checks import CheckContext, CheckResult, check, inputs
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.metrics.nll import bernoulli_nll, two_class_nll
from reference_solutions.image_gpt import get_attention_mask
from reference_solutions.pixelcnn import MaskedConv2d, PixelCNN, get_receptive_field

DATASET = {"ci": ("digits", None), "full": ("mnist", 2000)}  # profile -> (dataset, test images used)
MASK_CASES = [(t, k) for k in (3, 5, 7) for t in ("A", "B")]
CALIBRATION_Z = 5.0  # |z| above this is a sampler bug (false alarm rate ~1e-6 per bin)
CAUSAL_RTOL = 1e-5  # a change below this times the logit scale is rounding, not dependence
MIN_EARLIER_FRACTION = 0.9  # share of pixels i >= 1 whose logits must react to some pixel j < i


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    """Binarized train and test images, uint8 (N, 1, H, W) in {0, 1}: 8x8 digits (ci), MNIST (full)."""
    name, n_test = DATASET[profile]
    train = load_dataset(name, "train", binarize=True)[0]
    test = load_dataset(name, "test", binarize=True)[0][:n_test]
    return {"train_images": train.astype(np.uint8), "test_images": test.astype(np.uint8)}


def _test(ctx: CheckContext) -> torch.Tensor:
    return torch.from_numpy(ctx.inputs["test_images"].astype(np.float32))


def _shape(ctx: CheckContext) -> tuple[int, int]:
    return tuple(ctx.inputs["test_images"].shape[-2:])


def _pixel(index: int, width: int) -> str:
    return f"({index // width}, {index % width})"


def _causality(ctx: CheckContext, probe: str) -> tuple[bool, str]:
    """Whether the model's logit at pixel i reacts to no pixel j >= i and to some j < i."""
    ctx.probe(probe)
    height, width = _shape(ctx)
    n = height * width
    dep = torch.from_numpy(ctx.tensor(f"{probe}/dependence", shape=(n, n), dtype="float32"))
    scale = float(ctx.probe(probe).values.get("logit_scale", 1.0))
    tol = CAUSAL_RTOL * max(1.0, scale)
    seen = dep > tol  # [j, i]: output i changed when input j flipped
    future = seen.tril()  # j >= i
    if future.any():
        j, i = future.nonzero()[0].tolist()
        what = "on the pixel itself" if i == j else f"on the later pixel {_pixel(j, width)}"
        return False, (
            f"the logits at pixel {_pixel(i, width)} depend {what} ({int(future.sum())} such pairs); "
            "pixel i may only depend on pixels before it in raster order"
        )
    sees_earlier = seen[:, 1:].any(dim=0).float().mean().item()
    if sees_earlier < MIN_EARLIER_FRACTION:
        return False, (
            f"only {sees_earlier:.0%} of the pixels react to any earlier pixel; "
            "the model ignores the context it is given"
        )
    return True, f"causal: no logit depends on its own or a later pixel; {sees_earlier:.0%} see earlier pixels"


def _causal_or_none(ctx: CheckContext, probe: str) -> bool | None:
    try:
        return _causality(ctx, probe)[0]
    except ArtifactError:
        return None


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


def _check_samples(ctx: CheckContext, probe: str, causal_probe: str, to_prob, title: str) -> CheckResult:
    height, width = _shape(ctx)
    n = int(ctx.budget(probe).get("n", 0)) or None
    samples = ctx.tensor(f"{probe}/samples", shape=(n, 1, height, width), dtype="float32")
    _binary("samples", samples)
    ctx.figure(title, samples)
    causal = _causal_or_none(ctx, causal_probe)
    if not causal:
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
    ctx.probe(probe)
    got = float(ctx.tensor(f"{probe}/loss", shape=(1,), dtype="float64")[0])
    want = float(recomputed)
    if not ctx.probe(probe).values.get("requires_grad", False):
        return CheckResult(0.0, "loss(x)['total_loss'] does not require grad: nothing would be trained")
    if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
        return CheckResult(
            0.0,
            f"loss(x)['total_loss'] = {got:.6g}, but the mean cross-entropy of the model's "
            f"own logits on the same batch is {want:.6g} nats/pixel",
        )
    return CheckResult(1.0, f"loss = {got:.5f} nats/pixel, equal to the cross-entropy of the returned logits")


def _nll_result(value: float, ctx: CheckContext, probe: str) -> CheckResult:
    """The metric value; the score stage maps it against the calibrated reference (`ctx.baseline`)."""
    record = ctx.probe(probe).values
    steps = ctx.budget(probe).get("steps")
    losses = ctx.tensor(f"{probe}/losses", shape=(steps,))
    ctx.curve(f"{probe.removesuffix('_train')}: training loss under the grader's loop (nats/pixel)", losses.tolist())
    return CheckResult(
        value=value,
        message=f"after {steps} training steps of the grader's loop (train loss "
        f"{record.get('first_loss', float('nan')):.3f} -> "
        f"{record.get('last_loss', float('nan')):.3f})",
    )


# ---------------------------------------------------------------- PixelCNN


@check("pixelcnn_mask")
def pixelcnn_mask(ctx: CheckContext) -> CheckResult:
    ctx.probe("pixelcnn_mask")
    failures: list[str] = []
    for mask_type, k in MASK_CASES:
        name = f"{mask_type}{k}"
        mask = ctx.tensor(f"pixelcnn_mask/mask_{name}", shape=(3, 2, k, k), dtype="float32")
        oracle = MaskedConv2d(mask_type, 2, 3, k).mask.numpy()
        if not np.array_equal(mask, oracle):
            bad = np.argwhere(mask != oracle)[0][2:].tolist()
            failures.append(f"mask '{mask_type}' {k}x{k} differs from the reference at kernel position {tuple(bad)}")
            continue
        x, w, b = (torch.from_numpy(ctx.tensor(f"pixelcnn_mask/{t}_{name}")) for t in ("x", "weight", "bias"))
        y = torch.from_numpy(ctx.tensor(f"pixelcnn_mask/y_{name}", shape=(2, 3, 9, 9)))
        want = F.conv2d(x, w * torch.from_numpy(oracle), b, padding=k // 2)
        if not torch.allclose(y, want, rtol=1e-4, atol=1e-4):
            failures.append(f"forward with mask '{mask_type}' {k}x{k} is not conv2d(x, weight * mask)")
    passed = len(MASK_CASES) - len(failures)
    message = "; ".join(failures) if failures else "all 6 masks ('A'/'B', kernels 3, 5, 7) and forwards are right"
    return CheckResult(passed / len(MASK_CASES), message)


@check("pixelcnn_causal")
def pixelcnn_causal(ctx: CheckContext) -> CheckResult:
    ok, message = _causality(ctx, "pixelcnn_causal")
    return CheckResult(float(ok), message)


@check("pixelcnn_loss")
def pixelcnn_loss(ctx: CheckContext) -> CheckResult:
    logits = ctx.tensor("pixelcnn_loss/logits", shape=(None, 2, 1, *_shape(ctx)), dtype="float32")
    x = _test(ctx)[: len(logits)]
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
    message = "; ".join(failures) or "receptive fields (with the blind spot) match for every depth"
    return CheckResult((cases - len(failures)) / cases, message)


@check("pixelcnn_sample")
def pixelcnn_sample(ctx: CheckContext) -> CheckResult:
    ctx.probe("pixelcnn_sample")
    return _check_samples(ctx, "pixelcnn_sample", "pixelcnn_causal", _two_class_prob, "PixelCNN samples")


@check("pixelcnn_autocomplete")
def pixelcnn_autocomplete(ctx: CheckContext) -> CheckResult:
    ctx.probe("pixelcnn_autocomplete")
    n = int(ctx.budget("pixelcnn_autocomplete")["n"])
    height, width = _shape(ctx)
    init = _test(ctx)[:n].clone()
    init[:, :, height // 2 :] = -1.0
    out = ctx.tensor("pixelcnn_autocomplete/completed", shape=(n, 1, height, width), dtype="float32")
    out_t = torch.from_numpy(out)
    known = init >= 0
    if not torch.equal(out_t[known], init[known]):
        changed = int((out_t[known] != init[known]).sum())
        return CheckResult(
            0.0, f"{changed} known pixels (the upper half) were changed; only pixels equal to -1 may be filled"
        )
    _binary("completed pixels", out)
    ctx.figure("PixelCNN completions of the lower half", out)
    if not _causal_or_none(ctx, "pixelcnn_causal"):
        return CheckResult(
            1.0,
            "known pixels kept, unknown pixels filled with 0/1; calibration not checked "
            "because the model is not causal",
        )
    p = _two_class_prob(ctx, "pixelcnn_autocomplete/logits", n)
    ok, message = _calibration(out_t.flatten()[~known.flatten()], p[~known.flatten()])
    return CheckResult(float(ok), "known pixels kept; " + message)


@check("pixelcnn_nll")
def pixelcnn_nll(ctx: CheckContext) -> CheckResult:
    ctx.probe("pixelcnn_train")
    test = _test(ctx)
    logits = ctx.tensor("pixelcnn_train/test_logits", shape=(len(test), 2, 1, *_shape(ctx)), dtype="float32")
    value = float(two_class_nll(logits, test, "per_dim"))
    return _nll_result(value, ctx, "pixelcnn_train")


# ---------------------------------------------------------------- ImageGPT


@check("imagegpt_attention_mask")
def imagegpt_attention_mask(ctx: CheckContext) -> CheckResult:
    ctx.probe("imagegpt_attention_mask")
    height, width = _shape(ctx)
    lengths = (1, 2, 5, 16, height * width)
    failures = []
    for seq_len in lengths:
        got = ctx.tensor(f"imagegpt_attention_mask/mask_{seq_len}", shape=(seq_len, seq_len), finite=False)
        want = get_attention_mask(seq_len).numpy()
        if got.dtype.kind != "f":
            failures.append(f"L={seq_len}: expected a float mask (0 / -inf), got {got.dtype}")
        elif not np.array_equal(got, want):
            i, j = np.argwhere(got != want)[0].tolist()
            failures.append(f"L={seq_len}: entry ({i}, {j}) is {got[i, j]}, expected {want[i, j]}")
    message = "; ".join(failures) or f"causal masks right for L in {lengths}"
    return CheckResult((len(lengths) - len(failures)) / len(lengths), message)


@check("imagegpt_causal")
def imagegpt_causal(ctx: CheckContext) -> CheckResult:
    ok, message = _causality(ctx, "imagegpt_causal")
    return CheckResult(float(ok), message)


@check("imagegpt_sos")
def imagegpt_sos(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("imagegpt_sos")
    height, width = _shape(ctx)
    seq_len = height * width
    failures = []
    firsts = []
    for name in ("a", "b"):
        x = ctx.tensor(f"imagegpt_sos/x_{name}", shape=(3, seq_len, None), dtype="float32")
        shifted = ctx.tensor(f"imagegpt_sos/shifted_{name}", shape=x.shape, dtype="float32")
        pos = ctx.tensor(f"imagegpt_sos/pos_{name}", shape=x.shape, dtype="float32")
        if not np.allclose(shifted[:, 1:], x[:, :-1]):
            failures.append("add_sos_token must shift the sequence right by one (out[:, i] = x_emb[:, i - 1])")
        if not np.allclose(shifted[:, :1], shifted[:1, :1]):
            failures.append("the start token differs between the sequences of a batch")
        firsts.append(shifted[0, 0])
        delta = pos - x
        if not np.allclose(delta, delta[:1], atol=1e-5):
            failures.append("add_pos_embeddings adds something that depends on the input, not only on the position")
        elif record.values.get("trained", False) and np.allclose(delta[0], delta[0, :1], atol=1e-6):
            failures.append("add_pos_embeddings adds the same vector at every position (after training)")
    if not np.allclose(firsts[0], firsts[1]):
        failures.append("the start token depends on the input")
    if not record.values.get("sos_learnable", False):
        failures.append("the start token is not a learned parameter (no gradient reaches the model)")
    failures = list(dict.fromkeys(failures))
    return CheckResult(
        0.0 if failures else 1.0,
        "; ".join(failures) or "SOS shift, learned start token and positional embeddings are right",
    )


@check("imagegpt_shapes")
def imagegpt_shapes(ctx: CheckContext) -> CheckResult:
    record = ctx.probe("imagegpt_shapes")
    height, width = _shape(ctx)
    ctx.tensor("imagegpt_shapes/forward_small", shape=(2, 4, 1))
    sample = ctx.tensor("imagegpt_shapes/sample_small", shape=(1, 1, 2, 2))
    _binary("sample(1)", sample)
    ctx.tensor("imagegpt_shapes/forward", shape=(3, height * width, 1))
    if not record.values.get("loss_requires_grad", False):
        return CheckResult(0.0, "loss(x)['total_loss'] does not require grad")
    return CheckResult(
        1.0,
        "smoke test passed: forward (2, 4) -> (2, 4, 1), loss requires grad, "
        f"sample(1) -> (1, 1, 2, 2); forward (3, {height * width}) -> (3, {height * width}, 1)",
    )


@check("imagegpt_loss")
def imagegpt_loss(ctx: CheckContext) -> CheckResult:
    height, width = _shape(ctx)
    logits = ctx.tensor("imagegpt_loss/logits", shape=(None, height * width, 1), dtype="float32")
    x = _test(ctx)[: len(logits)].flatten(1)
    return _loss_matches(ctx, "imagegpt_loss", bernoulli_nll(logits[..., 0], x, "per_dim"))


@check("imagegpt_sample")
def imagegpt_sample(ctx: CheckContext) -> CheckResult:
    ctx.probe("imagegpt_sample")
    return _check_samples(ctx, "imagegpt_sample", "imagegpt_causal", _bernoulli_prob, "ImageGPT samples")


@check("imagegpt_nll")
def imagegpt_nll(ctx: CheckContext) -> CheckResult:
    ctx.probe("imagegpt_train")
    test = _test(ctx).flatten(1)
    logits = ctx.tensor("imagegpt_train/test_logits", shape=(len(test), test.shape[1], 1), dtype="float32")
    value = float(bernoulli_nll(logits[..., 0], test, "per_dim"))
    return _nll_result(value, ctx, "imagegpt_train")
