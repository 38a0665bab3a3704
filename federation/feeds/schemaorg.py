"""An activity as schema.org events: the JSON-LD that search engines read to list it.

A one-off is an ``Event``. A recurring activity is an ``EventSeries`` whose next sessions are
its ``subEvent``s, each an ``Event`` complete on its own (name, dates, place, offer,
organiser), because search engines list sessions, not series; the series starts at its next
session and ends when its schedule does, if it does.

Only schema.org terms appear here, no Localfeed or OpenActive ones (the feeds carry those),
so every type and property can be checked against the schema.org vocabulary. A paused
activity's sessions are ``EventPostponed`` (paused, with no new date yet) and a cancelled
one's ``EventCancelled``: they are still listed, so a search engine that showed them can
mark them instead of leaving them up as on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from federation.feeds.common import renderable, vocab_label
from schema import next_occurrences
from schema.price import is_free
from schema.text import http_url

SCHEMA = "https://schema.org/"
EVENT_STATUS = {"scheduled": "EventScheduled", "paused": "EventPostponed", "cancelled": "EventCancelled"}
ATTENDANCE_MODE = {
    "in-person": "OfflineEventAttendanceMode",
    "online": "OnlineEventAttendanceMode",
    "mixed": "MixedEventAttendanceMode",
}
# A waiting list is no place today: search engines know only in stock or sold out.
AVAILABILITY = {"spaces": "InStock", "waiting-list": "SoldOut", "full": "SoldOut"}
SESSIONS = 3
ADDRESS_PARTS = ("streetAddress", "addressLocality", "postalCode")  # named alike in the contract
COUNTRY = "GB"  # every address the contract takes has a UK postcode


def schema_org_events(activity: Mapping[str, Any], now: datetime, sessions: int = SESSIONS) -> dict[str, Any]:
    """The activity as a schema.org ``Event``, or an ``EventSeries`` with its next ``sessions`` after ``now``.

    ``activity`` is valid by the contract; what it holds is made renderable (no character a
    script block cannot carry), since a JSON-LD block is printed whole.
    """
    common = _common(activity)
    if activity.get("type") == "Event":
        event = {
            "@type": "Event",
            **common,
            "startDate": activity["startDate"],
            "endDate": activity["endDate"],
        }
    else:
        event = {"@type": "EventSeries", **common, **_series(activity, common, now, sessions)}
    shown: dict[str, Any] = renderable({"@context": "https://schema.org", "@id": activity["id"], **event})
    return shown


def schema_org_session(activity: Mapping[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    """One session of the activity as a schema.org ``Event`` of its own (a list of what's on shows these)."""
    dates = {"startDate": start.isoformat(), "endDate": end.isoformat()}
    event = {"@context": "https://schema.org", "@type": "Event", **_common(activity), **dates}
    shown: dict[str, Any] = renderable(event)
    return shown


def _series(
    activity: Mapping[str, Any], common: Mapping[str, Any], now: datetime, sessions: int
) -> dict[str, Any]:
    """The series' dates, and its next sessions as events of their own."""
    # A paused or cancelled activity has no sessions to go to, but the ones it would have had
    # are what a search engine may be showing: list them, with their status.
    planned = next_occurrences({**activity, "status": "scheduled"}, now, sessions)
    schedule = activity.get("schedule") or []
    series: dict[str, Any] = {}
    if planned:
        series["startDate"] = planned[0].start.isoformat()
    else:  # over, or not to be counted: the schedule's own first day
        first = min((entry["startDate"] for entry in schedule if entry.get("startDate")), default=None)
        if first:
            series["startDate"] = first
    ends = [entry.get("endDate") for entry in schedule]
    if ends and all(ends):
        series["endDate"] = max(ends)
    series["subEvent"] = [
        {"@type": "Event", **common, "startDate": start.isoformat(), "endDate": end.isoformat()}
        for start, end in planned
    ]
    return series


def _common(activity: Mapping[str, Any]) -> dict[str, Any]:
    """What the series and each of its sessions say alike."""
    mode = activity.get("attendanceMode") or "in-person"
    event: dict[str, Any] = {"name": activity["name"], "url": activity["id"]}
    if activity.get("description"):
        event["description"] = activity["description"]
    event["eventStatus"] = SCHEMA + EVENT_STATUS.get(activity.get("status") or "scheduled", "EventScheduled")
    event["eventAttendanceMode"] = SCHEMA + ATTENDANCE_MODE.get(mode, ATTENDANCE_MODE["in-person"])
    location = _location(activity, mode)
    if location:
        event["location"] = location[0] if len(location) == 1 else location
    event["organizer"] = _organization(activity["organizer"])
    event["offers"] = _offer(activity)
    event["isAccessibleForFree"] = is_free(activity["price"])
    age = _age_range(activity.get("ageRange") or {})
    if age:
        event["typicalAgeRange"] = age
    languages = activity.get("languages") or []
    if languages:
        event["inLanguage"] = languages[0] if len(languages) == 1 else list(languages)
    capacity = activity.get("capacity") or {}
    if capacity.get("status") == "spaces" and isinstance(capacity.get("remaining"), int):
        event["remainingAttendeeCapacity"] = capacity["remaining"]
    return event


def _location(activity: Mapping[str, Any], mode: str) -> list[dict[str, Any]]:
    """A ``Place`` for in-person, a ``VirtualLocation`` for online, both for mixed."""
    found = []
    place = activity.get("location")
    if place and mode != "online":
        found.append(_place(place))
    online = http_url(activity.get("onlineUrl"))
    if online and mode != "in-person":
        found.append({"@type": "VirtualLocation", "url": online})
    return found


def _place(location: Mapping[str, Any]) -> dict[str, Any]:
    place: dict[str, Any] = {"@type": "Place", "name": location["name"]}
    address = location.get("address") or {}
    parts = {key: address[key] for key in ADDRESS_PARTS if address.get(key)}
    if parts:
        place["address"] = {"@type": "PostalAddress", **parts, "addressCountry": COUNTRY}
    geo = location.get("geo")
    if geo:
        place["geo"] = {"@type": "GeoCoordinates", "latitude": geo["latitude"], "longitude": geo["longitude"]}
    features = location.get("accessibility") or []
    if features:
        place["amenityFeature"] = [
            {
                "@type": "LocationFeatureSpecification",
                "name": vocab_label("accessibility", feature),
                "value": True,
            }
            for feature in features
        ]
    return place


def _organization(organizer: Mapping[str, Any]) -> dict[str, Any]:
    organization: dict[str, Any] = {"@type": "Organization", "name": organizer["name"]}
    url = http_url(organizer.get("url"))
    if url:
        organization["url"] = url
    for key in ("email", "telephone"):
        if organizer.get(key):
            organization[key] = organizer[key]
    return organization


def _offer(activity: Mapping[str, Any]) -> dict[str, Any]:
    """What it costs to go, and where to book (the activity's page when there is nowhere else).

    A price the organiser gave in words only ("pay what you can", prices by age) has no
    ``price``: its words are the offer's description, and nothing claims it is free.
    """
    price = activity["price"]
    offer: dict[str, Any] = {"@type": "Offer"}
    if is_free(price):
        offer.update(price=0, priceCurrency="GBP")
    elif price.get("amount") is not None:
        offer.update(price=price["amount"], priceCurrency=price.get("currency") or "GBP")
    if price.get("notes"):
        offer["description"] = price["notes"]
    offer["url"] = http_url((activity.get("booking") or {}).get("url")) or activity["id"]
    availability = AVAILABILITY.get((activity.get("capacity") or {}).get("status", ""))
    if availability:
        offer["availability"] = SCHEMA + availability
    return offer


def _age_range(ages: Mapping[str, Any]) -> str | None:
    """schema.org's "18-" (18 and over), "5-11", or "0-4" (up to 4), from ``{min?, max?}``."""
    low, high = ages.get("min"), ages.get("max")
    if low is None and high is None:
        return None
    return f"{low or 0}-{high if high is not None else ''}"
