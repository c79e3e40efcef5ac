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
from sqlalchemy import select

from server.models import ExamScore, Extension, ItemScore, Role, Submission, User
from server.scheme import CoursePolicy, days_late, late_factor, round_points
from server.services import courses, grades
from server.services.gradebook import HomeworkCell, StudentRow, compute_gradebook
from server.services.submissions import refresh_late_flags
from server.testing import FAKE_RUBRIC


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


# --- The whole gradebook against an independent computation -------------------------------------------------
#
# ``_expected_rows`` recomputes every cell from the ORM objects: item points summed in Python, days late from
# the dates (not from the stored flags), the counting rules written out once more. The book below mixes every
# counting rule, late uploads, grace, extensions, ties, ungraded and pending submissions, released and
# unreleased assignments, manual points and overrides, a regrade and a deadline change.


def _expected_rows(session, course, *, user_id=None, released_only=False) -> list[StudentRow]:
    scheme, policy = courses.scheme_of(course), courses.policy_of(course)
    homeworks = [a for a in courses.list_assignments(session, course=course) if a.is_homework]
    extensions = {(e.user_id, e.assignment_id): e.deadline for e in session.scalars(select(Extension))}
    exams = {e.user_id: e.points for e in session.scalars(select(ExamScore).where(ExamScore.course_id == course.id))}
    students = select(User).where(User.role == Role.student, User.is_active.is_(True)).order_by(User.username)
    if user_id is not None:
        students = students.where(User.id == user_id)
    rows = []
    for user in session.scalars(students):
        row = StudentRow(user_id=user.id, username=user.username, full_name=user.full_name)
        for a in homeworks:
            hide_manual = released_only and not a.grades_released
            subs = session.scalars(
                select(Submission).where(Submission.user_id == user.id, Submission.assignment_id == a.id)
            ).all()
            cands = []
            for s in sorted(subs, key=lambda s: (s.uploaded_at, s.id)):
                if hide_manual:
                    raw = sum(i.auto_points or 0.0 for i in s.items)
                    pending = any(i.kind == "manual" or i.auto_status == "pending" for i in s.items)
                else:
                    raw = sum(i.points or 0.0 for i in s.items)
                    pending = any(i.pending for i in s.items)
                raw = round_points(raw)
                deadline = extensions.get((user.id, a.id), a.deadline)
                days = days_late(s.uploaded_at, deadline, grace_minutes=policy.grace_minutes)
                points = round_points(raw * late_factor(days, policy))
                cands.append((s, raw, pending, days, points))
            pick = None
            graded = [c for c in cands if c[0].graded_at is not None]
            if policy.counting == "best" and graded:
                top = max(c[4] for c in graded)
                pick = [c for c in graded if c[4] == top][-1]
            elif policy.counting == "latest_on_time" and any(c[3] == 0 for c in cands):
                pick = [c for c in cands if c[3] == 0][-1]
            elif cands:
                pick = cands[-1]
            cell = HomeworkCell(released=a.grades_released)
            if pick is not None:
                s, raw, pending, days, points = pick
                cell = HomeworkCell(
                    points=points,
                    raw_points=raw,
                    submission_id=s.id,
                    late=days > 0,
                    days_late=days,
                    pending_manual=pending,
                    grading=s.graded_at is None,
                    submissions=len(cands),
                    released=a.grades_released,
                )
            row.homeworks[a.name] = cell
        row.exam = exams.get(user.id)
        counted = [c.points for c in row.homeworks.values() if c.released or not released_only]
        row.total = round_points(sum(counted) + (row.exam or 0.0))
        row.final_grade = scheme.final_grade(row.total)
        row.provisional = any(not a.grades_released for a in homeworks)
        rows.append(row)
    return rows


def _build_varied_course(course) -> None:
    """Students, submissions and scores covering every rule."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    day = timedelta(days=1)
    with course.db.session() as s:
        c = courses.get_course(s, slug="dgm")
        hw = {a.name: a for a in courses.list_assignments(s, course=c)}
        courses.set_deadline(s, assignment=hw["hw1"], deadline=base)
        courses.set_deadline(s, assignment=hw["hw2"], deadline=base + 7 * day)
        courses.set_deadline(s, assignment=hw["hw3"], deadline=None)
        # hw4..hw6 stay due in the future.
        for name, full_name, active in [
            ("carol", "Carol C", True),
            ("dan", "Dan D", True),
            ("erin", "Erin E", True),
            ("gina", "Gina G (no uploads)", True),
            ("frank", "Frank F (inactive)", False),
        ]:
            s.add(User(username=name, full_name=full_name, role=Role.student, is_active=active))
        s.flush()
        who = {u.username: u for u in s.query(User)}
        other = courses.get_or_create_course(s, slug="other", title="Another course")
        spec = courses.AssignmentSpec(name="hw1", title="Other HW1", points=13, rubric=FAKE_RUBRIC)
        other_hw1 = courses.upsert_assignment(s, course=other, spec=spec, deadline=base)

        def add(user, a, at, theory, code, manual=None, *, graded=True, override=None, pending=False):
            sub = Submission(
                user_id=who[user].id,
                assignment_id=a.id,
                sha256="0" * 64,
                filename="x.ipynb",
                size=1,
                uploaded_at=at,
                graded_at=at + timedelta(minutes=5) if graded else None,
            )
            s.add(sub)
            s.flush()
            auto = {"theory": theory, "code": code, "discussion": None}
            manual_points = {"theory": None, "code": override, "discussion": manual}
            status = "pending" if pending else "partial"
            for pos, item in enumerate(FAKE_RUBRIC):
                s.add(
                    ItemScore(
                        submission_id=sub.id,
                        item_id=item["id"],
                        position=pos,
                        kind=item["kind"],
                        max_points=item["points"],
                        auto_points=auto[item["id"]] if graded else None,
                        auto_status=(status if item["id"] == "theory" else "partial") if graded else None,
                        manual_points=manual_points[item["id"]],
                    )
                )
            return sub

        h1, h2, h3 = hw["hw1"], hw["hw2"], hw["hw3"]
        minute = timedelta(minutes=1)
        # alice hw1: on time, 1 day late, 3 days late; under "best" the later uploads win after penalties.
        add("alice", h1, base - day, 2.0, 1.0, 3.0)
        add("alice", h1, base + 20 * 60 * minute, 4.0, 4.0, 2.0)
        add("alice", h1, base + 2 * day + minute, 4.0, 4.0, 5.0)
        # alice hw2: the manual points make the first the best for a TA; a student (unreleased) sees auto only.
        add("alice", h2, base, 1.5, 2.5, 5.0)
        add("alice", h2, base + day, 3.0, 3.0, 0.0)
        # bob hw1: a tie on time (the later counts under "best"), then 9 days late (worth nothing).
        add("bob", h1, base - 2 * day, 0.1, 0.2, 4.0)
        add("bob", h1, base - day, 0.2, 0.1, 4.0)
        add("bob", h1, base + 8 * day + minute, 4.0, 4.0, 5.0)
        add("bob", h2, base + 7 * day + 30 * minute, 3.3, 3.3, None, override=1.7)  # 30 minutes late
        # carol: 30 minutes late on hw1 (a grace period makes it on time); late on hw2 but with an extension.
        add("carol", h1, base + 30 * minute, 4.0, 3.0, 1.0)
        add("carol", h2, base + 8 * day, 4.0, 2.0, None, pending=True)
        add("carol", h2, base + 9 * day, 2.0, 2.0, 4.5)
        # dan: an ungraded latest upload; on hw2 nothing graded at all.
        add("dan", h1, base - 3 * day, 3.0, 3.0, 3.0)
        add("dan", h1, base - day, 0.0, 0.0, graded=False)
        add("dan", h2, base + 10 * day, 0.0, 0.0, graded=False)
        add("dan", h2, base + 11 * day, 0.0, 0.0, graded=False)
        # erin: hw3 has no deadline, never late; the same upload time twice (the larger id is the later).
        add("erin", h3, base + 40 * day, 1.0, 1.0, 1.0)
        add("erin", h3, base + 40 * day, 1.0, 1.0, 1.0)
        add("erin", h1, base + 3 * day, 4.0, 4.0, None, override=3.9)
        add("frank", h1, base, 4.0, 4.0, 5.0)  # inactive: not in the gradebook
        add("alice", other_hw1, base, 4.0, 4.0, 5.0)  # another course
        for a in (h1, h2, h3, other_hw1):
            refresh_late_flags(s, assignment=a)
        tina = who["tina"]
        grades.grant_extension(
            s, assignment=h2, student=who["carol"], deadline=base + 10 * day, reason="medical", actor=tina
        )
        grades.grant_extension(s, assignment=h1, student=who["alice"], deadline=base + day, reason="x", actor=tina)
        grades.release_grades(s, assignment=h1, released=True, actor=tina)
        for name, points in [("alice", 20.0), ("bob", 3.0), ("carol", 11.5)]:
            grades.set_exam_points(s, course=c, student=who[name], points=points, actor=tina)


def _check_against_expected(course) -> None:
    with course.db.session() as s:
        c = courses.get_course(s, slug="dgm")
        book = compute_gradebook(s, course=c)
        assert [a.name for a in book.assignments] == [f"hw{k}" for k in range(1, 7)]
        assert book.students == _expected_rows(s, c)
        for row in book.students:
            mine = compute_gradebook(s, course=c, user_ids=[row.user_id], released_only=True)
            assert mine.students == _expected_rows(s, c, user_id=row.user_id, released_only=True)


POLICIES = [
    {"counting": "latest_on_time"},
    {"counting": "latest"},
    {"counting": "best"},
    {"counting": "latest_on_time", "grace_minutes": 60, "late_max_days": None, "late_penalty_per_day": 0.25},
    {"counting": "best", "grace_minutes": 60, "late_max_days": 2, "late_penalty_per_day": 0.15},
    {"counting": "latest", "late_max_days": None, "late_penalty_per_day": 0.3},
]


def test_gradebook_matches_an_independent_computation(course) -> None:
    _build_varied_course(course)
    for policy in POLICIES:
        with course.db.session() as s:
            courses.update_course(s, course=courses.get_course(s, slug="dgm"), policy=CoursePolicy(**policy))
        _check_against_expected(course)

    # Hand-checked cells under the default policy (latest on time, 10% a day, nothing after 7 days).
    with course.db.session() as s:
        courses.update_course(s, course=courses.get_course(s, slug="dgm"), policy=CoursePolicy())
    row = _row(course, "alice")
    assert row["homeworks"]["hw1"] == 10.0 and row["details"]["hw1"]["submissions"] == 3  # the extension
    assert row["homeworks"]["hw2"] == 6.0 and row["details"]["hw2"]["days_late"] == 0
    assert _row(course, "bob")["homeworks"]["hw1"] == pytest.approx(4.3)
    assert _row(course, "bob")["homeworks"]["hw2"] == pytest.approx((3.3 + 1.7) * 0.9)
    assert _row(course, "dan")["details"]["hw1"]["grading"] is True

    # A regrade (new automatic points, manual ones kept) and a deadline change show up at once.
    with course.db.session() as s:
        alice = s.scalar(select(User).where(User.username == "alice"))
        first = s.scalar(select(Submission).where(Submission.user_id == alice.id).order_by(Submission.id))
        for item in s.scalars(select(ItemScore).where(ItemScore.submission_id == first.id)):
            item.auto_points = (item.auto_points or 0.0) + 0.5 if item.kind != "manual" else None
        c = courses.get_course(s, slug="dgm")
        courses.set_deadline(s, assignment=courses.get_assignment(s, course=c, name="hw2"), deadline=None)
    for policy in POLICIES[:3]:
        with course.db.session() as s:
            courses.update_course(s, course=courses.get_course(s, slug="dgm"), policy=CoursePolicy(**policy))
        _check_against_expected(course)
