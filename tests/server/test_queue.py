"""The grading queue: retries, bounded attempts, lease expiry, graceful shutdown (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from server.models import AuditLog, GradingJob, JobState, Submission
from server.services import queue
from server.worker import Worker


def _job(course, sub_id: int) -> GradingJob:
    with course.db.session() as s:
        return s.scalars(select(GradingJob).where(GradingJob.submission_id == sub_id)).one()


def test_transient_errors_are_retried_then_fail_clearly(course) -> None:
    sub = course.upload("alice", error="kernel died unexpectedly")
    course.drain()
    job = _job(course, sub)
    assert job.state == JobState.failed and job.attempts == course.settings.max_attempts == 3
    body = course.client.get(f"/api/submissions/{sub}", headers=course.auth("alice")).json()
    assert body["status"] == "failed" and body["error"] == "grading failed: kernel died unexpectedly"
    assert body["total"] is None


def test_unusable_notebook_fails_without_retry(course) -> None:
    sub = course.upload("alice", invalid=True)
    course.drain()
    job = _job(course, sub)
    assert job.state == JobState.failed and job.attempts == 1
    assert "no solution cells" in (job.error or "")


def test_expired_lease_is_taken_over_and_the_late_result_is_discarded(course) -> None:
    sub = course.upload("alice", fraction=0.5)
    dead = queue.claim(course.db, worker_id="dead-worker", lease_s=60)
    assert dead is not None and dead.submission_id == sub
    assert queue.claim(course.db, worker_id="other", lease_s=5) is None  # leased: not claimable
    with course.db.session() as s:  # the worker stops heartbeating; its lease runs out
        s.execute(update(GradingJob).values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert course.drain() == 1
    job = _job(course, sub)
    assert (job.state, job.attempts, job.lease_owner) == (JobState.done, 2, "test-worker")

    # The presumed-dead worker comes back with a different result: nothing is written.
    from server.testing import fake_grade, make_notebook

    path = course.settings.home / "nb.ipynb"
    path.write_bytes(make_notebook(fraction=0.0))
    assert not queue.complete(course.db, job=dead, worker_id="dead-worker", report=fake_grade(path, "hw1"))
    assert not queue.heartbeat(course.db, job_id=dead.id, worker_id="dead-worker", lease_s=5)
    body = course.client.get(f"/api/submissions/{sub}", headers=course.auth("alice")).json()
    assert body["total"] == 4.0
    with course.db.session() as s:
        n_audit = s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.entity == "item_auto"))
    assert n_audit == 3


def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(course) -> None:
    sub = course.upload("alice")
    for _ in range(3):
        assert queue.claim(course.db, worker_id="crashy", lease_s=0.05) is not None
        time.sleep(0.08)
    assert queue.claim(course.db, worker_id="crashy", lease_s=0.05) is None
    assert queue.reap_expired(course.db) == 1
    job = _job(course, sub)
    assert job.state == JobState.failed and "stopped responding on each of 3 attempts" in (job.error or "")
    with course.db.session() as s:
        assert "stopped responding" in (s.get(Submission, sub).error or "")  # type: ignore[union-attr]


def test_shutdown_releases_a_job_that_does_not_finish_in_the_grace_period(course) -> None:
    sub = course.upload("alice", sleep=3.0)
    settings = course.settings.model_copy(update={"shutdown_grace_s": 0.1})
    worker = Worker(db=course.db, settings=settings, worker_id="leaving")
    runner = threading.Thread(target=worker.run)
    runner.start()
    deadline = time.monotonic() + 10
    while _job(course, sub).state != JobState.running and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    runner.join(10)
    job = _job(course, sub)
    assert (job.state, job.attempts, job.lease_owner) == (JobState.queued, 0, None)
    assert queue.claim(course.db, worker_id="next", lease_s=5) is not None  # claimable again at once


def test_shutdown_finishes_a_job_that_completes_in_the_grace_period(course) -> None:
    sub = course.upload("alice", sleep=0.3)
    worker = Worker(db=course.db, settings=course.settings, worker_id="leaving")
    runner = threading.Thread(target=worker.run)
    runner.start()
    while _job(course, sub).state != JobState.running:
        time.sleep(0.02)
    worker.stop()
    runner.join(10)
    assert _job(course, sub).state == JobState.done and worker.processed == 1


def test_executed_notebook_is_stored_for_the_ta_view(course) -> None:
    sub = course.upload("alice")
    course.drain()
    with course.db.session() as s:
        row = s.get(Submission, sub)
        assert row is not None and row.executed_sha256 and row.executed_sha256 != row.sha256
    from server.storage import FileStore

    assert b"executed by the grader" in FileStore(course.settings.uploads_dir).read(row.executed_sha256)


def test_grading_that_failed_on_our_side_is_retried_not_given_up(course, monkeypatch, tmp_path) -> None:
    """The real grade function lets `GradingFailed` through as a transient error (retried, never a grade);
    only an unusable notebook is permanent."""
    import grader
    from grader.errors import GradingFailed, InvalidSubmission
    from server.grading import PermanentGradingError, load_grader

    grade_fn = load_grader(course.settings.model_copy(update={"grader": None}))

    def sandbox_did_not_start(*args, **kwargs):
        raise GradingFailed("the sandbox did not start (docker): image not found")

    monkeypatch.setattr(grader, "grade", sandbox_did_not_start)
    with pytest.raises(GradingFailed):
        grade_fn(tmp_path / "n.ipynb", "hw1")

    def unusable(*args, **kwargs):
        raise InvalidSubmission("not a notebook")

    monkeypatch.setattr(grader, "grade", unusable)
    with pytest.raises(PermanentGradingError):
        grade_fn(tmp_path / "n.ipynb", "hw1")
