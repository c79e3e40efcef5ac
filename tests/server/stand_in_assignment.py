"""A tiny stand-in assignment (``tiny``) in the layout of docs/internals.md, for end-to-end tests.

Kept out of ``assignments/`` so the real homeworks can change without breaking the server's tests.
"""

from __future__ import annotations

import json
from pathlib import Path

RUBRIC = """\
assignment: tiny
title: "Tiny stand-in assignment"
points: 13
tasks:
  - {id: theory, title: "Theory", points: 4}
  - {id: code, title: "Code", points: 9}
profiles:
  ci:
    limits: {wall_s: 120, memory_mb: 2048, cell_timeout_s: 30, probe_timeout_s: 30}
items:
  - {id: t_double, task: theory, kind: theory, title: "Derivative of x squared", points: 4,
     answer: {key: "2*x", symbols: [x], domain: {x: [0.1, 3]}}}
  - {id: square, task: code, kind: check, title: "square(x)", points: 5}
  - {id: discussion, task: code, kind: manual, title: "Discussion", points: 4}
"""

PROBES = """\
import torch
from harness import ProbeContext, probe


@probe("square")
def square(ctx: ProbeContext) -> None:
    fn = ctx.get("square")
    ctx.save("values", torch.tensor([float(fn(float(x))) for x in range(5)], dtype=torch.float32))
"""

CHECKS = """\
import numpy as np

from grader.checks import CheckContext, CheckResult, check


@check("square")
def square(ctx: CheckContext) -> CheckResult:
    got = ctx.tensor("square/values", shape=(5,))
    ok = np.isclose(got, np.arange(5, dtype=np.float32) ** 2)
    return CheckResult(fraction=float(ok.mean()), message=f"{int(ok.sum())} of 5 values right")
"""


def _cell(kind: str, source: str, cell_id: str, tags: list[str] | None = None) -> dict:
    cell: dict = {"cell_type": kind, "id": cell_id, "metadata": {"dgm": {"id": cell_id}}, "source": source}
    if tags:
        cell["metadata"]["tags"] = tags
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(square_body: str = "raise NotImplementedError", answer: str = "...") -> bytes:
    cells = [
        _cell("markdown", "# Tiny\nCompute $x^2$.", "intro"),
        _cell("code", "import math", "setup"),
        _cell("code", f"def square(x):\n    {square_body}", "square", ["solution"]),
        _cell("markdown", f"The derivative of $x^2$:\n\n```answer\nt_double: {answer}\n```", "answer", ["theory"]),
    ]
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb).encode()


def write(root: Path) -> Path:
    """Create ``root/tiny`` and return ``root``."""
    folder = root / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rubric.yaml").write_text(RUBRIC)
    (folder / "probes.py").write_text(PROBES)
    (folder / "checks.py").write_text(CHECKS)
    (folder / "tiny.ipynb").write_bytes(notebook())
    return root
