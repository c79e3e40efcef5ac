"""Assignments: list, deadlines, grade release, grading by question, regrade of all, reload from the folder."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import FileResponse

from server.api.deps import AdminUser, CourseDep, Ctx, CurrentUser, PageDep, SessionDep, SessionRoute, StaffUser
from server.errors import NotFound
from server.models import Assignment
from server.schemas import (
    AnswerOut,
    AssignmentOut,
    AssignmentUpdate,
    Name,
    QuestionOut,
    RegradeOut,
    RubricItemOut,
    error_responses,
)
from server.services import courses, grades, questions, submissions

router = APIRouter(
    prefix="/assignments",
    tags=["assignments"],
    route_class=SessionRoute,
    responses=error_responses(400, 401, 403, 404, 422),
)


def assignment_out(a: Assignment) -> AssignmentOut:
    return AssignmentOut(
        name=a.name,
        title=a.title,
        points=a.points,
        deadline=a.deadline,
        grades_released_at=a.grades_released_at,
        items=[RubricItemOut.model_validate(i) for i in a.rubric],
    )


@router.get("", response_model=list[AssignmentOut])
def list_assignments(_: CurrentUser, course: CourseDep, session: SessionDep) -> list[AssignmentOut]:
    return [assignment_out(a) for a in courses.list_assignments(session, course=course)]


@router.get(
    "/{name}/template",
    response_class=FileResponse,
    responses={200: {"content": {"application/x-ipynb+json": {}}, "description": "the blank template notebook"}},
)
def download_template(name: Name, _: CurrentUser, course: CourseDep, ctx: Ctx, session: SessionDep) -> FileResponse:
    """The blank template notebook that students start the assignment from."""
    a = courses.get_assignment(session, course=course, name=name)
    path = courses.template_path(a, assignments_dir=ctx.settings.assignments_dir)
    if path is None:
        raise NotFound(f"assignment {name!r} has no template notebook yet")
    return FileResponse(path, media_type="application/x-ipynb+json", filename=f"{a.name}.ipynb")


@router.put("/{name}", response_model=AssignmentOut)
def update_assignment(
    name: Name, body: AssignmentUpdate, _: StaffUser, course: CourseDep, session: SessionDep
) -> AssignmentOut:
    """Set or clear the deadline (late flags are recomputed)."""
    a = courses.get_assignment(session, course=course, name=name)
    courses.set_deadline(session, assignment=a, deadline=body.deadline)
    session.commit()
    return assignment_out(a)


@router.post("/{name}/regrade", response_model=RegradeOut, status_code=status.HTTP_202_ACCEPTED)
def regrade_all(name: Name, _: StaffUser, course: CourseDep, ctx: Ctx, session: SessionDep) -> RegradeOut:
    """Queue a regrade of every submission of the assignment; manual points are kept."""
    a = courses.get_assignment(session, course=course, name=name)
    subs = submissions.submissions_of_assignment(session, assignment=a)
    n = submissions.enqueue_regrade(session, submissions=subs, max_attempts=ctx.settings.max_attempts)
    session.commit()
    return RegradeOut(queued=n)


@router.post("/{name}/release", response_model=AssignmentOut)
def release(name: Name, user: StaffUser, course: CourseDep, session: SessionDep) -> AssignmentOut:
    """Show the assignment's manual points and comments to its students (until then: automatic results only)."""
    a = courses.get_assignment(session, course=course, name=name)
    grades.release_grades(session, assignment=a, released=True, actor=user)
    session.commit()
    return assignment_out(a)


@router.delete("/{name}/release", response_model=AssignmentOut)
def withdraw_release(name: Name, user: StaffUser, course: CourseDep, session: SessionDep) -> AssignmentOut:
    """Hide the assignment's manual points and comments from its students again."""
    a = courses.get_assignment(session, course=course, name=name)
    grades.release_grades(session, assignment=a, released=False, actor=user)
    session.commit()
    return assignment_out(a)


@router.get("/{name}/items/{item_id}/answers", response_model=QuestionOut)
def question_answers(
    name: Name, item_id: Name, _: StaffUser, course: CourseDep, session: SessionDep, page: PageDep
) -> QuestionOut:
    """A manual item in every student's counted submission, by username: the queue of grading by question.

    ``answers`` is one page of them; ``total`` and ``graded`` count them all.
    """
    a = courses.get_assignment(session, course=course, name=name)
    question = questions.get_question(session, course=course, assignment=a, item_id=item_id)
    return QuestionOut(
        assignment=a.name,
        item=RubricItemOut.model_validate(question.item),
        graded=question.graded,
        total=len(question.answers),
        answers=[
            AnswerOut(
                submission_id=answer.submission.id,
                username=answer.submission.user.username,
                graded=answer.graded,
                points=answer.score.manual_points,
                comment=answer.score.manual_comment,
            )
            for answer in question.answers[page.offset : page.offset + page.limit]
        ],
    )


@router.post("/load", response_model=list[AssignmentOut])
def load_from_folder(_: AdminUser, course: CourseDep, ctx: Ctx, session: SessionDep) -> list[AssignmentOut]:
    """Re-read the assignments folder (titles, points and rubrics; deadlines are kept)."""
    loaded = courses.load_assignments(session, course=course, assignments_dir=ctx.settings.assignments_dir)
    session.commit()
    return [assignment_out(a) for a in loaded]
