from pathlib import Path

import pytest
import yaml

from grader.errors import AssignmentError
from grader.rubric import Baseline, MetricSpec, load_rubric

TOY = Path(__file__).parent / "toy" / "rubric.yaml"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def toy() -> dict:
    return yaml.safe_load(TOY.read_text())


def test_toy_rubric_loads():
    rubric = load_rubric(TOY)
    assert rubric.points == 4
    assert rubric.item("fit_loss").requires == ["square"]


def test_typo_in_a_key_fails_at_load_time(tmp_path):
    data = toy()
    data["items"][2]["pionts"] = 1
    with pytest.raises(AssignmentError, match="pionts"):
        load_rubric(write(tmp_path, data))


def test_points_must_add_up(tmp_path):
    data = toy()
    data["items"][2]["points"] = 2.0
    with pytest.raises(AssignmentError, match=r"task code: items sum to 3\.5 points, the task has 2\.5"):
        load_rubric(write(tmp_path, data))


def test_unknown_requirement_and_kind_fields(tmp_path):
    data = toy()
    data["items"][3]["requires"] = ["nope"]
    with pytest.raises(AssignmentError, match="requires unknown items"):
        load_rubric(write(tmp_path, data))
    data = toy()
    del data["items"][3]["metric"]
    with pytest.raises(AssignmentError, match="`metric` is required"):
        load_rubric(write(tmp_path, data))


def test_guide_and_cells_belong_to_manual_items(tmp_path):
    data = toy()
    data["items"][1] |= {"guide": "1.0: a complete proof; 0.5: a gap", "cells": ["t1"]}
    assert load_rubric(write(tmp_path, data)).item("t1_proof").cells == ["t1"]
    data["items"][2]["guide"] = "what earns the points"
    with pytest.raises(AssignmentError, match="are for manual items"):
        load_rubric(write(tmp_path, data))


@pytest.mark.parametrize(
    ("value", "fraction"), [(1.0, 1.0), (1.1, 1.0), (1.35, 0.5), (1.6, 0.0), (9.0, 0.0), (float("nan"), 0.0)]
)
def test_metric_fraction_is_linear_between_full_and_zero(value, fraction):
    spec = MetricSpec(name="nll", full_at=1.1, zero_at=1.6)
    assert spec.fraction(value, Baseline(1.0)) == pytest.approx(fraction)


def test_higher_is_better_metric():
    spec = MetricSpec(name="acc", better="higher", full_at=0.9, zero_at=0.5)
    assert spec.fraction(0.95, Baseline(1.0)) == 1.0
    assert spec.fraction(0.7, Baseline(1.0)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        MetricSpec(name="acc", better="higher", full_at=0.5, zero_at=0.9)
