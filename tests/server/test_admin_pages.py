"""Admin pages: users, password links, roster import with a preview, course settings, API tokens.

Each form is posted as a browser would (session cookie and CSRF token); a mistake must come back inline
with what was typed, and only an admin may use any of it.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from server.models import ApiToken, PasswordLink, Role, User, utcnow

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"

ADMIN_GETS = [
    "/admin/users",
    "/admin/users/alice",
    "/admin/users/alice/deactivate",
    "/admin/roster",
    "/admin/course",
    "/admin/course/close",
    "/admin/tokens",
]
ADMIN_POSTS = [
    "/admin/users",
    "/admin/users/alice/role",
    "/admin/users/alice/deactivate",
    "/admin/users/alice/reactivate",
    "/admin/users/alice/password-link",
    "/admin/roster",
    "/admin/roster/apply",
    "/admin/course/scheme",
    "/admin/course/policy",
    "/admin/course/deadlines",
    "/admin/course/visibility",
    "/admin/course/close",
    "/admin/course/reopen",
    "/admin/tokens",
    "/admin/tokens/1/revoke",
]


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    client.cookies.clear()
    token = _csrf(client.get("/login").text)
    r = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return _csrf(client.get("/me", follow_redirects=True).text)


def _user(course, username: str) -> User:
    with course.db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        assert user is not None
        s.expunge(user)
        return user


def test_admin_pages_are_for_admins_only(course) -> None:
    c = course.client
    for path in ADMIN_GETS:
        assert c.get(path, follow_redirects=False).headers["location"].startswith("/login"), path
    for username in ("alice", "tina"):
        csrf = login(c, username)
        for path in ADMIN_GETS:
            r = c.get(path)
            assert r.status_code == 403 and "for admins" in r.text, (username, path)
        for path in ADMIN_POSTS:
            r = c.post(path, data={"csrf_token": csrf, "confirm": "yes", "username": "x", "role": "admin"})
            assert r.status_code == 403, (username, path, r.status_code)
    assert _user(course, "alice").role == Role.student and _user(course, "alice").is_active
    # The nav shows the admin pages to admins only.
    assert 'href="/admin/users"' not in c.get("/gradebook").text
    login(c, "ada")
    assert 'href="/admin/users"' in c.get("/gradebook").text
    for path in ADMIN_GETS:
        assert c.get(path).status_code == 200, path


def test_admin_creates_users_and_changes_roles(course) -> None:
    c = course.client
    csrf = login(c, "ada")
    form = {"csrf_token": csrf, "username": "tom", "full_name": "Tom TA", "role": "ta", "password": "a long password"}
    r = c.post("/admin/users", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/users/tom?created=1"
    page = c.get(r.headers["location"]).text
    assert "Created ta tom" in page and 'id="password-link"' not in page
    login(c, "tom", "a long password")
    csrf = login(c, "ada")
    # Without a password: an invitation link, shown once.
    r = c.post("/admin/users", data={"csrf_token": csrf, "username": "sue", "email": "sue@example.org"})
    assert r.status_code == 200 and "Invitation link" in r.text
    link = re.search(r'id="password-link" value="([^"]+)"', r.text).group(1)
    assert link.startswith("http://testserver/password/")
    assert 'id="password-link"' not in c.get("/admin/users/sue").text
    # Mistakes come back inline with what was typed (never the password).
    bad = {"csrf_token": csrf, "username": "tom", "full_name": "Again <b>", "role": "ta", "password": "secret pw 123"}
    r = c.post("/admin/users", data=bad)
    assert r.status_code == 409 and "already exists" in r.text and "Nothing was saved" in r.text
    assert 'value="Again &lt;b&gt;"' in r.text and "secret pw 123" not in r.text
    for typed, message in [
        ({"username": "eve", "email": "not-an-email"}, "email"),
        ({"username": "bad name!"}, "username"),
        ({"username": "eve", "password": "short"}, "at least 8"),
        ({"username": "eve", "role": "wizard"}, "role"),
        ({"username": "x" * 2000}, ""),
    ]:
        r = c.post("/admin/users", data={"csrf_token": csrf, **typed})
        assert r.status_code == 422 and message in r.text, (typed, r.text[:300])
    assert c.get("/admin/users?q=eve").text.count('data-username="eve"') == 0

    # Role changes, up and down; an admin cannot change their own role.
    r = c.post("/admin/users/alice/role", data={"csrf_token": csrf, "role": "ta"})
    assert r.status_code == 200 and "Role changed" in r.text and _user(course, "alice").role == Role.ta
    r = c.post("/admin/users/alice/role", data={"csrf_token": csrf, "role": "student"})
    assert _user(course, "alice").role == Role.student
    r = c.post("/admin/users/ada/role", data={"csrf_token": csrf, "role": "student"})
    assert r.status_code == 422 and "your own role" in r.text and _user(course, "ada").role == Role.admin
    r = c.post("/admin/users/alice/role", data={"csrf_token": csrf, "role": "boss"})
    assert r.status_code == 422 and "choose one of" in r.text
    assert c.post("/admin/users/nobody/role", data={"csrf_token": csrf, "role": "ta"}).status_code == 404
    assert c.post("/admin/users/alice/role", data={"role": "ta"}).status_code == 403  # no CSRF token
    # The list finds by part of the username or the name, and pages.
    listing = c.get("/admin/users?q=Tom").text
    assert 'data-username="tom"' in listing and 'data-username="alice"' not in listing
    assert c.get("/admin/users?page=0").status_code == 422


def test_deactivated_user_cannot_log_in_and_their_sessions_end(course) -> None:
    c = course.client
    login(c, "alice")
    alice_cookies = dict(c.cookies)
    assert c.get("/me").status_code == 200
    csrf = login(c, "ada")
    # Deactivating asks first.
    page = c.get("/admin/users/alice/deactivate").text
    assert "Deactivate alice?" in page and 'name="confirm"' in page
    r = c.post("/admin/users/alice/deactivate", data={"csrf_token": csrf})
    assert r.status_code == 422 and "Tick the box" in r.text and _user(course, "alice").is_active
    r = c.post("/admin/users/alice/deactivate", data={"csrf_token": csrf, "confirm": "yes"})
    assert r.status_code == 200 and "deactivated" in r.text and not _user(course, "alice").is_active
    r = c.post("/admin/users/ada/deactivate", data={"csrf_token": csrf, "confirm": "yes"})
    assert r.status_code == 422 and "your own account" in r.text and _user(course, "ada").is_active

    # alice's browser session is over, her token stops working, and she cannot log in again.
    c.cookies.clear()
    c.cookies.update(alice_cookies)
    assert c.get("/me", follow_redirects=False).headers["location"].startswith("/login")
    assert c.get("/api/me", headers=course.auth("alice")).status_code == 401
    token = _csrf(c.get("/login").text)
    r = c.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 400 and "Wrong username or password" in r.text
    assert 'data-username="alice"' not in c.get("/api/gradebook", headers=course.auth("tina")).text

    csrf = login(c, "ada")
    assert "deactivated" in c.get("/admin/users").text
    r = c.post("/admin/users/alice/reactivate", data={"csrf_token": csrf})
    assert r.status_code == 200 and "Reactivated" in r.text
    login(c, "alice")
    assert c.get("/api/me", headers=course.auth("alice")).status_code == 200


def test_password_links_are_hashed_single_use_and_expire(course) -> None:
    c = course.client
    csrf = login(c, "ada")
    r = c.post("/admin/users/alice/password-link", data={"csrf_token": csrf})
    assert r.status_code == 200 and "Password reset link" in r.text
    link = re.search(r'id="password-link" value="http://testserver(/password/[^"]+)"', r.text).group(1)
    secret = link.rsplit("/", 1)[1]
    with course.db.session() as s:
        rows = s.scalars(select(PasswordLink)).all()
        assert len(rows) == 1 and rows[0].token_hash != secret and secret not in rows[0].token_hash
        assert rows[0].purpose == "reset" and rows[0].expires_at - utcnow() < timedelta(days=1, minutes=1)

    c.cookies.clear()
    page = c.get(link)
    assert page.status_code == 200 and "New password for alice" in page.text
    assert page.headers["cache-control"] == "no-store"
    token = _csrf(page.text)
    r = c.post(link, data={"csrf_token": token, "password": "new password 1", "repeat": "new password 2"})
    assert r.status_code == 422 and "differ" in r.text
    r = c.post(link, data={"csrf_token": token, "password": "short", "repeat": "short"})
    assert r.status_code == 422 and "at least 8" in r.text
    r = c.post(link, data={"csrf_token": "forged", "password": "new password 1", "repeat": "new password 1"})
    assert r.status_code == 400
    # The old password works until the link is used.
    login(c, "alice")
    c.cookies.clear()
    token = _csrf(c.get(link).text)
    r = c.post(link, data={"csrf_token": token, "password": "new password 1", "repeat": "new password 1"})
    assert r.status_code == 200 and "Your password is set" in r.text
    login(c, "alice", "new password 1")
    # Used once, it is gone.
    c.cookies.clear()
    r = c.get(link)
    assert r.status_code == 404 and "does not work" in r.text
    token = _csrf(c.get("/login").text)  # the same anonymous session's token
    r = c.post(link, data={"csrf_token": token, "password": "third password", "repeat": "third password"})
    assert r.status_code == 404
    assert c.get("/password/not-a-link").status_code == 404

    # An expired link, and an older link replaced by a newer one, do not work either.
    csrf = login(c, "ada")
    first = re.search(r"/password/([^\"]+)\"", c.post("/admin/users/bob/password-link", data={"csrf_token": csrf}).text)
    second = re.search(
        r"/password/([^\"]+)\"", c.post("/admin/users/bob/password-link", data={"csrf_token": csrf}).text
    )
    assert c.get(f"/password/{first.group(1)}").status_code == 404
    assert c.get(f"/password/{second.group(1)}").status_code == 200
    with course.db.session() as s:
        s.execute(update(PasswordLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert c.get(f"/password/{second.group(1)}").status_code == 404


ROSTER = "username,full_name,email\nalice,Alice Liddell,alice@example.org\ntina,Tina Teaching,\nzoe,Zoe New,\nbob,,\n"


def _preview(c, csrf: str, text: str, **extra: str):
    return c.post("/admin/roster", data={"csrf_token": csrf, "csv_text": text, **extra}, files={"file": ("", b"")})


def _apply(c, csrf: str, preview_html: str, text: str, default_role: str = "student"):
    digest = re.search(r'name="digest" value="([^"]+)"', preview_html).group(1)
    data = {"csrf_token": csrf, "csv_text": text, "digest": digest, "default_role": default_role}
    return c.post("/admin/roster/apply", data=data)


def test_roster_import_previews_then_applies_and_keeps_a_tas_role(course) -> None:
    c = course.client
    csrf = login(c, "ada")
    r = _preview(c, csrf, ROSTER)
    assert r.status_code == 200 and "Preview" in r.text
    assert re.search(r'id="count-create">1<', r.text) and re.search(r'id="count-update">2<', r.text)
    assert "full name: – → Tina Teaching" in r.text and "role:" not in r.text
    assert _user(course, "alice").full_name == ""  # nothing changed by the preview
    with course.db.session() as s:
        assert s.scalar(select(User).where(User.username == "zoe")) is None

    r = _apply(c, csrf, r.text, ROSTER)
    assert r.status_code == 200 and "1 created, 2 updated" in r.text
    tina, alice, zoe = _user(course, "tina"), _user(course, "alice"), _user(course, "zoe")
    assert tina.role == Role.ta and tina.full_name == "Tina Teaching"  # no role column: tina stays a TA
    assert alice.full_name == "Alice Liddell" and alice.email == "alice@example.org"
    assert zoe.role == Role.student and zoe.password_hash is None

    # An explicit lower role does not demote staff either; it may raise a student.
    text = "username,role\ntina,student\nada,ta\nbob,ta\n"
    r = _preview(c, csrf, text)
    assert "tina stays ta (the CSV says student)" in r.text and "role: student → ta" in r.text
    _apply(c, csrf, r.text, text)
    assert _user(course, "tina").role == Role.ta and _user(course, "ada").role == Role.admin
    assert _user(course, "bob").role == Role.ta
    # The same rule holds for the API and the command line, which share the service.
    files = {"file": ("r.csv", b"username\ntina\n", "text/csv")}
    assert c.post("/api/users/roster", files=files, headers=course.auth("ada")).json() == {"created": 0, "updated": 0}
    assert _user(course, "tina").role == Role.ta


def test_roster_import_shows_mistakes_inline_and_rechecks_before_applying(course) -> None:
    c = course.client
    csrf = login(c, "ada")
    bad = "username,email\nzoe,not-an-email\n"
    r = _preview(c, csrf, bad)
    assert r.status_code == 422 and "roster CSV line 2" in r.text and "Nothing was imported" in r.text
    assert "zoe,not-an-email" in r.text  # the text is kept to fix
    for text, message in [
        ("", "choose a CSV file"),
        ("name\nzoe\n", "username"),
        ("username,role\nzoe,wizard\n", "unknown role"),
        ("username\nzoe\nzoe\n", "line 2 already"),
        ("username\nbad name!\n", "line 2"),
    ]:
        r = _preview(c, csrf, text)
        assert r.status_code == 422 and message in r.text, (text, r.text[:400])
    r = c.post("/admin/roster", data={"csrf_token": csrf}, files={"file": ("r.csv", b"\xff\xfe\x00bad", "text/csv")})
    assert r.status_code == 422 and "not UTF-8" in r.text
    # A file upload works as the pasted text does.
    r = c.post("/admin/roster", data={"csrf_token": csrf}, files={"file": ("r.csv", b"username\nzoe\n", "text/csv")})
    assert r.status_code == 200 and 'data-username="zoe"' in r.text
    # Users changed between preview and apply: the admin sees the new preview, nothing is applied.
    preview = _preview(c, csrf, "username,full_name\nalice,Alice L\n").text
    with course.db.session() as s:
        s.execute(update(User).where(User.username == "alice").values(full_name="Changed Meanwhile"))
    r = _apply(c, csrf, preview, "username,full_name\nalice,Alice L\n")
    assert r.status_code == 409 and "changed since the preview" in r.text
    assert _user(course, "alice").full_name == "Changed Meanwhile"
    r = c.post("/admin/roster/apply", data={"csrf_token": csrf, "csv_text": "username,role\nx,wizard\n"})
    assert r.status_code == 422


def test_course_settings_forms(course) -> None:
    c = course.client
    csrf = login(c, "ada")
    r = c.post("/admin/course/scheme", data={"csrf_token": csrf, "builtin": "15-point"})
    assert r.status_code == 200 and "Grading scheme saved" in r.text and 'id="scheme-name">15-point<' in r.text
    custom = {
        "csrf_token": csrf,
        "name": "ours",
        "homework_points": "10",
        "num_homeworks": "5",
        "exam_points": "50",
        "grade_divisor": "10",
        "grade_offset": "0",
        "max_grade": "",
    }
    r = c.post("/admin/course/scheme", data=custom)
    assert 'id="scheme-name">ours<' in r.text
    assert c.get("/api/course", headers=course.auth("tina")).json()["scheme"]["homework_points"] == 10
    for field, value, message in [
        ("homework_points", "ten", "not a number"),
        ("num_homeworks", "2.5", "whole number"),
        ("grade_divisor", "0", "grade_divisor"),
        ("homework_points", "", "give a number"),
        ("exam_points", "inf", "exam_points"),
    ]:
        r = c.post("/admin/course/scheme", data={**custom, field: value})
        assert r.status_code == 422 and message in r.text, (field, value, r.text[:300])
        assert f'name="{field}"' in r.text and f'value="{value}"' in r.text  # what was typed stays
    assert c.post("/admin/course/scheme", data={"csrf_token": csrf, "builtin": "nope"}).status_code == 422

    policy = {
        "csrf_token": csrf,
        "counting": "best",
        "late_penalty_percent": "20",
        "late_max_days": "",
        "grace_minutes": "5",
    }
    r = c.post("/admin/course/policy", data=policy)
    assert r.status_code == 200 and "Late policy saved" in r.text
    saved = c.get("/api/course", headers=course.auth("tina")).json()["policy"]
    assert saved == {"counting": "best", "late_penalty_per_day": 0.2, "late_max_days": None, "grace_minutes": 5.0}
    for field, value in [("late_penalty_percent", "150"), ("counting", "random"), ("late_max_days", "x")]:
        r = c.post("/admin/course/policy", data={**policy, field: value})
        assert (r.status_code == 422 and f'value="{value}"' in r.text) or field == "counting", (field, r.text[:300])

    r = c.post(
        "/admin/course/deadlines",
        data={"csrf_token": csrf, "deadline:hw1": "2031-02-03T04:05", "deadline:hw2": "tomorrow", "deadline:hw3": ""},
    )
    assert r.status_code == 422 and "not a date and time" in r.text and 'value="tomorrow"' in r.text
    assignments = {a["name"]: a for a in c.get("/api/assignments", headers=course.auth("tina")).json()}
    assert assignments["hw1"]["deadline"] != "2031-02-03T04:05:00Z"  # all or nothing
    r = c.post(
        "/admin/course/deadlines", data={"csrf_token": csrf, "deadline:hw1": "2031-02-03T04:05", "deadline:hw3": ""}
    )
    assert r.status_code == 200 and "Deadlines saved" in r.text
    assignments = {a["name"]: a for a in c.get("/api/assignments", headers=course.auth("tina")).json()}
    assert assignments["hw1"]["deadline"] == "2031-02-03T04:05:00Z" and assignments["hw3"]["deadline"] is None
    assert c.post("/admin/course/visibility", data={"csrf_token": csrf, "auto_results": "maybe"}).status_code == 422


def test_closing_the_course_makes_grades_final(course) -> None:
    course.upload("alice")
    course.drain()
    c = course.client
    for k in range(1, 7):
        assert c.post(f"/api/assignments/hw{k}/release", headers=course.auth("tina")).status_code == 200
    assert c.get("/api/grades/me", headers=course.auth("alice")).json()["provisional"] is True
    login(c, "alice")
    assert "Provisional until the course is closed." in c.get("/me").text

    csrf = login(c, "ada")
    assert "open" in c.get("/gradebook").text
    r = c.post("/admin/course/close", data={"csrf_token": csrf})
    assert r.status_code == 422 and "Tick the box" in r.text
    r = c.post("/admin/course/close", data={"csrf_token": csrf, "confirm": "yes"})
    assert r.status_code == 200 and "The course is closed" in r.text
    assert c.get("/api/grades/me", headers=course.auth("alice")).json()["provisional"] is False
    login(c, "alice")
    assert 'id="provisional-note"' not in c.get("/me").text
    csrf = login(c, "ada")
    c.post("/admin/course/reopen", data={"csrf_token": csrf})
    assert c.get("/api/grades/me", headers=course.auth("alice")).json()["provisional"] is True
    audit = c.get("/api/audit", headers=course.auth("tina")).json()
    assert [e["reason"] for e in audit if e["entity"] == "course"] == [
        "course reopened",
        "course closed: grades are final",
    ]


def test_students_can_be_kept_from_automatic_results_until_release(course) -> None:
    sub = course.upload("alice")
    course.drain()
    c = course.client
    csrf = login(c, "ada")
    r = c.post("/admin/course/visibility", data={"csrf_token": csrf, "auto_results": "hide"})
    assert r.status_code == 200 and 'id="auto-hide" checked' in r.text

    mine = c.get(f"/api/submissions/{sub}", headers=course.auth("alice")).json()
    assert mine["total"] is None and mine["report"] is None
    assert all(i["points"] is None and i["auto_points"] is None and i["message"] is None for i in mine["items"])
    grades = c.get("/api/grades/me", headers=course.auth("alice")).json()
    assert grades["homeworks"]["hw1"] == 0 and grades["details"]["hw1"]["raw_points"] == 0
    assert grades["details"]["hw1"]["pending_manual"] and not grades["details"]["hw2"]["pending_manual"]
    assert c.get(f"/api/submissions/{sub}", headers=course.auth("tina")).json()["total"] == 8  # staff see all
    login(c, "alice")
    page = c.get(f"/submissions/{sub}").text
    assert "Your results are shown once the TAs release hw1" in page and "of the sub-cases passed" not in page
    assert "executed by the grader" not in page and "(as uploaded)" in page
    assert c.get(f"/submissions/{sub}/report", follow_redirects=False).status_code == 303

    assert c.post("/api/assignments/hw1/release", headers=course.auth("tina")).status_code == 200
    assert c.get(f"/api/submissions/{sub}", headers=course.auth("alice")).json()["total"] == 8
    assert "of the sub-cases passed" in c.get(f"/submissions/{sub}").text


def test_api_tokens_are_shown_once_listed_and_revoked_after_confirmation(course) -> None:
    c = course.client
    csrf = login(c, "ada")
    r = c.post("/admin/tokens", data={"csrf_token": csrf, "username": "tina", "name": "ci", "ttl_days": "30"})
    assert r.status_code == 200 and "shown only once" in r.text
    token = re.search(r'id="token-value" value="([^"]+)"', r.text).group(1)
    assert c.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["username"] == "tina"
    listing = c.get("/admin/tokens").text
    assert token not in listing and token[:10] in listing
    with course.db.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == "ci"))
        assert row.token_hash != token and token not in row.token_hash
        token_id = row.id
    for typed, message in [
        ({"username": "nobody", "name": "x"}, "no user"),
        ({"username": "tina", "name": ""}, "name"),
        ({"username": "tina", "name": "x", "ttl_days": "-1"}, "days"),
        ({"username": "tina", "name": "x", "ttl_days": "soon"}, "not a number"),
    ]:
        r = c.post("/admin/tokens", data={"csrf_token": csrf, **typed})
        assert r.status_code in (404, 422) and message in r.text and "Nothing was created" in r.text, typed

    assert "Revoke the token" in c.get(f"/admin/tokens/{token_id}/revoke").text
    r = c.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 422 and "Tick the box" in r.text
    assert c.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = c.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf, "confirm": "yes"})
    assert r.status_code == 200 and "Token revoked" in r.text
    assert c.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert c.get("/admin/tokens/999999/revoke").status_code == 404


def test_user_api_changes_roles_and_deactivates(course) -> None:
    c, ada = course.client, course.auth("ada")
    r = c.patch("/api/users/alice", json={"role": "ta"}, headers=ada)
    assert r.status_code == 200 and r.json()["role"] == "ta"
    r = c.patch("/api/users/alice", json={"is_active": False}, headers=ada)
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert c.get("/api/me", headers=course.auth("alice")).status_code == 401
    assert c.patch("/api/users/ada", json={"is_active": False}, headers=ada).status_code == 422
    assert c.patch("/api/users/bob", json={"role": "admin"}, headers=course.auth("tina")).status_code == 403
    r = c.put("/api/course", json={"closed": True, "auto_results_before_release": False}, headers=ada)
    assert r.status_code == 200 and r.json()["closed_at"] and r.json()["auto_results_before_release"] is False


def test_bad_form_input_never_breaks_a_page(course) -> None:
    """Garbage in every field of every admin form: 4xx answers, never 5xx."""
    c = course.client
    csrf = login(c, "ada")
    junk = ["", "\x00", "x" * 5000, "-1", "nan", "1e999", "<script>", "../../etc", "☃"]
    for path in [*ADMIN_POSTS, "/admin/users/ada/role", "/password/abc", "/assignments/hw1/regrade"]:
        for value in junk:
            data = {
                key: value
                for key in (
                    "username",
                    "full_name",
                    "email",
                    "role",
                    "password",
                    "repeat",
                    "csv_text",
                    "digest",
                    "default_role",
                    "builtin",
                    "name",
                    "homework_points",
                    "num_homeworks",
                    "exam_points",
                    "grade_divisor",
                    "grade_offset",
                    "max_grade",
                    "counting",
                    "late_penalty_percent",
                    "late_max_days",
                    "grace_minutes",
                    "deadline:hw1",
                    "auto_results",
                    "ttl_days",
                    "confirm",
                )
            }
            r = c.post(path, data={**data, "csrf_token": csrf})
            assert r.status_code < 500, (path, value[:20], r.status_code)
        assert _user(course, "ada").is_active and _user(course, "ada").role == Role.admin
    for path in ["/admin/users/%00", "/admin/users?page=x", "/admin/tokens/0/revoke", "/password/" + "x" * 300]:
        assert c.get(path).status_code < 500, path
