"""`dgm-grader calibrate hwN`: grade the reference solution and store its metric values as baselines."""

from __future__ import annotations

import datetime
import platform
import statistics
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from grader.assignment import load_assignment, write_baselines
from grader.errors import AssignmentError
from grader.pipeline import grade


def calibrate(
    name: str, *, profile: str = "ci", runs: int = 3, sandbox: str = "auto", assignments_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Grade the solved notebook `runs` times (different seeds) and store the median of each metric."""
    assignment = load_assignment(name, assignments_dir)
    if not assignment.solution_path.exists():
        raise AssignmentError(f"{name}: no solved notebook at {assignment.solution_path}")
    metric_ids = [i.id for i in assignment.rubric.items if i.kind == "metric"]
    values: dict[str, list[float]] = {i: [] for i in metric_ids}
    for run in tqdm(range(runs), desc=f"calibrating {name} ({profile})", unit="run"):
        report = grade(assignment.solution_path, assignment, profile=profile, sandbox=sandbox, seed=1000 + run)
        for item in report.items:
            if item.id not in values:
                continue
            value = item.details.get("value")
            if not isinstance(value, float | int):
                raise AssignmentError(f"{name}: the reference solution produced no value for {item.id}: {item.message}")
            values[item.id].append(float(value))
    environment = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "runs": runs,
        "date": datetime.date.today().isoformat(),
    }
    baselines = {
        item: {"value": statistics.median(v), "values": v, "environment": environment} for item, v in values.items()
    }
    write_baselines(assignment, profile, baselines)
    return baselines
