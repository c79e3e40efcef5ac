"""HTML pages for students (upload, status, feedback) and TAs (gradebook, grading, statistics, exam,
extensions); the admin pages are in :mod:`server.pages.admin`.

Pages authenticate with the signed session cookie; every form post carries the session's CSRF token.
A form with a mistake comes back with the error beside it and everything that was typed; an action that
cannot be undone (regrade all, deactivate, revoke, close) asks for a confirmation on a page of its own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.orm import Session

from server import render
from server.api.deps import (
    SESSION_COOKIE,
    AppContext,
    CourseDep,
    Ctx,
    SessionDep,
    SessionRoute,
    login_allowed,
    session_user,
)
from server.core.security import SessionData
from server.errors import InvalidInput, NotAuthenticated, PermissionDenied
from server.models import Role, Submission, User
from server.pages.charts import histogram_svg
from server.schemas import Id, ItemPointsIn, Name, Reason, SearchText, Username, validation_message
from server.services import course_state, courses, gradebook, grades, questions, queue_wait, stats, submissions, users

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
TEMPLATES.env.filters["pts"] = lambda v: "–" if v is None else f"{v:g}"
TEMPLATES.env.filters["when"] = lambda d: "–" if d is None else d.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
TEMPLATES.env.filters["about"] = queue_wait.about
TEMPLATES.env.filters["ordinal"] = lambda n: (
    f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
)

PAGE_SIZE = 100  # rows per page of the submission lists

router = APIRouter(include_in_schema=False, route_class=SessionRoute)


class PageAuth:
    """The page user and the cookie session (for its CSRF token)."""

    def __init__(self, user: User, data: SessionData) -> None:
        self.user = user
        self.data = data

    @property
    def is_staff(self) -> bool:
        return self.user.role in (Role.ta, Role.admin)

    @property
    def is_admin(self) -> bool:
        return self.user.role == Role.admin


def page_auth(request: Request, ctx: Ctx, session: SessionDep) -> PageAuth:
    found = session_user(request, ctx, session)
    if found is None:
        raise NotAuthenticated("log in first")
    return PageAuth(*found)


Auth = Annotated[PageAuth, Depends(page_auth)]


def staff(auth: Auth) -> PageAuth:
    if not auth.is_staff:
        raise PermissionDenied("this page is for TAs")
    return auth


Staff = Annotated[PageAuth, Depends(staff)]


def admin(auth: Auth) -> PageAuth:
    if not auth.is_admin:
        raise PermissionDenied("this page is for admins")
    return auth


Admin = Annotated[PageAuth, Depends(admin)]


def check_csrf(data: SessionData, token: str) -> None:
    if not token or token != data.csrf:
        raise PermissionDenied("the form expired or came from another site; reload the page and try again")


def page(request: Request, name: str, auth: PageAuth | None, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.update(request=request, user=auth.user if auth else None, csrf=auth.data.csrf if auth else "")
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)


def confirm_page(
    request: Request,
    auth: PageAuth,
    *,
    title: str,
    message: str,
    action: str,
    button: str,
    back: str,
    details: list[str] | None = None,
    error: str | None = None,
) -> HTMLResponse:
    """Ask before an action that cannot be undone: the form posts ``confirm=yes`` only with the box ticked."""
    return page(
        request,
        "confirm.html",
        auth,
        status_code=InvalidInput.status_code if error else 200,
        title=title,
        message=message,
        action=action,
        button=button,
        back=back,
        details=details or [],
        error=error,
    )


class Pager:
    """Page ``number`` (from 1) of a newest-first list, read one row beyond the page to know if more follow."""

    def __init__(self, number: int, size: int = PAGE_SIZE) -> None:
        self.number = max(1, number)
        self.size = size
        self.has_next = False
        self.shown = 0

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def limit(self) -> int:
        return self.size + 1

    def take(self, rows: list[Any]) -> list[Any]:
        self.has_next = len(rows) > self.size
        self.shown = min(len(rows), self.size)
        return rows[: self.size]

    @property
    def first(self) -> int:
        return self.offset + 1


PageNumber = Annotated[int, Query(ge=1, le=100_000, alias="page")]


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
def login_form(request: Request, ctx: Ctx, next: str | None = None, password: str | None = None) -> Response:
    data = ctx.signer.loads(request.cookies.get(SESSION_COOKIE)) or ctx.signer.new(None)
    notice = "Your password is set. Log in with it." if password == "set" else None
    response = TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"csrf": data.csrf, "next": _safe_next(next), "error": None, "user": None, "notice": notice},
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
    else:
        login_allowed(request, ctx, username)
        user = users.authenticate(session, username=username, password=password, passwords=ctx.passwords)
        if user is not None:
            sid = users.start_session(session, user=user, ttl_s=ctx.settings.session_ttl_s)
            session.commit()
            redirect = RedirectResponse(_safe_next(next), status_code=303)
            _set_session(redirect, ctx, ctx.signer.new(user.id, sid))  # a fresh session: no fixation
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
def logout(auth: Auth, session: SessionDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    """End the session on the server too: a copy of the cookie is worthless afterwards."""
    check_csrf(auth.data, csrf_token)
    users.end_session(session, secret=auth.data.sid)
    session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(auth: Auth) -> Response:
    return RedirectResponse("/gradebook" if auth.is_staff else "/me", status_code=303)


@router.get("/me")
def student_home(
    request: Request,
    auth: Auth,
    course: CourseDep,
    session: SessionDep,
    page_number: PageNumber = 1,
) -> Response:
    if auth.is_staff:
        return RedirectResponse("/gradebook", status_code=303)
    user = auth.user
    assignments = courses.list_assignments(session, course=course)
    deadlines = {a.name: submissions.effective_deadline(session, assignment=a, user_id=user.id) for a in assignments}
    pager = Pager(page_number)
    subs = pager.take(
        submissions.list_submissions(session, viewer=user, course=course, limit=pager.limit, offset=pager.offset)
    )
    book = gradebook.compute_gradebook(session, course=course, user_ids=[user.id], released_only=True)
    row = course_state.student_row(book.students[0], course=course) if book.students else None
    assignments_dir = request.app.state.ctx.settings.assignments_dir
    return page(
        request,
        "student.html",
        auth,
        assignments=assignments,
        templates={a.name for a in assignments if courses.template_path(a, assignments_dir=assignments_dir)},
        deadlines=deadlines,
        subs=subs,
        status_of=submissions.status_of,
        score_of=lambda sub: grades.visible_score(sub, viewer=user),
        row=row,
        scheme=book.scheme,
        course=course,
        pager=pager,
        max_upload_mib=request.app.state.ctx.settings.max_upload_bytes // (1024 * 1024),
    )


def _notebook_data(ctx: AppContext, sub: Submission) -> bytes:
    """The notebook as the grader executed it, or as uploaded until then."""
    return ctx.store.read(sub.executed_sha256) if sub.executed_sha256 else submissions.get_file(ctx.store, sub)


def _submission_context(session: Session, sub_id: int, auth: PageAuth, ctx: AppContext) -> dict[str, Any]:
    sub = submissions.get_submission(session, submission_id=sub_id, viewer=auth.user)
    results_hidden = not grades.auto_results_visible(sub, viewer=auth.user)
    # What the grader's run printed is a result too: while results are hidden, the notebook as uploaded.
    executed = sub.executed_sha256 is not None and not results_hidden
    try:
        data = _notebook_data(ctx, sub) if executed else submissions.get_file(ctx.store, sub)
        nb_html = render.notebook(data)
    except Exception:
        nb_html = None
    return {
        "sub": sub,
        "items": grades.item_views(sub, viewer=auth.user),
        "status": submissions.status_of(sub),
        "job": submissions.latest_job(sub),
        "total": grades.visible_score(sub, viewer=auth.user),
        "max_total": sub.max_points,
        "notebook_html": nb_html,
        "executed": executed,
        "has_full_report": sub.report is not None and _report_renderer() is not None and not results_hidden,
        "results_hidden": results_hidden,
        "wait": _queue_wait(session, sub),
        "markdown": render.markdown,
        "error": None,
        "typed": {},  # the grading form's fields as typed, when they come back with an error
    }


def _queue_wait(session: Session, sub: Submission) -> queue_wait.QueueWait | None:
    job = submissions.latest_job(sub)
    return queue_wait.queue_wait(session, job=job) if job is not None else None


@router.get("/submissions/{sub_id}")
def submission_page(request: Request, sub_id: Id, auth: Auth, ctx: Ctx, session: SessionDep) -> Response:
    return page(request, "submission.html", auth, **_submission_context(session, sub_id, auth, ctx))


def _report_renderer() -> Any:
    try:
        from grader.report import render_html
    except ImportError:
        return None
    return render_html


@router.get("/submissions/{sub_id}/report")
def full_report(sub_id: Id, auth: Auth, session: SessionDep) -> Response:
    """The grading pipeline's own HTML feedback report, under a CSP that allows no scripts."""
    sub = submissions.get_submission(session, submission_id=sub_id, viewer=auth.user)
    render_html = _report_renderer()
    if sub.report is None or render_html is None or not grades.auto_results_visible(sub, viewer=auth.user):
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
async def grade_submission(request: Request, sub_id: Id, auth: Staff, ctx: Ctx, session: SessionDep) -> Response:
    """Manual points per rubric item: fields ``points:<id>``, ``reason:<id>``, ``comment:<id>``.

    A mistake saves nothing and shows the page again with the error and everything that was typed."""
    form = await request.form()
    check_csrf(auth.data, str(form.get("csrf_token", "")))
    sub = submissions.get_submission(session, submission_id=sub_id, viewer=auth.user)
    try:
        for item in sub.items:
            key = f"points:{item.item_id}"
            if key not in form:
                continue
            try:
                entry = ItemPointsIn(
                    points=_parse_points(str(form[key]), item.item_id),
                    reason=str(form.get(f"reason:{item.item_id}", "")),
                    comment=str(form.get(f"comment:{item.item_id}", "")).strip() or None,
                )
            except ValidationError as exc:
                raise InvalidInput(f"{item.item_id}: {validation_message(exc)}") from None
            if entry.points == item.manual_points and entry.comment == item.manual_comment:
                continue
            grades.set_item_points(
                session,
                submission=sub,
                item_id=item.item_id,
                points=entry.points,
                reason=entry.reason,
                comment=entry.comment,
                actor=auth.user,
            )
    except InvalidInput as exc:
        session.rollback()
        context = _submission_context(session, sub_id, auth, ctx)
        typed = {k: str(v) for k, v in form.items() if k.startswith(("points:", "reason:", "comment:"))}
        context.update(error=exc.message, typed=typed)
        return page(request, "submission.html", auth, status_code=exc.status_code, **context)
    session.commit()
    return RedirectResponse(f"/submissions/{sub_id}", status_code=303)


@router.post("/submissions/{sub_id}/regrade")
def regrade_submission(
    sub_id: Id, auth: Staff, ctx: Ctx, session: SessionDep, csrf_token: Annotated[str, Form()] = ""
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
    assignment: SearchText = "",
    username: SearchText = "",
    page_number: PageNumber = 1,
) -> Response:
    if not auth.is_staff:
        return RedirectResponse("/me", status_code=303)
    pager = Pager(page_number)
    subs = pager.take(
        submissions.list_submissions(
            session,
            viewer=auth.user,
            course=course,
            assignment=assignment or None,
            username=username or None,
            limit=pager.limit,
            offset=pager.offset,
        )
    )
    return page(
        request,
        "submissions.html",
        auth,
        subs=subs,
        status_of=submissions.status_of,
        assignments=courses.list_assignments(session, course=course),
        assignment=assignment,
        username=username,
        pager=pager,
    )


def _regrade_confirmation(
    request: Request, auth: PageAuth, session: Session, a: Any, error: str | None = None
) -> Response:
    n = len(submissions.submissions_of_assignment(session, assignment=a))
    return confirm_page(
        request,
        auth,
        title=f"Regrade all of {a.name}?",
        message=f"Every submission of {a.name} ({n}) goes back into the grading queue and gets new automatic "
        "results; manual points and comments are kept.",
        details=["Students see their submissions as queued until the regrade is done."],
        action=f"/assignments/{quote(a.name)}/regrade",
        button=f"Regrade {n} submission{'' if n == 1 else 's'}",
        back="/gradebook",
        error=error,
    )


@router.get("/assignments/{name}/regrade")
def confirm_regrade_assignment(
    request: Request, name: Name, auth: Staff, course: CourseDep, session: SessionDep
) -> Response:
    a = courses.get_assignment(session, course=course, name=name)
    return _regrade_confirmation(request, auth, session, a)


@router.post("/assignments/{name}/regrade")
def regrade_assignment(
    request: Request,
    name: Name,
    auth: Staff,
    course: CourseDep,
    ctx: Ctx,
    session: SessionDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    a = courses.get_assignment(session, course=course, name=name)
    if confirm != "yes":
        return _regrade_confirmation(request, auth, session, a, error="Tick the box to confirm the regrade.")
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


# Fixed messages shown after a redirect (never text from the query string).
NOTICES = {
    "role": "Role changed.",
    "reactivated": "Reactivated: the user can log in again.",
    "deactivated": "Deactivated: the user's sessions ended and their tokens stopped working.",
    "revoked": "Token revoked.",
    "scheme": "Grading scheme saved; grades are recomputed from the stored scores.",
    "policy": "Late policy saved.",
    "deadlines": "Deadlines saved; late flags are recomputed.",
    "visibility": "Saved what students see before release.",
    "closed": "The course is closed: students' totals and final grades are final.",
    "reopened": "The course is open again: students' grades are provisional.",
}


def notice(key: str | None) -> str | None:
    return NOTICES.get(key or "")


def parse_number(raw: str, label: str, *, integer: bool = False, optional: bool = False) -> Any:
    raw = raw.strip().replace(",", ".")
    if not raw:
        if optional:
            return None
        raise InvalidInput(f"{label}: give a number")
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise InvalidInput(f"{label}: {raw!r} is not {kind}") from None


def _assignments_page(
    request: Request,
    auth: PageAuth,
    course: Any,
    session: Session,
    *,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    return page(
        request,
        "assignments.html",
        auth,
        status_code=InvalidInput.status_code if errors else 200,
        assignments=courses.list_assignments(session, course=course),
        course=course,
        scheme=courses.scheme_of(course),
        policy=courses.policy_of(course),
        errors=errors or {},
        typed=typed or {},
    )


@router.get("/assignments")
def assignments_page(request: Request, auth: Staff, course: CourseDep, session: SessionDep) -> Response:
    return _assignments_page(request, auth, course, session)


def _question_page(
    request: Request,
    auth: PageAuth,
    ctx: AppContext,
    question: questions.Question,
    submission_id: int | None,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    """One answer of the question (``submission_id``, else the first ungraded), with progress and navigation."""
    answers = question.answers
    if submission_id is not None:
        position: int | None = question.index_of(submission_id)
    else:
        first = question.next_ungraded()
        position = answers.index(first) if first else (0 if answers else None)
    answer = answers[position] if position is not None else None
    answer_html = None
    if answer is not None:
        try:
            data = _notebook_data(ctx, answer.submission)
            answer_html = render.notebook_cells(questions.answer_cells(data, question.item))
        except Exception:
            answer_html = None
    following = question.next_ungraded(position) if position is not None else None
    saved = answer.score if answer else None
    if typed is None:
        points = "" if saved is None or saved.manual_points is None else f"{saved.manual_points:g}"
        typed = {"points": points, "comment": (saved.manual_comment or "") if saved else ""}
    return page(
        request,
        "question.html",
        auth,
        question=question,
        answer=answer,
        position=position,
        answer_html=answer_html,
        next_ungraded=following if following is not answer else None,
        error=error,
        typed=typed,
        status_code=InvalidInput.status_code if error else 200,
    )


@router.get("/assignments/{name}/items/{item_id}")
def question_page(
    request: Request,
    name: Name,
    item_id: Name,
    auth: Staff,
    course: CourseDep,
    ctx: Ctx,
    session: SessionDep,
    submission: Id | None = None,
) -> Response:
    a = courses.get_assignment(session, course=course, name=name)
    question = questions.get_question(session, course=course, assignment=a, item_id=item_id)
    return _question_page(request, auth, ctx, question, submission)


@router.post("/assignments/{name}/items/{item_id}")
def grade_question(
    request: Request,
    name: Name,
    item_id: Name,
    auth: Staff,
    course: CourseDep,
    ctx: Ctx,
    session: SessionDep,
    submission: Annotated[Id, Form()],
    points: Annotated[str, Form(max_length=32)] = "",
    comment: Annotated[str, Form(max_length=10_000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Save one answer's points and comment, then go on to the next ungraded answer.

    A mistake (no points, out of range) shows the same answer again with the error and what was typed."""
    check_csrf(auth.data, csrf_token)
    a = courses.get_assignment(session, course=course, name=name)
    question = questions.get_question(session, course=course, assignment=a, item_id=item_id)
    position = question.index_of(submission)
    answer = question.answers[position]
    try:
        value = _parse_points(points, item_id)
        if value is None:
            raise InvalidInput(f"{item_id}: give the points (0 to {answer.score.max_points:g})")
        entry = ItemPointsIn(points=value, reason="", comment=comment.strip() or None)
        grades.set_item_points(
            session,
            submission=answer.submission,
            item_id=item_id,
            points=entry.points,
            comment=entry.comment,
            actor=auth.user,
        )
    except (InvalidInput, ValidationError) as exc:
        message = f"{item_id}: {validation_message(exc)}" if isinstance(exc, ValidationError) else exc.message
        session.rollback()
        return _question_page(
            request, auth, ctx, question, submission, error=message, typed={"points": points, "comment": comment}
        )
    session.commit()
    following = question.next_ungraded(position)
    target = f"/assignments/{quote(name)}/items/{quote(item_id)}"
    return RedirectResponse(f"{target}?submission={(following or answer).submission.id}", status_code=303)


@router.post("/assignments/{name}/release")
def release_grades(
    name: Name,
    auth: Staff,
    course: CourseDep,
    session: SessionDep,
    released: Annotated[bool, Form()] = True,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    a = courses.get_assignment(session, course=course, name=name)
    grades.release_grades(session, assignment=a, released=released, actor=auth.user)
    session.commit()
    return RedirectResponse("/assignments", status_code=303)


@router.post("/assignments/{name}/deadline")
def set_deadline(
    request: Request,
    name: Name,
    auth: Staff,
    course: CourseDep,
    session: SessionDep,
    deadline: Annotated[str, Form(max_length=64)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    a = courses.get_assignment(session, course=course, name=name)
    try:
        courses.set_deadline(session, assignment=a, deadline=_parse_time(deadline))
    except InvalidInput as exc:
        session.rollback()
        return _assignments_page(request, auth, course, session, errors={name: exc.message}, typed={name: deadline})
    session.commit()
    return RedirectResponse("/assignments", status_code=303)


@router.get("/gradebook/stats")
def stats_page(
    request: Request, auth: Staff, course: CourseDep, session: SessionDep, assignment: SearchText = ""
) -> Response:
    """Per homework and per rubric item: mean, median, a histogram, and which check failed most."""
    names = [a.name for a in courses.list_assignments(session, course=course) if a.is_homework]
    chosen = assignment if assignment in names else (names[0] if names else "")
    all_stats = stats.course_stats(session, course=course, detail=chosen or None)
    return page(
        request,
        "stats.html",
        auth,
        course=course,
        all_stats=all_stats,
        detail=next((s for s in all_stats if s.name == chosen), None),
        histogram=histogram_svg,
    )


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
    assignment: Annotated[Name, Form()],
    username: Annotated[Username, Form()],
    deadline: Annotated[str, Form(max_length=64)],
    reason: Annotated[Reason, Form()] = "",
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
    assignment: Annotated[Name, Form()],
    username: Annotated[Username, Form()],
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
