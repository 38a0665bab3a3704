"""Republishing the merged set, in the same formats a publisher serves, with provenance.

Another aggregator follows this one with the same code it uses for publishers. Each RPDE
item carries ``"localfeed:provenance"``: the sources of the merged item, each with the
chain of aggregators (``via``) it came through, ending with this one. A follower drops
any item whose chain already holds its own address, so two aggregators following each
other never echo items back and forth.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from aggregator.adapters import PROVENANCE_KEY
from aggregator.store import as_utc, merged, utcnow
from federation.feedpaging import cached_response, rpde_response
from federation.feeds import ATOM_MEDIA_TYPE, ICAL_MEDIA_TYPE, FeedInfo, Tombstone, render_atom, render_ical
from schema.rpde import DEFAULT_LICENSE, deleted_item, updated_item

bp = Blueprint("feeds", __name__)

PAGE_SIZE = 500  # RPDE paging and caching are federation.feedpaging's, as at a publisher
OTHER_FEEDS_MAX_AGE = 60  # Atom and iCalendar, as at a publisher
# Tombstones stay in the Atom feed this long so that readers see the deletion.
TOMBSTONE_DAYS = 30


def own_url() -> str:
    """This aggregator's base URL: PUBLIC_URL, or the one the request came in on."""
    return (current_app.config.get("PUBLIC_URL") or request.url_root).rstrip("/")


def republished_provenance(provenance: list[dict[str, Any]], via: str) -> list[dict[str, Any]]:
    """The provenance a follower sees: each source, and the aggregators it came through, then us."""
    return [
        {"source_url": entry["source_url"], "item_id": entry["item_id"], "via": [*entry.get("via", []), via]}
        for entry in provenance
    ]


def _open(response: Response) -> Response:
    """Any website's script may read the merged feeds."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/feeds/activities")
def activities() -> Response:
    """One RPDE page of the merged set, after the change number the reader has reached."""
    return _open(rpde_response(f"{own_url()}/feeds/activities", _changes, PAGE_SIZE, DEFAULT_LICENSE))


def _changes(after: int, limit: int) -> list[dict[str, Any]]:
    engine = current_app.extensions["engine"]
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                merged.c.item_id,
                merged.c.kind,
                merged.c.state,
                merged.c.data,
                merged.c.provenance,
                merged.c.change_number,
            )
            .where(merged.c.change_number > after)
            .order_by(merged.c.change_number)
            .limit(limit)
        ).all()
    base = own_url()
    items = []
    for row in rows:
        if row.state == "deleted":
            items.append(deleted_item(row.item_id, row.change_number, row.kind))
            continue
        item = updated_item(row.item_id, row.change_number, row.data, row.kind)
        item[PROVENANCE_KEY] = republished_provenance(row.provenance, base)
        items.append(item)
    return items


def _feed_info(path: str) -> FeedInfo:
    base = own_url()
    name = current_app.config["AGGREGATOR_NAME"]
    return FeedInfo(
        title=name,
        self_url=f"{base}{path}",
        home_url=f"{base}/",
        hub_url=f"{base}/websub",  # aggregator.hub
        license_url=DEFAULT_LICENSE,
        subtitle=f"Community activities followed and merged by {name}.",
    )


def _current() -> list[dict[str, Any]]:
    engine = current_app.extensions["engine"]
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(merged.c.data).where(merged.c.state == "updated").order_by(merged.c.change_number)
            ).scalars()
        )


@bp.get("/feeds/activities.atom")
def activities_atom() -> Response:
    since = utcnow() - timedelta(days=TOMBSTONE_DAYS)
    engine = current_app.extensions["engine"]
    with engine.connect() as conn:
        deleted = conn.execute(
            select(merged.c.item_id, merged.c.modified_at).where(
                merged.c.state == "deleted", merged.c.change_number > 0, merged.c.modified_at >= since
            )
        ).all()
    tombstones = [Tombstone(row.item_id, as_utc(row.modified_at)) for row in deleted]
    body = render_atom(_feed_info("/feeds/activities.atom"), _current(), tombstones)
    return _open(cached_response(body, ATOM_MEDIA_TYPE, OTHER_FEEDS_MAX_AGE))


@bp.get("/feeds/activities.ics")
def activities_ics() -> Response:
    body = render_ical(_feed_info("/feeds/activities.ics"), _current())
    return _open(cached_response(body, ICAL_MEDIA_TYPE, OTHER_FEEDS_MAX_AGE))
