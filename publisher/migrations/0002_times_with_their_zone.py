"""Times with their zone: the publisher's time columns become ``timestamptz`` on PostgreSQL.

Both apps now share one column type for a time (``federation.db.UTCDateTime``), which
PostgreSQL stores with its zone, as the aggregator always did. The publisher wrote naive
UTC there, so each value is read as UTC. SQLite stores the same text either way: nothing
changes there.

Revision 0002, after 0001, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIMES = {
    "groups": ["created_at"],
    "users": ["created_at"],
    "api_tokens": ["created_at", "last_used_at"],
    "activities": ["modified_at", "deleted_at"],
    "outbox": ["created_at", "claimed_at", "delivered_at"],
    "email_outbox": ["created_at"],
    "sent_reminders": ["sent_at"],
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in TIMES.items():
        for column in columns:
            op.alter_column(
                table,
                column,
                type_=sa.DateTime(timezone=True),
                postgresql_using=f"{column} AT TIME ZONE 'UTC'",
            )
