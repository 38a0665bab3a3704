"""Activities as an iCalendar feed (RFC 5545) that any calendar app can subscribe to.

A recurring activity becomes one VEVENT per schedule entry: the first session as
DTSTART/DTEND in the entry's own zone (TZID), the pattern as an RRULE and skipped
dates as EXDATEs, all from ``schema.schedule`` so the calendar repeats exactly as
``next_occurrences`` says. A one-off Event is a single VEVENT. UIDs derive from the
activity ``id``, so a calendar app updates events in place instead of duplicating them.
Paused and cancelled activities are left out: they have no sessions to attend.

The events are written as content lines directly rather than built as ``icalendar``
components: an aggregator's calendar can hold tens of thousands of events, and building,
encoding and folding each property through the library's generic machinery cost about
half a millisecond an event (a 10,000-event calendar took several seconds to serve).
Writing a VEVENT needs only RFC 5545's text escaping and line folding, both below. Each
time zone's VTIMEZONE is still made by ``icalendar``, once per process.

Each activity's events (and the VTIMEZONEs they need) are written under the shared guard
(:func:`federation.feeds.common.render_each`): one that cannot be written (a session in
year 1 that no time zone can hold, say) is left out and logged, never half-written, and the
calendar is still served to everyone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from icalendar import Timezone

from federation.feeds.common import (
    FeedInfo,
    category_labels,
    render_each,
    renderable,
    renderable_info,
    summary_text,
)
from schema.schedule import (
    DEFAULT_TIMEZONE,
    INACTIVE_STATUSES,
    LOCAL_ZONE,
    except_starts,
    series_start,
    to_rrule,
)

ICAL_MEDIA_TYPE = "text/calendar"
PRODUCT_ID = "-//Localfeed//Activity feed//EN"

# Europe/London by its rules (since 1996: BST from the last Sunday of March to the last
# Sunday of October), so the definition holds for any year; the generated alternative
# lists every change as a date and stops in 2038.
_LONDON = """BEGIN:VTIMEZONE
TZID:Europe/London
BEGIN:DAYLIGHT
TZOFFSETFROM:+0000
TZOFFSETTO:+0100
TZNAME:BST
DTSTART:19700329T010000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0100
TZOFFSETTO:+0000
TZNAME:GMT
DTSTART:19701025T020000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""

LINE_OCTETS = 75  # RFC 5545 3.1: content lines are folded to at most 75 octets
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", ";": "\\;", ",": "\\,", "\n": "\\n"})


def render_ical(info: FeedInfo, activities: Iterable[Mapping[str, Any]]) -> bytes:
    """The iCalendar document for ``activities`` (activity dicts: one that cannot be written is left out)."""
    info = renderable_info(info)
    head = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODUCT_ID}",
        "CALSCALE:GREGORIAN",
        _line("X-WR-CALNAME", _text(info.title)),
    ]
    if info.subtitle:
        head.append(_line("X-WR-CALDESC", _text(info.subtitle)))
    zones: set[str] = set()
    events: list[str] = []
    for written, used in render_each(activities, _events_of, where="iCalendar feed"):
        events.extend(written)
        zones.update(used)
    parts = ["\r\n".join(head), *(vtimezone_text(tzid) for tzid in sorted(zones)), *events, "END:VCALENDAR"]
    return ("\r\n".join(parts) + "\r\n").encode("utf-8")


def _events_of(activity: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    """The activity's VEVENTs and the zones they use (none for a paused or cancelled one).

    The zones' VTIMEZONEs are made here too (once per zone and process), so that a zone
    ``icalendar`` cannot describe fails its activity rather than the calendar.
    """
    events: list[str] = []
    zones: set[str] = set()
    if activity.get("status") not in INACTIVE_STATUSES:
        _write_events(renderable(activity), events, zones)
    for tzid in zones:
        vtimezone_text(tzid)
    return events, zones


@cache
def vtimezone(tzid: str) -> Timezone:
    """The VTIMEZONE for ``tzid``."""
    if tzid == DEFAULT_TIMEZONE:
        return cast(Timezone, Timezone.from_ical(_LONDON))  # typed Component; parses to the class's own kind
    return Timezone.from_tzid(tzid)


@cache
def vtimezone_text(tzid: str) -> str:
    """The VTIMEZONE for ``tzid`` as content lines (CRLF-separated, no final line break)."""
    text: str = vtimezone(tzid).to_ical().decode("utf-8")
    return text.rstrip("\r\n")


def _write_events(activity: Mapping[str, Any], out: list[str], zones: set[str]) -> None:
    """Append the activity's VEVENTs to ``out`` and the time zones they use to ``zones``."""
    common = _common_properties(activity)
    if activity["type"] == "Event":
        start = datetime.fromisoformat(activity["startDate"]).astimezone(LOCAL_ZONE)
        end = datetime.fromisoformat(activity["endDate"]).astimezone(LOCAL_ZONE)
        times = [_local("DTSTART", start, zones), _local("DTEND", end, zones)]
        out.append(_vevent(activity["id"], times, common))
        return
    for number, entry in enumerate(activity.get("schedule") or (), start=1):
        first = series_start(entry)
        times = [
            _local("DTSTART", first.start, zones),
            _local("DTEND", first.end, zones),
            f"RRULE:{to_rrule(entry)}",
        ]
        skipped = except_starts(entry)
        if skipped:
            times.append(_local("EXDATE", skipped, zones))
        out.append(_vevent(f"{activity['id']}#schedule-{number}", times, common))


def _vevent(uid: str, times: list[str], common: list[str]) -> str:
    return "\r\n".join(["BEGIN:VEVENT", _line("UID", _text(uid)), *times, *common, "END:VEVENT"])


def _common_properties(activity: Mapping[str, Any]) -> list[str]:
    """The content lines every VEVENT of the activity shares: all but its UID and times."""
    modified = _utc(datetime.fromisoformat(activity["dateModified"]))
    lines = [
        f"DTSTAMP:{modified}",
        f"LAST-MODIFIED:{modified}",
        _line("SUMMARY", _text(activity["name"])),
        _line("DESCRIPTION", _text(summary_text(activity))),
        _line("URL", activity["id"]),
    ]
    location = _location_text(activity)
    if location:
        lines.append(_line("LOCATION", _text(location)))
    geo = _geo(activity)
    if geo:
        lines.append(geo)
    categories = [label for _, label in category_labels(activity)]
    if categories:
        lines.append(_line("CATEGORIES", ",".join(_text(label) for label in categories)))
    lines.append("STATUS:CONFIRMED")
    return lines


def _geo(activity: Mapping[str, Any]) -> str | None:
    """The GEO line, when the activity has a position that is one (two finite numbers); None otherwise.

    A position is optional, so one that is not a pair of numbers (a null, say, where a JSON
    column stored a NaN) is left out rather than costing the activity its place in the calendar.
    """
    geo = (activity.get("location") or {}).get("geo") or {}
    position = (geo.get("latitude"), geo.get("longitude"))
    numeric = [value for value in position if isinstance(value, int | float) and not isinstance(value, bool)]
    numbers = [float(value) for value in numeric]
    if len(numbers) != 2 or not all(math.isfinite(number) for number in numbers):
        return None
    return f"GEO:{numbers[0]};{numbers[1]}"


def _text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and line breaks escaped."""
    return value.replace("\r\n", "\n").replace("\r", "\n").translate(_TEXT_ESCAPES)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _local(name: str, moments: datetime | list[datetime], zones: set[str]) -> str:
    """A DATE-TIME property in its zone's wall-clock time with a TZID, or in UTC if the zone has no name."""
    values = moments if isinstance(moments, list) else [moments]
    tzid = getattr(values[0].tzinfo, "key", None)
    if tzid is None:
        return _line(name, ",".join(_utc(moment) for moment in values))
    zones.add(tzid)
    return _line(f"{name};TZID={tzid}", ",".join(f"{moment:%Y%m%dT%H%M%S}" for moment in values))


def _line(name: str, value: str) -> str:
    """One content line, folded (CRLF and a space) so no physical line exceeds 75 octets."""
    line = f"{name}:{value}"
    if len(line) <= LINE_OCTETS // 4:  # even at 4 octets a character it fits
        return line
    octets = line.encode("utf-8")
    if len(octets) <= LINE_OCTETS:
        return line
    pieces: list[bytes] = []
    start, limit = 0, LINE_OCTETS
    while len(octets) - start > limit:
        end = start + limit
        while octets[end] & 0xC0 == 0x80:  # never cut inside a character's UTF-8 bytes
            end -= 1
        pieces.append(octets[start:end])
        start, limit = end, LINE_OCTETS - 1  # a continuation line starts with a space
    pieces.append(octets[start:])
    return b"\r\n ".join(pieces).decode("utf-8")


def _location_text(activity: Mapping[str, Any]) -> str:
    location = activity.get("location") or {}
    address = location.get("address") or {}
    parts = [
        location.get("name"),
        address.get("streetAddress"),
        address.get("addressLocality"),
        address.get("postalCode"),
    ]
    text = ", ".join(part for part in parts if part)
    if activity.get("attendanceMode") in ("online", "mixed") and activity.get("onlineUrl"):
        text = f"{text} (or online: {activity['onlineUrl']})" if text else f"Online: {activity['onlineUrl']}"
    return text
