"""Homework 4 probes: call the student's VQ-VAE, PixelCNN prior and GAN on the grader's inputs.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes only
answer queries: every tensor saved here is compared, or turned into a metric, by `checks.py` on the host,
together with the inputs it sent. Nothing here knows the right answers, and nothing here decides a score.

VQ-VAE images arrive as uint8 (N, 1, H, W) in {0, 1}; GAN images as float32 in [0, 1] (ci) or uint8 (full).
`vq_quantizer` loads the host's codebook into a fresh `VectorQuantizer` and feeds it the host's encoder
outputs; `gan_losses` puts a stub discriminator with host-chosen outputs in the GAN's `discriminator` slot;
`gan_sample` hands the generator the host's z. Budgets (rubric.yaml): `*_model` the architecture, `*_train`
the training budget of the grader's loops (`harness.train`, `harness.train_adversarial`).
"""

from __future__ import annotations

from typing import Any

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

VQ_LOSS_KEYS = ("total_loss", "ce_loss", "vq_loss")
D_LOSS_KEYS = ("discriminator_loss", "discriminator_loss_real", "discriminator_loss_fake")


def _tensor(value: Any, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise ProbeError(f"{what}: expected a tensor, got {type(value).__name__}")
    return value


def _scalars(out: Any, keys: tuple[str, ...], call: str) -> dict[str, Tensor]:
    if not isinstance(out, dict) or not set(keys) <= out.keys():
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise ProbeError(f"{call} must return a dict with {', '.join(keys)}; got {got}")
    for key in keys:
        if not isinstance(out[key], Tensor) or out[key].numel() != 1:
            raise ProbeError(f"{call}[{key!r}] must be a scalar tensor, got {type(out[key]).__name__}")
    return out


def _binary(ctx: ProbeContext, key: str) -> Tensor:
    return ctx.data[key].to(torch.float32)  # uint8 {0, 1} -> float32


def _gan_images(ctx: ProbeContext, key: str) -> Tensor:
    x = ctx.data[key]
    return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x


# ---------------------------------------------------------------- the quantiser on the host's codebook


def _codebook(vq: nn.Module) -> Tensor:
    """The (K, D) codebook weight of a VectorQuantizer (`self.embedding`, an nn.Embedding, as the template says)."""
    embedding = getattr(vq, "embedding", None)
    weight = embedding.weight if isinstance(embedding, nn.Embedding) else embedding
    if not isinstance(weight, nn.Parameter):
        raise ProbeError(
            "VectorQuantizer needs its codebook as self.embedding = nn.Embedding(K, D), as in the template"
        )
    return weight


def _grad(t: Tensor) -> Tensor:
    return torch.zeros_like(t) if t.grad is None else t.grad.detach().clone()


@probe("vq_quantizer", needs=("vq_codebook", "vq_z", "vq_weight", "vq_beta", "vq_indices"))
def vq_quantizer(ctx: ProbeContext) -> None:
    """The host's codebook in a fresh VectorQuantizer; its indices, quantized vectors, forward value, the
    gradient of sum(w * z_q) w.r.t. z_e, and the gradients of the VQ loss alone."""
    codebook, z = ctx.data["vq_codebook"], ctx.data["vq_z"]
    vq = ctx.get("VectorQuantizer")(codebook.shape[0], codebook.shape[1], float(ctx.data["vq_beta"]))
    weight = _codebook(vq)
    if tuple(weight.shape) != tuple(codebook.shape):
        raise ProbeError(f"VectorQuantizer(K, D, beta): codebook of shape {tuple(weight.shape)}, expected (K, D)")
    with torch.no_grad():
        weight.copy_(codebook)
        ctx.save("indices", _tensor(vq.get_code_indices(z.clone()), "get_code_indices").to(torch.int64))
        ctx.save("quantized", _tensor(vq.get_quantized(ctx.data["vq_indices"].clone()), "get_quantized"))
    z_e = z.clone().requires_grad_(True)
    out = vq(z_e)
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise ProbeError("VectorQuantizer.forward must return (quantized, vq_loss)")
    quantized, loss = _tensor(out[0], "forward()[0]"), _tensor(out[1], "forward()[1]")
    ctx.save("forward", quantized.detach())
    ctx.save("vq_loss", loss.detach().reshape(-1)[:1].to(torch.float64))
    ctx.record("vq_loss_scalar", loss.numel() == 1)
    if quantized.requires_grad:
        (quantized * ctx.data["vq_weight"]).sum().backward()
    ctx.record("st_reaches", z_e.grad is not None)
    ctx.save("st_grad", _grad(z_e))
    weight.grad = None
    z_e = z.clone().requires_grad_(True)
    loss = vq(z_e)[1]
    if loss.requires_grad:
        loss.sum().backward()
    ctx.save("loss_grad_z", _grad(z_e))
    ctx.save("loss_grad_codebook", _grad(weight))


# ---------------------------------------------------------------- the VQ-VAE


def _quantizer(ctx: ProbeContext, model: nn.Module) -> nn.Module:
    """The model's VectorQuantizer (any attribute name), or `model.vq`."""
    cls = ctx.ns.get("VectorQuantizer")
    found = [m for m in model.modules() if isinstance(cls, type) and isinstance(m, cls)]
    return found[0] if len(found) == 1 else part(model, "vq")


def _vq_logits(model: nn.Module, x: Tensor) -> Tensor:
    out = model(x)
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise ProbeError("VQVAEModel.forward must return (logits, vq_loss)")
    logits = _tensor(out[0], "forward()[0]")
    if tuple(logits.shape) != (len(x), 2, *x.shape[1:]):
        raise ProbeError(f"VQVAEModel.forward: expected logits {(len(x), 2, *x.shape[1:])}, got {tuple(logits.shape)}")
    return logits


def _indices(model: nn.Module, x: Tensor) -> Tensor:
    """get_indices(x) as (N, 1, h, w) int64, in chunks."""
    parts = [_tensor(model.get_indices(x[i : i + 512]), "get_indices(x)") for i in range(0, len(x), 512)]
    idx = torch.cat(parts).detach().to(torch.int64)
    return idx.reshape(len(x), 1, *idx.shape[-2:])  # (N, h, w) or (N, 1, h, w) -> (N, 1, h, w)


@probe("vqvae_model", needs=("image_shape",))
def vqvae_model(ctx: ProbeContext) -> None:
    shape = tuple(int(v) for v in ctx.data["image_shape"].tolist())
    ctx.builder("VQVAEModel", shape, model="vqvae")


@probe("vqvae_loss", needs=("loss_images",))
def vqvae_loss(ctx: ProbeContext) -> None:
    """A fresh model's loss(x) terms and forward(x) on training images; the gradients of ce_loss alone."""
    model = ctx.built("vqvae")().eval()
    x = _binary(ctx, "loss_images")
    terms = _scalars(model.loss(x), VQ_LOSS_KEYS, "loss(x)")
    for key in VQ_LOSS_KEYS:
        ctx.save(key, terms[key].detach().reshape(1).to(torch.float64))
    with torch.no_grad():
        out = model(x)
        ctx.save("logits", _vq_logits(model, x))
        ctx.save("forward_vq_loss", _tensor(out[1], "forward()[1]").detach().reshape(-1)[:1].to(torch.float64))
    model.zero_grad(set_to_none=True)
    ce = _scalars(model.loss(x), VQ_LOSS_KEYS, "loss(x)")["ce_loss"]
    if ce.requires_grad:
        ce.backward()
    codebook = _codebook(_quantizer(ctx, model))
    encoder = [p for p in part(model, "encoder").parameters() if p.requires_grad]
    ctx.record("ce_requires_grad", bool(ce.requires_grad))
    ctx.record("ce_codebook_grad", float(_grad(codebook).abs().sum()))
    ctx.record("ce_encoder_grad", float(sum(float(_grad(p).abs().sum()) for p in encoder)))


@probe("vqvae_train", needs=("train_images", "test_images"))
def vqvae_train(ctx: ProbeContext) -> None:
    """Train under the budget, then the test logits, the codes of the training and test images, and the
    test images decoded from their codes alone."""
    model = ctx.built("vqvae")()
    train_x = _binary(ctx, "train_images")
    ctx.train(model, train_x)
    ctx.keep_trained("vqvae", model.eval())
    test_x = _binary(ctx, "test_images")
    with torch.no_grad():
        ctx.save("test_logits", _vq_logits(model, test_x))
        test_idx, train_idx = _indices(model, test_x), _indices(model, train_x)
        decoded = part(model, "decoder")(_quantizer(ctx, model).get_quantized(test_idx[:, 0]))
    ctx.save("test_indices", test_idx)
    ctx.save("train_indices", train_idx)
    ctx.save("decoded_logits", _tensor(decoded, "decoder(get_quantized(indices))"))
    ctx.shared["hw4_codes"] = (train_idx, test_idx)


# ---------------------------------------------------------------- the PixelCNN prior


def _codes(ctx: ProbeContext) -> tuple[Tensor, Tensor]:
    if "hw4_codes" not in ctx.shared:
        raise ProbeError("no codes: the VQ-VAE could not be trained (see the reconstruction item)")
    return ctx.shared["hw4_codes"]


def _prior_logits(model: nn.Module, codes: Tensor, classes: int) -> Tensor:
    out = _tensor(model(codes), "PixelCNNPrior forward")
    want = (len(codes), classes, *codes.shape[1:])
    if tuple(out.shape) != want:
        raise ProbeError(f"PixelCNNPrior forward: expected logits {want}, got {tuple(out.shape)}")
    return out


@probe("prior_model", needs=("prior_shape",))
def prior_model(ctx: ProbeContext) -> None:
    classes, height, width = ctx.data["prior_shape"].tolist()
    ctx.builder("PixelCNNPrior", classes, (height, width), model="prior")


@probe("prior_train", needs=("prior_shape",))
def prior_train(ctx: ProbeContext) -> None:
    train_idx, _ = _codes(ctx)
    shape = tuple(ctx.data["prior_shape"].tolist())
    if tuple(train_idx.shape[2:]) != shape[1:] or train_idx.min() < 0 or train_idx.max() >= shape[0]:
        raise ProbeError(f"get_indices: expected codes in [0, {shape[0]}) on a {shape[1:]} grid")
    model = ctx.built("prior")()
    ctx.train(model, train_idx)
    ctx.keep_trained("prior", model)


@probe("prior_eval", needs=("prior_shape", "prior_dependence", "prior_order"))
def prior_eval(ctx: ProbeContext) -> None:
    """The prior's logits on one batch: the test images' codes and copies of some of them with one code
    changed (`prior_dependence` rows (test row, position, offset)), in the host's order."""
    _, test_idx = _codes(ctx)
    classes = int(ctx.data["prior_shape"][0])
    model = ctx.trained_or_fresh("prior")
    dep = ctx.data["prior_dependence"]
    changed = test_idx[dep[:, 0]].clone().flatten(1)  # (n_dep, 1, h, w) -> (n_dep, h w)
    rows = torch.arange(len(dep))
    changed[rows, dep[:, 1]] = (changed[rows, dep[:, 1]] + dep[:, 2]) % classes
    batch = torch.cat([test_idx, changed.reshape(-1, *test_idx.shape[1:])])[ctx.data["prior_order"]]
    with torch.no_grad():
        ctx.save("logits", _prior_logits(model, batch, classes))
    ctx.save("codes", batch)


@probe("vq_sample", needs=("sample_logits", "prior_shape"))
def vq_sample(ctx: ProbeContext) -> None:
    """sample_from_logits on the host's logits; the prior's sample(n) and its logits on the finished codes;
    the trained VQ-VAE's sample(n, codes) of them."""
    model = ctx.trained_or_fresh("vqvae")
    with torch.no_grad():
        ctx.save("draws", _tensor(model.sample_from_logits(ctx.data["sample_logits"].clone()), "sample_from_logits"))
    n = int(ctx.budget["n"])
    classes = int(ctx.data["prior_shape"][0])
    prior = ctx.trained_or_fresh("prior", record_as="prior_trained")
    codes = _tensor(prior.sample(n), "PixelCNNPrior.sample(n)").detach().to(torch.int64)
    ctx.save("prior_codes", codes)
    if codes.shape[1:] == (1, *ctx.data["prior_shape"][1:].tolist()) and codes.min() >= 0 and codes.max() < classes:
        with torch.no_grad():
            ctx.save("prior_code_logits", _prior_logits(prior, codes, classes))
            ctx.save("images", _tensor(model.sample(n, codes[:, 0]), "sample(n, indices)").to(torch.float32))


# ---------------------------------------------------------------- the GAN


@probe("gan_model", needs=("gan_shape",))
def gan_model(ctx: ProbeContext) -> None:
    shape = tuple(int(v) for v in ctx.data["gan_shape"].tolist())
    ctx.builder("GAN", shape, model="gan")


@probe("gan_losses", needs=("gan_real", "gan_stub"))
def gan_losses(ctx: ProbeContext) -> None:
    """For each (p, q) of `gan_stub`: a fresh GAN with the stub D, loss_discriminator(real) and
    loss_generator(len(real)); then the gradient of the generator loss on G's parameters."""
    real = _gan_images(ctx, "gan_real")
    for case, (p, q) in enumerate(ctx.data["gan_stub"].tolist()):
        model = ctx.built("gan")()
        part(model, "discriminator")
        generator = part(model, "generator")
        stub = StubDiscriminator(real, p, q)
        model.discriminator = stub
        d_terms = _scalars(model.loss_discriminator(real.clone()), D_LOSS_KEYS, "loss_discriminator(x)")
        for key in D_LOSS_KEYS:
            ctx.save(f"{key}_{case}", d_terms[key].detach().reshape(1).to(torch.float64))
        ctx.record(f"d_calls_{case}", str(stub.calls))
        stub_generator_loss(ctx, model, generator, stub, len(real), case)


@probe("gan_train", needs=("gan_images",))
def gan_train(ctx: ProbeContext) -> None:
    model = ctx.built("gan")()
    curves = train_adversarial(
        model,
        _gan_images(ctx, "gan_images"),
        steps=int(ctx.budget["steps"]),
        batch_size=int(ctx.budget["batch_size"]),
        lr=float(ctx.budget["lr"]),
        seed=ctx.seed,
        d_steps=int(ctx.budget.get("d_steps", 1)),
        ema_decay=float(ctx.budget["ema_decay"]) if ctx.budget.get("ema_decay") else None,
    )
    for key, values in curves.items():
        ctx.save(key, torch.tensor(values, dtype=torch.float64))
    ctx.keep_trained("gan", model)


@probe("gan_sample", needs=("gan_z",))
def gan_sample(ctx: ProbeContext) -> None:
    """sample(n) of the trained GAN (a fresh one if training failed: `trained` says which), its generator
    fed the host's z."""
    sample_host_z(ctx, ctx.trained_or_fresh("gan"), ctx.data["gan_z"])
