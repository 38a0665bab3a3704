"""Valid activities to start tests from; override any field by keyword.

These are the canonical shapes of the contract (docs/architecture.md); every test
that needs an activity starts here rather than writing its own.
"""

from __future__ import annotations

import copy
from typing import Any

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


def weekly_activity(**overrides: Any) -> dict[str, Any]:
    """A weekly walking group (every Tuesday 10:00–11:00, free, drop-in)."""
    doc = copy.deepcopy(_WEEKLY)
    doc.update(overrides)
    return doc


def event_activity(**overrides: Any) -> dict[str, Any]:
    """A one-off priced lunch needing booking on Eventbrite."""
    doc = copy.deepcopy(_EVENT)
    doc.update(overrides)
    return doc
