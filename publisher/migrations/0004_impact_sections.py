"""Impact counts fetched from aggregators: ``impact_sections``.

Each row is one aggregator's published (already suppressed) day cells for this publisher's
activities, as its report gave them (publisher.impact); editors see them by activity, month
and website. The table starts empty and fills at the next fetch.

Revision 0004, after 0003, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "impact_sections",
        sa.Column("counted_by", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("asked", sa.Text(), nullable=False),
        sa.Column("generated", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("counted_by", "origin"),
    )
