"""Alembic is the source of truth: the migrations build exactly the models' schema, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from server.core.db import Database, alembic_config
from server.models import Base


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
