"""Uploads, submission status and reports, manual grading and regrades of one submission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from server.api.deps import CourseDep, Ctx, CurrentUser, PageDep, SessionDep, SessionRoute, StaffUser
from server.errors import RateLimited, UnsupportedUpload, UploadTooLarge
from server.grading import validate_notebook
from server.models import Submission, User
from server.schemas import (
    Id,
    ItemPointsIn,
    ItemScoreOut,
    Name,
    RegradeOut,
    SubmissionCreated,
    SubmissionOut,
    Username,
    error_responses,
)
from server.services import courses, grades, submissions
from server.storage import human_size

router = APIRouter(
    prefix="/submissions",
    tags=["submissions"],
    route_class=SessionRoute,
    responses=error_responses(400, 401, 403, 404, 422),
)


def submission_out(sub: Submission, *, viewer: User, with_report: bool = True) -> SubmissionOut:
    """The submission as ``viewer`` may see it (a student sees manual grades only once they are released)."""
    job = submissions.latest_job(sub)
    items = [
        ItemScoreOut(
            id=v.item_id,
            kind=v.kind,
            title=v.title,
            max_points=v.max_points,
            points=v.points,
            auto_points=v.auto_points,
            auto_status=v.auto_status,
            message=v.message,
            manual_points=v.manual_points,
            manual_comment=v.manual_comment,
            pending=v.pending,
            status=v.status,
        )
        for v in grades.item_views(sub, viewer=viewer)
    ]
    return SubmissionOut(
        id=sub.id,
        assignment=sub.assignment.name,
        username=sub.user.username,
        filename=sub.filename,
        size=sub.size,
        sha256=sub.sha256,
        uploaded_at=sub.uploaded_at,
        late=sub.is_late,
        status=submissions.status_of(sub),
        attempts=job.attempts if job else 0,
        error=sub.error,
        graded_at=sub.graded_at,
        total=grades.visible_score(sub, viewer=viewer),
        max_total=sum(i.max_points for i in items),
        pending_manual=any(i.pending for i in items),
        grades_released=sub.assignment.grades_released,
        items=items,
        report=sub.report if with_report and grades.auto_results_visible(sub, viewer=viewer) else None,
    )


def read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The upload's bytes, refusing too large or non-notebook files with a clear 4xx."""
    if not (file.filename or "").lower().endswith(".ipynb"):
        raise UnsupportedUpload(
            f"expected a Jupyter notebook (.ipynb), got {file.filename or 'a file without a name'!r}"
        )
    data = file.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLarge(f"the notebook is larger than the limit of {human_size(max_bytes)}")
    return data


@router.post(
    "",
    response_model=SubmissionCreated,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(413, 415, 429),
)
def upload(
    file: Annotated[UploadFile, File(description="the notebook (.ipynb)")],
    assignment: Annotated[Name, Form(description="assignment name, e.g. hw1")],
    user: CurrentUser,
    course: CourseDep,
    ctx: Ctx,
    session: SessionDep,
) -> SubmissionCreated:
    """Store the notebook and queue its grading; answers at once with the job."""
    wait = ctx.upload_limiter.hit(f"user:{user.id}")
    if wait is not None:
        raise RateLimited(f"too many uploads; try again in {wait:.0f} s", wait)
    data = read_upload(file, ctx.settings.max_upload_bytes)
    validate_notebook(data)
    target = courses.get_assignment(session, course=course, name=assignment)
    sub, job = submissions.create_submission(
        session,
        user=user,
        assignment=target,
        filename=file.filename or "notebook.ipynb",
        data=data,
        store=ctx.store,
        max_attempts=ctx.settings.max_attempts,
    )
    session.commit()
    return SubmissionCreated(id=sub.id, status="queued", job_id=job.id, late=sub.is_late)


@router.get("", response_model=list[SubmissionOut])
def list_submissions(
    user: CurrentUser,
    course: CourseDep,
    session: SessionDep,
    page: PageDep,
    assignment: Name | None = None,
    username: Username | None = None,
) -> list[SubmissionOut]:
    """A student's own submissions; TAs see everyone's (filter by assignment or username). Newest first."""
    subs = submissions.list_submissions(
        session,
        viewer=user,
        course=course,
        assignment=assignment,
        username=username,
        limit=page.limit,
        offset=page.offset,
    )
    return [submission_out(s, viewer=user, with_report=False) for s in subs]


@router.get("/{submission_id}", response_model=SubmissionOut)
def get_submission(submission_id: Id, user: CurrentUser, session: SessionDep) -> SubmissionOut:
    return submission_out(submissions.get_submission(session, submission_id=submission_id, viewer=user), viewer=user)


@router.get("/{submission_id}/download")
def download(submission_id: Id, user: CurrentUser, ctx: Ctx, session: SessionDep) -> Response:
    sub = submissions.get_submission(session, submission_id=submission_id, viewer=user)
    data = submissions.get_file(ctx.store, sub)
    name = f"{sub.user.username}-{sub.assignment.name}-{sub.id}.ipynb"
    return Response(
        data,
        media_type="application/x-ipynb+json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.put("/{submission_id}/items/{item_id}", response_model=SubmissionOut)
def grade_item(
    submission_id: Id, item_id: Name, body: ItemPointsIn, user: StaffUser, session: SessionDep
) -> SubmissionOut:
    """Manual points for a rubric item, or an override of an automatic one (with a reason)."""
    sub = submissions.get_submission(session, submission_id=submission_id, viewer=user)
    grades.set_item_points(
        session,
        submission=sub,
        item_id=item_id,
        points=body.points,
        reason=body.reason,
        comment=body.comment,
        actor=user,
    )
    session.commit()
    return submission_out(sub, viewer=user)


@router.post("/{submission_id}/regrade", response_model=RegradeOut, status_code=status.HTTP_202_ACCEPTED)
def regrade(submission_id: Id, user: StaffUser, ctx: Ctx, session: SessionDep) -> RegradeOut:
    sub = submissions.get_submission(session, submission_id=submission_id, viewer=user)
    n = submissions.enqueue_regrade(session, submissions=[sub], max_attempts=ctx.settings.max_attempts)
    session.commit()
    return RegradeOut(queued=n)
