"""Probes of __NAME__: queries run in the student's kernel after the notebook (docs/internals.md).

They only produce data (tensors, scalars); checks.py on the host turns it into points.
"""

import torch
from harness import ProbeContext, probe, train


@probe("square", needs=("x",))
def square(ctx: ProbeContext) -> None:
    ctx.save("y", ctx.get("square")(ctx.data["x"]))


@probe("fit", needs=("points",))
def fit(ctx: ProbeContext) -> None:
    model = ctx.get("Line")()
    losses = train(model, ctx.data["points"], steps=int(ctx.budget["steps"]), batch_size=16, lr=0.1, seed=ctx.seed)
    ctx.save("losses", torch.tensor(losses))
