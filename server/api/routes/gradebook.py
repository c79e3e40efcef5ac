"""The gradebook (JSON and CSV), exam scores, extensions and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from pydantic_core import to_json
from sqlalchemy import select
from sqlalchemy.orm import aliased

from server.api.deps import CourseDep, Ctx, CurrentUser, PageDep, SessionDep, SessionRoute, StaffUser
from server.errors import PermissionDenied
from server.models import Assignment, AuditLog, Extension, Role, User
from server.schemas import (
    AuditOut,
    ExamIn,
    ExamOut,
    ExtensionIn,
    ExtensionOut,
    GradebookOut,
    GradebookRow,
    Name,
    Timestamp,
    Username,
    error_responses,
)
from server.services import course_state, courses, gradebook, gradebook_cache, grades, users
from server.services.gradebook import StudentRow

router = APIRouter(tags=["gradebook"], route_class=SessionRoute, responses=error_responses(400, 401, 403, 404, 422))


def row_json(row: StudentRow) -> dict[str, Any]:
    """A :class:`GradebookRow` as plain data. The values come from our own computation, typed already;
    pydantic models for 3,000 cells per request (500 students x 6 homeworks) cost more than computing them."""
    return {
        "username": row.username,
        "full_name": row.full_name,
        "homeworks": {name: cell.points for name, cell in row.homeworks.items()},
        "exam": row.exam,
        "total": row.total,
        "final_grade": row.final_grade,
        "provisional": row.provisional,
        "details": {
            name: {
                "submission_id": c.submission_id,
                "raw_points": c.raw_points,
                "late": c.late,
                "days_late": c.days_late,
                "pending_manual": c.pending_manual,
                "grading": c.grading,
                "submissions": c.submissions,
                "released": c.released,
            }
            for name, c in row.homeworks.items()
        },
    }


def _json_frame(book: gradebook.Gradebook) -> tuple[bytes, bytes]:
    head = to_json({"scheme": book.scheme, "policy": book.policy, "assignments": [a.name for a in book.assignments]})
    return head[:-1] + b',"students":[', b"]}"


# Serialised straight from plain data in pydantic's serializer; GradebookOut is for the docs.
_JSON = gradebook_cache.Format(frame=_json_frame, row=lambda r: to_json(row_json(r)), separator=b",")
_CSV = gradebook_cache.Format(
    frame=lambda book: (gradebook.csv_header(book).encode(), b""), row=lambda r: gradebook.csv_row(r).encode()
)


def _served(ctx: Ctx, session: SessionDep, course: CourseDep, name: str, fmt: gradebook_cache.Format) -> bytes:
    return ctx.gradebooks.get(
        session,
        course=course,
        name=name,
        fmt=fmt,
        compute=lambda user_ids: gradebook.compute_gradebook(session, course=course, user_ids=user_ids),
    )


@router.get("/gradebook", response_model=GradebookOut)
def get_gradebook(_: StaffUser, course: CourseDep, session: SessionDep, ctx: Ctx) -> Response:
    """Every student's homework points, exam, total and final grade, with late and pending markers."""
    return Response(_served(ctx, session, course, "json", _JSON), media_type="application/json")


@router.get("/gradebook.csv", response_class=Response)
def get_gradebook_csv(_: StaffUser, course: CourseDep, session: SessionDep, ctx: Ctx) -> Response:
    return Response(
        _served(ctx, session, course, "csv", _CSV),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{course.slug}-gradebook.csv"'},
    )


@router.get("/grades/me", response_model=GradebookRow)
def my_grades(user: CurrentUser, course: CourseDep, session: SessionDep) -> GradebookRow:
    """A student's own row of the gradebook, from released grades (see :func:`gradebook.compute_gradebook`)."""
    if user.role != Role.student:
        raise PermissionDenied("only students have grades")
    book = gradebook.compute_gradebook(session, course=course, user_ids=[user.id], released_only=True)
    return GradebookRow.model_validate(row_json(course_state.student_row(book.students[0], course=course)))


@router.put("/gradebook/{username}/exam", response_model=ExamOut)
def set_exam(username: Username, body: ExamIn, user: StaffUser, course: CourseDep, session: SessionDep) -> ExamOut:
    student = users.get_user(session, username=username)
    row = grades.set_exam_points(
        session, course=course, student=student, points=body.points, actor=user, reason=body.reason
    )
    session.commit()
    return ExamOut(username=username, points=row.points)


@router.get("/extensions", response_model=list[ExtensionOut])
def list_extensions(_: StaffUser, course: CourseDep, session: SessionDep, page: PageDep) -> list[ExtensionOut]:
    """Extensions by assignment, in the order they were granted."""
    q = (
        select(Extension.deadline, Extension.reason, User.username, Assignment.name)
        .join(User, Extension.user_id == User.id)
        .join(Assignment, Extension.assignment_id == Assignment.id)
        .where(Assignment.course_id == course.id)
        .order_by(Assignment.position, Extension.id)
        .limit(page.limit)
        .offset(page.offset)
    )
    return [
        ExtensionOut(username=username, assignment=name, deadline=deadline, reason=reason)
        for deadline, reason, username, name in session.execute(q)
    ]


@router.put("/extensions/{assignment}/{username}", response_model=ExtensionOut)
def grant_extension(
    assignment: Name, username: Username, body: ExtensionIn, user: StaffUser, course: CourseDep, session: SessionDep
) -> ExtensionOut:
    a = courses.get_assignment(session, course=course, name=assignment)
    student = users.get_user(session, username=username)
    ext = grades.grant_extension(
        session, assignment=a, student=student, deadline=body.deadline, reason=body.reason, actor=user
    )
    session.commit()
    return ExtensionOut(username=username, assignment=assignment, deadline=ext.deadline, reason=ext.reason)


@router.delete("/extensions/{assignment}/{username}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_extension(
    assignment: Name, username: Username, user: StaffUser, course: CourseDep, session: SessionDep
) -> None:
    a = courses.get_assignment(session, course=course, name=assignment)
    grades.revoke_extension(session, assignment=a, student=users.get_user(session, username=username), actor=user)
    session.commit()


@router.get("/audit", response_model=list[AuditOut])
def audit_log(
    _: StaffUser,
    session: SessionDep,
    page: PageDep,
    username: Username | None = None,
    since: Timestamp | None = None,
) -> list[AuditOut]:
    """Grade changes, newest first."""
    student = aliased(User)
    q = (
        select(AuditLog, student.username)
        .outerjoin(student, AuditLog.student_id == student.id)
        .order_by(AuditLog.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    )
    if username:
        q = q.where(student.username == username)
    if since:
        q = q.where(AuditLog.at >= since)
    return [
        AuditOut(
            at=e.at,
            actor=e.actor,
            student=name,
            entity=e.entity,
            key=e.key,
            old_value=e.old_value,
            new_value=e.new_value,
            reason=e.reason,
        )
        for e, name in session.execute(q)
    ]
