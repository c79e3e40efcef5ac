"""Gradebook statistics: per assignment and per rubric item, over the submission that counts for each student.

A TA reads them to see how an assignment went and which check failed for most students. The numbers are
computed from the gradebook (:func:`server.services.gradebook.compute_gradebook`), so they follow the
course's counting rule, late penalties and manual grades exactly as the grades do.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Assignment, Course, ItemScore
from server.services.gradebook import Gradebook, compute_gradebook

FAILED = frozenset({"failed", "error"})
_CHUNK = 500  # submission ids per IN (...) list: SQLite's old limit on bound parameters is 999


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    count: int


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    median: float | None
    max_points: float
    bins: list[Bin]


@dataclass
class ItemStats:
    item_id: str
    kind: str
    title: str
    max_points: float
    summary: Summary
    full: int = 0  # full marks
    partial: int = 0
    failed: int = 0  # the grader's status failed or error
    pending: int = 0  # awaiting a TA's review

    @property
    def failed_share(self) -> float:
        return self.failed / self.summary.n if self.summary.n else 0.0


@dataclass
class AssignmentStats:
    name: str
    title: str
    max_points: float
    students: int
    submitted: int  # students whose counted submission is graded
    summary: Summary
    items: list[ItemStats] = field(default_factory=list)

    @property
    def most_failed(self) -> ItemStats | None:
        """The automatic item that failed for the most students, if any failed."""
        failing = [i for i in self.items if i.failed]
        return max(failing, key=lambda i: i.failed) if failing else None


def summarize(values: Sequence[float], *, max_points: float, bins: int | None = None) -> Summary:
    """Mean, median and a histogram of ``values`` on [0, max_points]; the last bin holds full marks."""
    n_bins = bins or _bin_count(max_points)
    width = max_points / n_bins if max_points > 0 else 1.0
    counts = [0] * n_bins
    for v in values:
        counts[min(n_bins - 1, max(0, math.floor(v / width + 1e-9)))] += 1
    return Summary(
        n=len(values),
        mean=statistics.fmean(values) if values else None,
        median=statistics.median(values) if values else None,
        max_points=max_points,
        bins=[Bin(lo=k * width, hi=(k + 1) * width, count=c) for k, c in enumerate(counts)],
    )


def _bin_count(max_points: float) -> int:
    """One bin per point up to 13 (the course's homework), else about a dozen."""
    if max_points <= 0:
        return 1
    whole = math.ceil(max_points)
    return whole if whole <= 13 and math.isclose(whole, max_points) else 12


def course_stats(session: Session, *, course: Course, detail: str | None = None) -> list[AssignmentStats]:
    """Every homework's summary; the rubric items too for the assignment named ``detail``."""
    book = compute_gradebook(session, course=course)
    result = []
    for a in book.assignments:
        counted = _counted(book, a.name)
        stats = AssignmentStats(
            name=a.name,
            title=a.title,
            max_points=a.points,
            students=len(book.students),
            submitted=len(counted),
            summary=summarize(list(counted.values()), max_points=a.points),
        )
        if a.name == detail:
            stats.items = item_stats(session, assignment=a, submission_ids=counted.keys())
        result.append(stats)
    return result


def _counted(book: Gradebook, name: str) -> dict[int, float]:
    """Counted, graded submission id -> points after late penalties."""
    cells = (row.homeworks[name] for row in book.students)
    return {c.submission_id: c.points for c in cells if c.submission_id is not None and not c.grading}


def item_stats(session: Session, *, assignment: Assignment, submission_ids: Iterable[int]) -> list[ItemStats]:
    """Per rubric item of ``assignment``, over the given submissions' item scores (manual over automatic)."""
    ids = list(submission_ids)
    by_item: defaultdict[str, list[ItemScore]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for score in session.scalars(select(ItemScore).where(ItemScore.submission_id.in_(chunk))):
            by_item[score.item_id].append(score)
    result = []
    for spec in assignment.rubric:
        scores = by_item.get(spec["id"], [])
        max_points = float(spec["points"])
        values = [s.points for s in scores if not s.pending and s.points is not None]
        result.append(
            ItemStats(
                item_id=spec["id"],
                kind=spec["kind"],
                title=spec.get("title", ""),
                max_points=max_points,
                summary=summarize(values, max_points=max_points),
                full=sum(1 for v in values if v >= max_points - 1e-9),
                partial=sum(1 for v in values if 0 < v < max_points - 1e-9),
                failed=sum(1 for s in scores if s.manual_points is None and s.auto_status in FAILED),
                pending=sum(1 for s in scores if s.pending),
            )
        )
    return result
