"""Request and response bodies of the JSON API, and the one definition of every input's limits.

Responses never carry password or token hashes. Every value a client sends is bounded here (ids fit
PostgreSQL's integer, numbers are finite, strings have a length limit and no NUL byte), so a request
is either valid or answered 422 before it reaches the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, Strict, ValidationError

from server.models import Role
from server.scheme import CoursePolicy, GradingScheme

MAX_ID = 2**31 - 1  # PostgreSQL's integer; ids beyond it cannot exist
USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"  # assignment and rubric item names
_NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL bytes
MAX_PASSWORD_CHARS = 1024  # argon2 hashes whatever it gets; a megabyte password is a denial of service
MAX_TOKEN_DAYS = 3650


def _text(max_length: int) -> Any:
    return Field(max_length=max_length, pattern=_NO_NUL)


def _iso_datetime(value: object) -> datetime:
    """Only ISO 8601 text (or datetimes from Python callers): pydantic alone reads 0 and "0.5" as 1970."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("expected an ISO 8601 date and time with a UTC offset, such as 2026-10-02T23:59:00+03:00")


Id = Annotated[int, Ge(1), Le(MAX_ID)]
Username = Annotated[str, Field(pattern=USERNAME_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
FullName = Annotated[str, _text(200)]
Reason = Annotated[str, _text(1000)]
Comment = Annotated[str, _text(10_000)]
SearchText = Annotated[str, _text(64)]  # a filter in a form: may be empty, matches nothing when odd
Points = Annotated[float, Strict(), Field(ge=0, le=1000, allow_inf_nan=False)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_datetime)]


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: body, query, path or header, then the field")
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error the API answers with: a one-line ``detail``; request validation adds ``errors``."""

    detail: str = Field(description="what was wrong, for people")
    errors: list[FieldError] = Field(default=[], description="each invalid field (request validation only)")


_ERROR_DESCRIPTIONS = {
    400: "the body could not be read (not JSON, not UTF-8, broken multipart)",
    401: "not authenticated (no, an expired or a revoked token or session)",
    403: "not allowed for this user, or a failed CSRF check",
    404: "no such resource (or not visible to this user)",
    409: "conflicts with the current state",
    413: "the upload is too large",
    415: "the upload is not a notebook",
    422: "the request is invalid",
    429: "too many requests; see Retry-After",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting ``codes`` with the :class:`ErrorOut` body."""
    return {code: {"model": ErrorOut, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}


def field_errors(errors: list[Any]) -> list[FieldError]:
    """Pydantic's errors as :class:`FieldError` (their ``input`` and ``ctx`` may not be JSON)."""
    return [FieldError(loc=list(e["loc"]), msg=e["msg"], type=e["type"]) for e in errors]


def one_line(errors: list[FieldError]) -> str:
    """``body.points: Input should be ...; query.limit: ...``"""
    return "; ".join(f"{'.'.join(str(p) for p in e.loc) or 'request'}: {e.msg}" for e in errors)


def validation_message(exc: ValidationError) -> str:
    return one_line(field_errors(exc.errors()))


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    role: Role
    is_active: bool = True


class UserUpdate(BaseModel):
    role: Role | None = None
    is_active: Annotated[bool, Strict()] | None = Field(
        default=None, description="false: no login, every session ends, API tokens stop working"
    )


class UserCreate(BaseModel):
    username: Username
    role: Role = Role.student
    password: str | None = Field(default=None, min_length=8, max_length=MAX_PASSWORD_CHARS)
    full_name: FullName = ""
    email: Annotated[EmailStr, Field(max_length=200)] | None = None


class ApiTokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=_NO_NUL)
    ttl_days: Annotated[float, Strict()] | None = Field(
        default=None, gt=0, le=MAX_TOKEN_DAYS, allow_inf_nan=False, description="default: never expires"
    )


class ApiTokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="shown once; only its hash is stored")


class RubricItemOut(BaseModel):
    id: str
    kind: str
    title: str = ""
    points: float
    task: str = ""


class AssignmentOut(BaseModel):
    name: str
    title: str
    points: float
    deadline: datetime | None
    grades_released_at: datetime | None = Field(description="when students began to see manual points; null: not yet")
    items: list[RubricItemOut]


class AnswerOut(BaseModel):
    submission_id: int
    username: str
    graded: bool
    points: float | None
    comment: str | None


class QuestionOut(BaseModel):
    """One manual item across the submission that counts for each student (grading by question)."""

    assignment: str
    item: RubricItemOut
    graded: int
    total: int
    answers: list[AnswerOut]


class AssignmentUpdate(BaseModel):
    deadline: Timestamp | None


class SubmissionCreated(BaseModel):
    id: int
    status: str
    job_id: int
    late: bool


class ItemScoreOut(BaseModel):
    id: str
    kind: str
    title: str
    max_points: float
    points: float | None
    auto_points: float | None
    auto_status: str | None
    message: str | None
    manual_points: float | None = Field(description="hidden (null) from students until the grades are released")
    manual_comment: str | None
    pending: bool
    status: str = Field(description="the grader's status, or 'reviewed' once a TA graded an item awaiting review")


class SubmissionOut(BaseModel):
    id: int
    assignment: str
    username: str
    filename: str
    size: int
    sha256: str
    uploaded_at: datetime
    late: bool
    status: str
    attempts: int
    error: str | None
    graded_at: datetime | None
    total: float | None
    max_total: float
    pending_manual: bool
    grades_released: bool
    items: list[ItemScoreOut]
    report: dict[str, Any] | None = None


class ItemPointsIn(BaseModel):
    points: Points | None = Field(description="manual points; null clears them")
    reason: Reason = Field(default="", description="required when overriding an automatic item")
    comment: Comment | None = None


class ExamIn(BaseModel):
    points: Points
    reason: Reason = ""


class ExamOut(BaseModel):
    username: str
    points: float


class ExtensionIn(BaseModel):
    deadline: Timestamp
    reason: Reason = ""


class ExtensionOut(BaseModel):
    username: str
    assignment: str
    deadline: datetime
    reason: str


class RegradeOut(BaseModel):
    queued: int


class HomeworkDetail(BaseModel):
    submission_id: int | None
    raw_points: float
    late: bool
    days_late: int
    pending_manual: bool
    grading: bool
    submissions: int
    released: bool


class GradebookRow(BaseModel):
    username: str
    full_name: str
    homeworks: dict[str, float]
    exam: float | None
    total: float = Field(description="for a student, from released homework grades only")
    final_grade: int
    provisional: bool = Field(description="the course is not closed yet, or some homework's grades are not released")
    details: dict[str, HomeworkDetail]


class GradebookOut(BaseModel):
    scheme: GradingScheme
    policy: CoursePolicy
    assignments: list[str]
    students: list[GradebookRow]


class CourseOut(BaseModel):
    slug: str
    title: str
    scheme: GradingScheme
    policy: CoursePolicy
    auto_results_before_release: bool = Field(
        description="students see their automatic results before an assignment's grades are released"
    )
    closed_at: datetime | None = Field(description="when the course was closed (grades final); null: open")


class CourseUpdate(BaseModel):
    scheme: Annotated[str, Field(max_length=64)] | GradingScheme | None = Field(
        default=None, description="a built-in name or a full scheme"
    )
    policy: CoursePolicy | None = None
    auto_results_before_release: Annotated[bool, Strict()] | None = None
    closed: Annotated[bool, Strict()] | None = Field(default=None, description="close (true) or reopen the course")


class AuditOut(BaseModel):
    at: datetime
    actor: str
    student: str | None
    entity: str
    key: str
    old_value: str | None
    new_value: str | None
    reason: str


class RosterResult(BaseModel):
    created: int
    updated: int


class QueueOut(BaseModel):
    counts: dict[str, int]
