"""Grade release: manual points and comments reach students only once a TA releases the assignment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 02:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grades_released_at", sa.DateTime(timezone=True), nullable=True))
    # Students already saw the manual points entered before this revision: keep those assignments released.
    op.execute(
        "UPDATE assignments SET grades_released_at = CURRENT_TIMESTAMP WHERE id IN ("
        " SELECT s.assignment_id FROM submissions s JOIN item_scores i ON i.submission_id = s.id"
        " WHERE i.manual_points IS NOT NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("grades_released_at")
