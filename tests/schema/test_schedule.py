"""Schedule expansion: local wall-clock times through clock changes, month ends, days off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from schema import Occurrence, next_occurrences
from schema.schedule import describe, except_starts, series_start, to_rrule
from tests.factories import event_activity, weekly_activity
from tests.schema.conftest import example

LONDON = ZoneInfo("Europe/London")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts_utc(occurrences: list[Occurrence]) -> list[datetime]:
    return [o.start.astimezone(UTC) for o in occurrences]


def first_tuesday(**entry) -> dict:
    schedule = {
        "repeatFrequency": "P1M",
        "byDay": ["TU"],
        "byMonthWeek": 1,
        "startTime": "10:00",
        "endTime": "12:00",
    }
    schedule.update(startDate="2026-01-01", **entry)
    return weekly_activity(schedule=[schedule])


def test_first_tuesday_keeps_ten_oclock_local_across_the_october_clock_change():
    # BST ends on 25 October 2026: 10:00 BST is 09:00Z, then 10:00 GMT is 10:00Z.
    found = next_occurrences(first_tuesday(), utc(2026, 9, 15), 3)
    assert starts_utc(found) == [utc(2026, 10, 6, 9), utc(2026, 11, 3, 10), utc(2026, 12, 1, 10)]
    assert [(o.start.hour, o.end.hour) for o in found] == [(10, 12)] * 3
    assert all(o.start.tzinfo == LONDON for o in found)
    assert found[0].start.utcoffset() == timedelta(hours=1)
    assert found[1].start.utcoffset() == timedelta(0)


def test_first_tuesday_across_the_march_clock_change():
    # BST starts on 29 March 2026.
    found = next_occurrences(first_tuesday(), utc(2026, 2, 10), 2)
    assert starts_utc(found) == [utc(2026, 3, 3, 10), utc(2026, 4, 7, 9)]


def test_weekly_session_moves_in_utc_when_the_clocks_go_back():
    found = next_occurrences(weekly_activity(), utc(2026, 10, 19), 2)
    assert starts_utc(found) == [utc(2026, 10, 20, 9), utc(2026, 10, 27, 10)]
    assert [o.end - o.start for o in found] == [timedelta(hours=1)] * 2


def test_last_friday_of_the_month_is_safe_at_month_ends():
    activity = example("last-friday")
    # From the last hour of 31 January: February and March end on other weekdays.
    found = next_occurrences(activity, utc(2026, 1, 31, 23), 5)
    assert [o.start.date().isoformat() for o in found] == [
        "2026-02-27",
        "2026-03-27",
        "2026-04-24",
        "2026-05-29",
        "2026-06-26",
    ]
    assert starts_utc(found)[1:3] == [utc(2026, 3, 27, 12), utc(2026, 4, 24, 11)]
    # July 2026 ends on a Friday, the 31st; December 2026's last Friday is Christmas Day.
    later = next_occurrences(activity, utc(2026, 7, 1), 6)
    assert later[0].start.date().isoformat() == "2026-07-31"
    assert later[-1].start.date().isoformat() == "2026-12-25"


@pytest.mark.parametrize(
    ("month_week", "expected"),
    [(1, "2026-03-03"), (2, "2026-03-10"), (3, "2026-03-17"), (4, "2026-03-24"), (-1, "2026-03-31")],
)
def test_each_week_of_the_month(month_week, expected):
    [found] = next_occurrences(first_tuesday(byMonthWeek=month_week), utc(2026, 3, 1), 1)
    assert found.start.date().isoformat() == expected


def test_every_other_week_counts_from_the_first_session_on_or_after_the_start_date():
    activity = example("fortnightly")  # Thursdays from 2026-09-03
    assert [o.start.date().isoformat() for o in next_occurrences(activity, utc(2026, 9, 20), 3)] == [
        "2026-10-01",
        "2026-10-15",
        "2026-10-29",
    ]
    # Far from the start, the fortnight is still in step: 3 Sep 2026 + 18 weeks is 7 Jan 2027.
    assert [o.start.date().isoformat() for o in next_occurrences(activity, utc(2027, 1, 1), 2)] == [
        "2027-01-07",
        "2027-01-21",
    ]
    # A start date on another weekday: the first Thursday on or after it begins the count.
    activity["schedule"][0]["startDate"] = "2026-09-05"
    assert next_occurrences(activity, utc(2026, 1, 1), 1)[0].start.date().isoformat() == "2026-09-10"


def test_except_dates_are_skipped_and_the_end_date_is_the_last():
    activity = example("with-except-dates")  # Mon and Wed 09:30, off over Christmas, until 2027-07-21
    around_christmas = next_occurrences(activity, utc(2026, 12, 14), 4)
    assert [o.start.date().isoformat() for o in around_christmas] == [
        "2026-12-14",
        "2026-12-16",
        "2027-01-04",
        "2027-01-06",
    ]
    assert [o.start.date().isoformat() for o in next_occurrences(activity, utc(2027, 7, 15), 5)] == [
        "2027-07-19",
        "2027-07-21",
    ]
    assert next_occurrences(activity, utc(2027, 7, 22), 5) == []


def test_sessions_start_strictly_after_the_given_instant():
    first = next_occurrences(weekly_activity(), utc(2026, 10, 1), 1)[0]
    assert next_occurrences(weekly_activity(), first.start, 1)[0].start == first.start + timedelta(days=7)
    just_before = first.start - timedelta(seconds=1)
    assert next_occurrences(weekly_activity(), just_before, 1)[0] == first
    # During a session: the next one is the following week's.
    during = first.start + timedelta(minutes=30)
    assert next_occurrences(weekly_activity(), during, 1)[0].start == first.start + timedelta(days=7)


def test_a_series_that_has_not_started_begins_at_its_start_date():
    found = next_occurrences(weekly_activity(), utc(2020, 1, 1), 1)
    assert found[0].start == datetime(2026, 1, 6, 10, tzinfo=LONDON)


def test_entries_are_merged_in_order():
    entries = [
        {
            "repeatFrequency": "P1W",
            "byDay": ["TH"],
            "startTime": "14:00",
            "endTime": "15:00",
            "startDate": "2026-01-01",
        },
        {
            "repeatFrequency": "P1W",
            "byDay": ["TU"],
            "startTime": "10:00",
            "endTime": "11:00",
            "startDate": "2026-01-01",
        },
        {
            "repeatFrequency": "P1M",
            "byDay": ["TH"],
            "byMonthWeek": 1,
            "startTime": "14:00",
            "endTime": "15:00",
            "startDate": "2026-01-01",
        },  # the same as the weekly Thursday, once a month: shown once
    ]
    found = next_occurrences(weekly_activity(schedule=entries), utc(2026, 10, 1), 4)
    assert [o.start.strftime("%a %d %H:%M") for o in found] == [
        "Thu 01 14:00",
        "Tue 06 10:00",
        "Thu 08 14:00",
        "Tue 13 10:00",
    ]


def test_an_event_gives_its_own_times_while_it_is_ahead():
    event = event_activity()  # 2026-12-10 12:00 to 14:00 UTC
    [found] = next_occurrences(event, utc(2026, 11, 1), 3)
    assert found.start == utc(2026, 12, 10, 12) and found.end == utc(2026, 12, 10, 14)
    assert found.start.tzinfo == LONDON
    assert next_occurrences(event, utc(2026, 12, 10, 12), 3) == []


@pytest.mark.parametrize("status", ["paused", "cancelled"])
def test_paused_and_cancelled_activities_have_no_sessions(status):
    assert next_occurrences(weekly_activity(status=status), utc(2026, 10, 1), 3) == []
    assert next_occurrences(event_activity(status=status), utc(2026, 10, 1), 3) == []


def test_a_naive_instant_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_occurrences(weekly_activity(), datetime(2026, 10, 1), 1)


def test_other_time_zones_are_respected():
    activity = weekly_activity()
    activity["schedule"][0]["timezone"] = "America/New_York"
    [found] = next_occurrences(activity, utc(2026, 10, 19), 1)
    assert found.start.astimezone(UTC) == utc(2026, 10, 20, 14)


@pytest.mark.parametrize(
    ("name", "rrule", "text"),
    [
        ("weekly", "FREQ=WEEKLY;BYDAY=TU", "Every Tuesday, 10:00\u201311:00"),
        ("fortnightly", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH", "Every other Thursday, 18:00\u201319:30"),
        ("first-tuesday", "FREQ=MONTHLY;BYDAY=1TU", "First Tuesday of the month, 10:00\u201312:00"),
        ("last-friday", "FREQ=MONTHLY;BYDAY=-1FR", "Last Friday of the month, 12:00\u201314:00"),
        ("mixed", "FREQ=MONTHLY;BYDAY=2WE", "Second Wednesday of the month, 19:00\u201320:30"),
        (
            "with-except-dates",
            "FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20270721T083000Z",
            "Every Monday and Wednesday, 09:30\u201311:00, until 21 July 2027",
        ),
    ],
)
def test_rrule_and_plain_english(name, rrule, text):
    entry = example(name)["schedule"][0]
    assert to_rrule(entry) == rrule
    assert describe(entry) == text


def test_a_whole_number_written_as_a_decimal_still_makes_a_valid_rule():
    entry = {**example("first-tuesday")["schedule"][0], "byMonthWeek": 1.0}
    assert to_rrule(entry) == "FREQ=MONTHLY;BYDAY=1TU"
    assert describe(entry).startswith("First Tuesday of the month")


def test_plain_english_for_many_days():
    entry = {"repeatFrequency": "P1W", "startTime": "09:00", "endTime": "10:00", "startDate": "2026-01-01"}
    assert describe({**entry, "byDay": ["FR", "MO", "WE"]}).startswith("Every Monday, Wednesday and Friday,")
    assert describe({**entry, "byDay": ["MO", "TU", "WE", "TH", "FR"]}).startswith("Every weekday,")
    assert describe({**entry, "byDay": ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]}).startswith("Every day,")


@pytest.mark.parametrize(
    "name", ["weekly", "fortnightly", "first-tuesday", "last-friday", "with-except-dates", "online"]
)
def test_expansion_matches_an_independent_icalendar_engine(name):
    """dateutil expanding our RRULE from our DTSTART, minus EXDATEs, gives the same sessions."""
    entry = example(name)["schedule"][0]
    dtstart = series_start(entry).start
    rule = rrulestr(to_rrule(entry), dtstart=dtstart)
    excluded = set(except_starts(entry))
    after = utc(2026, 3, 1)
    theirs = []
    for start in rule:
        if start > after and start not in excluded:
            theirs.append(start)
        if len(theirs) == 40:
            break
    ours = [o.start for o in next_occurrences(example(name) | {"status": "scheduled"}, after, 40)]
    assert ours == theirs
