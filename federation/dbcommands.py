"""The ``db`` commands both apps' command lines carry: ``upgrade``, ``check`` and ``revision``.

``upgrade`` is for operators (after a backup); ``check`` and ``revision`` are for
developers changing tables (docs/deploying.md, "Changing tables").
"""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy import Engine

from federation.migrate import DatabaseNotCurrent, Migrations, current, differences, new_revision

SCRATCH_HELP = "An empty scratch database to compare on (default: SQLite in memory, blind to time zones)."


def db_commands(migrations: Migrations, start_upgraded: Callable[[], Engine]) -> click.Group:
    """The ``db`` group for an app; ``start_upgraded`` builds the app with
    ``DATABASE_AUTO_UPGRADE`` on and returns its engine, so the command upgrades the
    very database the app's settings name."""

    @click.group("db")
    def db() -> None:
        """Upgrade the database's tables to this version, or check and write migrations."""

    @db.command()
    def upgrade() -> None:
        """Bring the database to this version's tables (back it up first)."""
        try:
            engine = start_upgraded()
        except DatabaseNotCurrent as error:
            raise click.ClickException(str(error)) from None
        with engine.connect() as conn:
            click.echo(f"The database is at revision {current(conn)}, the latest.")

    @db.command()
    @click.option("--database-url", default=None, help=SCRATCH_HELP)
    def check(database_url: str | None) -> None:
        """Fail if the tables in the code differ from what the migrations build."""
        found = differences(migrations, database_url)
        for difference in found:
            click.echo(f"- {difference}")
        if found:
            raise click.ClickException(
                f"The tables differ from what the migrations build; write a revision: "
                f"{migrations.program} db revision -m 'what changed'"
            )
        click.echo("The migrations build the tables in the code.")

    @db.command()
    @click.option("-m", "--message", required=True, help="What the revision changes, in a few words.")
    @click.option("--database-url", default=None, help=SCRATCH_HELP)
    def revision(message: str, database_url: str | None) -> None:
        """Write the next migration from the difference between the code's tables and the last one."""
        path = new_revision(migrations, message, database_url)
        click.echo(f"Wrote {path}: read it, correct it (data to carry over?), and test it.")

    return db
