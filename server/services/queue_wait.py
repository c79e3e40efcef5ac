"""Where a queued submission stands: its place in the grading queue and a wait estimated from recent gradings."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from server.models import GradingJob, JobState, utcnow

RECENT_JOBS = 20  # the median of the last gradings' durations; the median ignores a looping notebook
WORKER_WINDOW = timedelta(minutes=30)  # workers that claimed a job this recently count as running


@dataclass(frozen=True)
class QueueWait:
    position: int  # 1: the next job a worker claims
    workers: int  # workers seen grading lately (at least 1)
    typical_s: float | None  # median duration of recent gradings; None before the first one
    estimate_s: float | None  # until this job's result, about; None without a typical duration


def queue_wait(session: Session, *, job: GradingJob) -> QueueWait | None:
    """The job's place in the queue (claimed by ``available_at``, then id, as workers claim), or None
    when it is not waiting."""
    if job.state != JobState.queued:
        return None
    ahead = session.scalar(
        select(func.count())
        .select_from(GradingJob)
        .where(
            GradingJob.state == JobState.queued,
            or_(
                GradingJob.available_at < job.available_at,
                and_(GradingJob.available_at == job.available_at, GradingJob.id < job.id),
            ),
        )
    )
    since = utcnow() - WORKER_WINDOW
    workers = session.scalar(
        select(func.count(func.distinct(GradingJob.lease_owner))).where(
            GradingJob.started_at >= since, GradingJob.lease_owner.is_not(None)
        )
    )
    recent = session.execute(
        select(GradingJob.started_at, GradingJob.finished_at)
        .where(GradingJob.state == JobState.done, GradingJob.finished_at.is_not(None))
        .order_by(GradingJob.finished_at.desc())
        .limit(RECENT_JOBS)
    ).all()
    durations = [
        (end - start).total_seconds() for start, end in recent if start is not None and end is not None and end >= start
    ]
    typical = statistics.median(durations) if durations else None
    position = int(ahead or 0) + 1
    n_workers = max(1, int(workers or 0))
    # Jobs go out n_workers at a time: this one finishes with the round it is in.
    estimate = math.ceil(position / n_workers) * typical if typical is not None else None
    return QueueWait(position=position, workers=n_workers, typical_s=typical, estimate_s=estimate)


def about(seconds: float) -> str:
    """``about 40 s``, ``about 3 min``, ``about 2 h``."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
