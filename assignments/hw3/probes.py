"""Homework 3 probes: call the student's RealNVP code (2-D and images) on the grader's inputs.

Runs inside the sandbox, in the student's kernel, after the notebook (see docs/internals.md). Probes
only produce data: log-determinants next to full Jacobians, reconstructions, log-densities on a grid,
test-set latents; `checks.py` on the host turns them into points. Nothing here knows the answers.

Inputs from the host (`data.safetensors`, made by `checks.make_inputs`):

- `moons_train`, `moons_test` (N, 2) float32; `moons_grid` (G, 2) float32, the integration grid;
  `points_2d` (B, 2) float64, oracle points for the invertibility / Jacobian probes;
- `train_images`, `test_images` uint8 (N, C, H, W) on `nbins` levels (value = level index);
  `test_u` float32 uniform noise shaped like `test_images` (the dequantization the host also uses);
  `layer_x` float64 (B, C, H, W) and `channel_x` float64 (B, 4C, H/2, W/2), oracle inputs of the
  coupling layers; `logit_x` float32 (1, 1, 2, 2) = (0, 1, 2, 3) / 256; `nbins` int64 (1,).

Parameters are perturbed before the invertibility and Jacobian probes: every coupling starts with
s = 0 (an identity-like map), on which a wrong sign or a wrong exponent is invisible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from harness import ProbeContext, ProbeError, probe, train
from torch.autograd.functional import jacobian

PERTURB_STD = 0.1  # noise added to every parameter so that s != 0
N_JACOBIAN = 3  # images whose full Jacobian is computed (D x D each)
N_DENSITY_CHUNK = 4096  # grid points per log_prob call
EVAL_CHUNK = 500  # test images per forward pass


# --------------------------------------------------------------------------- helpers


def _pair(out: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`(output, log_det)` from a layer or flow call, validated."""
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise ProbeError(f"{what} must return a pair (output, log_det), got {type(out).__name__}")
    y, log_det = out
    if not isinstance(y, torch.Tensor) or not isinstance(log_det, torch.Tensor):
        raise ProbeError(f"{what} must return two tensors, got ({type(y).__name__}, {type(log_det).__name__})")
    return y, log_det


def _per_example(log_det: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    """Sum a log-det map (B, ...) or take a per-example log-det (B,) -> (B,)."""
    if log_det.dim() == 0 or log_det.shape[0] != batch:
        raise ProbeError(f"{what}: log_det must have the batch size {batch} first, got {tuple(log_det.shape)}")
    return log_det.reshape(batch, -1).sum(dim=1)


def _hiddens(budget: dict[str, Any]) -> list[int]:
    return [int(budget["hidden"])] * int(budget["depth"])


@torch.no_grad()
def _perturb(module: torch.nn.Module, generator: torch.Generator) -> None:
    for p in module.parameters():
        p.add_(PERTURB_STD * torch.randn(p.shape, generator=generator, dtype=p.dtype))


def _module(obj: Any, what: str) -> torch.nn.Module:
    if not isinstance(obj, torch.nn.Module):
        raise ProbeError(f"{what} did not return an nn.Module")
    return obj


def _jacobians(fn: Callable[[torch.Tensor], torch.Tensor], xs: torch.Tensor) -> torch.Tensor:
    """(B, D, D) Jacobians of a per-example map, one example at a time (batch independence not assumed)."""
    out = []
    for x in xs:
        jac = jacobian(lambda v: fn(v.unsqueeze(0)).reshape(-1), x)  # (D_out, *x.shape)
        out.append(jac.reshape(jac.shape[0], -1))
    return torch.stack(out)


def _precise(module: torch.nn.Module, x: torch.Tensor, what: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The module and input in float64 when the student's code runs in it, else float32 (the host then
    compares with a float32 tolerance; it reads the precision from the saved tensors' dtype)."""
    try:
        module = module.double()
        with torch.no_grad():
            _pair(module(x[:1].double()), what)
        return module, x.double()
    except ProbeError:
        raise
    except Exception:
        return module.float(), x.float()


def _layer_probe(ctx: ProbeContext, layer: torch.nn.Module, x: torch.Tensor, prefix: str) -> None:
    """Perturb a layer, run it forward and back, and save its log-dets next to autograd's Jacobians."""
    _perturb(layer, ctx.generator(offset=len(prefix)))
    layer, x = _precise(layer, x, prefix)
    with torch.no_grad():
        y, log_det = _pair(layer(x), f"{prefix}.forward(x)")
        x_rec, _ = _pair(layer(y, invert=True), f"{prefix}.forward(y, invert=True)")
    ctx.save(f"{prefix}_x_rec", x_rec)
    ctx.save(f"{prefix}_log_det", _per_example(log_det, len(x), prefix))
    ctx.save(f"{prefix}_jacobian", _jacobians(lambda v: _pair(layer(v), prefix)[0], x))


# --------------------------------------------------------------------------- RealNVP on 2-D data


@probe("c2d_layers")
def c2d_layers(ctx: ProbeContext) -> None:
    """Both parities of AffineCouplingLayer: round trip and log-det vs Jacobian on oracle points."""
    cls = ctx.get("AffineCouplingLayer")
    x = ctx.data["points_2d"].to(torch.float64)
    for parity in (True, False):
        torch.manual_seed(ctx.seed)
        layer = _module(cls(parity, _hiddens(ctx.budget)), "AffineCouplingLayer(...)")
        _layer_probe(ctx, layer, x, f"layer_{str(parity).lower()}")


@probe("c2d_flow")
def c2d_flow(ctx: ProbeContext) -> None:
    """A perturbed RealNVP2D in float64: round trip, inverse log-det, log-det vs Jacobian."""
    cls = ctx.get("RealNVP2D")
    torch.manual_seed(ctx.seed)
    flow = _module(cls(int(ctx.budget["n_layers"]), _hiddens(ctx.budget)), "RealNVP2D(...)")
    _perturb(flow, ctx.generator())
    flow, x = _precise(flow, ctx.data["points_2d"], "RealNVP2D.forward(x)")
    with torch.no_grad():
        z, log_det = _pair(flow(x), "RealNVP2D.forward(x)")
        x_rec, log_det_inv = _pair(flow(z, invert=True), "RealNVP2D.forward(z, invert=True)")
    ctx.save("log_det", _per_example(log_det, len(x), "RealNVP2D.forward"))
    ctx.save("x_rec", x_rec)
    ctx.save("log_det_inv", _per_example(log_det_inv, len(x), "RealNVP2D.forward(invert=True)"))
    ctx.save("jacobian", _jacobians(lambda v: _pair(flow(v), "RealNVP2D.forward")[0], x))


@probe("c2d_train")
def c2d_train(ctx: ProbeContext) -> None:
    """Train RealNVP2D with the grader's loop; log_prob on the test set and on the host's grid; samples."""
    cls = ctx.get("RealNVP2D")
    b = ctx.budget
    torch.manual_seed(ctx.seed)
    flow = _module(cls(int(b["n_layers"]), _hiddens(b)), "RealNVP2D(...)")
    losses = train(
        flow,
        ctx.data["moons_train"],
        steps=int(b["steps"]),
        batch_size=int(b["batch_size"]),
        lr=float(b["lr"]),
        seed=ctx.seed,
    )
    ctx.save("losses", torch.tensor(losses))
    with torch.no_grad():
        ctx.save("test_log_prob", flow.log_prob(ctx.data["moons_test"]).reshape(-1))
        grid = ctx.data["moons_grid"]
        ctx.save("grid_log_prob", torch.cat([flow.log_prob(c).reshape(-1) for c in grid.split(N_DENSITY_CHUNK)]))
        torch.manual_seed(ctx.seed + 1)
        ctx.save("samples", flow.sample(int(b["n_samples"])))


# --------------------------------------------------------------------------- RealNVP on images


def _levels(ctx: ProbeContext, key: str) -> torch.Tensor:
    """uint8 level indices -> float images in [0, 1] on nbins levels, as the notebook's data."""
    nbins = int(ctx.data["nbins"][0])
    return ctx.data[key].to(torch.float32) / (nbins - 1)


@probe("img_logit")
def img_logit(ctx: ProbeContext) -> None:
    """LogitTransform(0.05) on x = (0, 1, 2, 3) / 256, and back."""
    logit = _module(ctx.get("LogitTransform")(0.05), "LogitTransform(0.05)")
    x = ctx.data["logit_x"]
    with torch.no_grad():
        z, log_det = _pair(logit(x), "LogitTransform.forward(x)")
        x_rec, _ = _pair(logit(z, invert=True), "LogitTransform.forward(z, invert=True)")
    ctx.save("z", z.reshape(-1))
    ctx.save("log_det", log_det.reshape(-1))
    ctx.save("x_rec", x_rec.reshape(-1))


@probe("img_layers")
def img_layers(ctx: ProbeContext) -> None:
    """Checkerboard and channel couplings: the log-scale at init, then round trips and Jacobians."""
    checker = ctx.get("AffineCheckerboardCouplingLayer")
    channel = ctx.get("AffineChannelCouplingLayer")
    b = ctx.budget
    x, xc = ctx.data["layer_x"].to(torch.float64), ctx.data["channel_x"].to(torch.float64)
    c, h, w = x.shape[1:]
    for parity in (True, False):
        name = str(parity).lower()
        torch.manual_seed(ctx.seed)
        layers = {
            f"checker_{name}": (
                _module(
                    checker(parity, (h, w), c, int(b["n_filters"]), int(b["n_blocks"])),
                    "AffineCheckerboardCouplingLayer(...)",
                ),
                x,
            ),
            f"channel_{name}": (
                _module(
                    channel(parity, 4 * c, int(b["n_filters"]), int(b["n_blocks"])), "AffineChannelCouplingLayer(...)"
                ),
                xc,
            ),
        }
        for prefix, (layer, inp) in layers.items():
            layer, inp = _precise(layer, inp, prefix)
            with torch.no_grad():
                _, log_s = _pair(layer(inp), f"{prefix}.forward(x)")
                y0, _ = _pair(layer(torch.zeros_like(inp)), f"{prefix}.forward(0)")
            ctx.save(f"{prefix}_init_log_det", log_s)
            ctx.save(f"{prefix}_zero_out", y0)
            _layer_probe(ctx, layer, inp, prefix)
            with torch.no_grad():
                ctx.save(f"{prefix}_y", _pair(layer(inp), prefix)[0])


def _build_flow(ctx: ProbeContext) -> torch.nn.Module:
    b = ctx.budget
    images = ctx.data["train_images"]
    torch.manual_seed(ctx.seed)
    return _module(
        ctx.get("RealNVP")(
            tuple(images.shape[-2:]),
            images.shape[1],
            int(b["n_filters"]),
            int(b["n_blocks"]),
            int(ctx.data["nbins"][0]),
        ),
        "RealNVP(...)",
    )


def _dequantized(ctx: ProbeContext) -> torch.Tensor:
    nbins = int(ctx.data["nbins"][0])
    return (ctx.data["test_images"].to(torch.float32) + ctx.data["test_u"]) / nbins


@probe("img_flow")
def img_flow(ctx: ProbeContext) -> None:
    """A whole RealNVP (ActNorm initialised on a batch, then perturbed) in float64: round trip on test
    images, inverse log-det, and log-det vs autograd's Jacobian (logit included) on a few of them."""
    flow = _build_flow(ctx)
    with torch.no_grad():
        flow.loss(_levels(ctx, "train_images")[:64])  # data-dependent ActNorm initialisation
    _perturb(flow, ctx.generator())
    flow, y = _precise(flow, _dequantized(ctx)[: 4 * N_JACOBIAN], "RealNVP.forward(y)")
    with torch.no_grad():
        z, log_det = _pair(flow(y), "RealNVP.forward(y)")
        y_rec, log_det_inv = _pair(flow(z, invert=True), "RealNVP.forward(z, invert=True)")
    ctx.save("log_det", _per_example(log_det, len(y), "RealNVP.forward"))
    ctx.save("y_rec", y_rec)
    ctx.save("log_det_inv", _per_example(log_det_inv, len(y), "RealNVP.forward(invert=True)"))
    ctx.save("jacobian", _jacobians(lambda v: _pair(flow(v), "RealNVP.forward")[0], y[:N_JACOBIAN]))


@probe("img_train")
def img_train(ctx: ProbeContext) -> None:
    """Train RealNVP with the grader's loop; latents, log-dets and log_prob on dequantized test images."""
    flow = _build_flow(ctx)
    b = ctx.budget
    losses = train(
        flow,
        _levels(ctx, "train_images"),
        steps=int(b["steps"]),
        batch_size=int(b["batch_size"]),
        lr=float(b["lr"]),
        seed=ctx.seed,
    )
    ctx.save("losses", torch.tensor(losses))
    x, u, y = _levels(ctx, "test_images"), ctx.data["test_u"], _dequantized(ctx)
    zs, log_dets, log_probs = [], [], []
    with torch.no_grad():
        for start in range(0, len(x), EVAL_CHUNK):
            chunk = slice(start, start + EVAL_CHUNK)
            z, log_det = _pair(flow(y[chunk]), "RealNVP.forward(y)")
            zs.append(z)
            log_dets.append(_per_example(log_det, len(z), "RealNVP.forward"))
            log_probs.append(flow.log_prob(x[chunk], u[chunk]).reshape(-1))
    ctx.save("z", torch.cat(zs))
    ctx.save("log_det", torch.cat(log_dets))
    ctx.save("log_prob", torch.cat(log_probs))
    with torch.no_grad():
        torch.manual_seed(ctx.seed + 1)
        ctx.save("samples", flow.sample(int(b["n_samples"])))
