"""iCalendar feeds (a public ``.ics`` URL, e.g. a group's Google Calendar).

A calendar is read whole every time, so each harvest hands over a snapshot. Each
VEVENT series becomes one activity where its rule fits our schedule (weekly,
fortnightly, daily, or the nth weekday of the month); a series whose rule does not fit
becomes its next few occurrences, as one-off Events, computed by recurring-ical-events.

A calendar is a stranger's document, so the work it can cause is bounded: a rule that
repeats more often than daily (or with an interval of 0) is refused with a reason, a
COUNT's last date is computed, not listed, an end past ``RUNS_ON_AFTER_YEARS`` means the
series runs on, and a rule is expanded only for the series it belongs to and only over
``OCCURRENCE_HORIZON``. Whatever an event holds, it becomes a change or a reason.

An occurrence moved or changed with ``RECURRENCE-ID`` cannot be part of a repeating
rule, so the series skips its original date (``exceptDates``) and the moved occurrence
becomes a one-off Event of its own; a cancelled one is only skipped. Together they
give exactly the occurrences a calendar program shows.

Time zones come from the VTIMEZONE's TZID, including Windows names such as
"GMT Standard Time" (Outlook, Exchange), which are mapped to their IANA zones.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from itertools import islice, takewhile
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from dateutil.rrule import rrulestr
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from aggregator import budget
from aggregator.adapters import mapping as m
from aggregator.adapters.base import Fetch, Page, Unmapped
from federation.clock import utcnow
from schema.schedule import DEFAULT_TIMEZONE, nth_session_date, repeat_problem, runs_on, start_problem
from schema.text import http_url

KIND = "ical"

# How far ahead the occurrences of a series we cannot express as a schedule are listed.
OCCURRENCE_HORIZON = timedelta(days=92)
MAX_OCCURRENCES = 12
# A rule is walked from its DTSTART (by every expander, and again for each window looked
# at): one with more occurrences than this before today is refused rather than walked. It
# only concerns rules a schedule cannot say, such as "every third day since 1990".
MAX_PAST_OCCURRENCES = 10_000
# An all-day event runs to the end of its last day; our times are to the minute.
ALL_DAY_END = time(23, 59)
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_RULE_PARTS = {"FREQ", "INTERVAL", "BYDAY", "UNTIL", "COUNT", "WKST", "BYSETPOS"}
# The parts of a daily or weekly rule that we expand: filters that always match somewhere.
_WALKABLE_PARTS = {"FREQ", "INTERVAL", "UNTIL", "COUNT", "WKST", "BYDAY", "BYMONTH", "BYMONTHDAY"}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_GEO_URI = re.compile(r"geo:\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_POUNDS = re.compile(r"£\s?(\d+(?:\.\d{1,2})?)")
_COUNTRIES = {
    "uk",
    "united kingdom",
    "england",
    "scotland",
    "wales",
    "northern ireland",
    "gb",
    "great britain",
}


def sniff(content_type: str, body: bytes) -> bool:
    """``text/calendar``, or a body that opens with ``BEGIN:VCALENDAR``."""
    if content_type == "text/calendar":
        return True
    return body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").upper().startswith(b"BEGIN:VCALENDAR")


def pages(fetch: Fetch, url: str, cursor: str | None, *, now: datetime | None = None) -> Iterator[Page]:
    """One snapshot page of the calendar's current and future activities."""
    fetched = fetch(url)
    if fetched is not None:
        yield read_calendar(fetched.content, url, now or utcnow())


def read_calendar(body: bytes, feed_url: str, now: datetime) -> Page:
    """The page for a calendar's bytes: what maps, and why the rest does not."""
    try:
        found = candidates(body, feed_url, now)
    except m.SOURCE_ERRORS as exc:
        # Not a snapshot: an unreadable calendar must not remove what we already show.
        return Page(
            [],
            [
                Unmapped(
                    feed_url,
                    f"{feed_url} is not a calendar we can read ({m.source_error(exc)}); "
                    "check the address is the calendar's .ics (iCal) link.",
                )
            ],
        )
    page = Page([], [], snapshot=True)
    for candidate in found:
        result = candidate.result()
        page.add(result)
    return page


def candidates(body: bytes, feed_url: str, now: datetime) -> list[m.Candidate]:
    """An activity for every current or future series and event, with the problems that stop each."""
    calendar = _read(body)
    context = _Context(calendar, feed_url, now)
    by_uid: dict[str, list[Any]] = defaultdict(list)
    found: list[m.Candidate] = []
    for event in calendar.walk("VEVENT"):
        budget.spend(items=1)
        summary = m.text(event.get("SUMMARY"), m.SHORT_TEXT)
        if event.get("DTSTART") is None:
            found.append(_unreadable(event, context, "it has no start (DTSTART)"))
        else:
            # icalendar types to_ical() as bytes or str; a DTSTART's is bytes.
            by_uid[str(event.get("UID") or f"{event['DTSTART'].to_ical().decode()}-{summary}")].append(event)
    for uid, events in by_uid.items():
        budget.spend()  # counted above; this checks the time, as one series may take a moment
        try:
            found += _candidates_of(uid, events, context)
        except m.SOURCE_ERRORS as exc:  # one odd event, not the calendar
            problem = f"we could not read its dates or rule: {m.source_error(exc)}"
            found.append(_unreadable(events[0], context, problem))
    return found


def _candidates_of(uid: str, events: list[Any], context: _Context) -> list[m.Candidate]:
    """The activities of one UID: its series (or its next occurrences) and its moved occurrences."""
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    moved = [e for e in events if "RECURRENCE-ID" in e]
    master = masters[0] if masters else None
    if master is None or "RRULE" not in master or _single(master):
        return [
            _one_off(uid, event, master, context)
            for event in ([master] if master is not None else []) + moved
            if _ahead(event, context) and not (event is not master and _cancelled(event))
        ]
    refused = _rule_problem(master)
    if refused:
        return [_unreadable(master, context, refused)]
    entry = _schedule_entry(master, moved, context)
    if entry is None:
        return _occurrences(uid, master, moved, context)
    found = []
    if (
        entry.get("endDate", "9999-12-31")
        >= context.now.astimezone(ZoneInfo(entry["timezone"])).date().isoformat()
    ):
        found.append(_series(uid, master, entry, context))
    return found + [
        _one_off(uid, e, master, context) for e in moved if _ahead(e, context) and not _cancelled(e)
    ]


def _rule_problem(master: Any) -> str | None:
    """Why the master's repeat rules are refused outright (more often than daily), or None."""
    for rule in m.as_list(master.get("RRULE")):
        times_a_day = 1
        for part in ("BYHOUR", "BYMINUTE", "BYSECOND"):
            times_a_day *= max(1, len(set(rule.get(part, ()))))
        problem = repeat_problem(str(rule.get("FREQ", [""])[0]), rule.get("INTERVAL", [1])[0], times_a_day)
        if problem:
            shown = m.text(rule.to_ical().decode(errors="replace"), 80)
            return (
                f"its repeat rule {shown} cannot be shown: {problem}; "
                "ask the organiser to repeat it daily at most"
            )
    return None


def _unreadable(event: Any, context: _Context, problem: str) -> m.Candidate:
    uid = str(event.get("UID") or "")
    label = f"Event '{m.text(event.get('SUMMARY'), m.SHORT_TEXT) or uid or 'without a title'}'"
    return m.Candidate(
        m.minted_id(context.feed_url, uid), label, {}, [problem], ref=f"event {uid}" if uid else label
    )


# Events read at a time. icalendar reads a calendar in one call that nothing can stop (some
# 0.7 s a thousand events here, and slower in newer releases), so a large calendar is read a
# batch at a time, with the harvest's clock checked between batches.
READ_BATCH = 250


def _read(body: bytes) -> Any:
    """The calendar in ``body``, read a batch of events at a time so that the harvest's time
    limit can stop a huge one part way (:data:`READ_BATCH`)."""
    shell, events = _split_events(body)
    if not events:
        return icalendar.Calendar.from_ical(body)
    calendar = icalendar.Calendar.from_ical(shell)  # its time zones first, as they are read in order
    for start in range(0, len(events), READ_BATCH):
        budget.spend()
        batch = b"".join([b"BEGIN:VCALENDAR\r\n", *events[start : start + READ_BATCH], b"END:VCALENDAR\r\n"])
        for event in icalendar.Calendar.from_ical(batch).subcomponents:
            calendar.add_component(event)
    return calendar


def _split_events(body: bytes) -> tuple[bytes, list[bytes]]:
    """``body`` without its events, and each event's lines; no events unless ``body`` is one
    calendar whose components all close (anything else is read whole, to fail as it would)."""
    shell: list[bytes] = []
    events: list[bytes] = []
    event: list[bytes] = []
    depth = calendars = 0
    for line in body.splitlines(keepends=True):
        marker = line.strip().upper()
        opens, closes = marker.startswith(b"BEGIN:"), marker.startswith(b"END:")
        if opens and depth == 0:
            calendars += 1
            if marker != b"BEGIN:VCALENDAR":
                return body, []
        if (opens and depth == 1 and marker == b"BEGIN:VEVENT") or event:
            event.append(line)
        else:
            shell.append(line)
        depth += opens - closes
        if depth < 0:
            return body, []
        if event and depth == 1:
            events.append(b"".join(event))
            event = []
    if depth != 0 or calendars != 1:
        return body, []
    return b"".join(shell), events


class _Context:
    """What every event of one calendar shares: its feed, organiser, default zone and the harvest time."""

    def __init__(self, calendar: Any, feed_url: str, now: datetime):
        self.feed_url = feed_url
        self.now = now
        self.name = (
            m.text(calendar.get("X-WR-CALNAME"), m.SHORT_TEXT) or urlsplit(feed_url).hostname or feed_url
        )
        self.zone = _zone_name(str(calendar.get("X-WR-TIMEZONE") or "")) or DEFAULT_TIMEZONE


def _series(uid: str, master: Any, entry: dict[str, Any], context: _Context) -> m.Candidate:
    candidate = _activity(uid, master, None, context, m.minted_id(context.feed_url, uid))
    candidate.activity.update(type="SessionSeries", schedule=[entry])
    too_far = start_problem(date.fromisoformat(entry["startDate"]), context.now.date())
    if too_far:
        candidate.problems.append(too_far)
    return candidate


def _one_off(
    uid: str, event: Any, master: Any, context: _Context, start: Any = None, end: Any = None
) -> m.Candidate:
    """A single occurrence as an Event; ``start``/``end`` given for an occurrence of an expanded rule."""
    recurrence = event.get("RECURRENCE-ID")
    key = recurrence.dt if recurrence is not None else start
    start = start if start is not None else event.get("DTSTART").dt
    end = end if end is not None else _end_of(event, start)
    item_id = m.minted_id(context.feed_url, f"{uid}/{_instant(key, context).isoformat()}" if key else uid)
    candidate = _activity(uid, event, master if event is not master else None, context, item_id)
    zone = ZoneInfo(_event_zone(event, context))
    last = _instant(end, context, zone)
    if not isinstance(start, datetime):  # all-day: DTEND is the day after; we end at 23:59 like a series
        last = datetime.combine(end - timedelta(days=1), ALL_DAY_END, tzinfo=zone)
    first = _instant(start, context, zone)
    candidate.activity.update(type="Event", startDate=m.stamp(first), endDate=m.stamp(last))
    too_far = start_problem(first.date(), context.now.date())
    if too_far:
        candidate.problems.append(too_far)
    if key is not None:
        when = _instant(key, context, zone).date().isoformat()
        candidate.label += f" on {when}"
        candidate.ref += f" on {when}"
    return candidate


def _occurrences(uid: str, master: Any, moved: list[Any], context: _Context) -> list[m.Candidate]:
    """The next occurrences of a series whose rule our schedule cannot say, as Events.

    Only this series is expanded (a calendar of one UID), and only over the horizon: the
    work grows with the series, not with the calendar, and stays bounded whatever its rule.
    """
    unexpanded = _expansion_problem(master)
    if unexpanded:
        return [_unreadable(master, context, unexpanded)]
    walked = _walk_to_today(master, context)
    if walked == "too long":
        return [
            _unreadable(
                master,
                context,
                f"its repeat rule has more than {MAX_PAST_OCCURRENCES:,} occurrences before today; "
                "ask the organiser to start the series afresh",
            )
        ]
    if walked == "ends":  # nothing ahead from the rule (expanding it would search to year 9999)
        return [_one_off(uid, e, master, context) for e in moved if _ahead(e, context) and not _cancelled(e)]
    series = icalendar.Calendar()
    for event in [master, *moved]:
        series.add_component(event)
    # Lazily, soonest first: only the occurrences shown are ever built.
    horizon = context.now + OCCURRENCE_HORIZON
    upcoming = recurring_ical_events.of(series).after(context.now)
    soon = takewhile(lambda e: _instant(e.get("DTSTART").dt, context) < horizon, upcoming)
    return [
        _one_off(uid, occurrence, master, context, occurrence.get("DTSTART").dt, occurrence.get("DTEND").dt)
        for occurrence in islice(soon, MAX_OCCURRENCES)
    ]


def _walk_to_today(master: Any, context: _Context) -> str:
    """Walk the master's rules from DTSTART towards today, in bounded steps.

    Returns "reaches" when a rule has an occurrence from today on, "ends" when none has
    (its filters stop matching), "too long" when one has more than MAX_PAST_OCCURRENCES
    before today. Rules are walked from their start by every expander, and once more for
    each window it looks at, so this walk is what every later one costs. COUNT and UNTIL
    are left out: they only shorten a walk.
    """
    start = _instant(master.get("DTSTART").dt, context).replace(tzinfo=None)
    today = context.now.astimezone(ZoneInfo(_event_zone(master, context))).replace(tzinfo=None)
    found = "ends"
    for rule in m.as_list(master.get("RRULE")):
        unbounded = {part: value for part, value in rule.items() if part not in ("COUNT", "UNTIL")}
        walk = rrulestr(icalendar.vRecur(unbounded).to_ical().decode(), dtstart=start)
        walked = 0
        for walked, when in enumerate(islice(walk, MAX_PAST_OCCURRENCES), start=1):  # noqa: B007
            if when >= today:
                found = "reaches"
                break
        else:
            if walked == MAX_PAST_OCCURRENCES:
                return "too long"
    return found


def _expansion_problem(master: Any) -> str | None:
    """Why a rule is not expanded, or None: one whose filters may never match.

    dateutil (under recurring-ical-events) looks for a rule's next occurrence period by
    period until year 9999: "daily, on 31 February" costs seconds of work to find nothing.
    Days of the month are checked against their months; daily and weekly rules, the costly
    ones to walk, are kept to filters that always match somewhere.
    """
    for rule in m.as_list(master.get("RRULE")):
        months = rule.get("BYMONTH") or range(1, 13)
        days = rule.get("BYMONTHDAY") or [1]
        if not any(0 < abs(int(day)) <= _MONTH_DAYS[int(month) - 1] for month in months for day in days):
            return "its repeat rule names days of the month that its months do not have"
        if rule.get("FREQ", [""])[0] not in ("DAILY", "WEEKLY"):
            continue  # a month or a year at a time: thousands of steps to year 9999, not millions
        extra = sorted(set(rule) - _WALKABLE_PARTS)
        if extra:
            return (
                f"its daily or weekly repeat rule also limits the days by {' and '.join(extra)}, "
                "which we do not follow"
            )
        if any(str(day).upper() not in _WEEKDAYS for day in rule.get("BYDAY", ())):
            return (
                "its daily or weekly repeat rule names a numbered weekday (like 2MO), "
                "which only a monthly rule can"
            )
    return None


def _activity(uid: str, event: Any, master: Any, context: _Context, item_id: str) -> m.Candidate:
    """The fields every kind of calendar activity shares; ``master`` fills what a moved occurrence omits."""

    def field(name: str) -> Any:
        value = event.get(name)
        return value if value not in (None, "") or master is None else master.get(name)

    name = m.text(field("SUMMARY"), m.SHORT_TEXT)
    problems: list[str] = [] if name else ["it has no SUMMARY (title)"]
    description = m.text(field("DESCRIPTION"))
    activity: dict[str, Any] = {"id": item_id, "name": name}
    if description:
        activity["description"] = description
    organizer = field("ORGANIZER")
    organizer_name = m.text(organizer.params.get("CN"), m.SHORT_TEXT) if organizer is not None else ""
    activity["organizer"] = {"name": organizer_name or context.name}
    labels = [
        c for categories in m.as_list(field("CATEGORIES")) for c in getattr(categories, "cats", [categories])
    ]
    # A calendar of community events with no word to go on is most often a social gathering.
    activity["categories"] = (
        m.categories_for(labels) or m.categories_for([name, description]) or ["social-club"]
    )
    location = _location(
        str(field("LOCATION") or ""), field("X-APPLE-STRUCTURED-LOCATION"), field("GEO"), problems
    )
    if location:
        activity["location"] = location
    activity["price"] = _price(description)
    link = http_url(str(field("URL") or ""))
    booking = {"method": "book-ahead" if re.search(r"\bbook", description, re.IGNORECASE) else "drop-in"}
    activity["booking"] = {**booking, "url": link} if link else booking
    if str(field("STATUS") or "").upper() == "CANCELLED":
        activity["status"] = "cancelled"
    changed = field("LAST-MODIFIED")
    changed = changed.dt if changed is not None else None
    activity.update(m.freshness(changed, context.now))
    activity["dateModified"] = m.modified(changed, context.now)
    return m.Candidate(item_id, f"Event '{name or uid}'", activity, problems, ref=f"event {uid}")


def _location(text: str, structured: Any, point: Any, problems: list[str]) -> dict[str, Any] | None:
    """An address from LOCATION's free text, with its UK postcode; geo from Apple's or the GEO property."""
    text = text.strip()
    postcode = m.find_postcode(text)
    if postcode is None:
        problems.append(
            f"its LOCATION '{m.text(text, 80)}' has no UK postcode" if text else "it has no LOCATION"
        )
        return None
    parts = [p.strip() for p in re.split(r"[\n,;]+", text) if p.strip()]
    parts = [m.POSTCODE_IN_TEXT.sub("", p).strip(" ,") for p in parts]
    parts = [p for p in parts if p and p.lower() not in _COUNTRIES]
    name = parts[0] if parts else postcode
    street = parts[1] if len(parts) > 2 else name
    locality = parts[-1] if len(parts) > 1 else ""
    location: dict[str, Any] = {
        "name": m.text(name, m.SHORT_TEXT),
        "address": m.address(street, locality, postcode),
    }
    found = _GEO_URI.search(str(structured or ""))
    coordinates = m.geo(*found.groups()) if found else None
    if coordinates is None and point is not None:
        coordinates = m.geo(getattr(point, "latitude", None), getattr(point, "longitude", None))
    if coordinates:
        location["geo"] = coordinates
    return location


def _price(description: str) -> dict[str, Any]:
    """Calendars have no price field: read it from the description, or say that it was not given."""
    amount = _POUNDS.search(description)
    if amount and float(amount.group(1)) > 0:
        return {"amount": float(amount.group(1)), "currency": "GBP"}
    if amount or re.search(r"\bfree\b", description, re.IGNORECASE):
        return {"isFree": True}
    return dict(m.PRICE_NOT_GIVEN)


def _schedule_entry(master: Any, moved: list[Any], context: _Context) -> dict[str, Any] | None:
    """Our schedule entry for the master's RRULE, or None when the rule says more than a schedule can."""
    rule = master.get("RRULE")
    if not isinstance(rule, icalendar.vRecur) or set(rule) - _RULE_PARTS or "RDATE" in master:
        return None  # none, or several rules at once (RFC 5545 allows it, a schedule cannot)
    zone_name = _event_zone(master, context)
    zone = ZoneInfo(zone_name)
    start = master.get("DTSTART").dt
    local_start = _instant(start, context, zone)
    all_day = not isinstance(start, datetime)
    frequency = rule.get("FREQ", [""])[0]
    interval = int(rule.get("INTERVAL", [1])[0])
    days = [str(day).upper() for day in rule.get("BYDAY", [])]
    first_day = _WEEKDAYS[local_start.weekday()]
    entry: dict[str, Any] = {}
    if frequency == "DAILY" and interval == 1 and not days and "BYSETPOS" not in rule:
        entry = {"repeatFrequency": "P1W", "byDay": list(_WEEKDAYS)}
    elif frequency == "WEEKLY" and "BYSETPOS" not in rule and all(d in _WEEKDAYS for d in days):
        days = days or [first_day]
        # Fortnightly counts from the first session; with two days a week the week start would matter too.
        if first_day in days and (interval == 1 or (interval == 2 and len(days) == 1)):
            entry = {"repeatFrequency": "P1W" if interval == 1 else "P2W", "byDay": days}
    elif frequency == "MONTHLY" and interval == 1:
        week, day = _month_week(days, rule.get("BYSETPOS"))
        if week in (1, 2, 3, 4, -1) and day == first_day:
            entry = {"repeatFrequency": "P1M", "byDay": [day], "byMonthWeek": week}
    if not entry:
        return None
    end = _end_of(master, start)
    local_end = _instant(end, context, zone)
    if all_day:
        entry.update(startTime="00:00", endTime=ALL_DAY_END.strftime("%H:%M"))
    elif local_end.date() != local_start.date() or local_end <= local_start:
        return None  # a session running past midnight is not a daily time slot
    else:
        entry.update(startTime=local_start.strftime("%H:%M"), endTime=local_end.strftime("%H:%M"))
    entry["startDate"] = local_start.date().isoformat()
    last = _last_date(rule, master, local_start, zone, entry)
    if last is not None and not runs_on(last, local_start.date()):
        entry["endDate"] = last.isoformat()
    skipped = {_instant(value.dt, context, zone).date() for value in _exdates(master)}
    skipped |= {_instant(e.get("RECURRENCE-ID").dt, context, zone).date() for e in moved}
    if skipped:
        entry["exceptDates"] = sorted(day.isoformat() for day in skipped)
    entry["timezone"] = zone_name
    return entry


def _month_week(days: list[str], positions: Any) -> tuple[int | None, str | None]:
    """``2SA`` or ``BYDAY=SA;BYSETPOS=2`` → (2, "SA")."""
    if len(days) != 1:
        return None, None
    found = re.match(r"^([+-]?\d)(MO|TU|WE|TH|FR|SA|SU)$", days[0])
    if found:
        return int(found.group(1)), found.group(2)
    if days[0] in _WEEKDAYS and positions and len(positions) == 1:
        return int(positions[0]), days[0]
    return None, None


def _last_date(
    rule: Any, master: Any, local_start: datetime, zone: ZoneInfo, entry: dict[str, Any]
) -> date | None:
    """The date of the rule's last occurrence, from UNTIL or COUNT; None when it runs on.

    ``entry`` is the schedule the rule became: its sessions are the rule's occurrences, so
    COUNT's last one is computed from it, however large COUNT is.
    """
    if "UNTIL" in rule:
        until = rule["UNTIL"][0]
        if not isinstance(until, datetime):
            return until
        if not isinstance(master.get("DTSTART").dt, datetime):
            return until.date()  # all-day dates run to UNTIL's own date, as calendar programs read it
        local_until = until.astimezone(zone) if until.tzinfo else until.replace(tzinfo=zone)
        # UNTIL is an instant: a session later in the day than it, on its last day, does not happen.
        on_time = local_until.time() >= local_start.time()
        return local_until.date() if on_time else local_until.date() - timedelta(days=1)
    if "COUNT" in rule:
        return nth_session_date(entry, int(rule["COUNT"][0]))
    return None


def _single(master: Any) -> bool:
    """A rule with COUNT=1 is a one-off dressed as a series."""
    rule = master.get("RRULE")
    return isinstance(rule, icalendar.vRecur) and rule.get("COUNT", [0])[0] == 1


def _exdates(event: Any) -> list[Any]:
    return [value for group in m.as_list(event.get("EXDATE")) for value in group.dts]


def _end_of(event: Any, start: Any) -> Any:
    if event.get("DTEND") is not None:
        return event.get("DTEND").dt
    if event.get("DURATION") is not None:
        return start + event.get("DURATION").dt
    return start + timedelta(days=1) if not isinstance(start, datetime) else start


def _ahead(event: Any, context: _Context) -> bool:
    start = event.get("DTSTART").dt
    return _instant(_end_of(event, start), context) > context.now


def _cancelled(event: Any) -> bool:
    return str(event.get("STATUS") or "").upper() == "CANCELLED"


def _event_zone(event: Any, context: _Context) -> str:
    """The IANA zone of the event's start: its TZID (Windows names mapped), else the calendar's."""
    start = event.get("DTSTART")
    named = _zone_name(str(start.params.get("TZID") or "")) if start is not None else None
    if named:
        return named
    tzinfo = getattr(start.dt, "tzinfo", None) if start is not None else None
    key = getattr(tzinfo, "key", None)
    return key if key and key != "UTC" else context.zone


def _zone_name(tzid: str) -> str | None:
    """An IANA zone for a TZID: as given, or mapped from a Windows name; None when unknown."""
    candidate = WINDOWS_TO_OLSON.get(tzid, tzid.strip().lstrip("/"))
    if not candidate:
        return None
    try:
        ZoneInfo(candidate)
    except (ValueError, KeyError, OSError):
        return None
    return candidate


def _instant(value: Any, context: _Context, zone: ZoneInfo | None = None) -> datetime:
    """A timezone-aware datetime in ``zone`` for a DATE, floating DATE-TIME or zoned DATE-TIME."""
    zone = zone or ZoneInfo(context.zone)
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=zone)
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value.astimezone(zone)
