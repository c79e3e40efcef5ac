"""Grading by question: one manual rubric item across the counted submission of every student.

The TA walks through the students' answers to one item (as Gradescope, PrairieLearn's manual grading and
nbgrader's formgrader do), with progress, "next ungraded" and the comments already given to this item.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from server.errors import NotFound
from server.models import Assignment, Course, ItemScore, Submission
from server.services.gradebook import compute_gradebook

# An ```answer block names the theory items a cell answers, one "item_id:" per line.
_ANSWER_ID = re.compile(r"^\s*([A-Za-z][\w-]*)\s*:", re.MULTILINE)
_MAX_COMMENTS = 20


@dataclass(frozen=True, slots=True)
class Answer:
    """One student's counted submission and its score row for the item."""

    submission: Submission
    score: ItemScore

    @property
    def graded(self) -> bool:
        return self.score.manual_points is not None


@dataclass
class Question:
    assignment: Assignment
    item: dict[str, Any]  # the rubric item: id, kind, title, points, task
    answers: list[Answer]  # by username

    @property
    def graded(self) -> int:
        return sum(a.graded for a in self.answers)

    @property
    def comments(self) -> list[str]:
        """Comments given to this item so far, the most used first: the TA picks one instead of retyping it."""
        counts = Counter(a.score.manual_comment for a in self.answers if a.score.manual_comment)
        return [text for text, _ in counts.most_common(_MAX_COMMENTS)]

    def index_of(self, submission_id: int) -> int:
        for k, a in enumerate(self.answers):
            if a.submission.id == submission_id:
                return k
        raise NotFound(f"submission {submission_id} is not one that counts for {self.assignment.name}")

    def next_ungraded(self, after: int = -1) -> Answer | None:
        """The first ungraded answer after position ``after``, wrapping around; None when all are graded."""
        n = len(self.answers)
        return next(
            (self.answers[k % n] for k in range(after + 1, after + 1 + n) if not self.answers[k % n].graded), None
        )


def get_question(session: Session, *, course: Course, assignment: Assignment, item_id: str) -> Question:
    """The manual item ``item_id`` of ``assignment`` with the submission that counts for each student."""
    item = next((i for i in assignment.rubric if i.get("id") == item_id and i.get("kind") == "manual"), None)
    if item is None:
        raise NotFound(f"{assignment.name} has no manual rubric item {item_id!r}")
    book = compute_gradebook(session, course=course)
    counted = [
        cell.submission_id
        for row in book.students
        if (cell := row.homeworks.get(assignment.name)) and cell.submission_id is not None
    ]
    subs = session.scalars(
        select(Submission)
        .where(Submission.id.in_(counted))
        .options(selectinload(Submission.items), selectinload(Submission.user), selectinload(Submission.jobs))
    )
    answers = [
        Answer(submission=s, score=score)
        for s in subs
        if (score := next((i for i in s.items if i.item_id == item_id), None)) is not None
    ]
    answers.sort(key=lambda a: a.submission.user.username)
    return Question(assignment=assignment, item=item, answers=answers)


def _shared_prefix(a: str, b: str) -> int:
    return sum(1 for _ in takewhile(lambda pair: pair[0] == pair[1], zip(a, b, strict=False)))


def answer_cells(data: bytes, item: dict[str, Any]) -> list[Any]:
    """The notebook cells holding the answer to a manual rubric item.

    The cells the item names (rubric ``cells``: template cell ids, matched by ``metadata.dgm.id``), in
    notebook order. Else, for the derivations beside theory answers: the ``theory`` cell whose answer
    block names the items closest to the item's id (``t1_kde_proof`` goes with ``t1_kde_variance``).
    Without such a cell, every ``theory`` and ``solution`` cell, so the TA still sees the student's work.
    """
    item_id = str(item.get("id", ""))
    try:
        cells = json.loads(data).get("cells", [])
    except (ValueError, AttributeError):
        return []
    if not isinstance(cells, list):
        return []

    def tags(cell: Any) -> list[Any]:
        return ((cell.get("metadata") or {}).get("tags") or []) if isinstance(cell, dict) else []

    def source(cell: dict[str, Any]) -> str:
        text = cell.get("source")
        return "".join(text) if isinstance(text, list) else str(text or "")

    def affinity(cell: dict[str, Any]) -> int:
        names = _ANSWER_ID.findall(source(cell))
        return max((_shared_prefix(item_id, name) for name in names), default=0)

    named = set(item.get("cells") or ())
    if named:
        chosen = [
            c for c in cells if isinstance(c, dict) and ((c.get("metadata") or {}).get("dgm") or {}).get("id") in named
        ]
        if chosen:
            return chosen
    theory = [c for c in cells if "theory" in tags(c)]
    best = max((affinity(c) for c in theory), default=0)
    if best > 1:
        return [c for c in theory if affinity(c) == best]
    return [c for c in cells if any(tag in ("theory", "solution") for tag in tags(c))]
