"""Every page and feed renders whatever an activity holds; one that cannot be rendered never fails the rest.

The contract now bounds dates, numbers and zones, but a store may hold activities from before
a rule, or written by a path that skipped it. These tests write such activities straight into
each app's store, next to a normal one, and read every page and feed of both apps over real
HTTP: each answers 200, parses as what it claims to be, and lists the normal activity.
"""

from __future__ import annotations

import copy
import logging
import math
from datetime import UTC, datetime
from typing import Any

import feedparser
import httpx
import icalendar
import orjson
import pytest
from lxml import etree
from sqlalchemy import insert

from aggregator import search_index
from aggregator.oruk import service_id
from aggregator.store import sources
from federation.feeds import FeedInfo, render_atom, render_ical
from federation.feeds.common import render_each
from schema import next_occurrences
from tests.embed.live import HOME, aggregator_app
from tests.embed.live import activities as live_activities
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import make_publisher  # noqa: F401 (a fixture used here)
from tests.shared.test_renderers_total import served_publisher, store_merged

ATOM = "{http://www.w3.org/2005/Atom}"
INFO = FeedInfo(title="Feed", self_url="https://a.example/f.atom", home_url="https://a.example/")
NOW = datetime.now(UTC)
NAN = math.nan  # the JSON columns store it as null (orjson): then a null where a number was is tested


def _entry(start_date: str, **extra: Any) -> dict[str, Any]:
    return {"repeatFrequency": "P1W", "byDay": ["TU"], "startTime": "10:00", "endTime": "11:00",
            "startDate": start_date, **extra}  # fmt: skip


# Fridays from 3 December 9999, 20:00 in New York; the 31st's would end at 04:30 UTC in year 10000.
OFF_THE_END = _entry(
    "9999-12-03", byDay=["FR"], startTime="20:00", endTime="23:30", timezone="America/New_York"
)


def hostile(base: str) -> dict[str, dict[str, Any]]:
    """Activities past the contract, by slug, each published at ``base`` under a name of its own."""

    def event(slug: str, start: str, end: str) -> dict[str, Any]:
        return event_activity(id=f"{base}/activities/{slug}", name=slug, startDate=start, endDate=end)

    def series(slug: str, **overrides: Any) -> dict[str, Any]:
        return weekly_activity(id=f"{base}/activities/{slug}", name=slug, **overrides)

    geo_nan = copy.deepcopy(weekly_activity()["location"])
    geo_nan["geo"] = {"latitude": NAN, "longitude": NAN}
    sparse = {  # only what the contract requires of an online series: no optional field at all
        "id": f"{base}/activities/sparse",
        "type": "SessionSeries",
        "name": "sparse",
        "organizer": {"name": "Someone"},
        "categories": ["walking"],
        "attendanceMode": "online",
        "onlineUrl": "https://meet.example/sparse",
        "schedule": [_entry("2026-01-06")],
        "price": {"isFree": True},
        "booking": {"method": "drop-in"},
        "lastVerified": "2026-10-01",
        "dateModified": "2026-10-01T09:00:00+01:00",
    }
    # Not even what the contract requires: no name, organiser or dateModified.
    broken = {
        key: value
        for key, value in series("broken").items()
        if key not in ("name", "organizer", "dateModified")
    }
    return {
        "year-one": event("year-one", "0001-01-01T00:00:00+00:00", "0001-01-01T02:00:00+00:00"),
        "year-one-east": event("year-one-east", "0001-01-01T12:00:00+05:00", "0001-01-01T14:00:00+05:00"),
        "year-9999": event("year-9999", "9999-12-31T22:00:00+00:00", "9999-12-31T23:00:00+00:00"),
        "year-9999-west": event("year-9999-west", "9999-12-31T22:00:00-05:00", "9999-12-31T23:00:00-05:00"),
        "for-ever": series("for-ever", schedule=[_entry("0001-01-01", endDate="9999-12-31")]),
        "off-the-end": series("off-the-end", schedule=[OFF_THE_END]),
        "modified-year-one": series("modified-year-one", dateModified="0001-01-01T00:00:00+05:00"),
        "huge": series(
            "huge",
            capacity={"status": "spaces", "remaining": 1e30},
            price={"amount": 1e30, "currency": "GBP"},
        ),
        "not-a-number": series(
            "not-a-number",
            capacity={"status": "spaces", "remaining": NAN},
            price={"amount": NAN, "currency": "GBP"},
            location=geo_nan,
        ),
        "unknown-zone": series("unknown-zone", schedule=[_entry("2026-01-06", timezone="Mars/Olympus_Mons")]),
        "sparse": sparse,
        "broken": broken,
    }


# Shown in every rendering that lists activities (an unknown zone is read as Europe/London).
ALWAYS_SHOWN = {"huge", "not-a-number", "unknown-zone", "sparse"}
# The aggregator's search index cannot take these yet: it converts their start to London, or when
# their capacity was stated (dateModified) to UTC, and neither is in the calendar there.
AT_CALENDAR_ENDS = ("year-one", "year-9999-west", "modified-year-one")


def as_stored(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as a JSON column holds it (a NaN becomes null): what the search index is given with it."""
    stored: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    return stored


def _atom_titles(body: bytes) -> list[str]:
    """The entries' titles of a well-formed Atom document that a feed reader reads without complaint."""
    root = etree.fromstring(body)
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    titles = [title.text for title in root.iter(f"{ATOM}title")][1:]  # the first is the feed's
    assert titles == [entry.title for entry in parsed.entries]
    return titles


def _ical_summaries(body: bytes) -> list[str]:
    calendar = icalendar.Calendar.from_ical(body)
    for event in calendar.walk("VEVENT"):
        event.decoded("DTSTART")  # every time reads back
    return [str(event["SUMMARY"]) for event in calendar.walk("VEVENT")]


# -- the renderers and the schedule, on their own ---------------------------------------------------


def test_next_occurrences_has_none_past_either_end_of_the_calendar():
    items = hostile("https://publisher.example")
    for slug in ("year-one", "year-one-east", "year-9999-west"):
        assert next_occurrences(items[slug], NOW, 3) == [], slug  # past, past, and after 9999 in UTC
    (session,) = next_occurrences(items["year-9999"], NOW, 3)  # 22:00 UTC is still in year 9999
    assert session.start.astimezone(UTC).year == 9999
    assert len(next_occurrences(items["for-ever"], NOW, 3)) == 3
    assert next_occurrences(items["unknown-zone"], NOW, 1)[0].start.tzinfo.key == "Europe/London"


def test_a_session_near_year_9999_is_never_one_that_utc_cannot_hold():
    sessions = next_occurrences(
        weekly_activity(schedule=[OFF_THE_END]), datetime(9999, 12, 1, tzinfo=UTC), 10
    )
    assert [session.start.day for session in sessions] == [3, 10, 17, 24]  # not the 31st
    assert all(session.end.astimezone(UTC).year == 9999 for session in sessions)


def test_feeds_render_every_activity_they_can_and_leave_out_the_rest(caplog):
    items = hostile("https://publisher.example")
    normal = weekly_activity()
    activities = [*items.values(), normal]

    with caplog.at_level(logging.ERROR, logger="federation.feeds.common"):
        titles = _atom_titles(render_atom(INFO, activities))
        summaries = _ical_summaries(render_ical(INFO, activities))

    # An Atom entry needs only an id, a name and a time: all but the broken one have them.
    assert titles == [*(slug for slug in items if slug != "broken"), normal["name"]]
    assert ALWAYS_SHOWN | {normal["name"]} <= set(summaries)
    assert "broken" not in summaries
    # Each one left out is logged by its id, once per feed.
    broken_id = items["broken"]["id"]
    assert [r.getMessage() for r in caplog.records if broken_id in r.getMessage()] == [
        f"Atom feed: left out the activity {broken_id!r}, which could not be rendered",
        f"iCalendar feed: left out the activity {broken_id!r}, which could not be rendered",
    ]


def test_the_guard_leaves_out_only_the_items_that_fail():
    rendered = list(render_each([1, 0, 2], lambda number: 10 // number, where="A test"))
    assert rendered == [10, 5]


# -- both apps, over HTTP ----------------------------------------------------------------------------


def test_every_page_and_feed_of_a_publisher_serves_whatever_its_store_holds(
    make_publisher,  # noqa: F811 (the fixture, imported above)
    serve,
    tmp_path,
):
    server, store, group = served_publisher(make_publisher, serve, tmp_path)
    items = hostile(server.url)
    normal = weekly_activity(base=server.url, id=f"{server.url}/activities/normal")
    for slug, doc in [*items.items(), ("normal", normal)]:
        store.create_activity(group.id, slug, doc)  # past the contract, as an old row or a bypass would be

    with httpx.Client(base_url=server.url, timeout=10) as client:
        home, rpde = client.get("/"), client.get("/feeds/activities")
        atom, ical = client.get("/feeds/activities.atom"), client.get("/feeds/activities.ics")
        pages = {slug: client.get(f"/activities/{slug}") for slug in [*items, "normal"]}

    assert [r.status_code for r in (home, rpde, atom, ical)] == [200] * 4
    assert {slug: page.status_code for slug, page in pages.items()} == {slug: 200 for slug in pages}
    assert all(name in home.text for name in [*ALWAYS_SHOWN, normal["name"]])
    assert normal["name"] in [item["data"].get("name") for item in rpde.json()["items"]]
    assert len(rpde.json()["items"]) == len(items) + 1  # JSON carries every item as stored
    assert normal["name"] in _atom_titles(atom.content)
    assert ALWAYS_SHOWN | {normal["name"]} <= set(_ical_summaries(ical.content))
    assert "Next sessions" in pages["normal"].text and "1e+30 places left" in pages["huge"].text
    assert "cannot be shown just now" in pages["broken"].text  # its page, in brief


def test_every_page_and_feed_of_an_aggregator_serves_whatever_its_store_holds(serve, tmp_path):
    app = aggregator_app(tmp_path)
    with app.extensions["engine"].begin() as conn:
        source_id = conn.execute(
            insert(sources).values(url="https://publisher.example/", feed_url="https://publisher.example/feeds/activities",
                                   kind="localfeed", name="Mitcham CVS", state="approved", trust=80)
        ).inserted_primary_key[0]  # fmt: skip
    normal = live_activities()[1]  # the walk, 0.9 km from HOME
    items = {slug: as_stored(doc) for slug, doc in hostile("https://publisher.example").items()}
    for doc in items.values():  # near HOME too, so that a search finds each one it can
        if doc.get("location"):
            doc["location"] = {
                **normal["location"],
                "geo": doc["location"].get("geo", normal["location"]["geo"]),
            }
    store_merged(app, [*items.values(), normal], source_id)
    server = serve(app)
    near = {"near": HOME, "radius": "5"}

    with httpx.Client(base_url=server.url, timeout=10) as client:
        rpde, home = client.get("/feeds/activities"), client.get("/")
        atom, ical = client.get("/feeds/activities.atom"), client.get("/feeds/activities.ics")
        api, embed = client.get("/api/activities", params=near), client.get("/embed", params=near)
        printed, source = client.get("/embed/print", params=near), client.get(f"/sources/{source_id}")
        services = client.get("/oruk/services", params={"per_page": "100"})
        service = {slug: client.get(f"/oruk/services/{service_id(doc['id'])}") for slug, doc in items.items()}
        normal_service = client.get(f"/oruk/services/{service_id(normal['id'])}")

    responses = [rpde, home, atom, ical, api, embed, printed, source, services, normal_service]
    assert [r.status_code for r in responses] == [200] * len(responses)
    assert {slug: r.status_code for slug, r in service.items()} == {slug: 200 for slug in service}
    name = normal["name"]
    assert name in [item["data"].get("name") for item in rpde.json()["items"]]
    assert name in _atom_titles(atom.content)
    assert ALWAYS_SHOWN | {name} <= set(_ical_summaries(ical.content))
    shown_by_api = [item["activity"].get("name") for item in api.json()["items"]]
    assert name in shown_by_api and {"huge", "not-a-number", "unknown-zone"} <= set(shown_by_api)
    for page in (embed, printed):
        assert name in page.text and "huge" in page.text
    assert name in [found["name"] for found in services.json()["contents"]]
    assert normal_service.json()["name"] == name
    assert service["broken"].json()["url"] == items["broken"]["id"]  # the service in brief


@pytest.mark.parametrize("slug", AT_CALENDAR_ENDS)
def test_the_search_index_takes_an_event_at_either_end_of_the_calendar(tmp_path, slug):
    app = aggregator_app(tmp_path)
    with app.extensions["engine"].begin() as conn:
        search_index.reindex(conn, 1, hostile("https://publisher.example")[slug], [])
