"""Grade changes made by people: manual item points and overrides, exam scores, extensions, grade release.

Every change goes through :func:`server.services.audit.record`. What a student may see of an item before
its assignment's grades are released is decided here too (:func:`item_views`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import InvalidInput, NotFound
from server.models import Assignment, Course, ExamScore, Extension, ItemScore, Role, Submission, User, utcnow
from server.services import audit
from server.services.courses import scheme_of
from server.services.gradebook import refresh_cells
from server.services.submissions import refresh_late_flags


@dataclass(frozen=True, slots=True)
class ItemView:
    """One rubric item as a viewer may see it."""

    item_id: str
    kind: str
    title: str
    max_points: float
    auto_points: float | None
    auto_status: str | None
    message: str | None  # the grader's message; none once a TA's review replaced "awaiting review"
    manual_points: float | None
    manual_comment: str | None
    points: float | None
    pending: bool  # a TA's review is still to come (or, for a student, still to be released)
    status: str  # the grader's status, or "reviewed" once a TA graded an item that waited for review


def manual_grades_visible(sub: Submission, *, viewer: User) -> bool:
    """Staff always see manual points and comments; a student only once the assignment's grades are released."""
    return viewer.role != Role.student or sub.assignment.grades_released


def auto_results_visible(sub: Submission, *, viewer: User) -> bool:
    """Before release a student sees the automatic results only where the course says so (the default)."""
    return manual_grades_visible(sub, viewer=viewer) or sub.assignment.course.auto_results_before_release


def item_views(sub: Submission, *, viewer: User) -> list[ItemView]:
    """The items of ``sub``; before release a student sees the automatic results only (or, where the
    course hides them too, nothing but which items there are)."""
    if not auto_results_visible(sub, viewer=viewer):
        return [_hidden_view(i) for i in sub.items]
    visible = manual_grades_visible(sub, viewer=viewer)
    views = []
    for i in sub.items:
        manual = i.manual_points if visible else None
        awaits_review = i.kind == "manual" or i.auto_status == "pending"
        reviewed = awaits_review and manual is not None
        views.append(
            ItemView(
                item_id=i.item_id,
                kind=i.kind,
                title=i.title,
                max_points=i.max_points,
                auto_points=i.auto_points,
                auto_status=i.auto_status,
                message=None if reviewed else i.auto_message,
                manual_points=manual,
                manual_comment=i.manual_comment if visible else None,
                points=manual if manual is not None else i.auto_points,
                pending=awaits_review and manual is None,
                status="reviewed" if reviewed else i.auto_status or "pending",
            )
        )
    return views


def _hidden_view(i: ItemScore) -> ItemView:
    return ItemView(
        item_id=i.item_id,
        kind=i.kind,
        title=i.title,
        max_points=i.max_points,
        auto_points=None,
        auto_status=None,
        message=None,
        manual_points=None,
        manual_comment=None,
        points=None,
        pending=True,
        status="pending",
    )


def visible_score(sub: Submission, *, viewer: User) -> float | None:
    """Points before late penalties as ``viewer`` may see them; None until graded (or while hidden)."""
    if sub.graded_at is None or not auto_results_visible(sub, viewer=viewer):
        return None
    return round(sum(v.points or 0.0 for v in item_views(sub, viewer=viewer)), 6)


def release_grades(session: Session, *, assignment: Assignment, released: bool, actor: User) -> Assignment:
    """Show (or hide again) the assignment's manual points and comments to its students."""
    old = assignment.grades_released_at
    if released == (old is not None):
        return assignment
    assignment.grades_released_at = utcnow() if released else None
    audit.record(
        session,
        actor=actor,
        student_id=None,
        entity="release",
        key=f"assignment:{assignment.name}/release",
        old=old.isoformat() if old else None,
        new=assignment.grades_released_at.isoformat() if assignment.grades_released_at else None,
        reason="grades released" if released else "release withdrawn",
    )
    return assignment


def set_item_points(
    session: Session,
    *,
    submission: Submission,
    item_id: str,
    points: float | None,
    actor: User,
    reason: str = "",
    comment: str | None = None,
) -> ItemScore:
    """Enter manual points for an item (``None`` clears them).

    On a ``manual`` item this is ordinary grading; on an automatic item it is an override and needs
    a reason. Manual points live beside the automatic ones, so a regrade never wipes them.
    """
    item = next((i for i in submission.items if i.item_id == item_id), None)
    if item is None:
        raise NotFound(f"submission {submission.id} has no rubric item {item_id!r}")
    reason = reason.strip()
    if points is not None and (not math.isfinite(points) or points < 0 or points > item.max_points):
        raise InvalidInput(f"{item_id}: points must be between 0 and {item.max_points:g}, got {points:g}")
    is_override = item.kind != "manual"
    if is_override and not reason:
        raise InvalidInput(f"{item_id} is graded automatically: overriding it needs a reason")
    old = item.manual_points
    item.manual_points = points
    item.manual_comment = comment if comment is not None else item.manual_comment
    item.manual_by_id = actor.id
    item.manual_at = utcnow()
    audit.record(
        session,
        actor=actor,
        student_id=submission.user_id,
        entity="item_override" if is_override else "item_manual",
        key=f"submission:{submission.id}/item:{item_id}",
        old=old,
        new=points,
        reason=reason or ("cleared" if points is None else "manual grading"),
    )
    refresh_cells(session, assignment=submission.assignment, user_id=submission.user_id)
    return item


def set_exam_points(
    session: Session, *, course: Course, student: User, points: float, actor: User, reason: str = ""
) -> ExamScore:
    if student.role != Role.student:
        raise InvalidInput(f"{student.username} is not a student")
    max_points = scheme_of(course).exam_points
    if not math.isfinite(points) or points < 0 or points > max_points:
        raise InvalidInput(f"exam: points must be between 0 and {max_points:g}, got {points:g}")
    row = session.scalar(select(ExamScore).where(ExamScore.course_id == course.id, ExamScore.user_id == student.id))
    old = row.points if row else None
    if row is None:
        row = ExamScore(course_id=course.id, user_id=student.id, points=points, updated_by_id=actor.id)
        session.add(row)
    else:
        row.points, row.updated_by_id, row.updated_at = points, actor.id, utcnow()
    audit.record(
        session,
        actor=actor,
        student_id=student.id,
        entity="exam",
        key=f"course:{course.slug}/exam",
        old=old,
        new=points,
        reason=reason or "exam score",
    )
    session.flush()
    return row


def grant_extension(
    session: Session,
    *,
    assignment: Assignment,
    student: User,
    deadline: datetime,
    actor: User,
    reason: str = "",
) -> Extension:
    if deadline.tzinfo is None:
        raise InvalidInput("deadline: expected a timezone-aware time such as 2026-10-02T23:59:00+03:00")
    ext = session.scalar(
        select(Extension).where(Extension.assignment_id == assignment.id, Extension.user_id == student.id)
    )
    old = ext.deadline.isoformat() if ext else None
    if ext is None:
        ext = Extension(
            assignment_id=assignment.id,
            user_id=student.id,
            deadline=deadline,
            reason=reason,
            granted_by_id=actor.id,
        )
        session.add(ext)
    else:
        ext.deadline, ext.reason, ext.granted_by_id = deadline, reason, actor.id
    session.flush()
    audit.record(
        session,
        actor=actor,
        student_id=student.id,
        entity="extension",
        key=f"assignment:{assignment.name}/extension",
        old=old,
        new=deadline.isoformat(),
        reason=reason or "extension",
    )
    refresh_late_flags(session, assignment=assignment, user_id=student.id)
    return ext


def revoke_extension(session: Session, *, assignment: Assignment, student: User, actor: User) -> None:
    ext = session.scalar(
        select(Extension).where(Extension.assignment_id == assignment.id, Extension.user_id == student.id)
    )
    if ext is None:
        raise NotFound(f"{student.username} has no extension for {assignment.name}")
    audit.record(
        session,
        actor=actor,
        student_id=student.id,
        entity="extension",
        key=f"assignment:{assignment.name}/extension",
        old=ext.deadline.isoformat(),
        new=None,
        reason="extension revoked",
    )
    session.delete(ext)
    session.flush()
    refresh_late_flags(session, assignment=assignment, user_id=student.id)


def list_extensions(session: Session, *, course: Course) -> list[Extension]:
    return list(
        session.scalars(
            select(Extension)
            .join(Assignment, Extension.assignment_id == Assignment.id)
            .where(Assignment.course_id == course.id)
            .order_by(Assignment.position, Extension.id)
        )
    )
