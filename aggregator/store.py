"""The aggregator's SQL store (SQLAlchemy Core). Every table is defined on ``metadata``.

Three layers of data, so that each source can be corrected or dropped alone:

- ``copies``: what each source says about each item (one row per source per item);
- ``quarantine``: what a source sent that broke the contract, with the reasons;
- ``merged``: one row per real-world activity, built from the copies, with provenance.
  It is what the query API, the embeds and the republished feed read.

``counter`` hands out the change numbers of the republished RPDE feed
(:func:`federation.db.next_change_numbers`): writers queue on its row and commit in
number order, so no change can commit behind a reader's cursor. A writer that may
change merged items takes a number first thing, even if it ends up changing none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Engine

from federation import migrate
from federation.clock import utcnow
from federation.db import UTCDateTime, counter_table
from federation.sessions import generation_column
from federation.websub.hub import define_tables

metadata = MetaData()

# "discovering": its feed is being found (aggregator.discovery); "no-feed": none was found,
# and last_error says why.
SOURCE_STATES = ("pending", "approved", "paused", "stopped", "discovering", "no-feed")


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
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    # Harvest progress: the cursor is written in the same transaction as each page.
    Column("cursor", Text),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_harvest_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_status", String(16)),  # ok | not-modified | error | busy | gone
    Column("last_error", JSON),  # {"thing", "cause", "fix", "at"} or null
    Column("failures", Integer, nullable=False, default=0),  # consecutive, drives the backoff
    Column("next_attempt_at", UTCDateTime),
    # A DB-row lease keeps one harvest per source at a time when there is no Redis lock.
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime),
    # An aggregator relays other publishers' items (with provenance naming their origin); a
    # plain publisher may only speak for ids on its own origin (aggregator.authority).
    Column("is_aggregator", Boolean, nullable=False, default=False, server_default=false()),
    # While the feed is being found, or after it could not be: {"then": the state to take once it
    # is found, "since": when it was asked, "job": the asking's token}; null once the feed is known.
    Column("discovery", JSON),
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
    # The source's own change marker for the item (RPDE ``modified``): an older change never replaces it.
    Column("modified", Text),
    Column("harvested_at", UTCDateTime, nullable=False, default=utcnow),
    Column("merged_id", Integer, ForeignKey("merged.id"), index=True),
    UniqueConstraint("source_id", "item_id", name="uq_copies_source_item"),
)

# What each source last said of each item it deleted, and when (its change marker), so a late,
# older update of the item (a retried push) cannot bring it back. ``buried_at`` is when we
# learnt of it: housekeeping forgets tombstones once the publisher has forgotten its own
# (aggregator.housekeeping says why that is safe).
tombstones = Table(
    "tombstones",
    metadata,
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("modified", Text, nullable=False),
    Column("buried_at", UTCDateTime, nullable=False, default=utcnow, index=True),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("item_ref", Text, nullable=False),  # the item id, or the source's own name for it
    Column("problems", JSON, nullable=False),  # [{"path", "code", "message"}]
    Column("data", JSON),
    Column("first_seen", UTCDateTime, nullable=False, default=utcnow),
    Column("last_seen", UTCDateTime, nullable=False, default=utcnow),
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
    Column("modified_at", UTCDateTime, nullable=False, default=utcnow),
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

counter = counter_table(metadata, "counter")

operators = Table(
    "operators",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    generation_column(),  # logging out and a new password replace it (federation.sessions)
)

# Anonymous impact counts (aggregator.impact, federation.impact): how often each activity was
# shown, opened, printed, shortlisted or had its booking link or contact followed, per London day,
# per embedding website (its origin, never a page path) and per kind. A count is all a row holds:
# no address, browser, cookie or identifier of anyone is ever written.
impact_counts = Table(
    "impact_counts",
    metadata,
    Column("activity_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("site", Text, primary_key=True),  # "https://surgery.example"; "" when the browser named none
    Column("kind", String(16), primary_key=True),  # federation.impact.KINDS
    Column("origin", Text, nullable=False),  # the activity id's origin: whose report the row is in
    Column("events", BigInteger, nullable=False),
)
Index("ix_impact_counts_origin_day", impact_counts.c.origin, impact_counts.c.day)

# Counts other aggregators made of items we relay to them, fetched from their reports so that
# the publisher's report from us carries them back along the provenance chain. Already
# suppressed: these are their published day cells, as they published them.
impact_relayed = Table(
    "impact_relayed",
    metadata,
    Column("counted_by", Text, primary_key=True),  # the counting aggregator's origin
    Column("origin", Text, primary_key=True),  # the publisher's origin the cells are for
    Column("generated", Text, nullable=False),  # when that aggregator made the report (ISO 8601)
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("days", JSON, nullable=False),
)

# Values per IN (...) list: well inside SQLite's and PostgreSQL's parameter limits.
IN_LIST_SIZE = 500


def chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    """``values`` in lists short enough for one ``IN (...)``."""
    values = list(values)
    for start in range(0, len(values), IN_LIST_SIZE):
        yield values[start : start + IN_LIST_SIZE]


def _every_table() -> MetaData:
    """``metadata`` with the tables the aggregator's other modules and its WebSub hub add to it."""
    from aggregator import geocode, hub, search_index, subscriptions  # noqa: F401  (tables, on import)

    define_tables(metadata)
    return metadata


MIGRATIONS = migrate.Migrations(
    versions=Path(__file__).with_name("migrations"), tables=_every_table, program="localfeed-aggregator"
)


def init_store(engine: Engine, *, auto_upgrade: bool = False) -> None:
    """Build a new database, or check an existing one is at the latest revision (or upgrade it).

    Safe on every start, in every web and job worker (:func:`federation.migrate.prepare`).
    """
    migrate.prepare(engine, MIGRATIONS, auto_upgrade=auto_upgrade)
