"""Database engines, column types and the change counter for both apps.

Both apps need the same SQLite tuning, the same schema lock, the same idea of a stored
time and the same change counter, so they live here once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
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
from sqlalchemy.exc import OperationalError


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
    that a second writer waits instead of failing, and foreign keys switched on. A new
    SQLite file is made with incremental auto-vacuum, so that :func:`compact` can give
    the pages of purged rows back to the file system. A bare path is taken as a SQLite file.
    """
    if "://" not in url:
        url = f"sqlite:///{Path(url).resolve()}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        # The driver keeps each connection's last prepared statements (128 by default). A radius
        # search lists its grid squares in an IN (...) whose length varies with place and radius,
        # so most searches prepare a new statement, some of them a hundred kilobytes: 128 of those
        # on every pooled connection is most of a web process's memory. A few dozen keep the
        # statements the harvest and the pages repeat.
        connect_args = {"timeout": 30, "check_same_thread": False, "cached_statements": 32}
        engine = create_engine(url, connect_args=connect_args, **_JSON)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            # Only a new, empty file takes it (before WAL, which writes the header); for an
            # existing file it would do nothing until a VACUUM (see compact()) but wait for
            # the write lock, so that every connection opened during a harvest's write would.
            if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
                cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
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


def write_if_free(engine: Engine, work: Callable[[Connection], object]) -> bool:
    """Run ``work`` in a transaction of its own if it can write at once; False when it could not.

    For what a request would like to keep but can do without (a geocoder's answer, placing
    listings that waited for it): a reader must never wait for a harvest's write. On SQLite
    the database has one writer at a time, so the transaction takes the write lock first
    (``BEGIN IMMEDIATE``) without waiting; on PostgreSQL it waits at most a moment for a row
    lock. Another request or the next harvest does the work when this one could not.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            raw = conn.connection.driver_connection
            assert raw is not None  # a live pool connection
            waited = raw.execute("PRAGMA busy_timeout").fetchone()[0]
            raw.execute("PRAGMA busy_timeout=0")
            try:
                with conn.begin():
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    work(conn)
            except OperationalError:  # another connection is writing (a harvest's page)
                return False
            finally:
                raw.execute(f"PRAGMA busy_timeout={waited}")
            return True
        try:
            with conn.begin():
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{FREE_WRITE_WAIT_MS}ms'")
                work(conn)
        except OperationalError:
            return False
        return True


# PostgreSQL locks rows, so a free write waits only for a writer of the same row, and this long.
FREE_WRITE_WAIT_MS = 100


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


# A housekeeping checkpoint waits this long (ms) for readers to move off the write-ahead log,
# then leaves it for the next pass: readers must never wait on housekeeping, nor it on them.
CHECKPOINT_WAIT_MS = 200
# Free pages worth returning to the file system: below this (4 MB of 4 KB pages) SQLite's
# reuse of free pages for new rows is enough. At most VACUUM_MAX_PAGES go in one pass, since
# the database's write lock is held meanwhile and harvests must not wait long for it.
VACUUM_MIN_FREE_PAGES = 1024
VACUUM_MAX_PAGES = 4096


def compact(engine: Engine) -> dict[str, int]:
    """Give the space of deleted rows back: what a housekeeping pass does after purging.

    SQLite: checkpoint the write-ahead log and truncate it (it otherwise keeps the size of
    its largest burst, and a log that readers keep from being reset goes on growing), then,
    when many pages are free and the file was made with incremental auto-vacuum
    (:func:`make_engine`), return them. Returns what it found and did, for a report.

    PostgreSQL: nothing here. Plain ``DELETE`` leaves dead rows that autovacuum marks for
    reuse, so a table whose purges keep pace with its inserts stays the same size on disk;
    giving space back to the file system would need ``VACUUM FULL``, which locks the table.
    """
    if engine.dialect.name != "sqlite":
        return {}
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None  # a live pool connection
        waited = raw.execute("PRAGMA busy_timeout").fetchone()[0]
        raw.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            free = raw.execute("PRAGMA freelist_count").fetchone()[0]
            incremental = raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
            returned = 0
            if incremental and free >= VACUUM_MIN_FREE_PAGES:
                # Each step of the statement frees one page; execute() would step it once only.
                raw.executescript(f"PRAGMA incremental_vacuum({min(free, VACUUM_MAX_PAGES)});")
                returned = free - raw.execute("PRAGMA freelist_count").fetchone()[0]
            busy, wal_pages, _copied = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:  # a reader or writer was in the way: copy what can be copied, without waiting
                _busy, wal_pages, _copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError:  # a writer held the database past the wait: try next pass
            return {"locked": 1}
        finally:
            raw.execute(f"PRAGMA busy_timeout={waited}")
    return {
        "log_reset": int(not busy),
        "wal_pages": wal_pages,
        "free_pages": free,
        "pages_returned": returned,
    }


def compacted(result: dict[str, int]) -> str:
    """What :func:`compact` did, in a sentence for a command's output ("" on PostgreSQL)."""
    if not result:
        return ""
    if result.get("locked"):
        return "The database was being written to; it is left for the next pass."
    return (
        f"The database's write-ahead log holds {result['wal_pages']} page(s) after its checkpoint; "
        f"{result['pages_returned']} free page(s) were given back."
    )
