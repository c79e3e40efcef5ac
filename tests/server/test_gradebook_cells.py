"""The stored gradebook cells (``gradebook_cells``) always equal what the item scores, late days and policy
give, and the gradebook served from a kept rendering always equals the gradebook computed now.

Runs on SQLite and on PostgreSQL. After every kind of write (an upload, a grading result, manual points,
an override, cleared points, a regrade, a deadline, an extension granted and revoked, policy changes, a
release) the stored cells are compared with cells recomputed from scratch; after every kind of change the
JSON and CSV served are compared with a new rendering, and a change to one student's grades renders only
that student's row again.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session, selectinload

from server.api.routes.gradebook import row_json
from server.core.db import Database
from server.models import Assignment, GradebookCell, GradebookChange, Submission, User
from server.services import courses, grades
from server.services.gradebook import compute_gradebook, csv_header, csv_row, refresh_cells
from tests.server.conftest import cell_values


def _cells(session: Session) -> dict[tuple[str, str], tuple]:
    """(username, assignment) -> (submission id, points, raw points, days late, pending, grading, uploads)."""
    rows = session.execute(
        select(GradebookCell, User.username, Assignment.name)
        .join(User, GradebookCell.user_id == User.id)
        .join(Assignment, GradebookCell.assignment_id == Assignment.id)
    )
    return {(username, assignment): cell_values(c) for c, username, assignment in rows}


def assert_cells_current(db: Database) -> dict[tuple[str, str], tuple]:
    """The stored cells equal cells recomputed from nothing; returns them."""
    with db.session() as s:
        stored = _cells(s)
        s.execute(delete(GradebookCell))
        for assignment in s.scalars(select(Assignment)):
            refresh_cells(s, assignment=assignment)
        recomputed = _cells(s)
        s.rollback()
    assert stored == recomputed
    return stored


def test_cells_follow_every_kind_of_write(course) -> None:
    c, tina, ada = course.client, course.auth("tina"), course.auth("ada")

    def cell(username: str) -> tuple:
        return assert_cells_current(course.db)[username, "hw1"]

    first = course.upload("alice")
    assert cell("alice")[0] == first and cell("alice")[5] is True  # counted while it waits for the grader
    course.drain()
    assert cell("alice")[1:3] == (8.0, 8.0) and cell("alice")[5] is False
    second = course.upload("alice", fraction=0.5)
    assert cell("alice")[0] == second and cell("alice")[6] == 2
    course.upload("bob", assignment="hw2")
    course.drain()
    assert cell("alice")[1] == 4.0

    def put_item(sub: int, item: str, body: dict) -> None:
        r = c.put(f"/api/submissions/{sub}/items/{item}", json=body, headers=tina)
        assert r.status_code == 200, r.text

    put_item(second, "discussion", {"points": 5})  # manual points
    assert cell("alice")[1] == 9.0 and cell("alice")[4] is False
    put_item(second, "code", {"points": 1, "reason": "hard-coded masks"})  # an override
    assert cell("alice")[1] == 8.0
    put_item(second, "discussion", {"points": None})  # cleared
    assert cell("alice")[1] == 3.0 and cell("alice")[4] is True

    assert c.post("/api/assignments/hw1/regrade", headers=tina).status_code == 202  # a regrade
    course.drain()
    assert cell("alice")[1] == 3.0

    past = datetime.now(UTC) - timedelta(days=1, hours=12)
    r = c.put("/api/assignments/hw1", json={"deadline": past.isoformat()}, headers=tina)  # a deadline
    assert r.status_code == 200, r.text
    assert cell("alice")[3] == 2 and cell("alice")[1] == 2.4
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert c.put("/api/extensions/hw1/alice", json={"deadline": until}, headers=tina).status_code == 200
    assert cell("alice")[3] == 0
    assert c.delete("/api/extensions/hw1/alice", headers=tina).status_code == 204
    assert cell("alice")[3] == 2

    policy = {"counting": "best", "late_penalty_per_day": 0.25, "late_max_days": 7}
    assert c.put("/api/course", json={"policy": policy}, headers=ada).status_code == 200
    assert cell("alice")[:2] == (first, 4.0)
    assert c.put("/api/course", json={"policy": {**policy, "grace_minutes": 3000}}, headers=ada).status_code == 200
    assert cell("alice")[:2] == (first, 8.0)
    assert c.post("/api/assignments/hw1/release", headers=tina).status_code == 200
    assert sorted(assert_cells_current(course.db)) == [("alice", "hw1"), ("bob", "hw2")]


def test_two_writers_of_one_cell_take_turns(course) -> None:
    """Two transactions changing one cell at once: the second computes the cell from what the first committed.

    Under "best" alice's second upload (6 points) counts. Transaction A gives her first upload (4) 1.5 manual
    points: 5.5, still second best, so A leaves the cell as it was (it only locks it). While A is open, B
    overrides the second upload's code item from 3 to 2 points: 5. Now the first counts; had B ranked without
    A's points (4 against 5), it would have stored the second."""
    first = course.upload("alice", fraction=0.5)
    second = course.upload("alice", fraction=0.75)
    course.drain()
    policy = {"counting": "best"}
    assert course.client.put("/api/course", json={"policy": policy}, headers=course.auth("ada")).status_code == 200
    db = course.db

    def grade(s: Session, sub_id: int, item_id: str, points: float) -> None:
        sub = s.get(Submission, sub_id, options=[selectinload(Submission.items)])
        tina = s.scalar(select(User).where(User.username == "tina"))
        grades.set_item_points(s, submission=sub, item_id=item_id, points=points, actor=tina, reason="test")

    def writer_b() -> None:
        with db.session() as s:
            grade(s, second, "code", 2.0)

    with db.sessionmaker() as a:
        grade(a, first, "discussion", 1.5)
        b = threading.Thread(target=writer_b)
        b.start()
        _wait_until_blocked(db, b)
        a.commit()
    b.join(30)
    assert not b.is_alive()
    assert assert_cells_current(db)["alice", "hw1"][:2] == (first, 5.5)


def _wait_until_blocked(db: Database, thread: threading.Thread) -> None:
    """Until ``thread`` waits for a lock. PostgreSQL shows it; SQLite does not (it waits for BEGIN IMMEDIATE)."""
    if db.dialect != "postgresql":
        time.sleep(0.3)
        return
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 10
    while True:
        with db.engine.connect() as conn:  # a new connection: a transaction sees one snapshot of the activity
            if conn.execute(waiting).scalar():
                return
        assert time.monotonic() < deadline and thread.is_alive(), "the second writer never waited for the first"
        time.sleep(0.05)


def _assert_served_current(course) -> None:
    """What the API serves (a kept rendering or a new one) equals the gradebook computed now."""
    tina = course.auth("tina")
    served = course.client.get("/api/gradebook", headers=tina).json()
    served_csv = course.client.get("/api/gradebook.csv", headers=tina).text
    with course.db.session() as s:
        book = compute_gradebook(s, course=courses.get_course(s, slug="dgm"))
        assert served["students"] == [row_json(r) for r in book.students]
        assert served["scheme"] == book.scheme.model_dump(mode="json")
        assert served_csv == csv_header(book) + "".join(csv_row(r) for r in book.students)


def test_the_served_gradebook_follows_every_change(course, monkeypatch) -> None:
    c, tina, ada = course.client, course.auth("tina"), course.auth("ada")
    renders = []
    monkeypatch.setattr("server.services.gradebook.compute_gradebook", _counting(compute_gradebook, renders))
    for _ in range(3):  # nothing changed: rendered once per format, then served as kept
        assert c.get("/api/gradebook", headers=tina).status_code == 200
        assert c.get("/api/gradebook.csv", headers=tina).status_code == 200
    assert len(renders) == 2

    def then_current(response) -> None:
        assert response.status_code < 300, response.text
        _assert_served_current(course)

    course.upload("alice")
    _assert_served_current(course)
    course.drain()
    _assert_served_current(course)
    sub = course.upload("bob")
    course.drain()
    then_current(c.put(f"/api/submissions/{sub}/items/discussion", json={"points": 4}, headers=tina))
    then_current(c.put("/api/gradebook/alice/exam", json={"points": 20}, headers=tina))
    then_current(c.post("/api/assignments/hw1/release", headers=tina))
    then_current(c.put("/api/course", json={"scheme": "15-point"}, headers=ada))
    then_current(c.put("/api/course", json={"policy": {"late_penalty_per_day": 0.5}}, headers=ada))
    then_current(c.post("/api/users", json={"username": "carol", "role": "student"}, headers=ada))
    then_current(c.patch("/api/users/bob", json={"is_active": False}, headers=ada))
    roster = ("roster.csv", b"username,full_name\ncarol,Carol C\n", "text/csv")
    then_current(c.post("/api/users/roster", files={"file": roster}, headers=ada))
    with course.db.session() as s:  # a change through the ORM outside the services
        s.scalar(select(User).where(User.username == "alice")).full_name = "Alice A"
    _assert_served_current(course)


def test_a_change_to_one_students_grades_renders_only_their_row_again(course, monkeypatch) -> None:
    c, tina, ada = course.client, course.auth("tina"), course.auth("ada")
    course.upload("alice")
    sub = course.upload("bob")
    course.drain()
    with course.db.session() as s:
        ids = {u.username: u.id for u in s.scalars(select(User))}
    asked: list[list[int] | None] = []

    def spy(session, *, course, user_ids=None, **kwargs):
        asked.append(None if user_ids is None else sorted(user_ids))
        return compute_gradebook(session, course=course, user_ids=user_ids, **kwargs)

    monkeypatch.setattr("server.services.gradebook.compute_gradebook", spy)

    def served_after(response) -> list[int] | None:
        """The students whose rows the JSON rendering computed after ``response``'s change (None: all)."""
        assert response.status_code < 300, response.text
        asked.clear()
        _assert_served_current(course)  # JSON, then CSV
        assert len(asked) == 2 and asked[0] == asked[1], asked
        return asked[0]

    assert c.get("/api/gradebook", headers=tina).status_code == 200 and asked == [None]
    assert c.get("/api/gradebook.csv", headers=tina).status_code == 200
    assert served_after(c.put("/api/gradebook/alice/exam", json={"points": 20}, headers=tina)) == [ids["alice"]]
    manual = c.put(f"/api/submissions/{sub}/items/discussion", json={"points": 4}, headers=tina)
    assert served_after(manual) == [ids["bob"]]
    assert served_after(c.put("/api/gradebook/alice/exam", json={"points": 21}, headers=tina)) == [ids["alice"]]
    # more than half of the rows (both students) changed: everything
    assert c.put("/api/gradebook/alice/exam", json={"points": 22}, headers=tina).status_code == 200
    assert served_after(c.put("/api/gradebook/bob/exam", json={"points": 2}, headers=tina)) is None
    # what is not one student's grades renders everything: a course setting, a new student
    assert served_after(c.put("/api/course", json={"scheme": "15-point"}, headers=ada)) is None
    assert served_after(c.post("/api/users", json={"username": "carol", "role": "student"}, headers=ada)) is None
    # the record of a version since the kept rendering is gone (pruned): everything again
    assert c.put("/api/gradebook/bob/exam", json={"points": 3}, headers=tina).status_code == 200
    with course.db.session() as s:
        s.execute(delete(GradebookChange))
    assert served_after(c.put("/api/gradebook/alice/exam", json={"points": 3}, headers=tina)) is None
    assert served_after(c.put("/api/gradebook/bob/exam", json={"points": 4}, headers=tina)) == [ids["bob"]]


def _counting(fn, calls: list):
    def counted(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    return counted
