"""When each tombstone was learnt of: ``tombstones.buried_at``.

Housekeeping forgets a source's tombstone once the publisher has forgotten its own deletion
(RPDE keeps deletions at least 30 days; aggregator.housekeeping says why that is safe), so
the table stops growing with every deletion ever seen. Tombstones held before the upgrade
count as learnt of at the upgrade: each is kept a full retention from then, never less.

Revision 0008, after 0007, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tombstones", schema=None) as batch_op:
        batch_op.add_column(sa.Column("buried_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE tombstones SET buried_at = CURRENT_TIMESTAMP")
    with op.batch_alter_table("tombstones", schema=None) as batch_op:
        batch_op.alter_column("buried_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index("ix_tombstones_buried_at", ["buried_at"], unique=False)
