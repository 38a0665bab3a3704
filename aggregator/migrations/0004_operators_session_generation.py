"""Operators' session generation: logging out ends a session for good.

``operators.session_generation`` is written into each log-in's session and compared on
every request (federation.sessions); logging out and a new password replace it, so a
cookie copied before is refused. Each existing operator gets a random one here, so
sessions from before the upgrade carry none and are refused: operators log in once more.

Revision 0004, after 0003, written 2026-12-07.
To go back, restore the backup taken before the upgrade (docs/deploying.md).
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_generation", sa.String(length=32), nullable=True))
    # One random token per row, not a shared default: the column is what tells sessions apart.
    operators = sa.table(
        "operators", sa.column("id", sa.Integer()), sa.column("session_generation", sa.String())
    )
    bind = op.get_bind()
    for (operator_id,) in bind.execute(sa.select(operators.c.id)).all():
        bind.execute(
            sa.update(operators)
            .where(operators.c.id == operator_id)
            .values(session_generation=secrets.token_hex(16))
        )
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.alter_column("session_generation", existing_type=sa.String(length=32), nullable=False)
