"""Toy probes: call the student's square() on oracle inputs and fit a line with their model."""

import torch
from harness import ProbeContext, probe, train


@probe("square", needs=("x",))
def square(ctx: ProbeContext) -> None:
    fn = ctx.get("square")
    ctx.save("y", fn(ctx.data["x"]))


@probe("fit", needs=("points",))
def fit(ctx: ProbeContext) -> None:
    model = ctx.get("Line")()
    losses = train(model, ctx.data["points"], steps=int(ctx.budget["steps"]), batch_size=16, lr=0.1, seed=ctx.seed)
    ctx.save("losses", torch.tensor(losses))
    ctx.record("n_params", sum(p.numel() for p in model.parameters()))
