"""SQLAlchemy 2.0 typed models. Alembic (``server/alembic``) is the source of truth for the schema."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from server.roles import Role


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.student)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    scheme: Mapped[dict[str, Any]]  # GradingScheme as JSON
    policy: Mapped[dict[str, Any]]  # CoursePolicy as JSON
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Whether students see their automatic results before an assignment's grades are released.
    auto_results_before_release: Mapped[bool] = mapped_column(default=True)
    # Until the course is closed, a student's total and final grade are provisional.
    closed_at: Mapped[datetime | None]

    assignments: Mapped[list[Assignment]] = relationship(back_populates="course", order_by="Assignment.position")


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("course_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200), default="")
    position: Mapped[int] = mapped_column(default=0)
    points: Mapped[float] = mapped_column(Float)
    deadline: Mapped[datetime | None]
    rubric: Mapped[list[Any]]  # [{"id", "kind", "title", "points", "task"}, ...]
    is_homework: Mapped[bool] = mapped_column(default=True)
    # Until a TA releases them, students see only the automatic results (manual points and comments stay hidden).
    grades_released_at: Mapped[datetime | None]

    course: Mapped[Course] = relationship(back_populates="assignments")

    @property
    def grades_released(self) -> bool:
        return self.grades_released_at is not None


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_assignment_user", "assignment_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_late: Mapped[bool] = mapped_column(default=False)
    # Started days past the student's (extended) deadline after the grace period, 0 when on time. Kept
    # with ``is_late`` by ``services.submissions``, so the gradebook ranks submissions without date arithmetic.
    days_late: Mapped[int] = mapped_column(default=0, server_default="0")
    # The executed notebook of the latest grading (in the file store), for the TA view.
    executed_sha256: Mapped[str | None] = mapped_column(String(64))
    # The latest grading report (grader.results.Report as JSON) and when it arrived.
    report: Mapped[dict[str, Any] | None]
    graded_at: Mapped[datetime | None]
    # The last grading failure, shown to the student ("grading failed: ...").
    error: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User] = relationship()
    assignment: Mapped[Assignment] = relationship()
    items: Mapped[list[ItemScore]] = relationship(
        back_populates="submission", order_by="ItemScore.position", cascade="all, delete-orphan"
    )
    jobs: Mapped[list[GradingJob]] = relationship(
        back_populates="submission", order_by="GradingJob.id", cascade="all, delete-orphan"
    )

    @property
    def score(self) -> float | None:
        """Effective points (manual over automatic), before late penalties; None until graded."""
        if self.graded_at is None:
            return None
        return round(sum(i.points or 0.0 for i in self.items), 6)

    @property
    def max_points(self) -> float:
        return sum(i.max_points for i in self.items)


class GradingJob(Base):
    """One grading run of a submission. Workers claim queued jobs and hold a lease while grading."""

    __tablename__ = "grading_jobs"
    __table_args__ = (Index("ix_grading_jobs_state", "state", "available_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    state: Mapped[JobState] = mapped_column(_enum(JobState, "job_state"), default=JobState.queued)
    reason: Mapped[str] = mapped_column(String(32), default="upload")  # upload | regrade
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)

    submission: Mapped[Submission] = relationship(back_populates="jobs")


class ItemScore(Base):
    """The score of one rubric item of one submission.

    ``auto_*`` columns belong to the grader and are rewritten by every regrade; ``manual_*`` columns
    belong to TAs (manual items, or an override of an automatic item with a reason) and a regrade
    never touches them. The effective points are the manual ones when present.
    """

    __tablename__ = "item_scores"
    __table_args__ = (
        UniqueConstraint("submission_id", "item_id"),
        # Covers the gradebook's per-submission sums: they read the index alone, no table rows.
        Index("ix_item_scores_totals", "submission_id", "manual_points", "auto_points", "kind", "auto_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200), default="")
    max_points: Mapped[float] = mapped_column(Float)
    auto_points: Mapped[float | None] = mapped_column(Float)
    auto_status: Mapped[str | None] = mapped_column(String(16))
    auto_message: Mapped[str | None] = mapped_column(Text)
    manual_points: Mapped[float | None] = mapped_column(Float)
    manual_comment: Mapped[str | None] = mapped_column(Text)
    manual_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    manual_at: Mapped[datetime | None]

    submission: Mapped[Submission] = relationship(back_populates="items")

    @property
    def points(self) -> float | None:
        return self.manual_points if self.manual_points is not None else self.auto_points

    @property
    def pending(self) -> bool:
        return self.manual_points is None and (self.kind == "manual" or self.auto_status == "pending")


class GradebookCell(Base):
    """The submission that counts for one student and assignment, with its points: one cell of the gradebook.

    Derived data. :func:`server.services.gradebook.refresh_cells` recomputes it from the item scores, the
    late days and the course policy in the transaction of every write that can change it (an upload, a
    grading result, manual points, a deadline, an extension, the policy), so the gradebook reads one row
    per cell instead of ranking every submission on every request. A student's own view, which hides what
    is not released yet, is computed from the item scores instead.
    """

    __tablename__ = "gradebook_cells"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    # The server defaults fill the row a first upload's cell is inserted as, to be locked, then computed.
    points: Mapped[float] = mapped_column(Float, server_default="0")  # after the late penalty
    raw_points: Mapped[float] = mapped_column(Float, server_default="0")
    days_late: Mapped[int] = mapped_column(server_default="0")
    pending_manual: Mapped[bool] = mapped_column(server_default=false())
    grading: Mapped[bool] = mapped_column(server_default=false())  # the counted submission has no grading result yet
    submissions: Mapped[int] = mapped_column(server_default="0")  # the student's uploads to the assignment


class GradebookVersion(Base):
    """One row: a number that every commit changing what a gradebook shows increases, so that a rendered
    gradebook is served again while it holds (:mod:`server.services.gradebook_cache`)."""

    __tablename__ = "gradebook_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(default=0)


class GradebookChange(Base):
    """Whose rows one gradebook version changed: a row per student, or one without a student for every row
    (a course, an assignment or the roster changed). A kept rendering is brought up to date by rendering
    again only the rows of the versions since (:mod:`server.services.gradebook_cache`)."""

    __tablename__ = "gradebook_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(index=True)
    user_id: Mapped[int | None]  # no foreign key: a deleted student's change still says "render again"


class ExamScore(Base):
    __tablename__ = "exam_scores"
    __table_args__ = (UniqueConstraint("course_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    points: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Extension(Base):
    """A per-student deadline for one assignment."""

    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("assignment_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    deadline: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    assignment: Mapped[Assignment] = relationship()


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship()


class PasswordLink(Base):
    """A one-time link to set a password: an invitation for a new user or a reset by an admin.

    Only the SHA-256 of the link's secret is stored; it expires, and using it (or a newer link) ends it."""

    __tablename__ = "password_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # invite | reset
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class UserSession(Base):
    """A logged-in browser session. The cookie carries a secret whose SHA-256 is the id here, so
    logging out, a password change or an admin can end it; a signed cookie alone lives until it expires."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class AuditLog(Base):
    """Append-only record of every grade change (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(128))  # username, or "worker:<id>" for the grader
    student_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # item_auto | item_manual | item_override | exam | extension | release
    entity: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))  # e.g. "submission:12/item:t1"
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
