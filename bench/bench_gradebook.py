"""Benchmark the gradebook: latency of GET /api/gradebook (and its CSV) at 500 and 5,000 students x 6
homeworks, on SQLite and on PostgreSQL, measured in one run. Targets: p95 < 50 ms at 500 x 6 and
< 200 ms at 5,000 x 6 on both databases.

    .venv/bin/python bench/bench_gradebook.py [--students 500 5000] [--runs 5] [--repeat 20]
                                              [--pg-admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Each size gets a fresh SQLite file and, when PostgreSQL answers, a scratch database that is dropped at
the end. Requests go through the whole app in-process (authentication, query, JSON), not over a socket.
Each format is measured in three modes: ``kept``, nothing changes between requests (the server serves the
rendering it kept); ``one``, a student's exam score changes before each request (untimed), as grading results
and TA scores do, so every request renders that student's row again; and ``all``, every row changes before
each request (a course setting), so every request renders the whole gradebook from the stored cells.
Each measurement is ``--runs`` rounds of ``--repeat`` requests; it reports the median over the rounds of
each round's p50 and p95, so one burst of load on a shared machine moves one round, not the result.
Three clocks per request: wall (what the client waits), in the app (wall time inside the ASGI app: the
server's side, without the test client's transport) and CPU (this process's CPU time: on a machine
shared with other work, the latency an idle machine would see, the database server's own CPU excluded).
Prints one line per measurement, then a table of the p95s against the targets and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select, text
from starlette.types import ASGIApp, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.core.config import Settings
from server.core.db import Database
from server.core.security import Passwords
from server.main import create_app
from server.models import GradingJob, ItemScore, JobState, Role, Submission, User
from server.scheme import days_late
from server.services import courses, gradebook, gradebook_cache, users
from server.testing import FAKE_RUBRIC

FAST = Passwords(time_cost=1, memory_kib=1024)
TARGET_P95_MS = {500: 50.0, 5000: 200.0}
PATHS = {"json": "/api/gradebook", "csv": "/api/gradebook.csv"}
MODES = ("kept", "one", "all")


def populate(db: Database, *, students: int, homeworks: int) -> str:
    """Students with one graded submission per homework (a third with manual points); returns a TA token."""
    now = datetime.now(UTC)
    with db.session() as s:
        course = courses.get_or_create_course(s, slug="dgm", title="DGM")
        assignments = [
            courses.upsert_assignment(
                s,
                course=course,
                spec=courses.AssignmentSpec(f"hw{k}", f"Homework {k}", 13, FAKE_RUBRIC),
                deadline=now - timedelta(days=7 * (homeworks - k)),
            )
            for k in range(1, homeworks + 1)
        ]
        ta = users.create_user(s, username="ta", role=Role.ta, passwords=FAST)
        token = users.create_token(s, user=ta, name="bench")[1]
        s.execute(
            insert(User),
            [{"username": f"s{i:05d}", "full_name": f"Student {i}", "role": Role.student} for i in range(students)],
        )
        ids = list(s.scalars(select(User.id).where(User.role == Role.student)))
        rows = []
        for uid in ids:
            for k, a in enumerate(assignments, start=1):
                uploaded_at = now - timedelta(days=7 * (homeworks - k), hours=(uid % 50) - 25)  # half of them late
                rows.append(
                    {
                        "user_id": uid,
                        "assignment_id": a.id,
                        "sha256": "0" * 64,
                        "filename": "x.ipynb",
                        "size": 1,
                        "uploaded_at": uploaded_at,
                        "is_late": days_late(uploaded_at, a.deadline) > 0,
                        "days_late": days_late(uploaded_at, a.deadline),
                        "graded_at": now,
                    }
                )
        s.execute(insert(Submission), rows)
        subs = list(s.scalars(select(Submission.id)))
        s.execute(insert(GradingJob), [{"submission_id": sid, "state": JobState.done, "attempts": 1} for sid in subs])
        s.execute(
            insert(ItemScore),
            [
                {
                    "submission_id": sid,
                    "item_id": it["id"],
                    "position": p,
                    "kind": it["kind"],
                    "title": it["title"],
                    "max_points": it["points"],
                    "auto_points": it["points"] * ((sid % 4) / 4),
                    "auto_status": "partial",
                    "manual_points": 3.0 if it["kind"] == "manual" and sid % 3 else None,
                }
                for sid in subs
                for p, it in enumerate(FAKE_RUBRIC)
            ],
        )
        for a in assignments:  # what every write path does; bulk inserts bypass them
            gradebook.refresh_cells(s, assignment=a)
    return token


class AppClock:
    """ASGI middleware that keeps the wall time of the latest request inside the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last_ms = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        await self.app(scope, receive, send)
        self.last_ms = 1000 * (time.perf_counter() - t0)


def measure(
    url: str, home: Path, *, students: int, homeworks: int, runs: int, repeat: int
) -> dict[str, dict[str, float]]:
    """Per format and mode, the median over ``runs`` rounds of each round's latencies.

    Mode ``kept``: nothing changes between the requests, so all but the first are served from the kept
    rendering. Mode ``one``: an exam score changes before each request (untimed), so each renders that row
    again. Mode ``all``: every row changes before each request (untimed), so each renders everything.
    """
    settings = Settings(home=home, database_url=url, secret_key="bench", inprocess_worker=False)
    db = Database(url)
    db.migrate()
    token = populate(db, students=students, homeworks=homeworks)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:  # what autovacuum does soon after a bulk load
            conn.execute(text("ANALYZE"))
            conn.commit()
    app = AppClock(create_app(settings, start_worker=False, load_assignments=False))
    measurements = [(f"{fmt} {mode}", path, mode) for fmt, path in PATHS.items() for mode in MODES]
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in measurements}
    kib: dict[str, int] = {}
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for path in PATHS.values():
            client.get(path, headers=headers)  # warm: caches, connection pool
        for _ in range(runs):  # the measurements take turns, so a burst of load on the machine hits all alike
            for name, path, mode in measurements:
                client.get(path, headers=headers)  # kept from here on, unless changed
                wall, in_app, cpu = [], [], []
                for k in range(repeat):
                    if mode == "one":
                        exam = client.put(f"/api/gradebook/s{k:05d}/exam", json={"points": k % 2}, headers=headers)
                        assert exam.status_code == 200, exam.text
                    elif mode == "all":
                        with db.session() as s:  # what a course setting's commit records
                            gradebook_cache.changed(s)
                    t0, c0 = time.perf_counter(), time.process_time()
                    r = client.get(path, headers=headers)
                    wall.append(1000 * (time.perf_counter() - t0))
                    cpu.append(1000 * (time.process_time() - c0))
                    in_app.append(app.last_ms)
                    assert r.status_code == 200, r.text
                kib[name] = round(len(r.content) / 1024)
                rounds[name].append(
                    {
                        "p50_ms": statistics.median(wall),
                        "p95_ms": p95(wall),
                        "app_p95_ms": p95(in_app),
                        "cpu_p95_ms": p95(cpu),
                    }
                )
        assert len(client.get("/api/gradebook", headers=headers).json()["students"]) == students
    db.dispose()
    return {
        name: {
            **{key: round(statistics.median(r[key] for r in got), 1) for key in got[0]},
            "p95_ms_spread": round(max(r["p95_ms"] for r in got) - min(r["p95_ms"] for r in got), 1),
            "kib": kib[name],
        }
        for name, got in rounds.items()
    }


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


@contextmanager
def sqlite_url() -> Iterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="dgm-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'dgm.sqlite3'}", Path(tmp)


@contextmanager
def postgres_url(admin_url: str) -> Iterator[tuple[str, Path]]:
    name = f"dgm_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="dgm-bench-") as tmp:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}", Path(tmp)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--homeworks", type=int, default=6)
    parser.add_argument("--runs", type=int, default=5, help="rounds per measurement (the median is reported)")
    parser.add_argument("--repeat", type=int, default=20, help="requests per round")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    databases = {"sqlite": sqlite_url}
    try:
        create_engine(args.pg_admin_url, connect_args={"connect_timeout": 3}).connect().close()
        databases["postgresql"] = lambda: postgres_url(args.pg_admin_url)
    except Exception as exc:
        print(f"PostgreSQL not measured: {exc.__class__.__name__}", file=sys.stderr)
    results = []
    for students in args.students:
        for database, make in databases.items():
            with make() as (url, home):
                got = measure(
                    url, home, students=students, homeworks=args.homeworks, runs=args.runs, repeat=args.repeat
                )
            target = TARGET_P95_MS.get(students)
            for kind, m in got.items():
                verdict = "" if target is None else f" (target p95 < {target:g} ms: {m['p95_ms'] / target:.2f}x)"
                print(
                    f"gradebook {kind:<9} {database:<10} {students} x {args.homeworks}: "
                    f"p50 {m['p50_ms']:.1f} ms, p95 {m['p95_ms']:.1f} ms (rounds spread {m['p95_ms_spread']:.1f}), "
                    f"in app p95 {m['app_p95_ms']:.1f} ms, CPU p95 {m['cpu_p95_ms']:.1f} ms, "
                    f"{m['kib']} KiB{verdict}",
                    flush=True,
                )
                results.append({"database": database, "students": students, "format": kind, **m})
    print_table(results, homeworks=args.homeworks)
    print(json.dumps(results, indent=2))


def print_table(results: list[dict[str, Any]], *, homeworks: int) -> None:
    """p95 latency, wall / in the app / this process's CPU, per database and format; one column per size."""
    sizes = sorted({r["students"] for r in results})
    print(f"\n{'p95 ms, wall/app/CPU':<24}" + "".join(f"{f'{n} x {homeworks}':>18}" for n in sizes))
    for database in dict.fromkeys(r["database"] for r in results):
        for kind in (f"{fmt} {mode}" for fmt in PATHS for mode in MODES):
            got = {r["students"]: r for r in results if (r["database"], r["format"]) == (database, kind)}
            cells = [
                f"{got[n]['p95_ms']:.0f}/{got[n]['app_p95_ms']:.0f}/{got[n]['cpu_p95_ms']:.0f}" if n in got else "-"
                for n in sizes
            ]
            print(f"{database + ' ' + kind:<24}" + "".join(f"{c:>18}" for c in cells))
    targets = [f"< {TARGET_P95_MS[n]:g}" if n in TARGET_P95_MS else "-" for n in sizes]
    print(f"{'target':<24}" + "".join(f"{c:>18}" for c in targets))


if __name__ == "__main__":
    main()
