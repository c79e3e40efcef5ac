"""Homework 6 probes: score matching and DDPM, called with spy networks and trained in the grader's loop.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes
only produce data; `checks.py` computes every verdict and metric on the host.

Spies. The student writes the algorithms around a network (`score_model`, `model`); the `*_spy` probes
put a `_Spy` in that slot: an affine function the host chose (weights in the query) that records every
input it is called with. From those records the host recovers the noise the student drew, the time steps
and levels, and each update step, and recomputes every loss and sample from them.

Training. `*_train` probes build the student's class around the template's network (`ScoreMLP`,
`ConditionalMLP`), train it with the grader's loop under the budget, then answer the metric's queries:
the trained score at host points (DSM), samples (NCSN, DDPM on moons), or the trained ε-network at
host-made (x_t, t) (DDPM on digits).
"""

from __future__ import annotations

from typing import Any

import torch
from harness import ProbeContext, ProbeError, probe
from torch import Tensor


class _Spy(torch.nn.Module):
    """f(x[, i]) = x A^T + b (+ c_i), per row of flattened x; records its inputs (and i) call by call."""

    def __init__(self, weight: Tensor, bias: Tensor, per_index: Tensor | None = None) -> None:
        super().__init__()
        self.weight, self.bias, self.per_index = weight.float(), bias.float(), per_index
        self.inputs: list[Tensor] = []
        self.indices: list[Tensor] = []

    def forward(self, x: Tensor, index: Any = None) -> Tensor:
        if not isinstance(x, Tensor):
            raise ProbeError(f"the network was called with {type(x).__name__}, expected a tensor")
        self.inputs.append(x.detach().clone())
        out = x.flatten(1) @ self.weight.T + self.bias
        if index is not None:
            index = torch.as_tensor(index)
            self.indices.append(index.detach().clone().reshape(-1).expand(len(x)).clone())
            if self.per_index is not None:
                out = out + self.per_index[index.long().reshape(-1).clamp(0, len(self.per_index) - 1)]
        return out.view(x.shape)

    def save(self, ctx: ProbeContext, prefix: str = "spy") -> None:
        """The recorded calls: `<prefix>_inputs` (calls, B, ...) and `<prefix>_indices` (calls, B), if any."""
        if not self.inputs:
            raise ProbeError("the network was never called")
        if len({x.shape for x in self.inputs}) != 1:
            raise ProbeError("the network was called on batches of different shapes")
        ctx.save(f"{prefix}_inputs", torch.stack(self.inputs))
        if self.indices:
            if len(self.indices) != len(self.inputs):
                raise ProbeError("the network was called with and without a level or time index")
            ctx.save(f"{prefix}_indices", torch.stack(self.indices).to(torch.float64))


def _spy(ctx: ProbeContext, per_index: bool = False, kind: str = "spy") -> _Spy:
    """The spy of the query's weights: `spy_*` (a contracting score), `drift_*` (a score that stays large, so
    that Langevin steps show their drift) or `noise_*` (an ε-predictor near x, so that DDPM sampling stays finite)."""
    d = ctx.data
    return _Spy(d[f"{kind}_weight"], d[f"{kind}_bias"], d[f"{kind}_per_index"] if per_index else None)


def _tensor(value: Any, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise ProbeError(f"{what} must return a tensor, got {type(value).__name__}")
    return value.detach()


def _scalar_loss(out: Any) -> Tensor:
    if not isinstance(out, dict) or not isinstance(out.get("total_loss"), Tensor) or out["total_loss"].numel() != 1:
        raise ProbeError("loss(x) must return a dict with a scalar tensor under 'total_loss'")
    return out["total_loss"]


def _input_shape(ctx: ProbeContext, key: str) -> tuple[int, ...]:
    return tuple(int(v) for v in ctx.data[key].tolist())


# ---------------------------------------------------------------- score matching


@probe("dsm_spy", needs=("sm_x", "spy_weight", "spy_bias", "dsm_sigma"))
def dsm_spy(ctx: ProbeContext) -> None:
    """forward(x) and loss(x) of `DenoisingScoreMatcher(spy, (2,), sigma)`: each call's noised inputs."""
    x, sigma = ctx.data["sm_x"], float(ctx.data["dsm_sigma"])
    for name, call in (("forward", lambda m: m(x)), ("loss", lambda m: _scalar_loss(m.loss(x)))):
        spy = _spy(ctx)
        out = _tensor(call(ctx.get("DenoisingScoreMatcher")(spy, (2,), sigma)), f"DenoisingScoreMatcher.{name}")
        ctx.save(name, out)
        spy.save(ctx, f"{name}_spy")


@probe("langevin_spy", needs=("sm_x", "drift_weight", "drift_bias", "langevin_steps", "langevin_eta"))
def langevin_spy(ctx: ProbeContext) -> None:
    """`langevin_dynamics(x, num_steps, eta)` with the spy as the score: every step's input, and the end."""
    spy = _spy(ctx, kind="drift")
    dsm = ctx.get("DenoisingScoreMatcher")(spy, (2,), 0.1)
    steps, eta = int(ctx.data["langevin_steps"]), float(ctx.data["langevin_eta"])
    ctx.save("final", _tensor(dsm.langevin_dynamics(ctx.data["sm_x"].clone(), steps, eta), "langevin_dynamics"))
    spy.save(ctx)


@probe("ncsn_spy", needs=("sm_x", "spy_weight", "spy_bias", "spy_per_index", "ncsn_spy_sigmas"))
def ncsn_spy(ctx: ProbeContext) -> None:
    """forward(x) and loss(x) of `NoiseConditionedScoreNetwork(spy, (2,), sigmas)`: inputs and levels."""
    x, sigmas = ctx.data["sm_x"], ctx.data["ncsn_spy_sigmas"]
    for name, call in (("forward", lambda m: m(x)), ("loss", lambda m: _scalar_loss(m.loss(x)))):
        spy = _spy(ctx, per_index=True)
        model = ctx.get("NoiseConditionedScoreNetwork")(spy, (2,), sigmas.clone())
        ctx.save(name, _tensor(call(model), f"NoiseConditionedScoreNetwork.{name}"))
        spy.save(ctx, f"{name}_spy")


@probe(
    "annealed_spy", needs=("sm_x", "drift_weight", "drift_bias", "ncsn_spy_sigmas", "annealed_steps", "annealed_eps")
)
def annealed_spy(ctx: ProbeContext) -> None:
    """`annealed_langevin_dynamics(x, num_steps, eps)` with the spy: every step's input and level, and the end."""
    spy = _spy(ctx, kind="drift")
    model = ctx.get("NoiseConditionedScoreNetwork")(spy, (2,), ctx.data["ncsn_spy_sigmas"].clone())
    steps, eps = int(ctx.data["annealed_steps"]), float(ctx.data["annealed_eps"])
    final = model.annealed_langevin_dynamics(ctx.data["sm_x"].clone(), steps, eps)
    ctx.save("final", _tensor(final, "annealed_langevin_dynamics"))
    spy.save(ctx)


@probe("dsm_train", needs=("moons_train", "dsm_points"))
def dsm_train(ctx: ProbeContext) -> None:
    """DSM around the template's ScoreMLP, trained; then its score at the host's noised test points."""
    b = ctx.budget
    torch.manual_seed(ctx.seed)
    net = ctx.get("ScoreMLP")((2,), hidden=int(b["hidden"]))
    model = ctx.get("DenoisingScoreMatcher")(net, (2,), float(b["sigma"]))
    ctx.train(model, ctx.data["moons_train"])
    with torch.no_grad():
        ctx.save("scores", _tensor(net(ctx.data["dsm_points"]), "ScoreMLP"))


@probe("ncsn_train", needs=("moons_train",))
def ncsn_train(ctx: ProbeContext) -> None:
    """NCSN around the template's ScoreMLP on geometric levels, trained; then `sample(n, num_steps, eps)`."""
    b = ctx.budget
    sigmas = torch.logspace(
        torch.log10(torch.tensor(float(b["sigma_max"]))),
        torch.log10(torch.tensor(float(b["sigma_min"]))),
        int(b["levels"]),
    )
    torch.manual_seed(ctx.seed)
    net = ctx.get("ScoreMLP")((2,), hidden=int(b["hidden"]), num_levels=int(b["levels"]))
    model = ctx.get("NoiseConditionedScoreNetwork")(net, (2,), sigmas)
    ctx.train(model, ctx.data["moons_train"])
    with torch.no_grad():
        samples = model.sample(int(b["samples"]), int(b["sample_steps"]), float(b["sample_eps"]))
    ctx.save("samples", _tensor(samples, "sample").to(torch.float32))


# ---------------------------------------------------------------- DDPM


@probe("ddpm_schedules", needs=("schedule_lengths",))
def ddpm_schedules(ctx: ProbeContext) -> None:
    make_betas = ctx.get("make_betas")
    for length in ctx.data["schedule_lengths"].tolist():
        for schedule in ("cosine", "linear"):
            betas = _tensor(make_betas(int(length), schedule), f"make_betas({length}, {schedule!r})")
            ctx.save(f"{schedule}_{int(length)}", betas.to(torch.float64))


@probe("ddpm_coefficients", needs=("coef_betas_cosine", "coef_betas_linear", "coef_x", "coef_eps", "coef_t"))
def ddpm_coefficients(ctx: ProbeContext) -> None:
    """Forward and reverse diffusion on the host's betas, x, eps and a vector t (one step per row)."""
    d = ctx.data
    x, eps, t = d["coef_x"], d["coef_eps"], d["coef_t"]
    ones, five = torch.ones(1, 1), torch.tensor([5])
    for schedule in ("cosine", "linear"):
        betas = d[f"coef_betas_{schedule}"].clone()
        forward, reverse = ctx.get("ForwardDiffusion")(betas), ctx.get("ReverseDiffusion")(betas)
        calls = [
            ("q_mean_var", forward.get_mean_variance, (x, t)),
            ("q_sample", forward.get_samples, (x, t, eps)),
            ("x0", reverse.get_x0, (x, eps, t)),
            ("p_mean_var", reverse.get_mean_variance, (x, eps, t)),
            ("course_q", forward.get_mean_variance, (ones, five)),
            ("course_sample", forward.get_samples, (ones, five, ones)),
            ("course_x0", reverse.get_x0, (ones, ones, five)),
            ("course_p", reverse.get_mean_variance, (ones, ones, five)),
        ]
        for name, method, args in calls:
            try:
                out = method(*args)
                parts = out if isinstance(out, tuple | list) else (out,)
                for k, part in enumerate(parts):
                    ctx.save(f"{schedule}_{name}_{k}", _tensor(part, name).to(torch.float64))
            except ProbeError:
                raise
            except Exception as exc:  # one failing method must not hide the others
                ctx.record(f"{schedule}_{name}_error", f"{type(exc).__name__}: {exc}"[:300])


@probe("ddpm_reverse", needs=("coef_betas_cosine", "reverse_x", "reverse_eps", "reverse_t"))
def ddpm_reverse(ctx: ProbeContext) -> None:
    """`ReverseDiffusion.get_samples(x_t, eps, t)` over many rows (its own noise)."""
    d = ctx.data
    reverse = ctx.get("ReverseDiffusion")(d["coef_betas_cosine"].clone())
    ctx.save("samples", _tensor(reverse.get_samples(d["reverse_x"], d["reverse_eps"], d["reverse_t"]), "get_samples"))


def _ddpm(
    ctx: ProbeContext, net: torch.nn.Module, shape: tuple[int, ...], length: int, schedule: str = "cosine"
) -> Any:
    return ctx.get("DDPM")(length, net, shape, schedule)


@probe("ddpm_loss_spy", needs=("ddpm_x", "noise_weight", "noise_bias", "noise_per_index", "spy_length"))
def ddpm_loss_spy(ctx: ProbeContext) -> None:
    """`DDPM(T, spy, (2,), "cosine").loss(x0)`: the x_t and t the spy saw, and the loss."""
    spy = _spy(ctx, per_index=True, kind="noise")
    loss = _scalar_loss(_ddpm(ctx, spy, (2,), int(ctx.data["spy_length"])).loss(ctx.data["ddpm_x"]))
    ctx.save("loss", loss.detach().reshape(1).to(torch.float64))
    spy.save(ctx)


@probe("ddpm_sample_spy", needs=("noise_weight", "noise_bias", "noise_per_index", "spy_length", "spy_samples"))
def ddpm_sample_spy(ctx: ProbeContext) -> None:
    """`DDPM(T, spy, (2,), "cosine").sample(n)`: every step's x_t and t, and the samples."""
    spy = _spy(ctx, per_index=True, kind="noise")
    with torch.no_grad():
        samples = _ddpm(ctx, spy, (2,), int(ctx.data["spy_length"])).sample(int(ctx.data["spy_samples"]))
    ctx.save("samples", _tensor(samples, "DDPM.sample").to(torch.float64))
    spy.save(ctx)


@probe("ddpm_moons_train", needs=("moons_train",))
def ddpm_moons_train(ctx: ProbeContext) -> None:
    b = ctx.budget
    torch.manual_seed(ctx.seed)
    net = ctx.get("ConditionalMLP")((2,), int(b["timesteps"]), hidden=int(b["hidden"]))
    model = _ddpm(ctx, net, (2,), int(b["timesteps"]))
    ctx.train(model, ctx.data["moons_train"])
    with torch.no_grad():
        ctx.save("samples", _tensor(model.sample(int(b["samples"])), "DDPM.sample").to(torch.float32))


@probe("ddpm_digits_train", needs=("digits_train", "digits_xt", "digits_t", "image_shape"))
def ddpm_digits_train(ctx: ProbeContext) -> None:
    """DDPM on digits in [-1, 1], trained; then the trained network's ε-prediction at the host's (x_t, t), and
    samples (for the report's picture and a secondary KID)."""
    b, shape = ctx.budget, _input_shape(ctx, "image_shape")
    torch.manual_seed(ctx.seed)
    net = ctx.get("ConditionalMLP")(shape, int(b["timesteps"]), hidden=int(b["hidden"]))
    model = _ddpm(ctx, net, shape, int(b["timesteps"]), str(b["schedule"]))
    ctx.train(model, ctx.data["digits_train"])
    with torch.no_grad():
        ctx.save("eps_hat", _tensor(net(ctx.data["digits_xt"], ctx.data["digits_t"]), "ConditionalMLP"))
        ctx.save("samples", _tensor(model.sample(int(b["samples"])), "DDPM.sample").to(torch.float32))
