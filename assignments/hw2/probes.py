"""Homework 2 probes: call the student's VAE helpers, blocks and models on the grader's inputs.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes
only produce data (helper values, the model's own outputs mu_z / log_std_z / x_recon and loss terms,
latent draws, gradient norms, samples); `checks.py` recomputes every ELBO term and metric on the host.
Inputs from the host (`data.safetensors`): `train_images`, `test_images` float32 (N, C, H, W) in
[0, 1]; `kl_*` / `nll_*` random oracle arguments for the helpers.

Both models go through the same probes (`<prefix>_model`, `_elbo`, `_train`, `_reparam`, `_sample`
with prefix `vae` for ConvVAE and `resnet` for ConvResNetVAE). Budgets (rubric.yaml, per probe):
`<prefix>_model` holds the constructor's keyword arguments, `<prefix>_train` the training budget,
`<prefix>_sample` the number of samples.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from harness import ProbeContext, ProbeError, probe, train

ELBO_BATCH = 16  # test images in the loss-consistency batch (built with beta = inputs["elbo_beta"])
REPARAM_BATCH = 8  # test images whose latent draws are recorded
REPARAM_DRAWS = 64  # forward passes per image
EVAL_CHUNK = 256
ENCODER_SHIFT = -1.5  # added to the encoder's outputs in the ELBO and reparameterisation probes (_narrow)


def _tensor(value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except Exception as exc:
            raise ProbeError(f"{what}: expected a tensor, got {type(value).__name__}") from exc
    return value.detach().cpu()


def _scalar(out: dict, key: str) -> torch.Tensor:
    value = out.get(key)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ProbeError(f"loss(x)[{key!r}] must be a scalar tensor, got {type(value).__name__}")
    return value.detach().reshape(1).to(torch.float64)


def _loss_dict(out: Any) -> dict:
    if not isinstance(out, dict):
        raise ProbeError(f"loss(x) must return a dict, got {type(out).__name__}")
    missing = [k for k in ("recon_loss", "kl_loss") if k not in out]
    if missing or not ({"total_loss", "elbo_loss"} & out.keys()):
        raise ProbeError(
            f"loss(x) must return 'total_loss' (or 'elbo_loss'), 'recon_loss' and 'kl_loss'; got keys {sorted(out)}"
        )
    return out


def _loss_key(out: dict) -> str:
    return "total_loss" if "total_loss" in out else "elbo_loss"


def _forward(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out = model(x)
    if not isinstance(out, tuple | list) or len(out) != 3:
        raise ProbeError("forward(x) must return a tuple (mu_z, log_std_z, x_recon)")
    mu, log_std, x_recon = out
    if not all(isinstance(t, torch.Tensor) for t in out):
        raise ProbeError("forward(x) must return three tensors (mu_z, log_std_z, x_recon)")
    if mu.dim() != 2 or log_std.shape != mu.shape:
        raise ProbeError(
            f"forward(x): mu_z and log_std_z must both be (B, n_latent), got {tuple(mu.shape)} "
            f"and {tuple(log_std.shape)}"
        )
    if x_recon.shape != x.shape:
        raise ProbeError(f"forward(x): x_recon must have the shape of x {tuple(x.shape)}, got {tuple(x_recon.shape)}")
    return mu, log_std, x_recon


def _images(ctx: ProbeContext, key: str) -> torch.Tensor:
    x = ctx.data[key]
    return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x  # full profile: 8-bit CIFAR-10


def _test(ctx: ProbeContext) -> torch.Tensor:
    return _images(ctx, "test_images")


def _needs(ctx: ProbeContext, key: str) -> Any:
    if key not in ctx.shared:
        raise ProbeError(f"the model could not be built ({key.split('_')[0]}_model failed)")
    return ctx.shared[key]


def _narrow(module: torch.nn.Module, args: tuple, output: Any) -> Any:
    """Forward hook on the encoder: shift every output by ENCODER_SHIFT.

    log_std then lies far from 0, where reading it as a log-variance changes the spread of z by
    exp(-ENCODER_SHIFT / 2) and where the KL term is large enough to compare; a correct model's
    sampler and loss are as right at the shifted outputs as anywhere else.
    """
    if isinstance(output, torch.Tensor):
        return output + ENCODER_SHIFT
    if isinstance(output, tuple | list) and all(isinstance(t, torch.Tensor) for t in output):
        return type(output)(t + ENCODER_SHIFT for t in output)
    return output


def _encoder(model: torch.nn.Module) -> torch.nn.Module:
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, torch.nn.Module):
        raise ProbeError("the model needs an attribute `encoder` (an nn.Module), as in the template")
    return encoder


# ---------------------------------------------------------------- helpers and blocks


@probe("helpers")
def helpers(ctx: ProbeContext) -> None:
    get_normal_KL, get_normal_nll = ctx.get("get_normal_KL"), ctx.get("get_normal_nll")
    d = ctx.data
    ctx.save("kl_default", _tensor(get_normal_KL(d["kl_m1"], d["kl_s1"]), "get_normal_KL"))
    ctx.save("kl_full", _tensor(get_normal_KL(d["kl_m1"], d["kl_s1"], d["kl_m2"], d["kl_s2"]), "get_normal_KL"))
    ctx.save("kl_mean2", _tensor(get_normal_KL(d["kl_m1"], d["kl_s1"], d["kl_m2"]), "get_normal_KL"))
    ctx.save("nll", _tensor(get_normal_nll(d["nll_x"], d["nll_m"], d["nll_s"]), "get_normal_nll"))
    # the course's own test values (COURSE.md §2.3)
    t = torch.tensor
    ctx.save("kl_course_a", _tensor(get_normal_KL(t([2.0]), t([3.0])), "get_normal_KL"))
    ctx.save("kl_course_b", _tensor(get_normal_KL(t([2.0]), t([3.0]), t([4.0]), t([5.0])), "get_normal_KL"))
    ctx.save("kl_course_c", _tensor(get_normal_KL(t([10.0, 10.0]), t([2.0, 4.0]), t([3.0, 5.0])), "get_normal_KL"))
    ctx.save("nll_course_a", _tensor(get_normal_nll(t([2.0]), t([2.0]), t([3.0])), "get_normal_nll"))
    ctx.save("nll_course_b", _tensor(get_normal_nll(t([10.0, 10.0]), t([2.0, 4.0]), t([3.0, 5.0])), "get_normal_nll"))


def _block_cases(ctx: ProbeContext, cls: Any, name: str) -> None:
    """Output shapes of `cls(c_in, c_out, k, s)` for the host's cases; ReLU or not at the end."""
    g = ctx.generator()
    batch, height, width = ctx.data["block_input"].tolist()
    for i, (c_in, c_out, k, s) in enumerate(ctx.data[f"{name}_cases"].tolist()):
        x = torch.randn(batch, c_in, height, width, generator=g)
        try:
            with torch.no_grad():
                y = _tensor(cls(c_in, c_out, k, s)(x), f"{name} output")
        except Exception as exc:  # one bad case must not hide the others
            ctx.record(f"{name}_{i}_error", f"{type(exc).__name__}: {exc}"[:300])
            continue
        ctx.save(f"{name}_{i}_shape", torch.tensor(y.shape, dtype=torch.int64))
    x = torch.randn(batch, 4, height, width, generator=g)
    for final_relu in (True, False):
        try:
            with torch.no_grad():
                y = _tensor(cls(4, 4, 3, 1, final_relu=final_relu)(x), f"{name} output")
            ctx.record(f"{name}_min_relu_{final_relu}", float(y.min()))
        except Exception as exc:
            ctx.record(f"{name}_relu_{final_relu}_error", f"{type(exc).__name__}: {exc}"[:300])


@probe("resnet_blocks")
def resnet_blocks(ctx: ProbeContext) -> None:
    _block_cases(ctx, ctx.get("ResNetBlock"), "block")
    _block_cases(ctx, ctx.get("ResNetTransposeBlock"), "transpose")


# ---------------------------------------------------------------- the two models


def _model(ctx: ProbeContext, cls_name: str, prefix: str) -> None:
    cls = ctx.get(cls_name)
    arch = dict(ctx.budget)
    shape = tuple(_test(ctx).shape[1:])

    def build(**overrides: Any) -> torch.nn.Module:
        torch.manual_seed(ctx.seed)
        model = cls(shape, **{**arch, **overrides})
        if not isinstance(model, torch.nn.Module):
            raise ProbeError(f"{cls_name}(...) did not return an nn.Module")
        return model

    model = build()
    ctx.record("n_params", sum(p.numel() for p in model.parameters()))
    if prefix == "resnet":
        blocks = {name: ctx.ns.get(name) for name in ("ResNetBlock", "ResNetTransposeBlock")}
        for name, block in blocks.items():
            used = isinstance(block, type) and any(isinstance(m, block) for m in model.modules())
            ctx.record(f"uses_{name}", used)
    ctx.shared[f"{prefix}_build"] = build


def _elbo(ctx: ProbeContext, prefix: str) -> None:
    """The model's outputs and loss terms on one batch: same noise for both calls, encoder outputs shifted."""
    model = _needs(ctx, f"{prefix}_build")(beta=float(ctx.data["elbo_beta"]))
    x = _test(ctx)[:ELBO_BATCH]
    handle = _encoder(model).register_forward_hook(_narrow)
    try:
        torch.manual_seed(ctx.seed)
        with torch.no_grad():
            mu, log_std, x_recon = _forward(model, x)
        torch.manual_seed(ctx.seed)
        out = _loss_dict(model.loss(x))
    finally:
        handle.remove()
    key = _loss_key(out)
    ctx.record("loss_key", key)
    ctx.record("requires_grad", bool(out[key].requires_grad))
    for name in ("total_loss", "elbo_loss", "recon_loss", "kl_loss"):
        if name in out:
            ctx.save(name, _scalar(out, name))
    ctx.save("mu_z", mu)
    ctx.save("log_std_z", log_std)
    ctx.save("x_recon", x_recon)


def _train(ctx: ProbeContext, prefix: str) -> None:
    model = _needs(ctx, f"{prefix}_build")()
    x = _images(ctx, "train_images")
    torch.manual_seed(ctx.seed)
    key = _loss_key(_loss_dict(model.loss(x[:2])))
    losses = train(
        model,
        x,
        steps=int(ctx.budget["steps"]),
        batch_size=int(ctx.budget["batch_size"]),
        lr=float(ctx.budget["lr"]),
        seed=ctx.seed,
        loss_key=key,
    )
    ctx.record("first_loss", losses[0])
    ctx.record("last_loss", sum(losses[-10:]) / len(losses[-10:]))
    model.eval()
    test = _test(ctx)
    torch.manual_seed(ctx.seed)
    with torch.no_grad():
        outs = [_forward(model, test[i : i + EVAL_CHUNK]) for i in range(0, len(test), EVAL_CHUNK)]
    for j, name in enumerate(("mu_z", "log_std_z", "x_recon")):
        ctx.save(name, torch.cat([o[j] for o in outs]))
    ctx.shared[f"{prefix}_trained"] = model


def _trained_or_fresh(ctx: ProbeContext, prefix: str) -> torch.nn.Module:
    """The trained model when training worked (its posteriors are narrow, which exposes a wrong
    standard deviation in the sampler), else a freshly built one."""
    model = ctx.shared.get(f"{prefix}_trained")
    ctx.record("trained", model is not None)
    return model if model is not None else _needs(ctx, f"{prefix}_build")()


def _reparam(ctx: ProbeContext, prefix: str) -> None:
    """Gradient of the reconstruction term alone w.r.t. the encoder, and latent draws seen by the decoder."""
    model = _trained_or_fresh(ctx, prefix)
    for part in ("encoder", "decoder"):
        if not isinstance(getattr(model, part, None), torch.nn.Module):
            raise ProbeError(f"the model needs an attribute `{part}` (an nn.Module), as in the template")
    x = _test(ctx)[:REPARAM_BATCH]
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(ctx.seed)
    recon = _loss_dict(model.loss(x))["recon_loss"]
    if isinstance(recon, torch.Tensor) and recon.requires_grad:
        recon.backward()
    norms = {
        part: sum(float(p.grad.abs().sum()) for p in getattr(model, part).parameters() if p.grad is not None)
        for part in ("encoder", "decoder")
    }
    ctx.record("encoder_grad", norms["encoder"])
    ctx.record("decoder_grad", norms["decoder"])
    model.zero_grad(set_to_none=True)

    seen: list[torch.Tensor] = []

    def capture(module: torch.nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            seen.append(args[0].detach().reshape(args[0].shape[0], -1).clone())

    handles = [model.decoder.register_forward_pre_hook(capture), model.encoder.register_forward_hook(_narrow)]
    mus, log_stds = [], []
    try:
        with torch.no_grad():
            for draw in range(REPARAM_DRAWS):
                torch.manual_seed(ctx.seed + 1 + draw)
                mu, log_std, _ = _forward(model, x)
                mus.append(mu)
                log_stds.append(log_std)
    finally:
        for handle in handles:
            handle.remove()
        model.eval()
    if len(seen) != REPARAM_DRAWS:
        raise ProbeError(
            f"model.decoder was called {len(seen)} times in {REPARAM_DRAWS} forward passes; "
            "forward(x) must decode one z per image"
        )
    # (draws, B, n_latent) each; mu and log_std per draw, so that dropout in an encoder does no harm
    ctx.save("mu_z", torch.stack(mus))
    ctx.save("log_std_z", torch.stack(log_stds))
    ctx.save("z", torch.stack(seen))


def _sample(ctx: ProbeContext, prefix: str) -> None:
    model = _trained_or_fresh(ctx, prefix).eval()
    torch.manual_seed(ctx.seed)
    samples = _tensor(model.sample(int(ctx.budget["n"])), "sample(n)")
    ctx.save("samples", samples.to(torch.float32))


for _prefix, _cls in (("vae", "ConvVAE"), ("resnet", "ConvResNetVAE")):
    _steps: list[tuple[str, Callable[..., None]]] = [
        ("model", partial(_model, cls_name=_cls, prefix=_prefix)),
        ("elbo", partial(_elbo, prefix=_prefix)),
        ("train", partial(_train, prefix=_prefix)),
        ("reparam", partial(_reparam, prefix=_prefix)),
        ("sample", partial(_sample, prefix=_prefix)),
    ]
    for _step, _fn in _steps:
        probe(f"{_prefix}_{_step}")(_fn)
