"""Database engines for both apps.

Both apps need the same SQLite tuning and the same schema lock, so they live here once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, func, select


def _dumps(value: Any) -> str:
    # Non-string keys become strings, as the standard library's json does.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


SCHEMA_LOCK_KEY = 0x10CA1FEED  # PostgreSQL advisory lock held while creating tables

# JSON columns hold whole activities: orjson reads and writes them several times faster
# than the standard library, which a harvest of thousands of items a second notices.
_JSON = {"json_serializer": _dumps, "json_deserializer": orjson.loads}


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
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, future=True, **_JSON)


def create_tables(
    engine: Engine, metadata: MetaData, seed: Callable[[Connection], None] | None = None
) -> None:
    """Create whatever tables of ``metadata`` are missing, safely when several processes start at once.

    Each gunicorn worker builds its own app, and ``create_all`` looks before it creates:
    without a lock, two workers starting on a new database could both find a table
    missing, and the second CREATE would fail that worker's start (and, with it, gunicorn).
    ``seed`` runs under the same lock, for rows that must exist exactly once.
    """
    with engine.begin() as conn:
        lock_schema(conn)
        metadata.create_all(conn)
        if seed is not None:
            seed(conn)


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
