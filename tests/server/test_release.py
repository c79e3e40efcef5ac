"""Grade release: students see manual points, comments and totals only once the TA releases an assignment.

Runs on SQLite and on PostgreSQL. The fake grader gives 8 automatic points at fraction 1; the 5-point
``discussion`` item is manual.
"""

from __future__ import annotations


def _sub_as(course, username: str, sub_id: int) -> dict:
    r = course.client.get(f"/api/submissions/{sub_id}", headers=course.auth(username))
    assert r.status_code == 200, r.text
    return r.json()


def _discussion(sub: dict) -> dict:
    return next(i for i in sub["items"] if i["id"] == "discussion")


def _my_grades(course) -> dict:
    r = course.client.get("/api/grades/me", headers=course.auth("alice"))
    assert r.status_code == 200, r.text
    return r.json()


def test_manual_grades_reach_students_only_after_release(course) -> None:
    sub_id = course.upload("alice")
    course.drain()
    r = course.client.put(
        f"/api/submissions/{sub_id}/items/discussion",
        json={"points": 4, "comment": "clear samples"},
        headers=course.auth("tina"),
    )
    assert r.status_code == 200 and r.json()["total"] == 12

    # The TA sees the grade, and the item no longer says it is waiting for review.
    staff = _discussion(_sub_as(course, "tina", sub_id))
    assert staff["manual_points"] == 4 and staff["status"] == "reviewed" and staff["message"] is None
    # The student sees the automatic results and "pending", nothing of the TA's points or comment.
    mine = _sub_as(course, "alice", sub_id)
    assert mine["total"] == 8 and mine["grades_released"] is False and mine["pending_manual"] is True
    item = _discussion(mine)
    assert item["manual_points"] is None and item["manual_comment"] is None and item["pending"] is True
    assert item["points"] == 0 and item["status"] == "pending"
    listed = course.client.get("/api/submissions", headers=course.auth("alice")).json()
    assert listed[0]["total"] == 8 and _discussion(listed[0])["manual_points"] is None
    grades = _my_grades(course)
    assert grades["homeworks"]["hw1"] == 8 and grades["details"]["hw1"]["released"] is False
    assert grades["total"] == 0 and grades["final_grade"] == 0 and grades["provisional"] is True
    assert "clear samples" not in course.client.get(f"/api/submissions/{sub_id}", headers=course.auth("alice")).text

    assert course.client.post("/api/assignments/hw1/release", headers=course.auth("alice")).status_code == 403
    r = course.client.post("/api/assignments/hw1/release", headers=course.auth("tina"))
    assert r.status_code == 200 and r.json()["grades_released_at"] is not None
    released_at = r.json()["grades_released_at"]
    # Releasing twice keeps the first release time.
    assert course.client.post("/api/assignments/hw1/release", headers=course.auth("tina")).json() == r.json()

    mine = _sub_as(course, "alice", sub_id)
    item = _discussion(mine)
    assert mine["total"] == 12 and item["manual_points"] == 4 and item["manual_comment"] == "clear samples"
    grades = _my_grades(course)
    assert grades["homeworks"]["hw1"] == 12 and grades["total"] == 12 and grades["provisional"] is True

    r = course.client.delete("/api/assignments/hw1/release", headers=course.auth("tina"))
    assert r.status_code == 200 and r.json()["grades_released_at"] is None
    assert _sub_as(course, "alice", sub_id)["total"] == 8

    audit = course.client.get("/api/audit", headers=course.auth("tina")).json()
    releases = [e for e in audit if e["entity"] == "release"]
    assert [(e["old_value"], e["new_value"]) for e in releases] == [
        (released_at.replace("Z", "+00:00"), None),
        (None, released_at.replace("Z", "+00:00")),
    ]


def test_the_grade_is_final_once_every_homework_is_released_and_the_course_closed(course) -> None:
    course.upload("alice")
    course.drain()
    for k in range(1, 7):
        assert course.client.post(f"/api/assignments/hw{k}/release", headers=course.auth("tina")).status_code == 200
    grades = _my_grades(course)
    assert grades["provisional"] is True and grades["total"] == 8  # until the course is closed
    assert course.client.put("/api/course", json={"closed": True}, headers=course.auth("tina")).status_code == 403
    assert course.client.put("/api/course", json={"closed": True}, headers=course.auth("ada")).status_code == 200
    grades = _my_grades(course)
    assert grades["provisional"] is False and grades["total"] == 8
