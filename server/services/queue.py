"""The grading queue in the database: claim with a lease, heartbeat, complete, retry, release.

A job is claimable when it is queued (and its backoff has passed) or when it is running under a
lease that expired (its worker died). The claim is one statement: on PostgreSQL the candidate row is
picked with ``FOR UPDATE SKIP LOCKED`` so concurrent workers never wait on or take the same row; on
SQLite the database has a single writer and the conditional UPDATE is atomic. Completion re-checks
the lease in the same transaction that writes the scores, so a worker that lost its lease cannot
write anything: each job's result lands exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.orm import Session, selectinload

from server.models import Assignment, GradingJob, ItemScore, JobState, Submission, utcnow
from server.services import audit
from server.services.gradebook import refresh_cells

if TYPE_CHECKING:
    from grader.results import Report
    from server.core.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    submission_id: int
    attempt: int
    max_attempts: int
    sha256: str
    assignment: str
    reason: str


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(GradingJob.state == JobState.queued, GradingJob.available_at <= now),
        and_(
            GradingJob.state == JobState.running,
            GradingJob.lease_expires_at < now,
            GradingJob.attempts < GradingJob.max_attempts,
        ),
    )


def claim(db: Database, *, worker_id: str, lease_s: float) -> ClaimedJob | None:
    """Take the oldest claimable job, or return None when there is none."""
    now = utcnow()
    cond = _claimable(now)
    candidate = select(GradingJob.id).where(cond).order_by(GradingJob.available_at, GradingJob.id).limit(1)
    if db.dialect == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    stmt = (
        update(GradingJob)
        .where(GradingJob.id == candidate.scalar_subquery(), cond)
        .values(
            state=JobState.running,
            attempts=GradingJob.attempts + 1,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=now,
            heartbeat_at=now,
        )
        .returning(GradingJob.id)
        .execution_options(synchronize_session=False)
    )
    with db.session() as s:
        job_id = s.scalar(stmt)
        if job_id is None:
            return None
        row = s.execute(
            select(
                GradingJob.submission_id,
                GradingJob.attempts,
                GradingJob.max_attempts,
                GradingJob.reason,
                Submission.sha256,
                Assignment.name,
            )
            .join(Submission, GradingJob.submission_id == Submission.id)
            .join(Assignment, Submission.assignment_id == Assignment.id)
            .where(GradingJob.id == job_id)
        ).one()
    return ClaimedJob(
        id=job_id,
        submission_id=row[0],
        attempt=row[1],
        max_attempts=row[2],
        reason=row[3],
        sha256=row[4],
        assignment=row[5],
    )


def heartbeat(db: Database, *, job_id: int, worker_id: str, lease_s: float) -> bool:
    """Extend the lease; False means it was lost (expired and taken over)."""
    now = utcnow()
    with db.session() as s:
        result = s.execute(
            update(GradingJob)
            .where(
                GradingJob.id == job_id,
                GradingJob.lease_owner == worker_id,
                GradingJob.state == JobState.running,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


def _finish(s: Session, *, job_id: int, worker_id: str, **values: object) -> bool:
    result = s.execute(
        update(GradingJob)
        .where(
            GradingJob.id == job_id,
            GradingJob.lease_owner == worker_id,
            GradingJob.state == JobState.running,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def complete(
    db: Database, *, job: ClaimedJob, worker_id: str, report: Report, executed_sha256: str | None = None
) -> bool:
    """Write the scores and mark the job done, in one transaction; False if the lease was lost."""
    now = utcnow()
    with db.session() as s:
        if not _finish(s, job_id=job.id, worker_id=worker_id, state=JobState.done, finished_at=now, error=None):
            s.rollback()
            log.warning("job %d: lease lost before completion; result discarded", job.id)
            return False
        newer_done = s.scalar(
            select(
                exists().where(
                    GradingJob.submission_id == job.submission_id,
                    GradingJob.id > job.id,
                    GradingJob.state == JobState.done,
                )
            )
        )
        if newer_done:  # a later regrade already wrote its scores; do not overwrite them
            return True
        sub = s.get(Submission, job.submission_id, options=[selectinload(Submission.items)])
        assert sub is not None
        write_scores(s, submission=sub, report=report, actor=f"worker:{worker_id}", reason=job.reason)
        sub.graded_at = now
        sub.error = None
        sub.executed_sha256 = executed_sha256
        refresh_cells(s, assignment=sub.assignment, user_id=sub.user_id)
    return True


def write_scores(s: Session, *, submission: Submission, report: Report, actor: str, reason: str) -> None:
    """Replace the automatic half of each item score; manual points are left alone."""
    existing = {i.item_id: i for i in submission.items}
    for pos, res in enumerate(report.items):
        item = existing.get(res.id)
        if item is None:
            item = ItemScore(
                submission_id=submission.id,
                item_id=res.id,
                position=len(existing) + pos,
                kind=res.kind,
                title=res.title,
                max_points=res.max_points,
            )
            s.add(item)
            existing[res.id] = item
        old = item.auto_points
        item.kind, item.max_points = res.kind, res.max_points
        item.title = res.title or item.title
        item.auto_points, item.auto_status, item.auto_message = res.points, res.status, res.message
        audit.record(
            s,
            actor=actor,
            student_id=submission.user_id,
            entity="item_auto",
            key=f"submission:{submission.id}/item:{res.id}",
            old=old,
            new=res.points,
            reason="autograde" if reason == "upload" else reason,
        )
    submission.report = report.model_dump(mode="json")


def fail(db: Database, *, job: ClaimedJob, worker_id: str, error: str, permanent: bool, backoff_s: float) -> str:
    """Record a failed attempt: retry later, or give up after the last attempt. Returns the new state."""
    now = utcnow()
    give_up = permanent or job.attempt >= job.max_attempts
    with db.session() as s:
        if give_up:
            ok = _finish(s, job_id=job.id, worker_id=worker_id, state=JobState.failed, finished_at=now, error=error)
            if ok:
                sub = s.get(Submission, job.submission_id)
                if sub is not None:
                    sub.error = error
        else:
            ok = _finish(
                s,
                job_id=job.id,
                worker_id=worker_id,
                state=JobState.queued,
                lease_owner=None,
                lease_expires_at=None,
                available_at=now + timedelta(seconds=backoff_s * job.attempt),
                error=error,
            )
    if not ok:
        return "lost"
    return "failed" if give_up else "queued"


def release(db: Database, *, job: ClaimedJob, worker_id: str) -> bool:
    """Give an unfinished job back to the queue (graceful shutdown); the attempt does not count."""
    with db.session() as s:
        return _finish(
            s,
            job_id=job.id,
            worker_id=worker_id,
            state=JobState.queued,
            lease_owner=None,
            lease_expires_at=None,
            available_at=utcnow(),
            attempts=GradingJob.attempts - 1,
        )


def reap_expired(db: Database) -> int:
    """Fail jobs whose lease expired on their last attempt (their workers kept dying)."""
    now = utcnow()
    with db.session() as s:
        q = select(GradingJob).where(
            GradingJob.state == JobState.running,
            GradingJob.lease_expires_at < now,
            GradingJob.attempts >= GradingJob.max_attempts,
        )
        if db.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True)
        jobs = list(s.scalars(q))
        for job in jobs:
            msg = f"grading failed: the worker stopped responding on each of {job.attempts} attempts"
            job.state, job.finished_at, job.error = JobState.failed, now, msg
            sub = s.get(Submission, job.submission_id)
            if sub is not None:
                sub.error = msg
            log.error("job %d: %s", job.id, msg)
    return len(jobs)


def has_work(db: Database) -> bool:
    """True while any job is queued or running (used by ``worker --exit-when-idle``)."""
    with db.session() as s:
        return bool(s.scalar(select(exists().where(GradingJob.state.in_([JobState.queued, JobState.running])))))
