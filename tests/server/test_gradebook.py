"""Gradebook, final grades, late penalties, extensions, counting rules and manual points vs. regrades.

Runs on SQLite and on PostgreSQL. The fake grader gives 8 automatic points (of 8) at fraction 1;
the 5-point ``discussion`` item is manual.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta

import pytest


def _grade_discussion(course, sub_id: int, points: float) -> None:
    r = course.client.put(
        f"/api/submissions/{sub_id}/items/discussion", json={"points": points}, headers=course.auth("tina")
    )
    assert r.status_code == 200, r.text


def _exam(course, username: str, points: float) -> None:
    r = course.client.put(f"/api/gradebook/{username}/exam", json={"points": points}, headers=course.auth("tina"))
    assert r.status_code == 200, r.text


def _row(course, username: str) -> dict:
    book = course.client.get("/api/gradebook", headers=course.auth("tina")).json()
    return next(s for s in book["students"] if s["username"] == username)


def _deadline(course, assignment: str, when: datetime | None) -> None:
    body = {"deadline": when.isoformat() if when else None}
    r = course.client.put(f"/api/assignments/{assignment}", json=body, headers=course.auth("tina"))
    assert r.status_code == 200, r.text


def test_final_grade_edges_104_24_23(course) -> None:
    alice = [course.upload("alice", assignment=f"hw{k}") for k in range(1, 7)]
    bob_hw1 = course.upload("bob", assignment="hw1")
    course.upload("bob", assignment="hw2")
    course.drain()
    for sub in [*alice, bob_hw1]:
        _grade_discussion(course, sub, 5)
    _exam(course, "alice", 26)
    _exam(course, "bob", 3)

    row = _row(course, "alice")
    assert row["homeworks"] == {f"hw{k}": 13.0 for k in range(1, 7)}
    assert (row["exam"], row["total"], row["final_grade"]) == (26.0, 104.0, 11)
    row = _row(course, "bob")
    assert (row["homeworks"]["hw1"], row["homeworks"]["hw2"], row["total"], row["final_grade"]) == (13, 8, 24, 1)
    assert row["details"]["hw2"]["pending_manual"] and not row["details"]["hw1"]["pending_manual"]
    _exam(course, "bob", 2)
    assert (_row(course, "bob")["total"], _row(course, "bob")["final_grade"]) == (23.0, 0)

    r = course.client.put("/api/gradebook/bob/exam", json={"points": 27}, headers=course.auth("tina"))
    assert r.status_code == 422 and "between 0 and 26" in r.json()["detail"]

    # The 15-point scheme: min(floor(points / 10), 10), recomputed from the same scores.
    r = course.client.put("/api/course", json={"scheme": "15-point"}, headers=course.auth("ada"))
    assert r.status_code == 200
    assert _row(course, "alice")["final_grade"] == 10
    assert _row(course, "bob")["final_grade"] == 2


def test_manual_points_and_overrides_survive_regrade(course) -> None:
    sub = course.upload("alice", fraction=0.5)
    course.drain()
    c, tina = course.client, course.auth("tina")
    _grade_discussion(course, sub, 4)
    r = c.put(f"/api/submissions/{sub}/items/code", json={"points": 3.5}, headers=tina)
    assert r.status_code == 422 and "needs a reason" in r.json()["detail"]
    r = c.put(f"/api/submissions/{sub}/items/code", json={"points": 9, "reason": "x"}, headers=tina)
    assert r.status_code == 422
    r = c.put(
        f"/api/submissions/{sub}/items/code", json={"points": 3.5, "reason": "mask bug is cosmetic"}, headers=tina
    )
    assert r.status_code == 200 and r.json()["total"] == 2 + 3.5 + 4

    # Regrade one submission, then the whole assignment: the automatic half changes, manual stays.
    assert c.post(f"/api/submissions/{sub}/regrade", headers=tina).json() == {"queued": 1}
    assert c.post(f"/api/submissions/{sub}/regrade", headers=tina).json() == {"queued": 0}  # already queued
    course.drain()
    assert c.post("/api/assignments/hw1/regrade", headers=tina).json() == {"queued": 1}
    course.drain()
    items = {i["id"]: i for i in c.get(f"/api/submissions/{sub}", headers=tina).json()["items"]}
    assert items["discussion"]["manual_points"] == 4 and items["discussion"]["points"] == 4
    assert items["code"]["manual_points"] == 3.5 and items["code"]["auto_points"] == 2.0
    assert items["theory"]["points"] == 2.0

    audit = c.get("/api/audit", params={"username": "alice"}, headers=tina).json()
    entries = {(e["entity"], e["key"].rsplit(":", 1)[1], e["old_value"], e["new_value"]) for e in audit}
    assert ("item_manual", "discussion", None, "4") in entries
    assert ("item_override", "code", None, "3.5") in entries
    assert ("item_auto", "theory", None, "2") in entries
    override = next(e for e in audit if e["entity"] == "item_override")
    assert override["actor"] == "tina" and override["reason"] == "mask bug is cosmetic"
    # Regrades that did not change a score add no audit rows.
    assert sum(1 for e in audit if e["entity"] == "item_auto") == 3


def test_late_penalty_and_extensions(course) -> None:
    now = datetime.now(UTC)
    _deadline(course, "hw1", now - timedelta(days=2, hours=12))
    sub = course.upload("alice")
    course.drain()
    row = _row(course, "alice")
    assert row["details"]["hw1"]["late"] and row["details"]["hw1"]["days_late"] == 3
    assert row["homeworks"]["hw1"] == pytest.approx(8 * 0.7)
    assert row["details"]["hw1"]["raw_points"] == 8

    r = course.client.put(
        "/api/extensions/hw1/alice",
        json={"deadline": (now + timedelta(days=1)).isoformat(), "reason": "medical"},
        headers=course.auth("tina"),
    )
    assert r.status_code == 200
    assert course.client.get(f"/api/submissions/{sub}", headers=course.auth("alice")).json()["late"] is False
    row = _row(course, "alice")
    assert row["homeworks"]["hw1"] == 8 and not row["details"]["hw1"]["late"]
    # Extensions are per student: bob's late upload is still penalised.
    course.upload("bob")
    course.drain()
    assert _row(course, "bob")["homeworks"]["hw1"] == pytest.approx(5.6)

    assert course.client.delete("/api/extensions/hw1/alice", headers=course.auth("tina")).status_code == 204
    assert _row(course, "alice")["homeworks"]["hw1"] == pytest.approx(5.6)
    # More than late_max_days (7) late earns nothing.
    _deadline(course, "hw1", now - timedelta(days=8, hours=12))
    assert _row(course, "alice")["homeworks"]["hw1"] == 0
    assert _row(course, "alice")["details"]["hw1"]["days_late"] == 9


def test_which_submission_counts(course) -> None:
    on_time = course.upload("alice", fraction=1.0)
    time.sleep(0.05)
    _deadline(course, "hw1", datetime.now(UTC))
    time.sleep(0.05)
    late = course.upload("alice", fraction=0.5)
    course.drain()
    ada = course.auth("ada")

    row = _row(course, "alice")  # default: the latest on-time submission
    assert row["details"]["hw1"]["submission_id"] == on_time and row["homeworks"]["hw1"] == 8
    policy = {"counting": "latest", "late_penalty_per_day": 0.1, "late_max_days": 7}
    assert course.client.put("/api/course", json={"policy": policy}, headers=ada).status_code == 200
    row = _row(course, "alice")
    assert row["details"]["hw1"]["submission_id"] == late and row["homeworks"]["hw1"] == pytest.approx(3.6)
    policy["counting"] = "best"
    course.client.put("/api/course", json={"policy": policy}, headers=ada)
    assert _row(course, "alice")["details"]["hw1"]["submission_id"] == on_time


def test_gradebook_csv_and_pending_markers(course) -> None:
    course.upload("alice")
    course.drain()
    course.upload("bob", fraction=0.25)  # still queued
    _exam(course, "alice", 20)
    r = course.client.get("/api/gradebook.csv", headers=course.auth("tina"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = {row["username"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert rows["alice"]["hw1"] == "8" and rows["alice"]["exam"] == "20" and rows["alice"]["total"] == "28"
    assert rows["alice"]["final_grade"] == "1" and rows["alice"]["pending"] == "hw1"
    assert rows["bob"]["hw1"] == "0" and rows["bob"]["pending"] == "hw1"
    assert _row(course, "bob")["details"]["hw1"]["grading"] is True


def test_a_longer_grace_period_makes_late_uploads_on_time(course) -> None:
    _deadline(course, "hw1", datetime.now(UTC) - timedelta(minutes=10))
    sub = course.upload("alice")
    course.drain()
    assert _row(course, "alice")["details"]["hw1"]["days_late"] == 1
    ada = course.auth("ada")
    assert course.client.put("/api/course", json={"policy": {"grace_minutes": 60}}, headers=ada).status_code == 200
    row = _row(course, "alice")
    assert row["homeworks"]["hw1"] == 8 and not row["details"]["hw1"]["late"]
    assert course.client.get(f"/api/submissions/{sub}", headers=course.auth("alice")).json()["late"] is False
    assert course.client.put("/api/course", json={"policy": {"grace_minutes": 0}}, headers=ada).status_code == 200
    assert _row(course, "alice")["homeworks"]["hw1"] == pytest.approx(8 * 0.9)
