"""Alembic environment: runs on the connection the server hands over (see server.core.db.upgrade)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from server.models import Base

target_metadata = Base.metadata
config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no connection and no sqlalchemy.url: use server.core.db.upgrade()")
        with create_engine(url).connect() as conn:
            _run(conn)
            conn.commit()
    else:
        _run(connection)


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=sqlite)
    if not sqlite:
        with context.begin_transaction():
            context.run_migrations()
        return
    # A batch operation rebuilds a SQLite table (copy, DROP, rename); with foreign keys on, the DROP cascades
    # to every row that refers to it. The pragma only takes effect outside a transaction, so what the caller's
    # connection holds is committed first, and the pragma is off until the migrations are committed.
    if connection.in_transaction():
        connection.commit()
    driver = connection.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
        if connection.in_transaction():
            connection.commit()
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported")
run_migrations_online()
