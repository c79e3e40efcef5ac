from pathlib import Path

import pytest

from grader.checks import CheckResult
from grader.rubric import SPREAD_MARGIN, Baseline, MetricSpec, load_rubric
from grader.score import Outcome, score, totals

RUBRIC = load_rubric(Path(__file__).parent / "toy" / "rubric.yaml")


REFERENCE = Baseline(0.05)


def run(square: float, loss: float | None, t1: float = 1.0, baseline: Baseline | None = REFERENCE):
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


def test_full_points_reach_twice_the_references_worst_deviation():
    reference = Baseline(0.05, worst_ratio=1.3)  # its worst calibration seed was 1.3x its median
    full = 1 + SPREAD_MARGIN * 0.3  # 1.6 with the margin 2, beyond the rubric's full_at 1.5
    items, _ = run(1.0, 0.05 * full, baseline=reference)
    assert items["fit_loss"].points == 1.5
    assert items["fit_loss"].details["full_until"] == pytest.approx(full)
    items, _ = run(1.0, 0.05 * (full + 3.0) / 2, baseline=reference)
    assert items["fit_loss"].points == pytest.approx(0.75)  # linear from the widened end to zero_at 3.0
    for narrow in (Baseline(0.05, worst_ratio=1.05), Baseline(0.05)):  # small or unmeasured spread
        items, _ = run(1.0, 0.05 * 1.5, baseline=narrow)
        assert items["fit_loss"].details["full_until"] == 1.5  # never tighter than full_at


def test_higher_is_better_metric_widens_downwards():
    spec = MetricSpec(name="acc", better="higher", full_at=0.9, zero_at=0.5)
    baseline = Baseline(0.8, worst_ratio=0.9)
    assert spec.full_until(baseline) == pytest.approx(1 - SPREAD_MARGIN * 0.1)
    assert spec.fraction(0.8 * spec.full_until(baseline), baseline) == 1.0
    assert spec.fraction(0.8 * 0.5, baseline) == 0.0


def test_failed_requirement_gates_the_metric():
    items, tot = run(0.0, 0.05)
    assert items["fit_loss"].points == 0
    assert "requires 'square() on oracle inputs' to pass first" in items["fit_loss"].message
    assert tot["auto_total"] == 0.5


def test_missing_baseline_is_an_error_not_a_score():
    items, _ = run(1.0, 0.05, baseline=None)
    assert items["fit_loss"].status == "error"
    assert "calibrate" in items["fit_loss"].message


def test_metric_too_good_to_be_true_goes_to_a_ta():
    rubric = RUBRIC.model_copy(deep=True)
    metric = rubric.item("fit_loss").metric
    object.__setattr__(metric, "review_at", 0.5)
    outcomes = {
        "t1": Outcome(CheckResult(fraction=1.0)),
        "square": Outcome(CheckResult(fraction=1.0)),
        "fit_loss": Outcome(CheckResult(value=0.05 * 0.3)),
    }
    items = {i.id: i for i in score(rubric, outcomes, baselines={"fit_loss": Baseline(0.05)}, profile="ci")}
    assert items["fit_loss"].status == "pending" and items["fit_loss"].points == 0
    assert "too good to be true" in items["fit_loss"].message
    assert totals(list(items.values()))["pending_manual"] == 1.0 + 1.5  # the proof and the metric
    outcomes["fit_loss"] = Outcome(CheckResult(value=0.05 * 0.6))  # better than the reference, but plausible
    items = {i.id: i for i in score(rubric, outcomes, baselines={"fit_loss": Baseline(0.05)}, profile="ci")}
    assert items["fit_loss"].status == "passed"


def test_check_asking_for_review_is_not_scored_automatically():
    outcomes = {
        "t1": Outcome(CheckResult(fraction=1.0)),
        "square": Outcome(CheckResult(fraction=1.0, review="the loss was already low before training")),
        "fit_loss": Outcome(CheckResult(value=0.05)),
    }
    items = {i.id: i for i in score(RUBRIC, outcomes, baselines={"fit_loss": Baseline(0.05)}, profile="ci")}
    assert items["square"].status == "pending" and "already low" in items["square"].message
    assert items["fit_loss"].status == "failed"  # its requirement has not passed (yet)


def test_review_bound_must_lie_on_the_better_side():
    with pytest.raises(ValueError, match="review_at"):
        MetricSpec(name="nll", full_at=1.2, zero_at=1.6, review_at=1.3)
    assert MetricSpec(name="acc", better="higher", full_at=0.9, zero_at=0.5, review_at=1.5).too_good(1.6)
