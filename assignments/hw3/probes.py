"""Homework 3 probes: call the student's RealNVP code (2-D and images) on the host's inputs.

Runs inside the student's kernel, one query at a time (see docs/internals.md). Probes only answer:
they call the student's objects on the arrays the host sent and return the raw outputs (latents,
log-dets, reconstructions, log_prob values, samples). The host computes every verdict from them: it
builds the Jacobians itself from finite differences of the answered latents, so nothing here computes
a Jacobian, a density or a score.

Inputs (made by `checks.make_inputs`; each probe receives only what its `needs` names):

- FD batches, float64, shuffled by the host: base points together with their partners x +- h e_d.
  `c2d_points` (N, 2) for the 2-D layers and the perturbed flow; `c2d_eval` (N, 2) for the trained
  2-D flow (test points mixed with integration points); `checker_x` (N, C, 4, 4) and `channel_x`
  (N, 4C, 2, 2) for the image couplings; `img_flow_y` (dequantized test images) and `img_flow_z`
  (latents) for the perturbed RealNVP; `img_eval` for the trained RealNVP (every dequantized test
  image, a few of them with partners).
- `moons_train` (N, 2) float32; `train_images` / `img_init` / `test_images` uint8 level indices
  (N, C, H, W); `test_u` float64, the dequantization noise of `img_eval`'s test images;
  `logit_x` float32 (1, 1, 2, 2); `nbins` int64 (1,).

Replies. Layers and perturbed flows (`c2d_layers/layer_<parity>_*`, `c2d_flow/*`,
`img_layers/<checker|channel>_<parity>_*`, `img_flow/*`): `out` and `log_det` (per example) forward on
the FD batch, `rec` the inverse of `out` (round trip), `inv` and `log_det_inv` the inverse on the
batch (images: on the latent batch `img_flow_z`); image couplings also `init_log_det` (the log-det map
before perturbation) and `zero_out` (output on zeros). Trained flows (`c2d_train/*`, `img_train/*`):
`losses`, `z` and `log_det` on the evaluation batch, `log_prob`, `samples`.

Parameters are perturbed in the kernel before the invertibility and log-det queries (every coupling
starts with s = 0, on which a wrong sign or exponent is invisible); that is the model's state, and the
host's checks do not depend on how large the perturbation is.
"""

from __future__ import annotations

from typing import Any

import torch
from harness import ProbeContext, ProbeError, probe

PERTURB_STD = 0.1  # noise added to every parameter so that s != 0
EVAL_CHUNK = 512  # points or images per forward pass


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


def _precise(module: torch.nn.Module, x: torch.Tensor, what: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The module and input in float64 when the student's code runs in it, else float32 (the host reads
    the precision from the answers' dtype and widens its finite-difference tolerance)."""
    try:
        module = module.double()
        with torch.no_grad():
            _pair(module(x[:1].double()), what)
        return module, x.double()
    except ProbeError:
        raise
    except Exception:
        return module.float(), x.float()


@torch.no_grad()
def _apply(fn: Any, x: torch.Tensor, what: str, invert: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`fn(x, invert)` in chunks: outputs (N, ...) and per-example log-dets (N,)."""
    outs, log_dets = [], []
    for chunk in x.split(EVAL_CHUNK):
        y, log_det = _pair(fn(chunk, invert=invert), what)
        outs.append(y)
        log_dets.append(_per_example(log_det, len(chunk), what))
    return torch.cat(outs), torch.cat(log_dets)


def _answer(
    ctx: ProbeContext, module: torch.nn.Module, x: torch.Tensor, latents: torch.Tensor, prefix: str, what: str
) -> None:
    """Forward on the host's batch `x`, the inverse of that output (round trip), the inverse on `latents`."""
    out, log_det = _apply(module, x, f"{what}.forward(x)")
    rec, _ = _apply(module, out, f"{what}.forward(y, invert=True)", invert=True)
    inv, log_det_inv = _apply(module, latents.to(x.dtype), f"{what}.forward(z, invert=True)", invert=True)
    replies = {"out": out, "log_det": log_det, "rec": rec, "inv": inv, "log_det_inv": log_det_inv}
    for key, value in replies.items():
        ctx.save(f"{prefix}{key}", value)


# --------------------------------------------------------------------------- RealNVP on 2-D data


@probe("c2d_layers", needs=("c2d_points",))
def c2d_layers(ctx: ProbeContext) -> None:
    """Both parities of a perturbed AffineCouplingLayer on the host's FD batch."""
    cls = ctx.get("AffineCouplingLayer")
    for parity in (True, False):
        name = f"layer_{str(parity).lower()}"
        torch.manual_seed(ctx.seed)
        layer = _module(cls(parity, _hiddens(ctx.budget)), "AffineCouplingLayer(...)")
        _perturb(layer, ctx.generator(offset=len(name)))
        layer, x = _precise(layer, ctx.data["c2d_points"], f"AffineCouplingLayer({parity})")
        _answer(ctx, layer, x, x, f"{name}_", f"AffineCouplingLayer({parity})")


@probe("c2d_flow", needs=("c2d_points",))
def c2d_flow(ctx: ProbeContext) -> None:
    """A perturbed RealNVP2D on the host's FD batch."""
    cls = ctx.get("RealNVP2D")
    torch.manual_seed(ctx.seed)
    flow = _module(cls(int(ctx.budget["n_layers"]), _hiddens(ctx.budget)), "RealNVP2D(...)")
    _perturb(flow, ctx.generator())
    flow, x = _precise(flow, ctx.data["c2d_points"], "RealNVP2D")
    _answer(ctx, flow, x, x, "", "RealNVP2D")


@probe("c2d_train", needs=("moons_train", "c2d_eval"))
def c2d_train(ctx: ProbeContext) -> None:
    """Train RealNVP2D with the grader's loop; then latents, log-dets and log_prob on the host's batch
    (test and integration points with their FD partners), and samples."""
    cls = ctx.get("RealNVP2D")
    b = ctx.budget
    torch.manual_seed(ctx.seed)
    flow = _module(cls(int(b["n_layers"]), _hiddens(b)), "RealNVP2D(...)")
    ctx.train(flow, ctx.data["moons_train"])
    flow, x = _precise(flow, ctx.data["c2d_eval"], "RealNVP2D")
    z, log_det = _apply(flow, x, "RealNVP2D.forward(x)")
    ctx.save("z", z)
    ctx.save("log_det", log_det)
    with torch.no_grad():
        ctx.save("log_prob", torch.cat([flow.log_prob(c).reshape(-1) for c in x.split(EVAL_CHUNK)]))
        torch.manual_seed(ctx.seed + 1)
        ctx.save("samples", flow.sample(int(b["n_samples"])))


# --------------------------------------------------------------------------- RealNVP on images


def _levels(ctx: ProbeContext, key: str) -> torch.Tensor:
    """uint8 level indices -> float images in [0, 1] on nbins levels, as the notebook's data."""
    nbins = int(ctx.data["nbins"][0])
    return ctx.data[key].to(torch.float32) / (nbins - 1)


@probe("img_logit", needs=("logit_x",))
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


@probe("img_layers", needs=("checker_x", "channel_x"))
def img_layers(ctx: ProbeContext) -> None:
    """Checkerboard and channel couplings: the log-scale at init, then (perturbed) the FD batch answers."""
    checker = ctx.get("AffineCheckerboardCouplingLayer")
    channel = ctx.get("AffineChannelCouplingLayer")
    b = ctx.budget
    x, xc = ctx.data["checker_x"], ctx.data["channel_x"]
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
                f"AffineCheckerboardCouplingLayer({parity})",
            ),
            f"channel_{name}": (
                _module(
                    channel(parity, 4 * c, int(b["n_filters"]), int(b["n_blocks"])), "AffineChannelCouplingLayer(...)"
                ),
                xc,
                f"AffineChannelCouplingLayer({parity})",
            ),
        }
        for prefix, (layer, inp, what) in layers.items():
            layer, inp = _precise(layer, inp, what)
            with torch.no_grad():
                _, log_s = _pair(layer(inp), f"{what}.forward(x)")
                y0, _ = _pair(layer(torch.zeros_like(inp)), f"{what}.forward(0)")
            ctx.save(f"{prefix}_init_log_det", log_s)
            ctx.save(f"{prefix}_zero_out", y0)
            _perturb(layer, ctx.generator(offset=len(prefix)))
            _answer(ctx, layer, inp, inp, f"{prefix}_", what)


def _build_flow(ctx: ProbeContext, shape: tuple[int, ...]) -> torch.nn.Module:
    b = ctx.budget
    torch.manual_seed(ctx.seed)
    return _module(
        ctx.get("RealNVP")(shape[-2:], shape[0], int(b["n_filters"]), int(b["n_blocks"]), int(ctx.data["nbins"][0])),
        "RealNVP(...)",
    )


@probe("img_flow", needs=("img_init", "img_flow_y", "img_flow_z", "nbins"))
def img_flow(ctx: ProbeContext) -> None:
    """A whole RealNVP (ActNorm initialised on a batch, then perturbed): forward and round trip on the
    dequantized-image FD batch, inverse on the latent FD batch."""
    flow = _build_flow(ctx, tuple(ctx.data["img_init"].shape[1:]))
    with torch.no_grad():
        flow.loss(_levels(ctx, "img_init"))  # data-dependent ActNorm initialisation
    _perturb(flow, ctx.generator())
    flow, y = _precise(flow, ctx.data["img_flow_y"], "RealNVP")
    _answer(ctx, flow, y, ctx.data["img_flow_z"], "", "RealNVP")


@probe("img_train", needs=("train_images", "img_eval", "test_images", "test_u", "nbins"))
def img_train(ctx: ProbeContext) -> None:
    """Train RealNVP with the grader's loop; latents and log-dets on the host's batch of dequantized test
    images (some with FD partners), log_prob(x, u) on the test images, and samples."""
    flow = _build_flow(ctx, tuple(ctx.data["train_images"].shape[1:]))
    ctx.train(flow, _levels(ctx, "train_images"))
    flow, y = _precise(flow, ctx.data["img_eval"], "RealNVP")
    z, log_det = _apply(flow, y, "RealNVP.forward(y)")
    ctx.save("z", z)
    ctx.save("log_det", log_det)
    x, u = _levels(ctx, "test_images").to(y.dtype), ctx.data["test_u"].to(y.dtype)
    with torch.no_grad():
        log_prob = [
            flow.log_prob(xc, uc).reshape(-1) for xc, uc in zip(x.split(EVAL_CHUNK), u.split(EVAL_CHUNK), strict=True)
        ]
        ctx.save("log_prob", torch.cat(log_prob))
        torch.manual_seed(ctx.seed + 1)
        ctx.save("samples", flow.sample(int(ctx.budget["n_samples"])))
