"""Builds the FastAPI application: API routers, pages, the error handler and the in-process worker."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grader.children import stop_children
from server.api.deps import AppContext
from server.api.routes import admin, assignments, auth, gradebook, submissions
from server.core.config import Settings
from server.core.db import Database
from server.core.security import Passwords, RateLimiter, SessionSigner
from server.errors import DomainError, InvalidInput, NotAuthenticated, RateLimited
from server.pages import admin_course, admin_users
from server.pages import routes as pages
from server.pages.routes import TEMPLATES
from server.schemas import ErrorOut, FieldError, field_errors, one_line
from server.services import courses
from server.services.gradebook_cache import RenderedGradebooks
from server.storage import FileStore, human_size
from server.worker import BackgroundWorker, Worker

log = logging.getLogger(__name__)

_MULTIPART_ALLOWANCE = 64 * 1024  # the multipart envelope around the largest allowed notebook
STATIC_DIR = Path(__file__).resolve().parent / "static"

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def build_context(settings: Settings) -> AppContext:
    settings.home.mkdir(parents=True, exist_ok=True)
    return AppContext(
        settings=settings,
        db=Database(settings.effective_database_url),
        store=FileStore(settings.uploads_dir),
        passwords=Passwords(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib),
        signer=SessionSigner(settings.session_secret(), ttl_s=settings.session_ttl_s),
        login_limiter=RateLimiter(settings.login_rate_per_minute),
        address_limiter=RateLimiter(settings.login_rate_per_address_per_minute),
        upload_limiter=RateLimiter(settings.upload_rate_per_minute),
        gradebooks=RenderedGradebooks(),
    )


def prepare_database(ctx: AppContext, *, load_assignments: bool = True) -> None:
    """Migrate, make sure the course exists, and sync assignments from the folder when possible."""
    ctx.db.migrate()
    with ctx.db.session() as session:
        course = courses.configured_course(
            session,
            slug=ctx.settings.course,
            title=ctx.settings.course_title,
            assignments_dir=ctx.settings.assignments_dir,
        )
        if load_assignments:
            try:
                courses.load_assignments(session, course=course, assignments_dir=ctx.settings.assignments_dir)
            except Exception as exc:  # the server still runs; an admin can load them later
                log.warning("assignments not loaded: %s", exc)


async def _security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.headers.get("content-type", "").startswith("text/html"):
        response.headers.setdefault("Content-Security-Policy", _CSP)
    return response


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before the multipart parser spools them.

    FastAPI parses a form before any dependency runs, so the limit has to sit in front of the app:
    by ``Content-Length`` when it is sent, else by counting the streamed chunks.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        too_large = False
        end_of_body: Message = {"type": "http.request", "body": b"", "more_body": False}

        async def counting_receive() -> Message:
            nonlocal seen, too_large
            if too_large:
                return end_of_body
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True  # cut the body short; the app's (parse error) answer is replaced
                    return end_of_body
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(scope, receive, send)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = human_size(self.max_bytes - _MULTIPART_ALLOWANCE)
        await _error_json(413, f"the upload is larger than the limit of {limit}")(scope, receive, send)


def _error_json(
    status_code: int, detail: str, errors: list[FieldError] | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorOut(detail=detail, errors=errors or [])
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def _validation_error(request: Request, exc: Exception) -> Response:
    """Request validation: the same :class:`ErrorOut` shape as every other error, with each field."""
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(list(exc.errors()))
    if not request.url.path.startswith("/api/"):
        return _domain_error(request, InvalidInput(one_line(errors)))
    return _error_json(422, one_line(errors), errors)


def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method, unreadable body) in the same shape."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _documented_methods(request)):
        headers["Allow"] = allowed  # Starlette names the methods of one route; a path has several
    return _error_json(exc.status_code, str(exc.detail), headers=headers)


def _documented_methods(request: Request) -> str | None:
    """The methods the OpenAPI document lists for the request's path, as an ``Allow`` header."""
    methods = {
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if compile_path(template)[0].match(request.url.path)
        for method in operations
    }
    return ", ".join(sorted(methods)) or None


def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    is_page = not request.url.path.startswith("/api/")
    if isinstance(exc, NotAuthenticated):
        if is_page:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        headers["WWW-Authenticate"] = "Bearer"
    if is_page:
        context = {"status_code": exc.status_code, "message": exc.message, "user": None, "csrf": ""}
        return TEMPLATES.TemplateResponse(request, "error.html", context, exc.status_code, headers)
    return _error_json(exc.status_code, exc.message, headers=headers)


def create_app(
    settings: Settings | None = None,
    *,
    start_worker: bool | None = None,
    load_assignments: bool = True,
) -> FastAPI:
    """The application. ``start_worker`` defaults to ``settings.inprocess_worker``."""
    settings = settings or Settings()
    ctx = build_context(settings)
    run_worker = settings.inprocess_worker if start_worker is None else start_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare_database(ctx, load_assignments=load_assignments)
        background = None
        if run_worker:
            background = BackgroundWorker(Worker(db=ctx.db, settings=settings))
            background.start()
        app.state.worker = background
        # The start-up objects (modules, routes, the ORM's metadata) never die: moved out of the collector's
        # generations, they are not rescanned by every collection, which cut the gradebook's p95 at 500
        # students from ~110 to 30-40 ms of CPU (bench/bench_gradebook.py).
        gc.freeze()
        try:
            yield
        finally:
            if background is not None:
                background.stop(timeout=settings.shutdown_grace_s + 5)
            stop_children()  # the grader's theory worker, forked by the in-process worker
            ctx.db.dispose()

    app = FastAPI(
        title="DGM Grader",
        summary="Uploads, grading queue and gradebook for the Deep Generative Models course",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.add_middleware(BaseHTTPMiddleware, dispatch=_security_headers)
    # Room for the multipart envelope around the largest allowed notebook.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + _MULTIPART_ALLOWANCE)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for router in (auth.router, submissions.router, assignments.router, gradebook.router, admin.router):
        app.include_router(router, prefix="/api")
    app.include_router(pages.router)
    app.include_router(admin_users.router)
    app.include_router(admin_course.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness and database reachability, for container health checks."""
        with ctx.db.session() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
