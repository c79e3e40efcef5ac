"""Homework 6 checks: score matching and DDPM, on the host, from what the spies recorded.

Every check recomputes the student's algorithm from the inputs the spy network saw (probes.py): the
noise ε = (x̃ - x)/σ the student drew, the levels and time steps, and each sampling step, whose drift
and residual variance are regressed on the spy's known output. The reference formulas are
`reference_solutions.diffusion` in float64 and `grader.metrics.two_d` for the 2-D metrics.

Statistical tolerances follow the sample sizes in `make_inputs` (8192 rows of 2-D points): the mean and
standard deviation of recovered N(0, 1) noise within 6 standard errors, a Langevin residual variance within
±5% (about 10 standard errors at 65536 draws), a drift coefficient within ±15% (its estimate is noisier;
the mistakes it catches are 2x).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from grader.checks import CheckContext, CheckResult, check, inputs
from grader.data import load_dataset
from grader.errors import ArtifactError
from grader.metrics.classifier import classifier_features
from grader.metrics.kid import kid
from grader.metrics.two_d import energy_distance, moons_score, nn_recall
from grader.rubric import load_rubric
from reference_solutions.diffusion import ForwardDiffusion, ReverseDiffusion, make_betas

RUBRIC = load_rubric(Path(__file__).with_name("rubric.yaml"))
SPY_ROWS = 8192
SPY_LENGTH = 50  # T of the DDPM spy probes
COEF_T = [0, 1, 2, 5, 9, 10, 20, 33, 49, 50, 64, 75, 88, 97, 98, 99]  # one time step per row, T = 100
REVERSE_T = [0, 1, 10, 50, 99]
REVERSE_ROWS = 2048  # per time step
DSM_SIGMA_SPY, NCSN_SPY_SIGMAS = 0.3, [1.0, 0.5, 0.25, 0.125]
LANGEVIN_STEPS, LANGEVIN_ETA = 4, 0.5
ANNEALED_STEPS, ANNEALED_EPS = 4, 0.005
NOISE_SE = 6.0  # standard errors a recovered noise's mean and std may stray from N(0, 1)'s
VAR_RTOL, DRIFT_RTOL = 0.05, 0.15
LOSS_RTOL, LOSS_ATOL = 1e-3, 1e-5
RECALL_RADIUS = 0.25
# COURSE.md §2.3: T = 100, t = 5, x0 = x_t = eps = 1: q mean, q var, x_t, get_x0, posterior mean, posterior var
COURSE_VALUES = {
    "cosine": (0.9944681, 0.01103322, 1.0995072, 0.8999391, 0.9723116, 0.00222036),
    "linear": (0.9820154, 0.03564582, 1.1708164, 0.8260552, 0.9467155, 0.007709955),
}


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    """Spy weights and inputs, schedules' test points, moons and digits, and the digits metric's (x_t, t)."""
    budgets = RUBRIC.profile(profile).budgets
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    moons_train, moons_test = load_dataset("moons", "train")[0], load_dataset("moons", "test")[0]
    dsm_sigma = float(budgets["dsm_train"]["sigma"])
    digits_name = "digits" if profile == "ci" else "mnist"
    digits_train, digits_test = (load_dataset(digits_name, split)[0] for split in ("train", "test"))
    steps = int(budgets["ddpm_digits_train"]["timesteps"])
    digits_t = rng.integers(0, steps, size=len(digits_test))
    digits_eps = normal(*digits_test.shape)
    schedule = str(budgets["ddpm_digits_train"]["schedule"])
    xt = ForwardDiffusion(make_betas(steps, schedule)).get_samples(
        torch.from_numpy(digits_test * 2.0 - 1.0).double(), torch.from_numpy(digits_t), torch.from_numpy(digits_eps)
    )
    coef = {s: make_betas(100, s).numpy() for s in ("cosine", "linear")}
    return {
        "sm_x": normal(SPY_ROWS, 2),
        "spy_weight": (-3.0 * np.eye(2) + 0.3 * rng.standard_normal((2, 2))).astype(np.float32),
        "spy_bias": 0.5 * normal(2),
        "spy_per_index": 0.5 * normal(SPY_LENGTH, 2),
        # the Langevin spies: a score of norm ~8 that barely contracts, so that every step's drift stands out of
        # its noise (a contracting score falls to ~0 within a few steps and leaves the drift unmeasurable)
        "drift_weight": (-0.2 * np.eye(2) + 0.05 * rng.standard_normal((2, 2))).astype(np.float32),
        "drift_bias": (8.0 * _unit(rng)).astype(np.float32),
        # the DDPM spies predict ε ≈ x: with a contracting score-like map the sampler's x would blow up
        "noise_weight": (np.eye(2) + 0.1 * rng.standard_normal((2, 2))).astype(np.float32),
        "noise_bias": 0.1 * normal(2),
        "noise_per_index": 0.1 * normal(SPY_LENGTH, 2),
        "dsm_sigma": np.array([DSM_SIGMA_SPY]),
        "langevin_steps": np.array([LANGEVIN_STEPS]),
        "langevin_eta": np.array([LANGEVIN_ETA]),
        "ncsn_spy_sigmas": np.array(NCSN_SPY_SIGMAS, dtype=np.float32),
        "annealed_steps": np.array([ANNEALED_STEPS]),
        "annealed_eps": np.array([ANNEALED_EPS]),
        "moons_train": moons_train,
        "moons_test": moons_test,
        "dsm_points": (moons_test + dsm_sigma * normal(*moons_test.shape)).astype(np.float32),
        "schedule_lengths": np.array([100, 1000], dtype=np.int64),
        "coef_betas_cosine": coef["cosine"],
        "coef_betas_linear": coef["linear"],
        "coef_x": normal(len(COEF_T), 2),
        "coef_eps": normal(len(COEF_T), 2),
        "coef_t": np.array(COEF_T, dtype=np.int64),
        "reverse_x": normal(len(REVERSE_T) * REVERSE_ROWS, 2),
        "reverse_eps": normal(len(REVERSE_T) * REVERSE_ROWS, 2),
        "reverse_t": np.repeat(np.array(REVERSE_T, dtype=np.int64), REVERSE_ROWS),
        "ddpm_x": moons_train[rng.choice(len(moons_train), SPY_ROWS)],
        "spy_length": np.array([SPY_LENGTH]),
        "spy_samples": np.array([2000]),
        "digits_train": (digits_train * 2.0 - 1.0).astype(np.float32),
        "image_shape": np.array(digits_test.shape[1:], dtype=np.int64),
        "digits_xt": xt.numpy().astype(np.float32),
        "digits_t": digits_t.astype(np.int64),
        "digits_eps": digits_eps,  # stays on the host: the probes never see it
    }


def _unit(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return np.array([np.cos(angle), np.sin(angle)])


def _f64(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def _spy_out(ctx: CheckContext, x: np.ndarray, index: np.ndarray | None = None, kind: str = "spy") -> np.ndarray:
    """What the spy (`spy` or `noise` weights) answered to x (B, 2) (and index (B,)): x A^T + b (+ c_index)."""
    out = _f64(x) @ _f64(ctx.inputs[f"{kind}_weight"]).T + _f64(ctx.inputs[f"{kind}_bias"])
    if index is not None:
        out = out + _f64(ctx.inputs[f"{kind}_per_index"])[index.astype(np.int64)]
    return out


def _calls(ctx: CheckContext, key: str, rows: int, calls: int | None = None) -> np.ndarray:
    """The spy's recorded inputs (calls, rows, 2); exactly `calls` calls when given."""
    x = _f64(ctx.tensor(key, shape=(None, rows, 2)))
    if calls is not None and len(x) != calls:
        raise ArtifactError(f"the network was called {len(x)} times, expected {calls} (one call per step)")
    return x


def _indices(ctx: CheckContext, key: str, calls: int, rows: int, levels: int, what: str) -> np.ndarray:
    """Recorded level or time indices (calls, rows) as int64, checked to be integers in [0, levels)."""
    if key not in ctx.artifacts.tensors:
        raise ArtifactError(f"the network was called without {what}: call it as network(x, {what})")
    idx = ctx.tensor(key, shape=(calls, rows))
    if not np.all(idx == np.round(idx)) or idx.min() < 0 or idx.max() > levels - 1:
        raise ArtifactError(f"{what} must be integers in 0..{levels - 1}, got values in [{idx.min():g}, {idx.max():g}]")
    return idx.astype(np.int64)


def _noise_problem(eps: np.ndarray, what: str, hint: str = "") -> str | None:
    """Why the recovered noise `eps` does not look N(0, 1), or None: its mean and standard deviation must lie
    within NOISE_SE standard errors of 0 and 1 (1/√n and 1/√(2n) for n draws)."""
    n = eps.size
    mean, std = float(eps.mean()), float(eps.std())
    if abs(std - 1) > NOISE_SE / np.sqrt(2 * n) or abs(mean) > NOISE_SE / np.sqrt(n):
        return f"{what} is not N(0, 1) noise (mean {mean:.3f}, std {std:.3f} over {n} draws){hint}"
    return None


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=LOSS_RTOL, atol=LOSS_ATOL))


# ---------------------------------------------------------------- denoising score matching


@check("dsm_loss")
def dsm_loss(ctx: CheckContext) -> CheckResult:
    """Per-element (s(x + σε) + ε/σ)² (½ of it accepted) and its reduction, from the spy's inputs."""
    x, sigma = _f64(ctx.inputs["sm_x"]), DSM_SIGMA_SPY
    noised = _calls(ctx, "dsm_spy/forward_spy_inputs", len(x), calls=1)[0]
    eps = (noised - x) / sigma
    hint = " (σ² used as the noise's standard deviation?)" if abs(eps.std() - sigma) < 0.05 else ""
    if problem := _noise_problem(eps, "(x̃ - x) / σ", hint):
        return CheckResult(0.0, problem)
    got = _f64(ctx.tensor("dsm_spy/forward", shape=None))
    want = (_spy_out(ctx, noised) + eps / sigma) ** 2
    if _close(got, want / 2):
        want = want / 2
    elif not _close(got, want):
        if got.shape == want.shape and _close(got, (_spy_out(ctx, noised) + eps / sigma**2) ** 2):
            return CheckResult(0.0, "forward(x) regresses s(x̃) on -ε/σ²; the score of N(x̃; x, σ²) is -ε/σ")
        return CheckResult(0.0, f"forward(x) is not the per-element (s(x + σε) + ε/σ)² (shape {got.shape})")
    factor = 2.0 * float(want.sum() / ((_spy_out(ctx, noised) + eps / sigma) ** 2).sum())  # 1, or 2 with the ½
    noised = _calls(ctx, "dsm_spy/loss_spy_inputs", len(x), calls=1)[0]
    eps = (noised - x) / sigma
    expected = float(((_spy_out(ctx, noised) + eps / sigma) ** 2).sum(1).mean()) * factor / 2
    loss = float(ctx.tensor("dsm_spy/loss", shape=None).reshape(-1)[0])
    if not np.isclose(loss, expected, rtol=LOSS_RTOL):
        return CheckResult(0.0, f"loss(x) = {loss:.6g}, but the batch mean of the per-row sums is {expected:.6g}")
    return CheckResult(1.0, f"DSM target -ε/σ with ε ~ N(0, 1) (std {eps.std():.3f}); loss = batch mean of sums")


def _step_fit(before: np.ndarray, after: np.ndarray, score: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Regress after - before on the score: (drift coefficient, residual variance, residuals)."""
    step = after - before
    drift = float((step * score).sum() / (score * score).sum())
    residual = step - drift * score
    return drift, float(residual.var()), residual


def _langevin_problem(drift: float, variance: float, step: float, what: str) -> str | None:
    if abs(variance / step - 1) > VAR_RTOL:
        return f"{what}: the noise added per step has variance {variance:.4g}, expected the step size {step:g}"
    if abs(drift / (step / 2) - 1) > DRIFT_RTOL:
        hint = " (no 1/2: the template's step is x + (η/2) s(x) + √η z)" if abs(drift / step - 1) < DRIFT_RTOL else ""
        return f"{what}: the drift is {drift:.4g} s(x), expected {step / 2:g} s(x){hint}"
    return None


@check("langevin")
def langevin(ctx: CheckContext) -> CheckResult:
    """x ← x + (η/2) s(x) + √η z: drift and residual variance regressed per run, fresh noise each step."""
    x0 = _f64(ctx.inputs["sm_x"])
    states = _calls(ctx, "langevin_spy/spy_inputs", len(x0), calls=LANGEVIN_STEPS)
    if not np.allclose(states[0], x0, atol=1e-5):
        return CheckResult(0.0, "langevin_dynamics must start from the x it is given")
    final = _f64(ctx.tensor("langevin_spy/final", shape=x0.shape))
    after = np.concatenate([states[1:], final[None]])
    scores = _spy_out(ctx, states.reshape(-1, 2), kind="drift").reshape(states.shape)
    drift, variance, residual = _step_fit(states, after, scores)
    corr = float(np.corrcoef(residual[:-1].ravel(), residual[1:].ravel())[0, 1])
    if abs(corr) > 0.1:
        return CheckResult(0.0, f"the noise of consecutive steps is correlated ({corr:.2f}): draw fresh z every step")
    if problem := _langevin_problem(drift, variance, LANGEVIN_ETA, "langevin_dynamics"):
        return CheckResult(0.0, problem)
    return CheckResult(1.0, f"drift {drift:.4f} s(x) and noise variance {variance:.4f} per step at η = {LANGEVIN_ETA}")


# ---------------------------------------------------------------- NCSN


@check("ncsn_loss")
def ncsn_loss(ctx: CheckContext) -> CheckResult:
    """One level per row, uniform; noise σ_i ε; per-element σ_i² (s(x̃, i) + ε/σ_i)² and its reduction."""
    x, sigmas = _f64(ctx.inputs["sm_x"]), np.array(NCSN_SPY_SIGMAS)
    results = []
    for call in ("forward", "loss"):
        noised = _calls(ctx, f"ncsn_spy/{call}_spy_inputs", len(x), calls=1)[0]
        levels = _indices(ctx, f"ncsn_spy/{call}_spy_indices", 1, len(x), len(sigmas), "the level index")[0]
        counts = np.bincount(levels, minlength=len(sigmas))
        if (counts == 0).sum() >= len(sigmas) - 1:
            return CheckResult(0.0, "every row of a batch got the same noise level: draw one level per row")
        if counts.min() < 0.7 * len(x) / len(sigmas):
            return CheckResult(0.0, f"the levels are not uniform over the batch (counts {counts.tolist()})")
        eps = (noised - x) / sigmas[levels][:, None]
        for i, sigma in enumerate(sigmas):
            hint = " (is the level index mapped to the wrong σ?)"
            if problem := _noise_problem(eps[levels == i], f"(x̃ - x) / σ_i at level {i} (σ = {sigma:g})", hint):
                return CheckResult(0.0, problem)
        results.append((noised, levels, eps))
    noised, levels, eps = results[0]
    sigma = sigmas[levels][:, None]
    unweighted = (_spy_out(ctx, noised, levels) + eps / sigma) ** 2
    got = _f64(ctx.tensor("ncsn_spy/forward", shape=None))
    factors = [f for f in (1.0, 0.5) if _close(got, f * sigma**2 * unweighted)]
    if not factors:
        if _close(got, unweighted):
            return CheckResult(0.0, "forward(x) misses the weight λ(σ_i) = σ_i² on each row's squared error")
        return CheckResult(0.0, f"forward(x) is not the per-element σ_i² (s(x̃, i) + ε/σ_i)² (shape {got.shape})")
    noised, levels, eps = results[1]
    sigma = sigmas[levels][:, None]
    expected = float((factors[0] * sigma**2 * (_spy_out(ctx, noised, levels) + eps / sigma) ** 2).sum(1).mean())
    loss = float(ctx.tensor("ncsn_spy/loss", shape=None).reshape(-1)[0])
    if not np.isclose(loss, expected, rtol=LOSS_RTOL):
        return CheckResult(0.0, f"loss(x) = {loss:.6g}, but the batch mean of the per-row sums is {expected:.6g}")
    return CheckResult(1.0, f"one uniform level per row, noise σ_i ε, weight σ_i²; levels used {counts.tolist()}")


@check("ncsn_langevin")
def ncsn_langevin(ctx: CheckContext) -> CheckResult:
    """Levels from the largest σ down, `num_steps` each, step α_i = ε σ_i² / σ_L² (σ_L the smallest)."""
    x0, sigmas = _f64(ctx.inputs["sm_x"]), np.array(NCSN_SPY_SIGMAS)
    states = _calls(ctx, "annealed_spy/spy_inputs", len(x0), calls=len(sigmas) * ANNEALED_STEPS)
    levels = _indices(ctx, "annealed_spy/spy_indices", len(states), len(x0), len(sigmas), "the level index")
    want = np.repeat(np.arange(len(sigmas)), ANNEALED_STEPS)
    if not (levels == want[:, None]).all():
        order = [int(levels[k * ANNEALED_STEPS, 0]) for k in range(len(sigmas))]
        return CheckResult(
            0.0, f"the levels ran in the order {order}: run every level for num_steps steps, from σ_1 (largest) down"
        )
    after = np.concatenate([states[1:], _f64(ctx.tensor("annealed_spy/final", shape=x0.shape))[None]])
    scores = _spy_out(ctx, states.reshape(-1, 2), kind="drift").reshape(states.shape)
    fits = []
    for i, sigma in enumerate(sigmas):
        rows = slice(i * ANNEALED_STEPS, (i + 1) * ANNEALED_STEPS)
        drift, variance, _ = _step_fit(states[rows], after[rows], scores[rows])
        alpha = ANNEALED_EPS * (sigma / sigmas[-1]) ** 2
        if abs(variance / (ANNEALED_EPS * (sigma / sigmas[0]) ** 2) - 1) < VAR_RTOL and i < len(sigmas) - 1:
            return CheckResult(
                0.0,
                "the step sizes divide by the largest σ (α_i = ε σ_i²/σ_1², the course's convention); the template's "
                "α_i = ε σ_i²/σ_L² divides by the smallest",
            )
        if problem := _langevin_problem(drift, variance, alpha, f"level {i} (σ = {sigma:g})"):
            return CheckResult(0.0, problem)
        fits.append(f"{variance:.4g}")
    return CheckResult(1.0, f"levels from the largest σ down; noise variance per level {', '.join(fits)} = α_i")


# ---------------------------------------------------------------- score matching metrics


@check("dsm_fisher")
def dsm_fisher(ctx: CheckContext) -> CheckResult:
    """Fisher divergence of the trained score to the exact score of noised moons, at the host's points."""
    points = _f64(ctx.inputs["dsm_points"])
    scores = _f64(ctx.tensor("dsm_train/scores", shape=points.shape))
    exact = moons_score(points, float(ctx.budget("dsm_train")["sigma"]))
    value = float(((scores - exact) ** 2).sum(1).mean())
    return CheckResult(
        value=value,
        message=f"E‖s(x̃) - ∇log p_σ(x̃)‖² over {len(points)} noised test points (‖∇log p_σ‖² averages "
        f"{float((exact**2).sum(1).mean()):.1f})",
    )


def _samples_item(ctx: CheckContext, probe: str, title: str) -> CheckResult:
    test = _f64(ctx.inputs["moons_test"])
    samples = _f64(ctx.tensor(f"{probe}/samples", shape=(int(ctx.budget(probe)["samples"]), 2)))
    ctx.scatter(title, samples, test)
    recall = nn_recall(samples, test, RECALL_RADIUS)
    value = energy_distance(samples, test)
    message = f"energy distance {value:.4f} to {len(test)} test points; recall {recall:.2f} (radius {RECALL_RADIUS})"
    return CheckResult(value=value, message=message, details={"recall": recall})


@check("ncsn_samples")
def ncsn_samples(ctx: CheckContext) -> CheckResult:
    return _samples_item(ctx, "ncsn_train", "NCSN samples (annealed Langevin) over the test points")


# ---------------------------------------------------------------- DDPM


@check("ddpm_schedules")
def ddpm_schedules(ctx: CheckContext) -> CheckResult:
    failures, cases = [], 0
    for length in ctx.inputs["schedule_lengths"].tolist():
        for schedule in ("cosine", "linear"):
            cases += 1
            want = make_betas(int(length), schedule).numpy()
            got = _f64(ctx.tensor(f"ddpm_schedules/{schedule}_{length}", shape=None))
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-7):
                failures.append(f"make_betas({length}, {schedule!r}) differs from the schedule the template defines")
    return CheckResult.of_cases(failures, cases, "cosine and linear betas at T = 100 and 1000")


def _hint(got: np.ndarray, want: np.ndarray, t_first: np.ndarray | None, what: str) -> str:
    if got.shape == want.shape and np.allclose(got**2, want, rtol=1e-3):
        return f"{what} is the square root of the right value (a standard deviation returned as a variance?)"
    if t_first is not None and got.shape == t_first.shape and np.allclose(got, t_first, rtol=1e-4, atol=1e-6):
        return f"{what} uses t[0] for every row: index the coefficients with each row's t"
    return f"{what} differs from the reference (max error {float(np.abs(got - want).max()):.3g})"


def _coefficient_cases(schedule: str, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> dict[str, tuple]:
    """Reference outputs of every call of the `ddpm_coefficients` probe, on the host's inputs."""
    betas = make_betas(100, schedule)
    fwd, rev = ForwardDiffusion(betas), ReverseDiffusion(betas)
    ones, five = torch.ones(1, 1, dtype=torch.float64), torch.tensor([5])
    course = COURSE_VALUES[schedule]
    return {
        "q_mean_var": fwd.get_mean_variance(x, t),
        "q_sample": (fwd.get_samples(x, t, eps),),
        "x0": (rev.get_x0(x, eps, t),),
        "p_mean_var": rev.get_mean_variance(x, eps, t),
        "course_q": (torch.tensor([[course[0]]]), torch.tensor([[course[1]]])),
        "course_sample": (torch.tensor([[course[2]]]),),
        "course_x0": (torch.tensor([[course[3]]]),),
        "course_p": (torch.tensor([[course[4]]]), torch.tensor([[course[5]]])),
        "_ones": (ones, five),
    }


@check("ddpm_coefficients")
def ddpm_coefficients(ctx: CheckContext) -> CheckResult:
    """Forward and reverse means, variances, samples and x̂_0 on a vector t, and the course's values."""
    record = ctx.probe("ddpm_coefficients").values
    x, eps = torch.from_numpy(_f64(ctx.inputs["coef_x"])), torch.from_numpy(_f64(ctx.inputs["coef_eps"]))
    t = torch.from_numpy(ctx.inputs["coef_t"])
    failures, cases = [], 0
    for schedule in ("cosine", "linear"):
        want_all = _coefficient_cases(schedule, x, eps, t)
        t_first = _coefficient_cases(schedule, x, eps, t[:1].expand_as(t))
        for name, want in want_all.items():
            if name.startswith("_"):
                continue
            cases += 1
            call = f"{schedule} schedule, {name.replace('_', ' ')}"
            if error := record.get(f"{schedule}_{name}_error"):
                failures.append(f"{call}: {error}")
                continue
            for k, part in enumerate(want):
                key = f"ddpm_coefficients/{schedule}_{name}_{k}"
                if key not in ctx.artifacts.tensors:
                    failures.append(f"{call}: returned {k} values, expected {len(want)}")
                    break
                target = part.numpy()
                got = _f64(ctx.tensor(key, shape=None))
                with contextlib.suppress(ValueError):  # a variance (B, 1) stands for (B, D)
                    got = np.broadcast_to(got, target.shape)
                if got.shape != target.shape or not np.allclose(got, target, rtol=1e-4, atol=1e-6):
                    first = t_first[name][k].numpy() if not name.startswith("course") else None
                    failures.append(f"{call}: {_hint(got, target, first, f'output {k}')}")
                    break
    return CheckResult.of_cases(failures, cases, "forward and reverse coefficients on a vector t; the course's values")


@check("ddpm_reverse")
def ddpm_reverse(ctx: CheckContext) -> CheckResult:
    """get_samples(x_t, ε, t): N(μ̃, β̃_t) over many rows for t > 0, exactly μ̃ at t = 0."""
    x, eps, t = (torch.from_numpy(_f64(ctx.inputs[k])) for k in ("reverse_x", "reverse_eps", "reverse_t"))
    t = t.long()
    reverse = ReverseDiffusion(make_betas(100, "cosine"))
    mean, variance = (a.numpy() for a in reverse.get_mean_variance(x, eps, t))
    samples = _f64(ctx.tensor("ddpm_reverse/samples", shape=tuple(x.shape)))
    beta = reverse.betas.numpy()
    for step in REVERSE_T:
        rows = t.numpy() == step
        if step == 0:
            if not np.allclose(samples[rows], mean[rows], atol=1e-4):
                error = float(np.abs(samples[rows] - mean[rows]).max())
                return CheckResult(
                    0.0, f"at t = 0 the sample must be the posterior mean μ̃_0, without noise (off by {error:.3g})"
                )
            continue
        z = (samples[rows] - mean[rows]) / np.sqrt(variance[rows])
        ratio = np.sqrt(beta[step] / variance[rows][0, 0])  # the std of z if β_t were the variance
        hint = ""
        if ratio > 1.1 and abs(z.std() - ratio) < 0.05 * ratio:
            hint = " (β_t used as the variance; the posterior's is β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t))"
        if problem := _noise_problem(z, f"at t = {step}, (sample - μ̃) / √β̃_t", hint):
            return CheckResult(0.0, problem)
    return CheckResult(1.0, f"samples ~ N(μ̃_t, β̃_t) at t = {REVERSE_T[1:]} and the mean at t = 0")


@check("ddpm_loss")
def ddpm_loss(ctx: CheckContext) -> CheckResult:
    """t uniform on 0..T-1 per row, ε ~ N(0, 1) recovered from x_t, loss = mean (ε_θ(x_t, t) - ε)²."""
    x0 = _f64(ctx.inputs["ddpm_x"])
    xt = _calls(ctx, "ddpm_loss_spy/spy_inputs", len(x0), calls=1)[0]
    t = _indices(ctx, "ddpm_loss_spy/spy_indices", 1, len(x0), SPY_LENGTH, "the time step t")[0]
    counts = np.bincount(t, minlength=SPY_LENGTH)
    if counts[0] == 0:
        return CheckResult(0.0, f"t is never 0 in {len(t)} draws: draw t uniformly from 0..T-1 (0-based), not 1..T")
    if counts.min() < 0.6 * len(t) / SPY_LENGTH:
        return CheckResult(0.0, f"t is not uniform on 0..T-1 (counts from {counts.min()} to {counts.max()})")
    abar = ForwardDiffusion(make_betas(SPY_LENGTH, "cosine")).alphas_cumprod.numpy()[t][:, None]
    eps = (xt - np.sqrt(abar) * x0) / np.sqrt(1 - abar)
    if problem := _noise_problem(eps, "(x_t - √ᾱ_t x_0) / √(1 - ᾱ_t)", " (is x_t made with the cosine schedule?)"):
        return CheckResult(0.0, problem)
    expected = float(((_spy_out(ctx, xt, t, "noise") - eps) ** 2).mean())
    loss = float(ctx.tensor("ddpm_loss_spy/loss", shape=(1,))[0])
    if not np.isclose(loss, expected, rtol=LOSS_RTOL):
        return CheckResult(0.0, f"loss(x0) = {loss:.6g}, but the mean of (ε_θ(x_t, t) - ε)² is {expected:.6g}")
    return CheckResult(1.0, f"t uniform on 0..{SPY_LENGTH - 1}, ε ~ N(0, 1) (std {eps.std():.3f}), MSE loss")


@check("ddpm_sampling")
def ddpm_sampling(ctx: CheckContext) -> CheckResult:
    """T calls with t = T-1 .. 0; each step x_{t-1} = μ̃(x_t, ε_θ) + √β̃_t z, no noise at t = 0."""
    n = int(ctx.inputs["spy_samples"][0])
    states = _calls(ctx, "ddpm_sample_spy/spy_inputs", n, calls=SPY_LENGTH)
    t = _indices(ctx, "ddpm_sample_spy/spy_indices", SPY_LENGTH, n, SPY_LENGTH, "the time step t")
    if not (t == np.arange(SPY_LENGTH)[::-1, None]).all():
        return CheckResult(0.0, f"the time steps ran {t[:3, 0].tolist()} .. {t[-3:, 0].tolist()}, expected T-1 .. 0")
    if problem := _noise_problem(states[0], "the starting x_T"):
        return CheckResult(0.0, problem)
    after = np.concatenate([states[1:], _f64(ctx.tensor("ddpm_sample_spy/samples", shape=(n, 2)))[None]])
    reverse = ReverseDiffusion(make_betas(SPY_LENGTH, "cosine"))
    residuals, ratios = [], []
    for k, step in enumerate(range(SPY_LENGTH - 1, -1, -1)):
        xt, tt = torch.from_numpy(states[k]), torch.full((n,), step)
        eps_hat = torch.from_numpy(_spy_out(ctx, states[k], t[k], "noise"))
        mean, variance = (a.numpy() for a in reverse.get_mean_variance(xt, eps_hat, tt))
        if step == 0:
            if not np.allclose(after[k], mean, atol=1e-4):
                error = float(np.abs(after[k] - mean).max())
                return CheckResult(
                    0.0, f"the last step (t = 0) must return the posterior mean μ̃_0, without noise (off by {error:.3g})"
                )
            continue
        residuals.append((after[k] - mean) / np.sqrt(variance))
        ratios.append(float(reverse.betas[step] / variance[0, 0]))
    z = np.concatenate(residuals)
    hint = " (β_t used as the variance instead of β̃_t?)" if abs(z.std() ** 2 / np.mean(ratios) - 1) < 0.02 else ""
    if problem := _noise_problem(z, "(x_{t-1} - μ̃_t) / √β̃_t over the steps", hint):
        return CheckResult(0.0, problem)
    return CheckResult(1.0, f"{SPY_LENGTH} steps from t = {SPY_LENGTH - 1} to 0, x_(t-1) ~ N(μ̃_t, β̃_t), mean at t = 0")


@check("ddpm_moons")
def ddpm_moons(ctx: CheckContext) -> CheckResult:
    return _samples_item(ctx, "ddpm_moons_train", "DDPM samples over the test points")


@check("ddpm_digits")
def ddpm_digits(ctx: CheckContext) -> CheckResult:
    """Test ε-MSE of the trained network at the host's (x_t, t, ε), which the probes never see."""
    eps = _f64(ctx.inputs["digits_eps"])
    eps_hat = _f64(ctx.tensor("ddpm_digits_train/eps_hat", shape=eps.shape))
    value = float(((eps_hat - eps) ** 2).mean())
    record = ctx.probe("ddpm_digits_train").values
    ctx.curve("DDPM on digits: training loss under the grader's loop", ctx.tensor("ddpm_digits_train/losses").tolist())
    samples = _f64(ctx.tensor("ddpm_digits_train/samples", shape=(None, *eps.shape[1:])))
    images = np.clip((samples + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
    ctx.figure("DDPM samples of digits", images[:64])
    return CheckResult(
        value=value,
        message=f"test ε-MSE {value:.4f} at {len(eps)} host-drawn (x_t, t); train loss "
        f"{record.get('first_loss', float('nan')):.3f} -> {record.get('last_loss', float('nan')):.3f}; "
        f"{_standardised_kid(ctx, images)}",
    )


def _standardised_kid(ctx: CheckContext, images: np.ndarray) -> str:
    """KID of the samples against the test images on classifier features standardised by the test set's
    mean and sd (raw features give KIDs of ~1e6): a secondary signal, in the message only."""
    name = "digits" if ctx.profile == "ci" else "mnist"
    try:
        test = classifier_features(name, load_dataset(name, "test")[0])
        samples = classifier_features(name, images)
    except (FileNotFoundError, ValueError) as exc:
        return f"no KID ({exc})"
    mean, sd = test.mean(axis=0), test.std(axis=0) + 1e-8
    result = kid((samples - mean) / sd, (test - mean) / sd, num_subsets=20, subset_size=len(images))
    return f"secondary: KID {result.mean:.3f} ± {result.std:.3f} on standardised classifier features (real: ~0)"
