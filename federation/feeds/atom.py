"""Activities as an Atom feed (RFC 4287), built with feedgen.

Each activity is one entry: its name, a plain-text summary a feed reader can show,
and the activity JSON itself as the entry's ``application/json`` content, which RFC
4287 (section 4.1.3.3) requires to be Base64 for a non-text, non-XML type; feedparser
and other conforming readers decode it. Deleted activities are RFC 6721
``at:deleted-entry`` tombstones. feedgen knows neither, so two small feedgen
extensions add them.

Whatever text the activities hold, the document is well-formed: everything rendered goes
through :func:`federation.feeds.common.renderable` first.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from federation.feeds.common import FeedInfo, category_labels, renderable, renderable_info, summary_text

ATOM_MEDIA_TYPE = "application/atom+xml"
TOMBSTONES_NS = "http://purl.org/atompub/tombstones/1.0"


# An empty feed's <updated>: a fixed time, so that its body (and ETag) stays the same.
NEVER_CHANGED = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Tombstone:
    """A deleted activity: its ``id`` and when it was deleted."""

    id: str
    when: datetime


class _TombstonesExtension(BaseExtension):
    """Feed-level ``at:deleted-entry`` elements (RFC 6721)."""

    def __init__(self) -> None:
        self.tombstones: list[Tombstone] = []

    def extend_ns(self) -> dict[str, str]:
        return {"at": TOMBSTONES_NS}

    def extend_atom(self, feed: Any) -> Any:  # an lxml element
        for tombstone in self.tombstones:
            xml_elem(
                f"{{{TOMBSTONES_NS}}}deleted-entry",
                feed,
                ref=tombstone.id,
                when=tombstone.when.astimezone(UTC).isoformat(timespec="seconds"),
            )
        return feed


class _JsonContentExtension(BaseEntryExtension):
    """An entry's ``<content type="application/json">``, Base64-encoded as RFC 4287 requires."""

    def __init__(self) -> None:
        self.document: Mapping[str, Any] | None = None

    def extend_atom(self, entry: Any) -> Any:
        if self.document is not None:
            content = xml_elem("content", entry, type="application/json")
            content.text = base64.b64encode(orjson.dumps(self.document)).decode("ascii")
        return entry


def render_atom(
    info: FeedInfo,
    activities: Iterable[Mapping[str, Any]],
    tombstones: Iterable[Tombstone] = (),
) -> bytes:
    """The Atom document for ``activities`` (valid activity dicts) and ``tombstones``."""
    info = renderable_info(info)
    feed = FeedGenerator()
    feed.register_extension("tombstones", _TombstonesExtension, atom=True, rss=False)
    feed.id(info.self_url)
    feed.title(info.title)
    if info.subtitle:
        feed.subtitle(info.subtitle)
    feed.link(href=info.self_url, rel="self", type=ATOM_MEDIA_TYPE)
    feed.link(href=info.home_url, rel="alternate", type="text/html")
    if info.hub_url:
        feed.link(href=info.hub_url, rel="hub")
    if info.license_url:
        feed.link(href=info.license_url, rel="license")
    feed.generator("Localfeed")

    latest: list[datetime] = []
    for activity in activities:
        latest.append(_add_entry(feed, renderable(activity)))
    feed.tombstones.tombstones = [Tombstone(renderable(gone.id), gone.when) for gone in tombstones]
    latest.extend(tombstone.when for tombstone in feed.tombstones.tombstones)
    feed.updated(max(latest, default=NEVER_CHANGED))
    body: bytes = feed.atom_str(pretty=False)
    return body


def _add_entry(feed: FeedGenerator, activity: Mapping[str, Any]) -> datetime:
    """Add one activity as an entry; returns its ``updated`` time."""
    entry = feed.add_entry(order="append")
    entry.register_extension("json", extension_class_entry=_JsonContentExtension, atom=True, rss=False)
    updated = datetime.fromisoformat(activity["dateModified"])
    entry.id(activity["id"])
    entry.title(activity["name"])
    entry.updated(updated)
    entry.link(href=activity["id"], rel="alternate", type="text/html")
    entry.summary(summary_text(activity))
    organizer = activity.get("organizer") or {}
    if organizer.get("name"):
        author = {"name": organizer["name"]}
        if organizer.get("url"):
            author["uri"] = organizer["url"]
        entry.author(author)
    for category, label in category_labels(activity):
        entry.category(term=category, label=label)
    entry.json.document = activity
    return updated
