"""Sources that are aggregators, tombstones of deleted items, and pending WebSub requests.

``sources.is_aggregator`` marks a source allowed to relay other origins' items
(aggregator.authority); every existing source starts as a plain publisher. ``tombstones``
keeps the change marker of each deletion, so a late, older update cannot undo it.
``push_subscriptions.pending`` names the request awaiting the hub's verification; rows
carried over have none, so their next renewal sets it.

Revision 0003, after 0002, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tombstones",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("modified", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("source_id", "item_id"),
    )
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending", sa.String(length=16), nullable=True))
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_aggregator", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
