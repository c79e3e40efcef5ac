"""Request and response bodies of the JSON API. Responses never carry password or token hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.models import Role
from server.scheme import CoursePolicy, GradingScheme


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    role: Role


class UserCreate(BaseModel):
    username: str
    role: Role = Role.student
    password: str | None = Field(default=None, min_length=8)
    full_name: str = ""
    email: str | None = None


class ApiTokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    ttl_days: float | None = Field(default=None, gt=0)


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
    items: list[RubricItemOut]


class AssignmentUpdate(BaseModel):
    deadline: datetime | None


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
    manual_points: float | None
    manual_comment: str | None
    pending: bool


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
    items: list[ItemScoreOut]
    report: dict[str, Any] | None = None


class ItemPointsIn(BaseModel):
    points: float | None = Field(description="manual points; null clears them")
    reason: str = Field(default="", description="required when overriding an automatic item")
    comment: str | None = None


class ExamIn(BaseModel):
    points: float
    reason: str = ""


class ExamOut(BaseModel):
    username: str
    points: float


class ExtensionIn(BaseModel):
    deadline: datetime
    reason: str = ""


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


class GradebookRow(BaseModel):
    username: str
    full_name: str
    homeworks: dict[str, float]
    exam: float | None
    total: float
    final_grade: int
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


class CourseUpdate(BaseModel):
    scheme: str | GradingScheme | None = Field(default=None, description="a built-in name or a full scheme")
    policy: CoursePolicy | None = None


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
