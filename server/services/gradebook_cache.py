"""The staff gradebook as served (JSON, CSV), kept and brought up to date row by row.

Even from the stored cells, rendering the gradebook of 5,000 students (30,000 cells) takes 200 ms of CPU or
more, and between two grade changes it is the same bytes every time; a grading result or an exam score
changes one student's row. So a rendering is kept with the database version it was made at, and with each
student's row on its own. A number in the database (:class:`~server.models.GradebookVersion`) goes up with
every commit that changes what a gradebook shows, and the commit notes whose rows it changed
(:class:`~server.models.GradebookChange`): the next request renders again only those rows, or everything when
a change was not one student's (a course, an assignment, the roster) or its record is gone. The database,
not a signal in this process: workers and other server processes change grades too.

What raises it: a flush that writes a user, a course or an assignment (every row) or an exam score (its
student's) through the ORM, seen by the session's ``after_flush``, and
:func:`server.services.gradebook.refresh_cells`, which writes the cells in Core and calls :func:`changed`
with the students whose cells it changed. Any other write to those tables in Core must call :func:`changed`
as well. The increment is the commit's last update, so on PostgreSQL the version row is the last lock a
transaction takes and never closes a deadlock with the cell locks (the change rows after it are inserts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.orm import Session, UOWTransaction

from server.models import Assignment, Course, ExamScore, GradebookChange, GradebookVersion, User

if TYPE_CHECKING:  # server.services.gradebook imports this module
    from server.services.gradebook import Gradebook, StudentRow

_CHANGED = "gradebook_changed"  # session.info: the ids of the students whose rows change; None for every row
_KEPT_VERSIONS = 1000  # change records older than this many versions are deleted (their renderings start over)


def changed(session: Session, user_ids: Iterable[int] | None = None) -> None:
    """Have the session's commit raise the gradebook version, for the rows of ``user_ids`` (None: every row)."""
    rows = session.info.setdefault(_CHANGED, set())
    rows.update([None] if user_ids is None else user_ids)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, ExamScore):
            changed(session, [obj.user_id])
        elif isinstance(obj, Assignment | Course | User):
            changed(session)


@event.listens_for(Session, "before_commit")
def _raise_version(session: Session) -> None:
    session.flush()  # the commit's own flush comes after this hook
    rows = session.info.pop(_CHANGED, None)
    if not rows:
        return
    raised = update(GradebookVersion).values(version=GradebookVersion.version + 1).returning(GradebookVersion.version)
    version = session.execute(raised).scalar_one_or_none()
    if version is None:  # no version row: renderings are not kept (see RenderedGradebooks.get)
        return
    whose = [None] if None in rows else sorted(rows)
    session.execute(insert(GradebookChange), [{"version": version, "user_id": uid} for uid in whose])
    if version % 100 == 0:
        session.execute(delete(GradebookChange).where(GradebookChange.version <= version - _KEPT_VERSIONS))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_CHANGED, None)


@dataclass(frozen=True, slots=True)
class Format:
    """How a gradebook is written: what goes around the rows (from the whole gradebook), each student's row,
    and what goes between two rows."""

    frame: Callable[[Gradebook], tuple[bytes, bytes]]
    row: Callable[[StudentRow], bytes]
    separator: bytes = b""


@dataclass(frozen=True, slots=True)
class _Rendering:
    version: int
    head: bytes
    tail: bytes
    rows: dict[int, bytes]  # student id -> their row, in the gradebook's order
    body: bytes


class RenderedGradebooks:
    """Renderings by (course id, format name), each with the version it was made at."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[int, str], _Rendering] = {}

    def get(
        self,
        session: Session,
        *,
        course: Course,
        name: str,
        fmt: Format,
        compute: Callable[[Collection[int] | None], Gradebook],
    ) -> bytes:
        """The gradebook of ``course`` in ``fmt``: the kept rendering while the version holds, else that rendering
        with the changed rows rendered again from ``compute(their ids)``, or all of it from ``compute(None)`` (when
        every row or more than half of them changed).

        The version is read before anything else, so a rendering is never older than its version."""
        version = session.scalar(select(GradebookVersion.version))
        if version is None:  # no version row: nothing tells when a rendering goes stale
            return _render(fmt, compute(None), 0).body
        key = (course.id, name)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept.version == version:
            return kept.body
        whose = None if kept is None else _changed_rows(session, since=kept.version, upto=version)
        fresh = None
        if kept is not None and whose is not None and len(whose) <= len(kept.rows) // 2:
            fresh = _updated(kept, fmt, compute(whose), whose, version)
        if fresh is None:
            fresh = _render(fmt, compute(None), version)
        with self._lock:
            self._kept[key] = fresh
        return fresh.body


def _changed_rows(session: Session, *, since: int, upto: int) -> set[int] | None:
    """The students whose rows the versions after ``since`` up to ``upto`` changed; None when that is every
    row or a version's record is gone."""
    found = session.execute(
        select(GradebookChange.version, GradebookChange.user_id).where(
            GradebookChange.version > since, GradebookChange.version <= upto
        )
    ).all()
    if len({v for v, _ in found}) != upto - since or any(uid is None for _, uid in found):
        return None
    return {uid for _, uid in found if uid is not None}


def _render(fmt: Format, book: Gradebook, version: int) -> _Rendering:
    head, tail = fmt.frame(book)
    rows = {r.user_id: fmt.row(r) for r in book.students}
    return _Rendering(version, head, tail, rows, head + fmt.separator.join(rows.values()) + tail)


def _updated(kept: _Rendering, fmt: Format, book: Gradebook, whose: set[int], version: int) -> _Rendering | None:
    """``kept`` with the rows of ``whose`` replaced by those of ``book``; None if a row would move or appear."""
    rows = dict(kept.rows)
    for uid in whose - {r.user_id for r in book.students}:  # no longer a student's row: the roster changed
        if uid in rows:
            return None
    for r in book.students:
        if r.user_id not in rows:
            return None
        rows[r.user_id] = fmt.row(r)
    body = kept.head + fmt.separator.join(rows.values()) + kept.tail
    return _Rendering(version, kept.head, kept.tail, rows, body)
