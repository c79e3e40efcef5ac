"""Assignments: list, deadlines, regrade of all submissions, reload from the assignments folder."""

from __future__ import annotations

from fastapi import APIRouter, status

from server.api.deps import AdminUser, CourseDep, Ctx, CurrentUser, SessionDep, SessionRoute, StaffUser
from server.models import Assignment
from server.schemas import AssignmentOut, AssignmentUpdate, RegradeOut, RubricItemOut
from server.services import courses, submissions

router = APIRouter(prefix="/assignments", tags=["assignments"], route_class=SessionRoute)


def assignment_out(a: Assignment) -> AssignmentOut:
    return AssignmentOut(
        name=a.name,
        title=a.title,
        points=a.points,
        deadline=a.deadline,
        items=[RubricItemOut.model_validate(i) for i in a.rubric],
    )


@router.get("", response_model=list[AssignmentOut])
def list_assignments(_: CurrentUser, course: CourseDep, session: SessionDep) -> list[AssignmentOut]:
    return [assignment_out(a) for a in courses.list_assignments(session, course=course)]


@router.put("/{name}", response_model=AssignmentOut)
def update_assignment(
    name: str, body: AssignmentUpdate, _: StaffUser, course: CourseDep, session: SessionDep
) -> AssignmentOut:
    """Set or clear the deadline (late flags are recomputed)."""
    a = courses.get_assignment(session, course=course, name=name)
    courses.set_deadline(session, assignment=a, deadline=body.deadline)
    session.commit()
    return assignment_out(a)


@router.post("/{name}/regrade", response_model=RegradeOut, status_code=status.HTTP_202_ACCEPTED)
def regrade_all(name: str, _: StaffUser, course: CourseDep, ctx: Ctx, session: SessionDep) -> RegradeOut:
    """Queue a regrade of every submission of the assignment; manual points are kept."""
    a = courses.get_assignment(session, course=course, name=name)
    subs = submissions.submissions_of_assignment(session, assignment=a)
    n = submissions.enqueue_regrade(session, submissions=subs, max_attempts=ctx.settings.max_attempts)
    session.commit()
    return RegradeOut(queued=n)


@router.post("/load", response_model=list[AssignmentOut])
def load_from_folder(_: AdminUser, course: CourseDep, ctx: Ctx, session: SessionDep) -> list[AssignmentOut]:
    """Re-read the assignments folder (titles, points and rubrics; deadlines are kept)."""
    loaded = courses.load_assignments(session, course=course, assignments_dir=ctx.settings.assignments_dir)
    session.commit()
    return [assignment_out(a) for a in loaded]
