"""Homework 2 probes: call the student's VAE helpers, blocks and models on the host's inputs.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes
only produce data; `checks.py` computes every loss term, verdict and metric on the host.

The two models (prefix `vae` for ConvVAE, `resnet` for ConvResNetVAE) go through the same probes:
`<prefix>_model` (the builder; its budget holds the constructor's keyword arguments), `_elbo` (a fresh
model's loss on training images), `_train` (the grader's loop under the budget, then the test-set calls
that the gates and the metric share) and `_sample` (its budget holds the number of samples).

Every call of `loss(x)` or `sample(n)` runs under a `_Tap`: hooks on `model.encoder` and
`model.decoder` record what the encoder answered (mu, log_std) and hand the decoder the host's latents
(z = mu + exp(log_std) * eps with the host's eps, or the host's prior draws) instead of the student's
own z, which is recorded too. The host then computes the ELBO (or the samples) from the student's
modules' answers on its own latents, and checks the student's loss and sampler against the very same
call.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from harness import ProbeContext, ProbeError, probe
from torch import Tensor

ENCODER_SHIFT = -1.5  # added to the encoder's outputs in the `_elbo` probe (see `_Tap`)
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


def _part(model: torch.nn.Module, name: str) -> torch.nn.Module:
    part = getattr(model, name, None)
    if not isinstance(part, torch.nn.Module):
        raise ProbeError(f"the model needs an attribute `{name}` (an nn.Module), as in the template")
    return part


class _Tap:
    """Hooks on `model.encoder` and `model.decoder` for one call of the student's `loss` or `sample`.

    With `eps` (B, L): the encoder must run once; its (mu, log_std), plus `shift`, are recorded and
    passed on, and the decoder gets the rows of mu + exp(log_std) * eps in order. With `z` (n, L): the
    decoder gets the rows of `z`. Either way the student's own z and the decoder's outputs are recorded,
    and whether the student's z carries gradient back to mu and log_std. The shift puts log_std far
    from 0, where reading it as a log-variance changes the spread of z by exp(-shift / 2) and the KL
    term is large enough to compare; a correct model is as right there as anywhere else.
    """

    def __init__(
        self, model: torch.nn.Module, *, eps: Tensor | None = None, z: Tensor | None = None, shift: float = 0.0
    ) -> None:
        self.eps, self.z, self.shift = eps, z, shift
        self.encoded: tuple[Tensor, Tensor] | None = None
        self.student_z: list[Tensor] = []
        self.decoded: list[Tensor] = []
        self.reaches = {"mu": True, "log_std": True}
        self.rows = 0
        decoder = _part(model, "decoder")
        self.handles = [
            decoder.register_forward_pre_hook(self._decoder_input),
            decoder.register_forward_hook(self._decoder_output),
        ]
        if eps is not None:
            self.handles.append(_part(model, "encoder").register_forward_hook(self._encoder_output))

    def __enter__(self) -> _Tap:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self.handles:
            handle.remove()

    def _encoder_output(self, module: torch.nn.Module, args: tuple, output: Any) -> Any:
        """Record (mu, log_std) + shift and pass them on, as a pair or as one (B, 2 n_latent) tensor."""
        if self.encoded is not None:
            raise ProbeError("model.encoder ran twice in one loss(x): compute the terms from one call of self(x)")
        joined = isinstance(output, Tensor) and output.dim() == 2 and output.shape[1] % 2 == 0
        pair = output.chunk(2, dim=1) if joined else tuple(output) if isinstance(output, tuple | list) else ()
        if len(pair) != 2 or not all(isinstance(t, Tensor) for t in pair) or pair[0].dim() != 2:
            raise ProbeError("model.encoder(x̃) must return (mu, log_std), two (B, n_latent) tensors")
        if pair[0].shape != pair[1].shape:
            raise ProbeError(f"model.encoder: mu {tuple(pair[0].shape)} and log_std {tuple(pair[1].shape)} differ")
        self.encoded = (pair[0] + self.shift, pair[1] + self.shift)
        return torch.cat(self.encoded, dim=1) if joined else self.encoded

    def _decoder_input(self, module: torch.nn.Module, args: tuple) -> tuple:
        """Swap the student's z for the host's next rows (reshaped like it); record the student's."""
        z = args[0] if args else None
        if not isinstance(z, Tensor) or z.dim() < 2:
            raise ProbeError("model.decoder must be called as self.decoder(z), z of shape (B, n_latent)")
        start, self.rows = self.rows, self.rows + len(z)
        if self.z is not None:
            target = self.z[start : self.rows]
        else:
            if self.encoded is None:
                raise ProbeError("model.decoder ran before model.encoder in loss(x)")
            mu, log_std = self.encoded
            self._trace(z, mu, log_std)
            rows = slice(start, self.rows)
            target = mu[rows] + torch.exp(log_std[rows]) * self.eps[rows].to(mu.device)
        if target.numel() != z.numel():
            raise ProbeError(
                f"model.decoder got z of shape {tuple(z.shape)} at row {start}, expected {tuple(target.shape)} "
                "(one z of n_latent values per image)"
            )
        self.student_z.append(z.detach().reshape(len(z), -1).clone())  # (b, ...) -> (b, n_latent)
        return (target.reshape(z.shape).to(z), *args[1:])

    def _trace(self, z: Tensor, mu: Tensor, log_std: Tensor) -> None:
        """Whether the student's z is differentiable in mu and log_std (the reparameterisation's point)."""
        for name, param in (("mu", mu), ("log_std", log_std)):
            grad = None
            if torch.is_grad_enabled() and z.requires_grad and param.requires_grad:
                grad = torch.autograd.grad(z, param, torch.ones_like(z), retain_graph=True, allow_unused=True)[0]
            self.reaches[name] &= grad is not None and bool(grad.abs().sum() > 0)

    def _decoder_output(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise ProbeError(f"model.decoder must return a tensor, got {type(output).__name__}")
        self.decoded.append(output.detach().clone())

    def finish(self, n: int) -> dict[str, Tensor]:
        """What the call's encoder and decoder answered, after checking the decoder saw all `n` latents."""
        if self.rows != n:
            raise ProbeError(f"model.decoder decoded {self.rows} latents for {n} inputs: decode one z per input")
        out = {"z": torch.cat(self.student_z), "x_recon": torch.cat(self.decoded)}
        if self.encoded is not None:
            out |= {"mu_z": self.encoded[0].detach(), "log_std_z": self.encoded[1].detach()}
        return out


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
    with _Tap(model, eps=eps, shift=shift) as tap:
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
    with _Tap(model, z=z) as tap:
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
