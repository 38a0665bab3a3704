"""Plain words for what the operator's pages show: times as people write them, outcomes as sentences.

Stored values stay machine-shaped (ISO times in UTC, short status codes) because the JSON
views and tests read them; the pages turn them into "7 Dec 2026, 13:38" (LOCAL_ZONE time) and
"Nothing new since the last harvest" at the last moment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from schema.schedule import LOCAL_ZONE

# What each harvest status (aggregator.harvest.HarvestResult.status) means to an operator.
HARVEST_OUTCOMES = {
    "ok": "Harvested: changes taken in",
    "more": "Harvested part of the feed; the rest follows at once",
    "not-modified": "Nothing new since the last harvest",
    "limited": "Stopped at this aggregator's limits; the next harvest carries on",
    "error": "The harvest failed",
    "busy": "The source asked us to wait; we will try again later",
    "gone": "The feed has gone, so harvesting stopped",
    "locked": "Another harvest of this source was running",
    "skipped": "Not harvested: the source is not approved",
}


# What each source state (aggregator.store.sources.c.state) means to an operator or a publisher.
SOURCE_STATES = {
    "approved": "Harvesting",
    "pending": "Waiting for approval",
    "paused": "Paused",
    "stopped": "Stopped: its feed has gone",
    "no-feed": "No feed found",
    "discovering": "Finding the feed",
}


def source_state(state: str | None) -> str:
    """A source's ``state`` in words, like "Harvesting" for "approved"."""
    return SOURCE_STATES.get(state or "", (state or "unknown").replace("-", " ").capitalize())


def harvest_outcome(status: str | None) -> str:
    """``status`` as a sentence; "Never harvested" when there has been no harvest."""
    if not status:
        return "Never harvested"
    return HARVEST_OUTCOMES.get(status, status.replace("-", " ").capitalize())


def plain_time(value: datetime | date | str | None) -> str:
    """A stored UTC time (or its ISO text) as LOCAL_ZONE time, "7 Dec 2026, 13:38"; "never" for none.

    A date alone (or its ISO text, like a lastVerified) is the day, "7 Dec 2026".
    """
    if value is None or value == "":
        return "never"
    if isinstance(value, str) and len(value) == len("2026-12-07"):
        value = date.fromisoformat(value)
    if not isinstance(value, datetime | str):
        return f"{value.day} {value:%b %Y}"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # stored times are UTC (federation.db.UTCDateTime)
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(LOCAL_ZONE)
    return f"{local.day} {local:%b %Y, %H:%M}"
