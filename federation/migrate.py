"""Schema migrations (Alembic) for both apps: bring a database to the tables the code expects.

Each app keeps its revisions in its own folder (``publisher/migrations``,
``aggregator/migrations``) and describes them with a :class:`Migrations`. The environment
that runs them (``migrations/env.py`` beside this module) is shared, and is handed its
connection and the app's tables from here, so no ``alembic.ini`` is needed anywhere.

Every change runs inside :func:`federation.db.lock_schema`'s transaction: several
gunicorn workers starting at once on a new database wait for the first, then find
nothing left to do.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, MetaData, TypeDecorator, create_engine, inspect

from federation.db import lock_schema, make_engine

log = logging.getLogger(__name__)

ENVIRONMENT = Path(__file__).with_name("migrations")


def _render_item(kind: str, item: Any, _context: Any) -> str | bool:
    # Our column types are decorators over standard ones, and they move between modules:
    # a revision names the standard type the database holds, so it never imports our code.
    if kind == "type" and isinstance(item, TypeDecorator):
        return f"sa.{item.impl_instance!r}"
    return False


# How env.py runs revisions and how models are compared with a database, in one place.
# Batch mode lets SQLite alter a table (by copying it); compare_type makes a changed
# column type a difference that needs a revision.
CONTEXT_OPTIONS: dict[str, Any] = {
    "compare_type": True,
    "render_as_batch": True,
    "render_item": _render_item,
}


@dataclass(frozen=True)
class Migrations:
    """One app's migrations: where its revisions live, the tables they build, and its command."""

    versions: Path
    tables: Callable[[], MetaData]  # every table of the app, on one MetaData
    program: str  # the app's command line, named in messages: ``localfeed-publisher``

    def config(self, connection: Connection | None = None) -> Config:
        """An Alembic configuration for these revisions, run on ``connection``."""
        config = Config(attributes={"connection": connection, "metadata": self.tables()})
        config.set_main_option("script_location", str(ENVIRONMENT))
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", str(self.versions))
        return config

    def script(self) -> ScriptDirectory:
        """The revisions, as Alembic reads them (fresh: a revision may have just been written)."""
        return ScriptDirectory.from_config(self.config())

    def head(self) -> str:
        """The latest revision: the one the code's tables are."""
        return _head(self)


@functools.cache
def _head(migrations: Migrations) -> str:
    # Read once per process: every app and worker start asks, and the revisions shipped
    # with the code do not change under a running process.
    head = migrations.script().get_current_head()
    assert head is not None, f"{migrations.versions} has no revisions"
    return head


class DatabaseNotCurrent(RuntimeError):
    """The database's tables are not the ones this code expects; the message says what to do."""


def current(conn: Connection) -> str | None:
    """The revision the database is at, or None when none is recorded."""
    return MigrationContext.configure(conn).get_current_revision()


def prepare(engine: Engine, migrations: Migrations, *, auto_upgrade: bool) -> None:
    """Make sure the database has the latest tables before an app or a worker uses it.

    - An empty database is built at the latest revision: it holds nothing to back up, so
      a first start (``docker compose up``, the demo, every test) needs no extra step.
    - Tables made before there were migrations are recorded as the first revision, if
      they are its tables, so existing deployments carry on.
    - A database behind the code is upgraded only with ``auto_upgrade``: otherwise this
      refuses, naming the command, so that an operator upgrades after taking a backup.
    - A database ahead of the code (a newer version upgraded it) is always refused.
    """
    with _locked(engine) as conn:
        revision = _recorded(conn, migrations)
        head = migrations.head()
        if revision == head:
            return
        if revision is not None and not auto_upgrade:
            raise DatabaseNotCurrent(
                f"The database is at revision {revision}, and this version of Localfeed needs "
                f"revision {head}. Back up the database, then upgrade it. "
                f"Run: {migrations.program} db upgrade"
            )
        if revision is None:
            # Alembic's recipe for a new database: the tables as the code has them, stamped
            # at head, rather than every revision replayed (several times faster; the two
            # are proved equal in tests/shared/test_migrations.py).
            migrations.tables().create_all(conn)
            MigrationContext.configure(conn).stamp(migrations.script(), head)
            log.info("Created the database's tables at revision %s.", head)
            return
        _upgrade(conn, migrations, "head")
        log.warning("Upgraded the database from revision %s to %s.", revision, head)


def upgrade(engine: Engine, migrations: Migrations, revision: str = "head") -> None:
    """Run the revisions the database lacks, up to ``revision``, whatever ``prepare`` would allow.

    For scratch databases and tests; apps and ``db upgrade`` go through :func:`prepare`.
    """
    with _locked(engine) as conn:
        _recorded(conn, migrations)
        _upgrade(conn, migrations, revision)


def differences(migrations: Migrations, url: str | None = None) -> list[Any]:
    """What the app's tables have that its revisions do not build (``alembic check``).

    The revisions are run on an empty database at ``url`` (in memory on SQLite if none),
    which is then compared with the tables; an empty list means they agree.
    """
    with _scratch(url) as engine:
        upgrade(engine, migrations)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts=CONTEXT_OPTIONS)
            found: list[Any] = compare_metadata(context, migrations.tables())
            return found


def new_revision(migrations: Migrations, message: str, url: str | None = None) -> Path:
    """Write the next revision: what the app's tables have that its revisions do not build yet.

    Compared on an empty database at ``url`` (in memory on SQLite if none). SQLite cannot
    tell some types apart (a time with or without its zone): give a scratch PostgreSQL
    database to see those. Returns the new file, to be read and corrected by hand.
    """
    number = f"{sum(1 for _ in migrations.script().walk_revisions()) + 1:04d}"
    with _scratch(url) as engine:
        upgrade(engine, migrations)
        with engine.begin() as conn:
            script = command.revision(
                migrations.config(conn), message=message, autogenerate=True, rev_id=number
            )
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the schema lock; on SQLite, with foreign keys off until it ends.

    SQLite alters a table by copying it and dropping the original, and with foreign keys
    on, that drop would delete (``ON DELETE CASCADE``) every row referring to it. The
    switch only works outside a transaction; the keys are checked before committing.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                lock_schema(conn)
                yield conn
                if sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").first()):
                    raise DatabaseNotCurrent(f"The migration left a row of {broken[0]} without its parent.")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _recorded(conn: Connection, migrations: Migrations) -> str | None:
    """The database's revision, after recording tables made before migrations as the first."""
    revision = current(conn)
    if revision == migrations.head():
        return revision  # the usual start: nothing more to read
    script = migrations.script()
    if revision is not None:
        try:
            script.get_revision(revision)
        except CommandError:
            raise DatabaseNotCurrent(
                f"The database is at revision {revision}, which this version of Localfeed does not "
                f"have: a newer version upgraded it. Run that version again, or restore the backup "
                f"taken before its `{migrations.program} db upgrade`."
            ) from None
        return revision
    ours = set(migrations.tables().tables)
    if not ours & set(inspect(conn).get_table_names()):
        return None  # a new database
    first = script.get_base()
    assert isinstance(first, str), "one chain of revisions, with one first revision"
    with _scratch() as engine:
        upgrade(engine, migrations, first)
        with engine.connect() as scratch:
            expected = _columns(scratch)
    found = _columns(conn)
    problems = [
        f"table {table} " + (_compare(columns, found[table]) if table in found else "is missing")
        for table, columns in expected.items()
        if found.get(table) != columns
    ]
    if problems:
        raise DatabaseNotCurrent(
            f"The database has tables but no record of its revision, and they are not those of "
            f"revision {first} (the tables Localfeed made before it had migrations): "
            f"{'; '.join(problems)}. Restore a backup, or correct the tables by hand, then "
            f"run: {migrations.program} db upgrade"
        )
    MigrationContext.configure(conn).stamp(script, first)
    log.warning("Recorded the database's tables, made before migrations, as revision %s.", first)
    return first


def _compare(expected: set[str], found: set[str]) -> str:
    parts = []
    if missing := sorted(expected - found):
        parts.append(f"lacks {', '.join(missing)}")
    if extra := sorted(found - expected):
        parts.append(f"has {', '.join(extra)} too")
    return " and ".join(parts)


def _columns(conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(conn)
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def _upgrade(conn: Connection, migrations: Migrations, revision: str) -> None:
    command.upgrade(migrations.config(conn), revision)


@contextmanager
def _scratch(url: str | None = None) -> Iterator[Engine]:
    """An engine on ``url``, or on an empty SQLite database in memory."""
    engine = make_engine(url) if url else create_engine("sqlite://")
    try:
        yield engine
    finally:
        engine.dispose()
