"""Authentication: OAuth2 password flow, API tokens (hashes only), argon2 passwords, login rate limits,
server-side sessions that logging out and password changes end."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import FAST_PASSWORDS
from sqlalchemy import select

from server.api.deps import SESSION_COOKIE
from server.models import ApiToken, User
from server.services import users

PASSWORD = "correct horse battery"


def _login(course, username: str, password: str = PASSWORD):
    return course.client.post("/api/auth/token", data={"username": username, "password": password})


def test_password_flow_tokens_and_hashes(course) -> None:
    r = _login(course, "alice")
    assert r.status_code == 200 and r.json()["token_type"] == "bearer"
    token = r.json()["access_token"]
    me = course.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {
        "id": me.json()["id"],
        "username": "alice",
        "full_name": "",
        "role": "student",
        "is_active": True,
    }
    assert _login(course, "alice", "wrong password").status_code == 401
    assert _login(course, "nobody").status_code == 401

    with course.db.session() as s:
        rows = list(s.scalars(select(ApiToken)))
        assert all(token not in (row.token_hash, row.prefix, row.name) for row in rows)
        assert hashlib.sha256(token.encode()).hexdigest() in {row.token_hash for row in rows}
        alice = s.scalars(select(User).where(User.username == "alice")).one()
        assert alice.password_hash is not None and alice.password_hash.startswith("$argon2id$")


def test_long_lived_api_tokens_can_be_listed_and_revoked(course) -> None:
    c, alice = course.client, course.auth("alice")
    r = c.post("/api/tokens", json={"name": "ci"}, headers=alice)
    assert r.status_code == 201
    created = r.json()
    ci = {"Authorization": f"Bearer {created['token']}"}
    assert c.get("/api/me", headers=ci).json()["username"] == "alice"
    listed = c.get("/api/tokens", headers=alice).json()
    assert "ci" in {t["name"] for t in listed} and all("token" not in t for t in listed)
    assert c.delete(f"/api/tokens/{created['id']}", headers=course.auth("bob")).status_code == 404
    assert c.delete(f"/api/tokens/{created['id']}", headers=alice).status_code == 204
    assert c.get("/api/me", headers=ci).status_code == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_expired_tokens_are_rejected(course) -> None:
    with course.db.session() as s:
        alice = s.scalars(select(User).where(User.username == "alice")).one()
        row, expired = users.create_token(s, user=alice, name="short", ttl_s=3600)
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        _, valid = users.create_token(s, user=alice, name="long", ttl_s=3600)
    assert course.client.get("/api/me", headers={"Authorization": f"Bearer {valid}"}).status_code == 200
    assert course.client.get("/api/me", headers={"Authorization": f"Bearer {expired}"}).status_code == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("settings_overrides", [{"login_rate_per_minute": 3}], indirect=True)
def test_login_is_rate_limited(course) -> None:
    assert [_login(course, "alice", "guess").status_code for _ in range(3)] == [401] * 3
    r = _login(course, "alice", PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _login(course, "bob").status_code == 200  # limits are per account and address


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("settings_overrides", [{"login_rate_per_address_per_minute": 5}], indirect=True)
def test_login_is_rate_limited_per_address_whatever_the_username(course) -> None:
    assert [_login(course, f"user{i}", "guess").status_code for i in range(5)] == [401] * 5
    r = _login(course, "alice", PASSWORD)
    assert r.status_code == 429 and "too many login attempts" in r.json()["detail"]


def _page_login(course, username: str) -> str:
    """Log in through the form; returns the session cookie."""
    c = course.client
    c.cookies.clear()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)  # type: ignore[union-attr]
    r = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c.cookies[SESSION_COOKIE]


def _with_cookie(course, cookie: str, path: str):
    course.client.cookies.clear()
    course.client.cookies.set(SESSION_COOKIE, cookie)
    return course.client.get(path, follow_redirects=False)


def test_logout_ends_the_session_on_the_server(course) -> None:
    cookie = _page_login(course, "alice")
    assert _with_cookie(course, cookie, "/api/me").json()["username"] == "alice"
    page = _with_cookie(course, cookie, "/me").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = course.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    # The old cookie, replayed: its signature is still valid, but its session is gone.
    assert _with_cookie(course, cookie, "/api/me").status_code == 401
    assert _with_cookie(course, cookie, "/me").headers["location"] == "/login?next=/me"


def test_a_password_change_ends_every_session(course) -> None:
    cookie = _page_login(course, "alice")
    other_cookie = _page_login(course, "alice")
    oauth = _login(course, "alice").json()["access_token"]
    ci_token = course.tokens["alice"]  # a long-lived API token: kept
    with course.db.session() as s:
        alice = s.scalars(select(User).where(User.username == "alice")).one()
        users.set_password(s, user=alice, password="a brand new password", passwords=FAST_PASSWORDS)
    assert _with_cookie(course, cookie, "/api/me").status_code == 401
    assert _with_cookie(course, other_cookie, "/api/me").status_code == 401
    course.client.cookies.clear()
    assert course.client.get("/api/me", headers={"Authorization": f"Bearer {oauth}"}).status_code == 401
    assert course.client.get("/api/me", headers={"Authorization": f"Bearer {ci_token}"}).status_code == 200
    assert _login(course, "alice").status_code == 401
    assert _login(course, "alice", "a brand new password").status_code == 200
