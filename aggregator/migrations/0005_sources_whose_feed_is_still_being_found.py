"""Sources whose feed is still being found: ``sources.discovery``.

Finding a source's feed runs as a job (aggregator.discovery), so a source is stored at once
in the state "discovering" and ``sources.discovery`` keeps what the job needs to finish the
operator's decision: the state to take once the feed is found, since when, and the job's
token. Every existing source already has its feed, so the column starts null for all.

Revision 0005, after 0004, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("discovery", sa.JSON(), nullable=True))
