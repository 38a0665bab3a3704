"""The aggregator's feeds carry what its API shows: expired listings go, and come back when confirmed.

Time alone expires a listing (its ``lastVerified`` falls more than STALE_DAYS behind), so
``freshness.publish_expiries`` gives each such listing a new change number, and the feeds
publish it as deleted after a follower's cursor. A listing whose source gives no date at all
is "not confirmed by the organiser", dated the day it was first seen, never stamped afresh.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
import pytest
from flask import Flask, Response
from sqlalchemy import select, update

from aggregator import freshness
from aggregator.adapters.mapping import VERIFIED_BY, VERIFIED_BY_HARVEST, keep_verification
from aggregator.adapters.mapping import freshness as dated
from aggregator.store import copies
from tests.aggregator.conftest import follow, harvest
from tests.aggregator.feedserver import FeedServer
from tests.aggregator.test_api import Clock
from tests.factories import weekly_activity

TODAY = datetime.now(UTC).date()
ATOM = "{http://www.w3.org/2005/Atom}"
TOMBSTONE = "{http://purl.org/atompub/tombstones/1.0}"  # RFC 6721


def _walk(feed: FeedServer, name: str, verified: date) -> dict[str, Any]:
    return weekly_activity(id=feed.activity_id(name), name=name, lastVerified=verified.isoformat())


def _items(client: Any, after: int) -> list[dict[str, Any]]:
    page = client.get(f"/feeds/activities?afterChangeNumber={after}")
    assert page.status_code == 200
    return page.json["items"]


def _states(items: list[dict[str, Any]]) -> dict[str, str]:
    return {item["id"]: item["state"] for item in items}


def test_an_expired_listing_is_published_as_deleted_and_back_when_confirmed(
    make_feed, make_aggregator, database_url
):
    feed = make_feed()
    kept = _walk(feed, "kept", TODAY - timedelta(days=10))
    ageing = _walk(feed, "ageing", TODAY - timedelta(days=365))  # the last day before it expires
    old = _walk(feed, "old", TODAY - timedelta(days=400))  # expired when it arrives
    for activity in (kept, ageing, old):
        feed.put(activity)
    clock = Clock(datetime.now(UTC))
    app = make_aggregator(database_url, CLOCK=clock, HUB_WORKER=False)
    source = follow(app, feed.feed_url)
    assert harvest(app, source).status == "ok"
    client = app.test_client()

    items = _items(client, 0)
    assert _states(items) == {kept["id"]: "updated", ageing["id"]: "updated", old["id"]: "deleted"}
    assert "data" not in next(item for item in items if item["id"] == old["id"])
    cursor = items[-1]["modified"]
    assert _shown(client) == {"kept", "ageing"}
    _assert_other_feeds(client, shown=[kept, ageing], gone=[old])

    # A day later "ageing" has expired with no change: the feeds say so once the sweep has run.
    clock.now += timedelta(days=1)
    assert _shown(client) == {"kept"}
    assert _items(client, cursor) == []  # nothing new yet for a follower past its last change
    engine, thresholds = app.extensions["engine"], freshness.Thresholds.from_config(app.config)
    assert freshness.publish_expiries(engine, clock.now, thresholds) == 1
    assert freshness.publish_expiries(engine, clock.now, thresholds) == 0  # once is enough
    (gone,) = _items(client, cursor)
    assert gone == {
        "state": "deleted",
        "kind": "SessionSeries",
        "id": ageing["id"],
        "modified": gone["modified"],
    }
    assert gone["modified"] > cursor
    _assert_other_feeds(client, shown=[kept], gone=[ageing, old])
    # The earlier pages agree: the listing is not published as live anywhere.
    assert _states(_items(client, 0))[ageing["id"]] == "deleted"

    # Its organiser confirms it: it is published as updated again, after the deletion.
    feed.put({**ageing, "lastVerified": TODAY.isoformat()})
    assert harvest(app, source).status == "ok"
    (back,) = _items(client, gone["modified"])
    assert back["id"] == ageing["id"] and back["state"] == "updated" and back["data"]
    assert _shown(client) == {"kept", "ageing"}
    _assert_other_feeds(client, shown=[kept, ageing], gone=[old])


def _shown(client: Any) -> set[str]:
    """The names the query API lists."""
    return {item["activity"]["name"] for item in client.get("/api/activities").json["items"]}


def _assert_other_feeds(client: Any, shown: list[dict[str, Any]], gone: list[dict[str, Any]]) -> None:
    """Atom lists the live listings as entries and the expired ones as tombstones; iCal only the live."""
    atom, ical = client.get("/feeds/activities.atom"), client.get("/feeds/activities.ics")
    _ok(atom), _ok(ical)
    root = ET.fromstring(atom.data)
    entries = {entry.findtext(f"{ATOM}id") for entry in root.iter(f"{ATOM}entry")}
    tombstones = {deleted.get("ref") for deleted in root.iter(f"{TOMBSTONE}deleted-entry")}
    assert (entries, tombstones) == ({a["id"] for a in shown}, {a["id"] for a in gone})
    events = {str(event["SUMMARY"]) for event in icalendar.Calendar.from_ical(ical.data).walk("VEVENT")}
    assert events == {activity["name"] for activity in shown}


def _ok(response: Response) -> None:
    assert response.status_code == 200, response.text[:300]


# -- a document with no date ----------------------------------------------------------------------

HARVESTED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_no_date_is_the_first_harvest_marked_unconfirmed_and_kept_thereafter():
    first = dated(None, HARVESTED)
    assert first == {"lastVerified": "2026-11-20", VERIFIED_BY: VERIFIED_BY_HARVEST}
    assert dated("2026-10-01T08:00:00Z", HARVESTED) == {"lastVerified": "2026-10-01"}  # the source's date

    # Read again two months on: still the day it was first seen, not "confirmed today".
    later = {"name": "Knit and Natter", **dated(None, HARVESTED + timedelta(days=60))}
    keep_verification(later, {"name": "Knit and Natter", **first})
    assert later["lastVerified"] == "2026-11-20" and later[VERIFIED_BY] == VERIFIED_BY_HARVEST

    # A date of the source's own always stands; so does being unconfirmed once the date is lost.
    confirmed = dated("2027-01-05", HARVESTED + timedelta(days=60))
    keep_verification(confirmed, first)
    assert confirmed == {"lastVerified": "2027-01-05"}
    lost = dated(None, HARVESTED + timedelta(days=60))
    keep_verification(lost, {"lastVerified": "2027-01-05"})
    assert lost == {"lastVerified": "2027-01-19", VERIFIED_BY: VERIFIED_BY_HARVEST}
    keep_verification(lost, None)  # first seen now
    assert lost["lastVerified"] == "2027-01-19"

    # So an undated listing ages like any other nobody confirms, and in time expires.
    thresholds = freshness.Thresholds()
    assert not freshness.is_expired(later, HARVESTED + timedelta(days=365), thresholds)
    assert freshness.is_expired(later, HARVESTED + timedelta(days=366), thresholds)


CALENDAR = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Pollards Hill Library//Events//EN
BEGIN:VEVENT
UID:knit-natter@pollards-hill.example
SUMMARY:Knit and Natter
DESCRIPTION:{description}
LOCATION:Pollards Hill Library\\, South Lodge Avenue\\, Mitcham\\, CR4 1LT
DTSTART;TZID=Europe/London:20260106T140000
DTEND;TZID=Europe/London:20260106T160000
RRULE:FREQ=MONTHLY;BYDAY=1TU
DTSTAMP:20260115T120000Z
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def library(serve) -> tuple[dict[str, str], str]:
    """A library's calendar with no LAST-MODIFIED (nothing dates its events), and its URL."""
    state = {"description": "Free. Bring your own needles."}
    app = Flask("library")

    @app.get("/events.ics")
    def events() -> Response:
        body = CALENDAR.format(**state).replace("\n", "\r\n")
        return Response(body, mimetype="text/calendar")

    return state, serve(app).url + "/events.ics"


def test_an_undated_calendar_event_is_never_confirmed_today(library, make_aggregator):
    calendar, url = library
    app = make_aggregator(HUB_WORKER=False)
    source = follow(app, url, kind="ical")
    assert harvest(app, source).status == "ok"
    client = app.test_client()

    (item,) = client.get("/api/activities").json["items"]
    first_seen = item["activity"]["lastVerified"]
    assert item["activity"][VERIFIED_BY] == VERIFIED_BY_HARVEST
    assert item["freshness"]["confirmedByOrganiser"] is False
    assert item["freshness"]["note"] == "Not confirmed by the organiser"
    assert item["freshness"]["state"] == "stale"  # never "fresh" on our say-so

    # As if it had been first read 40 days ago, then read again today with a change.
    forty_days_ago = (date.fromisoformat(first_seen) - timedelta(days=40)).isoformat()
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        row = conn.execute(select(copies.c.id, copies.c.data).where(copies.c.source_id == source)).one()
        aged = {**row.data, "lastVerified": forty_days_ago}
        conn.execute(
            update(copies).where(copies.c.id == row.id).values(data=aged, last_verified=forty_days_ago)
        )
    calendar["description"] = "Free. Bring your own needles; we have spares."
    assert harvest(app, source).status == "ok"

    (item,) = client.get("/api/activities").json["items"]
    assert item["activity"]["description"].endswith("we have spares.")
    assert item["activity"]["lastVerified"] == forty_days_ago  # not stamped today
    assert item["freshness"]["lastVerified"] == forty_days_ago
    assert item["freshness"]["note"] == "Not confirmed by the organiser"
    (rpde,) = client.get("/feeds/activities?afterChangeNumber=0").json["items"]
    assert rpde["data"]["lf:lastVerified"] == forty_days_ago
