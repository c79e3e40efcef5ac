"""Benchmark the course server's upload throughput (the gradebook has bench_gradebook.py).

    .venv/bin/python bench/bench_server.py [--uploads 200] [--concurrency 20]
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
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.core.config import Settings
from server.core.db import Database
from server.core.security import Passwords
from server.main import create_app
from server.services import users
from server.testing import make_notebook

FAST = Passwords(time_cost=1, memory_kib=1024)


def settings_for(home: Path, url: str | None, **extra: object) -> Settings:
    return Settings(
        home=home,
        database_url=url,
        secret_key="bench",
        grader="server.testing:fake_grade",
        upload_rate_per_minute=1_000_000,
        login_rate_per_minute=1_000_000,
        login_rate_per_address_per_minute=1_000_000,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        **extra,  # type: ignore[arg-type]
    )


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
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--notebook-kib", type=int, default=50)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="dgm-bench-"))
    settings = settings_for(home, args.database_url)
    result = {"database": settings.effective_database_url.split(":", 1)[0]} | bench_uploads(settings, args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
