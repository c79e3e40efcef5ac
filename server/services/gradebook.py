"""The gradebook: which submission counts, late penalties, homework and final grades.

Everything is computed from stored item scores on every request, so a regrade, an extension or a
policy change shows up at once. A handful of set-based queries, then pure Python: 500 students x 6
homeworks takes a few tens of milliseconds (see bench/bench_server.py).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

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


@dataclass(frozen=True)
class _Candidate:
    submission_id: int
    uploaded_at: datetime
    raw_points: float
    pending_manual: bool
    graded: bool
    days_late: int
    points: float  # after the late penalty


@dataclass
class HomeworkCell:
    points: float = 0.0
    raw_points: float = 0.0
    submission_id: int | None = None
    late: bool = False
    days_late: int = 0
    pending_manual: bool = False
    grading: bool = False  # the counted submission has no grading result yet
    submissions: int = 0


@dataclass
class StudentRow:
    user_id: int
    username: str
    full_name: str
    homeworks: dict[str, HomeworkCell] = field(default_factory=dict)
    exam: float | None = None
    total: float = 0.0
    final_grade: int = 0


@dataclass
class Gradebook:
    scheme: GradingScheme
    policy: CoursePolicy
    assignments: list[Assignment]
    students: list[StudentRow]


def choose(cands: list[_Candidate], policy: CoursePolicy) -> _Candidate | None:
    """The submission that counts under the course's policy."""
    if not cands:
        return None
    by_time = sorted(cands, key=lambda c: (c.uploaded_at, c.submission_id))
    if policy.counting == "latest":
        return by_time[-1]
    if policy.counting == "best":
        graded = [c for c in by_time if c.graded]
        if not graded:
            return by_time[-1]
        return max(graded, key=lambda c: (c.points, c.uploaded_at, c.submission_id))
    on_time = [c for c in by_time if c.days_late == 0]
    return on_time[-1] if on_time else by_time[-1]


def compute_gradebook(session: Session, *, course: Course, user_id: int | None = None) -> Gradebook:
    """Every student's row (or one student's, with ``user_id``)."""
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
    pending = case(
        (
            (ItemScore.manual_points.is_(None)) & ((ItemScore.kind == "manual") | (ItemScore.auto_status == "pending")),
            1,
        ),
        else_=0,
    )
    items = (
        select(
            ItemScore.submission_id.label("sid"),
            func.sum(effective).label("points"),
            func.sum(pending).label("pending"),
        )
        .group_by(ItemScore.submission_id)
        .subquery()
    )
    subs_q = (
        select(
            Submission.id,
            Submission.user_id,
            Submission.assignment_id,
            Submission.uploaded_at,
            Submission.graded_at.is_not(None),
            items.c.points,
            items.c.pending,
        )
        .join(Assignment, Submission.assignment_id == Assignment.id)
        .outerjoin(items, items.c.sid == Submission.id)
        .where(Assignment.course_id == course.id)
    )
    if user_id is not None:
        subs_q = subs_q.where(Submission.user_id == user_id)

    ext_q = (
        select(Extension.assignment_id, Extension.user_id, Extension.deadline)
        .join(Assignment, Extension.assignment_id == Assignment.id)
        .where(Assignment.course_id == course.id)
    )
    extensions = {(aid, uid): d for aid, uid, d in session.execute(ext_q)}

    cands: dict[tuple[int, int], list[_Candidate]] = {}
    deadlines = {a.id: a.deadline for a in assignments}
    for sid, uid, aid, uploaded_at, graded, points, n_pending in session.execute(subs_q):
        if aid not in deadlines or uid not in students:
            continue
        deadline = extensions.get((aid, uid), deadlines[aid])
        days = days_late(uploaded_at, deadline, grace_minutes=policy.grace_minutes)
        raw = round_points(float(points or 0.0))
        cands.setdefault((uid, aid), []).append(
            _Candidate(
                submission_id=sid,
                uploaded_at=uploaded_at,
                raw_points=raw,
                pending_manual=bool(n_pending),
                graded=bool(graded),
                days_late=days,
                points=round_points(raw * late_factor(days, policy)),
            )
        )

    exams = dict(
        session.execute(select(ExamScore.user_id, ExamScore.points).where(ExamScore.course_id == course.id)).all()
    )
    plain = [(a.id, a.name) for a in assignments]
    for row in students.values():
        for aid, name in plain:
            options = cands.get((row.user_id, aid), [])
            chosen = choose(options, policy)
            cell = HomeworkCell(submissions=len(options))
            if chosen is not None:
                cell.points = chosen.points
                cell.raw_points = chosen.raw_points
                cell.submission_id = chosen.submission_id
                cell.late = chosen.days_late > 0
                cell.days_late = chosen.days_late
                cell.pending_manual = chosen.pending_manual
                cell.grading = not chosen.graded
            row.homeworks[name] = cell
        row.exam = exams.get(row.user_id)
        row.total = round_points(sum(c.points for c in row.homeworks.values()) + (row.exam or 0.0))
        row.final_grade = scheme.final_grade(row.total)
    return Gradebook(scheme=scheme, policy=policy, assignments=assignments, students=list(students.values()))


def to_csv(book: Gradebook) -> str:
    out = io.StringIO()
    names = [a.name for a in book.assignments]
    writer = csv.writer(out)
    writer.writerow(["username", "full_name", *names, "exam", "total", "final_grade", "late", "pending"])
    for row in book.students:
        cells = [row.homeworks[n] for n in names]
        writer.writerow(
            [
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
