"""Shared dependencies: the application context, database sessions and the current user."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from server.core.config import Settings
from server.core.db import Database
from server.core.security import Passwords, RateLimiter, SessionData, SessionSigner
from server.errors import NotAuthenticated, PermissionDenied, RateLimited
from server.models import Course, Role, User
from server.schemas import MAX_ID
from server.services import courses, users
from server.services.gradebook_cache import RenderedGradebooks
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
    login_limiter: RateLimiter  # per username
    address_limiter: RateLimiter  # login attempts per client address
    upload_limiter: RateLimiter
    gradebooks: RenderedGradebooks


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


async def get_session(ctx: Ctx) -> AsyncIterator[Session]:
    """A session per request. Handlers that write commit explicitly before answering.

    No transaction may stay open while FastAPI moves a request between threads: on SQLite a
    transaction holds the database's write lock (BEGIN IMMEDIATE), and a request waiting for a free
    thread while holding it would stall every other request. So dependencies end their transaction
    before returning, :class:`SessionRoute` ends the handler's, and this cleanup runs on the event loop.
    """
    session = ctx.db.sessionmaker()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def session_user(request: Request, ctx: AppContext, session: Session) -> tuple[User, SessionData] | None:
    """The user of the request's session cookie, while its server-side session lasts."""
    data = ctx.signer.loads(request.cookies.get(SESSION_COOKIE))
    if data is None or data.user_id is None:
        return None
    user = users.user_for_session(session, user_id=data.user_id, secret=data.sid)
    session.commit()  # no transaction across the thread hop to the handler (see get_session)
    return (user, data) if user is not None else None


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
        session.commit()  # persists last_used_at, ends the transaction
        return user
    found = session_user(request, ctx, session)
    if found is None:
        raise NotAuthenticated("not authenticated")
    user, data = found
    if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != data.csrf:
        raise PermissionDenied("CSRF check failed: send the page's token in the X-CSRF-Token header")
    return user


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
    course = courses.get_course(session, slug=ctx.settings.course)
    session.commit()
    return course


CourseDep = Annotated[Course, Depends(get_course)]


MAX_PAGE = 500


@dataclass(frozen=True)
class Page:
    """A slice of a list that grows (newest first): ``limit`` items after skipping ``offset``."""

    limit: int
    offset: int


def get_page(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="items to skip")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(get_page)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login_allowed(request: Request, ctx: AppContext, username: str) -> None:
    """Count a login attempt against the username (whoever tries it) and against the client address
    (whatever names it tries); raise :class:`RateLimited` when either is over its limit."""
    for limiter, key in ((ctx.address_limiter, client_ip(request)), (ctx.login_limiter, username[:64])):
        wait = limiter.hit(key)
        if wait is not None:
            raise RateLimited(f"too many login attempts; try again in {wait:.0f} s", wait)


def _end_transactions(kwargs: dict[str, object]) -> None:
    for value in kwargs.values():
        if isinstance(value, Session) and value.in_transaction():
            value.rollback()  # anything meant to persist was committed by the handler


def release_sessions(endpoint: Callable[..., object]) -> Callable[..., object]:
    """Wrap a handler so that its session has no open transaction when it returns."""
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def async_wrapper(*args: object, **kwargs: object) -> object:
            try:
                return await endpoint(*args, **kwargs)
            finally:
                _end_transactions(kwargs)

        return async_wrapper

    @functools.wraps(endpoint)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return endpoint(*args, **kwargs)
        finally:
            _end_transactions(kwargs)

    return wrapper


class SessionRoute(APIRoute):
    """An APIRoute whose handler ends its database transaction before the response is serialised."""

    def __init__(self, path: str, endpoint: Callable[..., object], **kwargs: object) -> None:
        super().__init__(path, release_sessions(endpoint), **kwargs)  # type: ignore[arg-type]
