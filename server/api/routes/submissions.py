"""Uploads, submission status and reports, manual grading and regrades of one submission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from server.api.deps import CourseDep, Ctx, CurrentUser, SessionDep, SessionRoute, StaffUser
from server.errors import RateLimited, UnsupportedUpload, UploadTooLarge
from server.grading import validate_notebook
from server.models import Submission
from server.schemas import ItemPointsIn, ItemScoreOut, RegradeOut, SubmissionCreated, SubmissionOut
from server.services import courses, grades, submissions
from server.storage import human_size

router = APIRouter(prefix="/submissions", tags=["submissions"], route_class=SessionRoute)


def submission_out(sub: Submission, *, with_report: bool = True) -> SubmissionOut:
    job = submissions.latest_job(sub)
    items = [
        ItemScoreOut(
            id=i.item_id,
            kind=i.kind,
            title=i.title,
            max_points=i.max_points,
            points=i.points,
            auto_points=i.auto_points,
            auto_status=i.auto_status,
            message=i.auto_message,
            manual_points=i.manual_points,
            manual_comment=i.manual_comment,
            pending=i.pending,
        )
        for i in sub.items
    ]
    graded = sub.graded_at is not None
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
        total=round(sum(i.points or 0.0 for i in items), 6) if graded else None,
        max_total=sum(i.max_points for i in items),
        pending_manual=any(i.pending for i in items),
        items=items,
        report=sub.report if with_report else None,
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


@router.post("", response_model=SubmissionCreated, status_code=status.HTTP_202_ACCEPTED)
def upload(
    file: Annotated[UploadFile, File(description="the notebook (.ipynb)")],
    assignment: Annotated[str, Form(description="assignment name, e.g. hw1")],
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
    assignment: str | None = None,
    username: str | None = None,
) -> list[SubmissionOut]:
    """A student's own submissions; TAs see everyone's (filter by assignment or username)."""
    subs = submissions.list_submissions(session, viewer=user, course=course, assignment=assignment, username=username)
    return [submission_out(s, with_report=False) for s in subs]


@router.get("/{submission_id}", response_model=SubmissionOut)
def get_submission(submission_id: int, user: CurrentUser, session: SessionDep) -> SubmissionOut:
    return submission_out(submissions.get_submission(session, submission_id=submission_id, viewer=user))


@router.get("/{submission_id}/download")
def download(submission_id: int, user: CurrentUser, ctx: Ctx, session: SessionDep) -> Response:
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
    submission_id: int, item_id: str, body: ItemPointsIn, user: StaffUser, session: SessionDep
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
    return submission_out(sub)


@router.post("/{submission_id}/regrade", response_model=RegradeOut, status_code=status.HTTP_202_ACCEPTED)
def regrade(submission_id: int, user: StaffUser, ctx: Ctx, session: SessionDep) -> RegradeOut:
    sub = submissions.get_submission(session, submission_id=submission_id, viewer=user)
    n = submissions.enqueue_regrade(session, submissions=[sub], max_attempts=ctx.settings.max_attempts)
    session.commit()
    return RegradeOut(queued=n)
