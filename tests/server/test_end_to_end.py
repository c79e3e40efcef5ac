"""Through the real grading pipeline: upload -> queue -> grader.grade (no sandbox) -> scores -> gradebook."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import stand_in_assignment

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def test_real_pipeline_grades_an_upload(course_factory, tmp_path: Path) -> None:
    root = stand_in_assignment.write(tmp_path / "assignments")
    course = course_factory(load_assignments=True, grader=None, sandbox="none", assignments_dir=root)
    c, tina = course.client, course.auth("tina")
    assignment = next(a for a in c.get("/api/assignments", headers=tina).json() if a["name"] == "tiny")
    assert [i["id"] for i in assignment["items"]] == ["t_double", "square", "discussion"]

    r = c.post(
        "/api/submissions",
        files={"file": ("tiny.ipynb", stand_in_assignment.notebook("return x * x", "2*x"), "application/x-ipynb+json")},
        data={"assignment": "tiny"},
        headers=course.auth("alice"),
    )
    assert r.status_code == 202
    # A notebook that the grader's validate_notebook refuses never reaches the queue.
    bad = c.post(
        "/api/submissions",
        files={"file": ("tiny.ipynb", b'{"cells": [], "nbformat": 3}', "application/x-ipynb+json")},
        data={"assignment": "tiny"},
        headers=course.auth("alice"),
    )
    assert bad.status_code == 422 and "nbformat 4" in bad.json()["detail"]

    assert course.drain() == 1
    body = c.get(f"/api/submissions/{r.json()['id']}", headers=course.auth("alice")).json()
    assert body["status"] == "graded", body["error"]
    items = {i["id"]: i for i in body["items"]}
    assert items["square"]["points"] == 5 and items["square"]["message"] == "5 of 5 values right"
    assert items["t_double"]["points"] == 4
    assert items["discussion"]["pending"] and body["total"] == 9
    assert body["report"]["sandbox"]["backend"] == "none"

    c.put(f"/api/submissions/{body['id']}/items/discussion", json={"points": 4}, headers=tina)
    book = c.get("/api/gradebook", headers=tina).json()
    alice = next(s for s in book["students"] if s["username"] == "alice")
    assert alice["homeworks"]["tiny"] == 13
    # The grader's own HTML feedback report, served to the student under a no-script CSP.
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)  # type: ignore[union-attr]
    c.post("/login", data={"username": "alice", "password": "correct horse battery", "csrf_token": csrf})
    page = c.get(f"/submissions/{body['id']}/report", follow_redirects=False)
    assert page.status_code == 200 and "5 of 5 values right" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
