"""The staff gradebook as served (JSON, CSV), kept until what it shows changes.

Even from the stored cells, rendering the gradebook of 5,000 students (30,000 cells) takes 150 ms of CPU or
more, and between two grade changes it is the same bytes every time. A number in the database
(:class:`~server.models.GradebookVersion`) goes up with every commit that changes what a gradebook shows, and
a rendering is served again while the number it was made at holds. A number in the database, not a signal in
this process: workers and other server processes change grades too.

What raises it: a flush that writes a user, an exam score, an assignment or a course through the ORM (seen by
the session's ``after_flush``), and :func:`server.services.gradebook.refresh_cells`, which writes the cells in
Core and calls :func:`changed`. Any other write to those tables in Core must call :func:`changed` as well. The
increment is the commit's last statement, so on PostgreSQL the version row is the last lock a transaction takes
and never closes a deadlock with the cell locks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from itertools import chain

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, UOWTransaction

from server.models import Assignment, Course, ExamScore, GradebookVersion, User

# What the gradebook reads besides the cells.
_INPUTS = (Assignment, Course, ExamScore, User)
_CHANGED = "gradebook_changed"


def changed(session: Session) -> None:
    """Have the session's commit raise the gradebook version."""
    session.info[_CHANGED] = True


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    if any(isinstance(obj, _INPUTS) for obj in chain(session.new, session.dirty, session.deleted)):
        changed(session)


@event.listens_for(Session, "before_commit")
def _raise_version(session: Session) -> None:
    session.flush()  # the commit's own flush comes after this hook
    if session.info.pop(_CHANGED, False):
        session.execute(update(GradebookVersion).values(version=GradebookVersion.version + 1))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_CHANGED, None)


class RenderedGradebooks:
    """Renderings by (course id, format), each with the version it was made at."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[int, str], tuple[int, bytes]] = {}

    def get(self, session: Session, *, course: Course, kind: str, render: Callable[[], bytes]) -> bytes:
        """The kept rendering while the version holds, else ``render()`` (kept for the next request).

        The version is read before ``render`` reads anything, so a rendering is never older than its version."""
        version = session.scalar(select(GradebookVersion.version))
        if version is None:  # no version row: nothing tells when a rendering goes stale
            return render()
        key = (course.id, kind)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept[0] == version:
            return kept[1]
        body = render()
        with self._lock:
            self._kept[key] = (version, body)
        return body
