"""What every rendering of a feed needs to say about the feed itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schema.schedule import describe


@dataclass(frozen=True)
class FeedInfo:
    """The feed's identity and links.

    ``self_url`` is this rendering's own URL (Atom ``rel=self``, and the feed's id);
    ``home_url`` is the human page the feed belongs to; ``hub_url`` the WebSub hub
    that pushes its changes, if any.
    """

    title: str
    self_url: str
    home_url: str
    hub_url: str | None = None
    license_url: str | None = None
    subtitle: str | None = None


def summary_text(activity: Mapping[str, Any]) -> str:
    """A few plain lines a feed reader or calendar shows: when, where, the description."""
    lines = [describe(entry) for entry in activity.get("schedule") or ()]
    if activity.get("type") == "Event":
        start = datetime.fromisoformat(activity["startDate"])
        lines.append(f"{start:%A} {start.day} {start:%B %Y, %H:%M}")
    place = (activity.get("location") or {}).get("name")
    if place:
        lines.append(place)
    if activity.get("description"):
        lines.append(activity["description"])
    return "\n".join(lines)
