"""The grading schemes and late policy as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.scheme import FIFTEEN_POINT, THIRTEEN_POINT, CoursePolicy, days_late, late_factor


@pytest.mark.parametrize(
    ("points", "grade"),
    [(0, 0), (23, 0), (23.999, 0), (24, 1), (31.5, 1), (32, 2), (40, 3), (88, 9), (96, 10), (104, 11)],
)
def test_thirteen_point_final_grade(points: float, grade: int) -> None:
    assert THIRTEEN_POINT.final_grade(points) == grade


def test_thirteen_point_scheme_totals() -> None:
    assert THIRTEEN_POINT.max_points == 6 * 13 + 26 == 104


def test_float_sums_do_not_fall_below_a_step() -> None:
    # 120 fifths are 24 points, but the float sum is 23.999999999999947.
    total = sum([0.2] * 120)
    assert total < 24
    assert THIRTEEN_POINT.final_grade(total) == 1


@pytest.mark.parametrize(("points", "grade"), [(0, 0), (9.99, 0), (10, 1), (99, 9), (100, 10), (120, 10)])
def test_fifteen_point_final_grade(points: float, grade: int) -> None:
    assert FIFTEEN_POINT.final_grade(points) == grade
    assert FIFTEEN_POINT.max_points == 120


def test_days_late_counts_started_days_after_grace() -> None:
    deadline = datetime(2026, 10, 2, 23, 59, tzinfo=UTC)
    assert days_late(deadline, deadline) == 0
    assert days_late(deadline + timedelta(seconds=1), deadline) == 1
    assert days_late(deadline + timedelta(days=1), deadline) == 1
    assert days_late(deadline + timedelta(days=1, seconds=1), deadline) == 2
    assert days_late(deadline + timedelta(minutes=10), deadline, grace_minutes=15) == 0
    assert days_late(deadline + timedelta(days=30), None) == 0


def test_late_factor() -> None:
    policy = CoursePolicy(late_penalty_per_day=0.1, late_max_days=7)
    assert [late_factor(d, policy) for d in (0, 1, 3, 7, 8)] == pytest.approx([1, 0.9, 0.7, 0.3, 0])
    harsh = CoursePolicy(late_penalty_per_day=0.5, late_max_days=None)
    assert late_factor(3, harsh) == 0.0
