"""The gradebook: which submission counts, late penalties, homework and final grades.

One set-based query sums each submission's item scores and ranks a student's uploads to an assignment
(``ROW_NUMBER`` over the order the course's counting rule sets), so only the counted submission per
student and assignment comes back; Python then rounds, applies the late penalty and picks among near
ties. The days late it ranks by are stored on the submission (``services.submissions.refresh_late_flags``).

The staff gradebook does not run that query per request: :func:`refresh_cells` stores its result, one
:class:`~server.models.GradebookCell` per student and assignment, in the transaction of every write that
can change it, and :func:`compute_gradebook` reads the stored cells. A student's own row hides what is not
released yet, so it is computed from the item scores each time (one student: a few rows). The JSON and CSV
renderings of the staff gradebook are kept, and brought up to date row by row when grades change
(:mod:`server.services.gradebook_cache`).
bench/bench_gradebook.py measures it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from grader.report import csv_cell
from server.models import (
    Assignment,
    Course,
    ExamScore,
    GradebookCell,
    GradingJob,
    ItemScore,
    JobState,
    Role,
    Submission,
    User,
)
from server.scheme import CoursePolicy, GradingScheme, late_factor, round_points
from server.services import gradebook_cache
from server.services.courses import list_assignments, policy_of, scheme_of

# Under "best" SQL ranks by unrounded points (sum x late factor), while the rule compares them rounded to
# 6 decimals, which moves a value by under 1e-6. So every graded submission within this margin of the
# top one comes back too, and :func:`choose` decides among them exactly as the rule says.
_BEST_MARGIN = 1e-5


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


def choose(cells: Sequence[HomeworkCell], policy: CoursePolicy) -> HomeworkCell | None:
    """The submission that counts under the course's policy; ``cells`` are in upload order.

    The rule as the gradebook query ranks it, for the near ties of "best" that SQL leaves to Python.
    """
    if len(cells) <= 1:
        return cells[0] if cells else None
    if policy.counting == "latest":
        return cells[-1]
    if policy.counting == "best":
        graded = [c for c in cells if not c.grading]
        if not graded:
            return cells[-1]
        return max(reversed(graded), key=lambda c: c.points)  # on a tie, the later upload
    on_time = [c for c in cells if c.days_late == 0]
    return on_time[-1] if on_time else cells[-1]


def _late_factor_sql(days: SQLColumnExpression[int], policy: CoursePolicy) -> ColumnElement[float]:
    """:func:`server.scheme.late_factor` in SQL (the same double-precision arithmetic)."""
    kept = literal(1.0) - literal(policy.late_penalty_per_day) * days
    whens: list[tuple[ColumnElement[bool], Any]] = [(days <= 0, 1.0)]
    if policy.late_max_days is not None:
        whens.append((days > policy.late_max_days, 0.0))
    whens.append((kept < 0.0, 0.0))
    return case(*whens, else_=kept)


def _counted_query(
    *, assignment_ids: Sequence[int], policy: CoursePolicy, user_ids: Collection[int] | None, hidden: Sequence[int]
) -> Select[Any]:
    """(points, pending, user_id, assignment_id, submission id, days late, graded, submissions, rank) rows.

    ``points`` are the submission's effective item points (manual over automatic), ``pending`` is 1 while
    an item awaits a TA; in the assignments of ``hidden`` (grades not released, for a student's view) only
    the automatic points count and every manual item is pending. ``rank`` orders a student's uploads to an
    assignment. Under ``latest`` and ``latest_on_time`` only rank 1 comes back: the counted submission.
    Under ``best`` rank 1 is the latest upload (it counts when none is graded) and the graded ones near
    the top come back as well, with rank 2 the upload before the latest, and so on.
    """
    awaits_review = (ItemScore.kind == "manual") | (ItemScore.auto_status == "pending")
    points: ColumnElement[Any] = func.coalesce(ItemScore.manual_points, ItemScore.auto_points, 0.0)
    pending: ColumnElement[Any] = ItemScore.manual_points.is_(None) & awaits_review
    if hidden:
        is_hidden = Submission.assignment_id.in_(hidden)
        points = case((is_hidden, func.coalesce(ItemScore.auto_points, 0.0)), else_=points)
        pending = case((is_hidden, awaits_review), else_=pending)
    total = func.coalesce(func.sum(points), 0.0)
    graded = Submission.graded_at.is_not(None)

    newest_first = (Submission.uploaded_at.desc(), Submission.id.desc())
    order = {
        "latest": newest_first,
        "latest_on_time": (Submission.days_late > 0, *newest_first),  # on time first
        "best": newest_first,
    }[policy.counting]
    # (assignment, student) is the order of ix_submissions_assignment_user: SQLite groups without sorting.
    part = (Submission.assignment_id, Submission.user_id)
    columns: list[SQLColumnExpression[Any]] = [
        total.label("points"),
        func.coalesce(func.max(case((pending, 1), else_=0)), 0).label("pending"),
        Submission.user_id,
        Submission.assignment_id,
        Submission.id,
        Submission.days_late,
        graded.label("graded"),
        func.count().over(partition_by=part).label("n"),
        func.row_number().over(partition_by=part, order_by=order).label("rank"),
    ]
    if policy.counting == "best":
        penalised = total * _late_factor_sql(Submission.days_late, policy)
        columns += [
            penalised.label("penalised"),
            func.max(case((graded, penalised))).over(partition_by=part).label("top"),
        ]
    per_submission = (
        select(*columns)
        .outerjoin(ItemScore, ItemScore.submission_id == Submission.id)
        .where(Submission.assignment_id.in_(assignment_ids))
        .group_by(*part, Submission.id)
    )
    if user_ids is not None:
        per_submission = per_submission.where(Submission.user_id.in_(user_ids))
    ranked = per_submission.subquery()
    counted = ranked.c.rank == 1
    if policy.counting == "best":
        counted = or_(counted, ranked.c.graded & (ranked.c.penalised >= ranked.c.top - _BEST_MARGIN))
    names = ("points", "pending", "user_id", "assignment_id", "id", "days_late", "graded", "n", "rank")
    return select(*(ranked.c[name] for name in names)).where(counted)


def _computed_cells(
    session: Session,
    *,
    assignment_ids: Sequence[int],
    policy: CoursePolicy,
    user_ids: Collection[int] | None = None,
    hidden: Sequence[int] = (),
) -> dict[tuple[int, int], HomeworkCell]:
    """(student id, assignment id) -> the counted cell, from the item scores (see :func:`_counted_query`)."""
    query = _counted_query(assignment_ids=assignment_ids, policy=policy, user_ids=user_ids, hidden=hidden)
    counted: dict[tuple[int, int], HomeworkCell] = {}
    near_top: dict[tuple[int, int], list[tuple[int, HomeworkCell]]] = {}
    factors: dict[int, float] = {}
    for points, pending, uid, aid, sid, days, graded, n, rank in session.execute(query):
        raw = round_points(float(points))
        if days:
            if days not in factors:
                factors[days] = late_factor(days, policy)
            penalised = round_points(raw * factors[days])
        else:
            penalised = raw
        cell = HomeworkCell(penalised, raw, sid, days > 0, days, bool(pending), not graded, n)
        if rank == 1:
            counted[uid, aid] = cell
        else:
            near_top.setdefault((uid, aid), []).append((rank, cell))
    for key, cells in near_top.items():
        in_upload_order = [c for _, c in sorted(cells, key=lambda rc: -rc[0])] + [counted[key]]
        counted[key] = choose(in_upload_order, policy) or counted[key]
    return counted


# What a stored cell holds besides its key; the columns are named after HomeworkCell's fields.
_STORED = (
    GradebookCell.points,
    GradebookCell.raw_points,
    GradebookCell.submission_id,
    GradebookCell.days_late,
    GradebookCell.pending_manual,
    GradebookCell.grading,
    GradebookCell.submissions,
)
_STORED_NAMES = tuple(column.key for column in _STORED)


def _stored(cell: HomeworkCell) -> tuple[Any, ...]:
    return tuple(getattr(cell, name) for name in _STORED_NAMES)


def _stored_cells(
    session: Session, *, assignment_ids: Sequence[int], user_ids: Collection[int] | None
) -> dict[tuple[int, int], HomeworkCell]:
    """(student id, assignment id) -> the cell :func:`refresh_cells` stored."""
    query = select(GradebookCell.user_id, GradebookCell.assignment_id, *_STORED).where(
        GradebookCell.assignment_id.in_(assignment_ids)
    )
    if user_ids is not None:
        query = query.where(GradebookCell.user_id.in_(user_ids))
    # 30,000 rows at 5,000 students: the request's cost. Core rows (the session's ORM result costs twice
    # as much for plain columns) and a lean loop.
    return {
        (uid, aid): HomeworkCell(points, raw, sid, days > 0, days, pending, grading, n)
        for uid, aid, points, raw, sid, days, pending, grading, n in session.connection().execute(query).all()
    }


def refresh_cells(session: Session, *, assignment: Assignment, user_id: int | None = None) -> None:
    """Recompute and store the gradebook cells of ``assignment`` (of one student, with ``user_id``).

    Every write that can change a cell calls it in its transaction, after its own changes. The cells are
    locked first (a first upload's cell is inserted to be locked), so two transactions refreshing one cell,
    say two workers grading a student's two uploads, take turns and the second computes from what the first
    committed. (SQLite transactions take turns anyway: they begin IMMEDIATE.)
    """
    session.flush()
    cells = [GradebookCell.assignment_id == assignment.id]
    uploads = [Submission.assignment_id == assignment.id]
    if user_id is not None:
        cells.append(GradebookCell.user_id == user_id)
        uploads.append(Submission.user_id == user_id)
    keys = (
        select(Submission.user_id, Submission.assignment_id, func.max(Submission.id))
        .where(*uploads)
        .group_by(Submission.user_id, Submission.assignment_id)
    )
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(GradebookCell).from_select(["user_id", "assignment_id", "submission_id"], keys).on_conflict_do_nothing()
    )
    locked = select(GradebookCell.user_id, *_STORED).where(*cells).order_by(GradebookCell.user_id).with_for_update()
    stored = {uid: tuple(values) for uid, *values in session.execute(locked)}

    computed = _computed_cells(
        session,
        assignment_ids=[assignment.id],
        policy=policy_of(assignment.course),
        user_ids=None if user_id is None else [user_id],
    )
    updates = [
        {"user_id": uid, "assignment_id": assignment.id, **dict(zip(_STORED_NAMES, _stored(cell), strict=True))}
        for (uid, _), cell in computed.items()
        if _stored(cell) != stored.get(uid)
    ]
    if updates:
        session.execute(update(GradebookCell), updates)
    gone = sorted(stored.keys() - {uid for uid, _ in computed})  # their uploads were deleted
    if gone:
        session.execute(delete(GradebookCell).where(*cells, GradebookCell.user_id.in_(gone)))
    if updates or gone:
        gradebook_cache.changed(session, [u["user_id"] for u in updates] + gone)


def compute_gradebook(
    session: Session, *, course: Course, user_ids: Collection[int] | None = None, released_only: bool = False
) -> Gradebook:
    """Every student's row (or the rows of ``user_ids``).

    With ``released_only`` (what a student sees) an assignment whose grades are not released counts its
    automatic points only, with its manual items pending, and stays out of the total and final grade; those
    cells are computed from the item scores, the others read from the stored cells.
    """
    scheme, policy = scheme_of(course), policy_of(course)
    assignments = [a for a in list_assignments(session, course=course) if a.is_homework]
    released = {a.id for a in assignments if a.grades_released}
    assignment_ids = [a.id for a in assignments]

    users_q = select(User.id, User.username, User.full_name).where(User.role == Role.student, User.is_active.is_(True))
    exams_q = select(ExamScore.user_id, ExamScore.points).where(ExamScore.course_id == course.id)
    if user_ids is not None:
        users_q = users_q.where(User.id.in_(user_ids))
        exams_q = exams_q.where(ExamScore.user_id.in_(user_ids))
    if released_only:
        hidden = [aid for aid in assignment_ids if aid not in released]
        counted = _computed_cells(
            session, assignment_ids=assignment_ids, policy=policy, user_ids=user_ids, hidden=hidden
        )
    else:
        counted = _stored_cells(session, assignment_ids=assignment_ids, user_ids=user_ids)

    exams = dict(session.connection().execute(exams_q).all())
    plain = [(a.id, a.name, a.id in released) for a in assignments]
    provisional = len(released) < len(assignments)
    students = []
    for uid, username, full_name in session.connection().execute(users_q.order_by(User.username)):
        row = StudentRow(user_id=uid, username=username, full_name=full_name, exam=exams.get(uid))
        total = 0.0
        for aid, name, is_released in plain:
            found = counted.get((uid, aid))
            if found is None:
                found = HomeworkCell(released=is_released)
            else:
                found.released = is_released
                if is_released or not released_only:
                    total += found.points
            row.homeworks[name] = found
        row.total = round_points(total + (row.exam or 0.0))
        row.final_grade = scheme.final_grade(row.total)
        row.provisional = provisional
        students.append(row)
    return Gradebook(scheme=scheme, policy=policy, assignments=assignments, students=students)


def csv_header(book: Gradebook) -> str:
    """The gradebook CSV's first line; a :func:`csv_row` per student follows."""
    names = [a.name for a in book.assignments]
    header = ["username", "full_name", *names, "exam", "total", "final_grade", "late", "pending"]
    return _csv_line([csv_cell(name) for name in header])


def csv_row(row: StudentRow) -> str:
    """One student's line. Text is neutralised with :func:`csv_cell`; the numbers, ours and never negative,
    cannot start like a formula (180,000 calls were a quarter of writing it at 5,000 students)."""
    cells = row.homeworks.items()  # in the gradebook's assignment order
    return _csv_line(
        [
            csv_cell(row.username),
            csv_cell(row.full_name),
            *[f"{c.points:g}" for c in row.homeworks.values()],
            "" if row.exam is None else f"{row.exam:g}",
            f"{row.total:g}",
            row.final_grade,
            csv_cell(" ".join(n for n, c in cells if c.late)),
            csv_cell(" ".join(n for n, c in cells if c.pending_manual or c.grading)),
        ]
    )


def _csv_line(values: list[str]) -> str:
    """One CSV line of cells already made safe."""
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()


def queue_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(GradingJob.state, func.count()).group_by(GradingJob.state))
    counts = {s.value: 0 for s in JobState}
    counts.update({state.value: n for state, n in rows})
    return counts
