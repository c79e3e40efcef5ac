"""`dgm-grader serve` as a real process: SIGTERM or SIGINT stops it with its children, and it starts
again on the same port at once (a surviving child would still hold the port and the SQLite file)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import seed

from server.core.db import Database
from server.testing import make_notebook

DGM_GRADER = Path(sys.executable).parent / "dgm-grader"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


class Serve:
    """``dgm-grader serve`` on a fixed port, with its log in a file."""

    def __init__(self, home: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "DGM_DATABASE_URL"}
        env.update(
            DGM_HOME=str(home),
            DGM_ASSIGNMENTS_DIR=str(home / "no-assignments"),
            DGM_GRADER="server.testing:fake_grade",
            DGM_SECRET_KEY="test-secret",
            DGM_WORKER_POLL_S="0.1",
            DGM_SHUTDOWN_GRACE_S="1",
        )
        self.log = home / f"serve-{port}-{time.monotonic_ns()}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [str(DGM_GRADER), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        _wait_until(lambda: _healthy(self.url) or self.proc.poll() is not None, 60, "the server to start")
        assert self.proc.poll() is None, self.log.read_text()

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, signum: int) -> None:
        self.proc.send_signal(signum)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the server ignored signal {signum}:\n{self.log.read_text()}")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "var"
    db = Database(f"sqlite:///{(home / 'dgm.sqlite3').resolve()}")
    db.migrate()
    yield home
    db.dispose()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_with_its_children_and_restarts_on_the_same_port(home: Path, signum: int) -> None:
    db = Database(f"sqlite:///{(home / 'dgm.sqlite3').resolve()}")
    token = seed(db)["alice"]
    db.dispose()
    port = _free_port()
    server = Serve(home, port)
    try:
        # A grading that starts the theory worker (a forked child) and is still running at the signal.
        r = httpx.post(
            f"{server.url}/api/submissions",
            files={"file": ("a.ipynb", make_notebook(theory=True, sleep=120), "application/x-ipynb+json")},
            data={"assignment": "hw1"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        _wait_until(lambda: server.children(), 60, "the theory worker to start")
        children = server.children()
        server.stop(signum)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"children outlived the server: {alive}"

    again = Serve(home, port)  # the same port, at once
    try:
        assert _healthy(again.url)
        jobs = httpx.get(f"{again.url}/api/submissions", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert jobs.status_code == 200 and jobs.json()[0]["status"] in ("queued", "running")  # released, not lost
    finally:
        again.stop(signal.SIGTERM)
