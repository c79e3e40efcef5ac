"""The gradebook in SQL: days late on the submission row, and an index covering the item sums.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 09:00:00.000000
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_courses = sa.table("courses", sa.column("id", sa.Integer), sa.column("policy", sa.JSON))
_assignments = sa.table(
    "assignments",
    sa.column("id", sa.Integer),
    sa.column("course_id", sa.Integer),
    sa.column("deadline", sa.DateTime(timezone=True)),
)
_extensions = sa.table(
    "extensions",
    sa.column("assignment_id", sa.Integer),
    sa.column("user_id", sa.Integer),
    sa.column("deadline", sa.DateTime(timezone=True)),
)
_submissions = sa.table(
    "submissions",
    sa.column("id", sa.Integer),
    sa.column("user_id", sa.Integer),
    sa.column("assignment_id", sa.Integer),
    sa.column("uploaded_at", sa.DateTime(timezone=True)),
    sa.column("is_late", sa.Boolean),
    sa.column("days_late", sa.Integer),
)


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _days_late(uploaded_at: datetime, deadline: datetime | None, grace_minutes: float) -> int:
    """server.scheme.days_late as of this revision (a migration must not change when the code does)."""
    if deadline is None:
        return 0
    late_s = (uploaded_at - deadline).total_seconds() - grace_minutes * 60
    return 0 if late_s <= 0 else math.ceil(late_s / 86400)


def upgrade() -> None:
    with op.batch_alter_table("item_scores", schema=None) as batch_op:
        batch_op.create_index(
            "ix_item_scores_totals",
            ["submission_id", "manual_points", "auto_points", "kind", "auto_status"],
            unique=False,
        )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("days_late", sa.Integer(), server_default="0", nullable=False))
    # Only late submissions (is_late is kept up to date by every deadline, extension and grace change)
    # have days to count.
    conn = op.get_bind()
    grace = {cid: float((policy or {}).get("grace_minutes", 0)) for cid, policy in conn.execute(sa.select(_courses))}
    assignments = {aid: (grace.get(cid, 0.0), d and _utc(d)) for aid, cid, d in conn.execute(sa.select(_assignments))}
    extensions = {(aid, uid): _utc(d) for aid, uid, d in conn.execute(sa.select(_extensions))}
    late = conn.execute(
        sa.select(
            _submissions.c.id, _submissions.c.user_id, _submissions.c.assignment_id, _submissions.c.uploaded_at
        ).where(_submissions.c.is_late)
    ).all()
    updates = []
    for sid, uid, aid, uploaded_at in late:
        grace_minutes, deadline = assignments[aid]
        days = _days_late(_utc(uploaded_at), extensions.get((aid, uid), deadline), grace_minutes)
        updates.append({"sid": sid, "days": days})
    if updates:
        conn.execute(
            _submissions.update()
            .where(_submissions.c.id == sa.bindparam("sid"))
            .values(days_late=sa.bindparam("days")),
            updates,
        )


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("days_late")
    with op.batch_alter_table("item_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_item_scores_totals")
