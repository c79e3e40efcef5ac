"""Checks of __NAME__: the probes' inputs and the oracle side, on the host (docs/internals.md)."""

import numpy as np

from grader.checks import CheckContext, CheckResult, check, inputs


@inputs
def make_inputs(profile: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, size=(256, 1)).astype(np.float32)
    return {"x": rng.normal(size=(32,)).astype(np.float32), "points": np.concatenate([t, 3 * t + 1], axis=1)}


@check("square")
def square(ctx: CheckContext) -> CheckResult:
    y = ctx.tensor("square/y", shape=(32,))
    ok = bool(np.allclose(y, ctx.inputs["x"] ** 2, rtol=1e-5))
    return CheckResult(fraction=float(ok), message="equals x**2" if ok else "differs from x**2")


@check("fit_loss")
def fit_loss(ctx: CheckContext) -> CheckResult:
    losses = ctx.tensor("fit/losses", shape=(None,))
    return CheckResult(value=float(losses[-5:].mean()))
