"""Activities as an iCalendar feed (RFC 5545) that any calendar app can subscribe to.

A recurring activity becomes one VEVENT per schedule entry: the first session as
DTSTART/DTEND in the entry's own zone (TZID), the pattern as an RRULE and skipped
dates as EXDATEs, all from ``schema.schedule`` so the calendar repeats exactly as
``next_occurrences`` says. A one-off Event is a single VEVENT. UIDs derive from the
activity ``id``, so a calendar app updates events in place instead of duplicating them.
Paused and cancelled activities are left out: they have no sessions to attend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vRecur

from federation.feeds.common import FeedInfo, summary_text
from schema import vocab
from schema.schedule import DEFAULT_TIMEZONE, INACTIVE_STATUSES, except_starts, series_start, to_rrule

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


def render_ical(info: FeedInfo, activities: Iterable[Mapping[str, Any]]) -> bytes:
    """The iCalendar document for ``activities`` (valid activity dicts)."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", info.title)
    if info.subtitle:
        calendar.add("x-wr-caldesc", info.subtitle)
    events = [
        event
        for activity in activities
        if activity.get("status") not in INACTIVE_STATUSES
        for event in _events(activity)
    ]
    zones = sorted({event["dtstart"].params["TZID"] for event in events})
    for tzid in zones:
        calendar.add_component(vtimezone(tzid))
    for event in events:
        calendar.add_component(event)
    body: bytes = calendar.to_ical()
    return body


@cache
def vtimezone(tzid: str) -> Timezone:
    """The VTIMEZONE for ``tzid``."""
    if tzid == DEFAULT_TIMEZONE:
        return cast(Timezone, Timezone.from_ical(_LONDON))  # typed Component; parses to the class's own kind
    return Timezone.from_tzid(tzid)


def _events(activity: Mapping[str, Any]) -> Iterator[Event]:
    if activity["type"] == "Event":
        london = ZoneInfo(DEFAULT_TIMEZONE)
        event = _event(activity, activity["id"])
        event.add("dtstart", datetime.fromisoformat(activity["startDate"]).astimezone(london))
        event.add("dtend", datetime.fromisoformat(activity["endDate"]).astimezone(london))
        yield event
        return
    for number, entry in enumerate(activity.get("schedule") or (), start=1):
        first = series_start(entry)
        event = _event(activity, f"{activity['id']}#schedule-{number}")
        event.add("dtstart", first.start)
        event.add("dtend", first.end)
        event.add("rrule", vRecur.from_ical(to_rrule(entry)))
        skipped = except_starts(entry)
        if skipped:
            event.add("exdate", skipped)
        yield event


def _event(activity: Mapping[str, Any], uid: str) -> Event:
    """A VEVENT with everything but its times."""
    modified = datetime.fromisoformat(activity["dateModified"]).astimezone(UTC)
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", modified)
    event.add("last-modified", modified)
    event.add("summary", activity["name"])
    event.add("description", summary_text(activity))
    event.add("url", activity["id"])
    location = _location_text(activity)
    if location:
        event.add("location", location)
    geo = (activity.get("location") or {}).get("geo")
    if geo:
        event.add("geo", (geo["latitude"], geo["longitude"]))
    categories = [vocab.label("categories", category) for category in activity.get("categories") or ()]
    if categories:
        event.add("categories", categories)
    event.add("status", "CONFIRMED")
    return event


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
