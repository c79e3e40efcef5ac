"""Homework 1 probes: call the student's PixelCNN and ImageGPT code on the grader's inputs.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes
only produce data: every tensor saved here is compared, or turned into a metric, by `checks.py` on the
host. Nothing here knows the right answers. Inputs from the host (`data.safetensors`):
`train_images` and `test_images`, uint8 (N, 1, H, W) in {0, 1}; H = W = 8 (ci) or 28 (full).

Budgets (rubric.yaml, per probe): `*_model` hold the architecture, `*_train` the training budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from harness import ProbeContext, ProbeError, probe

FLIP_CHUNK = 256  # images per forward pass in the dependence probes
MASK_CASES = [(t, k) for k in (3, 5, 7) for t in ("A", "B")]


def _images(ctx: ProbeContext, key: str) -> torch.Tensor:
    return ctx.data[key].to(torch.float32)  # uint8 (N, 1, H, W) -> float32 in {0, 1}


def _shape(ctx: ProbeContext) -> tuple[int, int]:
    return tuple(ctx.data["test_images"].shape[-2:])


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


def _builder(ctx: ProbeContext, cls_name: str, shared_key: str) -> Callable[..., torch.nn.Module]:
    """A seeded factory for the student's model with the budget's architecture."""
    cls = ctx.get(cls_name)
    arch = dict(ctx.budget)
    shape = _shape(ctx)

    def build(cls: Any = cls, **overrides: Any) -> torch.nn.Module:
        torch.manual_seed(ctx.seed)
        model = cls(shape, **{**arch, **overrides})
        if not isinstance(model, torch.nn.Module):
            raise ProbeError(f"{cls_name}(...) did not return an nn.Module")
        return model

    try:
        model = build()
    except Exception as exc:
        ctx.shared[f"{shared_key}_error"] = f"{type(exc).__name__}: {exc}"
        raise
    ctx.record("n_params", sum(p.numel() for p in model.parameters()))
    ctx.shared[shared_key] = build
    ctx.shared[f"{shared_key}_arch"] = arch
    return build


def _needs(ctx: ProbeContext, key: str) -> Any:
    if key not in ctx.shared:
        why = ctx.shared.get(f"{key}_error", "see the first probe's message")
        raise ProbeError(f"the model could not be built ({why})")
    return ctx.shared[key]


def _dependence(forward: Callable[[torch.Tensor], torch.Tensor], base: torch.Tensor) -> torch.Tensor:
    """(L, L) max |change| of the output at position i (column) when input position j (row) flips.

    `base` is one input (1, ...) with L binary positions; `forward` maps N inputs to (N, L) or
    (N, K, L) outputs (K logits per position, e.g. PixelCNN's two classes; the max over K is kept).
    """
    n = base[0].numel()
    flat = base.reshape(1, n)
    flipped = flat.repeat(n, 1)  # (1, L) -> (L, L): row j has position j flipped
    flipped[torch.arange(n), torch.arange(n)] = 1 - flat[0]
    with torch.no_grad():
        ref = forward(base)  # (1, L)
        rows = [forward(flipped[i : i + FLIP_CHUNK].reshape(-1, *base.shape[1:])) for i in range(0, n, FLIP_CHUNK)]
    diff = (torch.cat(rows) - ref).abs()
    return diff.amax(dim=1) if diff.dim() == 3 else diff


def _probe_dependence(ctx: ProbeContext, model: torch.nn.Module, forward: Callable, n_random: int = 2) -> None:
    test = _images(ctx, "test_images")
    g = ctx.generator()
    bases = torch.cat([test[:2], (torch.rand((n_random, *test.shape[1:]), generator=g) > 0.5).float()])
    dep = torch.zeros(())
    scale = 0.0
    for base in bases:
        dep = torch.maximum(dep, _dependence(forward, base[None]))
        with torch.no_grad():
            scale = max(scale, float(forward(base[None]).abs().max()))
    ctx.save("dependence", dep.to(torch.float32))
    ctx.record("logit_scale", scale)


# ---------------------------------------------------------------- PixelCNN


def _pixelcnn_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = _as_tensor(model(x), "PixelCNN forward")
    want = (x.shape[0], 2, 1, *x.shape[-2:])
    if tuple(out.shape) != want:
        raise ProbeError(f"PixelCNN forward: expected logits {want}, got {tuple(out.shape)}")
    return out


@probe("pixelcnn_model")
def pixelcnn_model(ctx: ProbeContext) -> None:
    _builder(ctx, "PixelCNN", "pixelcnn_build")


@probe("pixelcnn_mask")
def pixelcnn_mask(ctx: ProbeContext) -> None:
    MaskedConv2d = ctx.get("MaskedConv2d")
    g = ctx.generator()
    for mask_type, k in MASK_CASES:
        conv = MaskedConv2d(mask_type, 2, 3, k, padding=k // 2)
        name = f"{mask_type}{k}"
        mask = getattr(conv, "mask", None)
        if mask is None:
            raise ProbeError("MaskedConv2d has no attribute `mask` (register it with register_buffer)")
        weight = conv.weight.detach().clone()
        bias = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(3)
        x = torch.randn(2, 2, 9, 9, generator=g)
        with torch.no_grad():
            y = conv(x)
        ctx.save(f"mask_{name}", _as_tensor(mask, "mask").to(torch.float32).expand_as(weight))
        ctx.save(f"weight_{name}", weight)
        ctx.save(f"bias_{name}", bias)
        ctx.save(f"x_{name}", x)
        ctx.save(f"y_{name}", _as_tensor(y, "MaskedConv2d output"))


@probe("pixelcnn_loss")
def pixelcnn_loss(ctx: ProbeContext) -> None:
    model = _needs(ctx, "pixelcnn_build")().eval()
    x = _images(ctx, "test_images")[:64]
    loss = _loss_value(model.loss(x))
    ctx.record("requires_grad", bool(loss.requires_grad))
    ctx.save("loss", loss.detach().reshape(1).to(torch.float64))
    with torch.no_grad():
        ctx.save("logits", _pixelcnn_logits(model, x))


def _centre_gradient_map(model: torch.nn.Module, shape: tuple[int, int]) -> torch.Tensor:
    """The grader's own receptive field of the centre pixel, to compare the student's function with."""
    x = torch.zeros(1, 1, *shape, requires_grad=True)
    model(x)[0, :, 0, shape[0] // 2, shape[1] // 2].sum().backward()
    return x.grad[0, 0].abs() > 1e-8


@probe("pixelcnn_receptive_field")
def pixelcnn_receptive_field(ctx: ProbeContext) -> None:
    get_receptive_field = ctx.get("get_receptive_field")
    build = _needs(ctx, "pixelcnn_build")
    shape = _shape(ctx)
    for n_layers in range(1, int(ctx.budget["max_layers"]) + 1):
        model = build(kernel_size=int(ctx.budget["kernel_size"]), n_layers=n_layers)
        field = _as_tensor(get_receptive_field(model, shape), "get_receptive_field")
        ctx.save(f"student_{n_layers}", field.to(torch.float32))
        model.zero_grad(set_to_none=True)
        ctx.save(f"grader_{n_layers}", _centre_gradient_map(model, shape))


@probe("pixelcnn_train")
def pixelcnn_train(ctx: ProbeContext) -> None:
    model = _needs(ctx, "pixelcnn_build")()
    ctx.train(model, _images(ctx, "train_images"))  # ends in eval mode
    test = _images(ctx, "test_images")
    with torch.no_grad():
        logits = torch.cat([_pixelcnn_logits(model, test[i : i + 256]) for i in range(0, len(test), 256)])
    ctx.save("test_logits", logits)
    ctx.shared["pixelcnn_trained"] = model


def _pixelcnn_for_properties(ctx: ProbeContext) -> torch.nn.Module:
    """The trained model when training worked, else a fresh one (properties hold for any weights)."""
    model = ctx.shared.get("pixelcnn_trained")
    ctx.record("trained", model is not None)
    return (model if model is not None else _needs(ctx, "pixelcnn_build")()).eval()


@probe("pixelcnn_causal")
def pixelcnn_causal(ctx: ProbeContext) -> None:
    model = _pixelcnn_for_properties(ctx)
    # (N, 1, H, W) -> logits (N, 2, 1, H, W) -> (N, 2, HW)
    _probe_dependence(ctx, model, lambda x: _pixelcnn_logits(model, x).flatten(2))


@probe("pixelcnn_sample")
def pixelcnn_sample(ctx: ProbeContext) -> None:
    model = _pixelcnn_for_properties(ctx)
    samples = _as_tensor(model.sample(int(ctx.budget["n"])), "sample(n)").to(torch.float32)
    ctx.save("samples", samples)
    if samples.shape[1:] == (1, *_shape(ctx)):
        with torch.no_grad():
            ctx.save("logits", _pixelcnn_logits(model, samples.clamp(0, 1)))


@probe("pixelcnn_autocomplete")
def pixelcnn_autocomplete(ctx: ProbeContext) -> None:
    trained = ctx.shared.get("pixelcnn_trained")
    model = _needs(ctx, "pixelcnn_build")(ctx.get("PixelCNNAutoComplete"))
    if trained is not None:
        model.load_state_dict(trained.state_dict())
    ctx.record("trained", trained is not None)
    model.eval()
    n = int(ctx.budget["n"])
    init = _images(ctx, "test_images")[:n].clone()
    height = init.shape[-2]
    init[:, :, height // 2 :] = -1.0  # the lower half is unknown
    out = _as_tensor(model.sample(n, init.clone()), "sample(n, init)").to(torch.float32)
    ctx.save("init", init)
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


@probe("imagegpt_model")
def imagegpt_model(ctx: ProbeContext) -> None:
    _builder(ctx, "ImageGPT", "imagegpt_build")


@probe("imagegpt_attention_mask")
def imagegpt_attention_mask(ctx: ProbeContext) -> None:
    get_attention_mask = ctx.get("get_attention_mask")
    height, width = _shape(ctx)
    for seq_len in (1, 2, 5, 16, height * width):
        ctx.save(f"mask_{seq_len}", _as_tensor(get_attention_mask(seq_len), "get_attention_mask"))


@probe("imagegpt_shapes")
def imagegpt_shapes(ctx: ProbeContext) -> None:
    ImageGPT = ctx.get("ImageGPT")
    g = ctx.generator()
    torch.manual_seed(ctx.seed)
    small = ImageGPT((2, 2), 12, 4, 2)  # the course's smoke test (COURSE.md §2.3)
    ctx.save("forward_small", _as_tensor(small(torch.randint(0, 2, (2, 4), generator=g)), "forward"))
    loss = _loss_value(small.loss(torch.randint(0, 2, (2, 1, 2, 2), generator=g).float()))
    ctx.record("loss_requires_grad", bool(loss.requires_grad))
    ctx.save("sample_small", _as_tensor(small.sample(1), "sample(1)").to(torch.float32))
    model = _needs(ctx, "imagegpt_build")()
    tokens = _images(ctx, "test_images")[:3].flatten(1)  # (3, 1, H, W) -> (3, L)
    ctx.save("forward", _as_tensor(model(tokens.long()), "forward"))


@probe("imagegpt_loss")
def imagegpt_loss(ctx: ProbeContext) -> None:
    model = _needs(ctx, "imagegpt_build")().eval()
    x = _images(ctx, "test_images")[:64]
    loss = _loss_value(model.loss(x))
    ctx.record("requires_grad", bool(loss.requires_grad))
    ctx.save("loss", loss.detach().reshape(1).to(torch.float64))
    with torch.no_grad():
        ctx.save("logits", _gpt_logits(model, x.flatten(1)))


@probe("imagegpt_train")
def imagegpt_train(ctx: ProbeContext) -> None:
    model = _needs(ctx, "imagegpt_build")()
    ctx.train(model, _images(ctx, "train_images"))  # ends in eval mode
    tokens = _images(ctx, "test_images").flatten(1)  # (N, 1, H, W) -> (N, L)
    with torch.no_grad():
        logits = torch.cat([_gpt_logits(model, tokens[i : i + 256]) for i in range(0, len(tokens), 256)])
    ctx.save("test_logits", logits)
    ctx.shared["imagegpt_trained"] = model


def _imagegpt_for_properties(ctx: ProbeContext) -> torch.nn.Module:
    model = ctx.shared.get("imagegpt_trained")
    ctx.record("trained", model is not None)
    return (model if model is not None else _needs(ctx, "imagegpt_build")()).eval()


@probe("imagegpt_sos")
def imagegpt_sos(ctx: ProbeContext) -> None:
    model = _imagegpt_for_properties(ctx)  # trained: zero-initialised embeddings have moved by now
    height, width = _shape(ctx)
    embed_dim = int(ctx.shared["imagegpt_build_arch"]["embed_dim"])
    g = ctx.generator()
    for name in ("a", "b"):
        x_emb = torch.randn(3, height * width, embed_dim, generator=g)
        shifted = _as_tensor(model.add_sos_token(x_emb.clone()), "add_sos_token")
        ctx.save(f"x_{name}", x_emb)
        ctx.save(f"shifted_{name}", shifted)
        ctx.save(f"pos_{name}", _as_tensor(model.add_pos_embeddings(x_emb.clone()), "add_pos_embeddings"))
    # the start token must be learned: its output row has to reach a parameter
    model.zero_grad(set_to_none=True)
    out = model.add_sos_token(torch.randn(2, height * width, embed_dim, generator=g))
    out[:, 0].sum().backward()
    ctx.record("sos_learnable", any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters()))


@probe("imagegpt_causal")
def imagegpt_causal(ctx: ProbeContext) -> None:
    model = _imagegpt_for_properties(ctx)
    # (N, 1, H, W) images -> (N, L) logits
    _probe_dependence(ctx, model, lambda x: _gpt_logits(model, x.flatten(1))[..., 0])


@probe("imagegpt_sample")
def imagegpt_sample(ctx: ProbeContext) -> None:
    model = _imagegpt_for_properties(ctx)
    samples = _as_tensor(model.sample(int(ctx.budget["n"])), "sample(n)").to(torch.float32)
    ctx.save("samples", samples)
    if samples.shape[1:] == (1, *_shape(ctx)):
        with torch.no_grad():
            ctx.save("logits", _gpt_logits(model, samples.clamp(0, 1).flatten(1)))
