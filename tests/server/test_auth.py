"""Authentication: OAuth2 password flow, API tokens (hashes only), argon2 passwords, login rate limit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from server.models import ApiToken, User

PASSWORD = "correct horse battery"


def _login(course, username: str, password: str = PASSWORD):
    return course.client.post("/api/auth/token", data={"username": username, "password": password})


def test_password_flow_tokens_and_hashes(course) -> None:
    r = _login(course, "alice")
    assert r.status_code == 200 and r.json()["token_type"] == "bearer"
    token = r.json()["access_token"]
    me = course.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"id": me.json()["id"], "username": "alice", "full_name": "", "role": "student"}
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
    from server.services import users

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
