"""Users (roles, deactivation, one-time password links), roster import and API tokens."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import ValidationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from server.core.security import Passwords, hash_token, new_token
from server.errors import Conflict, InvalidInput, NotFound
from server.models import ApiToken, PasswordLink, Role, User, UserSession, utcnow
from server.schemas import MAX_PASSWORD_CHARS, USERNAME_PATTERN, UserCreate, validation_message

USERNAME_RE = re.compile(USERNAME_PATTERN)
PASSWORD_FLOW_TOKEN = "oauth2"  # the name of tokens from the OAuth2 password flow: a session, for API clients
MIN_PASSWORD_CHARS = 8
# How long a one-time password link lasts: a new user may take a week to get round to it; a reset is urgent.
PASSWORD_LINK_TTL = {"invite": timedelta(days=7), "reset": timedelta(days=1)}
# An import or a page may raise a role; only an explicit change on the users page lowers a TA or an admin.
ROLE_RANK = {Role.student: 0, Role.ta: 1, Role.admin: 2}


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


def list_users(
    session: Session,
    *,
    role: Role | None = None,
    search: str = "",
    limit: int | None = None,
    offset: int = 0,
) -> list[User]:
    """Users by username; ``search`` matches a part of the username or the full name."""
    stmt = select(User).order_by(User.username).limit(limit).offset(offset)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(User.username.ilike(pattern, escape="\\"), User.full_name.ilike(pattern, escape="\\")))
    return list(session.scalars(stmt))


def count_users(session: Session) -> dict[Role, int]:
    """Active users per role."""
    rows = session.execute(select(User.role, func.count()).where(User.is_active.is_(True)).group_by(User.role))
    counts = dict.fromkeys(Role, 0)
    counts.update({role: n for role, n in rows})
    return counts


def set_role(session: Session, *, user: User, role: Role, actor: User) -> User:
    """Change a user's role (up or down). An admin cannot change their own, so a course keeps its admin."""
    if user.id == actor.id and role != user.role:
        raise InvalidInput("you cannot change your own role; ask another admin")
    user.role = role
    session.flush()
    return user


def set_active(session: Session, *, user: User, active: bool, actor: User) -> User:
    """Deactivate (no login, no API token works, every session ends) or reactivate a user."""
    if user.id == actor.id and not active:
        raise InvalidInput("you cannot deactivate your own account")
    user.is_active = active
    if not active:
        end_all_sessions(session, user=user)
        _end_password_links(session, user=user)
    session.flush()
    return user


def create_password_link(
    session: Session, *, user: User, purpose: Literal["invite", "reset"], actor: User | None = None
) -> str:
    """A one-time secret for ``/password/<secret>``, where the user sets a password.

    Only its hash is stored; it expires after :data:`PASSWORD_LINK_TTL` and ends any older link of the user.
    The current password keeps working until the link is used."""
    if not user.is_active:
        raise InvalidInput(f"{user.username} is deactivated; reactivate them first")
    _end_password_links(session, user=user)
    secret = secrets.token_urlsafe(32)
    session.add(
        PasswordLink(
            user_id=user.id,
            token_hash=hash_token(secret),
            purpose=purpose,
            expires_at=utcnow() + PASSWORD_LINK_TTL[purpose],
            created_by_id=actor.id if actor else None,
        )
    )
    session.flush()
    return secret


def password_link(session: Session, *, secret: str) -> PasswordLink | None:
    """The link's row while it can still be used (unused, unexpired, its user active), else None."""
    if not secret or len(secret) > 128:
        return None
    row = session.scalar(select(PasswordLink).where(PasswordLink.token_hash == hash_token(secret)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow() or not row.user.is_active:
        return None
    return row


def use_password_link(session: Session, *, secret: str, password: str, passwords: Passwords) -> User:
    """Set the password through a one-time link and end the link (and every session of the user)."""
    row = password_link(session, secret=secret)
    if row is None:
        raise NotFound("this link is invalid, expired or already used; ask an admin for a new one")
    check_new_password(password)
    # Conditional on "still unused": two submissions of the same link cannot both set a password.
    used = session.execute(
        update(PasswordLink)
        .where(PasswordLink.id == row.id, PasswordLink.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("this link was used already; ask an admin for a new one")
    set_password(session, user=row.user, password=password, passwords=passwords)
    return row.user


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"password: use at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"password: use at most {MAX_PASSWORD_CHARS} characters")
    if "\x00" in password:
        raise InvalidInput("password: must not contain a NUL character")


def _end_password_links(session: Session, *, user: User) -> None:
    now = utcnow()
    session.execute(
        update(PasswordLink)
        .where(PasswordLink.user_id == user.id, PasswordLink.used_at.is_(None), PasswordLink.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


def authenticate(session: Session, *, username: str, password: str, passwords: Passwords) -> User | None:
    if not USERNAME_RE.match(username) or len(password) > MAX_PASSWORD_CHARS:
        return None  # no such user can exist; and argon2 would hash a megabyte password
    user = session.scalar(select(User).where(User.username == username))
    ok = passwords.verify(user.password_hash if user else None, password)
    return user if ok and user is not None and user.is_active else None


@dataclass(frozen=True)
class RosterRow:
    """What importing one CSV row does: create a user, update one, or nothing."""

    line: int
    username: str
    action: Literal["create", "update", "unchanged"]
    fields: UserCreate = field(repr=False)
    changes: tuple[str, ...] = ()  # "full name: 'A' -> 'B'", "role: student -> ta", "password"
    kept_role: Role | None = None  # the CSV asked to lower this staff role: the import keeps it
    asked_role: Role | None = None  # the row's role cell, if any
    inactive: bool = False  # the user exists but is deactivated (the import does not reactivate)


@dataclass(frozen=True)
class RosterPlan:
    """Everything an import will do, computed without changing anything (the preview), and its digest,
    so that applying can check that nothing changed in between."""

    rows: list[RosterRow]

    def of(self, action: str) -> list[RosterRow]:
        return [r for r in self.rows if r.action == action]

    @property
    def digest(self) -> str:
        text = repr([(r.username, r.action, r.changes, r.kept_role) for r in self.rows])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_roster(session: Session, *, text: str, default_role: Role = Role.student) -> RosterPlan:
    """Read a roster CSV with a ``username`` column (and optionally ``full_name``, ``email``, ``role``,
    ``password``) and say what importing it would change.

    A new user gets the row's role, else ``default_role``. An existing user keeps their role when the row
    has none, and an import never lowers a TA's or an admin's role: a roster of students re-imported with
    the TAs in it leaves them TAs. Empty cells keep what is stored."""
    try:
        return _plan_rows(session, csv.DictReader(io.StringIO(text, newline="")), default_role)
    except csv.Error as exc:
        raise InvalidInput(f"roster CSV: {exc}") from None


def apply_roster(session: Session, *, plan: RosterPlan, passwords: Passwords) -> tuple[int, int]:
    """Carry out a plan from :func:`plan_roster`. Returns (created, updated)."""
    for row in plan.rows:
        if row.action == "create":
            create_user(session, **row.fields.model_dump(), passwords=passwords)
        elif row.action == "update":
            user = get_user(session, username=row.username)
            user.full_name = row.fields.full_name or user.full_name
            user.email = row.fields.email or user.email
            user.role = row.fields.role
            if row.fields.password:
                set_password(session, user=user, password=row.fields.password, passwords=passwords)
    session.flush()
    return len(plan.of("create")), len(plan.of("update"))


def import_roster(
    session: Session, *, text: str, passwords: Passwords, default_role: Role = Role.student
) -> tuple[int, int]:
    """Plan and apply a roster CSV in one go (see :func:`plan_roster`). Returns (created, updated)."""
    return apply_roster(session, plan=plan_roster(session, text=text, default_role=default_role), passwords=passwords)


def _plan_rows(session: Session, reader: csv.DictReader[str], default_role: Role) -> RosterPlan:
    if reader.fieldnames is None or "username" not in reader.fieldnames:
        raise InvalidInput("roster CSV: expected a header row with a 'username' column")
    rows: list[RosterRow] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        username = (row.get("username") or "").strip()
        if not username:
            continue
        if username in seen:
            raise InvalidInput(f"roster CSV line {line}: {username} is on line {seen[username]} already")
        seen[username] = line
        role_name = (row.get("role") or "").strip().lower()
        try:
            asked = Role(role_name) if role_name else None
        except ValueError:
            raise InvalidInput(f"roster CSV line {line}: unknown role {role_name!r}") from None
        existing = session.scalar(select(User).where(User.username == username))
        role = asked or default_role
        kept = None
        if existing is not None:
            role = existing.role if asked is None or ROLE_RANK[asked] < ROLE_RANK[existing.role] else asked
            kept = existing.role if asked is not None and role != asked else None
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
        if existing is None:
            rows.append(RosterRow(line=line, username=username, action="create", fields=fields))
            continue
        changes = []
        if fields.full_name and fields.full_name != existing.full_name:
            changes.append(f"full name: {existing.full_name or '–'} → {fields.full_name}")
        if fields.email and fields.email != existing.email:
            changes.append(f"email: {existing.email or '–'} → {fields.email}")
        if role != existing.role:
            changes.append(f"role: {existing.role.value} → {role.value}")
        if fields.password:
            changes.append("password")
        rows.append(
            RosterRow(
                line=line,
                username=username,
                action="update" if changes else "unchanged",
                fields=fields,
                changes=tuple(changes),
                kept_role=kept,
                asked_role=asked,
                inactive=not existing.is_active,
            )
        )
    return RosterPlan(rows=rows)


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


def all_tokens(session: Session, *, include_sessions: bool = False) -> list[ApiToken]:
    """Every user's live tokens (not revoked, not expired), newest first; ``include_sessions`` adds the
    short-lived tokens of the OAuth2 password flow."""
    stmt = (
        select(ApiToken)
        .where(ApiToken.revoked.is_(False), or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > utcnow()))
        .order_by(ApiToken.id.desc())
    )
    if not include_sessions:
        stmt = stmt.where(ApiToken.name != PASSWORD_FLOW_TOKEN)
    return list(session.scalars(stmt))


def get_token(session: Session, *, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token {token_id}")
    return row


def revoke_token(session: Session, *, user: User, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and user.role != Role.admin):
        raise NotFound(f"no token {token_id}")
    row.revoked = True


def token_expired(row: ApiToken, now: datetime | None = None) -> bool:
    return row.expires_at is not None and row.expires_at <= (now or utcnow())
