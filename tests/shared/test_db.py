"""The one column type for a time and the one change counter, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert, select

from federation.db import (
    UTCDateTime,
    counter_table,
    last_change_number,
    make_engine,
    next_change_numbers,
)

NOON_IN_LONDON_SUMMER = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/London"))  # 11:00 UTC


def _times(metadata: MetaData, kind) -> Table:
    return Table("times", metadata, Column("id", Integer, primary_key=True), Column("at", kind))


def test_times_go_in_aware_and_come_out_aware_utc(database_url):
    engine = make_engine(database_url)
    times = _times(MetaData(), UTCDateTime)
    times.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(times).values(id=1, at=NOON_IN_LONDON_SUMMER))
        conn.execute(
            insert(times).values(id=2, at=datetime(2026, 6, 1, 11, 30, tzinfo=timezone(timedelta(hours=-5))))
        )
        stored = conn.execute(select(times.c.at).order_by(times.c.id)).scalars().all()
        assert stored == [datetime(2026, 6, 1, 11, 0, tzinfo=UTC), datetime(2026, 6, 1, 16, 30, tzinfo=UTC)]
        assert all(value.tzinfo is UTC for value in stored)
        # Comparisons in SQL see the same instants, whatever zone the bound value is in.
        later = conn.execute(select(times.c.id).where(times.c.at > NOON_IN_LONDON_SUMMER)).scalars().all()
        assert later == [2]
        with pytest.raises(Exception, match="has no time zone"):
            conn.execute(insert(times).values(id=3, at=datetime(2026, 6, 1, 11, 0)))
    engine.dispose()


def test_a_column_made_naive_before_reads_and_compares_as_utc(postgres_url):
    """Tables made before UTCDateTime hold naive UTC; a session in another zone must not shift them."""
    engine = make_engine(postgres_url + "?options=-c%20TimeZone%3DAmerica/New_York")
    legacy = _times(MetaData(), DateTime())
    legacy.metadata.create_all(engine)
    times = _times(MetaData(), UTCDateTime)
    with engine.begin() as conn:
        conn.execute(insert(times).values(id=1, at=NOON_IN_LONDON_SUMMER))
        assert conn.execute(select(legacy.c.at)).scalar_one() == datetime(2026, 6, 1, 11, 0)
        assert conn.execute(select(times.c.at)).scalar_one() == NOON_IN_LONDON_SUMMER
        assert conn.execute(select(times.c.id).where(times.c.at < NOON_IN_LONDON_SUMMER)).all() == []
    engine.dispose()


def test_the_counter_hands_out_numbers_in_order_and_starts_once(database_url):
    metadata = MetaData()
    counter = counter_table(metadata, "changes")
    engine = make_engine(database_url)
    metadata.create_all(engine)
    metadata.create_all(engine)  # the table is there: nothing more is seeded
    with engine.begin() as conn:
        assert last_change_number(conn, counter) == 0
        assert next_change_numbers(conn, counter, 3) == range(1, 4)
        assert next_change_numbers(conn, counter) == range(4, 5)
    with engine.begin() as conn:
        next_change_numbers(conn, counter, 2)
        conn.rollback()  # a write that failed takes no number
    with engine.connect() as conn:
        assert last_change_number(conn, counter) == 4
    engine.dispose()
