"""Admin pages for the course: grading scheme (built-in or edited), late policy, deadlines, what students see
before release, and closing the course (``server.services.courses`` and ``course_state``, as the API does).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from server.api.deps import CourseDep, SessionDep, SessionRoute
from server.errors import InvalidInput
from server.models import Course
from server.pages.admin_users import Csrf, FieldText
from server.pages.routes import (
    Admin,
    PageAuth,
    _parse_time,
    check_csrf,
    confirm_page,
    notice,
    page,
    parse_number,
)
from server.schemas import validation_message
from server.scheme import BUILTIN_SCHEMES, CoursePolicy, GradingScheme
from server.services import course_state, courses

router = APIRouter(include_in_schema=False, route_class=SessionRoute)


def _course_page(
    request: Request,
    auth: PageAuth,
    session: Session,
    course: Course,
    *,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int | None = None,
) -> Response:
    scheme, policy = courses.scheme_of(course), courses.policy_of(course)
    current = {
        "name": scheme.name,
        "homework_points": f"{scheme.homework_points:g}",
        "num_homeworks": str(scheme.num_homeworks),
        "exam_points": f"{scheme.exam_points:g}",
        "grade_divisor": f"{scheme.grade_divisor:g}",
        "grade_offset": f"{scheme.grade_offset:g}",
        "max_grade": "" if scheme.max_grade is None else str(scheme.max_grade),
        "counting": policy.counting,
        "late_penalty_percent": f"{policy.late_penalty_per_day * 100:g}",
        "late_max_days": "" if policy.late_max_days is None else str(policy.late_max_days),
        "grace_minutes": f"{policy.grace_minutes:g}",
    }
    current.update(typed or {})
    assignments = courses.list_assignments(session, course=course)
    return page(
        request,
        "admin_course.html",
        auth,
        status_code=status_code or (InvalidInput.status_code if errors else 200),
        course=course,
        scheme=scheme,
        builtins=BUILTIN_SCHEMES,
        typed=current,
        assignments=assignments,
        errors=errors or {},
        notice=notice,
        closed=course_state.is_closed(course),
    )


@router.get("/admin/course")
def course_page(request: Request, auth: Admin, course: CourseDep, session: SessionDep, done: str = "") -> Response:
    return _course_page(request, auth, session, course, notice=notice(done))


@router.post("/admin/course/scheme")
def save_scheme(
    request: Request,
    auth: Admin,
    course: CourseDep,
    session: SessionDep,
    builtin: FieldText = "",
    name: FieldText = "",
    homework_points: FieldText = "",
    num_homeworks: FieldText = "",
    exam_points: FieldText = "",
    grade_divisor: FieldText = "",
    grade_offset: FieldText = "",
    max_grade: FieldText = "",
    csrf_token: Csrf = "",
) -> Response:
    """A built-in scheme by name (``builtin``), or the numbers as edited."""
    check_csrf(auth.data, csrf_token)
    typed = {
        "name": name,
        "homework_points": homework_points,
        "num_homeworks": num_homeworks,
        "exam_points": exam_points,
        "grade_divisor": grade_divisor,
        "grade_offset": grade_offset,
        "max_grade": max_grade,
    }
    try:
        if builtin:
            if builtin not in BUILTIN_SCHEMES:
                raise InvalidInput(f"unknown scheme {builtin!r}; built-in: {', '.join(BUILTIN_SCHEMES)}")
            scheme: GradingScheme | str = builtin
            typed = {}
        else:
            values = {
                "name": name.strip() or "custom",
                "homework_points": parse_number(homework_points, "points per homework"),
                "num_homeworks": parse_number(num_homeworks, "homeworks", integer=True),
                "exam_points": parse_number(exam_points, "exam points"),
                "grade_divisor": parse_number(grade_divisor, "divisor"),
                "grade_offset": parse_number(grade_offset or "0", "offset"),
                "max_grade": parse_number(max_grade, "highest grade", integer=True, optional=True),
            }
            try:
                scheme = GradingScheme.model_validate(values)
            except ValidationError as exc:
                raise InvalidInput(validation_message(exc)) from None
        courses.update_course(session, course=course, scheme=scheme)
    except InvalidInput as exc:
        session.rollback()
        return _course_page(request, auth, session, course, errors={"scheme": exc.message}, typed=typed)
    session.commit()
    return RedirectResponse("/admin/course?done=scheme#scheme", status_code=303)


@router.post("/admin/course/policy")
def save_policy(
    request: Request,
    auth: Admin,
    course: CourseDep,
    session: SessionDep,
    counting: FieldText = "",
    late_penalty_percent: FieldText = "",
    late_max_days: FieldText = "",
    grace_minutes: FieldText = "",
    csrf_token: Csrf = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    typed = {
        "counting": counting,
        "late_penalty_percent": late_penalty_percent,
        "late_max_days": late_max_days,
        "grace_minutes": grace_minutes,
    }
    try:
        percent = parse_number(late_penalty_percent, "late penalty per day")
        if not 0 <= percent <= 100:
            raise InvalidInput(f"late penalty per day: give a percentage from 0 to 100, got {percent:g}")
        values = {
            "counting": counting,
            "late_penalty_per_day": percent / 100,
            "late_max_days": parse_number(late_max_days, "days until zero", integer=True, optional=True),
            "grace_minutes": parse_number(grace_minutes or "0", "grace minutes"),
        }
        try:
            policy = CoursePolicy.model_validate(values)
        except ValidationError as exc:
            raise InvalidInput(validation_message(exc)) from None
        courses.update_course(session, course=course, policy=policy)
    except InvalidInput as exc:
        session.rollback()
        return _course_page(request, auth, session, course, errors={"policy": exc.message}, typed=typed)
    session.commit()
    return RedirectResponse("/admin/course?done=policy#policy", status_code=303)


@router.post("/admin/course/deadlines")
async def save_deadlines(request: Request, auth: Admin, course: CourseDep, session: SessionDep) -> Response:
    """Fields ``deadline:<assignment>`` (UTC, empty: none). All or nothing: one mistake saves none."""
    form = await request.form()
    check_csrf(auth.data, str(form.get("csrf_token", "")))
    typed: dict[str, str] = {}
    errors: dict[str, str] = {}
    changes = []
    for a in courses.list_assignments(session, course=course):
        raw = form.get(f"deadline:{a.name}")
        if not isinstance(raw, str):
            continue
        typed[f"deadline:{a.name}"] = raw[:64]
        try:
            when = _parse_time(raw[:64])
        except InvalidInput as exc:
            errors[f"deadline:{a.name}"] = exc.message
            continue
        if when != a.deadline:
            changes.append((a, when))
    if errors:
        return _course_page(request, auth, session, course, errors=errors, typed=typed)
    for a, when in changes:
        courses.set_deadline(session, assignment=a, deadline=when)
    session.commit()
    return RedirectResponse("/admin/course?done=deadlines#deadlines", status_code=303)


@router.post("/admin/course/visibility")
def save_visibility(
    request: Request,
    auth: Admin,
    course: CourseDep,
    session: SessionDep,
    auto_results: FieldText = "",
    csrf_token: Csrf = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    if auto_results not in ("show", "hide"):
        message = "choose whether students see their automatic results before release"
        return _course_page(request, auth, session, course, errors={"visibility": message})
    course_state.set_auto_results_before_release(
        session, course=course, visible=auto_results == "show", actor=auth.user
    )
    session.commit()
    return RedirectResponse("/admin/course?done=visibility#visibility", status_code=303)


def _close_confirmation(
    request: Request, auth: PageAuth, session: Session, course: Course, error: str | None = None
) -> Response:
    unreleased = [a.name for a in courses.list_assignments(session, course=course) if not a.grades_released]
    details = ["Students' totals and final grades are no longer marked provisional.", "You can reopen the course."]
    if unreleased:
        details.insert(
            0,
            f"Not released yet: {', '.join(unreleased)}. Students' totals count released homeworks only, "
            "so release them first (Assignments page).",
        )
    return confirm_page(
        request,
        auth,
        title=f"Close {course.title}?",
        message="Closing the course makes every student's total and final grade final.",
        details=details,
        action="/admin/course/close",
        button="Close the course",
        back="/admin/course",
        error=error,
    )


@router.get("/admin/course/close")
def confirm_close(request: Request, auth: Admin, course: CourseDep, session: SessionDep) -> Response:
    return _close_confirmation(request, auth, session, course)


@router.post("/admin/course/close")
def close_course(
    request: Request,
    auth: Admin,
    course: CourseDep,
    session: SessionDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Csrf = "",
) -> Response:
    check_csrf(auth.data, csrf_token)
    if confirm != "yes":
        return _close_confirmation(request, auth, session, course, error="Tick the box to confirm.")
    course_state.set_closed(session, course=course, closed=True, actor=auth.user)
    session.commit()
    return RedirectResponse("/admin/course?done=closed#state", status_code=303)


@router.post("/admin/course/reopen")
def reopen_course(auth: Admin, course: CourseDep, session: SessionDep, csrf_token: Csrf = "") -> Response:
    check_csrf(auth.data, csrf_token)
    course_state.set_closed(session, course=course, closed=False, actor=auth.user)
    session.commit()
    return RedirectResponse("/admin/course?done=reopened#state", status_code=303)
