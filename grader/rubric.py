"""`rubric.yaml`, loaded into strict pydantic models: a typo fails at load time, not at grading time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grader.errors import AssignmentError
from grader.results import ItemKind

Profile = Literal["ci", "full"]
_POINTS_TOLERANCE = 1e-9
SPREAD_MARGIN = 2.0  # full points reach twice the reference's worst deviation from its median (full_until)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(_Strict):
    id: str
    title: str
    points: float = Field(ge=0)


class Answer(_Strict):
    """The key of a theory item: an expression in `symbols`, compared by `grader.theory`."""

    key: str
    symbols: list[str] = Field(default_factory=list)
    domain: dict[str, tuple[float, float]] = Field(default_factory=dict)
    rtol: float = Field(default=1e-6, gt=0)


@dataclass(frozen=True)
class Baseline:
    """A metric's calibrated reference (`dgm-grader calibrate`): the median over the calibration seeds,
    and the worst seed's ratio to it in the direction that loses points (>= 1 for `better: lower`)."""

    value: float
    worst_ratio: float | None = None  # None: no spread measured (an old baselines file)


class MetricSpec(_Strict):
    """How a metric value is scored relative to the calibrated reference value.

    `ratio = value / baseline`; for `better: lower` full points up to `full_until(baseline)`, zero at
    `ratio >= zero_at`, linear between (mirrored for `better: higher`). `full_at` is where full points
    end at least; SPREAD_MARGIN times the reference's own worst deviation over the calibration seeds
    moves that end out, so that the reference gets full points on any seed. A ratio at or beyond
    `review_at` on the better side (e.g. an NLL below 0.5x the reference's under the same budget) is
    too good to be true — memorised test data or pretrained weights — and goes to a TA instead.
    """

    name: str
    unit: str = ""
    better: Literal["lower", "higher"] = "lower"
    full_at: float = Field(gt=0)
    zero_at: float = Field(gt=0)
    review_at: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> MetricSpec:
        if self.better == "lower" and not self.full_at < self.zero_at:
            raise ValueError(f"lower-is-better metric needs full_at < zero_at, got {self.full_at}, {self.zero_at}")
        if self.better == "higher" and not self.full_at > self.zero_at:
            raise ValueError(f"higher-is-better metric needs full_at > zero_at, got {self.full_at}, {self.zero_at}")
        if self.review_at is not None and not self.too_good(self.review_at):
            raise ValueError(f"review_at {self.review_at} must lie beyond full_at {self.full_at} on the better side")
        return self

    def too_good(self, ratio: float) -> bool:
        """Whether `ratio` (value / baseline) is at or beyond `review_at` on the better side."""
        if self.review_at is None:
            return False
        return (
            ratio <= self.review_at < self.full_at if self.better == "lower" else ratio >= self.review_at > self.full_at
        )

    def full_until(self, baseline: Baseline) -> float:
        """The ratio up to which `value` earns full points: `full_at`, or 1 + SPREAD_MARGIN (worst_ratio - 1),
        the reference's worst calibration seed with its deviation from the median doubled, if that is wider."""
        if baseline.worst_ratio is None:
            return self.full_at
        widened = 1.0 + SPREAD_MARGIN * (baseline.worst_ratio - 1.0)
        return max(self.full_at, widened) if self.better == "lower" else min(self.full_at, widened)

    def fraction(self, value: float, baseline: Baseline) -> float:
        """The fraction of points that `value` earns against `baseline`."""
        if not (math.isfinite(value) and math.isfinite(baseline.value)) or baseline.value <= 0:
            return 0.0
        ratio, full = value / baseline.value, self.full_until(baseline)
        sign = 1.0 if self.better == "lower" else -1.0
        if sign * ratio <= sign * full:
            return 1.0
        if sign * ratio >= sign * self.zero_at:
            return 0.0
        return (self.zero_at - ratio) / (self.zero_at - full)


class Item(_Strict):
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    task: str
    kind: ItemKind
    title: str = ""
    points: float = Field(gt=0)
    requires: list[str] = Field(default_factory=list)
    answer: Answer | None = None
    metric: MetricSpec | None = None
    # For a manual item: what earns its points, and the template cells (`metadata.dgm.id`) that hold the
    # answer, which the TA's grade-by-question page shows.
    guide: str = Field(default="", max_length=4000)
    cells: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _kind_fields(self) -> Item:
        if (self.guide or self.cells) and self.kind != "manual":
            raise ValueError(f"item {self.id}: `guide` and `cells` are for manual items (what a TA grades)")
        if (self.kind == "theory") != (self.answer is not None):
            raise ValueError(f"item {self.id}: `answer` is required for theory items and only for them")
        if (self.kind == "metric") != (self.metric is not None):
            raise ValueError(f"item {self.id}: `metric` is required for metric items and only for them")
        return self


class Limits(_Strict):
    wall_s: float = Field(default=600, gt=0)
    memory_mb: int = Field(default=3072, gt=0)
    cell_timeout_s: float = Field(default=120, gt=0)
    probe_timeout_s: float = Field(default=120, gt=0)
    pids: int = Field(default=256, gt=0)
    cpus: float = Field(default=1.0, gt=0)


class ProfileSpec(_Strict):
    limits: Limits = Field(default_factory=Limits)
    budgets: dict[str, dict[str, float | int | str]] = Field(default_factory=dict)


class Rubric(_Strict):
    assignment: str
    title: str
    points: float = 13
    tasks: list[Task]
    profiles: dict[Profile, ProfileSpec]
    items: list[Item]

    @model_validator(mode="after")
    def _consistent(self) -> Rubric:
        ids = [item.id for item in self.items]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate item ids: {dupes}")
        tasks = {t.id: t for t in self.tasks}
        for item in self.items:
            if item.task not in tasks:
                raise ValueError(f"item {item.id}: unknown task {item.task!r}; tasks are {sorted(tasks)}")
            unknown = [r for r in item.requires if r not in ids]
            if unknown:
                raise ValueError(f"item {item.id}: requires unknown items {unknown}")
        for task in self.tasks:
            got = sum(i.points for i in self.items if i.task == task.id)
            if abs(got - task.points) > _POINTS_TOLERANCE:
                raise ValueError(f"task {task.id}: items sum to {got:g} points, the task has {task.points:g}")
        total = sum(t.points for t in self.tasks)
        if abs(total - self.points) > _POINTS_TOLERANCE:
            raise ValueError(f"tasks sum to {total:g} points, the assignment has {self.points:g}")
        return self

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def profile(self, name: str) -> ProfileSpec:
        if name not in self.profiles:
            raise AssignmentError(f"{self.assignment}: no profile {name!r}; rubric has {sorted(self.profiles)}")
        return self.profiles[name]  # type: ignore[index]


def load_rubric(path: Path) -> Rubric:
    """Load and validate a rubric file; every problem is an `AssignmentError` naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Rubric.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise AssignmentError(f"{path}: {exc}") from exc
