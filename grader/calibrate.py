"""`dgm-grader calibrate hwN`: grade the reference solution on several seeds and store its metric values.

Each metric's baseline is the median over the seeds; its spread (every value, min, max, and the worst
seed's ratio to the median in the direction that loses points) is stored beside it, and the score stage
gives full points up to that worst seed with its deviation from the median times `SPREAD_MARGIN`, where
the rubric's `full_at` is tighter (`MetricSpec.full_until`).
"""

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
from grader.rubric import Baseline, MetricSpec

DEFAULT_RUNS = 10
FIRST_SEED = 1000  # calibration seeds are FIRST_SEED, FIRST_SEED + 1, ...: reproducible, unlike grading's


def spread(values: list[float], spec: MetricSpec) -> dict[str, Any]:
    """The stored baseline of one metric: median, every value, min, max and the worst ratio to the median."""
    median = statistics.median(values)
    worst = max(values) if spec.better == "lower" else min(values)
    return {
        "value": median,
        "values": values,
        "min": min(values),
        "max": max(values),
        "worst_ratio": worst / median,
    }


def calibrate(
    name: str,
    *,
    profile: str = "ci",
    runs: int = DEFAULT_RUNS,
    sandbox: str = "auto",
    assignments_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Grade the solved notebook on `runs` seeds and store each metric's median and spread.

    Refuses (AssignmentError) when the reference's own spread would give full points up to the
    rubric's `zero_at`: such a metric cannot tell a mistake from an unlucky seed.
    """
    assignment = load_assignment(name, assignments_dir)
    if not assignment.solution_path.exists():
        raise AssignmentError(f"{name}: no solved notebook at {assignment.solution_path}")
    specs = {i.id: i.metric for i in assignment.rubric.items if i.metric is not None}
    values: dict[str, list[float]] = {i: [] for i in specs}
    for run in tqdm(range(runs), desc=f"calibrating {name} ({profile})", unit="run"):
        report = grade(assignment.solution_path, assignment, profile=profile, sandbox=sandbox, seed=FIRST_SEED + run)
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
    baselines = {item: spread(v, specs[item]) | {"environment": environment} for item, v in values.items()}
    for item_id, entry in baselines.items():
        spec = specs[item_id]
        full = spec.full_until(Baseline(entry["value"], entry["worst_ratio"]))
        if (full >= spec.zero_at) if spec.better == "lower" else (full <= spec.zero_at):
            raise AssignmentError(
                f"{name} {item_id}: the reference's worst seed is {entry['worst_ratio']:.3f}x its median, so full "
                f"points would reach {full:.3g}x, beyond zero_at {spec.zero_at:g}x: reduce the metric's variance"
            )
    write_baselines(assignment, profile, baselines)
    return baselines
