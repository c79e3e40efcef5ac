"""The probe kit, kernel side: answers one query of the orchestrator in the student's kernel.

Standalone on purpose (stdlib, torch, safetensors): it is bound into the sandbox read-only and never
imports `grader`. Everything here runs in the student's process, so the student can patch all of it;
that is fine, because nothing here decides a score. A query names a probe and carries the inputs the
host chose; the probe calls the student's objects on them and the reply (tensors and JSON scalars) goes
back to the orchestrator as a display message tied to the query's token. The host validates every
reply and computes every score from it, together with the inputs it sent.
"""

from __future__ import annotations

import base64
import json
import math
import runpy
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import torch
from safetensors.torch import load_file, save

REPLY_MIME = "application/vnd.dgm.reply+json"
PROBES_PATH = Path(__file__).resolve().parent / "probes.py"
_MAX_MESSAGE = 2000
_MAX_TENSOR_BYTES = 64 * 2**20

ProbeFn = Callable[["ProbeContext"], None]


class ProbeSpec:
    """A registered probe: its function and what the host must send it."""

    def __init__(self, name: str, fn: ProbeFn, needs: tuple[str, ...], steps: str | None) -> None:
        self.name, self.fn, self.needs, self.steps = name, fn, needs, steps


PROBES: dict[str, ProbeSpec] = {}
_SHARED: dict[str, Any] = {}  # what earlier probes left for later ones (a trained model, a builder)


class ProbeError(Exception):
    """A probe found the student's code unusable; the message is shown to the student."""


def probe(name: str, *, needs: tuple[str, ...] = (), steps: str | None = None) -> Callable[[ProbeFn], ProbeFn]:
    """Register `fn` as the probe `name`; probes are queried in registration order.

    `needs` names the host's input arrays each query of this probe carries. With `steps`, the named
    input has a leading step axis and the probe is queried once per step, in order, with that step's
    slice: the kernel never holds a later step's data while it answers an earlier one.
    """

    def register(fn: ProbeFn) -> ProbeFn:
        PROBES[name] = ProbeSpec(name, fn, tuple(needs), steps)
        return fn

    return register


class ProbeContext:
    """What one query sees: the kernel namespace, its inputs, budget and seed, and its reply."""

    def __init__(self, name: str, ns: dict[str, Any], meta: dict[str, Any], data: dict[str, torch.Tensor]) -> None:
        self.name = name
        self.ns = ns
        self.seed = int(meta["seed"])  # derived by the host for this probe; never the run's secret
        self.step = int(meta.get("step", 0))
        self.budget: dict[str, Any] = dict(meta.get("budget", {}))
        self.data = data
        self.shared = _SHARED
        self.values: dict[str, float | int | str | bool] = {}
        self.tensors: dict[str, torch.Tensor] = {}

    def get(self, name: str) -> Any:
        """The student's object called `name`, or a ProbeError saying it is missing."""
        if name not in self.ns:
            raise ProbeError(f"{name} is not defined (did its cell run without errors?)")
        return self.ns[name]

    def save(self, key: str, tensor: Any) -> None:
        """Put a tensor into the reply under `key`."""
        t = torch.as_tensor(tensor).detach().cpu().contiguous()
        if t.dtype not in (torch.float32, torch.float64, torch.int64, torch.int32, torch.bool, torch.uint8):
            t = t.to(torch.float32)
        if t.numel() * t.element_size() > _MAX_TENSOR_BYTES:
            raise ProbeError(f"{key}: tensor of {t.numel() * t.element_size()} bytes is too large")
        self.tensors[key] = t.clone()

    def record(self, key: str, value: float | int | str | bool) -> None:
        """Put a JSON scalar into the reply."""
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        self.values[key] = value if isinstance(value, bool | int | float | str) else str(value)

    def train(
        self,
        model: torch.nn.Module,
        images: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        loss_key: str = "total_loss",
    ) -> list[float]:
        """`train` under this probe's budget (`steps`, `batch_size`, `lr`, optional `lr_schedule`); saves the loss
        curve as `losses`."""
        losses = train(
            model,
            images,
            labels=labels,
            steps=int(self.budget["steps"]),
            batch_size=int(self.budget["batch_size"]),
            lr=float(self.budget["lr"]),
            lr_schedule=str(self.budget.get("lr_schedule", "constant")),
            seed=self.seed,
            loss_key=loss_key,
        )
        self.save("losses", torch.tensor(losses))
        self.record("first_loss", losses[0])
        self.record("last_loss", sum(losses[-10:]) / len(losses[-10:]))
        return losses

    def builder(self, cls_name: str, *args: Any, model: str) -> torch.nn.Module:
        """Keep a seeded factory `build(cls=<the student's cls_name>, **overrides)` of `cls(*args, **budget)`
        for the later probes of `model` (`built(model)`) and return its first model: building once here
        makes a constructor's error this probe's message. The parameter count goes into the reply.
        """
        default = self.get(cls_name)
        arch = dict(self.budget)

        def build(cls: Any = default, **overrides: Any) -> torch.nn.Module:
            torch.manual_seed(self.seed)
            built = cls(*args, **{**arch, **overrides})
            if not isinstance(built, torch.nn.Module):
                raise ProbeError(f"{cls_name}(...) did not return an nn.Module")
            return built

        try:
            first = build()
        except Exception as exc:
            self.shared[f"{model}_build_error"] = f"{type(exc).__name__}: {exc}"
            raise
        self.record("n_params", sum(p.numel() for p in first.parameters()))
        self.shared[f"{model}_build"] = build
        return first

    def built(self, model: str) -> Callable[..., torch.nn.Module]:
        """The factory `builder` left for `model`, or a ProbeError saying why there is none."""
        if f"{model}_build" not in self.shared:
            why = self.shared.get(f"{model}_build_error", f"see the message of {model}'s first probe")
            raise ProbeError(f"the model could not be built ({why})")
        return self.shared[f"{model}_build"]

    def keep_trained(self, model: str, trained: torch.nn.Module) -> None:
        """Leave the model a training probe trained for the later probes of `model`."""
        self.shared[f"{model}_trained"] = trained

    def trained(self, model: str) -> torch.nn.Module | None:
        """The model `keep_trained` left for `model`, or None if its training probe failed."""
        return self.shared.get(f"{model}_trained")

    def trained_or_fresh(self, model: str, record_as: str = "trained") -> torch.nn.Module:
        """The trained `model` if its training probe succeeded, else a fresh one, in eval mode (for the
        properties that hold for any weights); which of the two goes into the reply as `record_as`."""
        trained = self.trained(model)
        self.record(record_as, trained is not None)
        return (trained if trained is not None else self.built(model)()).eval()

    def generator(self, offset: int = 0) -> torch.Generator:
        """A torch.Generator seeded from this probe's seed."""
        g = torch.Generator()
        g.manual_seed((self.seed + offset) % 2**63)
        return g


def part(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The submodule `model.<name>`, or a ProbeError saying the template asks for it."""
    sub = getattr(model, name, None)
    if not isinstance(sub, torch.nn.Module):
        raise ProbeError(f"the model needs an attribute `{name}` (an nn.Module), as in the template")
    return sub


class LatentTap:
    """Hooks on `model.encoder` and `model.decoder` of a latent variable model for one call of its `loss`
    or `sample`, so that the host, not the student's code, chooses every latent that gets decoded.

    With `eps` (B, L): the encoder must run once; its (mu, log_std), plus `shift`, are recorded and
    passed on, and the decoder gets the rows of mu + exp(log_std) * eps in order. With `z` (n, L): the
    decoder gets the rows of `z`. Either way the student's own z and the decoder's outputs are recorded,
    and whether the student's z carries gradient back to mu and log_std; for a conditional model
    (`encoder(x, c)`, `decoder(z, c)`) also the condition c each of them was given. The shift puts
    log_std far from 0, where reading it as a log-variance changes the spread of z by exp(-shift / 2)
    and the KL term is large enough to compare; a correct model is as right there as anywhere else.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        eps: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        shift: float = 0.0,
    ) -> None:
        self.eps, self.z, self.shift = eps, z, shift
        self.encoded: tuple[torch.Tensor, torch.Tensor] | None = None
        self.student_z: list[torch.Tensor] = []
        self.decoded: list[torch.Tensor] = []
        self.conditions: dict[str, list[torch.Tensor]] = {"encoder_c": [], "decoder_c": []}
        self.reaches = {"mu": True, "log_std": True}
        self.rows = 0
        decoder = part(model, "decoder")
        self.handles = [
            decoder.register_forward_pre_hook(self._decoder_input),
            decoder.register_forward_hook(self._decoder_output),
        ]
        if eps is not None:
            encoder = part(model, "encoder")
            self.handles += [
                encoder.register_forward_pre_hook(self._encoder_input),
                encoder.register_forward_hook(self._encoder_output),
            ]

    def __enter__(self) -> LatentTap:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self.handles:
            handle.remove()

    def _condition(self, args: tuple, key: str) -> None:
        """Record the second positional argument (the condition c of a conditional model), if any."""
        if len(args) > 1 and isinstance(args[1], torch.Tensor):
            c = args[1].detach()
            self.conditions[key].append(c.reshape(len(c), -1).to(torch.float32).clone() if c.dim() else c.reshape(1, 1))

    def _encoder_input(self, module: torch.nn.Module, args: tuple) -> None:
        self._condition(args, "encoder_c")

    def _encoder_output(self, module: torch.nn.Module, args: tuple, output: Any) -> Any:
        """Record (mu, log_std) + shift and pass them on, as a pair or as one (B, 2 n_latent) tensor."""
        if self.encoded is not None:
            raise ProbeError("model.encoder ran twice in one loss call: compute the terms from one call of self(...)")
        joined = isinstance(output, torch.Tensor) and output.dim() == 2 and output.shape[1] % 2 == 0
        pair = output.chunk(2, dim=1) if joined else tuple(output) if isinstance(output, tuple | list) else ()
        if len(pair) != 2 or not all(isinstance(t, torch.Tensor) for t in pair) or pair[0].dim() != 2:
            raise ProbeError("model.encoder must return (mu, log_std), two (B, n_latent) tensors")
        if pair[0].shape != pair[1].shape:
            raise ProbeError(f"model.encoder: mu {tuple(pair[0].shape)} and log_std {tuple(pair[1].shape)} differ")
        self.encoded = (pair[0] + self.shift, pair[1] + self.shift)
        return torch.cat(self.encoded, dim=1) if joined else self.encoded

    def _decoder_input(self, module: torch.nn.Module, args: tuple) -> tuple:
        """Swap the student's z for the host's next rows (reshaped like it); record the student's."""
        z = args[0] if args else None
        if not isinstance(z, torch.Tensor) or z.dim() < 2:
            raise ProbeError("model.decoder must be called as self.decoder(z, ...), z of shape (B, n_latent)")
        self._condition(args, "decoder_c")
        start, self.rows = self.rows, self.rows + len(z)
        if self.z is not None:
            target = self.z[start : self.rows]
        else:
            if self.encoded is None or self.eps is None:
                raise ProbeError("model.decoder ran before model.encoder in the loss")
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

    def _trace(self, z: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> None:
        """Whether the student's z is differentiable in mu and log_std (the reparameterisation's point)."""
        for name, param in (("mu", mu), ("log_std", log_std)):
            grad = None
            if torch.is_grad_enabled() and z.requires_grad and param.requires_grad:
                grad = torch.autograd.grad(z, param, torch.ones_like(z), retain_graph=True, allow_unused=True)[0]
            self.reaches[name] &= grad is not None and bool(grad.abs().sum() > 0)

    def _decoder_output(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            raise ProbeError(f"model.decoder must return a tensor, got {type(output).__name__}")
        self.decoded.append(output.detach().clone())

    def finish(self, n: int) -> dict[str, torch.Tensor]:
        """What the call's encoder and decoder answered (`z`, `decoded`, `mu_z`, `log_std_z`, and the
        conditions `encoder_c`, `decoder_c` when there were any), after checking the decoder saw all
        `n` latents."""
        if self.rows != n:
            raise ProbeError(f"model.decoder decoded {self.rows} latents for {n} inputs: decode one z per input")
        out = {"z": torch.cat(self.student_z), "decoded": torch.cat(self.decoded)}
        if self.encoded is not None:
            out |= {"mu_z": self.encoded[0].detach(), "log_std_z": self.encoded[1].detach()}
        for key, parts in self.conditions.items():
            if parts and len({p.shape[1] for p in parts}) == 1:
                out[key] = torch.cat(parts)
        return out


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start : start + batch_size]


def train(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    loss_key: str = "total_loss",
    clip_grad: float | None = 1.0,
    lr_schedule: str = "constant",
) -> list[float]:
    """The grader's own training loop: Adam, seeded batch order, `model.loss(x)[loss_key]`, or
    `model.loss(x, y)[loss_key]` with the batch's `labels`."""
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ProbeError("the model has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=lr)
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule: expected 'constant' or 'cosine', got {lr_schedule!r}")
    # cosine: the learning rate decays to 0 over the steps, which settles small models (diffusion on 2-D
    # data) at the end of the budget instead of leaving them wherever the last noisy steps took them
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, int(steps)) if lr_schedule == "cosine" else None
    model.train()
    losses: list[float] = []
    batches = _batches(len(images), min(batch_size, len(images)), generator)
    for _ in range(int(steps)):
        rows = next(batches)
        batch = (images[rows],) if labels is None else (images[rows], labels[rows])
        out = cast(Any, model).loss(*batch)
        if not isinstance(out, dict) or loss_key not in out:
            raise ProbeError(f"loss() must return a dict with key {loss_key!r}, got {type(out).__name__}")
        loss = out[loss_key]
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ProbeError(f"loss()[{loss_key!r}] must be a scalar tensor")
        if not torch.isfinite(loss):
            raise ProbeError(f"loss()[{loss_key!r}] became {loss.item()} after {len(losses)} steps")
        optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            if clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(params, clip_grad)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _scalar_loss(out: Any, key: str, call: str, step: int) -> torch.Tensor:
    """`out[key]` of a loss method's dict, checked to be a finite scalar tensor."""
    if not isinstance(out, dict) or key not in out:
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise ProbeError(f"{call} must return a dict with key {key!r}, got {got}")
    loss = out[key]
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ProbeError(f"{call}[{key!r}] must be a scalar tensor")
    if not torch.isfinite(loss):
        raise ProbeError(f"{call}[{key!r}] became {loss.item()} after {step} steps")
    return loss.reshape(())


def train_adversarial(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    d_steps: int = 1,
    betas: tuple[float, float] = (0.5, 0.999),
    ema_decay: float | None = None,
    critic: str = "discriminator",
) -> dict[str, list[float]]:
    """The grader's GAN loop, as the course's `train_adversarial`: one Adam per network, both gradients
    zeroed before each loss; a discriminator step on every batch (`model.loss_discriminator(x)
    ["discriminator_loss"]`) and a generator step when `it % d_steps == 0`
    (`model.loss_generator(batch_size)["generator_loss"]`). With `ema_decay`, an exponential moving average
    of the generator's weights is kept and loaded into `model.generator` at the end (it lowers the
    seed-to-seed spread of sample quality). `critic="critic"` trains a Wasserstein GAN instead: `model.critic`
    and `model.loss_critic(x)["critic_loss"]`. Returns the loss curves `d_losses`, `g_losses`."""
    torch.manual_seed(seed)
    order = torch.Generator()
    order.manual_seed(seed)
    nets = {name: part(model, name) for name in ("generator", critic)}
    params = {name: [p for p in net.parameters() if p.requires_grad] for name, net in nets.items()}
    for name, group in params.items():
        if not group:
            raise ProbeError(f"model.{name} has no trainable parameters")
    if {id(p) for p in params["generator"]} & {id(p) for p in params[critic]}:
        raise ProbeError(f"model.generator and model.{critic} share parameters")
    optimizers = {name: torch.optim.Adam(group, lr=lr, betas=betas) for name, group in params.items()}
    ema = [p.detach().clone() for p in params["generator"]] if ema_decay else None
    z_shape: list[torch.Size] = []  # the generator's last input, for _refresh_batch_norm

    def note_z(module: torch.nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            z_shape[:] = [args[0].shape]

    hook = nets["generator"].register_forward_pre_hook(note_z)
    learner = cast(Any, model)
    model.train()
    curves: dict[str, list[float]] = {"d_losses": [], "g_losses": []}
    batches = _batches(len(images), min(batch_size, len(images)), order)
    for it in range(int(steps)):
        x = images[next(batches)]
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        d_loss = _scalar_loss(getattr(learner, f"loss_{critic}")(x), f"{critic}_loss", f"loss_{critic}(x)", it)
        if not d_loss.requires_grad:
            raise ProbeError(f"loss_{critic}(x)['{critic}_loss'] does not require grad: nothing trains the {critic}")
        d_loss.backward()
        optimizers[critic].step()
        curves["d_losses"].append(float(d_loss.detach()))
        if it % int(d_steps) == 0:
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            g_loss = _scalar_loss(learner.loss_generator(len(x)), "generator_loss", "loss_generator(n)", it)
            if g_loss.requires_grad:
                g_loss.backward()
                optimizers["generator"].step()
            curves["g_losses"].append(float(g_loss.detach()))
            if ema is not None and ema_decay is not None:
                with torch.no_grad():
                    for avg, p in zip(ema, params["generator"], strict=True):
                        avg.lerp_(p.detach(), 1.0 - ema_decay)
    if ema is not None:
        with torch.no_grad():
            for avg, p in zip(ema, params["generator"], strict=True):
                p.copy_(avg)
        if z_shape:
            _refresh_batch_norm(nets["generator"], z_shape[0], batch_size)
    hook.remove()
    model.eval()
    return curves


def _refresh_batch_norm(generator: torch.nn.Module, z_shape: torch.Size, batch_size: int, batches: int = 20) -> None:
    """Recompute the running statistics of the generator's batch norms for the averaged weights (their running
    means belong to the last raw weights, which the EMA replaced: a mismatch that cost SN-GAN samples up to 30%
    of their KID score), from `batches` forwards of z ~ N(0, I) shaped as the generator's last input."""
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    generator.train()
    with torch.no_grad():
        for _ in range(batches):
            generator(torch.randn(batch_size, *z_shape[1:]))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


class StubDiscriminator(torch.nn.Module):
    """A stub discriminator or critic: D(x) = p on rows equal to one of the host's real images, q on every
    other row, as (B, 1); its value is exactly p or q, and its gradient w.r.t. every input element is 1, so a
    loss on it reaches G."""

    def __init__(self, real: torch.Tensor, p: float, q: float) -> None:
        super().__init__()
        self.real, self.p, self.q = real.flatten(1), p, q
        self.calls: list[tuple[int, int]] = []  # (real rows, other rows) of every call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1)
        is_real = (torch.cdist(flat.detach().double(), self.real.double()) < 1e-6).any(dim=1)
        self.calls.append((int(is_real.sum()), int((~is_real).sum())))
        base = torch.where(is_real, self.p, self.q).to(flat.dtype)
        return (base + (flat - flat.detach()).sum(dim=1)).unsqueeze(1)  # value p or q, gradient 1


def stub_generator_loss(
    ctx: ProbeContext, model: Any, generator: torch.nn.Module, stub: StubDiscriminator, n: int, case: int
) -> None:
    """`model.loss_generator(n)` with `stub` in the discriminator's or critic's slot, then its backward. Saves
    `generator_loss_<case>`; records the stub's calls during it (`g_calls_<case>`), whether it requires grad and
    how many of the generator's trainable parameters its gradient reaches (`g_params[_reached]_<case>`)."""
    stub.calls.clear()
    model.zero_grad(set_to_none=True)
    out = model.loss_generator(n)
    loss = out.get("generator_loss") if isinstance(out, dict) else None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ProbeError("loss_generator(n) must return a dict with a scalar tensor 'generator_loss'")
    ctx.save(f"generator_loss_{case}", loss.detach().reshape(1).to(torch.float64))
    ctx.record(f"g_calls_{case}", str(stub.calls))
    ctx.record(f"g_requires_grad_{case}", bool(loss.requires_grad))
    if loss.requires_grad:
        loss.backward()
    params = [p for p in generator.parameters() if p.requires_grad]
    ctx.record(f"g_params_{case}", len(params))
    ctx.record(
        f"g_params_reached_{case}", sum(int(p.grad is not None and bool(p.grad.abs().sum() > 0)) for p in params)
    )


def sample_host_z(ctx: ProbeContext, model: torch.nn.Module, host_z: torch.Tensor) -> None:
    """`model.sample(len(host_z))` with its `model.generator` fed the host's z (a forward pre-hook swaps
    each call's latents for the next rows of `host_z`); saves `samples`, the student's own `z` and what
    the generator returned (`generated`)."""
    generator = part(model, "generator")
    seen: dict[str, list[torch.Tensor]] = {"z": [], "generated": []}
    rows = [0]

    def swap(module: torch.nn.Module, args: tuple) -> tuple:
        z = args[0] if args else None
        if not isinstance(z, torch.Tensor) or z.numel() != len(z) * host_z.shape[1]:
            raise ProbeError(f"model.generator must be called on z of shape (n, {host_z.shape[1]})")
        seen["z"].append(z.detach().reshape(len(z), -1).clone())
        start, rows[0] = rows[0], rows[0] + len(z)
        return (host_z[start : rows[0]].reshape(z.shape).to(z), *args[1:])

    def keep(module: torch.nn.Module, args: tuple, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            raise ProbeError(f"model.generator(z): expected a tensor, got {type(output).__name__}")
        seen["generated"].append(output.detach().clone())

    handles = [generator.register_forward_pre_hook(swap), generator.register_forward_hook(keep)]
    try:
        samples = model.sample(len(host_z))
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(samples, torch.Tensor):
        raise ProbeError(f"sample(n): expected a tensor, got {type(samples).__name__}")
    if rows[0] != len(host_z):
        raise ProbeError(f"sample(n) ran the generator on {rows[0]} latents for n = {len(host_z)}: one z per sample")
    ctx.save("samples", samples.detach().to(torch.float32))
    for key, parts in seen.items():
        ctx.save(key, torch.cat(parts))


def load_probes(path: Path = PROBES_PATH) -> dict[str, ProbeSpec]:
    """Register the probes of `path` (once per process) and return them by name."""
    if not PROBES:
        runpy.run_path(str(path), run_name="dgm_probes")
    return PROBES


def run_query(meta: dict[str, Any], data: dict[str, torch.Tensor], ns: dict[str, Any]) -> dict[str, Any]:
    """Answer one query: run its probe on `data` against the namespace `ns`; returns the reply."""
    name = str(meta["probe"])
    spec = load_probes()[name]
    torch.set_num_threads(int(meta.get("threads", 1)))
    ctx = ProbeContext(name, ns, meta, data)
    torch.manual_seed(ctx.seed)
    status, message = "ok", ""
    start = time.monotonic()
    try:
        spec.fn(ctx)
    except ProbeError as exc:
        status, message = "error", str(exc)
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        here = str(Path(__file__).parent)
        where = next((f"line {f.lineno} of {f.name}" for f in reversed(frames) if not f.filename.startswith(here)), "")
        status, message = "error", f"{type(exc).__name__}: {exc}" + (f" (in {where})" if where else "")
    return {
        "status": status,
        "message": message[:_MAX_MESSAGE],
        "duration_s": round(time.monotonic() - start, 3),
        "values": ctx.values,
        "tensors": ctx.tensors if status == "ok" else {},
    }


def answer(query: str) -> None:
    """The orchestrator's query cell calls this with the path of a query (`<path>.json` + `.safetensors`)."""
    from IPython import get_ipython
    from IPython.display import display

    meta = json.loads(Path(query + ".json").read_text())
    tensors_path = Path(query + ".safetensors")
    data = load_file(str(tensors_path)) if tensors_path.exists() else {}
    reply = run_query(meta, data, get_ipython().user_ns)
    tensors = reply.pop("tensors")
    reply["token"] = meta["token"]
    reply["tensors"] = base64.b64encode(save(tensors)).decode("ascii") if tensors else ""
    display({REPLY_MIME: reply}, raw=True)
