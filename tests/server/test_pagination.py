"""Every JSON list that grows with the course comes in pages: ``limit`` (1-500, default 100) items after
``offset``, in a stable order; bad values are 422 in the one error shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


def _pages(course, path: str, who: str, key=None) -> list[list]:
    """The list at ``path`` read whole, then in pages of two (``key`` picks what to compare of each item)."""
    c, auth = course.client, course.auth(who)

    def get(**params) -> list:
        r = c.get(path, params=params, headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        items = body["answers"] if key == "answers" else body
        return [item if key in (None, "answers") else item[key] for item in items]

    whole = get()
    return [whole, get(limit=2), get(limit=2, offset=2), get(limit=2, offset=len(whole))]


def test_extensions_come_in_pages(course) -> None:
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    for assignment, username in [("hw1", "alice"), ("hw2", "alice"), ("hw1", "bob")]:
        r = course.client.put(
            f"/api/extensions/{assignment}/{username}", json={"deadline": until}, headers=course.auth("tina")
        )
        assert r.status_code == 200, r.text
    whole, first, second, past = _pages(course, "/api/extensions", "tina")
    assert [(e["assignment"], e["username"]) for e in whole] == [("hw1", "alice"), ("hw1", "bob"), ("hw2", "alice")]
    assert first + second == whole and len(first) == 2 and past == []


def test_api_tokens_come_in_pages(course) -> None:
    for name in ("ci-1", "ci-2"):
        assert course.client.post("/api/tokens", json={"name": name}, headers=course.auth("alice")).status_code == 201
    whole, first, second, past = _pages(course, "/api/tokens", "alice", key="name")
    assert whole == ["test", "ci-1", "ci-2"]
    assert first + second == whole and past == []


def test_answers_of_a_question_come_in_pages(course) -> None:
    for username in ("alice", "bob"):
        course.upload(username)
    course.drain()
    path = "/api/assignments/hw1/items/discussion/answers"
    whole, first, second, past = _pages(course, path, "tina", key="answers")
    assert [a["username"] for a in whole] == ["alice", "bob"] and first == whole and second == past == []
    r = course.client.get(path, params={"limit": 1, "offset": 1}, headers=course.auth("tina"))
    assert [a["username"] for a in r.json()["answers"]] == ["bob"] and r.json()["total"] == 2  # counts them all


@pytest.mark.parametrize(
    "path", ["/api/extensions", "/api/tokens", "/api/assignments/hw1/items/discussion/answers", "/api/users"]
)
@pytest.mark.parametrize(("param", "value"), [("limit", 0), ("limit", 501), ("offset", -1)])
def test_bad_pages_are_422(course, path: str, param: str, value: int) -> None:
    r = course.client.get(path, params={param: value}, headers=course.auth("tina"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"detail", "errors"} and f"query.{param}" in body["detail"]
