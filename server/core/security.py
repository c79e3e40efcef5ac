"""Passwords (argon2), bearer tokens (stored as SHA-256), signed session cookies and CSRF tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "dgm_"


class Passwords:
    """argon2id hashing; the parameters travel inside each hash, so they can change over time."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # A hash to verify against when the user does not exist, so timing does not reveal usernames.
        self._dummy = self._hasher.hash(secrets.token_hex(8))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def new_token() -> str:
    """A fresh bearer token: 256 random bits, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens carry 256 random bits, so a fast unsalted hash is enough (and lookups stay indexed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionData:
    """What the session cookie carries: the user (None before login), a CSRF token, an expiry, and
    after login the secret of the server-side session (``server.models.UserSession``) that must exist."""

    user_id: int | None
    csrf: str
    expires: float
    sid: str | None = None


class SessionSigner:
    """Signs session cookies with HMAC-SHA256: ``base64(json).base64(mac)``."""

    def __init__(self, key: bytes, *, ttl_s: int) -> None:
        self._key = hashlib.sha256(b"dgm-session:" + key).digest()
        self.ttl_s = ttl_s

    def dumps(self, data: SessionData) -> str:
        payload = base64.urlsafe_b64encode(
            json.dumps({"u": data.user_id, "c": data.csrf, "e": data.expires, "s": data.sid}).encode()
        ).rstrip(b"=")
        return (payload + b"." + self._mac(payload)).decode()

    def loads(self, cookie: str | None) -> SessionData | None:
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.encode().partition(b".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
            data = SessionData(user_id=raw["u"], csrf=str(raw["c"]), expires=float(raw["e"]), sid=raw.get("s"))
        except (ValueError, KeyError, TypeError):
            return None
        return data if data.expires > time.time() else None

    def new(self, user_id: int | None = None, sid: str | None = None) -> SessionData:
        return SessionData(user_id=user_id, csrf=secrets.token_urlsafe(24), expires=time.time() + self.ttl_s, sid=sid)

    def _mac(self, payload: bytes) -> bytes:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=")


class RateLimiter:
    """A sliding-window limit per key (per process: enough for one server; a proxy limits the rest)."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Record a hit; return None when allowed, else the seconds until the next one is."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(0.0, hits[0] + self.window_s - now)
            hits.append(now)
            if len(self._hits) > 100_000:  # bound memory under a flood of distinct keys
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.window_s}
            return None

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)
