"""What students see of a course while it runs: automatic results before release, and the closed state.

Two course settings, kept on the course row:

- ``auto_results_before_release`` (default on): before a TA releases an assignment's grades, a student
  sees the automatic results of their submissions. Off, they see nothing of their results until release
  (:func:`server.services.grades.item_views` applies it to submissions; :func:`student_row` to grades).
- ``closed_at``: until an admin closes the course, a student's total and final grade are provisional.

Both changes go into the audit log, as every change of what a grade means does.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session

from server.models import Course, User, utcnow
from server.services import audit
from server.services.gradebook import StudentRow


def is_closed(course: Course) -> bool:
    return course.closed_at is not None


def set_auto_results_before_release(session: Session, *, course: Course, visible: bool, actor: User) -> Course:
    """Show (or hide) automatic results to students before an assignment's grades are released."""
    old = course.auto_results_before_release
    course.auto_results_before_release = visible
    audit.record(
        session,
        actor=actor,
        student_id=None,
        entity="course",
        key=f"course:{course.slug}/auto_results_before_release",
        old=str(old).lower(),
        new=str(visible).lower(),
        reason="automatic results shown before release" if visible else "automatic results hidden until release",
    )
    session.flush()
    return course


def set_closed(session: Session, *, course: Course, closed: bool, actor: User) -> Course:
    """Close the course (students' totals and final grades are final) or open it again."""
    if closed == is_closed(course):
        return course
    old = course.closed_at
    course.closed_at = utcnow() if closed else None
    audit.record(
        session,
        actor=actor,
        student_id=None,
        entity="course",
        key=f"course:{course.slug}/closed",
        old=old.isoformat() if old else None,
        new=course.closed_at.isoformat() if course.closed_at else None,
        reason="course closed: grades are final" if closed else "course reopened",
    )
    session.flush()
    return course


def student_row(row: StudentRow, *, course: Course) -> StudentRow:
    """A student's own gradebook row (``compute_gradebook(..., released_only=True)``) as they may see it:
    provisional until the course is closed, and without the points of unreleased homeworks where the
    course hides automatic results until release."""
    row.provisional = row.provisional or not is_closed(course)
    if not course.auto_results_before_release:
        for name, cell in row.homeworks.items():
            if not cell.released and cell.submission_id is not None:
                row.homeworks[name] = replace(cell, points=0.0, raw_points=0.0, pending_manual=True)
    return row
