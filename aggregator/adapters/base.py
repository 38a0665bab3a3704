"""What every feed adapter hands to the harvest.

An adapter turns one kind of feed (our RPDE, OpenActive, iCalendar, Atom/RSS, Open
Referral UK) into changes to our activities. It never touches the store: the harvest
applies each ``Page`` in one transaction together with the cursor the page carries,
so every adapter gets resumable, exactly-once application without writing it again.

An adapter is a module with:

- ``KIND``: its name, stored on the source (``"localfeed"``, ``"openactive"``, ...);
- ``sniff(content_type, body) -> bool``: whether a fetched document is of this kind;
- ``pages(fetch, url, cursor) -> Iterator[Page]``: walk the feed at ``url`` from
  ``cursor`` (``None`` the first time), yielding pages in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from federation.fetch import Fetched


class SourceGone(Exception):
    """The feed answered 404 or 410: the harvest stops the source and flags it."""


class SourceBusy(Exception):
    """The feed answered 503 (or 429): try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Change:
    """One item of the feed: ``data`` is the mapped activity, ``None`` when deleted."""

    id: str
    data: dict[str, Any] | None
    ref: str = ""  # how the source itself names the item, shown next to any problem
    # The source's change marker for the item (RPDE ``modified``), when its format has one: a
    # change older than the one held for the item is never applied (a late, retried push).
    modified: int | str | None = None


@dataclass(frozen=True)
class Unmapped:
    """An item the adapter could not turn into an activity, and why (shown on the source page)."""

    ref: str
    reason: str


@dataclass
class Page:
    changes: list[Change]
    unmapped: list[Unmapped] = field(default_factory=list)
    # Stored with the page in the same transaction; the next harvest resumes from it.
    cursor: str | None = None
    # True when ``changes`` is the source's whole current set (iCal, Atom): the
    # harvest then deletes this source's copies whose ids are not in it.
    snapshot: bool = False

    def add(self, result: Change | Unmapped) -> None:
        """Put ``result`` with the changes or with the unmapped items, as it is."""
        if isinstance(result, Change):
            self.changes.append(result)
        else:
            self.unmapped.append(result)


# ``fetch(url)`` is a guarded GET made by the harvest: it sends conditional headers
# and returns ``None`` for 304 Not Modified, raises SourceGone / SourceBusy /
# federation.fetch.FetchError, and returns the response otherwise.
Fetch = Callable[[str], "Fetched | None"]


class Adapter(Protocol):
    KIND: str

    def sniff(self, content_type: str, body: bytes) -> bool: ...

    def pages(self, fetch: Fetch, url: str, cursor: str | None) -> Iterator[Page]: ...
