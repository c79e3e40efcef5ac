"""Users, roster import and API tokens."""

from __future__ import annotations

import csv
import io
import re
import secrets
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.core.security import Passwords, hash_token, new_token
from server.errors import Conflict, InvalidInput, NotFound
from server.models import ApiToken, Role, User, UserSession, utcnow
from server.schemas import MAX_PASSWORD_CHARS, USERNAME_PATTERN, UserCreate, validation_message

USERNAME_RE = re.compile(USERNAME_PATTERN)
PASSWORD_FLOW_TOKEN = "oauth2"  # the name of tokens from the OAuth2 password flow: a session, for API clients


def create_user(
    session: Session,
    *,
    username: str,
    role: Role = Role.student,
    password: str | None = None,
    full_name: str = "",
    email: str | None = None,
    passwords: Passwords,
) -> User:
    """A new user; the fields are checked against :class:`server.schemas.UserCreate`."""
    if not USERNAME_RE.match(username):
        raise InvalidInput(f"username {username!r}: use 1-64 letters, digits and . _ @ -")
    try:
        fields = UserCreate(username=username, role=role, password=password, full_name=full_name, email=email)
    except ValidationError as exc:
        raise InvalidInput(f"user {username}: {validation_message(exc)}") from None
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(
        username=username,
        role=role,
        full_name=fields.full_name,
        email=fields.email,
        password_hash=passwords.hash(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, *, user: User, password: str, passwords: Passwords) -> None:
    """Change the password and end every session the old one opened (browser and password-flow token)."""
    user.password_hash = passwords.hash(password)
    end_all_sessions(session, user=user)


def start_session(session: Session, *, user: User, ttl_s: float) -> str:
    """A server-side session for a browser login; returns its secret (only the hash is stored)."""
    now = utcnow()
    session.execute(delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now))
    secret = secrets.token_urlsafe(32)
    session.add(UserSession(id=hash_token(secret), user_id=user.id, expires_at=now + timedelta(seconds=ttl_s)))
    session.flush()
    return secret


def user_for_session(session: Session, *, user_id: int, secret: str | None) -> User | None:
    """The session's active user, or None when the session ended, expired or belongs to someone else."""
    if not secret:
        return None
    row = session.get(UserSession, hash_token(secret))
    if row is None or row.user_id != user_id or row.expires_at <= utcnow():
        return None
    user = session.get(User, user_id)
    return user if user is not None and user.is_active else None


def end_session(session: Session, *, secret: str | None) -> None:
    if secret:
        session.execute(delete(UserSession).where(UserSession.id == hash_token(secret)))


def end_all_sessions(session: Session, *, user: User) -> None:
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.name == PASSWORD_FLOW_TOKEN).values(revoked=True)
    )


def get_user(session: Session, *, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(session: Session, *, role: Role | None = None, limit: int | None = None, offset: int = 0) -> list[User]:
    stmt = select(User).order_by(User.username).limit(limit).offset(offset)
    if role is not None:
        stmt = stmt.where(User.role == role)
    return list(session.scalars(stmt))


def authenticate(session: Session, *, username: str, password: str, passwords: Passwords) -> User | None:
    if not USERNAME_RE.match(username) or len(password) > MAX_PASSWORD_CHARS:
        return None  # no such user can exist; and argon2 would hash a megabyte password
    user = session.scalar(select(User).where(User.username == username))
    ok = passwords.verify(user.password_hash if user else None, password)
    return user if ok and user is not None and user.is_active else None


def import_roster(
    session: Session, *, text: str, passwords: Passwords, default_role: Role = Role.student
) -> tuple[int, int]:
    """Create or update users from CSV with a ``username`` column (and optionally ``full_name``,
    ``email``, ``role``, ``password``). Returns (created, updated)."""
    try:
        return _import_rows(session, csv.DictReader(io.StringIO(text, newline="")), passwords, default_role)
    except csv.Error as exc:
        raise InvalidInput(f"roster CSV: {exc}") from None


def _import_rows(
    session: Session, reader: csv.DictReader[str], passwords: Passwords, default_role: Role
) -> tuple[int, int]:
    if reader.fieldnames is None or "username" not in reader.fieldnames:
        raise InvalidInput("roster CSV: expected a header row with a 'username' column")
    created = updated = 0
    for line, row in enumerate(reader, start=2):
        username = (row.get("username") or "").strip()
        if not username:
            continue
        role_name = (row.get("role") or "").strip().lower() or default_role.value
        try:
            role = Role(role_name)
        except ValueError:
            raise InvalidInput(f"roster CSV line {line}: unknown role {role_name!r}") from None
        try:
            fields = UserCreate(
                username=username,
                role=role,
                full_name=(row.get("full_name") or "").strip(),
                email=(row.get("email") or "").strip() or None,
                password=(row.get("password") or "").strip() or None,
            )
        except ValidationError as exc:
            raise InvalidInput(f"roster CSV line {line}: {validation_message(exc)}") from None
        existing = session.scalar(select(User).where(User.username == username))
        if existing is None:
            create_user(session, **fields.model_dump(), passwords=passwords)
            created += 1
        else:
            existing.full_name = fields.full_name or existing.full_name
            existing.email = fields.email or existing.email
            existing.role = role
            if fields.password:
                set_password(session, user=existing, password=fields.password, passwords=passwords)
            updated += 1
    return created, updated


def create_token(session: Session, *, user: User, name: str, ttl_s: float | None = None) -> tuple[ApiToken, str]:
    """A new bearer token for ``user``; the plain token is returned once and never stored."""
    token = new_token()
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(token),
        prefix=token[:10],
        expires_at=utcnow() + timedelta(seconds=ttl_s) if ttl_s else None,
    )
    session.add(row)
    session.flush()
    return row, token


def user_for_token(session: Session, *, token: str) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    now = utcnow()
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= now):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    # Touch at most once a minute so a busy CI token does not write on every request.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return user


def list_tokens(session: Session, *, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked.is_(False)).order_by(ApiToken.id)
        )
    )


def revoke_token(session: Session, *, user: User, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and user.role != Role.admin):
        raise NotFound(f"no token {token_id}")
    row.revoked = True


def token_expired(row: ApiToken, now: datetime | None = None) -> bool:
    return row.expires_at is not None and row.expires_at <= (now or utcnow())
