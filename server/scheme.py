"""The course's grading scheme and submission policies, as data.

A course stores a :class:`GradingScheme` (points per homework, number of homeworks, exam points and
the final-grade rule) and a :class:`CoursePolicy` (which submission counts, late penalties). Both are
plain pydantic models kept as JSON on the course row, so a regrade or a policy change recomputes
everything from the stored scores.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

# Points are sums of floats (0.1 + 0.2 ...); rounding before the floor keeps 24 from becoming 23.999.
_POINT_DECIMALS = 6
# Numbers from JSON: no booleans, no infinities; bounds keep every sum and quotient finite.
_Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
_Count = Annotated[int, Strict()]


class GradingScheme(BaseModel):
    """``final = min(max_grade, floor(relu(points / grade_divisor - grade_offset)))``.

    The 13-point scheme is divisor 8, offset 2, no cap; the 15-point scheme divisor 10, offset 0, cap 10;
    the 10-point scheme (one assignment, the UPM course) divisor 1, offset 0, cap 10.
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(max_length=64)
    homework_points: _Number = Field(gt=0, le=1000)
    num_homeworks: _Count = Field(gt=0, le=100)
    exam_points: _Number = Field(ge=0, le=10_000)
    grade_divisor: _Number = Field(ge=0.01, le=10_000)
    grade_offset: _Number = Field(default=0.0, ge=-10_000, le=10_000)
    max_grade: _Count | None = Field(default=None, ge=0, le=1000)

    @property
    def max_points(self) -> float:
        return self.homework_points * self.num_homeworks + self.exam_points

    def final_grade(self, points: float) -> int:
        """The course grade for a point total."""
        x = round(points / self.grade_divisor - self.grade_offset, _POINT_DECIMALS)
        grade = math.floor(max(0.0, x))
        return grade if self.max_grade is None else min(grade, self.max_grade)


THIRTEEN_POINT = GradingScheme(
    name="13-point",
    homework_points=13,
    num_homeworks=6,
    exam_points=26,
    grade_divisor=8,
    grade_offset=2,
)
FIFTEEN_POINT = GradingScheme(
    name="15-point",
    homework_points=15,
    num_homeworks=6,
    exam_points=30,
    grade_divisor=10,
    grade_offset=0,
    max_grade=10,
)
# The UPM course: one 10-point assignment, no exam; the grade is its points (capped at 10, floored).
TEN_POINT = GradingScheme(
    name="10-point",
    homework_points=10,
    num_homeworks=1,
    exam_points=0,
    grade_divisor=1,
    grade_offset=0,
    max_grade=10,
)
BUILTIN_SCHEMES: dict[str, GradingScheme] = {s.name: s for s in (THIRTEEN_POINT, FIFTEEN_POINT, TEN_POINT)}

CountingRule = Literal["latest_on_time", "latest", "best"]


class CoursePolicy(BaseModel):
    """Which submission counts and what lateness costs.

    ``latest_on_time``: the latest submission before the (extended) deadline; if there is none, the
    latest late one with its penalty. ``latest``: the latest, penalised if late. ``best``: the highest
    score after penalties. A late submission loses ``late_penalty_per_day`` of its points per started
    day, and everything after ``late_max_days`` days.
    """

    model_config = ConfigDict(frozen=True)

    counting: CountingRule = "latest_on_time"
    late_penalty_per_day: _Number = Field(default=0.1, ge=0, le=1)
    late_max_days: _Count | None = Field(default=7, ge=0, le=365)
    grace_minutes: _Number = Field(default=0, ge=0, le=7 * 24 * 60)


def days_late(uploaded_at: datetime, deadline: datetime | None, *, grace_minutes: float = 0) -> int:
    """Started days past the deadline (0 when on time or when there is no deadline)."""
    if deadline is None:
        return 0
    late_s = (uploaded_at - deadline).total_seconds() - grace_minutes * 60
    return 0 if late_s <= 0 else math.ceil(late_s / 86400)


def late_factor(days: int, policy: CoursePolicy) -> float:
    """The fraction of its points a submission ``days`` late keeps."""
    if days <= 0:
        return 1.0
    if policy.late_max_days is not None and days > policy.late_max_days:
        return 0.0
    return max(0.0, 1.0 - policy.late_penalty_per_day * days)


def round_points(points: float) -> float:
    return round(points, _POINT_DECIMALS)
