"""Course settings, users and roster import, queue state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile, status

from server.api.deps import AdminUser, CourseDep, Ctx, PageDep, SessionDep, SessionRoute, StaffUser
from server.errors import InvalidInput
from server.models import Course
from server.schemas import (
    CourseOut,
    CourseUpdate,
    QueueOut,
    RosterResult,
    UserCreate,
    Username,
    UserOut,
    UserUpdate,
    error_responses,
)
from server.services import course_state, courses, gradebook, users

router = APIRouter(tags=["admin"], route_class=SessionRoute, responses=error_responses(400, 401, 403, 404, 422))


def course_out(course: Course) -> CourseOut:
    return CourseOut(
        slug=course.slug,
        title=course.title,
        scheme=courses.scheme_of(course),
        policy=courses.policy_of(course),
        auto_results_before_release=course.auto_results_before_release,
        closed_at=course.closed_at,
    )


@router.get("/course", response_model=CourseOut)
def get_course(_: StaffUser, course: CourseDep) -> CourseOut:
    return course_out(course)


@router.put("/course", response_model=CourseOut)
def update_course(body: CourseUpdate, user: AdminUser, course: CourseDep, session: SessionDep) -> CourseOut:
    """Change the grading scheme, the policy, what students see before release, or close the course;
    grades are recomputed from stored scores."""
    courses.update_course(session, course=course, scheme=body.scheme, policy=body.policy)
    if body.auto_results_before_release is not None:
        course_state.set_auto_results_before_release(
            session, course=course, visible=body.auto_results_before_release, actor=user
        )
    if body.closed is not None:
        course_state.set_closed(session, course=course, closed=body.closed, actor=user)
    session.commit()
    return course_out(course)


@router.get("/users", response_model=list[UserOut])
def list_users(_: StaffUser, session: SessionDep, page: PageDep) -> list[UserOut]:
    """Users by username."""
    return [UserOut.model_validate(u) for u in users.list_users(session, limit=page.limit, offset=page.offset)]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, responses=error_responses(409))
def create_user(body: UserCreate, _: AdminUser, ctx: Ctx, session: SessionDep) -> UserOut:
    user = users.create_user(
        session,
        username=body.username,
        role=body.role,
        password=body.password,
        full_name=body.full_name,
        email=body.email,
        passwords=ctx.passwords,
    )
    session.commit()
    return UserOut.model_validate(user)


@router.patch("/users/{username}", response_model=UserOut)
def update_user(username: Username, body: UserUpdate, admin: AdminUser, session: SessionDep) -> UserOut:
    """Change a user's role, or deactivate / reactivate them (an admin cannot do either to themselves)."""
    user = users.get_user(session, username=username)
    if body.role is not None:
        users.set_role(session, user=user, role=body.role, actor=admin)
    if body.is_active is not None:
        users.set_active(session, user=user, active=body.is_active, actor=admin)
    session.commit()
    return UserOut.model_validate(user)


@router.post("/users/roster", response_model=RosterResult)
async def import_roster(
    file: Annotated[UploadFile, File(description="CSV with a username column")],
    _: AdminUser,
    ctx: Ctx,
    session: SessionDep,
) -> RosterResult:
    raw = await file.read(5 * 1024 * 1024 + 1)
    if len(raw) > 5 * 1024 * 1024:
        raise InvalidInput("roster CSV: larger than 5 MiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("roster CSV: not UTF-8 text") from None
    created, updated = users.import_roster(session, text=text, passwords=ctx.passwords)
    session.commit()
    return RosterResult(created=created, updated=updated)


@router.get("/queue", response_model=QueueOut)
def queue_state(_: StaffUser, session: SessionDep) -> QueueOut:
    return QueueOut(counts=gradebook.queue_counts(session))
