"""Valid activities to start tests from; override any field by keyword.

These are the canonical shapes of the contract (docs/architecture.md); every test
that needs an activity starts here rather than writing its own.
"""

from __future__ import annotations

import copy
from typing import Any

from schema.openactive import to_openactive
from schema.rpde import updated_item

BASE = "https://publisher.example"

_WEEKLY: dict[str, Any] = {
    "id": f"{BASE}/activities/mitcham-health-walk",
    "type": "SessionSeries",
    "name": "Mitcham Health Walk",
    "description": "A gentle 45-minute walk around Mitcham Common at an easy pace, finishing at the café.",
    "organizer": {
        "name": "Mitcham Walkers",
        "url": f"{BASE}/",
        "email": "hello@mitcham-walkers.example",
        "telephone": "020 8123 4567",
    },
    "categories": ["walking"],
    "location": {
        "name": "Mitcham Common, Windmill Road car park",
        "address": {"streetAddress": "Windmill Road", "addressLocality": "Mitcham", "postalCode": "CR4 1HT"},
        "geo": {"latitude": 51.3982, "longitude": -0.1545},
        "accessibility": ["step-free", "accessible-toilet"],
    },
    "attendanceMode": "in-person",
    "schedule": [
        {
            "repeatFrequency": "P1W",
            "byDay": ["TU"],
            "startTime": "10:00",
            "endTime": "11:00",
            "startDate": "2026-01-06",
            "timezone": "Europe/London",
        }
    ],
    "price": {"isFree": True},
    "ageRange": {"min": 18},
    "audiences": ["older-people"],
    "capacity": {"status": "spaces"},
    "booking": {"method": "drop-in"},
    "contact": {
        "name": "Walk leader",
        "email": "hello@mitcham-walkers.example",
        "telephone": "020 8123 4567",
    },
    "firstVisit": "Meet by the café at 9:50. Wear comfortable shoes; you are welcome to bring a friend.",
    "languages": ["en"],
    "status": "scheduled",
    "lastVerified": "2026-10-01",
    "dateModified": "2026-10-01T09:00:00+01:00",
}

_EVENT: dict[str, Any] = {
    "id": f"{BASE}/activities/winter-warmer-lunch",
    "type": "Event",
    "name": "Winter Warmer Lunch",
    "description": "A free hot two-course lunch and a chat. Vegetarian option available.",
    "organizer": {"name": "St Mark's Lunch Club"},
    "categories": ["lunch-club"],
    "location": {
        "name": "St Mark's Church Hall",
        "address": {"streetAddress": "St Mark's Road", "addressLocality": "Mitcham", "postalCode": "CR4 2LF"},
    },
    "startDate": "2026-12-10T12:00:00+00:00",
    "endDate": "2026-12-10T14:00:00+00:00",
    "price": {"amount": 3.5, "currency": "GBP", "notes": "Pay what you can"},
    "booking": {
        "method": "book-ahead",
        "url": "https://www.eventbrite.co.uk/e/winter-warmer-lunch-tickets-123456789",
    },
    "lastVerified": "2026-11-01",
    "dateModified": "2026-11-01T10:00:00+00:00",
}


def _published_at(base: str, shape: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``shape`` as published by the site ``base``: its id (and organiser's page) minted there.

    An aggregator takes an activity only from the source on its id's site, so a test serving
    one from its own loopback server publishes it under that server's URL.
    """
    doc = copy.deepcopy(shape)
    if base != BASE:
        doc["id"] = base + doc["id"].removeprefix(BASE)
        organizer = doc["organizer"]
        if "url" in organizer:
            organizer["url"] = base + organizer["url"].removeprefix(BASE)
    return doc


def weekly_activity(*, base: str = BASE, **overrides: Any) -> dict[str, Any]:
    """A weekly walking group (every Tuesday 10:00–11:00, free, drop-in), published at ``base``."""
    doc = _published_at(base, _WEEKLY)
    doc.update(overrides)
    return doc


def event_activity(*, base: str = BASE, **overrides: Any) -> dict[str, Any]:
    """A one-off priced lunch needing booking on Eventbrite, published at ``base``."""
    doc = _published_at(base, _EVENT)
    doc.update(overrides)
    return doc


def openactive_series(base: str, identifier: str, **extra: Any) -> dict[str, Any]:
    """An OpenActive SessionSeries (as a booking system publishes it) at ``base``."""
    return {
        "@context": "https://openactive.io/",
        "@type": "SessionSeries",
        "@id": f"{base}/series/{identifier}",
        "name": "Walking Football",
        "organizer": {"@type": "Organization", "name": "Mitcham Leisure"},
        "activity": [
            {
                "@type": "Concept",
                "@id": "https://openactive.io/activity-list#x",
                "prefLabel": "Walking Football",
            }
        ],
        "location": {
            "@type": "Place",
            "name": "Canons Leisure Centre",
            "address": {
                "streetAddress": "Madeira Road",
                "addressLocality": "Mitcham",
                "postalCode": "cr4 4hd",
            },
        },
        "eventSchedule": [
            {
                "@type": "PartialSchedule",
                "repeatFrequency": "P1W",
                "byDay": ["https://schema.org/Wednesday"],
                "startTime": "11:00",
                "duration": "PT1H",
                "startDate": "2026-11-04",
                "scheduleTimezone": "Europe/London",
            }
        ],
        "offers": [{"@type": "Offer", "price": 2.5, "priceCurrency": "GBP"}],
        **extra,
    }


def wire_item(id: str, modified: int, activity: dict[str, Any]) -> dict[str, Any]:
    """An RPDE item as a Localfeed feed serves it: the activity in its OpenActive form."""
    return updated_item(id, modified, to_openactive(activity), activity.get("type") or "SessionSeries")
