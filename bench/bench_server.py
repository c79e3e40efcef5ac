"""Benchmark the course server: gradebook latency (500 students x 6 homeworks) and upload throughput.

    .venv/bin/python bench/bench_server.py [--students 500] [--uploads 200] [--concurrency 20]
                                           [--database-url postgresql+psycopg://postgres@127.0.0.1/test]

Uses a fresh SQLite file by default (the embedded setup). With --database-url the tables of that
database are created by the migrations and filled; use a scratch database. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.core.config import Settings
from server.core.db import Database
from server.core.security import Passwords
from server.main import create_app
from server.models import GradingJob, ItemScore, JobState, Role, Submission, User
from server.services import courses, users
from server.testing import FAKE_RUBRIC, make_notebook

FAST = Passwords(time_cost=1, memory_kib=1024)


def settings_for(home: Path, url: str | None, **extra: object) -> Settings:
    return Settings(
        home=home,
        database_url=url,
        secret_key="bench",
        grader="server.testing:fake_grade",
        upload_rate_per_minute=1_000_000,
        login_rate_per_minute=1_000_000,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        **extra,  # type: ignore[arg-type]
    )


def populate(db: Database, *, students: int, homeworks: int) -> str:
    """Students with one graded submission per homework; returns a TA token."""
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
            [{"username": f"s{i:04d}", "full_name": f"Student {i}", "role": Role.student} for i in range(students)],
        )
        ids = [u.id for u in s.query(User).filter(User.role == Role.student)]
        sub_rows = [
            {
                "user_id": uid,
                "assignment_id": a.id,
                "sha256": "0" * 64,
                "filename": "x.ipynb",
                "size": 1,
                "uploaded_at": now - timedelta(days=7 * (homeworks - k), hours=(uid % 50) - 25),
                "graded_at": now,
            }
            for uid in ids
            for k, a in enumerate(assignments, start=1)
        ]
        s.execute(insert(Submission), sub_rows)
        subs = s.query(Submission.id).all()
        s.execute(
            insert(GradingJob), [{"submission_id": sid, "state": JobState.done, "attempts": 1} for (sid,) in subs]
        )
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
                for (sid,) in subs
                for p, it in enumerate(FAKE_RUBRIC)
            ],
        )
    return token


def bench_gradebook(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    db = Database(settings.effective_database_url)
    db.migrate()
    token = populate(db, students=args.students, homeworks=args.homeworks)
    app = create_app(settings, start_worker=False, load_assignments=False)
    out: dict[str, object] = {}
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for name, path in (("json", "/api/gradebook"), ("csv", "/api/gradebook.csv")):
            client.get(path, headers=headers)  # warm
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                r = client.get(path, headers=headers)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            out[f"gradebook_{name}_ms"] = {
                "median": round(1000 * statistics.median(times), 1),
                "max": round(1000 * max(times), 1),
            }
        rows = client.get("/api/gradebook", headers=headers).json()["students"]
        assert len(rows) == args.students
    db.dispose()
    return out


def bench_uploads(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    db = Database(settings.effective_database_url)
    app = create_app(settings, start_worker=False, load_assignments=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    with db.session() as s:
        student = users.create_user(s, username="uploader", passwords=FAST)
        token = users.create_token(s, user=student, name="bench")[1]
    notebooks = [make_notebook(tag=f"bench-{i}", padding="x" * args.notebook_kib * 1024) for i in range(args.uploads)]

    async def fire() -> list[int]:
        sem = asyncio.Semaphore(args.concurrency)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:

            async def one(i: int) -> int:
                async with sem:
                    r = await client.post(
                        "/api/submissions",
                        files={"file": (f"{i}.ipynb", notebooks[i], "application/x-ipynb+json")},
                        data={"assignment": "hw1"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    return r.status_code

            return await asyncio.gather(*(one(i) for i in range(args.uploads)))

    t0 = time.perf_counter()
    codes = asyncio.run(fire())
    elapsed = time.perf_counter() - t0
    server.should_exit = True
    thread.join(30)
    db.dispose()
    return {
        "uploads": args.uploads,
        "concurrency": args.concurrency,
        "notebook_kib": args.notebook_kib,
        "accepted": codes.count(202),
        "uploads_per_s": round(args.uploads / elapsed, 1),
        "elapsed_s": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--homeworks", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--notebook-kib", type=int, default=50)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="dgm-bench-"))
    settings = settings_for(home, args.database_url)
    result = {
        "database": settings.effective_database_url.split(":", 1)[0],
        "students": args.students,
        "homeworks": args.homeworks,
    }
    result |= bench_gradebook(settings, args)
    result |= bench_uploads(settings, args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
