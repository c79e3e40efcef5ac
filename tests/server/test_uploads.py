"""Uploads: clear 4xx errors for bad files, and 100 concurrent uploads to a live server all queued."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from sqlalchemy import func, select

from server.models import GradingJob, JobState, Submission
from server.testing import make_notebook

NOTEBOOK_TYPE = "application/x-ipynb+json"


def _post(course, name: str, data: bytes, username: str = "alice", assignment: str = "hw1") -> httpx.Response:
    return course.client.post(
        "/api/submissions",
        files={"file": (name, data, NOTEBOOK_TYPE)},
        data={"assignment": assignment},
        headers=course.auth(username),
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_uploads_get_clear_4xx(course) -> None:
    r = _post(course, "solution.py", b"print('hi')")
    assert r.status_code == 415 and "expected a Jupyter notebook (.ipynb)" in r.json()["detail"]
    r = _post(course, "solution.ipynb", b"{not json")
    assert r.status_code == 422 and "invalid JSON" in r.json()["detail"]
    r = _post(course, "solution.ipynb", b"\xff\xfe\x00binary")
    assert r.status_code == 422 and "not a notebook" in r.json()["detail"]
    r = _post(course, "solution.ipynb", json.dumps({"hello": "world"}).encode())
    assert r.status_code == 422 and "'cells' and 'nbformat'" in r.json()["detail"]
    bad_cell = json.loads(make_notebook())
    bad_cell["cells"][0]["cell_type"] = "spreadsheet"
    r = _post(course, "solution.ipynb", json.dumps(bad_cell).encode())
    assert r.status_code == 422 and "invalid notebook" in r.json()["detail"]
    r = _post(course, "solution.ipynb", b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 422 and "nested 100000 levels deep" in r.json()["detail"]
    r = _post(course, "solution.ipynb", make_notebook(), assignment="hw9")
    assert r.status_code == 404 and "no assignment 'hw9'" in r.json()["detail"]
    r = course.client.post("/api/submissions", data={"assignment": "hw1"}, headers=course.auth("alice"))
    assert r.status_code == 422
    with course.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "settings_overrides", [{"max_upload_bytes": 50_000, "upload_rate_per_minute": 3}], indirect=True
)
def test_oversized_uploads_and_upload_rate_limit(course) -> None:
    # Refused from Content-Length before the body is read (and before it counts against the rate).
    r = _post(course, "solution.ipynb", make_notebook(padding="x" * 200_000))
    assert r.status_code == 413 and "larger than the limit" in r.json()["detail"]
    # Streamed without a Content-Length: counted while it arrives.
    r = course.client.post(
        "/api/submissions",
        content=iter(
            [b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.ipynb"\r\n\r\n'] + [b"x" * 60_000] * 3
        ),
        headers={**course.auth("alice"), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert r.status_code == 413 and "larger than the limit" in r.json()["detail"]
    # Just over the limit, inside the multipart allowance: caught while reading.
    r = _post(course, "solution.ipynb", make_notebook(padding="x" * 49_800))
    assert r.status_code == 413
    statuses = [_post(course, "solution.ipynb", make_notebook(tag=str(i))).status_code for i in range(2)]
    assert statuses == [202, 202]
    r = _post(course, "solution.ipynb", make_notebook())
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _post(course, "solution.ipynb", make_notebook(), username="bob").status_code == 202


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the embedded default: one writer
def test_100_concurrent_uploads_are_all_stored_and_queued(live_server) -> None:
    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=live_server.url, timeout=120, limits=limits) as client:

            async def one(i: int) -> httpx.Response:
                user = ("alice", "bob")[i % 2]
                return await client.post(
                    "/api/submissions",
                    files={"file": (f"nb{i}.ipynb", make_notebook(tag=f"upload-{i}"), NOTEBOOK_TYPE)},
                    data={"assignment": f"hw{1 + i % 6}"},
                    headers={"Authorization": f"Bearer {live_server.tokens[user]}"},
                )

            return await asyncio.gather(*(one(i) for i in range(100)))

    responses = asyncio.run(fire())
    assert sorted(r.status_code for r in responses) == [202] * 100, [r.text for r in responses if r.status_code != 202]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 100
    with live_server.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 100
        assert s.scalar(select(func.count(func.distinct(Submission.sha256)))) == 100
        assert s.scalar(select(func.count()).select_from(GradingJob)) == 100
    # The in-process worker grades them all.
    deadline = time.monotonic() + 120
    while True:
        with live_server.db.session() as s:
            done = s.scalar(select(func.count()).select_from(GradingJob).where(GradingJob.state == JobState.done))
        if done == 100 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done == 100
