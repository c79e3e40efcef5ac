"""Shared dependencies: the application context, database sessions and the current user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from server.core.config import Settings
from server.core.db import Database
from server.core.security import Passwords, RateLimiter, SessionData, SessionSigner
from server.errors import NotAuthenticated, PermissionDenied
from server.models import Course, Role, User
from server.services import courses, users
from server.storage import FileStore

SESSION_COOKIE = "dgm_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class AppContext:
    """Everything a request handler may need, built once by ``server.main.create_app``."""

    settings: Settings
    db: Database
    store: FileStore
    passwords: Passwords
    signer: SessionSigner
    login_limiter: RateLimiter
    upload_limiter: RateLimiter


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def get_session(ctx: Ctx) -> Iterator[Session]:
    """A session per request. Handlers that write commit explicitly before answering."""
    with ctx.db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise


SessionDep = Annotated[Session, Depends(get_session)]


def read_session_cookie(request: Request, ctx: AppContext) -> SessionData | None:
    return ctx.signer.loads(request.cookies.get(SESSION_COOKIE))


def get_current_user(request: Request, ctx: Ctx, session: SessionDep) -> User:
    """A bearer token (OAuth2 access token or API token), or the page session cookie.

    Cookie-authenticated requests that change state must echo the session's CSRF token in the
    ``X-CSRF-Token`` header; bearer tokens are not sent by browsers on their own, so they need none.
    """
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = users.user_for_token(session, token=auth[7:].strip())
        if user is None:
            raise NotAuthenticated("invalid, expired or revoked token")
        session.commit()  # persists last_used_at
        return user
    data = read_session_cookie(request, ctx)
    if data is not None and data.user_id is not None:
        if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != data.csrf:
            raise PermissionDenied("CSRF check failed: send the page's token in the X-CSRF-Token header")
        user = session.get(User, data.user_id)
        if user is not None and user.is_active:
            return user
    raise NotAuthenticated("not authenticated")


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_staff(user: CurrentUser) -> User:
    if user.role not in (Role.ta, Role.admin):
        raise PermissionDenied("only TAs and admins may do this")
    return user


def require_admin(user: CurrentUser) -> User:
    if user.role != Role.admin:
        raise PermissionDenied("only admins may do this")
    return user


StaffUser = Annotated[User, Depends(require_staff)]
AdminUser = Annotated[User, Depends(require_admin)]


def get_course(ctx: Ctx, session: SessionDep) -> Course:
    """The course this server runs (created at start-up)."""
    return courses.get_course(session, slug=ctx.settings.course)


CourseDep = Annotated[Course, Depends(get_course)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
