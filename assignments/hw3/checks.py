"""Homework 3 checks: turn the probes' raw outputs into item results, on the host.

Every log-determinant a student's flow reports is compared with ``slogdet`` of the full Jacobian that
autograd computed in the sandbox on the same (float64) input; invertibility is a round trip; the 2-D
density must integrate to one over a grid the host chose; the image NLL is computed here from the
latents and log-dets on dequantized test images the host made (``grader.metrics.nll``), so the bin
width and the logit Jacobian are counted exactly once whatever the student's ``log_prob`` does — and
that ``log_prob`` is then checked against the same numbers. Probe keys are documented in `probes.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from grader.checks import CheckContext, CheckResult, check, inputs
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.metrics.nll import bits_per_dim, dequantized_nll

# profile -> (image dataset, nbins, test images used). ci: binarized 8x8 digits with nbins = 2, as the
# course trains RealNVP on binarized MNIST; it trains to well below the uniform 1 bit/dim in seconds.
IMAGES = {"ci": ("digits", 2, None), "full": ("mnist", 2, 2000)}
N_POINTS_2D = 16
GRID = ((-4.0, 5.0), (-4.0, 4.5), 0.05)  # x range, y range, spacing of the 2-D integration grid
LOGIT_ALPHA = 0.05
# COURSE.md §2.3: LogitTransform(0.05) on x = (0, 1, 2, 3) / 256
LOGIT_Z = np.array([-2.944439, -2.8727808, -2.8054335, -2.7418802])
LOGIT_LOG_DET = np.array([2.9416652, 2.8774219, 2.8175175, 2.7614343])

# float64 round trips and log-dets (vs slogdet of the autograd Jacobian); float32 when the student's
# module would not run in float64. A wrong inverse or log-det is off by O(0.1).
ROUND_TRIP_ATOL = {np.dtype("float64"): 1e-6, np.dtype("float32"): 1e-4}
LOG_DET_ATOL = {np.dtype("float64"): 1e-6, np.dtype("float32"): 1e-3}
MASS_TOLERANCE = 0.05  # |integral of exp(log_prob) - 1| over the grid
NEAR_DATA = 0.25  # a 2-D sample counts as on the data within this distance of a test point
MIN_NEAR_FRACTION = 0.7
LOG_PROB_ATOL_PER_DIM = 1e-4  # student's log_prob vs the host's, float32 sums over D dims


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    name, nbins, n_test = IMAGES[profile]
    train = load_dataset(name, "train", binarize=nbins == 2)[0]
    test = load_dataset(name, "test", binarize=nbins == 2)[0][:n_test]
    c = test.shape[1]
    (x0, x1), (y0, y1), step = GRID
    gx, gy = np.meshgrid(np.arange(x0, x1, step), np.arange(y0, y1, step), indexing="ij")
    moons_train, moons_test = load_dataset("moons", "train")[0], load_dataset("moons", "test")[0]
    # oracle points spread over the data's range, where a trained flow is used
    points = rng.normal(size=(N_POINTS_2D, 2)) * [1.0, 0.6] + [0.5, 0.25]
    return {
        "moons_train": moons_train,
        "moons_test": moons_test,
        "moons_grid": np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32),
        "points_2d": points,
        "train_images": np.rint(train * (nbins - 1)).astype(np.uint8),
        "test_images": np.rint(test * (nbins - 1)).astype(np.uint8),
        "test_u": rng.uniform(size=test.shape).astype(np.float32),
        "layer_x": rng.normal(size=(2, c, 4, 4)),
        "channel_x": rng.normal(size=(2, 4 * c, 2, 2)),
        "logit_x": (np.arange(4, dtype=np.float32) / 256).reshape(1, 1, 2, 2),
        "nbins": np.array([nbins], dtype=np.int64),
    }


# --------------------------------------------------------------------------- shared checks


def _round_trip(ctx: CheckContext, key: str, target: np.ndarray, what: str) -> str | None:
    """None when the reconstruction matches, else a message for the student."""
    got = ctx.tensor(key, shape=target.shape)
    err = float(np.abs(got - target).max())
    atol = ROUND_TRIP_ATOL.get(got.dtype, ROUND_TRIP_ATOL[np.dtype("float32")])
    return None if err <= atol * (1 + np.abs(target).max()) else f"{what}: max |x - f^-1(f(x))| = {err:.3g}"


def _log_det_vs_jacobian(ctx: CheckContext, prefix: str, what: str, n: int | None = None) -> str | None:
    """Compare `<prefix>log_det` with slogdet of `<prefix>jacobian`; None when they agree."""
    jac = ctx.tensor(f"{prefix}jacobian", shape=(None, None, None))
    if jac.shape[1] != jac.shape[2]:
        return f"{what}: the output does not have the input's size (Jacobian {jac.shape[1]}x{jac.shape[2]})"
    log_det = ctx.tensor(f"{prefix}log_det", shape=(None,))[: n or len(jac)]
    if len(log_det) != len(jac):
        return f"{what}: {len(log_det)} log-dets for {len(jac)} inputs"
    sign, true = np.linalg.slogdet(jac.astype(np.float64))
    if (sign == 0).any():
        return f"{what}: the Jacobian is singular, the map is not invertible"
    diff = np.abs(log_det - true)
    bad = diff > LOG_DET_ATOL.get(jac.dtype, LOG_DET_ATOL[np.dtype("float32")]) * (1 + np.abs(true))
    if not bad.any():
        return None
    return (
        f"{what}: log-det differs from autograd's log|det J| by up to {diff.max():.3g} on {int(bad.sum())} of "
        f"{len(bad)} inputs" + ("; it has the opposite sign" if np.allclose(log_det, -true, atol=1e-6) else "")
    )


def _score(problems: list[str | None], total: int, ok: str) -> CheckResult:
    """The fraction of `total` sub-checks without a problem (at least 0), and the problems as the message."""
    failed = [p for p in problems if p]
    if not failed:
        return CheckResult(fraction=1.0, message=ok)
    # one failed probe fails several sub-checks with the same message: say it once
    return CheckResult(fraction=max(0.0, (total - len(failed)) / total), message="; ".join(dict.fromkeys(failed)))


def _safe(fn: Callable[..., str | None], *args: object) -> str | None:
    """Run one sub-check; a missing or malformed output is that sub-check's failure, not the item's."""
    try:
        return fn(*args)
    except ArtifactError as exc:
        return str(exc)


# --------------------------------------------------------------------------- RealNVP on 2-D data


@check("c2d_invert")
def c2d_invert(ctx: CheckContext) -> CheckResult:
    x = ctx.inputs["points_2d"]
    problems = [
        _safe(_round_trip, ctx, "c2d_layers/layer_true_x_rec", x, "AffineCouplingLayer(True)"),
        _safe(_round_trip, ctx, "c2d_layers/layer_false_x_rec", x, "AffineCouplingLayer(False)"),
        _safe(_round_trip, ctx, "c2d_flow/x_rec", x, "RealNVP2D"),
        _safe(_inverse_log_det, ctx, "c2d_flow/", "RealNVP2D"),
    ]
    return _score(problems, 4, f"forward then inverse gives back all {len(x)} points, in both layers and the flow")


def _inverse_log_det(ctx: CheckContext, prefix: str, what: str) -> str | None:
    fwd = ctx.tensor(f"{prefix}log_det", shape=(None,))
    inv = ctx.tensor(f"{prefix}log_det_inv", shape=fwd.shape)
    err = float(np.abs(fwd + inv).max())
    if err <= LOG_DET_ATOL.get(fwd.dtype, LOG_DET_ATOL[np.dtype("float32")]) * (1 + np.abs(fwd).max()):
        return None
    return f"{what}: the inverse's log-det is not minus the forward one (off by up to {err:.3g})"


@check("c2d_logdet")
def c2d_logdet(ctx: CheckContext) -> CheckResult:
    problems = [
        _safe(_log_det_vs_jacobian, ctx, "c2d_layers/layer_true_", "AffineCouplingLayer(True)"),
        _safe(_log_det_vs_jacobian, ctx, "c2d_layers/layer_false_", "AffineCouplingLayer(False)"),
        _safe(_log_det_vs_jacobian, ctx, "c2d_flow/", "RealNVP2D"),
    ]
    return _score(problems, 3, "log-dets equal autograd's log|det J| for both layers and the flow")


@check("c2d_density")
def c2d_density(ctx: CheckContext) -> CheckResult:
    grid = ctx.inputs["moons_grid"]
    log_p = ctx.tensor("c2d_train/grid_log_prob", shape=(len(grid),), finite=False)
    if np.isnan(log_p).any() or np.isposinf(log_p).any():
        return CheckResult(message="log_prob is NaN or +inf on part of the grid")
    mass = float(np.exp(log_p.astype(np.float64)).sum() * GRID[2] ** 2)
    ok = abs(mass - 1.0) <= MASS_TOLERANCE
    return CheckResult(
        fraction=float(ok),
        details={"mass": mass},
        message=f"exp(log_prob) integrates to {mass:.3f} over [-4, 5] x [-4, 4.5]"
        + ("" if ok else f"; a density must integrate to 1 (tolerance {MASS_TOLERANCE})"),
    )


@check("c2d_nll")
def c2d_nll(ctx: CheckContext) -> CheckResult:
    log_p = ctx.tensor("c2d_train/test_log_prob", shape=(len(ctx.inputs["moons_test"]),))
    return CheckResult(value=float(-log_p.astype(np.float64).mean()))


def _histogram(points: np.ndarray, bins: int = 128) -> np.ndarray:
    """(1, bins, bins) image of a 2-D point cloud over the moons' range, y up, square-root contrast."""
    hist, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=bins, range=[[-1.25, 1.75], [-1.5, 2.5]])
    return np.sqrt(hist / max(hist.max(), 1.0))[None, ::-1].astype(np.float32)


@check("c2d_samples")
def c2d_samples(ctx: CheckContext) -> CheckResult:
    n = int(ctx.budget("c2d_train")["n_samples"])
    samples = ctx.tensor("c2d_train/samples", shape=(n, 2)).astype(np.float64)
    test = ctx.inputs["moons_test"].astype(np.float64)
    dist = np.sqrt(((samples[:, None, :] - test[None, :, :]) ** 2).sum(-1)).min(axis=1)
    near = float((dist <= NEAR_DATA).mean())
    ctx.figure(
        "RealNVP2D samples (left) and test points (right), 2-D histograms",
        np.stack([_histogram(samples), _histogram(test)]),
        nrow=2,
    )
    ok = near >= MIN_NEAR_FRACTION
    return CheckResult(
        fraction=float(ok),
        details={"near_fraction": near},
        message=f"{near:.0%} of {n} samples lie within {NEAR_DATA} of a test point"
        + ("" if ok else f" (at least {MIN_NEAR_FRACTION:.0%} expected)"),
    )


# --------------------------------------------------------------------------- RealNVP on images


@check("img_logit")
def img_logit(ctx: CheckContext) -> CheckResult:
    x = ctx.inputs["logit_x"].reshape(-1)
    problems = []
    z = ctx.tensor("img_logit/z", shape=(4,))
    if not np.allclose(z, LOGIT_Z, rtol=1e-4, atol=1e-5):
        problems.append(f"z = {np.round(z, 4).tolist()} is not logit(alpha + (1 - 2 alpha) x)")
    log_det = ctx.tensor("img_logit/log_det", shape=(4,))
    if not np.allclose(log_det, LOGIT_LOG_DET, rtol=1e-4, atol=1e-5):
        problems.append(f"log-det map {np.round(log_det, 4).tolist()} is not log|dz/dx| of the transform")
    if not np.allclose(ctx.tensor("img_logit/x_rec", shape=(4,)), x, atol=1e-5):
        problems.append("the inverse does not give x back")
    return _score(problems, 3, "values, log-det map and inverse match on x = (0, 1, 2, 3) / 256")


def _untouched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which positions a (perturbed) coupling passed through unchanged, over the batch."""
    return np.isclose(x, y, rtol=0, atol=1e-12).all(axis=0)


@check("img_coupling_init")
def img_coupling_init(ctx: CheckContext) -> CheckResult:
    x, xc = ctx.inputs["layer_x"], ctx.inputs["channel_x"]
    h, w = x.shape[-2:]
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    problems = []
    for parity in (True, False):
        name = str(parity).lower()
        checker = np.broadcast_to(((i + j) % 2 == 0) == parity, x.shape[1:])
        half = np.arange(xc.shape[1]) < xc.shape[1] // 2
        channel = np.broadcast_to((half == parity)[:, None, None], xc.shape[1:])
        for prefix, inp, keep in (("checker", x, checker), ("channel", xc, channel)):
            key = f"img_layers/{prefix}_{name}"
            what = (
                f"{'AffineCheckerboardCouplingLayer' if prefix == 'checker' else 'AffineChannelCouplingLayer'}"
                f"({parity})"
            )
            log_s = ctx.tensor(f"{key}_init_log_det")
            if np.abs(log_s).max() > 0:
                problems.append(f"{what}: the log-scale is not zero at initialisation (zero-init scale, shift)")
            zero_out = ctx.tensor(f"{key}_zero_out", shape=inp.shape)
            if np.abs(zero_out[:, keep]).max() > 0:
                problems.append(f"{what}: on a zero input the conditioning half of the output is not zero")
            kept = _untouched(inp, ctx.tensor(f"{key}_y", shape=inp.shape))
            if not np.array_equal(kept, keep):
                problems.append(
                    f"{what}: the positions passed through unchanged are not the "
                    f"{'checkerboard with the top-left pixel' if prefix == 'checker' else 'first half'}"
                    f"{'' if parity else ' complement'}"
                )
    return _score(problems, 1, "masks follow the parity convention and every coupling starts with s = 0")


@check("img_invert")
def img_invert(ctx: CheckContext) -> CheckResult:
    x, xc = ctx.inputs["layer_x"], ctx.inputs["channel_x"]
    nbins = int(ctx.inputs["nbins"][0])
    n = len(ctx.tensor("img_flow/log_det", shape=(None,)))
    y = ((ctx.inputs["test_images"][:n] + ctx.inputs["test_u"][:n]) / nbins).astype(np.float64)
    problems = [
        _safe(_round_trip, ctx, "img_layers/checker_true_x_rec", x, "AffineCheckerboardCouplingLayer(True)"),
        _safe(_round_trip, ctx, "img_layers/checker_false_x_rec", x, "AffineCheckerboardCouplingLayer(False)"),
        _safe(_round_trip, ctx, "img_layers/channel_true_x_rec", xc, "AffineChannelCouplingLayer(True)"),
        _safe(_round_trip, ctx, "img_layers/channel_false_x_rec", xc, "AffineChannelCouplingLayer(False)"),
        _safe(_round_trip, ctx, "img_flow/y_rec", y, "RealNVP"),
        _safe(_inverse_log_det, ctx, "img_flow/", "RealNVP"),
    ]
    return _score(problems, 6, "forward then inverse gives the input back for both couplings and the whole flow")


@check("img_logdet")
def img_logdet(ctx: CheckContext) -> CheckResult:
    problems = [
        _safe(_log_det_vs_jacobian, ctx, f"img_layers/{kind}_{parity}_", f"{kind} coupling ({parity})")
        for kind in ("checker", "channel")
        for parity in ("true", "false")
    ]
    flow = _safe(_log_det_vs_jacobian, ctx, "img_flow/", "RealNVP (logit, couplings, ActNorm, squeeze)")
    return _score([*problems, flow], 5, "log-dets equal autograd's log|det J| for the couplings and the whole flow")


def _host_nll(ctx: CheckContext) -> tuple[np.ndarray, int]:
    """Per-image NLL bound in nats from the student's latents and log-dets; and D."""
    test = ctx.inputs["test_images"]
    z = ctx.tensor("img_train/z", shape=test.shape).astype(np.float64)
    log_det = ctx.tensor("img_train/log_det", shape=(len(test),)).astype(np.float64)
    d = int(np.prod(test.shape[1:]))
    # log p_Y(y) = log N(z; 0, I) + log|det dz/dy| (the logit's Jacobian is part of the flow's log-det)
    log_p_y = -0.5 * (z**2 + math.log(2 * math.pi)).reshape(len(z), -1).sum(axis=1) + log_det
    nbins = int(ctx.inputs["nbins"][0])
    return dequantized_nll(torch.from_numpy(log_p_y), d, scale=1.0 / nbins).numpy(), d


@check("img_log_prob")
def img_log_prob(ctx: CheckContext) -> CheckResult:
    nll, d = _host_nll(ctx)
    got = ctx.tensor("img_train/log_prob", shape=(len(nll),)).astype(np.float64)
    diff = got + nll
    if np.abs(diff).max() <= LOG_PROB_ATOL_PER_DIM * d:
        return CheckResult(fraction=1.0, message="log_prob(x, u) = log N(z) + log|det| - D log(nbins)")
    off = float(np.median(diff)) / d
    nbins = int(ctx.inputs["nbins"][0])
    hints = {-1: "subtracted twice", 1: "missing", 2: "added instead of subtracted"}
    hint = next(
        (
            f"; the bin width D log(nbins) looks {text}: count it exactly once"
            for k, text in hints.items()
            if abs(off - k * math.log(nbins)) < 1e-3
        ),
        "",
    )
    return CheckResult(
        message=f"log_prob differs from log N(z) + log|det| - D log(nbins) by {off:.4g} nats/dim"
        f" (median over the test images){hint}"
    )


@check("img_nll")
def img_nll(ctx: CheckContext) -> CheckResult:
    nll, d = _host_nll(ctx)
    return CheckResult(value=float(bits_per_dim(float(nll.mean()), d)))


@check("img_samples")
def img_samples(ctx: CheckContext) -> CheckResult:
    test = ctx.inputs["test_images"]
    n = int(ctx.budget("img_train")["n_samples"])
    samples = ctx.tensor("img_train/samples", shape=(n, *test.shape[1:])).astype(np.float64)
    nbins = int(ctx.inputs["nbins"][0])
    levels = samples * (nbins - 1)
    problems = []
    if samples.min() < 0 or samples.max() > 1:
        problems.append(f"values in [{samples.min():.3g}, {samples.max():.3g}], expected [0, 1]")
    elif not np.allclose(levels, np.rint(levels), atol=1e-5):
        problems.append(f"values are not on the {nbins} levels k / (nbins - 1)")
    elif np.ptp(samples.reshape(n, -1), axis=0).max() == 0:
        problems.append("all samples are the same image")
    if not problems:
        ctx.figure("RealNVP samples", samples.astype(np.float32))
    return _score(problems, 1, f"{n} samples of shape {test.shape[1:]} on the {nbins} levels")
