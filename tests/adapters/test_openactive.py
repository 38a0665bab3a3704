"""OpenActive RPDE feeds: the published examples, paging, deletions and split sessions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from flask import request

from aggregator.adapters import detect, openactive
from aggregator.adapters.base import SourceBusy, SourceGone
from aggregator.adapters.mapping import VERIFIED_BY, minted_id
from schema import validate_activity
from tests.factories import openactive_series

JSON = "application/json"
BEFORE_FIRST_SESSION = datetime(2018, 10, 1, tzinfo=UTC)


def harvest(site, fetch_for, samples, name, now=BEFORE_FIRST_SESSION):
    body = (samples / "openactive" / name).read_bytes()
    assert detect(JSON, body) == "openactive"
    url = site.file(f"/openactive/{name}", body, JSON)
    return url, list(openactive.pages(fetch_for(url), url, None, now=now))


def only_change(pages):
    changes = [change for page in pages for change in page.changes]
    assert len(changes) == 1
    assert validate_activity(changes[0].data) == []
    return changes[0]


def test_series_with_embedded_sessions(site, fetch_for, samples):
    url, pages = harvest(site, fetch_for, samples, "sessionseries_example_1.json")
    activity = only_change(pages).data
    assert activity["id"] == url + "#1402CBP20150217"  # the RPDE id: a deletion names only that
    assert activity["sameAs"] == ["https://example.com/api/session-series/1402CBP20150217"]
    assert activity["type"] == "SessionSeries"
    assert activity["name"] == "Virtual BODYPUMP"
    assert activity["organizer"]["name"] == "Everyone Active"
    assert activity["categories"] == ["exercise-class"]  # the Bodypump concept
    assert activity["schedule"] == [
        {
            "repeatFrequency": "P1W",
            "byDay": ["TU"],
            "startTime": "20:15",
            "endTime": "20:45",
            "startDate": "2018-10-02",
            "endDate": "2018-11-04",
            "timezone": "Europe/London",
        }
    ]
    location = activity["location"]
    assert location["name"] == "Middlesbrough Sports Village"
    assert location["address"] == {
        "streetAddress": "Alan Peacock Way",
        "addressLocality": "Village East",
        "postalCode": "TS4 3AE",
        "addressRegion": "Middlesbrough",  # the source's own region, kept (never guessed)
    }
    assert location["geo"] == {"latitude": 54.543964, "longitude": -1.20978500000001}
    assert activity["price"]["amount"] == 3.3 and activity["price"]["currency"] == "GBP"
    assert activity["ageRange"] == {"min": 16}
    # The next session (2 Oct 2018, 19:15Z) has 2 of 16 places left.
    assert activity["capacity"]["status"] == "spaces" and activity["capacity"]["remaining"] == 2
    # RPDE ``modified`` 1521565719 is 2018-03-20: the publisher's own date, so no harvest marker.
    assert activity["lastVerified"] == "2018-03-20" and VERIFIED_BY not in activity


def test_capacity_follows_the_next_session(site, fetch_for, samples):
    _, pages = harvest(
        site, fetch_for, samples, "sessionseries_example_1.json", now=datetime(2018, 10, 3, tzinfo=UTC)
    )
    assert only_change(pages).data["capacity"]["remaining"] == 12  # the 9 October session


def test_next_link_to_another_site_is_not_followed(site, fetch_for, samples):
    url, pages = harvest(site, fetch_for, samples, "event_example_1.json")
    assert len(pages) == 1 and pages[0].cursor == url  # resume here, never at www.example.org
    (problem,) = pages[0].unmapped
    assert "https://www.example.org/feeds/events?afterTimestamp=1558084806&afterId=151176" in problem.reason
    assert site.requests == ["/openactive/event_example_1.json"]


def test_one_off_event(site, fetch_for, samples):
    url, pages = harvest(site, fetch_for, samples, "event_example_1.json")
    activity = only_change(pages).data
    assert activity["id"] == url + "#151175"
    assert activity["type"] == "Event"
    assert activity["name"] == "Alan's social ride group Gorhambury House loop"
    assert activity["startDate"] == "2019-08-25T10:00:00+01:00"
    assert activity["endDate"] == "2019-08-25T12:40:00+01:00"
    assert activity["categories"] == ["cycling"]  # Road Cycling
    assert activity["price"] == {"isFree": True}
    assert activity["ageRange"] == {"min": 16}
    assert activity["capacity"]["remaining"] == 21
    assert activity["location"]["address"]["postalCode"] == "TS4 3AE"
    assert activity["firstVisit"].startswith("Meeting point: Gandhi courts car park")
    assert activity["booking"] == {
        "method": "book-ahead",
        "url": "https://www.letsride.co.uk/rides/gorhambury-house-loop/book",
    }


def test_split_series_and_its_sessions_in_separate_feeds(site, fetch_for, samples):
    _, pages = harvest(site, fetch_for, samples, "sessionseries-split_example_1.json")
    series = only_change(pages).data
    assert series["schedule"][0]["byDay"] == ["TU", "SU"]
    assert (series["schedule"][0]["startTime"], series["schedule"][0]["endTime"]) == ("08:30", "09:30")
    assert series["schedule"][0]["timezone"] == "Europe/London"
    assert [offer for offer in series["price"]["notes"].split("; ")] == [
        "Oxygen - Adult £3.30",
        "Oxygen - Senior £3.30",
    ]

    _, pages = harvest(site, fetch_for, samples, "scheduledsession-split_example_1.json")
    assert [change for page in pages for change in page.changes] == []
    reasons = [u.reason for page in pages for u in page.unmapped if u.ref.startswith("ScheduledSession")]
    assert reasons == [
        "ScheduledSession C5EE1E55-2DE6-44F7-A865-42F268A82C63 belongs to the series "
        "https://opensessions.io/api/session-series/1402CBP20150217, which is not in this feed; add the "
        "publisher's SessionSeries feed as a source too (sessions only add spaces and dates)."
    ]


def test_standalone_json_ld_event_is_a_snapshot(site, fetch_for, samples):
    url, pages = harvest(site, fetch_for, samples, "describing-events_part-two-finished.json")
    (page,) = pages
    assert page.snapshot
    activity = only_change(pages).data
    # Its own URL is on another site than the feed (here, loopback), so it is named under the feed.
    assert activity["id"] == minted_id(url, "http://www.example.org/events/1")
    assert activity["name"] == "Blade and tone"
    assert activity["type"] == "SessionSeries"  # an Event with a weekly eventSchedule
    assert activity["schedule"] == [
        {
            "repeatFrequency": "P1W",
            "byDay": ["TH"],
            "startTime": "20:00",
            "endTime": "21:00",
            "startDate": "2018-08-13",
            "endDate": "2020-08-13",
            "timezone": "Europe/London",  # no scheduleTimezone given
        }
    ]
    assert activity["location"]["address"]["postalCode"] == "AB1 2CD"
    assert activity["price"] == {"amount": 10, "currency": "GBP"}
    assert activity["ageRange"] == {"min": 18}
    assert activity["categories"] == ["sport"]  # Roller blading
    # Nothing in the document dates it: today, marked as not confirmed by the organiser.
    assert activity["lastVerified"] == "2018-10-01" and activity[VERIFIED_BY] == "harvest"


def _series(identifier, **extra):
    return openactive_series("https://leisure.example", identifier, **extra)


def _session(identifier, start, remaining, status="https://schema.org/EventScheduled"):
    return {
        "@type": "ScheduledSession",
        "@id": f"https://leisure.example/sessions/{identifier}",
        "superEvent": "https://leisure.example/series/wf",
        "startDate": start,
        "endDate": start.replace("T11", "T12"),
        "remainingAttendeeCapacity": remaining,
        "eventStatus": status,
    }


def test_rpde_paging_deletions_and_sessions_joined_to_their_series(site, fetch_for):
    """A three-page feed: follow ``next`` as given, stop on the last page, keep cursors."""
    first = site.url + "/rpde"
    second = first + "?afterChangeNumber=2"
    third = first + "?afterChangeNumber=5"
    feed = {
        first: [
            {"state": "updated", "kind": "SessionSeries", "id": "wf", "modified": 1, "data": _series("wf")},
            {
                "state": "updated",
                "kind": "FacilityUse",
                "id": "court",
                "modified": 2,
                "data": {"@type": "FacilityUse", "name": "Court hire"},
            },
        ],
        second: [
            {
                "state": "updated",
                "kind": "ScheduledSession",
                "id": "s1",
                "modified": 3,
                "data": _session("s1", "2026-11-25T11:00:00Z", 0),
            },
            {
                "state": "updated",
                "kind": "ScheduledSession",
                "id": "s0",
                "modified": 4,
                "data": _session("s0", "2026-11-18T11:00:00Z", 3, "https://schema.org/EventCancelled"),
            },
            {"state": "deleted", "kind": "SessionSeries", "id": "old", "modified": 5},
        ],
        third: [],
    }
    pages_of = {first: second, second: third, third: third}

    def answer():
        url = site.url + request.full_path.rstrip("?")
        return {
            "items": feed[url],
            "next": pages_of[url],
            "license": "https://creativecommons.org/licenses/by/4.0/",
        }

    site.handler("/rpde", answer)
    pages = list(openactive.pages(fetch_for(first), first, None, now=datetime(2026, 11, 20, tzinfo=UTC)))

    assert [page.cursor for page in pages] == [second, third, third]
    series_id = first + "#wf"
    assert [change.id for change in pages[0].changes] == [series_id]
    assert "FacilityUse" in pages[0].unmapped[0].reason
    # The page's sessions re-send their series once, at the end of the page, with all they add.
    latest = pages[1].changes[-1].data
    assert [change.id for change in pages[1].changes] == [first + "#old", series_id]
    assert pages[1].changes[0].data is None  # the deletion
    assert latest["capacity"]["status"] == "full"  # the next session, 25 November, has no places
    assert latest["schedule"][0]["exceptDates"] == ["2026-11-18"]  # the cancelled session
    assert latest["schedule"][0]["endTime"] == "12:00"  # from the duration
    assert latest["location"]["address"]["postalCode"] == "CR4 4HD"
    assert latest["categories"] == ["sport"]  # walking football is a sport, not a walk
    assert validate_activity(latest) == []
    assert pages[2].changes == [] and pages[2].unmapped == []

    # Resuming from a cursor reads from there on, and nothing before it.
    site.requests.clear()
    resumed = list(openactive.pages(fetch_for(first, third), first, third))
    assert [page.cursor for page in resumed] == [third]
    assert site.requests == ["/rpde?afterChangeNumber=5"]


@pytest.mark.parametrize(("status", "error"), [(404, SourceGone), (410, SourceGone), (503, SourceBusy)])
def test_http_errors_reach_the_harvest(site, fetch_for, status, error):
    url = site.handler("/gone", lambda: ("", status, {"Retry-After": "120"}))
    with pytest.raises(error):
        list(openactive.pages(fetch_for(url), url, None))


def test_sniff_tells_openactive_from_other_json():
    assert openactive.sniff(
        JSON, json.dumps({"items": [], "next": "x", "@context": "https://openactive.io/"}).encode()
    )
    assert not openactive.sniff(JSON, b'{"items": [], "next": "https://publisher.example/feeds/activities"}')
    assert not openactive.sniff("text/calendar", b"BEGIN:VCALENDAR")


def test_a_json_document_with_no_events_removes_nothing(site, fetch_for):
    url = site.file("/oops", b'{"@context": "https://openactive.io/", "error": "database down"}', JSON)
    (page,) = openactive.pages(fetch_for(url), url, None)
    assert not page.snapshot and page.changes == []
    assert page.unmapped[0].reason.endswith("holds no RPDE items and no schema.org Event; nothing to follow.")


def test_activity_concepts_map_through_the_vocabulary():
    """A concept our vocabulary lists wins, whichever way the Activity List URI is written."""
    data = _series(
        "x",
        activity=[
            {
                "@type": "Concept",
                "prefLabel": "Gentle strolls",
                "@id": "https://openactive.io/activity-list/#95092977-5a20-4d6e-b312-8fddabe71544",
            }
        ],
    )
    candidate = openactive.map_opportunity(
        data, "https://leisure.example/series/x", datetime(2026, 11, 1, tzinfo=UTC)
    )
    assert candidate.activity["categories"] == ["walking"]
    unknown = _series(
        "y",
        name="Quidditch Club",
        activity=[
            {"@type": "Concept", "prefLabel": "Quidditch", "@id": "https://openactive.io/activity-list#zz"}
        ],
    )
    assert openactive.map_opportunity(
        unknown, "https://l.example/y", datetime(2026, 11, 1, tzinfo=UTC)
    ).activity["categories"] == ["sport"]  # OpenActive is physical activity: the broadest fit


def test_an_opportunity_without_offers_has_its_price_unknown_not_free():
    """No offers and not isAccessibleForFree: shown, with the price unknown rather than refused or free."""
    data = {key: value for key, value in _series("z").items() if key != "offers"}
    candidate = openactive.map_opportunity(data, "https://l.example/z", datetime(2026, 11, 1, tzinfo=UTC))
    assert candidate.activity["price"] == {
        "isFree": False,
        "notes": "Price not given; check with the organiser",
    }
    assert candidate.problems == []
    free = openactive.map_opportunity(
        {**data, "isAccessibleForFree": True}, "https://l.example/z", datetime.now(UTC)
    )
    assert free.activity["price"] == {"isFree": True}


def test_a_session_of_a_series_that_cannot_be_mapped_is_reported_not_changed(site, fetch_for):
    """The series re-sent with a session joined may still not map: it is an unmapped item, not a change."""
    url = site.url + "/rpde"
    no_place = {key: value for key, value in _series("wf").items() if key != "location"}
    items = [
        {"state": "updated", "kind": "SessionSeries", "id": "wf", "modified": 1, "data": no_place},
        {
            "state": "updated",
            "kind": "ScheduledSession",
            "id": "s1",
            "modified": 2,
            "data": _session("s1", "2026-11-25T11:00:00Z", 3),
        },
    ]
    last = url + "?after=2"
    site.handler("/rpde", lambda: {"items": [] if "after" in request.full_path else items, "next": last})
    pages = list(openactive.pages(fetch_for(url), url, None, now=datetime(2026, 11, 20, tzinfo=UTC)))

    assert pages[0].changes == []
    # The series is mapped once, with its session joined, at the end of the page.
    (unmapped,) = pages[0].unmapped
    assert unmapped.ref == "SessionSeries wf" and "it has no location" in unmapped.reason
