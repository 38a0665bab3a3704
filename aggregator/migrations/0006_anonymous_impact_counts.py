"""Anonymous impact counts: ``impact_counts`` and ``impact_relayed``.

``impact_counts`` holds how often each activity was shown, opened, printed, shortlisted or
had its booking link or contact followed, per day, embedding website (its origin) and kind:
a count and nothing else about anyone (aggregator.impact, docs/privacy.md).
``impact_relayed`` keeps the already-suppressed day cells that aggregators following this
one published for the items it relays to them, so they travel back to the publisher.
Both start empty.

Revision 0006, after 0005, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "impact_counts",
        sa.Column("activity_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", "day", "site", "kind"),
    )
    op.create_index("ix_impact_counts_origin_day", "impact_counts", ["origin", "day"], unique=False)
    op.create_table(
        "impact_relayed",
        sa.Column("counted_by", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("generated", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("counted_by", "origin"),
    )
