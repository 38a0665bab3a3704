"""iCalendar feeds: the published example calendars, a UK community calendar, and the
occurrences we show matching the ones recurring-ical-events computes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events

from aggregator.adapters import detect, ical
from aggregator.adapters.mapping import VERIFIED_BY
from federation.feeds.common import FeedInfo
from federation.feeds.ical import render_ical
from schema import next_occurrences, validate_activity
from tests.adapters.conftest import FIXTURES
from tests.factories import event_activity, weekly_activity

CALENDAR = "text/calendar"


def harvest(site, fetch_for, body, now, path="/calendar.ics"):
    assert detect(CALENDAR, body) == "ical"
    url = site.file(path, body, CALENDAR)
    (page,) = ical.pages(fetch_for(url), url, None, now=now)
    return url, page


def by_ref(page):
    return {change.ref: change.data for change in page.changes}


def test_uk_community_calendar(site, fetch_for):
    body = (FIXTURES / "community_centre.ics").read_bytes()
    url, page = harvest(site, fetch_for, body, now=datetime(2026, 3, 1, tzinfo=UTC))
    assert page.snapshot
    for change in page.changes:
        assert validate_activity(change.data) == [], change.ref
    found = by_ref(page)

    yoga = found["event chair-yoga-2026@pollards-hill.example"]
    assert yoga["id"] == url + "#chair-yoga-2026%40pollards-hill.example"
    assert yoga["type"] == "SessionSeries"
    assert yoga["schedule"] == [
        {
            "repeatFrequency": "P1W",
            "byDay": ["TU"],
            "startTime": "10:00",
            "endTime": "11:00",
            "startDate": "2026-02-03",
            # The EXDATE, and the date of the occurrence moved to a Wednesday.
            "exceptDates": ["2026-03-17", "2026-04-07"],
            "timezone": "Europe/London",  # from the Windows name "GMT Standard Time"
        }
    ]
    assert yoga["location"] == {
        "name": "Pollards Hill Community Centre",
        "address": {
            "streetAddress": "South Lodge Avenue",
            "addressLocality": "Mitcham",
            "postalCode": "CR4 1LT",
        },
    }
    assert yoga["price"] == {"amount": 3.0, "currency": "GBP"}  # "£3 on the door"
    assert "yoga-pilates" in yoga["categories"]
    assert yoga["organizer"] == {"name": "Pollards Hill Community Centre"}  # X-WR-CALNAME
    assert yoga["lastVerified"] == "2026-01-15" and VERIFIED_BY not in yoga  # LAST-MODIFIED

    moved = found["event chair-yoga-2026@pollards-hill.example on 2026-04-07"]
    assert moved["type"] == "Event"
    assert (moved["startDate"], moved["endDate"]) == (
        "2026-04-08T14:00:00+01:00",
        "2026-04-08T15:00:00+01:00",
    )
    assert moved["name"] == "Chair Yoga (moved to Wednesday)"
    assert moved["location"]["address"]["postalCode"] == "CR4 1LT"  # inherited from the series

    knit = found["event knit-natter@pollards-hill.example"]
    assert knit["schedule"][0]["repeatFrequency"] == "P1M"
    assert knit["schedule"][0]["byMonthWeek"] == 1 and knit["schedule"][0]["byDay"] == ["TU"]
    assert knit["location"]["geo"] == {"latitude": 51.4, "longitude": -0.135}  # X-APPLE-STRUCTURED-LOCATION
    assert knit["price"] == {"isFree": True}
    assert knit[VERIFIED_BY] == "harvest"  # no LAST-MODIFIED: not confirmed by the organiser

    # Every third Wednesday cannot be a schedule: its next occurrences are listed instead.
    walks = sorted(data["startDate"] for ref, data in found.items() if ref.startswith("event three-weekly"))
    assert walks == [
        "2026-03-11T11:00:00+00:00",
        "2026-04-01T11:00:00+01:00",
        "2026-04-22T11:00:00+01:00",
        "2026-05-13T11:00:00+01:00",
    ]
    # Its calendar says nothing of a price: unknown, never "free".
    walk = next(data for ref, data in found.items() if ref.startswith("event three-weekly"))
    assert walk["price"] == {"isFree": False, "notes": "Price not given; check with the organiser"}

    (quiz,) = page.unmapped
    assert quiz.reason == "Event 'Charity Quiz Night': its LOCATION 'Somewhere in Mitcham' has no UK postcode"


def _occurrences_we_show(activities, after, until):
    found = set()
    for activity in activities:
        for occurrence in next_occurrences(activity, after, 1000):
            if occurrence.start < until:
                found.add((occurrence.start.astimezone(UTC), occurrence.end.astimezone(UTC)))
    return found


def _occurrences_calendar_shows(body, after, until, zone="Europe/London"):
    """recurring-ical-events' occurrences; an all-day one as we show it, 00:00 to 23:59 on its last day."""

    def instant(value, clock):
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.combine(value, clock, tzinfo=ZoneInfo(zone)).astimezone(UTC)

    calendar = icalendar.Calendar.from_ical(body)
    found = set()
    for event in recurring_ical_events.of(calendar).between(after, until):
        start = event["DTSTART"].dt
        end = event["DTEND"].dt if isinstance(start, datetime) else event["DTEND"].dt - timedelta(days=1)
        found.add((instant(start, time(0)), instant(end, time(23, 59))))
    return found


def test_weekly_event_with_exception_and_moved_occurrence_matches_recurring_ical_events():
    """The series (with exceptDates) plus the moved occurrence give what a calendar program shows."""
    body = (FIXTURES / "community_centre.ics").read_bytes()
    after = datetime(2026, 3, 1, tzinfo=UTC)
    until = after + timedelta(weeks=10)  # across the clocks going forward on 29 March
    yoga = [
        c.activity for c in ical.candidates(body, "https://c.example/f.ics", after) if "chair-yoga" in c.id
    ]
    assert [a["type"] for a in yoga] == ["SessionSeries", "Event"]
    ours = _occurrences_we_show(yoga, after, until)
    calendar = icalendar.Calendar.from_ical(body)
    theirs = {
        (e["DTSTART"].dt.astimezone(UTC), e["DTEND"].dt.astimezone(UTC))
        for e in recurring_ical_events.of(calendar).between(after, until)
        if "chair-yoga" in str(e["UID"])
    }
    assert len(theirs) == 9  # ten Tuesdays, less 17 March, with 7 April moved to 8 April
    assert ours == theirs


@pytest.mark.parametrize(
    ("name", "start", "days", "zone"),
    [
        ("machbar_16_feb_2019.ics", datetime(2017, 6, 1, tzinfo=UTC), 700, "Europe/Berlin"),
        ("issue_28_rrule_with_UTC_endinginZ.ics", datetime(2020, 3, 1, tzinfo=UTC), 240, "Europe/London"),
        ("issue_223_thunderbird.ics", datetime(2025, 4, 20, tzinfo=UTC), 20, "Europe/London"),
        ("x_location.ics", datetime(2016, 10, 25, tzinfo=UTC), 30, "Europe/Zurich"),
    ],
)
def test_sample_calendars_give_the_occurrences_recurring_ical_events_computes(
    samples, name, start, days, zone
):
    """Over each real calendar's whole span, what we would show is what a calendar program shows."""
    body = (samples / "ical" / name).read_bytes()
    until = start + timedelta(days=days)
    drafts = [candidate.activity for candidate in ical.candidates(body, "https://c.example/f.ics", start)]
    assert any(draft["type"] == "SessionSeries" for draft in drafts)
    # One second back: next_occurrences counts strictly after, recurring-ical-events from.
    ours = _occurrences_we_show(drafts, start - timedelta(seconds=1), until)
    theirs = _occurrences_calendar_shows(body, start, until, zone)
    assert ours == theirs
    assert len(ours) > 0


def test_sample_calendars_harvested_and_what_cannot_be_shown_is_listed(site, fetch_for, samples):
    """None of the real calendars is in the UK, so each event is listed with why it cannot be shown."""
    machbar = (samples / "ical" / "machbar_16_feb_2019.ics").read_bytes()
    _, page = harvest(site, fetch_for, machbar, now=datetime(2018, 1, 1, tzinfo=UTC), path="/machbar.ics")
    assert page.changes == [] and page.snapshot
    reasons = {u.ref: u.reason for u in page.unmapped}
    assert reasons["event 2o60r26f5pq7muep7htdi4r01n@google.com"] == (
        "Event 'OK Lab': its LOCATION 'machBar Seminarraum' has no UK postcode"
    )
    assert "event 2o60r26f5pq7muep7htdi4r01n@google.com on 2018-05-01" in reasons  # the moved occurrence
    assert reasons["event 3761q5bsqtnh74ckejfgfrailt@google.com"].startswith(
        "Event 'mB-onTour: repairCafé': its LOCATION "
        "'Stadt- u. Landesbibliothek Potsdam im Bildungsforum, Am Kanal 47"
    )

    drafts = {
        c.ref: c.activity
        for c in ical.candidates(machbar, "https://c.example/f.ics", datetime(2018, 1, 1, tzinfo=UTC))
    }
    ok_lab = drafts["event 2o60r26f5pq7muep7htdi4r01n@google.com"]
    assert ok_lab["schedule"][0] | {"exceptDates": None} == {
        "repeatFrequency": "P2W",
        "byDay": ["TU"],
        "startTime": "19:00",
        "endTime": "21:00",
        "startDate": "2017-12-12",
        "exceptDates": None,
        "timezone": "Europe/Berlin",
    }
    assert "2018-05-01" in ok_lab["schedule"][0]["exceptDates"]
    moved = drafts["event 2o60r26f5pq7muep7htdi4r01n@google.com on 2018-05-01"]
    assert moved["startDate"] == "2018-05-02T19:00:00+02:00"
    repair = drafts["event 3761q5bsqtnh74ckejfgfrailt@google.com"]
    assert repair["schedule"] == [
        {
            "repeatFrequency": "P1M",
            "byDay": ["SA"],
            "byMonthWeek": 2,
            "startTime": "11:00",
            "endTime": "15:00",
            "startDate": "2019-01-12",
            "endDate": "2019-03-08",
            "timezone": "Europe/Berlin",
        }
    ]

    bins = (samples / "ical" / "issue_28_rrule_with_UTC_endinginZ.ics").read_bytes()
    _, page = harvest(site, fetch_for, bins, now=datetime(2020, 3, 1, tzinfo=UTC), path="/bins.ics")
    assert page.changes == [] and {u.reason.split(": ", 1)[1] for u in page.unmapped} == {
        "it has no LOCATION"
    }
    drafts = [
        c.activity for c in ical.candidates(bins, "https://c.example/f.ics", datetime(2020, 3, 1, tzinfo=UTC))
    ]
    black_bin = next(d for d in drafts if d["name"] == "Refuse black bin" and d["type"] == "SessionSeries")
    assert black_bin["schedule"] == [
        {
            "repeatFrequency": "P2W",
            "byDay": ["TH"],
            "startTime": "00:00",
            "endTime": "23:59",  # an all-day event
            "startDate": "2020-04-02",
            "endDate": "2020-09-16",
            # Moved occurrences, named by RECURRENCE-ID in the Windows zone "GMT Standard Time".
            "exceptDates": ["2020-04-16", "2020-05-28", "2020-09-03"],
            "timezone": "Europe/London",
        }
    ]

    thunderbird = (samples / "ical" / "issue_223_thunderbird.ics").read_bytes()
    _, page = harvest(site, fetch_for, thunderbird, now=datetime(2025, 4, 20, tzinfo=UTC), path="/tb.ics")
    reasons = {u.ref: u.reason for u in page.unmapped}
    assert reasons["event b143dcdc-2154-49a8-abea-5c64310ebabd on 2025-04-25"] == (
        "Event 'event' on 2025-04-25: its LOCATION 'new place' has no UK postcode"
    )
    drafts = {
        c.ref: c.activity
        for c in ical.candidates(thunderbird, "https://c.example/f.ics", datetime(2025, 4, 20, tzinfo=UTC))
    }
    daily = drafts["event b143dcdc-2154-49a8-abea-5c64310ebabd"]["schedule"][0]
    assert daily["byDay"] == ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
    assert (daily["startTime"], daily["endTime"], daily["timezone"]) == ("09:00", "10:00", "Europe/London")
    assert (daily["startDate"], daily["endDate"]) == ("2025-04-23", "2025-04-27")
    assert daily["exceptDates"] == ["2025-04-24", "2025-04-25"]
    moved = drafts["event b143dcdc-2154-49a8-abea-5c64310ebabd on 2025-04-24"]
    assert (moved["startDate"], moved["endDate"]) == (
        "2025-04-24T11:00:00+01:00",
        "2025-04-24T12:00:00+01:00",
    )

    zurich = (samples / "ical" / "x_location.ics").read_bytes()
    _, page = harvest(site, fetch_for, zurich, now=datetime(2016, 10, 25, tzinfo=UTC), path="/zurich.ics")
    (problem,) = page.unmapped
    assert problem.reason == (
        "Event 'Daily Sync': its LOCATION 'Roadstar 16 12764 Happyville Denmark' has no UK postcode"
    )


def test_past_events_are_left_out(site, fetch_for, samples):
    body = (samples / "ical" / "x_location.ics").read_bytes()
    now = datetime(2016, 11, 1, tzinfo=UTC)
    # The weekday series runs on (no UNTIL); nothing else in the file is current.
    assert [c.ref for c in ical.candidates(body, "https://c.example/f.ics", now)] == [
        "event BFE33ADD-5553-48B5-B5A5-F9DA5CA4C393"
    ]
    bins = (samples / "ical" / "issue_28_rrule_with_UTC_endinginZ.ics").read_bytes()
    assert ical.candidates(bins, "https://c.example/f.ics", datetime(2021, 1, 1, tzinfo=UTC)) == []


def test_a_publishers_own_calendar_round_trips():
    """Our publisher's .ics (federation.feeds.ical) reads back as the same schedule and event times."""
    info = FeedInfo(
        title="Mitcham Walkers",
        self_url="https://p.example/feeds/activities.ics",
        home_url="https://p.example/",
    )
    body = render_ical(info, [weekly_activity(), event_activity()])
    page = ical.read_calendar(body, info.self_url, datetime(2026, 11, 1, tzinfo=UTC))
    assert page.unmapped == []
    walk, lunch = sorted((c.data for c in page.changes), key=lambda a: a["type"], reverse=True)
    assert walk["schedule"] == weekly_activity()["schedule"]
    assert walk["location"]["address"]["postalCode"] == "CR4 1HT"
    assert (lunch["startDate"], lunch["endDate"]) == (
        event_activity()["startDate"],
        event_activity()["endDate"],
    )


def test_unreadable_calendar_is_reported_and_removes_nothing():
    page = ical.read_calendar(
        b"BEGIN:VCALENDAR\r\nthis is not a calendar", "https://c.example/f.ics", datetime.now(UTC)
    )
    assert not page.snapshot and page.changes == []
    (problem,) = page.unmapped
    assert problem.ref == "https://c.example/f.ics" and "is not a calendar we can read" in problem.reason


def test_windows_zone_names_become_iana_zones():
    assert ical._zone_name("GMT Standard Time") == "Europe/London"
    assert ical._zone_name("W. Europe Standard Time") == "Europe/Berlin"
    assert ical._zone_name("Europe/London") == "Europe/London"
    assert ical._zone_name("Nowhere Standard Time") is None


def test_an_event_we_cannot_read_is_listed_and_the_rest_still_maps():
    body = (
        (FIXTURES / "community_centre.ics")
        .read_bytes()
        .replace(
            b"END:VCALENDAR",
            b"BEGIN:VEVENT\r\nUID:no-start@x\r\nSUMMARY:Mystery Tour\r\nEND:VEVENT\r\n"
            b"BEGIN:VEVENT\r\nUID:odd-rule@x\r\nSUMMARY:Odd Rule\r\nLOCATION:Hall\\, Mitcham CR4 1LT\r\n"
            b"DTSTART;VALUE=DATE:20260302\r\nRRULE:FREQ=WEEKLY;UNTIL=20260401T000000Z;BYDAY=MO\r\nEND:VEVENT\r\n"
            b"END:VCALENDAR",
        )
    )
    page = ical.read_calendar(body, "https://c.example/f.ics", datetime(2026, 3, 1, tzinfo=UTC))
    reasons = {u.ref: u.reason for u in page.unmapped}
    assert reasons["event no-start@x"] == "Event 'Mystery Tour': it has no start (DTSTART)"
    assert "event chair-yoga-2026@pollards-hill.example" in {c.ref for c in page.changes}
    odd = [c for c in page.changes if c.ref == "event odd-rule@x"]
    assert odd and odd[0].data["schedule"][0]["endDate"] == "2026-04-01"


def _events_of(calendar) -> list[tuple[str, str, str, int]]:
    return [
        (str(e["UID"]), e["DTSTART"].to_ical().decode(), str(e["DTSTART"].dt.tzinfo), len(e.subcomponents))
        for e in calendar.walk("VEVENT")
    ]


ALARM = ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT15M", "END:VALARM"]


def test_a_large_calendar_is_read_in_batches_exactly_as_it_would_be_whole(monkeypatch):
    """Batches (so the time limit can stop a huge calendar) lose nothing: the calendar's own
    time zone, an event's alarm, lower-case markers, and the calendar's name all survive."""
    zone = "\r\n".join(
        ["BEGIN:VTIMEZONE", "TZID:Mitcham Time", "BEGIN:STANDARD", "DTSTART:19701025T030000",
         "TZOFFSETFROM:+0100", "TZOFFSETTO:+0000", "END:STANDARD", "END:VTIMEZONE"]
    )  # fmt: skip
    events = [
        "\r\n".join(
            ["begin:vevent" if n % 2 else "BEGIN:VEVENT", f"UID:e{n}",
             f"DTSTART;TZID={'Mitcham Time' if n % 3 else 'Europe/London'}:2027060{n % 9 + 1}T100000",
             "SUMMARY:Chair yoga", *(ALARM if n % 5 == 0 else []),
             "end:vevent" if n % 2 else "END:VEVENT"]
        )
        for n in range(23)
    ]  # fmt: skip
    body = "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "X-WR-CALNAME:Pollards Hill", zone, *events, "END:VCALENDAR", ""]
    ).encode()
    monkeypatch.setattr(ical, "READ_BATCH", 4)
    whole, batched = icalendar.Calendar.from_ical(body), ical._read(body)
    assert len(_events_of(batched)) == 23
    assert _events_of(batched) == _events_of(whole)
    assert str(batched["X-WR-CALNAME"]) == "Pollards Hill"
    # Not one calendar, or a component left open: read whole, so it fails as it always did.
    for broken in (body.replace(b"END:VCALENDAR", b""), body + body):
        assert ical._split_events(broken) == (broken, [])
