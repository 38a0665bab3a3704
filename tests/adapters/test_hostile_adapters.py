"""Hostile feeds: whatever a source sends, each adapter ends in bounded work with a reason a person can read.

Every case pairs the hostile item with a good one in the same document: the good one must
still map, and the hostile one must come back as an Unmapped naming it (never an
exception the harvest would report as a fault of ours). A generous timeout guards the
cases that used to run for minutes; nothing here asserts on speed.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from itertools import islice

import pytest
from flask import request

from aggregator import budget
from aggregator.adapters import atom, ical, openactive, oruk
from aggregator.adapters.base import Change, Unmapped
from aggregator.adapters.mapping import guarded
from schema import validate_activity
from schema.schedule import _entry_occurrences, nth_session_date, repeat_problem
from tests.adapters.directory import SHED

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
FEED = "https://calendar.example/club.ics"

pytestmark = pytest.mark.timeout(60)


# -- the shared rules (schema.schedule) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "interval", "times_a_day", "said"),
    [
        ("SECONDLY", 1, 1, "repeats secondly, more often than once a day"),
        ("MINUTELY", 1, 1, "repeats minutely"),
        ("HOURLY", 1, 1, "repeats hourly"),
        ("WEEKLY", 0, 1, "interval 0 is not a whole number of 1 or more"),
        ("WEEKLY", -2, 1, "interval -2 is not"),
        ("WEEKLY", "2", 1, "interval '2' is not"),
        ("WEEKLY", 1.5, 1, "interval 1.5 is not"),
        ("DAILY", 1, 2, "repeats 2 times a day"),
    ],
)
def test_a_schedule_repeats_at_most_daily_with_a_whole_interval(frequency, interval, times_a_day, said):
    assert said in repeat_problem(frequency, interval, times_a_day)


def test_ordinary_rules_pass_the_shared_check():
    assert [repeat_problem(f, 1) for f in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")] == [None] * 4
    assert repeat_problem("WEEKLY", 3) is None


@pytest.mark.parametrize(
    "entry",
    [
        {"repeatFrequency": "P1W", "byDay": ["TU", "TH"], "startDate": "2026-11-19"},
        {
            "repeatFrequency": "P1W",
            "byDay": ["MO", "TU", "WE", "TH", "FR", "SA", "SU"],
            "startDate": "2026-11-20",
        },
        {"repeatFrequency": "P2W", "byDay": ["MO", "FR"], "startDate": "2026-11-21"},  # anchor is next week
        {"repeatFrequency": "P2W", "byDay": ["WE"], "startDate": "2026-11-18"},
        {"repeatFrequency": "P1M", "byDay": ["SA"], "byMonthWeek": -1, "startDate": "2026-11-30"},
        {"repeatFrequency": "P1M", "byDay": ["MO", "FR"], "byMonthWeek": 2, "startDate": "2026-11-10"},
    ],
)
def test_the_nth_session_is_computed_as_the_schedule_expands(entry):
    """The arithmetic agrees with walking the schedule, for the first 60 sessions of each pattern."""
    entry = {**entry, "startTime": "10:00", "endTime": "11:00", "timezone": "Europe/London"}
    walked = [occurrence.start.date() for occurrence in islice(_entry_occurrences(entry, None), 60)]
    assert [nth_session_date(entry, n) for n in range(1, 61)] == walked


def test_a_count_in_the_hundreds_of_millions_runs_on():
    entry = {"repeatFrequency": "P1W", "byDay": ["MO"], "startDate": "2026-11-16"}
    assert nth_session_date(entry, 300_000_000) is None
    assert nth_session_date({**entry, "repeatFrequency": "P1M", "byMonthWeek": 1}, 300_000_000) is None
    assert nth_session_date(entry, 52) == date(2027, 11, 8)


# -- iCalendar ---------------------------------------------------------------------------------------


def _calendar(*events: str) -> bytes:
    good = _event("good", "FREQ=WEEKLY;BYDAY=TU", "20261201T100000")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//hostile//EN", good, *events, "END:VCALENDAR"]
    return "\r\n".join(lines).encode()


def _event(uid: str, rule: str | None, start: str = "20261201T100000", end: str = "20261201T110000") -> str:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20261101T000000Z",
        f"DTSTART;TZID=Europe/London:{start}",
        f"DTEND;TZID=Europe/London:{end}",
        f"SUMMARY:Club {uid}",
        "LOCATION:Church Hall, 1 Church Road, Mitcham, CR4 2LF",
    ]
    if rule:
        lines.append(f"RRULE:{rule}")
    return "\r\n".join([*lines, "END:VEVENT"])


def _read(body: bytes):
    page = ical.read_calendar(body, FEED, NOW)
    good = [c for c in page.changes if c.ref == "event good"]
    assert len(good) == 1 and validate_activity(good[0].data) == []
    return page


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ("FREQ=SECONDLY", "repeats secondly, more often than once a day"),
        ("FREQ=MINUTELY;COUNT=300000000", "repeats minutely"),
        ("FREQ=HOURLY;INTERVAL=1", "repeats hourly"),
        ("FREQ=DAILY;INTERVAL=0", "interval 0 is not a whole number"),
        ("FREQ=WEEKLY;INTERVAL=-2", "interval -2 is not a whole number"),
        ("FREQ=DAILY;BYHOUR=0,6,12,18;BYMINUTE=0,30", "repeats 8 times a day"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30,31", "days of the month that its months do not have"),
        ("FREQ=DAILY;BYSETPOS=2", "limits the days by BYSETPOS, which we do not follow"),
        ("FREQ=WEEKLY;BYDAY=2MO", "numbered weekday"),
    ],
)
def test_ical_rules_that_cannot_be_bounded_are_refused_with_a_reason(rule, said):
    page = _read(_calendar(_event("bad", rule)))
    (refused,) = page.unmapped
    assert refused.ref == "event bad"
    assert refused.reason.startswith("Event 'Club bad': ") and said in refused.reason
    assert [c.ref for c in page.changes] == ["event good"]


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY;COUNT=300000000",
        "FREQ=WEEKLY;UNTIL=99991231",
        # Less than a century off, yet past the contract's last year: an endDate would cost the series.
        "FREQ=WEEKLY;COUNT=5000",
        "FREQ=WEEKLY;UNTIL=21101231",
    ],
)
def test_ical_a_far_off_end_means_the_series_runs_on(rule):
    page = _read(_calendar(_event("long", rule)))
    assert page.unmapped == []
    (series,) = [c.data for c in page.changes if c.ref == "event long"]
    assert series["type"] == "SessionSeries" and "endDate" not in series["schedule"][0]


def test_ical_a_count_gives_the_date_of_its_last_session():
    page = _read(_calendar(_event("ten", "FREQ=WEEKLY;BYDAY=TU,TH;COUNT=10")))
    (series,) = [c.data for c in page.changes if c.ref == "event ten"]
    # Tuesday 1 December, then Thursdays and Tuesdays: the tenth is Thursday 31 December.
    assert series["schedule"][0]["endDate"] == "2026-12-31"


def test_ical_a_rule_we_expand_lists_only_the_next_few_occurrences():
    page = _read(_calendar(_event("every3", "FREQ=DAILY;INTERVAL=3;COUNT=300000000")))
    shown = [c for c in page.changes if c.ref.startswith("event every3")]
    assert len(shown) == ical.MAX_OCCURRENCES
    assert all(c.data["type"] == "Event" for c in shown)


def test_ical_a_dense_rule_begun_centuries_ago_is_refused_not_walked():
    page = _read(_calendar(_event("ancient", "FREQ=DAILY;INTERVAL=3", "10001201T100000", "10001201T110000")))
    (refused,) = page.unmapped
    assert "more than 10,000 occurrences before today" in refused.reason


@pytest.mark.parametrize(
    ("start", "said"),
    [
        ("20261301T100000", "we could not read its dates or rule"),  # month 13
        ("99991230T100000", "more than 100 years ahead"),
    ],
)
def test_ical_dates_out_of_range_are_the_events_problem(start, said):
    page = _read(_calendar(_event("odd", None, start, start.replace("T10", "T11"))))
    (refused,) = page.unmapped
    assert refused.ref == "event odd" and said in refused.reason


def test_ical_several_rules_on_one_event_are_expanded_not_a_fault():
    both = _event("both", "FREQ=WEEKLY;BYDAY=MO").replace(
        "RRULE:FREQ=WEEKLY;BYDAY=MO", "RRULE:FREQ=WEEKLY;BYDAY=MO\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=15"
    )
    page = _read(_calendar(both))
    assert page.unmapped == []
    assert {c.data["type"] for c in page.changes if c.ref.startswith("event both")} == {"Event"}


def test_ical_events_nested_thousands_deep_are_reasons():
    deep = "\r\n".join(["BEGIN:VCALENDAR", *["BEGIN:VEVENT"] * 5000, *["END:VEVENT"] * 5000, "END:VCALENDAR"])
    page = ical.read_calendar(deep.encode(), FEED, NOW)
    assert page.changes == [] and len(page.unmapped) == 5000
    assert {u.reason for u in page.unmapped} == {"Event 'without a title': it has no start (DTSTART)"}


# -- OpenActive ---------------------------------------------------------------------------------------


def _series(schedule: dict | None = None) -> dict:
    return {
        "@context": "https://openactive.io/",
        "@type": "SessionSeries",
        "@id": "https://leisure.example/series/wf",
        "name": "Walking Football",
        "organizer": {"@type": "Organization", "name": "Mitcham Leisure"},
        "location": {
            "@type": "Place",
            "name": "Mitcham Leisure Centre",
            "address": {"@type": "PostalAddress", "postalCode": "CR4 4HD", "addressLocality": "Mitcham"},
        },
        "eventSchedule": [
            schedule
            or {
                "@type": "Schedule",
                "repeatFrequency": "P1W",
                "byDay": ["https://schema.org/Wednesday"],
                "startTime": "11:00",
                "endTime": "12:00",
                "startDate": "2026-11-04",
            }
        ],
    }


def _session(number: int) -> dict:
    day = date.fromordinal(date(2026, 11, 4).toordinal() + 7 * number)
    return {
        "@type": "ScheduledSession",
        "@id": f"https://leisure.example/sessions/{number}",
        "superEvent": "https://leisure.example/series/wf",
        "startDate": f"{day.isoformat()}T11:00:00Z",
        "endDate": f"{day.isoformat()}T12:00:00Z",
        "remainingAttendeeCapacity": number % 7,
        "eventStatus": "https://schema.org/EventCancelled"
        if number == 5
        else "https://schema.org/EventScheduled",
    }


def _rpde(site, items: list[dict]) -> str:
    url = site.url + "/rpde"
    last = url + "?afterChangeNumber=end"
    site.handler("/rpde", lambda: {"items": [] if "after" in request.full_path else items, "next": last})
    return url


def test_openactive_five_thousand_sessions_join_their_series_once(site, fetch_for):
    """One page, one series, 5,000 sessions: the series is mapped once, with every session joined."""
    items = [{"state": "updated", "kind": "SessionSeries", "id": "wf", "modified": 7, "data": _series()}]
    items += [
        {
            "state": "updated",
            "kind": "ScheduledSession",
            "id": f"s{n}",
            "modified": 8 + n,
            "data": _session(n),
        }
        for n in range(5000)
    ]
    url = _rpde(site, items)
    first, _ = openactive.pages(fetch_for(url), url, None, now=NOW)

    assert first.unmapped == []
    (change,) = first.changes
    assert change.ref == "SessionSeries wf" and change.modified == 7
    activity = change.data
    assert validate_activity(activity) == []
    assert activity["schedule"][0]["exceptDates"] == ["2026-12-09"]  # session 5, cancelled
    # The next session after 20 November is number 3 (25 November), with 3 places left.
    assert activity["capacity"]["remaining"] == 3


@pytest.mark.parametrize(
    ("frequency", "said"),
    [
        ("PT1M", "repeats minutely"),
        ("PT1H", "repeats hourly"),
        ("PT30S", "repeats secondly"),
        ("P0D", "interval 0 is not a whole number"),
    ],
)
def test_openactive_schedules_more_often_than_daily_are_refused(site, fetch_for, frequency, said):
    rule = {**_series()["eventSchedule"][0], "repeatFrequency": frequency}
    url = _rpde(
        site,
        [{"state": "updated", "kind": "SessionSeries", "id": "wf", "modified": 1, "data": _series(rule)}],
    )
    first, _ = openactive.pages(fetch_for(url), url, None, now=NOW)
    (refused,) = first.unmapped
    assert refused.ref == "SessionSeries wf" and said in refused.reason and first.changes == []


@pytest.mark.parametrize(
    ("count", "end"),
    [(300_000_000, None), (3, "2026-11-18")],
)
def test_openactive_repeat_count_sets_the_end_or_runs_on(count, end):
    rule = {**_series()["eventSchedule"][0], "repeatCount": count}
    candidate = openactive.map_opportunity(_series(rule), "https://x.example/#wf", NOW)
    assert candidate.problems == []
    assert candidate.activity["schedule"][0].get("endDate") == end


def test_openactive_wrong_types_are_reasons_naming_the_item(site, fetch_for):
    bad_data = [
        {**_series(), "startDate": "99999-01-01", "eventSchedule": []},
        {**_series(), "name": {"nested": ["not", "text"]}, "location": "somewhere"},
        {**_series(), "eventSchedule": [{**_series()["eventSchedule"][0], "repeatCount": "lots"}]},
        {
            **_series(),
            "@type": "Event",
            "eventSchedule": [],
            "startDate": "9999-12-31T23:00:00-05:00",
            "duration": "P2D",
        },
    ]
    items = [{"state": "updated", "kind": "SessionSeries", "id": "good", "modified": 1, "data": _series()}]
    items += [
        {"state": "updated", "kind": "SessionSeries", "id": f"bad{n}", "modified": 2, "data": data}
        for n, data in enumerate(bad_data)
    ]
    items += [{"state": "updated", "id": {"an": "object"}, "data": {}}, "just a string", {"kind": "x"}]
    url = _rpde(site, items)
    first, _ = openactive.pages(fetch_for(url), url, None, now=NOW)

    assert [c.ref for c in first.changes] == ["SessionSeries good"]
    reasons = {u.ref: u.reason for u in first.unmapped}
    assert "no eventSchedule, sessions or startDate" in reasons["SessionSeries bad0"]
    assert "has no location" in reasons["SessionSeries bad1"]
    assert "repeatCount 'lots' is not a whole number" in reasons["SessionSeries bad2"]
    assert "out of range" in reasons["SessionSeries bad3"]
    assert sum("not a string or a number" in r for r in reasons.values()) == 1
    assert sum("without an id" in r for r in reasons.values()) == 2


def test_openactive_a_page_nested_too_deep_is_a_reason_for_the_page(site, fetch_for):
    url = site.url + "/rpde"
    site.handler("/rpde", lambda: ('{"items": ' + "[" * 5000 + "]" * 5000 + "}", 200))
    (page,) = openactive.pages(fetch_for(url), url, None, now=NOW)
    (refused,) = page.unmapped
    assert "is not JSON" in refused.reason and page.cursor == url


# -- Open Referral UK ---------------------------------------------------------------------------------


def test_oruk_a_list_that_repeats_itself_stops_with_a_reason(site, fetch_for):
    url = site.url + "/api/services"
    listing = {"total_pages": 1_000_000, "contents": [{"id": SHED["id"]}]}
    site.handler("/api/services", lambda: listing)
    site.handler(f"/api/services/{SHED['id']}", lambda: SHED)
    (page,) = oruk.pages(fetch_for(url), url, None, now=NOW)

    assert [c.ref for c in page.changes] == [f"service {SHED['id']}"]
    (stopped,) = page.unmapped
    assert "page=2" in stopped.ref and "lists no service that the pages before it did not" in stopped.reason
    assert not page.snapshot  # the list never ended as a list should: nothing is taken as removed


def test_oruk_total_pages_in_words_is_a_reason_and_the_list_is_still_read(site, fetch_for):
    url = site.url + "/api/services"

    def services():
        first = request.args["page"] == "1"
        return {"total_pages": "two", "contents": [{"id": SHED["id"]}] if first else []}

    site.handler("/api/services", services)
    site.handler(f"/api/services/{SHED['id']}", lambda: SHED)
    (page,) = oruk.pages(fetch_for(url), url, None, now=NOW)
    assert [c.ref for c in page.changes] == [f"service {SHED['id']}"]
    assert page.snapshot
    assert {u.reason for u in page.unmapped} == {
        f"{url}?page={n}&per_page=100 gives total_pages as 'two', not a whole number; we read on until a "
        "page is empty or repeats. Ask the directory's publisher to give it as a number."
        for n in (1, 2)
    }


def test_oruk_an_endless_list_stops_at_the_budget_and_resumes_where_it_stopped(site, fetch_for):
    """Every page has a next one with new services: the budget ends the read, what was read is kept."""
    url = site.url + "/api/services"

    def services():
        number = int(request.args["page"])
        return {"total_pages": "many", "contents": [{"id": f"s{number}-{n}"} for n in range(3)]}

    site.handler("/api/services", services)  # no detail route: every service answers 404, withdrawn
    with budget.in_force(budget.Budget(pages=12)):
        walk = oruk.pages(fetch_for(url), url, None, now=NOW)
        partial = next(walk)
        with pytest.raises(budget.BudgetSpent, match="more than 12 requests"):
            next(walk)
    assert not partial.snapshot
    assert all(isinstance(c, Change) and c.data is None for c in partial.changes)
    assert len(partial.changes) == 9  # 3 list pages and 9 service requests, then the 13th request
    resume = json.loads(partial.cursor)["resume"]
    assert (resume["page"], resume["done"], resume["full"]) == (4, 0, True)

    site.requests.clear()
    with budget.in_force(budget.Budget(pages=2)):
        walk = oruk.pages(fetch_for(url), url, partial.cursor, now=NOW)
        again = next(walk)
        with pytest.raises(budget.BudgetSpent):
            next(walk)
    assert site.requests[0] == "/api/services?page=4&per_page=100"
    assert [c.ref for c in again.changes] == ["service s4-0"]
    assert json.loads(again.cursor)["resume"]["done"] == 1


@pytest.mark.parametrize(
    ("schedule", "said"),
    [
        ({"freq": "HOURLY"}, "repeats hourly"),
        ({"freq": "WEEKLY", "interval": 0}, "interval 0 is not a whole number"),
        ({"freq": "WEEKLY", "interval": "2"}, "interval '2' is not a whole number"),
        ({"freq": "WEEKLY", "dtstart": "9999-01-01"}, "more than 100 years ahead"),
    ],
)
def test_oruk_schedules_that_cannot_be_bounded_are_reasons(schedule, said):
    service = json.loads(json.dumps(SHED))
    service["schedules"] = [{"byday": "TU", "opens_at": "10:00", "closes_at": "12:00", **schedule}]
    candidate = oruk.map_service(service, "https://dir.example/services/shed", NOW)
    assert any(said in problem for problem in candidate.problems), candidate.problems


def test_oruk_a_count_in_the_hundreds_of_millions_runs_on():
    service = json.loads(json.dumps(SHED))
    service["schedules"] = [
        {"freq": "WEEKLY", "byday": "TU", "opens_at": "10:00", "closes_at": "12:00", "count": 300_000_000}
    ]
    candidate = oruk.map_service(service, "https://dir.example/services/shed", NOW)
    assert "endDate" not in candidate.activity["schedule"][0]


def test_oruk_a_service_of_wrong_types_is_a_reason_naming_it(site, fetch_for):
    url = site.url + "/api/services"
    odd = {"id": "odd", "name": ["a", "list"], "service_at_locations": "here", "attributes": 5}
    listing = {"total_pages": 1, "contents": [{"id": SHED["id"]}, {"id": "odd"}, {"id": ["x"]}, {"id": True}]}
    site.handler("/api/services", lambda: listing)
    site.handler(f"/api/services/{SHED['id']}", lambda: SHED)
    site.handler("/api/services/odd", lambda: odd)
    (page,) = oruk.pages(fetch_for(url), url, None, now=NOW)
    assert [c.ref for c in page.changes] == [f"service {SHED['id']}"]
    reasons = {u.ref: u.reason for u in page.unmapped}
    assert reasons["service odd"].startswith("Service odd could not be read: ")
    assert "has an id that is list, not text" in reasons[f"{url}?page=1&per_page=100 item 3"]
    assert "has an id that is bool, not text" in reasons[f"{url}?page=1&per_page=100 item 4"]


# -- Atom and RSS -------------------------------------------------------------------------------------

JSON_LD_EVENT = {
    "@context": "https://schema.org",
    "@type": "Event",
    "@id": "https://stmarks.example/events/carols",
    "name": "Carol Singing",
    "startDate": "2026-12-19T15:00:00+00:00",
    "endDate": "2026-12-19T16:30:00+00:00",
    "location": {"@type": "Place", "name": "St Mark's", "address": {"postalCode": "CR4 2LF"}},
    "organizer": {"@type": "Organization", "name": "St Mark's Church"},
}


def _rss(*descriptions: str) -> bytes:
    items = "".join(
        f"<item><title>Post {n}</title><guid>https://stmarks.example/news/{n}</guid>"
        f"<description><![CDATA[{text}]]></description></item>"
        for n, text in enumerate(descriptions)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title>'
        f"<link>https://stmarks.example/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def _script(value: str) -> str:
    return f'<script type="application/ld+json">{value}</script>'


def test_atom_deeply_nested_json_ld_is_the_entrys_problem():
    body = _rss(_script(json.dumps(JSON_LD_EVENT)), _script("[" * 100_000 + "]" * 100_000))
    page = atom.read_feed(body, "https://stmarks.example/news.rss", NOW)
    assert [c.id for c in page.changes] == [JSON_LD_EVENT["@id"]]
    (refused,) = page.unmapped
    assert refused.ref == "https://stmarks.example/news/1"
    assert "nested too deeply" in refused.reason


def test_atom_dates_out_of_range_are_the_entrys_problem():
    late = {**JSON_LD_EVENT, "@id": "https://stmarks.example/events/late"}
    late.update(startDate="9999-12-31T23:00:00-05:00", endDate=None, duration="P3D")
    body = _rss(_script(json.dumps(JSON_LD_EVENT)), _script(json.dumps(late)))
    page = atom.read_feed(body, "https://stmarks.example/news.rss", NOW)
    assert [c.id for c in page.changes] == [JSON_LD_EVENT["@id"]]
    (refused,) = page.unmapped
    assert refused.ref == "https://stmarks.example/news/1" and "out of range" in refused.reason


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?>' + b"<!-- padding -->" * 1000 + b'<!DOCTYPE x [<!ENTITY a "a">]><rss/>',
        '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY a "a">]><rss/>'.encode("utf-16"),
        '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY a "a">]><rss/>'.encode("utf-16-be"),
    ],
    ids=["after-a-long-prolog", "utf-16", "utf-16-without-bom"],
)
def test_atom_a_doctype_anywhere_in_the_prolog_is_refused(body):
    page = atom.read_feed(body, "https://x.example/feed", NOW)
    assert not page.snapshot and page.changes == []
    assert "declares a DOCTYPE" in page.unmapped[0].reason


def test_atom_a_doctype_inside_an_entrys_text_is_not_one():
    body = _rss("<!DOCTYPE html><p>A page pasted whole</p>")
    page = atom.read_feed(body, "https://x.example/feed", NOW)
    assert page.snapshot and "is not an activity" in page.unmapped[0].reason


def test_the_guard_turns_what_a_source_broke_into_a_reason_and_nothing_else():
    """The guard gives back what the mapping gives, and an Unmapped for what the source broke."""
    assert guarded("r", "Item r", lambda: Unmapped("r", "fine")) == Unmapped("r", "fine")
    refused = guarded("r", "Item r", lambda: date(99999, 1, 1))
    assert isinstance(refused, Unmapped) and refused.reason.startswith("Item r could not be read: ")
    with pytest.raises(NameError):  # our own bug is not hidden as the source's problem
        guarded("r", "Item r", lambda: undefined_name)  # noqa: F821


def test_openactive_sessions_at_the_same_time_are_not_compared_as_objects():
    """Two sessions starting together once made the series a fault (dicts compared in a sort)."""
    twins = [_session(3), {**_session(3), "@id": "https://leisure.example/sessions/twin"}]
    candidate = openactive.map_opportunity({**_series(), "subEvent": twins}, "https://x.example/#wf", NOW)
    assert candidate.problems == [] and candidate.activity["capacity"]["remaining"] == 3
