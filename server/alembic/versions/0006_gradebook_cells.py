"""The gradebook stored: its cells (the counted submission and its points per student and assignment), the
version its renderings are kept by, and whose rows each version changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12 09:00:00.000000
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_courses = sa.table("courses", sa.column("id", sa.Integer), sa.column("policy", sa.JSON))
_assignments = sa.table("assignments", sa.column("id", sa.Integer), sa.column("course_id", sa.Integer))
_submissions = sa.table(
    "submissions",
    sa.column("id", sa.Integer),
    sa.column("user_id", sa.Integer),
    sa.column("assignment_id", sa.Integer),
    sa.column("uploaded_at", sa.DateTime(timezone=True)),
    sa.column("days_late", sa.Integer),
    sa.column("graded_at", sa.DateTime(timezone=True)),
)
_items = sa.table(
    "item_scores",
    sa.column("submission_id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("auto_points", sa.Float),
    sa.column("auto_status", sa.String),
    sa.column("manual_points", sa.Float),
)


class _Upload(NamedTuple):
    id: int
    raw_points: float
    points: float  # after the late penalty
    days_late: int
    pending: bool
    graded: bool


def _late_factor(days: int, policy: dict[str, Any]) -> float:
    """server.scheme.late_factor as of this revision (a migration must not change when the code does)."""
    max_days = policy.get("late_max_days", 7)
    if days <= 0:
        return 1.0
    if max_days is not None and days > max_days:
        return 0.0
    return max(0.0, 1.0 - float(policy.get("late_penalty_per_day", 0.1)) * days)


def _counted(uploads: list[_Upload], counting: str) -> _Upload:
    """The upload that counts (uploads in upload order), as server.services.gradebook chose it at this revision."""
    if counting == "latest":
        return uploads[-1]
    if counting == "best":
        graded = [u for u in uploads if u.graded]
        return max(reversed(graded), key=lambda u: u.points) if graded else uploads[-1]
    on_time = [u for u in uploads if u.days_late == 0]
    return on_time[-1] if on_time else uploads[-1]


def _cells(conn: sa.Connection) -> list[dict[str, Any]]:
    policies = {cid: policy or {} for cid, policy in conn.execute(sa.select(_courses.c.id, _courses.c.policy))}
    course_of = dict(conn.execute(sa.select(_assignments.c.id, _assignments.c.course_id)).all())
    points = sa.func.coalesce(_items.c.manual_points, _items.c.auto_points, 0.0)
    pending = _items.c.manual_points.is_(None) & ((_items.c.kind == "manual") | (_items.c.auto_status == "pending"))
    per_upload = (
        sa.select(
            _submissions.c.id,
            _submissions.c.user_id,
            _submissions.c.assignment_id,
            _submissions.c.days_late,
            _submissions.c.graded_at.is_not(None),
            sa.func.coalesce(sa.func.sum(points), 0.0),
            sa.func.coalesce(sa.func.max(sa.case((pending, 1), else_=0)), 0),
        )
        .outerjoin(_items, _items.c.submission_id == _submissions.c.id)
        .group_by(_submissions.c.id)
        .order_by(_submissions.c.uploaded_at, _submissions.c.id)
    )
    uploads: defaultdict[tuple[int, int], list[_Upload]] = defaultdict(list)
    for sid, uid, aid, days, graded, total, is_pending in conn.execute(per_upload):
        raw = round(float(total), 6)
        penalised = round(raw * _late_factor(days, policies[course_of[aid]]), 6)
        uploads[uid, aid].append(_Upload(sid, raw, penalised, days, bool(is_pending), bool(graded)))
    cells = []
    for (uid, aid), mine in uploads.items():
        counted = _counted(mine, policies[course_of[aid]].get("counting", "latest_on_time"))
        cells.append(
            {
                "user_id": uid,
                "assignment_id": aid,
                "submission_id": counted.id,
                "points": counted.points,
                "raw_points": counted.raw_points,
                "days_late": counted.days_late,
                "pending_manual": counted.pending,
                "grading": not counted.graded,
                "submissions": len(mine),
            }
        )
    return cells


def upgrade() -> None:
    cells = op.create_table(
        "gradebook_cells",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.Float(), server_default="0", nullable=False),
        sa.Column("raw_points", sa.Float(), server_default="0", nullable=False),
        sa.Column("days_late", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pending_manual", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("grading", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("submissions", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "assignment_id"),
    )
    rows = _cells(op.get_bind())
    if rows:
        op.bulk_insert(cells, rows)
    version = op.create_table(
        "gradebook_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])
    op.create_table(
        "gradebook_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_gradebook_changes_version", "gradebook_changes", ["version"])


def downgrade() -> None:
    op.drop_index("ix_gradebook_changes_version", table_name="gradebook_changes")
    op.drop_table("gradebook_changes")
    op.drop_table("gradebook_version")
    op.drop_table("gradebook_cells")
