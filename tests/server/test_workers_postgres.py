"""Several worker processes on PostgreSQL drain a queue: each job graded once, a SIGKILLed job recovered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from server.core.db import Database
from server.models import AuditLog, Base, GradingJob, ItemScore, JobState, Role, User
from server.services import courses, submissions
from server.storage import FileStore
from server.testing import make_notebook

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]


def _spawn(db_url: str, home: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DGM_DATABASE_URL": db_url,
        "DGM_HOME": str(home),
        "DGM_GRADER": "server.testing:fake_grade",
        "DGM_FAKE_LOG": str(log),
        "DGM_LEASE_S": "2",
        "DGM_HEARTBEAT_S": "0.3",
        "DGM_WORKER_POLL_S": "0.1",
        "DGM_SHUTDOWN_GRACE_S": "10",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "server", "worker", *extra], env=env, cwd=REPO, stderr=subprocess.PIPE
    )


def _enqueue(db: Database, home: Path, notebooks: list[bytes]) -> list[int]:
    store = FileStore(home / "uploads")
    ids = []
    with db.session() as s:
        course = courses.get_or_create_course(s, slug="dgm", title="DGM")
        a = courses.upsert_assignment(s, course=course, spec=courses.AssignmentSpec("hw1", "HW1", 13, _rubric()))
        user = s.scalar(select(User).where(User.username == "alice"))
        if user is None:
            user = User(username="alice", role=Role.student)
            s.add(user)
            s.flush()
        for nb in notebooks:
            sub, _ = submissions.create_submission(
                s, user=user, assignment=a, filename="x.ipynb", data=nb, store=store, max_attempts=3
            )
            ids.append(sub.id)
    return ids


def _rubric() -> list[dict]:
    from server.testing import FAKE_RUBRIC

    return FAKE_RUBRIC


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def pg(pg_database: str) -> Iterator[Database]:
    db = Database(pg_database)
    yield db
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.dispose()


def test_workers_drain_the_queue_exactly_once_and_recover_a_killed_job(pg: Database, tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "graded.log"
    # A slow job first; worker A takes it and is killed with SIGKILL mid-job.
    [slow] = _enqueue(pg, home, [make_notebook(sleep=2.5, tag="slow")])
    a = _spawn(pg.url, home, log)
    try:
        assert _wait_for(lambda: _state(pg, slow) == JobState.running, 30), "worker A never claimed the job"
        assert _wait_for(lambda: log.exists() and log.read_text().strip() != "", 10)
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait(10)
    fast = _enqueue(pg, home, [make_notebook(sleep=0.1, tag=f"job{i}") for i in range(60)])
    workers = [_spawn(pg.url, home, log, "--exit-when-idle") for _ in range(3)]
    try:
        for w in workers:
            assert w.wait(120) == 0, w.stderr.read().decode()[-2000:] if w.stderr else ""
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()

    with pg.session() as s:
        jobs = {j.submission_id: j for j in s.scalars(select(GradingJob))}
        assert all(j.state == JobState.done for j in jobs.values()), Counter(j.state for j in jobs.values())
        assert jobs[slow].attempts == 2 and jobs[slow].lease_owner is not None
        assert all(jobs[sid].attempts == 1 for sid in fast)
        scored = s.execute(
            select(ItemScore.submission_id, func.count())
            .where(ItemScore.auto_points.is_not(None))
            .group_by(ItemScore.submission_id)
        ).all()
        assert sorted(scored) == sorted((sid, 3) for sid in [slow, *fast])
        n_audit = s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.entity == "item_auto"))
        assert n_audit == 3 * 61

    # The grading log: every fast submission graded exactly once; the killed one twice, by two processes.
    calls = [line.split() for line in log.read_text().splitlines()]
    per_sub = Counter(name for _, name in calls)
    assert per_sub[f"submission-{slow}.ipynb"] == 2
    assert {per_sub[f"submission-{sid}.ipynb"] for sid in fast} == {1}
    assert len({pid for pid, name in calls if name == f"submission-{slow}.ipynb"}) == 2
    assert str(a.pid) in {pid for pid, _ in calls}
    assert len({pid for pid, name in calls if name != f"submission-{slow}.ipynb"}) >= 2, "one worker did all"


def test_sigterm_lets_the_worker_finish_its_job(pg: Database, tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "graded.log"
    [sid] = _enqueue(pg, home, [make_notebook(sleep=1.5)])
    w = _spawn(pg.url, home, log)
    try:
        assert _wait_for(lambda: _state(pg, sid) == JobState.running, 30)
        w.send_signal(signal.SIGTERM)
        assert w.wait(20) == 0
    finally:
        if w.poll() is None:
            w.kill()
    assert _state(pg, sid) == JobState.done


def _state(db: Database, sid: int) -> JobState | None:
    with db.session() as s:
        return s.scalar(select(GradingJob.state).where(GradingJob.submission_id == sid))
