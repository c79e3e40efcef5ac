"""Homework 5 probes: call the student's Wasserstein GANs, spectral normalisation, IS and FID on the grader's inputs.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes only
answer queries: every tensor saved here is compared, or turned into a metric, by `checks.py` on the host,
together with the inputs it sent. Nothing here knows the right answers, and nothing here decides a score.

The critic slot gets grader-built networks: a stub with host-chosen outputs for the losses, and spies whose
input gradient the host knows (linear, quadratic, zero) for the gradient penalty; the spies log every input,
so the host recovers the interpolation weights. IS and FID run on a stand-in network (`StandIn`, linear maps
with the host's weights) so the host recomputes every value in float64. Images arrive as float32 in [0, 1]
(ci) or uint8 (full). Budgets (rubric.yaml): `wgan_model` the architecture, `wgan_gp_train` / `sngan_train`
the grader's adversarial loop with critic steps (`harness.train_adversarial`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from harness import (
    ProbeContext,
    ProbeError,
    StubDiscriminator,
    part,
    probe,
    sample_host_z,
    stub_generator_loss,
    train_adversarial,
)
from torch import Tensor, nn


def _tensor(value: Any, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise ProbeError(f"{what}: expected a tensor, got {type(value).__name__}")
    return value


def _scalar(out: Any, key: str, call: str) -> Tensor:
    if not isinstance(out, dict) or key not in out:
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise ProbeError(f"{call} must return a dict with key {key!r}; got {got}")
    value = out[key]
    if not isinstance(value, Tensor) or value.numel() != 1:
        raise ProbeError(f"{call}[{key!r}] must be a scalar tensor, got {type(value).__name__}")
    return value.reshape(())


def _array(value: Any, what: str) -> Tensor:
    """A numpy array or tensor answer as a float64 tensor."""
    if isinstance(value, Tensor):
        return value.detach().to(torch.float64)
    if isinstance(value, np.ndarray | np.generic | float | int):
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    raise ProbeError(f"{what}: expected a numpy array, a tensor or a number, got {type(value).__name__}")


def _images(ctx: ProbeContext, key: str) -> Tensor:
    x = ctx.data[key]
    return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x


def _grad(t: Tensor) -> Tensor:
    return torch.zeros_like(t) if t.grad is None else t.grad.detach().clone()


# ---------------------------------------------------------------- the models


@probe("wgan_model", needs=("gan_shape",))
def wgan_model(ctx: ProbeContext) -> None:
    shape = tuple(int(v) for v in ctx.data["gan_shape"].tolist())
    ctx.builder("WGAN", shape, model="wgan")


@probe("wgan_losses", needs=("gan_real", "wgan_stub", "critic_scales"))
def wgan_losses(ctx: ProbeContext) -> None:
    """A fresh critic's outputs on the real rows scaled by each of `critic_scales` (a raw score grows with
    its input; a sigmoid or tanh at the end keeps it bounded). Then for each (p, q, gp_weight) of `wgan_stub`:
    a fresh WGAN with that gradient-penalty weight and the stub critic (value p on real rows, q on others,
    input gradient 1), its critic loss on the real rows and its generator loss; then the generator loss's
    gradient on G's parameters."""
    real = _images(ctx, "gan_real")
    critic = part(ctx.built("wgan")(), "critic")
    with torch.no_grad():
        outputs = [_tensor(critic(scale * real), "critic(x)").reshape(-1) for scale in ctx.data["critic_scales"]]
    ctx.save("critic_outputs", torch.stack(outputs).to(torch.float64))
    for case, (p, q, gp_weight) in enumerate(ctx.data["wgan_stub"].tolist()):
        model = ctx.built("wgan")(gp_weight=gp_weight)
        generator = part(model, "generator")
        part(model, "critic")
        stub = StubDiscriminator(real, p, q)
        model.critic = stub
        critic_loss = _scalar(model.loss_critic(real.clone()), "critic_loss", "loss_critic(x)")
        ctx.save(f"critic_loss_{case}", critic_loss.detach().reshape(1).to(torch.float64))
        ctx.record(f"critic_calls_{case}", str(stub.calls))
        if gp_weight:  # the stub's input gradient is 1 everywhere: the penalty does not depend on the points
            penalty = _tensor(model.gradient_penalty(real.clone(), torch.rand_like(real)), "gradient_penalty")
            ctx.save(f"penalty_{case}", penalty.detach().reshape(-1)[:1].to(torch.float64))
        stub_generator_loss(ctx, model, generator, stub, len(real), case)


@probe("wgan_clip", needs=("gan_real", "clip_c"))
def wgan_clip(ctx: ProbeContext) -> None:
    """A WGAN with clip_c = c whose critic parameters are set to a pattern (half far outside [-c, c], half
    inside); one loss_critic(x) call. Saves every parameter before and after, which elements belong to the
    weight of a Conv2d or Linear layer, the critic's outputs during the call and a forward of the same inputs
    with the weights the call left."""
    c = float(ctx.data["clip_c"])
    model = ctx.built("wgan")(clip_c=c).eval()  # eval: a dropout in the critic would make the forwards differ
    critic = part(model, "critic")
    g = ctx.generator(1)
    weights = {id(m.weight) for m in critic.modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    params = list(critic.parameters())
    with torch.no_grad():
        for p in params:
            outside = torch.rand(p.shape, generator=g) < 0.5
            sign = torch.where(torch.rand(p.shape, generator=g) < 0.5, -1.0, 1.0)
            far = sign * c * (2.0 + 8.0 * torch.rand(p.shape, generator=g))
            p.copy_(torch.where(outside, far, c * (1.8 * torch.rand(p.shape, generator=g) - 0.9)))
    ctx.save("before", torch.cat([p.detach().flatten() for p in params]).clone())
    ctx.save("is_weight", torch.cat([torch.full((p.numel(),), id(p) in weights) for p in params]).to(torch.uint8))
    calls: list[tuple[Tensor, Tensor]] = []

    def log(module: nn.Module, args: tuple, output: Any) -> None:
        calls.append((args[0].detach().clone(), _tensor(output, "critic(x)").detach().clone()))

    handle = critic.register_forward_hook(log)
    try:
        _scalar(model.loss_critic(_images(ctx, "gan_real").clone()), "critic_loss", "loss_critic(x)")
    finally:
        handle.remove()
    ctx.save("after", torch.cat([p.detach().flatten() for p in params]))
    if not calls:
        raise ProbeError("loss_critic(x) never called model.critic")
    with torch.no_grad():
        ctx.save("outputs", torch.cat([out.flatten() for _, out in calls]))
        ctx.save("reforward", torch.cat([critic(x).flatten() for x, _ in calls]))


# ---------------------------------------------------------------- the gradient penalty


class _Spy(nn.Module):
    """A critic whose input gradient the host knows; logs every input. `kind`: linear f = <w, x> (w a
    parameter, so the penalty's gradient w.r.t. it can be read), quadratic f = 1/2 sum (a x)^2, zero f = 0."""

    def __init__(self, kind: str, weight: Tensor) -> None:
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(weight.clone())
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.inputs.append(x.detach().clone())
        flat = x.reshape(len(x), -1)
        if self.kind == "linear":
            out = flat @ self.weight
        elif self.kind == "quadratic":
            out = 0.5 * ((self.weight.detach() * flat) ** 2).sum(dim=1)
        else:
            out = 0.0 * flat.sum(dim=1)
        return out.unsqueeze(1)


@probe("gradient_penalty", needs=("gp_real", "gp_fake", "gp_weights", "gp_calls"))
def gradient_penalty(ctx: ProbeContext) -> None:
    """model.gradient_penalty(real, fake) with each spy of `gp_weights` (linear, quadratic, zero) in the critic
    slot, `gp_calls` times each; the values, the spies' inputs, and for the linear spy the gradient of the first
    penalty w.r.t. its weight."""
    real, fake = _images(ctx, "gp_real"), _images(ctx, "gp_fake")
    model = ctx.built("wgan")(gp_weight=1.0)
    part(model, "critic")
    for kind, weight in zip(("linear", "quadratic", "zero"), ctx.data["gp_weights"], strict=True):
        spy = _Spy(kind, weight)
        model.critic = spy
        values = []
        for call in range(int(ctx.data["gp_calls"])):
            value = _tensor(model.gradient_penalty(real.clone(), fake.clone()), "gradient_penalty(real, fake)")
            if value.numel() != 1:
                raise ProbeError(f"gradient_penalty(real, fake) must return a scalar, got shape {tuple(value.shape)}")
            values.append(value.detach().reshape(()).to(torch.float64))
            if kind == "linear" and call == 0:
                ctx.record("requires_grad", bool(value.requires_grad))
                if value.requires_grad:
                    value.reshape(()).backward()
                ctx.save("weight_grad", _grad(spy.weight).to(torch.float64))
        ctx.save(f"values_{kind}", torch.stack(values))
        ctx.record(f"calls_{kind}", len(spy.inputs))
        ctx.save(f"inputs_{kind}", torch.cat(spy.inputs) if spy.inputs else torch.zeros(0))


# ---------------------------------------------------------------- spectral normalisation


@probe("power_iteration", needs=("pi_weight", "pi_u", "pi_v", "pi_iters"))
def power_iteration(ctx: ProbeContext) -> None:
    """power_iteration_method(W, n, u_init, v_init) for each n of `pi_iters`: sigma, u, v."""
    fn = ctx.get("power_iteration_method")
    weight, u, v = ctx.data["pi_weight"], ctx.data["pi_u"], ctx.data["pi_v"]
    for n in ctx.data["pi_iters"].tolist():
        out = fn(weight.clone(), int(n), u.clone(), v.clone())
        if not isinstance(out, tuple | list) or len(out) != 3:
            raise ProbeError("power_iteration_method must return (sigma, u, v)")
        for name, value in zip(("sigma", "u", "v"), out, strict=True):
            ctx.save(f"{name}_{n}", _array(value, f"power_iteration_method(...)[{name!r}]").flatten())


def _layer_outputs(layer: nn.Module, weight: Tensor, bias: Tensor, x: Tensor, calls: int, what: str) -> Tensor:
    if not hasattr(layer, "weight") or tuple(layer.weight.shape) != tuple(weight.shape):
        raise ProbeError(f"{what}: expected self.weight of shape {tuple(weight.shape)}, as nn.Linear / nn.Conv2d")
    if getattr(layer, "bias", None) is None:
        raise ProbeError(f"{what}: expected a bias (self.bias), as nn.Linear / nn.Conv2d")
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    layer.train()
    outputs = []
    for _ in range(calls):
        with torch.no_grad():
            outputs.append(_tensor(layer(x.clone()), f"{what} forward").detach().to(torch.float64))
    return torch.stack(outputs)


@probe(
    "sn_layers",
    needs=(
        "sn_linear_weight",
        "sn_linear_bias",
        "sn_linear_x",
        "sn_conv_weight",
        "sn_conv_bias",
        "sn_conv_x",
        "sn_calls",
    ),
)
def sn_layers(ctx: ProbeContext) -> None:
    """SpectralNormLinear and SpectralNormConv2D (3x3, padding 1) with power_iterations=1 and the host's
    weights: the outputs of `sn_calls` forwards of the same input."""
    torch.manual_seed(ctx.seed)
    calls = int(ctx.data["sn_calls"])
    w = ctx.data["sn_linear_weight"]
    linear = ctx.get("SpectralNormLinear")(w.shape[1], w.shape[0], power_iterations=1)
    ctx.save(
        "linear",
        _layer_outputs(
            linear,
            w,
            ctx.data["sn_linear_bias"],
            ctx.data["sn_linear_x"],
            calls,
            "SpectralNormLinear(in, out, power_iterations=1)",
        ),
    )
    w = ctx.data["sn_conv_weight"]
    conv = ctx.get("SpectralNormConv2D")(
        w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2, power_iterations=1
    )
    ctx.save(
        "conv",
        _layer_outputs(
            conv,
            w,
            ctx.data["sn_conv_bias"],
            ctx.data["sn_conv_x"],
            calls,
            "SpectralNormConv2D(in, out, 3, padding=1, power_iterations=1)",
        ),
    )


# ---------------------------------------------------------------- training and samples


def _train(ctx: ProbeContext, variant: str, overrides: dict[str, Any]) -> None:
    """Train WGAN(**overrides) with the grader's loop: `critic_steps` critic steps per generator step, Adam
    (0, 0.9), an EMA of the generator's weights."""
    model = ctx.built("wgan")(**overrides)
    curves = train_adversarial(
        model,
        _images(ctx, "gan_images"),
        steps=int(ctx.budget["steps"]),
        batch_size=int(ctx.budget["batch_size"]),
        lr=float(ctx.budget["lr"]),
        seed=ctx.seed,
        d_steps=int(ctx.budget["critic_steps"]),
        betas=(0.0, 0.9),
        ema_decay=float(ctx.budget["ema_decay"]),
        critic="critic",
    )
    for key, values in curves.items():
        ctx.save(key, torch.tensor(values, dtype=torch.float64))
    ctx.keep_trained(variant, model)


def _sample(ctx: ProbeContext, variant: str) -> None:
    """sample(n) of the trained variant (a fresh WGAN if training failed: `trained` says which), its generator
    fed the host's z."""
    trained = ctx.trained(variant)
    ctx.record("trained", trained is not None)
    sample_host_z(ctx, (trained if trained is not None else ctx.built("wgan")()).eval(), ctx.data["gan_z"])


@probe("wgan_gp_train", needs=("gan_images",))
def wgan_gp_train(ctx: ProbeContext) -> None:
    _train(ctx, "wgan_gp", {"gp_weight": float(ctx.budget["gp_weight"])})


@probe("wgan_gp_sample", needs=("gan_z",))
def wgan_gp_sample(ctx: ProbeContext) -> None:
    _sample(ctx, "wgan_gp")


@probe("sngan_train", needs=("gan_images",))
def sngan_train(ctx: ProbeContext) -> None:
    _train(ctx, "sngan", {"spectral_norm": True})


@probe("sngan_sample", needs=("gan_z",))
def sngan_sample(ctx: ProbeContext) -> None:
    _sample(ctx, "sngan")


# ---------------------------------------------------------------- IS and FID on a stand-in network


class StandIn(nn.Module):
    """The grader's stand-in for Inception: images (B, C, H, W) -> logits (B, K) = flat(x) W^T + b, or with
    `features=True` -> (B, d, 1, 1) pool features, the shape Inception's pool3 has. Counts its calls."""

    def __init__(self, weight: Tensor, bias: Tensor, *, features: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)
        self.features = features
        self.batches: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        self.batches.append(len(x))
        out = self.linear(x.reshape(len(x), -1))
        return out[:, :, None, None] if self.features else out


def _batch_record(ctx: ProbeContext, name: str, net: StandIn) -> None:
    ctx.save(f"{name}_batches", torch.tensor(net.batches, dtype=torch.int64))


@probe("is_probs", needs=("is_images", "standin_logits_weight", "standin_logits_bias", "metric_batch"))
def is_probs(ctx: ProbeContext) -> None:
    net = StandIn(ctx.data["standin_logits_weight"], ctx.data["standin_logits_bias"], features=False).eval()
    probs = ctx.get("get_inception_probs")(net, ctx.data["is_images"].clone(), int(ctx.data["metric_batch"]))
    ctx.save("probs", _array(probs, "get_inception_probs"))
    _batch_record(ctx, "probs", net)


@probe("is_score", needs=("is_host_probs", "is_splits"))
def is_score(ctx: ProbeContext) -> None:
    fn = ctx.get("get_inception_score")
    for splits in ctx.data["is_splits"].tolist():
        out = fn(ctx.data["is_host_probs"].numpy().copy(), int(splits))
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise ProbeError("get_inception_score(probs, n_splits) must return (mean, std)")
        ctx.save(f"score_{splits}", torch.stack([_array(v, "get_inception_score").reshape(()) for v in out]))


@probe(
    "fid_features",
    needs=("fid_images_a", "standin_features_weight", "standin_features_bias", "metric_batch", "fid_host_features"),
)
def fid_features(ctx: ProbeContext) -> None:
    net = StandIn(ctx.data["standin_features_weight"], ctx.data["standin_features_bias"], features=True).eval()
    features = ctx.get("get_features")(net, ctx.data["fid_images_a"].clone(), int(ctx.data["metric_batch"]))
    ctx.save("features", _array(features, "get_features"))
    _batch_record(ctx, "features", net)
    out = ctx.get("get_statistics")(ctx.data["fid_host_features"].numpy().copy())
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise ProbeError("get_statistics(features) must return (mu, sigma)")
    ctx.save("mu", _array(out[0], "get_statistics(features)[0]"))
    ctx.save("sigma", _array(out[1], "get_statistics(features)[1]"))


@probe("fid_distance", needs=("fid_cases_mu", "fid_cases_sigma"))
def fid_distance(ctx: ProbeContext) -> None:
    """get_distance(mu1, sigma1, mu2, sigma2) for each case: (mu, sigma) pairs 2k and 2k + 1."""
    fn = ctx.get("get_distance")
    mus, sigmas = ctx.data["fid_cases_mu"].numpy(), ctx.data["fid_cases_sigma"].numpy()
    values = []
    for k in range(len(mus) // 2):
        value = fn(mus[2 * k].copy(), sigmas[2 * k].copy(), mus[2 * k + 1].copy(), sigmas[2 * k + 1].copy())
        ctx.record(f"complex_{k}", bool(np.iscomplexobj(value)))  # the value must be real, not a complex number
        values.append(_array(np.real(value), "get_distance(...)").reshape(-1)[:1])
    ctx.save("distances", torch.cat(values))


@probe(
    "fid_end_to_end",
    needs=("fid_images_a", "fid_images_b", "standin_features_weight", "standin_features_bias", "metric_batch"),
)
def fid_end_to_end(ctx: ProbeContext) -> None:
    net = StandIn(ctx.data["standin_features_weight"], ctx.data["standin_features_bias"], features=True).eval()
    value = ctx.get("get_frechet_inception_distance")(
        net, ctx.data["fid_images_a"].clone(), ctx.data["fid_images_b"].clone(), int(ctx.data["metric_batch"])
    )
    ctx.save("fid", _array(value, "get_frechet_inception_distance(...)").reshape(-1)[:1])
