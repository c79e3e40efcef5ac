"""Stage 5, score: apply the rubric to the check outcomes — points, partial credit, gates, pending items."""

from __future__ import annotations

from dataclasses import dataclass

from grader.checks import CheckResult
from grader.results import ItemResult, ItemStatus
from grader.rubric import Baseline, Item, Rubric

Details = dict[str, float | str | bool | None]


@dataclass
class Outcome:
    """What the check stage found for one item; `state` is `ok`, `artifact` (bad or missing output) or `error`."""

    result: CheckResult
    state: str = "ok"


def _status(fraction: float) -> ItemStatus:
    return "passed" if fraction >= 1.0 else "partial" if fraction > 0.0 else "failed"


def _result(
    item: Item, *, fraction: float, status: ItemStatus, message: str, details: Details | None = None
) -> ItemResult:
    return ItemResult(
        id=item.id,
        kind=item.kind,
        title=item.title,
        task=item.task,
        points=round(fraction * item.points, 4),
        max_points=item.points,
        status=status,
        message=message,
        details=details or {},
    )


def _metric(item: Item, outcome: Outcome, baseline: Baseline | None, profile: str) -> ItemResult:
    assert item.metric is not None
    res, spec = outcome.result, item.metric
    if res.value is None:
        return _result(item, fraction=0.0, status="failed", message=res.message)
    details: Details = {
        **res.details,
        "value": res.value,
        "unit": spec.unit,
        "metric": spec.name,
        "reference": None if baseline is None else baseline.value,
    }
    if baseline is None:
        message = (
            f"{spec.name} = {res.value:.4g} {spec.unit}; no calibrated reference value for profile "
            f"{profile!r} (staff: run `dgm-grader calibrate`)"
        )
        return _result(item, fraction=0.0, status="error", message=message, details=details)
    fraction = spec.fraction(res.value, baseline)
    ratio = res.value / baseline.value
    full = spec.full_until(baseline)
    details |= {"ratio": ratio, "full_until": full}
    message = (
        f"{spec.name} {res.value:.4g} {spec.unit} vs reference {baseline.value:.4g} "
        f"(full points up to {full:.3g}x, none from {spec.zero_at:g}x)"
    )
    if res.message:
        message = f"{message}; {res.message}"
    if spec.too_good(ratio):
        why = (
            f"{ratio:.2f}x the reference under the same budget is too good to be true "
            "(memorised test data or pretrained weights?)"
        )
        return _review(item, why, message, details)
    return _result(item, fraction=fraction, status=_status(fraction), message=message, details=details)


def _review(item: Item, why: str, message: str, details: Details) -> ItemResult:
    """An automatic item handed to a TA: no points until a TA enters them."""
    return _result(
        item,
        fraction=0.0,
        status="pending",
        message=f"sent to a TA for review: {why}; {message}",
        details=details | {"review": why},
    )


def score(
    rubric: Rubric, outcomes: dict[str, Outcome], *, baselines: dict[str, Baseline], profile: str
) -> list[ItemResult]:
    """One `ItemResult` per rubric item, in rubric order; gated items need their requirements passed."""
    results: dict[str, ItemResult] = {}
    for item in rubric.items:
        blocked = [r for r in item.requires if results[r].status != "passed"]
        if item.kind == "manual":
            res = _result(item, fraction=0.0, status="pending", message="awaiting review by a TA")
        elif blocked:
            names = ", ".join(rubric.item(r).title or r for r in blocked)
            res = _result(item, fraction=0.0, status="failed", message=f"not scored: requires '{names}' to pass first")
        elif outcomes[item.id].result.review:
            outcome = outcomes[item.id]
            res = _review(item, outcome.result.review, outcome.result.message, dict(outcome.result.details))
        elif item.kind == "metric":
            res = _metric(item, outcomes[item.id], baselines.get(item.id), profile)
        else:
            outcome = outcomes[item.id]
            fraction = outcome.result.fraction
            res = _result(
                item,
                fraction=fraction,
                status="error" if outcome.state == "error" else _status(fraction),
                message=outcome.result.message,
                details=dict(outcome.result.details),
            )
        results[item.id] = res
    return list(results.values())


def totals(items: list[ItemResult]) -> dict[str, float]:
    """`total`, `auto_total`, `auto_max`, `pending_manual` of a list of item results."""
    auto = [i for i in items if i.kind != "manual"]
    manual = [i for i in items if i.kind == "manual"]
    auto_total = round(sum(i.points for i in auto), 4)
    return {
        "total": round(auto_total + sum(i.points for i in manual), 4),
        "auto_total": auto_total,
        "auto_max": round(sum(i.max_points for i in auto), 4),
        # items a TA must still grade: manual ones, and automatic ones sent for review
        "pending_manual": round(sum(i.max_points for i in items if i.status == "pending"), 4),
    }
