"""The stored spread of a calibrated metric: median, extremes, and the worst seed in the losing direction."""

from __future__ import annotations

import pytest

from grader.calibrate import spread
from grader.rubric import MetricSpec


def test_worst_ratio_of_a_lower_is_better_metric_is_its_largest_value() -> None:
    spec = MetricSpec(name="nll", full_at=1.1, zero_at=1.6)
    entry = spread([0.30, 0.32, 0.36, 0.31, 0.29], spec)
    assert entry["value"] == 0.31
    assert (entry["min"], entry["max"]) == (0.29, 0.36)
    assert entry["worst_ratio"] == pytest.approx(0.36 / 0.31)


def test_worst_ratio_of_a_higher_is_better_metric_is_its_smallest_value() -> None:
    spec = MetricSpec(name="accuracy", better="higher", full_at=0.9, zero_at=0.5)
    assert spread([0.8, 0.7, 0.9], spec)["worst_ratio"] == pytest.approx(0.7 / 0.8)
