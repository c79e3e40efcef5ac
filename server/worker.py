"""Grading workers: claim a job, grade it while a heartbeat holds the lease, write the result.

``dgm-grader worker`` runs :meth:`Worker.run` in the main thread (SIGTERM/SIGINT stop it gracefully:
the current job is finished if it completes within ``shutdown_grace_s``, else released back to the
queue); ``dgm-grader serve`` runs the same loop in a background thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import traceback
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from server.core.config import Settings
from server.core.db import Database
from server.grading import GradeFn, PermanentGradingError, load_grader
from server.services import queue
from server.storage import FileStore

if TYPE_CHECKING:
    from grader.results import Report

log = logging.getLogger(__name__)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """One grading worker. Thread-safe to stop from another thread or a signal handler."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        grade_fn: GradeFn | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.grade_fn = grade_fn or load_grader(settings)
        self.worker_id = worker_id or _default_worker_id()
        self.store = FileStore(settings.uploads_dir)
        self.stop_event = threading.Event()
        self.processed = 0
        self._last_reap = float("-inf")

    def stop(self) -> None:
        self.stop_event.set()

    def run(self, *, exit_when_idle: bool = False) -> int:
        """Process jobs until stopped (or, with ``exit_when_idle``, until the queue is drained)."""
        log.info("worker %s started", self.worker_id)
        while not self.stop_event.is_set():
            try:
                did_work = self.run_once()
            except Exception:
                # The database went away or similar: log, back off, keep the worker alive.
                log.exception("worker %s: error while polling the queue", self.worker_id)
                did_work = False
            if did_work:
                continue
            if exit_when_idle and not queue.has_work(self.db):
                break
            self.stop_event.wait(self.settings.worker_poll_s)
        log.info("worker %s stopped after %d jobs", self.worker_id, self.processed)
        return self.processed

    def run_once(self) -> bool:
        """Claim and process one job; False when there was nothing to do."""
        now = time.monotonic()
        if now - self._last_reap >= min(self.settings.lease_s / 2, 30.0):
            queue.reap_expired(self.db)
            self._last_reap = now
        job = queue.claim(self.db, worker_id=self.worker_id, lease_s=self.settings.lease_s)
        if job is None:
            return False
        self.process(job)
        return True

    def process(self, job: queue.ClaimedJob) -> None:
        log.info(
            "job %d: grading submission %d (%s, attempt %d)", job.id, job.submission_id, job.assignment, job.attempt
        )
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job, done), daemon=True)
        beat.start()
        workdir = Path(tempfile.mkdtemp(prefix=f"dgm-job{job.id}-"))
        future: Future[Report] = Future()
        try:
            notebook = workdir / f"submission-{job.submission_id}.ipynb"
            shutil.copyfile(self.store.path(job.sha256), notebook)
            runner = threading.Thread(
                target=self._grade, args=(notebook, job.assignment, future), daemon=True, name=f"grade-{job.id}"
            )
            runner.start()
            if not self._wait(future):
                # Stopping and the grade did not finish within the grace period: hand the job back.
                queue.release(self.db, job=job, worker_id=self.worker_id)
                log.warning("job %d released on shutdown", job.id)
                return
            self._record(job, future, notebook)
        finally:
            done.set()
            beat.join(timeout=5)
            shutil.rmtree(workdir, ignore_errors=True)

    def _wait(self, future: Future[Report]) -> bool:
        """Wait for the grade; on stop, give it the grace period. False: it did not finish."""
        finished = threading.Event()
        future.add_done_callback(lambda _: finished.set())
        while not finished.wait(0.2):
            if self.stop_event.is_set():
                return finished.wait(self.settings.shutdown_grace_s)
        return True

    def _grade(self, notebook: Path, assignment: str, future: Future[Report]) -> None:
        try:
            future.set_result(self.grade_fn(notebook, assignment, executed_path=self._executed_path(notebook)))
        except BaseException as exc:  # handed to the worker thread, which decides about retries
            future.set_exception(exc)

    @staticmethod
    def _executed_path(notebook: Path) -> Path:
        return notebook.with_name("executed.ipynb")

    def _record(self, job: queue.ClaimedJob, future: Future[Report], notebook: Path) -> None:
        exc = future.exception()
        if exc is None:
            executed = self._executed_path(notebook)
            executed_sha = self.store.put(executed.read_bytes()) if executed.is_file() else None
            report = future.result()
            if queue.complete(self.db, job=job, worker_id=self.worker_id, report=report, executed_sha256=executed_sha):
                self.processed += 1
                log.info("job %d done", job.id)
            return
        permanent = isinstance(exc, PermanentGradingError)
        message = f"grading failed: {exc}" if str(exc) else f"grading failed: {type(exc).__name__}"
        if not permanent:
            log.error("job %d attempt %d: %s", job.id, job.attempt, "".join(traceback.format_exception(exc)))
        state = queue.fail(
            self.db,
            job=job,
            worker_id=self.worker_id,
            error=message[:2000],
            permanent=permanent,
            backoff_s=self.settings.retry_backoff_s,
        )
        self.processed += state == "failed"
        log.warning("job %d: %s -> %s", job.id, message, state)

    def _heartbeat(self, job: queue.ClaimedJob, done: threading.Event) -> None:
        """Extend the lease until ``done``. A lost lease needs no action here: completion re-checks it."""
        while not done.wait(self.settings.heartbeat_s):
            try:
                if not queue.heartbeat(self.db, job_id=job.id, worker_id=self.worker_id, lease_s=self.settings.lease_s):
                    log.warning("job %d: lease lost; its result will be discarded", job.id)
                    return
            except Exception:
                log.exception("job %d: heartbeat failed", job.id)


class BackgroundWorker:
    """The in-process worker of ``dgm-grader serve``: the same loop in a daemon thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, name="dgm-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self.worker.stop()
        self.thread.join(timeout)
