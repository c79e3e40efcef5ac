"""A fast, deterministic stand-in for the grading pipeline, for tests, benchmarks and load tests.

Select it with ``DGM_GRADER=server.testing:fake_grade``. It reads instructions from the notebook's
metadata (``metadata.dgm_fake``): ``fraction`` of the automatic points to award (default 1),
``sleep`` seconds to spend, ``error`` to raise a transient error, ``invalid`` to reject the notebook,
``theory`` to compare an answer in the symbolic worker process first (as theory items do), which then
stays alive as the grader's child.
Every call appends ``<pid> <notebook name>`` to the file named by ``DGM_FAKE_LOG`` when it is set,
so tests can count how often each submission was graded.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from grader.results import ItemResult, ItemStatus, Report
from server.grading import PermanentGradingError

FAKE_RUBRIC: list[dict[str, Any]] = [
    {"id": "theory", "kind": "theory", "title": "Theory: final answers", "points": 4.0, "task": "Theory"},
    {"id": "code", "kind": "check", "title": "MaskedConv2d masks", "points": 4.0, "task": "Task 1"},
    {"id": "discussion", "kind": "manual", "title": "Discussion of samples", "points": 5.0, "task": "Task 2"},
]
FAKE_POINTS = sum(i["points"] for i in FAKE_RUBRIC)


def make_notebook(*, fraction: float = 1.0, sleep: float = 0.0, tag: str = "", **extra: Any) -> bytes:
    """A small valid nbformat-4 notebook carrying fake-grader instructions."""
    nb = {
        "cells": [
            {
                "cell_type": "markdown",
                "id": "intro",
                "metadata": {},
                "source": "# Homework\nTheory: $p(x) = \\prod_i p(x_i | x_{<i})$",
            },
            {
                "cell_type": "code",
                "id": "solution",
                "metadata": {"tags": ["solution"]},
                "execution_count": 1,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": f"ok {tag}\n"}],
                "source": "print('ok')",
            },
        ],
        "metadata": {"dgm_fake": {"fraction": fraction, "sleep": sleep, "tag": tag, **extra}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb).encode()


def fake_grade(notebook_path: Path, assignment: str, *, executed_path: Path | None = None) -> Report:
    """Grade against :data:`FAKE_RUBRIC` as the notebook's metadata says."""
    nb = json.loads(Path(notebook_path).read_text())
    if executed_path is not None:
        executed = json.loads(json.dumps(nb))
        executed["cells"].append(
            {
                "cell_type": "code",
                "id": "grader",
                "metadata": {},
                "execution_count": 99,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "executed by the grader\n"}],
                "source": "# probes",
            }
        )
        Path(executed_path).write_text(json.dumps(executed))
    opts = nb.get("metadata", {}).get("dgm_fake", {})
    log_path = os.environ.get("DGM_FAKE_LOG")
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"{os.getpid()} {Path(notebook_path).name}\n")
    if opts.get("theory"):
        import sympy

        from grader.theory.worker import symbolically_equal

        x = sympy.Symbol("x")
        symbolically_equal((x + 1) ** 2, x**2 + 2 * x + 1, {"x": (-1.0, 1.0)}, timeout_s=30)
    if opts.get("sleep"):
        time.sleep(float(opts["sleep"]))
    if opts.get("invalid"):
        raise PermanentGradingError("the notebook has no solution cells")
    if opts.get("error"):
        raise RuntimeError(str(opts["error"]))
    fraction = float(opts.get("fraction", 1.0))
    items = []
    for spec in FAKE_RUBRIC:
        manual = spec["kind"] == "manual"
        pts = 0.0 if manual else round(spec["points"] * fraction, 4)
        status: ItemStatus = (
            "pending" if manual else ("passed" if fraction >= 1 else "partial" if fraction > 0 else "failed")
        )
        items.append(
            ItemResult(
                id=spec["id"],
                kind=spec["kind"],
                title=spec["title"],
                task=spec["task"],
                points=pts,
                max_points=spec["points"],
                status=status,
                message="awaiting TA review" if manual else f"{fraction:.0%} of the sub-cases passed",
            )
        )
    auto = [i for i in items if i.kind != "manual"]
    return Report(
        assignment=assignment,
        profile="ci",
        total=sum(i.points for i in items),
        max_total=FAKE_POINTS,
        auto_total=sum(i.points for i in auto),
        auto_max=sum(i.max_points for i in auto),
        pending_manual=sum(i.max_points for i in items if i.kind == "manual"),
        items=items,
    )
