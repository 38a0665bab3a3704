"""The adapter registry: which module reads which kind of feed, and telling kinds apart.

Each adapter follows ``aggregator.adapters.base``. ``detect`` asks them in order; our own
format goes first because its test is the most specific, and discovery prefers the kinds
listed first when a publisher offers several feeds.
"""

from __future__ import annotations

from types import ModuleType

from aggregator.adapters import atom, ical, localfeed, openactive, oruk
from aggregator.adapters.localfeed import PROVENANCE_KEY

ADAPTERS: dict[str, ModuleType] = {
    module.KIND: module for module in (localfeed, openactive, oruk, ical, atom)
}

__all__ = ["ADAPTERS", "PROVENANCE_KEY", "UnknownKind", "detect", "get_adapter"]


class UnknownKind(ValueError):
    """A source names a kind of feed no adapter reads."""


def get_adapter(kind: str) -> ModuleType:
    try:
        return ADAPTERS[kind]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise UnknownKind(f"No adapter reads feeds of kind {kind!r}; use one of: {known}.") from None


def detect(content_type: str, body: bytes) -> str | None:
    """The kind of the fetched document, or None when no adapter recognises it."""
    for kind, module in ADAPTERS.items():
        if module.sniff(content_type, body):
            return kind
    return None
