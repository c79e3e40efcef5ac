"""Homework 1 probes: call the student's PixelCNN and ImageGPT code on the grader's inputs.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes
only answer queries: every tensor saved here is compared, or turned into a metric, by `checks.py` on
the host, together with the inputs it sent. Nothing here knows the right answers, and nothing here
decides a score. Images arrive as uint8 (N, 1, H, W) in {0, 1}; H = W = 8 (ci) or 28 (full). The test
images of the NLL metrics reach the kernel only through the stepped `eval` probe, the last one: step k
reveals their pixels before raster position k and nothing else of them.

Budgets (rubric.yaml, per probe): `*_model` hold the architecture, `*_train` the training budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from harness import ProbeContext, ProbeError, probe
from torch.nn.utils import parametrize

EVAL_CHUNK = 128  # rows per forward pass in `eval` (ImageGPT's attention is (rows, heads, L, L))
MAX_ERROR = 500  # characters of a model's error kept in the `eval` reply


def _images(ctx: ProbeContext, key: str) -> torch.Tensor:
    return ctx.data[key].to(torch.float32)  # uint8 (N, 1, H, W) -> float32 in {0, 1}


def _shape(ctx: ProbeContext) -> tuple[int, int]:
    height, width = ctx.data["image_shape"].tolist()
    return height, width


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except Exception as exc:
            raise ProbeError(f"{what}: expected a tensor, got {type(value).__name__}") from exc
    return value.detach().cpu()


def _loss_value(out: Any) -> torch.Tensor:
    if not isinstance(out, dict) or "total_loss" not in out:
        raise ProbeError(f"loss(x) must return a dict with key 'total_loss', got {type(out).__name__}")
    loss = out["total_loss"]
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ProbeError("loss(x)['total_loss'] must be a scalar tensor")
    return loss


def _train(ctx: ProbeContext, prefix: str) -> None:
    model = ctx.built(prefix)()
    ctx.train(model, _images(ctx, "train_images"))  # ends in eval mode
    ctx.keep_trained(prefix, model)


# ---------------------------------------------------------------- PixelCNN


def _pixelcnn_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = _as_tensor(model(x), "PixelCNN forward")
    want = (x.shape[0], 2, 1, *x.shape[-2:])
    if tuple(out.shape) != want:
        raise ProbeError(f"PixelCNN forward: expected logits {want}, got {tuple(out.shape)}")
    return out


@probe("pixelcnn_model", needs=("image_shape",))
def pixelcnn_model(ctx: ProbeContext) -> None:
    ctx.builder("PixelCNN", _shape(ctx), model="pixelcnn")


@probe("pixelcnn_mask", needs=("mask_cases", "mask_x", "mask_weight", "mask_bias"))
def pixelcnn_mask(ctx: ProbeContext) -> None:
    """The host's weights loaded into the student's MaskedConv2d; its output on the host's x."""
    MaskedConv2d = ctx.get("MaskedConv2d")
    d = ctx.data
    for i, (mask_type, k) in enumerate(d["mask_cases"].tolist()):
        conv = MaskedConv2d(chr(mask_type), 2, 3, k, padding=k // 2)
        with torch.no_grad():  # a mask applied by torch.nn.utils.parametrize masks the original weight
            weight = (
                conv.parametrizations.weight.original if parametrize.is_parametrized(conv, "weight") else conv.weight
            )
            weight.copy_(d["mask_weight"][i, :, :, :k, :k])  # (3, 2, K, K) -> (3, 2, k, k)
            if conv.bias is not None:
                conv.bias.copy_(d["mask_bias"][i])
            y = conv(d["mask_x"][i])
        ctx.record(f"bias_{i}", conv.bias is not None)
        ctx.save(f"y_{i}", _as_tensor(y, "MaskedConv2d output"))
        mask = getattr(conv, "mask", None)
        if isinstance(mask, torch.Tensor):  # only for the message: the verdict comes from y
            ctx.save(f"mask_{i}", mask.detach().to(torch.float32))


@probe("pixelcnn_loss", needs=("loss_images",))
def pixelcnn_loss(ctx: ProbeContext) -> None:
    model = ctx.built("pixelcnn")().eval()
    x = _images(ctx, "loss_images")
    loss = _loss_value(model.loss(x))
    ctx.save("loss", loss.detach().reshape(1).to(torch.float64))
    with torch.no_grad():
        ctx.save("logits", _pixelcnn_logits(model, x))


def _centre_gradient_map(model: torch.nn.Module, shape: tuple[int, int]) -> torch.Tensor:
    """The gradient's receptive field of the centre pixel, to compare the student's function with."""
    x = torch.zeros(1, 1, *shape, requires_grad=True)
    model(x)[0, :, 0, shape[0] // 2, shape[1] // 2].sum().backward()
    return x.grad[0, 0].abs() > 1e-8


@probe("pixelcnn_receptive_field", needs=("image_shape",))
def pixelcnn_receptive_field(ctx: ProbeContext) -> None:
    get_receptive_field = ctx.get("get_receptive_field")
    build = ctx.built("pixelcnn")
    shape = _shape(ctx)
    for n_layers in range(1, int(ctx.budget["max_layers"]) + 1):
        model = build(kernel_size=int(ctx.budget["kernel_size"]), n_layers=n_layers)
        field = _as_tensor(get_receptive_field(model, shape), "get_receptive_field")
        ctx.save(f"student_{n_layers}", field.to(torch.float32))
        model.zero_grad(set_to_none=True)
        ctx.save(f"grader_{n_layers}", _centre_gradient_map(model, shape))


@probe("pixelcnn_train", needs=("train_images",))
def pixelcnn_train(ctx: ProbeContext) -> None:
    _train(ctx, "pixelcnn")


@probe("pixelcnn_sample", needs=("image_shape",))
def pixelcnn_sample(ctx: ProbeContext) -> None:
    model = ctx.trained_or_fresh("pixelcnn")
    samples = _as_tensor(model.sample(int(ctx.budget["n"])), "sample(n)").to(torch.float32)
    ctx.save("samples", samples)
    if samples.shape[1:] == (1, *_shape(ctx)):
        with torch.no_grad():
            ctx.save("logits", _pixelcnn_logits(model, samples.clamp(0, 1)))


@probe("pixelcnn_autocomplete", needs=("autocomplete_init",))
def pixelcnn_autocomplete(ctx: ProbeContext) -> None:
    trained = ctx.trained("pixelcnn")
    model = ctx.built("pixelcnn")(ctx.get("PixelCNNAutoComplete"))
    if trained is not None:
        model.load_state_dict(trained.state_dict())
    ctx.record("trained", trained is not None)
    model.eval()
    init = ctx.data["autocomplete_init"]  # float32 (n, 1, H, W): -1 where a pixel is unknown
    out = _as_tensor(model.sample(len(init), init.clone()), "sample(n, init)").to(torch.float32)
    ctx.save("completed", out)
    if out.shape == init.shape:
        with torch.no_grad():
            ctx.save("logits", _pixelcnn_logits(model, out.clamp(0, 1)))


# ---------------------------------------------------------------- ImageGPT


def _gpt_logits(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    out = _as_tensor(model(tokens.long()), "ImageGPT forward")
    want = (*tokens.shape, 1)
    if tuple(out.shape) != want:
        raise ProbeError(
            f"ImageGPT forward: expected logits {want} for tokens {tuple(tokens.shape)}, got {tuple(out.shape)}"
        )
    return out


@probe("imagegpt_model", needs=("image_shape",))
def imagegpt_model(ctx: ProbeContext) -> None:
    ctx.builder("ImageGPT", _shape(ctx), model="imagegpt")


@probe("imagegpt_attention_mask", needs=("attention_lengths",))
def imagegpt_attention_mask(ctx: ProbeContext) -> None:
    get_attention_mask = ctx.get("get_attention_mask")
    for seq_len in ctx.data["attention_lengths"].tolist():
        ctx.save(f"mask_{seq_len}", _as_tensor(get_attention_mask(seq_len), "get_attention_mask"))


@probe("imagegpt_shapes", needs=("shapes_small_tokens", "shapes_small_images", "shapes_tokens"))
def imagegpt_shapes(ctx: ProbeContext) -> None:
    ImageGPT = ctx.get("ImageGPT")
    torch.manual_seed(ctx.seed)
    small = ImageGPT((2, 2), 12, 4, 2)  # the course's smoke test (COURSE.md §2.3)
    ctx.save("forward_small", _as_tensor(small(ctx.data["shapes_small_tokens"]), "forward"))
    _loss_value(small.loss(_images(ctx, "shapes_small_images")))
    ctx.save("sample_small", _as_tensor(small.sample(1), "sample(1)").to(torch.float32))
    model = ctx.built("imagegpt")()
    ctx.save("forward", _as_tensor(model(ctx.data["shapes_tokens"]), "forward"))


@probe("imagegpt_loss", needs=("loss_images",))
def imagegpt_loss(ctx: ProbeContext) -> None:
    model = ctx.built("imagegpt")().eval()
    x = _images(ctx, "loss_images")
    loss = _loss_value(model.loss(x))
    ctx.save("loss", loss.detach().reshape(1).to(torch.float64))
    with torch.no_grad():
        ctx.save("logits", _gpt_logits(model, x.flatten(1)))  # (N, 1, H, W) -> (N, L) -> (N, L, 1)


@probe("imagegpt_train", needs=("train_images",))
def imagegpt_train(ctx: ProbeContext) -> None:
    _train(ctx, "imagegpt")


@probe("imagegpt_sos", needs=("sos_x",))
def imagegpt_sos(ctx: ProbeContext) -> None:
    model = ctx.trained_or_fresh("imagegpt")  # trained: zero-initialised embeddings have moved by now
    for i, x_emb in enumerate(ctx.data["sos_x"]):  # (2, 3, L, E) -> two batches (3, L, E)
        ctx.save(f"shifted_{i}", _as_tensor(model.add_sos_token(x_emb.clone()), "add_sos_token"))
        ctx.save(f"pos_{i}", _as_tensor(model.add_pos_embeddings(x_emb.clone()), "add_pos_embeddings"))


@probe("imagegpt_sample", needs=("image_shape",))
def imagegpt_sample(ctx: ProbeContext) -> None:
    model = ctx.trained_or_fresh("imagegpt")
    samples = _as_tensor(model.sample(int(ctx.budget["n"])), "sample(n)").to(torch.float32)
    ctx.save("samples", samples)
    if samples.shape[1:] == (1, *_shape(ctx)):
        with torch.no_grad():
            ctx.save("logits", _gpt_logits(model, samples.clamp(0, 1).flatten(1)))


# ---------------------------------------------------------------- both models, stepped


EVAL_FORWARDS: dict[str, Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]] = {
    "pixelcnn": _pixelcnn_logits,  # (B, 1, H, W) -> (B, 2, 1, H, W)
    "imagegpt": lambda model, x: _gpt_logits(model, x.flatten(1)),  # (B, 1, H, W) -> (B, L) -> (B, L, 1)
}


@probe("eval", steps="eval_batches")
def evaluate(ctx: ProbeContext) -> None:
    """Both models' logits on step k's batch (whatever its rows are: the host knows, the kernel does not).

    One probe for both models, so that neither model's queries reveal test pixels before the other's are
    answered. A model that fails records `<model>_error` and is skipped from then on; the other goes on.
    """
    x = _images(ctx, "eval_batches")  # (B, 1, H, W)
    for prefix, forward in EVAL_FORWARDS.items():
        if (error := ctx.shared.get(f"{prefix}_eval_error")) is not None:
            ctx.record(f"{prefix}_error", error)
            continue
        try:
            if f"{prefix}_eval_model" not in ctx.shared:  # a fresh model is built once, not per step
                ctx.shared[f"{prefix}_eval_model"] = ctx.trained_or_fresh(prefix, record_as=f"{prefix}_trained")
            model = ctx.shared[f"{prefix}_eval_model"]
            with torch.no_grad():
                logits = torch.cat([forward(model, x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])
            ctx.save(prefix, logits)
        except Exception as exc:  # one model's failure must not cost the other its metric
            error = (str(exc) if isinstance(exc, ProbeError) else f"{type(exc).__name__}: {exc}")[:MAX_ERROR]
            ctx.shared[f"{prefix}_eval_error"] = error
            ctx.record(f"{prefix}_error", error)
