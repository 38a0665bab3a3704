"""Public pages: the home page (discovery) and one page per activity (where its ``id`` resolves).

The home page describes the feeds as a schema.org ``Dataset`` and links each one with
``<link rel="alternate">``, so an aggregator given only the publisher's address finds
them. An activity page is HTML for people and, for ``Accept: application/json``, the
activity itself for machines: one URL, as the ``id`` promises.

Whatever a stored activity holds, both pages are served: the home page renders each listed
activity under the shared guard (:func:`federation.feeds.common.render_each`), leaving out one
that cannot be shown, and an activity page that cannot show its details shows its name and an
apology instead.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, current_app, get_template_attribute, jsonify, render_template, request

from federation.clock import utcnow
from federation.feeds.common import page_text, render_each, render_one, renderable
from federation.feeds.common import vocab_label as label_of
from federation.feeds.schemaorg import schema_org_events
from publisher.extensions import get_store, hub_url, limiter, public_rate_limit, public_url
from publisher.feeds import feed_links
from publisher.store import StoredActivity
from schema import next_occurrences
from schema.price import describe_price
from schema.schedule import describe
from schema.text import http_url

bp = Blueprint("pages", __name__)
limiter.limit(public_rate_limit)(bp)

FEED_TITLES = {
    "application/vnd.localfeed.rpde+json": "Activity feed (RPDE JSON)",
    "application/atom+xml": "Activity feed (Atom)",
    "text/calendar": "Activity calendar (iCalendar)",
}
BOOKING_METHODS = {
    "drop-in": "Just turn up: no need to book.",
    "book-ahead": "Book a place before you go.",
    "referral": "You need a referral, for example from a GP or link worker.",
    "contact-first": "Get in touch before your first visit.",
}
CAPACITY = {
    "spaces": "There are spaces.",
    "waiting-list": "Full at the moment: there is a waiting list.",
    "full": "Full at the moment.",
    "unknown": "Ask whether there is space.",
}
STATUS = {"paused": "Paused for now", "cancelled": "Cancelled"}
NEXT_SESSIONS = 3


@bp.app_template_filter("vocab_label")
def vocab_label(item_id: str, kind: str) -> str:
    """The English label of a vocabulary id; an id the vocabulary no longer has is shown as it is."""
    return label_of(kind, item_id)


# A stored link is made clickable only if it is http(s): never a javascript: or data: link.
bp.add_app_template_filter(http_url, "http_url")


@bp.app_template_filter("long_date")
def long_date(value: str | date | datetime) -> str:
    """``2026-12-10`` as "Thursday 10 December 2026"."""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return f"{value:%A} {value.day} {value:%B %Y}"


@bp.app_template_global()
def schedule_text(entry: dict[str, Any]) -> str:
    return describe(entry)


bp.add_app_template_global(describe_price, "price_text")


@bp.app_template_global()
def upcoming_sessions(activity: dict[str, Any], count: int = NEXT_SESSIONS) -> list[str]:
    """The next sessions in plain English, e.g. "Tuesday 1 December 2026, 10:00 to 11:00"."""
    return [
        f"{long_date(occurrence.start)}, {occurrence.start:%H:%M} to {occurrence.end:%H:%M}"
        for occurrence in next_occurrences(activity, utcnow(), count)
    ]


@bp.record_once
def _wording(state) -> None:
    # Globals, not a context processor, so imported macros (the editors' preview) see them too.
    state.app.jinja_env.globals.update(BOOKING_METHODS=BOOKING_METHODS, CAPACITY=CAPACITY, STATUS=STATUS)
    state.app.jinja_env.finalize = page_text  # no stored text can put a control character on a page


def dataset(feeds: dict[str, str]) -> dict[str, Any]:
    """A schema.org Dataset describing this publisher's feeds, one distribution per format."""
    name = current_app.config["PUBLISHER_NAME"]
    return {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "name": f"{name}: community activities",
        "description": f"Community activities from {name}, kept up to date by the groups that run them.",
        "url": public_url() + "/",
        "license": current_app.config["FEED_LICENSE"],
        "creator": {"@type": "Organization", "name": name, "url": public_url() + "/"},
        "isAccessibleForFree": True,
        "distribution": [
            {
                "@type": "DataDownload",
                "name": FEED_TITLES[media_type],
                "encodingFormat": media_type,
                "contentUrl": url,
            }
            for media_type, url in feeds.items()
        ],
    }


@bp.get("/")
def home() -> str:
    store = get_store()
    by_group: dict[int, list[StoredActivity]] = defaultdict(list)
    for stored in store.list_activities():
        by_group[stored.group_id].append(stored)
    listed = get_template_attribute("_listed_activity.html", "listed_activity")
    feeds = feed_links()
    return render_template(
        "index.html",
        groups=store.list_groups(),
        by_group={
            group_id: list(render_each(sorted(items, key=_by_name), listed, where="Home page"))
            for group_id, items in by_group.items()
        },
        feeds=feeds,
        feed_titles=FEED_TITLES,
        hub=hub_url(),
        dataset=dataset(feeds),
    )


def _by_name(stored: StoredActivity) -> str:
    name = (stored.data or {}).get("name")
    return name.lower() if isinstance(name, str) else ""


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/ld+json"])
    return best in ("application/json", "application/ld+json")


@bp.get("/activities/<slug>")
def activity(slug: str) -> Response | tuple[str, int] | str:
    stored = get_store().get_activity(slug)
    wants_json = _wants_json()
    if stored is None or stored.is_deleted:
        status = 404 if stored is None else 410
        message = "There is no such activity here." if stored is None else "This activity has been removed."
        if wants_json:
            response = jsonify(message=message)
            response.status_code = status
        else:
            response = current_app.make_response((render_template("gone.html", status=status), status))
        response.vary.add("Accept")
        return response
    if wants_json:
        response = jsonify(stored.data)
    else:
        page = render_one(stored.live_data, _activity_page, where="Activity page")
        response = current_app.make_response(page or _activity_page_in_brief(stored.live_data))
    response.vary.add("Accept")
    return response


def _activity_page(activity: dict[str, Any]) -> str:
    # Search engines read the page's JSON-LD; machines that want the activity itself ask for JSON.
    json_ld = schema_org_events(activity, utcnow(), NEXT_SESSIONS)
    return render_template("activity.html", activity=renderable(activity), json_ld=json_ld)


def _activity_page_in_brief(activity: dict[str, Any]) -> str:
    """The page of an activity whose details cannot be shown: its name and an apology.

    Reads nothing but the name, checked to be text, so it cannot fail on what the activity holds.
    """
    name = activity.get("name")
    return render_template(
        "activity_in_brief.html", name=renderable(name) if isinstance(name, str) and name else "This activity"
    )
