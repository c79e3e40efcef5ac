"""Homework 3 checks: turn the probes' raw answers into item results, on the host.

Nothing the student's code reports about itself is a score. The host chooses every input and reads
back only what the student's objects answered on them:

- Log-determinants are checked against finite differences of the answered outputs. Each FD batch
  holds base points together with their partners x +- h e_d (h = 2^-16; base points lie on a 2^-16
  grid, so x +- h is exact in float32 and float64), shuffled by a host permutation; the host builds
  each base point's Jacobian from the answers at its partners and compares log|det J| with the
  log-det the same call returned. ReLU conditioners make the maps piecewise smooth, so a few points
  whose partners straddle a kink may disagree: up to `MAX_OUTLIERS` of them are tolerated, and a
  metric counts each point's log-det as at most the finite-difference one, so no disagreement helps.
- The NLLs are computed here from the answered latents and log-dets of the very calls that the
  log-det gate checks: log N(z; 0, I) + log|det| with its constants, and for images the bin width of
  the dequantization (`grader.metrics.nll`); the student's `log_prob` never enters a metric, it is
  checked against the host's value instead.
- The 2-D density must integrate to one. Its integral is an importance-sampling estimate over the
  base points of the trained flow's batch, whose proposal density the host knows: the test points
  (drawn fresh from the moons distribution with the run's seed, so the kernel cannot tell them from
  the rest), more moons draws, moons with wider noise and a wide Gaussian. A model that raises its
  density where it is asked raises the estimate too.
- Invertibility is a round trip on the host's points (the student's inverse of the student's output
  must give back the host's input); the inverse's log-det is checked by finite differences of the
  inverse's answers on host-chosen points.

What no check in the kernel's process can exclude: a kernel that recognises public test data (the
digits) and fabricates locally consistent answers around it. A metric far better than the reference
goes to a TA (`review_at` in the rubric). Probe keys are documented in `probes.py`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from sklearn.datasets import make_moons

from grader.checks import CheckContext, CheckResult, check, inputs
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.metrics.nll import bits_per_dim, dequantized_nll
from grader.rubric import load_rubric

RUBRIC = load_rubric(Path(__file__).with_name("rubric.yaml"))  # budgets size the FD batches
# profile -> (image dataset, nbins, test images used). ci: binarized 8x8 digits with nbins = 2, as the
# course trains RealNVP on binarized MNIST; it trains to well below the uniform 1 bit/dim in seconds.
IMAGES = {"ci": ("digits", 2, None), "full": ("mnist", 2, 2000)}
# COURSE.md §2.3: LogitTransform(0.05) on x = (0, 1, 2, 3) / 256
LOGIT_Z = np.array([-2.944439, -2.8727808, -2.8054335, -2.7418802])
LOGIT_LOG_DET = np.array([2.9416652, 2.8774219, 2.8175175, 2.7614343])
LOG_2PI = math.log(2 * math.pi)

FD_STEP = 2.0**-16  # finite-difference step; base points are multiples of it
N_POINTS_2D = 16  # base points of the 2-D layer and flow batch
N_LAYER_IMAGES = 4  # base inputs per image coupling batch
# 2-D integration sample: (moons noise, count) draws, the first being the test set (as large as the
# moons test split), then the wide Gaussian; proposal densities are known to the host.
MOONS_DRAWS = ((0.1, 1250), (0.1, 1250), (0.3, 2500))
N_TEST_2D = MOONS_DRAWS[0][1]
WIDE_MEAN, WIDE_STD, N_WIDE = np.array([0.5, 0.25]), np.array([2.0, 1.5]), 1000

# (atol, rtol) of |log-det - FD log|det J||, by the answers' dtype. A wrong log-det is off by O(0.1) on a
# perturbed layer and by O(D) on an image flow. Correct ones: float64 differences are off by 1e-10 in 2-D
# and up to ~1e-2 on an image flow with |log det| ~ 100 (ReLU kinks between partners); float32 answers
# by up to ~0.5 there (an inverse through a flat sigmoid).
LOG_DET_TOL = {np.dtype("float64"): (1e-5, 1e-3), np.dtype("float32"): (5e-2, 2e-2)}
MAX_OUTLIERS = 0.02  # fraction of base points allowed to disagree (partners straddling a ReLU kink)
ROUND_TRIP_ATOL = {np.dtype("float64"): 1e-6, np.dtype("float32"): 1e-4}
MASS_TOLERANCE = 0.05  # |integral of the density - 1|; the estimate's own spread is about 0.01
NEAR_DATA = 0.25  # a 2-D sample counts as on the data within this distance of a test point
MIN_NEAR_FRACTION = 0.7
LOG_PROB_ATOL_PER_DIM = 1e-4  # student's log_prob vs the host's value, per dimension


# --------------------------------------------------------------------------- inputs


def _grid(x: np.ndarray) -> np.ndarray:
    """Round to multiples of FD_STEP, so that x +- FD_STEP is exact in float32 and float64."""
    return np.round(np.asarray(x, dtype=np.float64) / FD_STEP) * FD_STEP


def _partners(base: np.ndarray) -> np.ndarray:
    """(n, *shape) -> (n * 2D, *shape): x + h e_1 .. x + h e_D, then x - h e_1 .. x - h e_D, per point."""
    n, shape = len(base), base.shape[1:]
    d = int(np.prod(shape))
    steps = FD_STEP * np.eye(d).reshape(d, *shape)  # (D, *shape)
    pairs = np.concatenate([base[:, None] + steps[None], base[:, None] - steps[None]], axis=1)  # (n, 2D, *shape)
    return pairs.reshape(n * 2 * d, *shape)


def _shuffled(parts: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """The parts concatenated in a host-random order, and where each part's rows ended up."""
    flat = np.concatenate(parts)
    perm = rng.permutation(len(flat))
    where = np.argsort(perm)  # batch[where[i]] == flat[i]
    bounds = np.cumsum([0, *(len(p) for p in parts)])
    return flat[perm], [where[a:b] for a, b in itertools.pairwise(bounds)]


def _fd_batch(base: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled batch of `base` and its partners, and the FD index (n, 1 + 2D): each base point's row,
    then its partners' rows, in `_partners` order."""
    batch, (rows, partner_rows) = _shuffled([base, _partners(base)], rng)
    return batch, np.concatenate([rows[:, None], partner_rows.reshape(len(base), -1)], axis=1)


def _moons_log_density(x: np.ndarray, noise: float, n: int) -> np.ndarray:
    """log density at x of make_moons(n, noise): one Gaussian of std `noise` around each of its n centres."""
    centres = make_moons(n, noise=0.0, shuffle=False)[0]
    out = np.empty(len(x))
    for start in range(0, len(x), 1000):
        d2 = ((x[start : start + 1000, None, :] - centres[None]) ** 2).sum(-1)  # (chunk, n)
        log_k = -0.5 * d2 / noise**2
        top = log_k.max(axis=1)
        out[start : start + 1000] = top + np.log(np.exp(log_k - top[:, None]).mean(axis=1))
    return out - math.log(2 * math.pi * noise**2)


def _moons_2d(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D integration sample (test points first) and the log of its proposal density."""
    draws = [make_moons(n, noise=s, random_state=int(rng.integers(2**31))) for s, n in MOONS_DRAWS]
    wide = rng.normal(size=(N_WIDE, 2)) * WIDE_STD + WIDE_MEAN
    points = _grid(np.concatenate([*(d[0] for d in draws), wide]))
    counts = np.array([n for _, n in MOONS_DRAWS] + [N_WIDE], dtype=np.float64)
    wide_log = -0.5 * (((points - WIDE_MEAN) / WIDE_STD) ** 2).sum(1) - math.log(2 * math.pi * WIDE_STD.prod())
    logs = np.stack([*(_moons_log_density(points, s, n) for s, n in MOONS_DRAWS), wide_log])  # (K, N)
    log_w = np.log(counts / counts.sum())[:, None]
    top = (logs + log_w).max(axis=0)
    return points, top + np.log(np.exp(logs + log_w - top).sum(axis=0))


def _dequantized(images: np.ndarray, nbins: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """u ~ U[0, 1) on the FD grid and y = (level + u) / nbins (float64, exact)."""
    u = np.floor(rng.uniform(size=images.shape) / FD_STEP) * FD_STEP
    return u, (images.astype(np.float64) + u) / nbins


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    budgets = RUBRIC.profile(profile).budgets
    name, nbins, n_test = IMAGES[profile]
    train = np.rint(load_dataset(name, "train", binarize=nbins == 2)[0] * (nbins - 1)).astype(np.uint8)
    test = np.rint(load_dataset(name, "test", binarize=nbins == 2)[0][:n_test] * (nbins - 1)).astype(np.uint8)
    c = test.shape[1]

    # 2-D: oracle points spread over the data's range, where a trained flow is used
    points_2d = _grid(rng.normal(size=(N_POINTS_2D, 2)) * [1.0, 0.6] + [0.5, 0.25])
    c2d_points, c2d_points_index = _fd_batch(points_2d, rng)
    sample_2d, log_q = _moons_2d(rng)
    c2d_eval, c2d_eval_index = _fd_batch(sample_2d, rng)

    checker_x, checker_index = _fd_batch(_grid(rng.normal(size=(N_LAYER_IMAGES, c, 4, 4))), rng)
    channel_x, channel_index = _fd_batch(_grid(rng.normal(size=(N_LAYER_IMAGES, 4 * c, 2, 2))), rng)

    n_flow = int(budgets["img_flow"]["n_fd"])
    _, flow_y = _dequantized(test[rng.choice(len(test), n_flow, replace=False)], nbins, rng)
    img_flow_y, img_flow_y_index = _fd_batch(flow_y, rng)
    # latents of moderate size: a float32 sigmoid that saturates would leave no finite difference to read
    img_flow_z, img_flow_z_index = _fd_batch(_grid(0.5 * rng.normal(size=flow_y.shape)), rng)

    # every test image once, a random few of them with FD partners, one shuffled batch
    test_u, test_y = _dequantized(test, nbins, rng)
    fd = rng.choice(len(test), int(budgets["img_train"]["n_fd"]), replace=False)
    img_eval, (test_rows, partner_rows) = _shuffled([test_y, _partners(test_y[fd])], rng)
    return {
        "moons_train": load_dataset("moons", "train")[0],
        "c2d_points": c2d_points,
        "c2d_points_index": c2d_points_index,
        "c2d_eval": c2d_eval,
        "c2d_eval_index": c2d_eval_index,
        "c2d_log_q": log_q,
        "train_images": train,
        "img_init": train[rng.choice(len(train), 64, replace=False)],
        "test_images": test,
        "test_u": test_u,
        "checker_x": checker_x,
        "checker_x_index": checker_index,
        "channel_x": channel_x,
        "channel_x_index": channel_index,
        "img_flow_y": img_flow_y,
        "img_flow_y_index": img_flow_y_index,
        "img_flow_z": img_flow_z,
        "img_flow_z_index": img_flow_z_index,
        "img_eval": img_eval,
        "img_eval_test_rows": test_rows,
        "img_eval_fd": fd,
        "img_eval_index": np.concatenate([test_rows[fd][:, None], partner_rows.reshape(len(fd), -1)], axis=1),
        "logit_x": (np.arange(4, dtype=np.float32) / 256).reshape(1, 1, 2, 2),
        "nbins": np.array([nbins], dtype=np.int64),
    }


# --------------------------------------------------------------------------- shared checks


class LogDets(NamedTuple):
    """A call's log-dets at the base points of its FD batch, next to the host's finite-difference ones."""

    what: str
    returned: np.ndarray  # (n,)
    fd: np.ndarray  # (n,) log|det J| from central differences of the answers
    bad: np.ndarray  # (n,) bool: outside the tolerance

    def problem(self) -> str | None:
        """None when the log-dets agree (up to MAX_OUTLIERS kink points), else a message."""
        if self.bad.sum() <= MAX_OUTLIERS * len(self.bad):
            return None
        diff = np.abs(self.returned - self.fd)
        flipped = np.median(np.abs(self.returned + self.fd)) < 1e-3 * np.median(diff)
        singular = int(np.isinf(self.fd).sum())
        return (
            f"{self.what}: log-det differs from log|det J| (finite differences of your outputs) by up to "
            f"{diff.max():.3g} at {int(self.bad.sum())} of {len(self.bad)} points"
            + ("; it has the opposite sign" if flipped else "")
            + (f"; the Jacobian is singular at {singular} of them: the map is not invertible" if singular else "")
        )

    def counted(self) -> np.ndarray:
        """The log-det a metric counts: the returned one, but never more than the finite-difference one."""
        return np.minimum(self.returned, self.fd)


def _log_dets(ctx: CheckContext, out_key: str, log_det_key: str, batch: str, what: str) -> LogDets:
    """Check the answers `log_det_key` (N,) against finite differences of the answers `out_key`, which
    must have the shape of the host's FD batch `batch` (N, ...); its index is `<batch>_index`."""
    shape, index = ctx.inputs[batch].shape, ctx.inputs[f"{batch}_index"]
    out = ctx.tensor(out_key, shape=shape)
    log_det = ctx.tensor(log_det_key, shape=shape[:1]).astype(np.float64)
    d = (index.shape[1] - 1) // 2
    flat = out.reshape(len(out), d).astype(np.float64)  # (N, ...) -> (N, D)
    plus, minus = flat[index[:, 1 : 1 + d]], flat[index[:, 1 + d :]]  # (n, D, D) each
    jac = (plus - minus) / (2 * FD_STEP)  # row j: d out / d x_j
    sign, fd = np.linalg.slogdet(jac)
    fd = np.where(sign == 0, -np.inf, fd)
    returned = log_det[index[:, 0]]
    atol, rtol = LOG_DET_TOL.get(out.dtype, LOG_DET_TOL[np.dtype("float32")])
    bad = ~(np.abs(returned - fd) <= atol + rtol * np.abs(fd))
    return LogDets(what, returned, fd, bad)


def _log_det_problem(ctx: CheckContext, out_key: str, log_det_key: str, batch: str, what: str) -> str | None:
    return _log_dets(ctx, out_key, log_det_key, batch, what).problem()


def _round_trip(ctx: CheckContext, key: str, target: np.ndarray, what: str) -> str | None:
    """None when the reconstruction of the host's batch matches it, else a message for the student."""
    got = ctx.tensor(key, shape=target.shape)
    err = float(np.abs(got - target).max())
    atol = ROUND_TRIP_ATOL.get(got.dtype, ROUND_TRIP_ATOL[np.dtype("float32")])
    return None if err <= atol * (1 + np.abs(target).max()) else f"{what}: max |x - f^-1(f(x))| = {err:.3g}"


def _score(problems: list[str | None], ok: str, total: int | None = None) -> CheckResult:
    """The fraction of `total` sub-checks (default: one per entry) without a problem, and the problems."""
    return CheckResult.of_cases([p for p in problems if p], total or len(problems), ok)


def _safe(fn: Callable[..., str | None], *args: object) -> str | None:
    """Run one sub-check; a missing or malformed output is that sub-check's failure, not the item's."""
    try:
        return fn(*args)
    except ArtifactError as exc:
        return str(exc)


def _log_normal(z: np.ndarray) -> np.ndarray:
    """log N(z; 0, I) per example, constants included: (N, ...) -> (N,)."""
    return -0.5 * (z.astype(np.float64) ** 2 + LOG_2PI).reshape(len(z), -1).sum(axis=1)


# --------------------------------------------------------------------------- RealNVP on 2-D data

CALLS_2D = (
    ("c2d_layers/layer_true_", "AffineCouplingLayer(True)"),
    ("c2d_layers/layer_false_", "AffineCouplingLayer(False)"),
    ("c2d_flow/", "RealNVP2D"),
)


@check("c2d_invert")
def c2d_invert(ctx: CheckContext) -> CheckResult:
    x = ctx.inputs["c2d_points"]
    problems = [_safe(_round_trip, ctx, f"{prefix}rec", x, what) for prefix, what in CALLS_2D]
    return _score(problems, f"forward then inverse gives back all {len(x)} points, in both layers and the flow")


@check("c2d_logdet")
def c2d_logdet(ctx: CheckContext) -> CheckResult:
    problems = [
        _safe(_log_det_problem, ctx, f"{prefix}out", f"{prefix}log_det", "c2d_points", what)
        for prefix, what in CALLS_2D
    ]
    trained = _safe(_log_det_problem, ctx, "c2d_train/z", "c2d_train/log_det", "c2d_eval", "trained RealNVP2D")
    return _score(
        [*problems, trained], "log-dets equal log|det J| for both layers, the flow and the trained flow's test points"
    )


@check("c2d_inverse_logdet")
def c2d_inverse_logdet(ctx: CheckContext) -> CheckResult:
    problems = [
        _safe(_log_det_problem, ctx, f"{prefix}inv", f"{prefix}log_det_inv", "c2d_points", f"{what} inverse")
        for prefix, what in CALLS_2D
    ]
    return _score(problems, "the inverse's log-dets equal log|det J| of the inverse map for both layers and the flow")


class Density2D(NamedTuple):
    """The trained 2-D flow's density at the base points of its batch, from the host's arithmetic."""

    log_p: np.ndarray  # (n,) log N(z) + counted log-det
    mass: float  # importance-sampling estimate of its integral

    def mass_problem(self) -> str | None:
        """None when the density integrates to 1 within MASS_TOLERANCE, else a message."""
        if abs(self.mass - 1.0) <= MASS_TOLERANCE:
            return None
        return (
            f"the density N(f(x)) |det J| of the trained flow integrates to {self.mass:.3f}, not 1 "
            f"(tolerance {MASS_TOLERANCE}): its log-dets are wrong or it does not map the plane one-to-one "
            "onto the plane"
        )


def _density_2d(ctx: CheckContext) -> Density2D:
    """The host's density at the base points of the trained flow's batch, and its integral."""
    index = ctx.inputs["c2d_eval_index"]
    log_dets = _log_dets(ctx, "c2d_train/z", "c2d_train/log_det", "c2d_eval", "trained RealNVP2D")
    log_p = _log_normal(ctx.tensor("c2d_train/z", shape=(len(ctx.inputs["c2d_eval"]), 2))[index[:, 0]])
    log_p = log_p + log_dets.counted()
    mass = float(np.exp(log_p - ctx.inputs["c2d_log_q"]).mean())
    return Density2D(log_p, mass)


@check("c2d_density")
def c2d_density(ctx: CheckContext) -> CheckResult:
    n = len(ctx.inputs["c2d_eval"])
    z = ctx.tensor("c2d_train/z", shape=(n, 2))
    host = _log_normal(z) + ctx.tensor("c2d_train/log_det", shape=(n,)).astype(np.float64)
    got = ctx.tensor("c2d_train/log_prob", shape=(n,), finite=False).astype(np.float64)
    problems = [_density_2d(ctx).mass_problem()]
    diff = np.abs(got - host)
    if not (diff <= LOG_PROB_ATOL_PER_DIM * 2).all():
        off = float(np.nanmedian(got - host))
        hint = "; the prior's log(2 pi) is missing" if abs(off - LOG_2PI) < 1e-3 else ""
        problems.append(f"log_prob differs from log N(z; 0, I) + log|det| by {off:.4g} nats (median){hint}")
    return _score(problems, "log_prob is log N(f(x)) + log|det J| and that density integrates to 1")


@check("c2d_nll")
def c2d_nll(ctx: CheckContext) -> CheckResult:
    density = _density_2d(ctx)
    if problem := density.mass_problem():
        return CheckResult(message=f"not scored: {problem}")
    return CheckResult(value=float(-density.log_p[:N_TEST_2D].mean()), details={"mass": density.mass})


def _histogram(points: np.ndarray, bins: int = 128) -> np.ndarray:
    """(1, bins, bins) image of a 2-D point cloud over the moons' range, y up, square-root contrast."""
    hist, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=bins, range=[[-1.25, 1.75], [-1.5, 2.5]])
    return np.sqrt(hist / max(hist.max(), 1.0))[None, ::-1].astype(np.float32)


@check("c2d_samples")
def c2d_samples(ctx: CheckContext) -> CheckResult:
    n = int(ctx.budget("c2d_train")["n_samples"])
    samples = ctx.tensor("c2d_train/samples", shape=(n, 2)).astype(np.float64)
    test = ctx.inputs["c2d_eval"][ctx.inputs["c2d_eval_index"][:N_TEST_2D, 0]]
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

LAYERS_IMG = tuple(
    (f"img_layers/{kind}_{str(parity).lower()}_", key, f"{cls}({parity})")
    for kind, key, cls in (
        ("checker", "checker_x", "AffineCheckerboardCouplingLayer"),
        ("channel", "channel_x", "AffineChannelCouplingLayer"),
    )
    for parity in (True, False)
)


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
    return _score(problems, "values, log-det map and inverse match on x = (0, 1, 2, 3) / 256", total=3)


def _untouched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which positions a (perturbed) coupling passed through unchanged, over the batch."""
    return np.isclose(x, y, rtol=0, atol=1e-12).all(axis=0)


@check("img_coupling_init")
def img_coupling_init(ctx: CheckContext) -> CheckResult:
    x, xc = ctx.inputs["checker_x"], ctx.inputs["channel_x"]
    h, w = x.shape[-2:]
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    half = np.arange(xc.shape[1]) < xc.shape[1] // 2
    problems = []
    for prefix, key, what in LAYERS_IMG:
        inp = ctx.inputs[key]
        parity = prefix.endswith("true_")
        if key == "checker_x":
            keep = np.broadcast_to(((i + j) % 2 == 0) == parity, x.shape[1:])
        else:
            keep = np.broadcast_to((half == parity)[:, None, None], xc.shape[1:])
        if np.abs(ctx.tensor(f"{prefix}init_log_det")).max() > 0:
            problems.append(f"{what}: the log-scale is not zero at initialisation (zero-init scale, shift)")
        zero_out = ctx.tensor(f"{prefix}zero_out", shape=inp.shape)
        if np.abs(zero_out[:, keep]).max() > 0:
            problems.append(f"{what}: on a zero input the conditioning half of the output is not zero")
        if not np.array_equal(_untouched(inp, ctx.tensor(f"{prefix}out", shape=inp.shape)), keep):
            problems.append(
                f"{what}: the positions passed through unchanged are not the "
                f"{'checkerboard with the top-left pixel' if key == 'checker_x' else 'first half'}"
                f"{'' if parity else ' complement'}"
            )
    return CheckResult(
        fraction=float(not problems),
        message="; ".join(problems) or "masks follow the parity convention and every coupling starts with s = 0",
    )


@check("img_invert")
def img_invert(ctx: CheckContext) -> CheckResult:
    problems = [_safe(_round_trip, ctx, f"{prefix}rec", ctx.inputs[key], what) for prefix, key, what in LAYERS_IMG]
    problems.append(_safe(_round_trip, ctx, "img_flow/rec", ctx.inputs["img_flow_y"], "RealNVP"))
    return _score(problems, "forward then inverse gives the input back for both couplings and the whole flow")


@check("img_logdet")
def img_logdet(ctx: CheckContext) -> CheckResult:
    problems = [
        _safe(_log_det_problem, ctx, f"{prefix}out", f"{prefix}log_det", key, what) for prefix, key, what in LAYERS_IMG
    ]
    flow = _safe(
        _log_det_problem, ctx, "img_flow/out", "img_flow/log_det", "img_flow_y", "RealNVP (logit, ActNorm, squeeze)"
    )
    trained = _safe(_log_det_problem, ctx, "img_train/z", "img_train/log_det", "img_eval", "trained RealNVP")
    return _score(
        [*problems, flow, trained], "log-dets equal log|det J| for the couplings, the whole flow and the trained flow"
    )


@check("img_inverse_logdet")
def img_inverse_logdet(ctx: CheckContext) -> CheckResult:
    problem = _safe(_log_det_problem, ctx, "img_flow/inv", "img_flow/log_det_inv", "img_flow_z", "RealNVP inverse")
    return _score([problem], "the inverse's log-det equals log|det J| of the inverse map, logit included")


def _host_nll(ctx: CheckContext, log_det: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-image NLL bound in nats from the trained flow's answers with the given log-dets (N_test,); and D."""
    test = ctx.inputs["test_images"]
    z = ctx.tensor("img_train/z", shape=(len(ctx.inputs["img_eval"]), *test.shape[1:]))
    d = int(np.prod(test.shape[1:]))
    # log p_Y(y) = log N(z; 0, I) + log|det dz/dy| (the logit's Jacobian is part of the flow's log-det)
    log_p_y = _log_normal(z[ctx.inputs["img_eval_test_rows"]]) + log_det
    nbins = int(ctx.inputs["nbins"][0])
    return dequantized_nll(torch.from_numpy(log_p_y), d, scale=1.0 / nbins).numpy(), d


def _returned_log_det(ctx: CheckContext) -> np.ndarray:
    log_det = ctx.tensor("img_train/log_det", shape=(len(ctx.inputs["img_eval"]),)).astype(np.float64)
    return log_det[ctx.inputs["img_eval_test_rows"]]


@check("img_log_prob")
def img_log_prob(ctx: CheckContext) -> CheckResult:
    nll, d = _host_nll(ctx, _returned_log_det(ctx))
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
    log_det = _returned_log_det(ctx)
    # the images with FD partners count at most their finite-difference log-det
    log_det[ctx.inputs["img_eval_fd"]] = _log_dets(
        ctx, "img_train/z", "img_train/log_det", "img_eval", "trained RealNVP"
    ).counted()
    nll, d = _host_nll(ctx, log_det)
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
    return CheckResult(
        fraction=float(not problems),
        message="; ".join(problems) or f"{n} samples of shape {test.shape[1:]} on the {nbins} levels",
    )
