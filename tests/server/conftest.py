"""Fixtures for the server tests: both databases, an app with seeded users, a worker that drains the queue.

PostgreSQL tests need the server on 127.0.0.1:5432 (trust auth, user postgres); each test session
creates its own uniquely named database and drops it at the end, so parallel runs never collide.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from server.core.config import Settings
from server.core.db import Database
from server.core.security import Passwords
from server.main import create_app
from server.models import Base, GradebookCell, Role
from server.services import courses, users
from server.testing import FAKE_RUBRIC, make_notebook
from server.worker import Worker

PG_ADMIN_URL = os.environ.get("DGM_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FAST_PASSWORDS = Passwords(time_cost=1, memory_kib=1024)
PASSWORD = "correct horse battery"


def _pg_admin_engine():
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (migrated once), dropped at the end."""
    name = f"dgm_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {exc.__class__.__name__}: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    db.migrate()
    db.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_pg(url: str) -> None:
    engine = create_engine(url)
    # The gradebook version's one row is the migrations' to create, like alembic_version's.
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "gradebook_version")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating from scratch costs ~0.5 s)."""
    path = tmp_path_factory.mktemp("template") / "dgm.sqlite3"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database URL: a SQLite file, or the session's PostgreSQL database (emptied after the test)."""
    if request.param == "sqlite":
        target = tmp_path / "dgm.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    url = request.getfixturevalue("pg_database")
    try:
        yield url
    finally:
        _truncate_pg(url)


def make_settings(home: Path, db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "database_url": db_url,
        "secret_key": "test-secret",
        "grader": "server.testing:fake_grade",
        "inprocess_worker": False,
        "worker_poll_s": 0.05,
        "heartbeat_s": 0.2,
        "lease_s": 5.0,
        "retry_backoff_s": 0.0,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "login_rate_per_minute": 1000,
        "login_rate_per_address_per_minute": 1000,
        "upload_rate_per_minute": 1000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    """Extra settings; parametrize indirectly to change them for one test."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def settings(tmp_path: Path, db_url: str, settings_overrides: dict[str, object]) -> Settings:
    return make_settings(tmp_path / "home", db_url, **settings_overrides)


@dataclass
class Course:
    """A seeded course: its app client, the settings and a bearer token per user."""

    client: TestClient
    settings: Settings
    db: Database
    tokens: dict[str, str]

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def upload(self, username: str, *, assignment: str = "hw1", **fake: object) -> int:
        """Upload a fake-graded notebook as ``username``; returns the submission id."""
        r = self.client.post(
            "/api/submissions",
            files={"file": ("solution.ipynb", make_notebook(**fake), "application/x-ipynb+json")},  # type: ignore[arg-type]
            data={"assignment": assignment},
            headers=self.auth(username),
        )
        assert r.status_code == 202, r.text
        return int(r.json()["id"])

    def drain(self) -> int:
        """Grade everything queued, in this thread."""
        return Worker(db=self.db, settings=self.settings, worker_id="test-worker").run(exit_when_idle=True)


DEADLINE = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)


def seed(db: Database, *, slug: str = "dgm") -> dict[str, str]:
    """Users alice, bob (students), tina (TA), ada (admin); homeworks hw1..hw6 due DEADLINE + k weeks."""
    tokens = {}
    with db.session() as s:
        course = courses.get_or_create_course(s, slug=slug, title="DGM")
        for k in range(1, 7):
            spec = courses.AssignmentSpec(name=f"hw{k}", title=f"Homework {k}", points=13, rubric=FAKE_RUBRIC)
            courses.upsert_assignment(s, course=course, spec=spec, deadline=DEADLINE + timedelta(weeks=k - 1))
        for name, role in [("alice", Role.student), ("bob", Role.student), ("tina", Role.ta), ("ada", Role.admin)]:
            user = users.create_user(s, username=name, role=role, password=PASSWORD, passwords=FAST_PASSWORDS)
            tokens[name] = users.create_token(s, user=user, name="test")[1]
    return tokens


def cell_values(cell: GradebookCell) -> tuple:
    """A stored gradebook cell as (submission id, points, raw points, days late, pending, grading, uploads)."""
    return (
        cell.submission_id,
        cell.points,
        cell.raw_points,
        cell.days_late,
        cell.pending_manual,
        cell.grading,
        cell.submissions,
    )


def add_assignment_without_notebook(db: Database, name: str = "essay") -> None:
    """A course assignment with no folder under assignments/ (so no template to release)."""
    with db.session() as s:
        course = courses.get_or_create_course(s, slug="dgm", title="DGM")
        spec = courses.AssignmentSpec(name=name, title=name.title(), points=13, rubric=FAKE_RUBRIC)
        courses.upsert_assignment(s, course=course, spec=spec, deadline=DEADLINE)


@pytest.fixture
def course_factory(settings: Settings) -> Iterator[Callable[..., Course]]:
    """``course_factory(load_assignments=False, **settings_changes)``: a seeded app with a TestClient."""
    stack = ExitStack()

    def make(*, load_assignments: bool = False, **changes: object) -> Course:
        current = settings.model_copy(update=changes)
        app = create_app(current, start_worker=False, load_assignments=load_assignments)
        client = stack.enter_context(TestClient(app))
        ctx = app.state.ctx
        return Course(client=client, settings=current, db=ctx.db, tokens=seed(ctx.db))

    with stack:
        yield make


@pytest.fixture
def course(course_factory: Callable[..., Course]) -> Course:
    return course_factory()


@dataclass
class LiveServer:
    """A uvicorn server in a thread, with the in-process worker grading in the background."""

    url: str
    settings: Settings
    db: Database
    tokens: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    settings = settings.model_copy(update={"inprocess_worker": True})
    app = create_app(settings, load_assignments=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    ctx = app.state.ctx
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", settings=settings, db=ctx.db, tokens=seed(ctx.db))
    finally:
        server.should_exit = True
        thread.join(30)
