"""The publisher's feeds: RPDE (the one harvesters walk), Atom and iCalendar.

Every feed response names its WebSub hub and itself in ``Link`` headers, so a
subscriber can discover push from any of them, and carries an ``ETag`` so that
re-polling an unchanged feed costs a ``304`` and no body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, current_app

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
from publisher.extensions import get_store, hub_url, limiter, public_rate_limit, public_url
from publisher.store import StoredActivity

bp = Blueprint("feeds", __name__, url_prefix="/feeds")
limiter.limit(public_rate_limit)(bp)

OTHER_FEEDS_MAX_AGE = 60  # RPDE pages' caching is federation.feedpaging's


def feed_links() -> dict[str, str]:
    """Each feed's absolute URL by media type, for discovery links and the Dataset description."""
    base = public_url()
    return {
        "application/vnd.localfeed.rpde+json": base + RPDE_PATH,
        ATOM_MEDIA_TYPE: base + ATOM_PATH,
        ICAL_MEDIA_TYPE: base + ICAL_PATH,
    }


def _respond(body: bytes, mimetype: str, max_age: int, self_url: str, *, pushed: bool = True) -> Response:
    """A feed response; ``pushed`` feeds name the WebSub hub that pushes their changes."""
    return _linked(cached_response(body, mimetype, max_age), self_url, pushed=pushed)


def _linked(response: Response, self_url: str, *, pushed: bool = True) -> Response:
    links = [f'<{hub_url()}>; rel="hub"'] if pushed else []
    response.headers["Link"] = ", ".join([*links, f'<{self_url}>; rel="self"'])
    return response


def feed_builder(config: Mapping[str, Any]) -> FeedBuilder:
    """The feeds' items and metadata, for polling (``bp``) and pushing (``publisher.hub``) alike."""
    return FeedBuilder(
        title=f"{config['PUBLISHER_NAME']}: activities",
        license_url=config["FEED_LICENSE"],
        region=config.get("PUBLISHER_REGION") or None,
    )


def stored_change(stored: StoredActivity) -> Change:
    """An activity or tombstone of the store as the feeds list it."""
    return Change(
        id=stored.uri,
        change_number=stored.change_number,
        state=stored.state,
        kind=stored.kind,
        data=stored.data,
        when=stored.modified_at,  # a deletion's time, for a tombstone
    )


@bp.get("/activities")
def activities() -> Response:
    """One RPDE page: the changes after ``afterChangeNumber`` (0 when absent), oldest first."""
    feed_url = public_url() + RPDE_PATH
    license_url = feed_builder(current_app.config).license_url
    response = rpde_response(feed_url, _changes, current_app.config["PAGE_SIZE"], license_url)
    return _linked(response, feed_url) if response.status_code < 400 else response


def _changes(after: int, limit: int) -> list[dict[str, Any]]:
    builder, base = feed_builder(current_app.config), public_url()
    changes = map(stored_change, get_store().changes_after(after, limit))
    return builder.rpde_items(changes, base)


@bp.get("/activities.atom")
def atom() -> Response:
    """Every activity as an Atom entry, and recent deletions as tombstones."""
    stored = get_store().list_activities(include_deleted=True)
    body = feed_builder(current_app.config).atom(map(stored_change, stored), public_url())
    return _respond(body, ATOM_MEDIA_TYPE, OTHER_FEEDS_MAX_AGE, public_url() + ATOM_PATH)


@bp.get("/activities.ics")
def ical() -> Response:
    """Every activity's sessions, to subscribe to in a calendar app."""
    info = feed_builder(current_app.config).info(public_url(), ICAL_PATH)
    info = replace(info, title=f"{current_app.config['PUBLISHER_NAME']}: activity calendar")
    body = render_ical(info, [item.live_data for item in get_store().list_activities()])
    # Calendar apps poll; the hub pushes the RPDE and Atom topics only.
    return _respond(body, ICAL_MEDIA_TYPE, OTHER_FEEDS_MAX_AGE, info.self_url, pushed=False)
