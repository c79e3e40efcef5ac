"""Every input that once gave a 5xx or was wrongly accepted now gets a 4xx with a clear message, in the
one documented error shape, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest

from server.main import create_app
from server.testing import make_notebook

HUGE_IDS = [2**31, 2**63, 10**30]


def _error(r, status: int, *words: str) -> dict:
    """The response is ``status`` with an :class:`ErrorOut` body whose detail names ``words``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"detail", "errors"} and isinstance(body["detail"], str), body
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


@pytest.mark.parametrize("huge", HUGE_IDS)
def test_huge_ids_are_422_not_500(course, huge: int) -> None:
    c, tina = course.client, course.auth("tina")
    for method, path, body in [
        ("GET", f"/api/submissions/{huge}", None),
        ("GET", f"/api/submissions/{huge}/download", None),
        ("POST", f"/api/submissions/{huge}/regrade", None),
        ("PUT", f"/api/submissions/{huge}/items/discussion", {"points": 1}),
        ("DELETE", f"/api/tokens/{huge}", None),
    ]:
        body = _error(c.request(method, path, json=body, headers=tina), 422, "path.")
        assert body["errors"][0]["loc"][0] == "path"
    assert c.get("/api/submissions/2147483647", headers=tina).status_code == 404  # the largest id: just absent


def test_bounded_queries_and_numbers(course) -> None:
    c, tina, alice = course.client, course.auth("tina"), course.auth("alice")
    _error(c.get("/api/audit", params={"limit": -1}, headers=tina), 422, "query.limit")
    _error(c.get("/api/audit", params={"limit": 10**6}, headers=tina), 422, "query.limit")
    _error(c.get("/api/audit", params={"since": "0.5"}, headers=tina), 422, "query.since", "ISO 8601")
    _error(c.get("/api/submissions", params={"offset": -1}, headers=tina), 422, "query.offset")
    _error(c.post("/api/tokens", json={"name": "ci", "ttl_days": 1e300}, headers=alice), 422, "ttl_days")
    _error(c.post("/api/tokens", json={"name": "ci", "ttl_days": True}, headers=alice), 422, "ttl_days")
    assert c.post("/api/tokens", json={"name": "ci", "ttl_days": 30}, headers=alice).status_code == 201
    _error(c.put("/api/assignments/hw1", json={"deadline": 0}, headers=tina), 422, "body.deadline", "ISO 8601")
    _error(c.put("/api/assignments/hw1", json={"deadline": "2030-01-01T00:00"}, headers=tina), 422, "timezone")
    ada = course.auth("ada")
    _error(c.put("/api/course", json={"policy": {"grace_minutes": False}}, headers=ada), 422, "grace_minutes")
    _error(c.put("/api/course", json={"policy": {"late_max_days": 10**9}}, headers=ada), 422, "late_max_days")
    scheme = {"name": "x", "homework_points": 1e308, "num_homeworks": 6, "exam_points": 0, "grade_divisor": 1}
    _error(c.put("/api/course", json={"scheme": scheme}, headers=ada), 422, "homework_points")
    # Python's JSON reader takes NaN and Infinity; the API does not.
    r = c.put(
        "/api/gradebook/alice/exam",
        content=b'{"points": NaN}',
        headers={**tina, "Content-Type": "application/json"},
    )
    _error(r, 422, "body.points")


def test_names_emails_and_comments_are_validated_and_bounded(course) -> None:
    c, ada, tina = course.client, course.auth("ada"), course.auth("tina")
    _error(c.post("/api/users", json={"username": "eve", "email": "not an email"}, headers=ada), 422, "body.email")
    _error(c.post("/api/users", json={"username": "eve", "full_name": "x" * 10_000}, headers=ada), 422, "full_name")
    _error(c.post("/api/users", json={"username": "e v e"}, headers=ada), 422, "body.username")
    _error(c.post("/api/users", json={"username": "eve", "full_name": "a\x00b"}, headers=ada), 422, "full_name")
    r = c.post("/api/users", json={"username": "eve", "email": "eve@example.org"}, headers=ada)
    assert r.status_code == 201
    sub = course.upload("alice")
    course.drain()
    body = {"points": 4, "comment": "c" * 100_000}
    _error(c.put(f"/api/submissions/{sub}/items/discussion", json=body, headers=tina), 422, "body.comment")
    _error(c.get("/api/audit", params={"username": "a\x00"}, headers=tina), 422, "query.username")
    _error(c.put("/api/gradebook/a%00b/exam", json={"points": 1}, headers=tina), 422, "path.username")
    roster = "username,email\nzoe,not-an-email\n"
    files = {"file": ("roster.csv", roster.encode(), "text/csv")}
    _error(c.post("/api/users/roster", files=files, headers=ada), 422, "roster CSV line 2", "email")
    files = {"file": ("roster.csv", b"username\r0\n", "text/csv")}
    assert c.post("/api/users/roster", files=files, headers=ada).status_code in (200, 422)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_deeply_nested_uploads_are_refused_before_parsing(course) -> None:
    nb = json.loads(make_notebook())
    nested: object = "deep"
    for _ in range(900):
        nested = {"k": nested}
    nb["metadata"]["nested"] = nested
    for data in (json.dumps(nb).encode(), b"[" * 100_000 + b"]" * 100_000):
        r = course.client.post(
            "/api/submissions",
            files={"file": ("deep.ipynb", data, "application/x-ipynb+json")},
            data={"assignment": "hw1"},
            headers=course.auth("alice"),
        )
        _error(r, 422, "levels deep; the limit is 100")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_csv_cells_that_look_like_formulas_are_neutralised(course) -> None:
    c, ada = course.client, course.auth("ada")
    for i, name in enumerate(['=HYPERLINK("http://x","y")', "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "plain"]):
        r = c.post("/api/users", json={"username": f"s{i}", "full_name": name}, headers=ada)
        assert r.status_code == 201, r.text
    c.post("/api/users", json={"username": "-dash"}, headers=ada)
    text = c.get("/api/gradebook.csv", headers=course.auth("tina")).text
    rows = {row[0]: row for row in csv.reader(io.StringIO(text, newline=""))}
    names = [rows[f"s{i}"][1] for i in range(7)]
    assert names == ['\'=HYPERLINK("http://x","y")', "'+1", "'-1+2", "'@SUM(A1)", "'\tx", "'\rx", "plain"]
    assert "'-dash" in rows


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_error_is_documented_in_one_shape(course) -> None:
    spec = create_app(course.settings, start_worker=False, load_assignments=False).openapi()
    error_schema = spec["components"]["schemas"]["ErrorOut"]
    assert error_schema["required"] == ["detail"] and spec["components"]["schemas"]["ErrorOut"]["properties"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ErrorOut", (method, path, code)
    # Starlette's own errors come in the same shape.
    _error(course.client.get("/api/nowhere"), 404, "Not Found")
    r = course.client.post(
        "/api/tokens", content=b"\xff", headers={**course.auth("alice"), "Content-Type": "application/json"}
    )
    assert r.status_code in (400, 422) and isinstance(r.json()["detail"], str)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_wrong_method_names_every_method_of_the_path(course) -> None:
    r = course.client.patch("/api/submissions", headers=course.auth("alice"))
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    r = course.client.get("/api/extensions/hw1/bob", headers=course.auth("tina"))
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, PUT"
    _error(r, 405, "Method Not Allowed")
