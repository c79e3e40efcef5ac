from pathlib import Path

import pytest

from grader.checks import CheckResult
from grader.rubric import load_rubric
from grader.score import Outcome, score, totals

RUBRIC = load_rubric(Path(__file__).parent / "toy" / "rubric.yaml")


def run(square: float, loss: float | None, t1: float = 1.0, baseline: float | None = 0.05):
    outcomes = {
        "t1": Outcome(CheckResult(fraction=t1)),
        "square": Outcome(CheckResult(fraction=square, message="m")),
        "fit_loss": Outcome(CheckResult(value=loss)),
    }
    items = score(RUBRIC, outcomes, baselines={} if baseline is None else {"fit_loss": baseline}, profile="ci")
    return {i.id: i for i in items}, totals(items)


def test_everything_right_gets_all_automatic_points():
    items, tot = run(1.0, 0.05)
    assert tot == {"total": 2.5 + 0.5, "auto_total": 3.0, "auto_max": 3.0, "pending_manual": 1.0}
    assert items["t1_proof"].status == "pending"
    assert items["fit_loss"].details["ratio"] == pytest.approx(1.0)


def test_metric_partial_credit_is_linear():
    items, _ = run(1.0, 0.05 * 2.25)  # halfway between full_at 1.5 and zero_at 3.0
    assert items["fit_loss"].points == pytest.approx(0.75)
    assert items["fit_loss"].status == "partial"


def test_failed_requirement_gates_the_metric():
    items, tot = run(0.0, 0.05)
    assert items["fit_loss"].points == 0
    assert "requires 'square() on oracle inputs' to pass first" in items["fit_loss"].message
    assert tot["auto_total"] == 0.5


def test_missing_baseline_is_an_error_not_a_score():
    items, _ = run(1.0, 0.05, baseline=None)
    assert items["fit_loss"].status == "error"
    assert "calibrate" in items["fit_loss"].message
