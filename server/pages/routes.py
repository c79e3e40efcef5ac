"""HTML pages for students (upload, status, feedback) and TAs (gradebook, grading, exam, extensions).

Pages authenticate with the signed session cookie; every form post carries the session's CSRF token.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from server import render
from server.api.deps import SESSION_COOKIE, AppContext, CourseDep, Ctx, SessionDep, SessionRoute, client_ip
from server.core.security import SessionData
from server.errors import InvalidInput, NotAuthenticated, PermissionDenied, RateLimited
from server.models import Role, User
from server.services import courses, gradebook, grades, submissions, users

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
TEMPLATES.env.filters["pts"] = lambda v: "–" if v is None else f"{v:g}"
TEMPLATES.env.filters["when"] = lambda d: "–" if d is None else d.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

router = APIRouter(include_in_schema=False, route_class=SessionRoute)


class PageAuth:
    """The page user and the cookie session (for its CSRF token)."""

    def __init__(self, user: User, data: SessionData) -> None:
        self.user = user
        self.data = data

    @property
    def is_staff(self) -> bool:
        return self.user.role in (Role.ta, Role.admin)


def page_auth(request: Request, ctx: Ctx, session: SessionDep) -> PageAuth:
    data = ctx.signer.loads(request.cookies.get(SESSION_COOKIE))
    if data is None or data.user_id is None:
        raise NotAuthenticated("log in first")
    user = session.get(User, data.user_id)
    session.commit()  # no transaction across the thread hop to the handler (see get_session)
    if user is None or not user.is_active:
        raise NotAuthenticated("log in first")
    return PageAuth(user, data)


Auth = Annotated[PageAuth, Depends(page_auth)]


def staff(auth: Auth) -> PageAuth:
    if not auth.is_staff:
        raise PermissionDenied("this page is for TAs")
    return auth


Staff = Annotated[PageAuth, Depends(staff)]


def check_csrf(data: SessionData, token: str) -> None:
    if not token or token != data.csrf:
        raise PermissionDenied("the form expired or came from another site; reload the page and try again")


def page(request: Request, name: str, auth: PageAuth | None, **context: Any) -> HTMLResponse:
    context.update(request=request, user=auth.user if auth else None, csrf=auth.data.csrf if auth else "")
    return TEMPLATES.TemplateResponse(request, name, context)


def _set_session(response: Response, ctx: AppContext, data: SessionData) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        ctx.signer.dumps(data),
        max_age=ctx.settings.session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=ctx.settings.cookie_secure,
        path="/",
    )


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login")
def login_form(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    data = ctx.signer.loads(request.cookies.get(SESSION_COOKIE)) or ctx.signer.new(None)
    response = TEMPLATES.TemplateResponse(
        request, "login.html", {"csrf": data.csrf, "next": _safe_next(next), "error": None, "user": None}
    )
    _set_session(response, ctx, data)
    return response


@router.post("/login")
def login(
    request: Request,
    ctx: Ctx,
    session: SessionDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    data = ctx.signer.loads(request.cookies.get(SESSION_COOKIE))
    error = None
    if data is None or csrf_token != data.csrf:
        error = "Your login form expired. Please try again."
    elif (wait := ctx.login_limiter.hit(f"{client_ip(request)}:{username}")) is not None:
        raise RateLimited(f"too many login attempts; try again in {wait:.0f} s", wait)
    else:
        user = users.authenticate(session, username=username, password=password, passwords=ctx.passwords)
        if user is not None:
            redirect = RedirectResponse(_safe_next(next), status_code=303)
            _set_session(redirect, ctx, ctx.signer.new(user.id))  # a fresh session: no fixation
            return redirect
        error = "Wrong username or password."
    data = ctx.signer.new(None)
    response = TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"csrf": data.csrf, "next": _safe_next(next), "error": error, "user": None},
        status_code=400,
    )
    _set_session(response, ctx, data)
    return response


@router.post("/logout")
def logout(auth: Auth, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(auth.data, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(auth: Auth) -> Response:
    return RedirectResponse("/gradebook" if auth.is_staff else "/me", status_code=303)


@router.get("/me")
def student_home(request: Request, auth: Auth, course: CourseDep, session: SessionDep) -> Response:
    if auth.is_staff:
        return RedirectResponse("/gradebook", status_code=303)
    user = auth.user
    assignments = courses.list_assignments(session, course=course)
    deadlines = {a.name: submissions.effective_deadline(session, assignment=a, user_id=user.id) for a in assignments}
    subs = submissions.list_submissions(session, viewer=user, course=course)
    book = gradebook.compute_gradebook(session, course=course, user_id=user.id)
    return page(
        request,
        "student.html",
        auth,
        assignments=assignments,
        deadlines=deadlines,
        subs=subs,
        status_of=submissions.status_of,
        row=book.students[0] if book.students else None,
        scheme=book.scheme,
        max_upload_mib=request.app.state.ctx.settings.max_upload_bytes // (1024 * 1024),
    )


def _submission_context(session: Session, sub_id: int, auth: PageAuth, ctx: AppContext) -> dict[str, Any]:
    sub = submissions.get_submission(session, submission_id=sub_id, viewer=auth.user)
    executed = sub.executed_sha256 is not None
    try:
        data = ctx.store.read(sub.executed_sha256) if sub.executed_sha256 else submissions.get_file(ctx.store, sub)
        nb_html = render.notebook(data)
    except Exception:
        nb_html = None
    total = sum(i.points or 0.0 for i in sub.items) if sub.graded_at else None
    return {
        "sub": sub,
        "status": submissions.status_of(sub),
        "job": submissions.latest_job(sub),
        "total": total,
        "max_total": sum(i.max_points for i in sub.items),
        "notebook_html": nb_html,
        "executed": executed,
        "has_full_report": sub.report is not None and _report_renderer() is not None,
        "markdown": render.markdown,
    }


@router.get("/submissions/{sub_id}")
def submission_page(request: Request, sub_id: int, auth: Auth, ctx: Ctx, session: SessionDep) -> Response:
    return page(request, "submission.html", auth, **_submission_context(session, sub_id, auth, ctx))


def _report_renderer() -> Any:
    try:
        from grader.report import render_html
    except ImportError:
        return None
    return render_html


@router.get("/submissions/{sub_id}/report")
def full_report(sub_id: int, auth: Auth, session: SessionDep) -> Response:
    """The grading pipeline's own HTML feedback report, under a CSP that allows no scripts."""
    sub = submissions.get_submission(session, submission_id=sub_id, viewer=auth.user)
    render_html = _report_renderer()
    if sub.report is None or render_html is None:
        return RedirectResponse(f"/submissions/{sub_id}", status_code=303)
    from grader.results import Report

    html = render_html(Report.model_validate(sub.report))
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'"},
    )


def _parse_points(raw: str, item_id: str) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        raise InvalidInput(f"{item_id}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{item_id}: {raw!r} is not a number")
    return value


@router.post("/submissions/{sub_id}/grade")
async def grade_submission(request: Request, sub_id: int, auth: Staff, session: SessionDep) -> Response:
    """Manual points per rubric item: fields ``points:<id>``, ``reason:<id>``, ``comment:<id>``."""
    form = await request.form()
    check_csrf(auth.data, str(form.get("csrf_token", "")))
    sub = submissions.get_submission(session, submission_id=sub_id, viewer=auth.user)
    for item in sub.items:
        key = f"points:{item.item_id}"
        if key not in form:
            continue
        points = _parse_points(str(form[key]), item.item_id)
        comment = str(form.get(f"comment:{item.item_id}", "")).strip() or None
        if points == item.manual_points and comment == item.manual_comment:
            continue
        grades.set_item_points(
            session,
            submission=sub,
            item_id=item.item_id,
            points=points,
            reason=str(form.get(f"reason:{item.item_id}", "")),
            comment=comment,
            actor=auth.user,
        )
    session.commit()
    return RedirectResponse(f"/submissions/{sub_id}", status_code=303)


@router.post("/submissions/{sub_id}/regrade")
def regrade_submission(
    sub_id: int, auth: Staff, ctx: Ctx, session: SessionDep, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(auth.data, csrf_token)
    sub = submissions.get_submission(session, submission_id=sub_id, viewer=auth.user)
    submissions.enqueue_regrade(session, submissions=[sub], max_attempts=ctx.settings.max_attempts)
    session.commit()
    return RedirectResponse(f"/submissions/{sub_id}", status_code=303)


@router.get("/gradebook")
def gradebook_page(request: Request, auth: Staff, course: CourseDep, session: SessionDep) -> Response:
    book = gradebook.compute_gradebook(session, course=course)
    return page(request, "gradebook.html", auth, book=book, queue=gradebook.queue_counts(session), course=course)


@router.get("/submissions")
def submissions_page(
    request: Request,
    auth: Auth,
    course: CourseDep,
    session: SessionDep,
    assignment: str | None = None,
    username: str | None = None,
) -> Response:
    if not auth.is_staff:
        return RedirectResponse("/me", status_code=303)
    subs = submissions.list_submissions(
        session, viewer=auth.user, course=course, assignment=assignment or None, username=username or None
    )
    return page(
        request,
        "submissions.html",
        auth,
        subs=subs,
        status_of=submissions.status_of,
        assignments=courses.list_assignments(session, course=course),
        assignment=assignment or "",
        username=username or "",
    )


@router.post("/assignments/{name}/regrade")
def regrade_assignment(
    name: str,
    auth: Staff,
    course: CourseDep,
    ctx: Ctx,
    session: SessionDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    a = courses.get_assignment(session, course=course, name=name)
    subs = submissions.submissions_of_assignment(session, assignment=a)
    submissions.enqueue_regrade(session, submissions=subs, max_attempts=ctx.settings.max_attempts)
    session.commit()
    return RedirectResponse(f"/submissions?assignment={quote(name)}", status_code=303)


def _parse_time(raw: str) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{raw!r} is not a date and time (YYYY-MM-DDTHH:MM)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@router.get("/assignments")
def assignments_page(request: Request, auth: Staff, course: CourseDep, session: SessionDep) -> Response:
    return page(
        request,
        "assignments.html",
        auth,
        assignments=courses.list_assignments(session, course=course),
        course=course,
        scheme=courses.scheme_of(course),
        policy=courses.policy_of(course),
    )


@router.post("/assignments/{name}/deadline")
def set_deadline(
    name: str,
    auth: Staff,
    course: CourseDep,
    session: SessionDep,
    deadline: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    a = courses.get_assignment(session, course=course, name=name)
    courses.set_deadline(session, assignment=a, deadline=_parse_time(deadline))
    session.commit()
    return RedirectResponse("/assignments", status_code=303)


@router.get("/exam")
def exam_page(request: Request, auth: Staff, course: CourseDep, session: SessionDep) -> Response:
    book = gradebook.compute_gradebook(session, course=course)
    return page(request, "exam.html", auth, book=book)


@router.post("/exam")
async def save_exam(request: Request, auth: Staff, course: CourseDep, session: SessionDep) -> Response:
    """Bulk exam entry: fields ``exam:<username>``; only changed values are written (and audited)."""
    form = await request.form()
    check_csrf(auth.data, str(form.get("csrf_token", "")))
    current = {r.username: r.exam for r in gradebook.compute_gradebook(session, course=course).students}
    for key, raw in form.multi_items():
        if not key.startswith("exam:"):
            continue
        username = key[5:]
        points = _parse_points(str(raw), username)
        if points is None or username not in current or points == current[username]:
            continue
        student = users.get_user(session, username=username)
        grades.set_exam_points(session, course=course, student=student, points=points, actor=auth.user)
    session.commit()
    return RedirectResponse("/exam", status_code=303)


@router.get("/extensions")
def extensions_page(request: Request, auth: Staff, course: CourseDep, session: SessionDep) -> Response:
    return page(
        request,
        "extensions.html",
        auth,
        extensions=grades.list_extensions(session, course=course),
        assignments=courses.list_assignments(session, course=course),
        students=users.list_users(session, role=Role.student),
    )


@router.post("/extensions")
def grant_extension(
    auth: Staff,
    course: CourseDep,
    session: SessionDep,
    assignment: Annotated[str, Form()],
    username: Annotated[str, Form()],
    deadline: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    when = _parse_time(deadline)
    if when is None:
        raise InvalidInput("give the new deadline")
    grades.grant_extension(
        session,
        assignment=courses.get_assignment(session, course=course, name=assignment),
        student=users.get_user(session, username=username),
        deadline=when,
        reason=reason,
        actor=auth.user,
    )
    session.commit()
    return RedirectResponse("/extensions", status_code=303)


@router.post("/extensions/revoke")
def revoke_extension(
    auth: Staff,
    course: CourseDep,
    session: SessionDep,
    assignment: Annotated[str, Form()],
    username: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    grades.revoke_extension(
        session,
        assignment=courses.get_assignment(session, course=course, name=assignment),
        student=users.get_user(session, username=username),
        actor=auth.user,
    )
    session.commit()
    return RedirectResponse("/extensions", status_code=303)
