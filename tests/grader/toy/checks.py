"""Toy checks: the oracle of square() is x**2; the metric is the final training loss."""

import numpy as np

from grader.checks import CheckContext, CheckResult, check, inputs


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32,)).astype(np.float32)
    t = rng.uniform(-1, 1, size=(256, 1)).astype(np.float32)
    return {"x": x, "points": np.concatenate([t, 3 * t + 1], axis=1)}


@check("square")
def square(ctx: CheckContext) -> CheckResult:
    y = ctx.tensor("square/y", shape=(32,))
    ok = np.isclose(y, ctx.inputs["x"] ** 2, rtol=1e-5).mean()
    return CheckResult(fraction=float(ok == 1.0), message="matches x**2" if ok == 1.0 else "differs from x**2")


@check("fit_loss")
def fit_loss(ctx: CheckContext) -> CheckResult:
    losses = ctx.tensor("fit/losses", shape=(None,))
    return CheckResult(value=float(losses[-5:].mean()))
