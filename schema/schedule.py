"""Schedules: when an activity happens next, as iCalendar rules and in plain English.

A schedule entry is a repeating pattern of local wall-clock times in a time zone
(``Europe/London`` unless it says otherwise): "every Tuesday 10:00-11:00" stays at
10:00 on the clock through British Summer Time, so the UTC instant moves by an hour at
each clock change. Expansion works on local dates and attaches the zone last, which
``zoneinfo`` resolves to the right offset for each date.

Entries are assumed valid (``schema.validate_activity``); expansion is on the hot path
of every query result, so it computes the first date it needs instead of walking from
``startDate``. Yet ``next_occurrences`` never fails on what a store may hold from before a
rule: a session the calendar cannot hold (near year 1 or 9999, in any zone or in UTC) is
no session, and a time zone no longer known is read as Europe/London.
"""

from __future__ import annotations

import calendar
import heapq
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schema.limits import LATEST_YEAR

DEFAULT_TIMEZONE = "Europe/London"
# The zone people here read times in: one object, so every page and feed agrees on it.
LOCAL_ZONE = ZoneInfo(DEFAULT_TIMEZONE)
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
INACTIVE_STATUSES = frozenset({"paused", "cancelled"})
EN_DASH = "\u2013"

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_WEEKS = {1: "First", 2: "Second", 3: "Third", 4: "Fourth", -1: "Last"}
_ONE_WEEK = timedelta(days=7)


class Occurrence(NamedTuple):
    """One session: timezone-aware start and end, in the schedule's time zone."""

    start: datetime
    end: datetime


def next_occurrences(activity: Mapping[str, Any], after: datetime, count: int) -> list[Occurrence]:
    """The next ``count`` sessions of ``activity`` starting strictly after ``after``, soonest first.

    All schedule entries are merged; a paused or cancelled activity has none. An Event
    gives its own start and end (in Europe/London time) if it starts after ``after``.
    Every session returned can be converted to UTC (callers store and compare it so): one
    that cannot, near year 1 or 9999, is left out, with every later one of its entry.
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(
            f"next_occurrences needs a timezone-aware 'after', got {after!r}; "
            "use e.g. datetime.now(timezone.utc)."
        )
    if count <= 0 or activity.get("status") in INACTIVE_STATUSES:
        return []
    if activity.get("type") == "Event":
        return _event_occurrence(activity, after)
    streams = [_within_calendar(_entry_occurrences(entry, after)) for entry in activity.get("schedule") or ()]
    found: list[Occurrence] = []
    for occurrence in heapq.merge(*streams):
        if not found or occurrence != found[-1]:
            found.append(occurrence)
            if len(found) == count:
                break
    return found


def _event_occurrence(activity: Mapping[str, Any], after: datetime) -> list[Occurrence]:
    zone = LOCAL_ZONE
    try:
        start = datetime.fromisoformat(activity["startDate"]).astimezone(zone)
        if start <= after:
            return []
        occurrence = Occurrence(start, datetime.fromisoformat(activity["endDate"]).astimezone(zone))
        _check_in_utc(occurrence)
    except _OUT_OF_CALENDAR:
        return []
    return [occurrence]


# Dates past either end of the calendar (year 1 and 9999) raise these: OverflowError from
# arithmetic and zone conversions, ValueError from building a date in year 0 or 10000 (and
# from a date or time that is not one, which has no session either).
_OUT_OF_CALENDAR = (OverflowError, ValueError)
# Only sessions in these years can fail to convert to UTC (no offset is a day long).
_EDGE_YEARS = (date.min.year, date.max.year)


def _check_in_utc(occurrence: Occurrence) -> None:
    """Raise OverflowError if the session cannot be written in UTC; cheap for every other year."""
    if occurrence.start.year in _EDGE_YEARS or occurrence.end.year in _EDGE_YEARS:
        occurrence.start.astimezone(UTC)
        occurrence.end.astimezone(UTC)


def _within_calendar(occurrences: Iterator[Occurrence]) -> Iterator[Occurrence]:
    """``occurrences`` up to the first one outside the calendar (or in UTC), which ends the stream."""
    while True:
        try:
            occurrence = next(occurrences)
            _check_in_utc(occurrence)
        except (StopIteration, *_OUT_OF_CALENDAR):
            return
        yield occurrence


def _zone(entry: Mapping[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(entry.get("timezone") or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        # The contract takes only zones tzdata knows, but tzdata can drop one after it was stored
        # (or a path skipped the contract): the schedule is then read in the default zone, as it
        # would be had it named none, rather than failing every page that shows it.
        return LOCAL_ZONE


def _weekday_numbers(entry: Mapping[str, Any]) -> list[int]:
    return sorted({WEEKDAYS.index(day) for day in entry.get("byDay") or ()})


def _entry_occurrences(entry: Mapping[str, Any], after: datetime | None) -> Iterator[Occurrence]:
    """Sessions of one entry after ``after`` (or from its first date when None), in order."""
    zone = _zone(entry)
    starts_at = time.fromisoformat(entry["startTime"])
    ends_at = time.fromisoformat(entry["endTime"])
    first = date.fromisoformat(entry["startDate"])
    last = date.fromisoformat(entry["endDate"]) if entry.get("endDate") else None
    days_off = {date.fromisoformat(day) for day in entry.get("exceptDates") or ()}
    # Sessions on local dates before ``after``'s local date started before it.
    from_day = first if after is None else max(first, after.astimezone(zone).date())
    for day in _dates(entry, first, from_day):
        if last is not None and day > last:
            return
        if day in days_off:
            continue
        start = datetime.combine(day, starts_at, zone)
        if after is not None and start <= after:
            continue
        yield Occurrence(start, datetime.combine(day, ends_at, zone))


def _dates(entry: Mapping[str, Any], first: date, from_day: date) -> Iterator[date]:
    """The local dates the pattern falls on, from ``from_day`` on, without end."""
    weekdays = _weekday_numbers(entry)
    if not weekdays:
        return
    frequency = entry["repeatFrequency"]
    if frequency == "P1M":
        yield from _monthly_dates(weekdays, entry["byMonthWeek"], from_day)
        return
    interval = 2 if frequency == "P2W" else 1
    monday = from_day - timedelta(days=from_day.weekday())
    if interval == 2:
        # Fortnights count from the week of the first session on or after startDate,
        # as iCalendar's INTERVAL=2 does from DTSTART's week.
        anchor = _first_pattern_day(first, weekdays)
        anchor_monday = anchor - timedelta(days=anchor.weekday())
        if ((monday - anchor_monday).days // 7) % 2:
            monday += _ONE_WEEK
    step = _ONE_WEEK * interval
    while True:
        for weekday in weekdays:
            day = monday + timedelta(days=weekday)
            if day >= from_day:
                yield day
        monday += step


def _first_pattern_day(first: date, weekdays: list[int]) -> date:
    return min(first + timedelta(days=(weekday - first.weekday()) % 7) for weekday in weekdays)


def _monthly_dates(weekdays: list[int], month_week: int, from_day: date) -> Iterator[date]:
    year, month = from_day.year, from_day.month
    while True:
        for day in sorted(nth_weekday(year, month, weekday, month_week) for weekday in weekdays):
            if day >= from_day:
                yield day
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def nth_weekday(year: int, month: int, weekday: int, month_week: int) -> date:
    """The ``month_week``-th (1-4, or -1 for the last) ``weekday`` (0 = Monday) of a month."""
    if month_week == -1:
        last_day = calendar.monthrange(year, month)[1]
        last = date(year, month, last_day)
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (month_week - 1))


def series_start(entry: Mapping[str, Any]) -> Occurrence:
    """The first session on or after the entry's startDate, even if it is an except date.

    This is iCalendar's DTSTART/DTEND for the entry's RRULE; except dates become EXDATEs
    (``except_starts``).
    """
    first = dict(entry)
    first.pop("exceptDates", None)
    first.pop("endDate", None)
    return next(_entry_occurrences(first, None))


def except_starts(entry: Mapping[str, Any]) -> list[datetime]:
    """The start of each excepted session, as iCalendar EXDATE values in the entry's zone."""
    zone = _zone(entry)
    starts_at = time.fromisoformat(entry["startTime"])
    return [
        datetime.combine(date.fromisoformat(day), starts_at, zone) for day in entry.get("exceptDates") or ()
    ]


def to_rrule(entry: Mapping[str, Any]) -> str:
    """The entry's repeat pattern as an iCalendar RRULE value, e.g. ``FREQ=MONTHLY;BYDAY=1TU``.

    ``UNTIL`` is the last possible session's start in UTC, as RFC 5545 requires when
    DTSTART carries a TZID.
    """
    days = [WEEKDAYS[n] for n in _weekday_numbers(entry)]
    frequency = entry["repeatFrequency"]
    if frequency == "P1M":
        week = int(entry["byMonthWeek"])  # JSON may say 1.0, which the schema accepts as 1
        parts = ["FREQ=MONTHLY", "BYDAY=" + ",".join(f"{week}{day}" for day in days)]
    else:
        parts = ["FREQ=WEEKLY"]
        if frequency == "P2W":
            parts.append("INTERVAL=2")
        parts.append("BYDAY=" + ",".join(days))
    if entry.get("endDate"):
        last_start = datetime.combine(
            date.fromisoformat(entry["endDate"]), time.fromisoformat(entry["startTime"]), _zone(entry)
        )
        parts.append("UNTIL=" + last_start.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ"))
    return ";".join(parts)


def describe(entry: Mapping[str, Any]) -> str:
    """The entry in plain English, e.g. "First Tuesday of the month, 10:00\u201312:00"."""
    weekdays = _weekday_numbers(entry)
    frequency = entry["repeatFrequency"]
    if frequency == "P1M":
        when = f"{_MONTH_WEEKS[entry['byMonthWeek']]} {_day_list(weekdays)} of the month"
    elif frequency == "P2W":
        when = f"Every other {_day_list(weekdays)}"
    elif weekdays == list(range(7)):
        when = "Every day"
    elif weekdays == list(range(5)):
        when = "Every weekday"
    else:
        when = f"Every {_day_list(weekdays)}"
    text = f"{when}, {entry['startTime']}{EN_DASH}{entry['endTime']}"
    if entry.get("endDate"):
        last = date.fromisoformat(entry["endDate"])
        text += f", until {last.day} {last:%B} {last.year}"
    return text


def _day_list(weekdays: list[int]) -> str:
    names = [_DAY_NAMES[n] for n in weekdays]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# -- limits on the rules a source may give, the same for every feed format ----------------

# RFC 5545 frequencies, coarsest last. A schedule repeats at most daily: a rule that repeats
# within a day is not something a person goes to, and listing its occurrences is unbounded work.
FINER_THAN_DAILY = ("SECONDLY", "MINUTELY", "HOURLY")
AT_MOST_DAILY = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
# An end further ahead than this is no end at all: the schedule runs on. It also keeps every
# date computed from a schedule (its expansion, its iCalendar UNTIL) well inside year 9999.
RUNS_ON_AFTER_YEARS = 100


def repeat_problem(frequency: str, interval: Any = 1, times_a_day: int = 1) -> str | None:
    """Why a source's repeat rule cannot become a schedule, in plain words; None when it can.

    ``frequency`` is an RFC 5545 FREQ (iCalendar, Open Referral; OpenActive's durations are
    converted to one), ``interval`` the source's value as given (any JSON), ``times_a_day``
    how many times a day the rule's other parts make it happen (iCalendar's BYHOUR and kin).
    """
    if frequency in FINER_THAN_DAILY:
        return f"it repeats {frequency.lower()}, more often than once a day, which no schedule can show"
    if frequency not in AT_MOST_DAILY:
        return f"its repeat frequency '{frequency}' is not one we know (daily, weekly, monthly or yearly)"
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        return f"its repeat interval {interval!r} is not a whole number of 1 or more"
    if times_a_day > 1:
        return f"it repeats {times_a_day} times a day, more often than once a day, which no schedule can show"
    return None


def runs_on(end: date, start: date) -> bool:
    """Whether an end this far after ``start``, or past the last year the contract holds, means no end.

    An ``endDate`` after ``LATEST_YEAR`` would cost the schedule its place (the contract refuses
    it), so a source's end that far off is read as what it means: the schedule runs on.
    """
    return end.year - start.year > RUNS_ON_AFTER_YEARS or end.year > LATEST_YEAR


def start_problem(start: date, today: date) -> str | None:
    """Why a schedule or event cannot start on ``start``, in plain words; None when it can."""
    if start.year - today.year > RUNS_ON_AFTER_YEARS:
        return f"it starts on {start.isoformat()}, more than {RUNS_ON_AFTER_YEARS} years ahead"
    return None


def nth_session_date(entry: Mapping[str, Any], count: int) -> date | None:
    """The date of the ``count``-th session of the entry's pattern from its startDate (1 = the first).

    Arithmetic, not a walk through the sessions: a source may say COUNT=300000000. Returns
    None when that session is so far off that the schedule runs on (or past year 9999).
    Ignores ``endDate`` and ``exceptDates``, as iCalendar's COUNT counts before EXDATEs.
    """
    weekdays = _weekday_numbers(entry)
    if count < 1 or not weekdays:
        return None
    first = date.fromisoformat(entry["startDate"])
    try:
        if entry["repeatFrequency"] == "P1M":
            found = _nth_monthly(weekdays, int(entry["byMonthWeek"]), first, count)
        else:
            found = _nth_weekly(weekdays, 2 if entry["repeatFrequency"] == "P2W" else 1, first, count)
    except (OverflowError, ValueError):  # past year 9999
        return None
    return None if runs_on(found, first) else found


def _nth_weekly(weekdays: list[int], interval: int, first: date, count: int) -> date:
    # The same weeks as ``_dates``: from the first date's week, or the next one when a
    # fortnightly pattern's first session falls there.
    monday = first - timedelta(days=first.weekday())
    if interval == 2 and _first_pattern_day(first, weekdays) - monday >= _ONE_WEEK:
        monday += _ONE_WEEK
    first_week = [monday + timedelta(days=weekday) for weekday in weekdays]
    first_week = [day for day in first_week if day >= first]
    if count <= len(first_week):
        return first_week[count - 1]
    later = count - len(first_week) - 1  # sessions after the first week, counted from 0
    weeks, index = divmod(later, len(weekdays))
    if (weeks + 1) * interval * 7 > (date.max - monday).days:
        raise OverflowError("past year 9999")
    return monday + _ONE_WEEK * interval * (weeks + 1) + timedelta(days=weekdays[index])


def _nth_monthly(weekdays: list[int], month_week: int, first: date, count: int) -> date:
    def month_dates(months_on: int) -> list[date]:
        year, month = divmod(first.year * 12 + first.month - 1 + months_on, 12)
        if year > date.max.year:
            raise OverflowError("past year 9999")
        return sorted(nth_weekday(year, month + 1, weekday, month_week) for weekday in weekdays)

    first_month = [day for day in month_dates(0) if day >= first]
    if count <= len(first_month):
        return first_month[count - 1]
    months, index = divmod(count - len(first_month) - 1, len(weekdays))
    return month_dates(months + 1)[index]
