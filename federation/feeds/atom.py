"""Activities as an Atom feed (RFC 4287), built with feedgen.

Each activity is one entry: its name, a plain-text summary a feed reader can show,
and the activity in its OpenActive JSON-LD form (``schema.openactive``) as the entry's
``application/json`` content, which RFC 4287 (section 4.1.3.3) requires to be Base64
for a non-text, non-XML type; feedparser and other conforming readers decode it.
Deleted activities are RFC 6721 ``at:deleted-entry`` tombstones. feedgen knows neither, so two small feedgen
extensions add them.

Whatever text the activities hold, the document is well-formed: everything rendered goes
through :func:`federation.feeds.common.renderable` first. Whatever else an activity holds,
the feed is served: each entry is built whole, checked, and only then added, under the
shared guard (:func:`federation.feeds.common.render_each`), so an entry that cannot be
built is left out (and logged) rather than failing the feed or half-written into it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from federation.feeds.common import (
    FeedInfo,
    category_labels,
    render_each,
    renderable,
    renderable_info,
    summary_text,
)
from schema.openactive import to_openactive

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
        self.encoded: str | None = None  # encoded as the entry is built, so a failure is that entry's

    def extend_atom(self, entry: Any) -> Any:
        if self.encoded is not None:
            content = xml_elem("content", entry, type="application/json")
            content.text = self.encoded
        return entry


def render_atom(
    info: FeedInfo,
    activities: Iterable[Mapping[str, Any]],
    tombstones: Iterable[Tombstone] = (),
) -> bytes:
    """The Atom document for ``activities`` and ``tombstones``; one that cannot be an entry is left out."""
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
    for entry, updated in render_each(activities, _entry, where="Atom feed"):
        feed.add_entry(entry, order="append")
        latest.append(updated)
    feed.tombstones.tombstones = [Tombstone(renderable(gone.id), gone.when) for gone in tombstones]
    latest.extend(tombstone.when for tombstone in feed.tombstones.tombstones)
    feed.updated(max(latest, default=NEVER_CHANGED))
    body: bytes = feed.atom_str(pretty=False)
    return body


def _entry(activity: Mapping[str, Any]) -> tuple[FeedEntry, datetime]:
    """The activity as a whole entry, and its ``updated`` time.

    feedgen checks what an entry holds only when the whole feed is written, so everything it
    would refuse there (an empty or non-text title, a time without a zone) is checked here.
    """
    activity = renderable(activity)
    entry = FeedEntry()
    entry.register_extension("json", extension_class_entry=_JsonContentExtension, atom=True, rss=False)
    updated = datetime.fromisoformat(_text(activity, "dateModified"))
    entry.id(_text(activity, "id"))
    entry.title(_text(activity, "name"))
    entry.updated(updated)
    entry.link(href=activity["id"], rel="alternate", type="text/html")
    entry.summary(summary_text(activity))
    organizer = activity.get("organizer") or {}
    if isinstance(organizer.get("name"), str) and organizer["name"]:
        author = {"name": organizer["name"]}
        if isinstance(organizer.get("url"), str) and organizer["url"]:
            author["uri"] = organizer["url"]
        entry.author(author)
    for category, label in category_labels(activity):
        entry.category(term=str(category), label=label)
    entry.json.encoded = base64.b64encode(orjson.dumps(to_openactive(activity))).decode("ascii")
    return entry, updated


def _text(activity: Mapping[str, Any], key: str) -> str:
    """A field an entry cannot be without, as non-empty text; raises ValueError naming it otherwise."""
    value = activity.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"the activity's {key!r} is {value!r}, not the text an Atom entry needs")
    return value
