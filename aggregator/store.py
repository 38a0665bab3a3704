"""The aggregator's SQL store (SQLAlchemy Core). Every table is defined on ``metadata``.

Three layers of data, so that each source can be corrected or dropped alone:

- ``copies``: what each source says about each item (one row per source per item);
- ``quarantine``: what a source sent that broke the contract, with the reasons;
- ``merged``: one row per real-world activity, built from the copies, with provenance.
  It is what the query API, the embeds and the republished feed read.

``counter`` hands out the change numbers of the republished RPDE feed. Taking the next
number is an UPDATE of its one row, so writers queue on that row and commit in
number order: no change can commit behind a reader's cursor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from federation.db import create_tables

metadata = MetaData()

SOURCE_STATES = ("pending", "approved", "paused", "stopped")


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp in the store is UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: read them as the UTC they were written in."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False),  # what the operator or the requester gave
    Column("feed_url", Text, nullable=False),  # the feed harvested (discovered from ``url``)
    Column("kind", String(32), nullable=False, default="localfeed"),  # adapter KIND
    Column("name", Text, nullable=False, default=""),
    Column("state", String(16), nullable=False, default="pending"),
    Column("trust", Integer, nullable=False, default=50),  # 0-100; the most trusted copy wins a merge
    # Who vouches for this source's listings, e.g. "Merton CVS" when its staff visit the groups;
    # null when nobody here checks them (aggregator.quality sets it).
    Column("checked_by", Text),
    Column("requested_by", Text),  # who asked to be included (public form), shown to the operator
    Column("request_message", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    # Harvest progress: the cursor is written in the same transaction as each page.
    Column("cursor", Text),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_harvest_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_status", String(16)),  # ok | not-modified | error | busy | gone
    Column("last_error", JSON),  # {"thing", "cause", "fix", "at"} or null
    Column("failures", Integer, nullable=False, default=0),  # consecutive, drives the backoff
    Column("next_attempt_at", DateTime(timezone=True)),
    # A DB-row lease keeps one harvest per source at a time when there is no Redis lock.
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),
    # WebSub state (the source's hub, our subscription) is aggregator.subscriptions' push_subscriptions.
)

copies = Table(
    "copies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("item_id", Text, nullable=False),
    Column("data", JSON, nullable=False),
    # From an upstream aggregator's feed: its provenance entries for the item
    # ([{"source_url", "item_id", "via": [aggregators, nearest last]}]); empty straight from a publisher.
    Column("upstream", JSON, nullable=False, default=list),
    Column("last_verified", String(32)),
    Column("modified", Text),  # the source's own change marker (RPDE ``modified``)
    Column("harvested_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("merged_id", Integer, ForeignKey("merged.id"), index=True),
    UniqueConstraint("source_id", "item_id", name="uq_copies_source_item"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("item_ref", Text, nullable=False),  # the item id, or the source's own name for it
    Column("problems", JSON, nullable=False),  # [{"path", "code", "message"}]
    Column("data", JSON),
    Column("first_seen", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("last_seen", DateTime(timezone=True), nullable=False, default=utcnow),
    UniqueConstraint("source_id", "item_ref", name="uq_quarantine_source_item"),
)

merged = Table(
    "merged",
    metadata,
    Column("id", Integer, primary_key=True),
    # The id the republished feed uses: the publisher's id of the first copy seen. Stable
    # for ever, even when another source's copy later wins.
    Column("item_id", Text, nullable=False, unique=True),
    Column("kind", String(32), nullable=False, default="SessionSeries"),  # kept for the tombstone
    Column("data", JSON),  # the winning copy (with sameAs listing the other copies' ids); null when deleted
    Column("provenance", JSON, nullable=False, default=list),
    Column("state", String(16), nullable=False, default="updated"),  # updated | deleted
    Column("change_number", BigInteger, nullable=False, index=True),
    Column("modified_at", DateTime(timezone=True), nullable=False, default=utcnow),
)

# What a merged item can be recognised by: its copies' ids and sameAs URIs ("uri:..."),
# and the careful name + postcode + schedule key ("match:..."). Rebuilt with the item.
merge_keys = Table(
    "merge_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("merged_id", Integer, ForeignKey("merged.id", ondelete="CASCADE"), primary_key=True),
)
Index("ix_merge_keys_merged_id", merge_keys.c.merged_id)

counter = Table(
    "counter",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

operators = Table(
    "operators",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
)

CHANGES = "changes"
# Values per IN (...) list: well inside SQLite's and PostgreSQL's parameter limits.
IN_LIST_SIZE = 500


def chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    """``values`` in lists short enough for one ``IN (...)``."""
    values = list(values)
    for start in range(0, len(values), IN_LIST_SIZE):
        yield values[start : start + IN_LIST_SIZE]


def init_store(engine: Engine) -> None:
    """Create the tables and the change counter (idempotent; safe on every start, in every worker)."""
    create_tables(engine, metadata, seed=_seed_counter)


def _seed_counter(conn: Connection) -> None:
    if conn.execute(select(counter.c.value).where(counter.c.name == CHANGES)).first() is None:
        conn.execute(insert(counter).values(name=CHANGES, value=0))


def next_change_numbers(conn: Connection, count: int) -> range:
    """Take ``count`` change numbers at once; the row stays locked until ``conn``'s transaction ends."""
    last = conn.execute(
        update(counter)
        .where(counter.c.name == CHANGES)
        .values(value=counter.c.value + count)
        .returning(counter.c.value)
    ).scalar_one()
    return range(last - count + 1, last + 1)


def next_change_number(conn: Connection) -> int:
    """Take the next change number (and with it the counter's row lock)."""
    return next_change_numbers(conn, 1)[0]
