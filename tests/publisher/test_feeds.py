"""The publisher's feeds over real HTTP: RPDE paging rules, caching, Atom and iCalendar."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import feedparser
import httpx
import icalendar
import orjson
import pytest
import recurring_ical_events

from publisher import editing
from schema import next_occurrences, rpde
from schema.openactive import from_openactive
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import sqlite_only, store_of

LONDON = ZoneInfo("Europe/London")


def _walk(client: httpx.Client, url: str) -> list[httpx.Response]:
    """Every page from ``url`` to the last one (the one whose ``next`` is itself)."""
    pages = [client.get(url)]
    while pages[-1].json()["next"] != str(pages[-1].url):
        pages.append(client.get(pages[-1].json()["next"]))
        assert len(pages) < 50, "the feed never reached its last page"
    return pages


@pytest.fixture
def small_pages(make_publisher, database_url, serve):
    """A publisher with pages of two items, served, with one group."""
    app = make_publisher(database_url, PAGE_SIZE=2)
    server = serve(app)
    store = store_of(app)
    group = store.add_group("Mitcham Walkers", url="https://walkers.example/")
    return server, store, group


def test_rpde_pages_tombstones_and_the_last_page_rule(small_pages):
    server, store, group = small_pages
    base = server.url
    walk = editing.save_activity(store, group, weekly_activity(), base_url=base)
    lunch = editing.save_activity(store, group, event_activity(), base_url=base)
    editing.save_activity(store, group, weekly_activity(name="Nordic Walking"), base_url=base)
    editing.delete_activity(store, group, walk.slug)
    editing.save_activity(
        store, group, event_activity(name="Winter Warmer Lunch (moved)"), lunch.slug, base_url=base
    )

    with httpx.Client(timeout=10) as client:
        pages = _walk(client, f"{base}/feeds/activities")

    items = [item for page in pages for item in page.json()["items"]]
    assert [item["modified"] for item in items] == [3, 4, 5]  # changes 1 and 2 were superseded
    assert [len(page.json()["items"]) for page in pages] == [2, 1, 0]
    for page in pages:
        rpde.decode_page(page.content)  # every page is a valid RPDE envelope
        assert page.json()["license"] == "https://creativecommons.org/licenses/by/4.0/"
        assert page.headers["Content-Type"].startswith("application/json")
        assert page.headers["ETag"]
        assert f'<{base}/websub>; rel="hub"' in page.headers["Link"]
        assert f'<{base}/feeds/activities>; rel="self"' in page.headers["Link"]
    assert pages[0].json()["next"] == f"{base}/feeds/activities?afterChangeNumber=4"

    tombstone = items[1]
    assert tombstone == {
        "state": "deleted",
        "kind": "SessionSeries",
        "id": walk.activity["id"],
        "modified": 4,
    }
    moved = items[2]
    assert moved["state"] == "updated" and moved["kind"] == "Event"
    assert moved["data"]["@type"] == "Event" and moved["data"]["name"] == "Winter Warmer Lunch (moved)"
    assert moved["data"]["@id"] == lunch.activity["id"]
    read_back = from_openactive(moved["data"])
    # The edit carries its own time, which may fall in a later second than the first save's.
    assert read_back["dateModified"] >= lunch.activity["dateModified"]
    moved_lunch = {"name": "Winter Warmer Lunch (moved)", "dateModified": read_back["dateModified"]}
    assert read_back == lunch.activity | moved_lunch

    # A page with items will not lose them (RPDE asks for an hour), full or not; the last grows.
    assert pages[0].headers["Cache-Control"] == "public, max-age=3600"
    assert pages[1].headers["Cache-Control"] == "public, max-age=3600"
    last = pages[-1]
    assert last.json()["items"] == []
    assert last.json()["next"] == f"{base}/feeds/activities?afterChangeNumber=5"
    assert last.headers["Cache-Control"] == "public, max-age=8"


@sqlite_only
def test_etag_answers_304_until_the_feed_changes(small_pages):
    server, store, group = small_pages
    editing.save_activity(store, group, weekly_activity(), base_url=server.url)
    url = f"{server.url}/feeds/activities?afterChangeNumber=0"
    with httpx.Client(timeout=10) as client:
        first = client.get(url)
        etag = first.headers["ETag"]
        unchanged = client.get(url, headers={"If-None-Match": etag})
        assert unchanged.status_code == 304
        assert unchanged.content == b""

        editing.save_activity(store, group, event_activity(), base_url=server.url)
        changed = client.get(url, headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["ETag"] != etag
        assert len(changed.json()["items"]) == 2

        for atom_or_ical in ("/feeds/activities.atom", "/feeds/activities.ics"):
            response = client.get(server.url + atom_or_ical)
            again = client.get(server.url + atom_or_ical, headers={"If-None-Match": response.headers["ETag"]})
            assert again.status_code == 304

        for bad_cursor in ("yesterday", "-1", str(2**63)):
            bad = client.get(f"{server.url}/feeds/activities?afterChangeNumber={bad_cursor}")
            assert bad.status_code == 400
            assert "afterChangeNumber" in bad.json()["message"]


def test_empty_feeds_are_stable(make_publisher, serve, tmp_path):
    server = serve(make_publisher(f"sqlite:///{tmp_path / 'empty.sqlite'}"))
    response = httpx.get(f"{server.url}/feeds/activities")
    assert response.json() == {  # the first page is also the last
        "next": f"{server.url}/feeds/activities",
        "items": [],
        "license": "https://creativecommons.org/licenses/by/4.0/",
    }
    for path in ("/feeds/activities.atom", "/feeds/activities.ics"):
        first, again = httpx.get(server.url + path), httpx.get(server.url + path)
        assert first.status_code == 200 and first.headers["ETag"] == again.headers["ETag"]
    # Calendar apps poll: the calendar names itself but no hub (the hub pushes RPDE and Atom).
    assert again.headers["Link"] == f'<{server.url}/feeds/activities.ics>; rel="self"'


def test_atom_feed_parses_with_hub_self_json_content_and_tombstones(make_publisher, serve, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'atom.sqlite'}", PUBLIC_URL="https://activities.example.org")
    server = serve(app)
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    base = "https://activities.example.org"
    walk = editing.save_activity(store, group, weekly_activity(), base_url=base)
    gone = editing.save_activity(store, group, event_activity(), base_url=base)
    editing.delete_activity(store, group, gone.slug)

    response = httpx.get(f"{server.url}/feeds/activities.atom")
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    assert f'<{base}/feeds/activities.atom>; rel="self"' in response.headers["Link"]
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    links = {link["rel"]: link["href"] for link in feed.feed.links}
    assert links["hub"] == f"{base}/websub"
    assert links["self"] == f"{base}/feeds/activities.atom"
    assert links["alternate"] == f"{base}/"

    [entry] = feed.entries
    assert entry.id == walk.activity["id"]
    assert entry.title == "Mitcham Health Walk"
    assert entry.content[0].type == "application/json"
    assert from_openactive(orjson.loads(entry.content[0].value)) == walk.activity  # its OpenActive form
    assert "Every Tuesday, 10:00\u201311:00" in entry.summary

    # RFC 6721: the deletion is an at:deleted-entry naming the activity's id.
    root = ET.fromstring(response.content)
    tombstones = root.findall("{http://purl.org/atompub/tombstones/1.0}deleted-entry")
    assert [element.get("ref") for element in tombstones] == [gone.activity["id"]]
    assert datetime.fromisoformat(tombstones[0].get("when")) <= datetime.now(UTC)
    # The JSON content is Base64, as RFC 4287 requires for a non-text, non-XML type.
    content = root.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}content")
    assert from_openactive(orjson.loads(base64.b64decode(content.text))) == walk.activity


def _schedules() -> list[dict]:
    """Activities whose calendars are easy to get wrong."""
    weekly_with_gaps = weekly_activity(name="Weekly with a gap")
    weekly_with_gaps["schedule"][0]["exceptDates"] = ["2026-12-22", "2026-12-29"]
    first_tuesday = weekly_activity(name="First Tuesday")
    first_tuesday["schedule"] = [
        {
            "repeatFrequency": "P1M",
            "byDay": ["TU"],
            "byMonthWeek": 1,
            "startTime": "14:00",
            "endTime": "16:00",
            "startDate": "2026-01-01",
            "timezone": "Europe/London",
        }
    ]
    fortnightly_two_entries = weekly_activity(name="Fortnightly, two slots, ending")
    fortnightly_two_entries["schedule"] = [
        {
            "repeatFrequency": "P2W",
            "byDay": ["MO", "TH"],
            "startTime": "18:30",
            "endTime": "20:00",
            "startDate": "2026-09-03",
            "endDate": "2027-05-01",
            "timezone": "Europe/London",
        },
        {
            "repeatFrequency": "P1M",
            "byDay": ["FR"],
            "byMonthWeek": -1,
            "startTime": "09:15",
            "endTime": "10:00",
            "startDate": "2026-03-01",
            "timezone": "Europe/London",
        },
    ]
    paused = weekly_activity(name="Paused walk", status="paused")
    return [weekly_with_gaps, first_tuesday, fortnightly_two_entries, paused, event_activity()]


def test_ical_recurrences_match_next_occurrences(make_publisher, serve, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'ical.sqlite'}", PUBLIC_URL="https://activities.example.org")
    server = serve(app)
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    saved = [
        editing.save_activity(store, group, doc, base_url="https://activities.example.org").activity
        for doc in _schedules()
    ]

    response = httpx.get(f"{server.url}/feeds/activities.ics")
    assert response.headers["Content-Type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(response.content)
    [zone] = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/London"
    events = calendar.walk("VEVENT")
    assert all(event["DTSTART"].params["TZID"] == "Europe/London" for event in events)
    assert len({str(event["UID"]) for event in events}) == len(events) == 5  # paused left out

    after = datetime(2026, 11, 1, tzinfo=UTC)
    until = datetime(2027, 11, 1, tzinfo=UTC)
    expanded = recurring_ical_events.of(calendar).between(after, until)
    for activity in saved:
        expected = [o for o in next_occurrences(activity, after, 200) if o.start < until]
        found = sorted(
            (event["DTSTART"].dt, event["DTEND"].dt)
            for event in expanded
            if str(event["UID"]).split("#")[0] == activity["id"]
        )
        assert [(o.start, o.end) for o in expected] == found, activity["name"]
        assert found or activity.get("status") == "paused", activity["name"]
        assert all(start.tzinfo is not None for start, _end in found)

    # The same session keeps its wall-clock time through the clock change.
    walk_uid = saved[0]["id"] + "#schedule-1"
    hours = {event["DTSTART"].dt.astimezone(LONDON).hour for event in expanded if event["UID"] == walk_uid}
    assert hours == {10}
    # Stable UIDs: rendering again gives the same ones.
    again = icalendar.Calendar.from_ical(httpx.get(f"{server.url}/feeds/activities.ics").content)
    assert sorted(str(e["UID"]) for e in again.walk("VEVENT")) == sorted(str(e["UID"]) for e in events)
