"""Database engines, column types and the change counter for both apps.

Both apps need the same SQLite tuning, the same schema lock, the same idea of a stored
time and the same change counter, so they live here once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    CursorResult,
    DateTime,
    Dialect,
    Engine,
    Integer,
    MetaData,
    Table,
    TypeDecorator,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)


def json_text(value: Any) -> str:
    """``value`` as a JSON column stores it (raises orjson.JSONEncodeError for what JSON cannot hold).

    Non-string keys become strings, as the standard library's json does.
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


SCHEMA_LOCK_KEY = 0x10CA1FEED  # PostgreSQL advisory lock held while changing tables

# JSON columns hold whole activities: orjson reads and writes them several times faster
# than the standard library, which a harvest of thousands of items a second notices.
_JSON = {"json_serializer": json_text, "json_deserializer": orjson.loads}


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``: a SQLite file (WAL mode) or PostgreSQL.

    SQLite gets WAL so that feed readers never wait for a writer, a busy timeout so
    that a second writer waits instead of failing, and foreign keys switched on.
    A bare path is taken as a SQLite file.
    """
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **_JSON)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True, future=True, **_JSON)

    @event.listens_for(engine, "connect")
    def _utc_session(dbapi_connection: Any, _record: Any) -> None:  # pragma: no cover - trivial
        # Tables made before UTCDateTime have naive ``timestamp`` columns; PostgreSQL converts
        # an aware value to and from those in the session's zone, which must then be UTC.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()

    return engine


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the one row ``result``'s INSERT added."""
    key = result.inserted_primary_key
    assert key is not None  # typed Optional by SQLAlchemy, but a Row after every single-row INSERT
    value: int = key[0]
    return value


def lock_schema(conn: Connection) -> None:
    """Hold the schema lock for the rest of ``conn``'s transaction, and make its DDL part of it.

    On PostgreSQL, an advisory lock that other processes changing tables wait for. On
    SQLite, the database's write lock, taken now (``BEGIN IMMEDIATE``): the sqlite3 module
    would otherwise run each CREATE or DROP outside any transaction, committed alone.
    Call it first in a transaction.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out: the one column type for a time.

    PostgreSQL stores ``timestamptz``. SQLite has no zones: it stores the UTC wall time
    (the text SQLAlchemy always wrote there, so older files read the same) and UTC is
    attached on the way out. Naive values are refused, since their zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone; pass an aware datetime (UTC).")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def counter_table(metadata: MetaData, name: str) -> Table:
    """A change counter: a table of one row holding the last change number handed out.

    The row is written (with 0) as ``create_all`` creates the table; the migration that
    creates a counter writes it too, so it exists exactly once in every database.
    """
    table = Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True),
        Column("value", BigInteger, nullable=False),
    )
    event.listen(table, "after_create", _seed_counter)
    return table


def _seed_counter(target: Table, connection: Connection, **_kw: Any) -> None:
    connection.execute(insert(target).values(id=1, value=0))


def next_change_numbers(conn: Connection, counter: Table, count: int = 1) -> range:
    """Take ``count`` change numbers from ``counter``; call it first in the writing transaction.

    Change numbers must be assigned so that no change commits behind a reader's cursor. A
    database sequence cannot promise that on PostgreSQL (transaction 8 may commit before
    transaction 7, and a reader that saw 8 would skip 7 for ever), so every writer bumps
    the counter's row instead. The row lock that ``UPDATE`` takes is held until commit,
    which puts writers in single file: numbers are handed out in commit order. On SQLite
    the ``UPDATE`` takes the database's write lock; taken first, before any read, it makes
    the transaction's later reads consistent and no lock upgrade can fail.
    """
    last: int = conn.execute(
        update(counter).values(value=counter.c.value + count).returning(counter.c.value)
    ).scalar_one()
    return range(last - count + 1, last + 1)


def last_change_number(conn: Connection, counter: Table) -> int:
    """The last change number ``counter`` handed out (0 before the first)."""
    value: int = conn.execute(select(counter.c.value)).scalar_one()
    return value
