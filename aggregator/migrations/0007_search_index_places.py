"""Near here for every postcode and town: ``search_index.district``, ``placed`` and ``place``.

An activity whose exact postcode is unknown is placed at its sector or district
(aggregator.places), and ``near=Mitcham`` finds the town's listings: the index keeps each
row's postcode district ("CR4"), how it was placed, and its town's folded name. District and
placement are filled here from what the rows hold; the town needs each listing's document,
so run ``localfeed-aggregator reindex`` once after upgrading (until then, or until each item
is next harvested, town names find only rows indexed since).

Revision 0007, after 0006, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search_index", schema=None) as batch_op:
        batch_op.add_column(sa.Column("district", sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column("placed", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("place", sa.Text(), nullable=True))
        batch_op.create_index("ix_search_index_district", ["district", "place"], unique=False)
        batch_op.create_index("ix_search_index_place", ["place"], unique=False)
    # A postcode in its normal form ends in a space and the three-character inward code.
    op.execute(
        "UPDATE search_index SET district = substr(postcode, 1, length(postcode) - 4) "
        "WHERE postcode IS NOT NULL AND length(postcode) > 4"
    )
    op.execute("UPDATE search_index SET placed = 'postcode' WHERE own_geo = false AND cell IS NOT NULL")
