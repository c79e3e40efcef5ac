"""Every role's permissions, on SQLite and PostgreSQL: a student only ever sees their own work."""

from __future__ import annotations

import pytest


@pytest.fixture
def graded(course) -> tuple[int, int]:
    """One graded submission each for alice and bob."""
    a = course.upload("alice", fraction=1.0)
    b = course.upload("bob", fraction=0.5)
    course.drain()
    return a, b


def test_student_sees_only_own_submissions_reports_and_grades(course, graded: tuple[int, int]) -> None:
    alice_sub, bob_sub = graded
    c, alice = course.client, course.auth("alice")

    own = c.get(f"/api/submissions/{alice_sub}", headers=alice)
    assert own.status_code == 200 and own.json()["report"]["assignment"] == "hw1"
    # Another student's submission, report and file do not exist as far as alice can tell.
    assert c.get(f"/api/submissions/{bob_sub}", headers=alice).status_code == 404
    assert c.get(f"/api/submissions/{bob_sub}/download", headers=alice).status_code == 404
    assert c.get(f"/api/submissions/{bob_sub + 1000}", headers=alice).status_code == 404
    listed = c.get("/api/submissions", params={"username": "bob"}, headers=alice).json()
    assert [s["id"] for s in listed] == [alice_sub]
    # Grades: only her own row; the gradebook and its CSV are for staff.
    me = c.get("/api/grades/me", headers=alice).json()
    assert me["username"] == "alice" and me["homeworks"]["hw1"] == 8.0
    for path in ("/api/gradebook", "/api/gradebook.csv", "/api/audit", "/api/extensions", "/api/users"):
        assert c.get(path, headers=alice).status_code == 403, path


def test_student_cannot_change_grades(course, graded: tuple[int, int]) -> None:
    alice_sub, bob_sub = graded
    c, alice = course.client, course.auth("alice")
    for sub in (alice_sub, bob_sub):
        r = c.put(f"/api/submissions/{sub}/items/discussion", json={"points": 5}, headers=alice)
        assert r.status_code == 403
        assert c.post(f"/api/submissions/{sub}/regrade", headers=alice).status_code == 403
    assert c.put("/api/gradebook/alice/exam", json={"points": 26}, headers=alice).status_code == 403
    assert c.post("/api/assignments/hw1/regrade", headers=alice).status_code == 403
    r = c.put("/api/extensions/hw1/alice", json={"deadline": "2030-01-01T00:00:00Z"}, headers=alice)
    assert r.status_code == 403
    assert c.put("/api/assignments/hw1", json={"deadline": None}, headers=alice).status_code == 403
    after = c.get(f"/api/submissions/{alice_sub}", headers=alice).json()
    assert after["total"] == 8.0 and all(i["manual_points"] is None for i in after["items"])


def test_ta_sees_everything_but_cannot_administer(course, graded: tuple[int, int]) -> None:
    alice_sub, bob_sub = graded
    c, tina = course.client, course.auth("tina")
    assert c.get(f"/api/submissions/{bob_sub}", headers=tina).status_code == 200
    assert c.get(f"/api/submissions/{alice_sub}/download", headers=tina).status_code == 200
    assert {s["username"] for s in c.get("/api/submissions", headers=tina).json()} == {"alice", "bob"}
    assert c.get("/api/gradebook", headers=tina).status_code == 200
    assert c.put("/api/gradebook/bob/exam", json={"points": 10}, headers=tina).status_code == 200
    assert c.get("/api/grades/me", headers=tina).status_code == 403
    assert c.post("/api/users", json={"username": "eve"}, headers=tina).status_code == 403
    assert c.put("/api/course", json={"scheme": "15-point"}, headers=tina).status_code == 403


def test_admin_manages_users_and_course(course) -> None:
    c, ada = course.client, course.auth("ada")
    r = c.post("/api/users", json={"username": "eve", "password": "long enough pw"}, headers=ada)
    assert r.status_code == 201 and r.json()["role"] == "student" and "password" not in r.text
    assert c.post("/api/users", json={"username": "eve"}, headers=ada).status_code == 409
    r = c.put("/api/course", json={"scheme": "15-point"}, headers=ada)
    assert r.status_code == 200 and r.json()["scheme"]["homework_points"] == 15


def test_anonymous_and_bad_tokens_are_rejected(course, graded: tuple[int, int]) -> None:
    c = course.client
    for path in ("/api/submissions", f"/api/submissions/{graded[0]}", "/api/gradebook", "/api/me"):
        r = c.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get(path, headers={"Authorization": "Bearer dgm_not-a-token"}).status_code == 401
