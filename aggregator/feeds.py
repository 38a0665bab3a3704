"""Republishing the merged set, in the same formats a publisher serves, with provenance.

Another aggregator follows this one with the same code it uses for publishers. Each RPDE
item carries ``"localfeed:provenance"``: the sources of the merged item, each with the
chain of aggregators (``via``) it came through, ending with this one. A follower drops
any item whose chain already holds its own address, so two aggregators following each
other never echo items back and forth.

The feeds carry what the query API shows: a listing the API hides as expired (its
``lastVerified`` too old, ``aggregator.freshness``) is published as deleted, in every feed
and push alike, and as updated again when a newer confirmation arrives. Expiry needs no
change of its own here: ``freshness.publish_expiries`` renumbers what time alone expired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import Connection, or_, select

from aggregator.adapters import PROVENANCE_KEY
from aggregator.freshness import Thresholds, is_expired
from aggregator.store import merged
from federation.clock import utcnow
from federation.feedpaging import cached_response, rpde_response
from federation.feeds import (
    ATOM_MEDIA_TYPE,
    ATOM_PATH,
    ICAL_MEDIA_TYPE,
    ICAL_PATH,
    RPDE_PATH,
    Change,
    FeedBuilder,
    render_ical,
)
from schema.rpde import DEFAULT_LICENSE, DELETED

bp = Blueprint("feeds", __name__)

PAGE_SIZE = 500  # RPDE paging and caching are federation.feedpaging's, as at a publisher
OTHER_FEEDS_MAX_AGE = 60  # Atom and iCalendar, as at a publisher
# Tombstones stay in the Atom feed this long so that readers see the deletion.
TOMBSTONE_DAYS = 30


def own_url() -> str:
    """This aggregator's base URL: PUBLIC_URL, or the one the request came in on."""
    return (current_app.config.get("PUBLIC_URL") or request.url_root).rstrip("/")


def republished_provenance(provenance: Sequence[Mapping[str, Any]], via: str) -> list[dict[str, Any]]:
    """The provenance a follower sees: each source, and the aggregators it came through, then us."""
    return [
        {"source_url": entry["source_url"], "item_id": entry["item_id"], "via": [*entry.get("via", []), via]}
        for entry in provenance
    ]


@dataclass(frozen=True)
class MergedFeedBuilder(FeedBuilder):
    """A publisher's items, each with its provenance as a follower sees it from ``base``; expired, deleted."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    now: Callable[[], datetime] = utcnow  # the app's clock, as the API reads it

    def published(self, change: Change) -> Change:
        """``change`` as the feeds publish it: deleted if the listing has expired."""
        if not change.deleted and is_expired(change.data, self.now(), self.thresholds):
            return replace(change, state=DELETED, data=None)
        return change

    def rpde_item(self, change: Change, base: str) -> dict[str, Any]:
        change = self.published(change)
        item = super().rpde_item(change, base)
        if not change.deleted:
            item[PROVENANCE_KEY] = republished_provenance(change.provenance, base)
        return item

    def atom(self, changes: Iterable[Change], base: str) -> bytes:
        return super().atom(map(self.published, changes), base)


def feed_builder(config: Mapping[str, Any]) -> MergedFeedBuilder:
    """The merged feeds' items and metadata, for polling (``bp``) and pushing (``aggregator.hub``) alike."""
    name = config["AGGREGATOR_NAME"]
    return MergedFeedBuilder(
        title=name,
        license_url=DEFAULT_LICENSE,
        subtitle=f"Community activities followed and merged by {name}.",
        thresholds=Thresholds.from_config(config),
        now=config.get("CLOCK") or utcnow,  # federation.clock.clock, from settings alone
    )


def merged_change(row: Any) -> Change:
    """A row of the merged table as the feeds list it."""
    return Change(
        id=row.item_id,
        change_number=row.change_number,
        state=row.state,
        kind=row.kind,
        data=row.data,
        when=row.modified_at,
        provenance=row.provenance or (),
    )


def merged_changes(conn: Connection, *where: Any, limit: int | None = None) -> list[Change]:
    """The merged items matching ``where``, oldest change first."""
    m = merged.c
    query = (
        select(m.item_id, m.change_number, m.state, m.kind, m.data, m.modified_at, m.provenance)
        .where(*where)
        .order_by(m.change_number)
        .limit(limit)
    )
    return [merged_change(row) for row in conn.execute(query)]


def _open(response: Response) -> Response:
    """Any website's script may read the merged feeds."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get(RPDE_PATH)
def activities() -> Response:
    """One RPDE page of the merged set, after the change number the reader has reached."""
    builder = feed_builder(current_app.config)
    return _open(rpde_response(own_url() + RPDE_PATH, _changes, PAGE_SIZE, builder.license_url))


def _changes(after: int, limit: int) -> list[dict[str, Any]]:
    with current_app.extensions["engine"].connect() as conn:
        changes = merged_changes(conn, merged.c.change_number > after, limit=limit)
    builder, base = feed_builder(current_app.config), own_url()
    return builder.rpde_items(changes, base)


@bp.get(ATOM_PATH)
def activities_atom() -> Response:
    """Every merged activity as an Atom entry, and the deletions of the last TOMBSTONE_DAYS as tombstones."""
    since = utcnow() - timedelta(days=TOMBSTONE_DAYS)
    recently_deleted = (merged.c.change_number > 0) & (merged.c.modified_at >= since)
    with current_app.extensions["engine"].connect() as conn:
        changes = merged_changes(conn, or_(merged.c.state == "updated", recently_deleted))
    builder = feed_builder(current_app.config)
    # An expiry is a deletion: its tombstone stays as long as any other's.
    shown = [
        change for change in map(builder.published, changes) if not change.deleted or change.when >= since
    ]
    body = builder.atom(shown, own_url())
    return _open(cached_response(body, ATOM_MEDIA_TYPE, OTHER_FEEDS_MAX_AGE))


@bp.get(ICAL_PATH)
def activities_ics() -> Response:
    """Every merged activity's sessions, to subscribe to in a calendar app."""
    # Only the activities themselves: decoding each row's provenance too would be wasted work
    # in a calendar that can hold tens of thousands of them.
    m = merged.c
    query = select(m.data).where(m.state == "updated").order_by(m.change_number)
    builder = feed_builder(current_app.config)
    now = builder.now()
    with current_app.extensions["engine"].connect() as conn:
        activities = [
            row.data
            for row in conn.execute(query)
            if row.data is not None and not is_expired(row.data, now, builder.thresholds)
        ]
    info = builder.info(own_url(), ICAL_PATH)
    body = render_ical(info, activities)
    return _open(cached_response(body, ICAL_MEDIA_TYPE, OTHER_FEEDS_MAX_AGE))
