"""Database engines for both apps.

Lives in ``schema`` because the publisher and the aggregator may import nothing of
ours but ``schema`` (see docs/architecture.md), and both need the same SQLite tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event


def _dumps(value: Any) -> str:
    # Non-string keys become strings, as the standard library's json does.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


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
