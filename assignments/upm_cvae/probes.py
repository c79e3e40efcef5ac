"""UPM conditional VAE probes: call the student's model on the host's images, labels and latents.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes
only produce data; `checks.py` computes every loss term, verdict and metric on the host.

`cvae_model` leaves a seeded builder of `ConditionalVAE(input_shape, **budget)`; `cvae_elbo` calls a
fresh model's `loss(x, y)` on training images; `cvae_train` trains it in the grader's loop, then calls
`loss(x, y)` on the test set in the host's chunks (the metric's calls and the gates' alike);
`cvae_sample` calls `sample(n, y)` of the trained model with the same host latents for every class.

Every call runs under a `harness.LatentTap`: the encoder's (mu, log_std) and the label codes the
encoder and decoder were given are recorded, and the decoder gets the host's latents instead of the
student's own z (recorded too). So the metrics are the -ELBO and the samples of the student's networks
at the host's noise, whatever noise the student's code draws.
"""

from __future__ import annotations

from typing import Any

import torch
from harness import LatentTap, ProbeContext, ProbeError, probe
from torch import Tensor

ENCODER_SHIFT = -1.5  # added to the encoder's outputs in `cvae_elbo` (see `harness.LatentTap`)
LOSS_KEYS = ("elbo_loss", "recon_loss", "kl_loss")


def _loss_terms(out: Any) -> dict[str, Tensor]:
    if not isinstance(out, dict) or not set(LOSS_KEYS) <= out.keys():
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise ProbeError(f"loss(x, y) must return a dict with {', '.join(LOSS_KEYS)}; got {got}")
    for key in LOSS_KEYS:
        if not isinstance(out[key], Tensor) or out[key].numel() != 1:
            raise ProbeError(f"loss(x, y)[{key!r}] must be a scalar tensor, got {type(out[key]).__name__}")
    return out


def _loss_calls(
    ctx: ProbeContext, model: torch.nn.Module, x: Tensor, y: Tensor, eps: Tensor, chunk: int, shift: float = 0.0
) -> None:
    """`model.loss(x, y)` per `chunk` rows under a tap with the host's eps (and `shift`); the loss terms of
    each call, (calls,), and what the networks answered, concatenated over the calls, go into the reply."""
    terms: dict[str, list[Tensor]] = {key: [] for key in LOSS_KEYS}
    answers: dict[str, list[Tensor]] = {}
    requires_grad, reaches = True, {"mu": True, "log_std": True}
    for start in range(0, len(x), chunk):
        rows = slice(start, start + chunk)
        with LatentTap(model, eps=eps[rows], shift=shift) as tap:
            out = _loss_terms(model.loss(x[rows], y[rows]))
        requires_grad &= bool(out["elbo_loss"].requires_grad)
        for key in LOSS_KEYS:
            terms[key].append(out[key].detach().reshape(1).to(torch.float64))
        for key, value in tap.finish(len(x[rows])).items():
            answers.setdefault(key, []).append(value)
        reaches = {k: v and tap.reaches[k] for k, v in reaches.items()}
    ctx.record("requires_grad", requires_grad)
    for name in ("mu", "log_std"):
        ctx.record(f"z_reaches_{name}", reaches[name])
    for key, parts in {**terms, **answers}.items():
        try:
            ctx.save(key, torch.cat(parts))
        except RuntimeError as exc:  # condition codes of different widths in different calls
            raise ProbeError(f"{key}: the calls gave tensors that do not line up ({exc})") from exc


def _images(ctx: ProbeContext, key: str) -> Tensor:
    x = ctx.data[key]
    return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x  # full profile: 8-bit MNIST


@probe("cvae_model", needs=("image_shape",))
def cvae_model(ctx: ProbeContext) -> None:
    shape = tuple(int(v) for v in ctx.data["image_shape"].tolist())
    ctx.builder("ConditionalVAE", shape, model="cvae")


@probe("cvae_elbo", needs=("elbo_images", "elbo_labels", "elbo_beta", "elbo_eps"))
def cvae_elbo(ctx: ProbeContext) -> None:
    """`loss(x, y)` of a fresh model built with beta = elbo_beta, on training images, encoder outputs shifted."""
    model = ctx.built("cvae")(beta=float(ctx.data["elbo_beta"])).eval()
    x, eps = _images(ctx, "elbo_images"), ctx.data["elbo_eps"]
    _loss_calls(ctx, model, x, ctx.data["elbo_labels"], eps, len(x), ENCODER_SHIFT)


@probe("cvae_train", needs=("train_images", "train_labels", "test_images", "test_labels", "test_eps", "eval_chunk"))
def cvae_train(ctx: ProbeContext) -> None:
    """Train under the budget on (x, y), then `loss(x, y)` on the test set with the host's eps."""
    model = ctx.built("cvae")()
    ctx.train(model, _images(ctx, "train_images"), labels=ctx.data["train_labels"], loss_key="elbo_loss")
    ctx.keep_trained("cvae", model.eval())
    test = _images(ctx, "test_images")
    _loss_calls(ctx, model, test, ctx.data["test_labels"], ctx.data["test_eps"], int(ctx.data["eval_chunk"]))


@probe("cvae_sample", needs=("sample_labels", "prior_z"))
def cvae_sample(ctx: ProbeContext) -> None:
    """`sample(n, y)` of the trained model (a fresh one if training failed: `trained` says which), decoding
    the host's prior draws (the same z for every class); and, for the conditioning check,
    `decoder(z, encode_label(y))` called directly on the same z."""
    model = ctx.trained_or_fresh("cvae")
    y, z = ctx.data["sample_labels"], ctx.data["prior_z"]
    with torch.no_grad():
        codes = model.encode_label(y)
        if not isinstance(codes, Tensor) or len(codes) != len(y):
            raise ProbeError("encode_label(y) must return one code per label, a (B, num_classes) tensor")
        ctx.save("codes", codes.reshape(len(y), -1).to(torch.float32))
        ctx.save("direct", model.decoder(z, codes))
    with LatentTap(model, z=z) as tap:
        samples = model.sample(len(y), y)
    if not isinstance(samples, Tensor):
        raise ProbeError(f"sample(n, y) must return a tensor, got {type(samples).__name__}")
    ctx.save("samples", samples.detach().to(torch.float32))
    for name, value in tap.finish(len(y)).items():
        ctx.save(name, value)
