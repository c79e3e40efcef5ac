"""The gradebook: which submission counts, late penalties, homework and final grades.

Everything is computed from stored item scores on every request, so a regrade, an extension or a
policy change shows up at once. A handful of set-based queries (per-submission sums in SQL; the
``is_late`` flag that every deadline, extension and grace change refreshes, so that only late
submissions need date arithmetic), then one lean pass in Python; bench/bench_gradebook.py measures it.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from grader.report import csv_cell
from server.models import (
    Assignment,
    Course,
    ExamScore,
    Extension,
    GradingJob,
    ItemScore,
    JobState,
    Role,
    Submission,
    User,
)
from server.scheme import CoursePolicy, GradingScheme, days_late, late_factor, round_points
from server.services.courses import list_assignments, policy_of, scheme_of


class _Candidate(NamedTuple):
    submission_id: int
    raw_points: float
    pending_manual: bool
    graded: bool
    days_late: int
    points: float  # after the late penalty


@dataclass(slots=True)
class HomeworkCell:
    points: float = 0.0
    raw_points: float = 0.0
    submission_id: int | None = None
    late: bool = False
    days_late: int = 0
    pending_manual: bool = False
    grading: bool = False  # the counted submission has no grading result yet
    submissions: int = 0
    released: bool = False  # the assignment's manual grades are released to students


@dataclass
class StudentRow:
    user_id: int
    username: str
    full_name: str
    homeworks: dict[str, HomeworkCell] = field(default_factory=dict)
    exam: float | None = None
    total: float = 0.0
    final_grade: int = 0
    provisional: bool = True  # some homework's grades are not released yet


@dataclass
class Gradebook:
    scheme: GradingScheme
    policy: CoursePolicy
    assignments: list[Assignment]
    students: list[StudentRow]


def choose(cands: list[_Candidate], policy: CoursePolicy) -> _Candidate | None:
    """The submission that counts under the course's policy; ``cands`` are in upload order."""
    if len(cands) <= 1:
        return cands[0] if cands else None
    if policy.counting == "latest":
        return cands[-1]
    if policy.counting == "best":
        graded = [c for c in cands if c.graded]
        if not graded:
            return cands[-1]
        return max(reversed(graded), key=lambda c: c.points)  # on a tie, the later upload
    on_time = [c for c in cands if c.days_late == 0]
    return on_time[-1] if on_time else cands[-1]


def compute_gradebook(
    session: Session, *, course: Course, user_id: int | None = None, released_only: bool = False
) -> Gradebook:
    """Every student's row (or one student's, with ``user_id``).

    With ``released_only`` (what a student sees) an assignment whose grades are not released counts its
    automatic points only, with its manual items pending, and stays out of the total and final grade.
    """
    scheme, policy = scheme_of(course), policy_of(course)
    assignments = [a for a in list_assignments(session, course=course) if a.is_homework]

    users_q = select(User.id, User.username, User.full_name).where(User.role == Role.student, User.is_active.is_(True))
    if user_id is not None:
        users_q = users_q.where(User.id == user_id)
    students = {
        uid: StudentRow(user_id=uid, username=un, full_name=fn)
        for uid, un, fn in session.execute(users_q.order_by(User.username))
    }

    effective = func.coalesce(ItemScore.manual_points, ItemScore.auto_points, 0.0)
    awaits_review = (ItemScore.kind == "manual") | (ItemScore.auto_status == "pending")
    pending = case((ItemScore.manual_points.is_(None) & awaits_review, 1), else_=0)
    items = (
        select(
            ItemScore.submission_id.label("sid"),
            func.sum(effective).label("points"),
            func.sum(pending).label("pending"),
            func.sum(func.coalesce(ItemScore.auto_points, 0.0)).label("auto_points"),
            func.sum(case((awaits_review, 1), else_=0)).label("auto_pending"),
        )
        .group_by(ItemScore.submission_id)
        .subquery()
    )
    # One row per submission, in upload order. Dates are read only for late submissions (their days
    # late): converting 30,000 timestamps would cost more than the rest of the loop.
    subs_q = (
        select(
            Submission.id,
            Submission.user_id,
            Submission.assignment_id,
            Submission.is_late,
            Submission.graded_at.is_not(None),
            items.c.points,
            items.c.pending,
            items.c.auto_points,
            items.c.auto_pending,
        )
        .join(Assignment, Submission.assignment_id == Assignment.id)
        .outerjoin(items, items.c.sid == Submission.id)
        .where(Assignment.course_id == course.id)
        .order_by(Submission.uploaded_at, Submission.id)
    )
    late_q = (
        select(Submission.id, Submission.uploaded_at)
        .join(Assignment, Submission.assignment_id == Assignment.id)
        .where(Assignment.course_id == course.id, Submission.is_late)
    )
    if user_id is not None:
        subs_q = subs_q.where(Submission.user_id == user_id)
        late_q = late_q.where(Submission.user_id == user_id)

    ext_q = (
        select(Extension.assignment_id, Extension.user_id, Extension.deadline)
        .join(Assignment, Extension.assignment_id == Assignment.id)
        .where(Assignment.course_id == course.id)
    )
    extensions = {(uid, aid): d for aid, uid, d in session.execute(ext_q)}
    late_uploads = dict(session.execute(late_q).all())

    # The per-row work below is the request's cost (30,000 rows at 5,000 students): keep it lean.
    cands: defaultdict[tuple[int, int], list[_Candidate]] = defaultdict(list)
    deadlines = {a.id: a.deadline for a in assignments}
    released = {a.id for a in assignments if a.grades_released}
    grace = policy.grace_minutes
    for sid, uid, aid, is_late, graded, points, n_pending, auto_points, auto_pending in session.execute(subs_q):
        if aid not in deadlines or uid not in students:
            continue
        if released_only and aid not in released:
            points, n_pending = auto_points, auto_pending
        raw = round_points(float(points or 0.0))
        if is_late:  # kept up to date by refresh_late_flags
            deadline = extensions.get((uid, aid), deadlines[aid])
            days = days_late(late_uploads[sid], deadline, grace_minutes=grace)
            penalised = round_points(raw * late_factor(days, policy))
        else:
            days, penalised = 0, raw
        cands[uid, aid].append(_Candidate(sid, raw, bool(n_pending), bool(graded), days, penalised))

    exams = dict(
        session.execute(select(ExamScore.user_id, ExamScore.points).where(ExamScore.course_id == course.id)).all()
    )
    plain = [(a.id, a.name) for a in assignments]
    provisional = len(released) < len(assignments)
    for row in students.values():
        for aid, name in plain:
            options = cands.get((row.user_id, aid), [])
            chosen = choose(options, policy)
            row.homeworks[name] = (
                HomeworkCell()
                if chosen is None
                else HomeworkCell(
                    points=chosen.points,
                    raw_points=chosen.raw_points,
                    submission_id=chosen.submission_id,
                    late=chosen.days_late > 0,
                    days_late=chosen.days_late,
                    pending_manual=chosen.pending_manual,
                    grading=not chosen.graded,
                    submissions=len(options),
                )
            )
            row.homeworks[name].released = aid in released
        row.exam = exams.get(row.user_id)
        counted = (c.points for c in row.homeworks.values() if c.released or not released_only)
        row.total = round_points(sum(counted) + (row.exam or 0.0))
        row.final_grade = scheme.final_grade(row.total)
        row.provisional = provisional
    return Gradebook(scheme=scheme, policy=policy, assignments=assignments, students=list(students.values()))


def to_csv(book: Gradebook) -> str:
    """The gradebook as CSV, every cell neutralised with :func:`csv_cell`."""
    out = io.StringIO()
    names = [a.name for a in book.assignments]
    writer = csv.writer(out)
    header = ["username", "full_name", *names, "exam", "total", "final_grade", "late", "pending"]
    writer.writerow(csv_cell(name) for name in header)
    for row in book.students:
        cells = [row.homeworks[n] for n in names]
        writer.writerow(
            csv_cell(value)
            for value in [
                row.username,
                row.full_name,
                *[f"{c.points:g}" for c in cells],
                "" if row.exam is None else f"{row.exam:g}",
                f"{row.total:g}",
                row.final_grade,
                " ".join(n for n, c in zip(names, cells, strict=True) if c.late),
                " ".join(n for n, c in zip(names, cells, strict=True) if c.pending_manual or c.grading),
            ]
        )
    return out.getvalue()


def queue_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(GradingJob.state, func.count()).group_by(GradingJob.state))
    counts = {s.value: 0 for s in JobState}
    counts.update({state.value: n for state, n in rows})
    return counts
