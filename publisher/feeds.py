"""The publisher's feeds: RPDE (the one harvesters walk), Atom and iCalendar.

Every feed response names its WebSub hub and itself in ``Link`` headers, so a
subscriber can discover push from any of them, and carries an ``ETag`` so that
re-polling an unchanged feed costs a ``304`` and no body.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from federation.feedpaging import cached_response, rpde_response
from federation.feeds import ATOM_MEDIA_TYPE, ICAL_MEDIA_TYPE, FeedInfo, Tombstone, render_atom, render_ical
from publisher.extensions import get_store, hub_url, limiter, public_rate_limit, public_url
from publisher.store import StoredActivity
from schema import rpde

bp = Blueprint("feeds", __name__, url_prefix="/feeds")
limiter.limit(public_rate_limit)(bp)

RPDE_PATH = "/feeds/activities"
ATOM_PATH = "/feeds/activities.atom"
ICAL_PATH = "/feeds/activities.ics"
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


def _rpde_item(stored: StoredActivity) -> dict:
    if stored.is_deleted:
        return rpde.deleted_item(stored.uri, stored.change_number, stored.kind)
    return rpde.updated_item(stored.uri, stored.change_number, stored.data, stored.kind)


@bp.get("/activities")
def activities() -> Response:
    """One RPDE page: the changes after ``afterChangeNumber`` (0 when absent), oldest first."""
    feed_url = public_url() + RPDE_PATH
    response = rpde_response(
        feed_url, _changes, current_app.config["PAGE_SIZE"], current_app.config["FEED_LICENSE"]
    )
    return _linked(response, feed_url) if response.status_code < 400 else response


def _changes(after: int, limit: int) -> list[dict]:
    return [_rpde_item(stored) for stored in get_store().changes_after(after, limit)]


def _feed_info(self_path: str, title_suffix: str) -> FeedInfo:
    name = current_app.config["PUBLISHER_NAME"]
    return FeedInfo(
        title=f"{name}: {title_suffix}",
        self_url=public_url() + self_path,
        home_url=public_url() + "/",
        hub_url=hub_url(),
        license_url=current_app.config["FEED_LICENSE"],
    )


@bp.get("/activities.atom")
def atom() -> Response:
    """Every activity as an Atom entry, and recent deletions as tombstones."""
    stored = get_store().list_activities(include_deleted=True)
    info = _feed_info(ATOM_PATH, "activities")
    body = render_atom(
        info,
        [item.data for item in stored if not item.is_deleted],
        [Tombstone(item.uri, item.deleted_at) for item in stored if item.is_deleted],
    )
    return _respond(body, ATOM_MEDIA_TYPE, OTHER_FEEDS_MAX_AGE, info.self_url)


@bp.get("/activities.ics")
def ical() -> Response:
    """Every activity's sessions, to subscribe to in a calendar app."""
    info = _feed_info(ICAL_PATH, "activity calendar")
    body = render_ical(info, [item.data for item in get_store().list_activities()])
    # Calendar apps poll; the hub pushes the RPDE and Atom topics only.
    return _respond(body, ICAL_MEDIA_TYPE, OTHER_FEEDS_MAX_AGE, info.self_url, pushed=False)
