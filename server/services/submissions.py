"""Uploads, visibility rules, regrades and late flags."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from server.errors import NotFound
from server.models import (
    Assignment,
    Course,
    Extension,
    GradingJob,
    ItemScore,
    JobState,
    Role,
    Submission,
    User,
)
from server.scheme import days_late
from server.services.courses import policy_of
from server.services.gradebook import refresh_cells
from server.storage import FileStore

ACTIVE_STATES = (JobState.queued, JobState.running)


def effective_deadline(session: Session, *, assignment: Assignment, user_id: int) -> datetime | None:
    ext = session.scalar(
        select(Extension).where(Extension.assignment_id == assignment.id, Extension.user_id == user_id)
    )
    return ext.deadline if ext is not None else assignment.deadline


def create_submission(
    session: Session,
    *,
    user: User,
    assignment: Assignment,
    filename: str,
    data: bytes,
    store: FileStore,
    max_attempts: int,
) -> tuple[Submission, GradingJob]:
    """Store the file, record the submission with one row per rubric item, and queue its grading."""
    sha = store.put(data)
    sub = Submission(
        user_id=user.id,
        assignment_id=assignment.id,
        sha256=sha,
        filename=filename[:255],
        size=len(data),
    )
    session.add(sub)
    session.flush()
    deadline = effective_deadline(session, assignment=assignment, user_id=user.id)
    set_lateness(sub, deadline=deadline, grace_minutes=policy_of(assignment.course).grace_minutes)
    for pos, item in enumerate(assignment.rubric):
        session.add(
            ItemScore(
                submission_id=sub.id,
                item_id=item["id"],
                position=pos,
                kind=item["kind"],
                title=item.get("title", ""),
                max_points=float(item["points"]),
            )
        )
    job = GradingJob(submission_id=sub.id, reason="upload", max_attempts=max_attempts)
    session.add(job)
    refresh_cells(session, assignment=assignment, user_id=user.id)
    return sub, job


def can_see(viewer: User, sub: Submission) -> bool:
    return viewer.role in (Role.ta, Role.admin) or sub.user_id == viewer.id


def get_submission(session: Session, *, submission_id: int, viewer: User) -> Submission:
    """The submission if ``viewer`` may see it; a student asking for another's gets 404, not 403."""
    sub = session.get(
        Submission,
        submission_id,
        options=[selectinload(Submission.items), selectinload(Submission.jobs)],
    )
    if sub is None or not can_see(viewer, sub):
        raise NotFound(f"no submission {submission_id}")
    return sub


def list_submissions(
    session: Session,
    *,
    viewer: User,
    course: Course,
    assignment: str | None = None,
    username: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[Submission]:
    """Newest first; a student sees only their own."""
    stmt = (
        select(Submission)
        .join(Assignment, Submission.assignment_id == Assignment.id)
        .join(User, Submission.user_id == User.id)
        .where(Assignment.course_id == course.id)
        .options(
            selectinload(Submission.items),
            selectinload(Submission.jobs),
            selectinload(Submission.assignment),
            selectinload(Submission.user),
        )
        .order_by(Submission.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if viewer.role == Role.student:
        stmt = stmt.where(Submission.user_id == viewer.id)
    elif username:
        stmt = stmt.where(User.username == username)
    if assignment:
        stmt = stmt.where(Assignment.name == assignment)
    return list(session.scalars(stmt))


def latest_job(sub: Submission) -> GradingJob | None:
    return sub.jobs[-1] if sub.jobs else None


def status_of(sub: Submission) -> str:
    """queued | running | graded | failed (the state of the newest grading job)."""
    job = latest_job(sub)
    if job is None:
        return "graded" if sub.graded_at else "queued"
    return {JobState.done: "graded"}.get(job.state, job.state.value)


def enqueue_regrade(session: Session, *, submissions: Sequence[Submission], max_attempts: int) -> int:
    """Queue a regrade for each submission not already waiting in the queue. Returns how many."""
    if not submissions:
        return 0
    ids = [s.id for s in submissions]
    waiting = set(
        session.scalars(
            select(GradingJob.submission_id).where(
                GradingJob.submission_id.in_(ids), GradingJob.state == JobState.queued
            )
        )
    )
    n = 0
    for sid in ids:
        if sid not in waiting:
            session.add(GradingJob(submission_id=sid, reason="regrade", max_attempts=max_attempts))
            n += 1
    session.flush()
    return n


def submissions_of_assignment(session: Session, *, assignment: Assignment) -> list[Submission]:
    return list(session.scalars(select(Submission).where(Submission.assignment_id == assignment.id)))


def set_lateness(sub: Submission, *, deadline: datetime | None, grace_minutes: float) -> None:
    """``days_late`` and ``is_late``: what the gradebook reads instead of comparing dates on every request."""
    sub.days_late = days_late(sub.uploaded_at, deadline, grace_minutes=grace_minutes)
    sub.is_late = sub.days_late > 0


def refresh_late_flags(session: Session, *, assignment: Assignment, user_id: int | None = None) -> None:
    """Recompute ``days_late`` and ``is_late`` after a deadline, an extension or the grace period changed,
    and the gradebook cells that depend on them."""
    grace = policy_of(assignment.course).grace_minutes
    stmt = select(Submission).where(Submission.assignment_id == assignment.id)
    if user_id is not None:
        stmt = stmt.where(Submission.user_id == user_id)
    extensions = {
        e.user_id: e.deadline
        for e in session.scalars(select(Extension).where(Extension.assignment_id == assignment.id))
    }
    for sub in session.scalars(stmt):
        set_lateness(sub, deadline=extensions.get(sub.user_id, assignment.deadline), grace_minutes=grace)
    refresh_cells(session, assignment=assignment, user_id=user_id)


def get_file(store: FileStore, sub: Submission) -> bytes:
    try:
        return store.read(sub.sha256)
    except FileNotFoundError:
        raise NotFound(f"the file of submission {sub.id} is missing from the store") from None
