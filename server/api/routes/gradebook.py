"""The gradebook (JSON and CSV), exam scores, extensions and the audit log."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from sqlalchemy import select
from sqlalchemy.orm import aliased

from server.api.deps import CourseDep, CurrentUser, SessionDep, SessionRoute, StaffUser
from server.errors import PermissionDenied
from server.models import AuditLog, Role, User
from server.schemas import (
    AuditOut,
    ExamIn,
    ExamOut,
    ExtensionIn,
    ExtensionOut,
    GradebookOut,
    GradebookRow,
    HomeworkDetail,
)
from server.services import courses, gradebook, grades, users
from server.services.gradebook import Gradebook, StudentRow

router = APIRouter(tags=["gradebook"], route_class=SessionRoute)


def row_out(row: StudentRow) -> GradebookRow:
    # model_construct: the values come from our own computation, typed already; validating 3,000
    # cells per request (500 students x 6 homeworks) would cost more than computing them.
    return GradebookRow.model_construct(
        username=row.username,
        full_name=row.full_name,
        homeworks={name: cell.points for name, cell in row.homeworks.items()},
        exam=row.exam,
        total=row.total,
        final_grade=row.final_grade,
        details={
            name: HomeworkDetail.model_construct(
                submission_id=c.submission_id,
                raw_points=c.raw_points,
                late=c.late,
                days_late=c.days_late,
                pending_manual=c.pending_manual,
                grading=c.grading,
                submissions=c.submissions,
            )
            for name, c in row.homeworks.items()
        },
    )


def book_out(book: Gradebook) -> GradebookOut:
    return GradebookOut(
        scheme=book.scheme,
        policy=book.policy,
        assignments=[a.name for a in book.assignments],
        students=[row_out(r) for r in book.students],
    )


@router.get("/gradebook", response_model=GradebookOut)
def get_gradebook(_: StaffUser, course: CourseDep, session: SessionDep) -> Response:
    """Every student's homework points, exam, total and final grade, with late and pending markers."""
    book = book_out(gradebook.compute_gradebook(session, course=course))
    # Already validated: skip FastAPI's second validation pass (a third of the time at 500 students).
    return Response(book.model_dump_json(), media_type="application/json")


@router.get("/gradebook.csv", response_class=Response)
def get_gradebook_csv(_: StaffUser, course: CourseDep, session: SessionDep) -> Response:
    text = gradebook.to_csv(gradebook.compute_gradebook(session, course=course))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{course.slug}-gradebook.csv"'},
    )


@router.get("/grades/me", response_model=GradebookRow)
def my_grades(user: CurrentUser, course: CourseDep, session: SessionDep) -> GradebookRow:
    """A student's own row of the gradebook."""
    if user.role != Role.student:
        raise PermissionDenied("only students have grades")
    book = gradebook.compute_gradebook(session, course=course, user_id=user.id)
    return row_out(book.students[0])


@router.put("/gradebook/{username}/exam", response_model=ExamOut)
def set_exam(username: str, body: ExamIn, user: StaffUser, course: CourseDep, session: SessionDep) -> ExamOut:
    student = users.get_user(session, username=username)
    row = grades.set_exam_points(
        session, course=course, student=student, points=body.points, actor=user, reason=body.reason
    )
    session.commit()
    return ExamOut(username=username, points=row.points)


@router.get("/extensions", response_model=list[ExtensionOut])
def list_extensions(_: StaffUser, course: CourseDep, session: SessionDep) -> list[ExtensionOut]:
    return [
        ExtensionOut(username=e.user.username, assignment=e.assignment.name, deadline=e.deadline, reason=e.reason)
        for e in grades.list_extensions(session, course=course)
    ]


@router.put("/extensions/{assignment}/{username}", response_model=ExtensionOut)
def grant_extension(
    assignment: str, username: str, body: ExtensionIn, user: StaffUser, course: CourseDep, session: SessionDep
) -> ExtensionOut:
    a = courses.get_assignment(session, course=course, name=assignment)
    student = users.get_user(session, username=username)
    ext = grades.grant_extension(
        session, assignment=a, student=student, deadline=body.deadline, reason=body.reason, actor=user
    )
    session.commit()
    return ExtensionOut(username=username, assignment=assignment, deadline=ext.deadline, reason=ext.reason)


@router.delete("/extensions/{assignment}/{username}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_extension(assignment: str, username: str, user: StaffUser, course: CourseDep, session: SessionDep) -> None:
    a = courses.get_assignment(session, course=course, name=assignment)
    grades.revoke_extension(session, assignment=a, student=users.get_user(session, username=username), actor=user)
    session.commit()


@router.get("/audit", response_model=list[AuditOut])
def audit_log(
    _: StaffUser,
    session: SessionDep,
    username: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> list[AuditOut]:
    """Grade changes, newest first."""
    student = aliased(User)
    q = (
        select(AuditLog, student.username)
        .outerjoin(student, AuditLog.student_id == student.id)
        .order_by(AuditLog.id.desc())
        .limit(min(limit, 5000))
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
