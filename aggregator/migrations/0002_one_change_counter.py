"""One change counter: ``counter`` keeps its one row by number, like the publisher's.

Both apps now take change numbers from the same kind of table
(``federation.db.counter_table``): one row, ``id`` 1. The aggregator's row was named
``changes``; its value carries over, so the republished feed's numbers go on from it.

Revision 0002, after 0001, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    value = op.get_bind().execute(sa.text("SELECT value FROM counter WHERE name = 'changes'")).scalar_one()
    op.drop_table("counter")
    counter = op.create_table(
        "counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(counter, [{"id": 1, "value": value}])
