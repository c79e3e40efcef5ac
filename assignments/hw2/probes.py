"""Homework 2 probes: call the student's VAE helpers, blocks and models on the host's inputs.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes
only produce data; `checks.py` computes every loss term, verdict and metric on the host.

The two models (prefix `vae` for ConvVAE, `resnet` for ConvResNetVAE) go through the same probes:
`<prefix>_model` (the builder; its budget holds the constructor's keyword arguments), `_elbo` (a fresh
model's loss on training images), `_train` (the grader's loop under the budget, then the test-set calls
that the gates and the metric share) and `_sample` (its budget holds the number of samples).

Every call of `loss(x)` or `sample(n)` runs under a `harness.LatentTap`: hooks on `model.encoder` and
`model.decoder` record what the encoder answered (mu, log_std) and hand the decoder the host's latents
(z = mu + exp(log_std) * eps with the host's eps, or the host's prior draws) instead of the student's
own z, which is recorded too. The host then computes the ELBO (or the samples) from the student's
modules' answers on its own latents, and checks the student's loss and sampler against the very same
call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from harness import LatentTap, ProbeContext, ProbeError, probe
from torch import Tensor

ENCODER_SHIFT = -1.5  # added to the encoder's outputs in the `_elbo` probe (see `harness.LatentTap`)
LOSS_KEYS = ("total_loss", "elbo_loss", "recon_loss", "kl_loss")


def _tensor(value: Any, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        try:
            value = torch.as_tensor(value)
        except Exception as exc:
            raise ProbeError(f"{what}: expected a tensor, got {type(value).__name__}") from exc
    return value.detach().cpu()


def _scalar(out: dict, key: str) -> Tensor:
    value = out.get(key)
    if not isinstance(value, Tensor) or value.numel() != 1:
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


def _images(ctx: ProbeContext, key: str) -> Tensor:
    x = ctx.data[key]
    return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x  # full profile: 8-bit CIFAR-10


@dataclass
class _Call:
    """One `loss(x)` under a tap, detached: its loss terms and what the encoder and decoder answered."""

    key: str
    requires_grad: bool
    terms: dict[str, Tensor]
    answers: dict[str, Tensor]
    reaches: dict[str, bool]


def _loss_call(model: torch.nn.Module, x: Tensor, eps: Tensor, shift: float = 0.0) -> _Call:
    """`model.loss(x)` under a tap with the host's eps; the graph is dropped before the next call."""
    with LatentTap(model, eps=eps, shift=shift) as tap:
        out = _loss_dict(model.loss(x))
    key = _loss_key(out)
    terms = {name: _scalar(out, name) for name in LOSS_KEYS if name in out}
    return _Call(key, bool(out[key].requires_grad), terms, tap.finish(len(x)), dict(tap.reaches))


def _save_calls(ctx: ProbeContext, calls: list[_Call]) -> None:
    """The loss terms of each call, (calls,), and the taps' answers concatenated over the calls."""
    ctx.record("loss_key", calls[0].key)
    ctx.record("requires_grad", all(c.requires_grad for c in calls))
    for name in LOSS_KEYS:
        if all(name in c.terms for c in calls):
            ctx.save(name, torch.cat([c.terms[name] for c in calls]))
    for name in calls[0].answers:
        ctx.save(name, torch.cat([c.answers[name] for c in calls]))
    for name in ("mu", "log_std"):
        ctx.record(f"z_reaches_{name}", all(c.reaches[name] for c in calls))


# ---------------------------------------------------------------- helpers and blocks


@probe("helpers", needs=("kl_m1", "kl_s1", "kl_m2", "kl_s2", "nll_x", "nll_m", "nll_s"))
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


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _block_cases(ctx: ProbeContext, cls: Any, name: str) -> None:
    """Output shapes of `cls(c_in, c_out, k, s)` on the host's input; its minimum with and without final_relu."""
    x = ctx.data["block_x"]  # (B, 8, H, W); each case takes its first c_in channels
    for i, (c_in, c_out, k, s) in enumerate(ctx.data[f"{name}_cases"].tolist()):
        try:
            with torch.no_grad():
                y = _tensor(cls(c_in, c_out, k, s)(x[:, :c_in]), f"{name} output")
        except Exception as exc:  # one bad case must not hide the others
            ctx.record(f"{name}_{i}_error", _error(exc))
            continue
        ctx.save(f"{name}_{i}_shape", torch.tensor(y.shape, dtype=torch.int64))
    for final_relu in (True, False):
        try:
            with torch.no_grad():
                y = _tensor(cls(4, 4, 3, 1, final_relu=final_relu)(x[:, :4]), f"{name} output")
            ctx.record(f"{name}_min_relu_{final_relu}", float(y.min()))
        except Exception as exc:
            ctx.record(f"{name}_relu_{final_relu}_error", _error(exc))


def _residual_cases(ctx: ProbeContext, cls: Any, name: str) -> None:
    """`cls(c_in, c_out, k, s, final_relu=False)` with each parameterised layer zeroed in turn.

    Saves `<name>_residual_<i>`, (layers, 4B, C_out, H', W'), on the host's inputs a, b, a + b, 0:
    zeroing the last layer of the residual branch must leave the shortcut, an affine map of x that is
    not constant; a block that never adds its shortcut is constant whichever layer is zeroed.
    """
    xs = ctx.data["residual_x"]  # (4, B, 8, H, W): a, b, a + b, 0
    for i, (c_in, c_out, k, s) in enumerate(ctx.data[f"{name}_residual_cases"].tolist()):
        x = xs[:, :, :c_in].flatten(0, 1)  # (4, B, c_in, H, W) -> (4B, c_in, H, W)
        try:
            block = cls(c_in, c_out, k, s, final_relu=False).eval()
            layers = [m for m in block.modules() if next(m.parameters(recurse=False), None) is not None]
            outs = []
            with torch.no_grad():
                for layer in layers:
                    kept = [p.clone() for p in layer.parameters(recurse=False)]
                    for p in layer.parameters(recurse=False):
                        p.zero_()
                    outs.append(_tensor(block(x), f"{name} output"))
                    for p, value in zip(layer.parameters(recurse=False), kept, strict=True):
                        p.copy_(value)
            ctx.save(f"{name}_residual_{i}", torch.stack(outs) if outs else torch.zeros(0))
        except Exception as exc:
            ctx.record(f"{name}_residual_{i}_error", _error(exc))


@probe(
    "resnet_blocks",
    needs=(
        "block_x",
        "residual_x",
        "block_cases",
        "transpose_cases",
        "block_residual_cases",
        "transpose_residual_cases",
    ),
)
def resnet_blocks(ctx: ProbeContext) -> None:
    for cls, name in ((ctx.get("ResNetBlock"), "block"), (ctx.get("ResNetTransposeBlock"), "transpose")):
        _block_cases(ctx, cls, name)
        _residual_cases(ctx, cls, name)


# ---------------------------------------------------------------- the two models


def _model(ctx: ProbeContext, cls_name: str, prefix: str) -> None:
    """Leave a builder of `cls_name(image_shape, **budget)` (seeded) for the model's later probes."""
    shape = tuple(int(v) for v in ctx.data["image_shape"].tolist())
    model = ctx.builder(cls_name, shape, model=prefix)
    if prefix == "resnet":
        for name in ("ResNetBlock", "ResNetTransposeBlock"):
            block = ctx.ns.get(name)
            ctx.record(f"uses_{name}", isinstance(block, type) and any(isinstance(m, block) for m in model.modules()))


def _elbo(ctx: ProbeContext, prefix: str) -> None:
    """`loss(x)` of a fresh model built with beta = elbo_beta, on training images, encoder outputs shifted."""
    model = ctx.built(prefix)(beta=float(ctx.data["elbo_beta"])).eval()
    x = _images(ctx, "elbo_images")
    _save_calls(ctx, [_loss_call(model, x, ctx.data[f"{prefix}_elbo_eps"], ENCODER_SHIFT)])


def _train(ctx: ProbeContext, prefix: str) -> None:
    """Train under the budget, then `loss(x)` on the test set in the host's chunks with the host's eps.

    These calls are the metric's (the host's -ELBO from the encoder's and decoder's answers) and, on
    the same answers, the gates': the loss must be the -ELBO of them and the student's z must be a
    reparameterised draw.
    """
    model = ctx.built(prefix)()
    x = _images(ctx, "train_images")
    key = _loss_key(_loss_dict(model.loss(x[:2])))
    ctx.train(model, x, loss_key=key)
    ctx.keep_trained(prefix, model.eval())
    test, eps, chunk = _images(ctx, "test_images"), ctx.data[f"{prefix}_test_eps"], int(ctx.data["eval_chunk"])
    _save_calls(ctx, [_loss_call(model, test[i : i + chunk], eps[i : i + chunk]) for i in range(0, len(test), chunk)])


def _sample(ctx: ProbeContext, prefix: str) -> None:
    """`sample(n)` of the trained model, decoding the host's prior draws."""
    model = ctx.trained(prefix)
    if model is None:
        raise ProbeError(f"the model did not train ({prefix}_train failed): no samples to score")
    model.eval()
    z = ctx.data[f"{prefix}_prior_z"]
    with LatentTap(model, z=z) as tap:
        samples = _tensor(model.sample(len(z)), "sample(n)")
    ctx.save("samples", samples.to(torch.float32))
    for name, value in tap.finish(len(z)).items():
        ctx.save(name, value)


@probe("vae_model", needs=("image_shape",))
def vae_model(ctx: ProbeContext) -> None:
    _model(ctx, "ConvVAE", "vae")


@probe("vae_elbo", needs=("elbo_images", "elbo_beta", "vae_elbo_eps"))
def vae_elbo(ctx: ProbeContext) -> None:
    _elbo(ctx, "vae")


@probe("vae_train", needs=("train_images", "test_images", "eval_chunk", "vae_test_eps"))
def vae_train(ctx: ProbeContext) -> None:
    _train(ctx, "vae")


@probe("vae_sample", needs=("vae_prior_z",))
def vae_sample(ctx: ProbeContext) -> None:
    _sample(ctx, "vae")


@probe("resnet_model", needs=("image_shape",))
def resnet_model(ctx: ProbeContext) -> None:
    _model(ctx, "ConvResNetVAE", "resnet")


@probe("resnet_elbo", needs=("elbo_images", "elbo_beta", "resnet_elbo_eps"))
def resnet_elbo(ctx: ProbeContext) -> None:
    _elbo(ctx, "resnet")


@probe("resnet_train", needs=("train_images", "test_images", "eval_chunk", "resnet_test_eps"))
def resnet_train(ctx: ProbeContext) -> None:
    _train(ctx, "resnet")


@probe("resnet_sample", needs=("resnet_prior_z",))
def resnet_sample(ctx: ProbeContext) -> None:
    _sample(ctx, "resnet")
