"""Alembic is the source of truth: the migrations build exactly the models' schema, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server.core.db import Database, alembic_config
from server.models import Assignment, Base, GradebookCell, GradebookVersion
from server.services.gradebook import refresh_cells
from tests.server.conftest import cell_values


def test_migrations_match_the_models(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()  # idempotent
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    db.dispose()
    assert diff == []


def test_audit_log_is_append_only(db_url: str) -> None:
    db = Database(db_url)
    with db.session() as s:
        s.execute(
            text("INSERT INTO audit_log (at, actor, entity, key, reason) VALUES (:at, 'tina', 'exam', 'k', 'r')"),
            {"at": "2026-01-01 00:00:00"},
        )
    for stmt in ("UPDATE audit_log SET reason = 'rewritten'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.session() as s:
            s.execute(text(stmt))
    with db.session() as s:
        assert s.execute(text("SELECT reason FROM audit_log")).scalars().all() == ["r"]
    db.dispose()


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    db.migrate()
    cfg = alembic_config()
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        conn.commit()
        assert inspect(conn).get_table_names() == ["alembic_version"]
    db.migrate()
    assert "grading_jobs" in inspect(db.engine).get_table_names()
    db.dispose()


def test_days_late_are_filled_in_for_existing_submissions(db_url: str) -> None:
    """0004 counts the days late of submissions uploaded before it (extensions and grace included), and no
    later revision, up or down, loses a row (SQLite's table rebuilds run with foreign keys off)."""
    db = Database(db_url)
    cfg = alembic_config()
    try:
        with db.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
            conn.commit()
            conn.execute(
                text(
                    "INSERT INTO courses (id, slug, title, scheme, policy, created_at)"
                    " VALUES (1, 'dgm', 'DGM', '{}', '{\"grace_minutes\": 30}', '2026-01-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO assignments"
                    " (id, course_id, name, title, position, points, deadline, rubric, is_homework)"
                    " VALUES (1, 1, 'hw1', 'HW1', 1, 13, '2026-01-10 12:00:00', '[]', :yes),"
                    " (2, 1, 'hw2', 'HW2', 2, 13, NULL, '[]', :yes)"
                ),
                {"yes": True},
            )
            conn.execute(
                text(
                    "INSERT INTO users (id, username, full_name, role, is_active, created_at)"
                    " VALUES (1, 'alice', '', 'student', :yes, '2026-01-01 00:00:00'),"
                    " (2, 'bob', '', 'student', :yes, '2026-01-01 00:00:00')"
                ),
                {"yes": True},
            )
            conn.execute(
                text(
                    "INSERT INTO extensions (assignment_id, user_id, deadline, reason, created_at)"
                    " VALUES (1, 2, '2026-01-12 12:00:00', 'medical', '2026-01-01 00:00:00')"
                )
            )
            uploads = [  # (id, user, assignment, uploaded_at, is_late)
                (1, 1, 1, "2026-01-10 12:20:00", False),  # inside the grace period
                (2, 1, 1, "2026-01-10 12:40:00", True),  # 10 minutes past it: 1 day
                (3, 1, 1, "2026-01-13 12:31:00", True),  # 3 days and a minute: 4 days
                (4, 2, 1, "2026-01-13 12:20:00", True),  # bob's extended deadline and the grace: 1 day
                (5, 1, 2, "2026-02-01 00:00:00", False),  # no deadline
            ]
            for sid, uid, aid, at, late in uploads:
                conn.execute(
                    text(
                        "INSERT INTO submissions"
                        " (id, user_id, assignment_id, sha256, filename, size, uploaded_at, is_late)"
                        " VALUES (:sid, :uid, :aid, 'x', 'x.ipynb', 1, :at, :late)"
                    ),
                    {"sid": sid, "uid": uid, "aid": aid, "at": at, "late": late},
                )
            conn.commit()
            command.upgrade(cfg, "0004")
            conn.commit()
            days = dict(conn.execute(text("SELECT id, days_late FROM submissions")).all())
            command.upgrade(cfg, "head")  # the later revisions keep every row
            conn.commit()
            counts = text("SELECT (SELECT count(*) FROM submissions), (SELECT count(*) FROM courses)")
            kept = tuple(conn.execute(counts).one())
            command.downgrade(cfg, "0003")  # a downgrade rebuilds tables on SQLite: no cascade either
            conn.commit()
            kept_down = tuple(conn.execute(counts).one())
    finally:
        db.migrate()  # back to the newest revision, whatever happened
        db.dispose()
    assert days == {1: 0, 2: 1, 3: 4, 4: 1, 5: 0}
    assert kept == kept_down == (5, 1)


def test_gradebook_cells_are_filled_in_for_existing_submissions(db_url: str) -> None:
    """0006 stores the counted cell of every student and assignment with uploads, under each course's policy,
    exactly as :func:`server.services.gradebook.refresh_cells` computes it."""
    db = Database(db_url)
    cfg = alembic_config()
    try:
        with db.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
            conn.commit()
            for statement in [
                "INSERT INTO courses (id, slug, title, scheme, policy, created_at) VALUES"
                " (1, 'best', 'Best', '{}', '{\"counting\": \"best\", \"late_penalty_per_day\": 0.25}', :t),"
                " (2, 'default', 'Default', '{}', '{}', :t)",
                "INSERT INTO assignments (id, course_id, name, title, position, points, rubric, is_homework) VALUES"
                " (1, 1, 'hw1', 'HW1', 1, 13, '[]', :yes), (2, 2, 'hw1', 'HW1', 1, 13, '[]', :yes)",
                "INSERT INTO users (id, username, full_name, role, is_active, created_at) VALUES"
                " (1, 'alice', '', 'student', :yes, :t), (2, 'bob', '', 'student', :yes, :t)",
                "INSERT INTO submissions"
                " (id, user_id, assignment_id, sha256, filename, size, uploaded_at, is_late, days_late, graded_at)"
                " VALUES (1, 1, 1, 'x', 'x.ipynb', 1, '2026-01-10 10:00:00', :no, 0, :t),"  # 5 points
                " (2, 1, 1, 'x', 'x.ipynb', 1, '2026-01-11 10:00:00', :yes, 1, :t),"  # 8, a day late: 6, the best
                " (3, 2, 1, 'x', 'x.ipynb', 1, '2026-01-10 10:00:00', :no, 0, NULL),"  # not graded yet
                " (4, 1, 2, 'x', 'x.ipynb', 1, '2026-01-10 10:00:00', :no, 0, :t),"  # on time, awaits a TA: counts
                " (5, 1, 2, 'x', 'x.ipynb', 1, '2026-01-12 10:00:00', :yes, 2, :t)",  # the latest, but late
                "INSERT INTO item_scores"
                " (submission_id, item_id, position, kind, title, max_points, auto_points, auto_status, manual_points)"
                " VALUES (1, 'code', 0, 'check', '', 8, 3, 'partial', NULL), (1, 'essay', 1, 'manual', '', 5, NULL,"
                " NULL, 2), (2, 'code', 0, 'check', '', 8, 8, 'passed', NULL), (4, 'code', 0, 'check', '', 8, 4,"
                " 'partial', NULL), (4, 'essay', 1, 'manual', '', 5, NULL, NULL, NULL),"
                " (5, 'code', 0, 'check', '', 8, 8, 'passed', NULL)",
            ]:
                conn.execute(text(statement), {"t": "2026-01-01 00:00:00", "yes": True, "no": False})
            conn.commit()
            command.upgrade(cfg, "head")
            conn.commit()
        with db.session() as s:
            stored = _cell_rows(s)
            s.execute(delete(GradebookCell))
            for assignment in s.scalars(select(Assignment)):
                refresh_cells(s, assignment=assignment)
            recomputed = _cell_rows(s)
            s.rollback()
            version = s.scalar(select(GradebookVersion.version))
    finally:
        db.migrate()
        db.dispose()
    assert stored == recomputed
    assert stored == {  # (student, assignment): (submission, points, raw points, days late, pending, grading, uploads)
        (1, 1): (2, 6.0, 8.0, 1, False, False, 2),
        (2, 1): (3, 0.0, 0.0, 0, False, True, 1),
        (1, 2): (4, 4.0, 4.0, 0, True, False, 2),
    }
    assert version == 0


def _cell_rows(session: Session) -> dict[tuple[int, int], tuple]:
    return {(c.user_id, c.assignment_id): cell_values(c) for c in session.scalars(select(GradebookCell))}
