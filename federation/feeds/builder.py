"""An app's feed items and feed metadata, built once for the feeds it serves and the pushes it sends.

A follower told of a change by push and a reader polling the feed must get the same item
and the same feed (title, subtitle, licence, self and hub links): otherwise what a
follower holds would depend on how the change reached it. So each app makes one
:class:`FeedBuilder`, and both its feed views and its relay (:mod:`federation.relay`)
render through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from federation.feeds.atom import Tombstone, render_atom
from federation.feeds.common import FeedInfo, render_each
from federation.websub.hub import HUB_PATH
from schema import rpde
from schema.openactive import to_openactive

# Both apps serve their feeds at the same paths, so a follower needs no per-app rules.
RPDE_PATH = "/feeds/activities"
ATOM_PATH = "/feeds/activities.atom"
ICAL_PATH = "/feeds/activities.ics"
PUSHED_PATHS = (RPDE_PATH, ATOM_PATH)  # the feeds a hub pushes; calendar apps poll


@dataclass(frozen=True)
class Change:
    """An item as a feed lists it: its latest change.

    ``when`` is the time of the change (a deletion's tombstone carries it); ``provenance``
    lists the sources an aggregator merged the item from, and is empty at a publisher.
    """

    id: str
    change_number: int
    state: str  # "updated" or "deleted"
    kind: str
    data: Mapping[str, Any] | None
    when: datetime
    provenance: Sequence[Mapping[str, Any]] = ()

    @property
    def deleted(self) -> bool:
        return self.state == rpde.DELETED


@dataclass(frozen=True)
class FeedBuilder:
    """The items and metadata of one app's feeds, for a base URL (the app's, or a topic's)."""

    title: str
    license_url: str
    subtitle: str | None = None
    # The county or region of the publisher's activities (PUBLISHER_REGION), for an address
    # that names none: OpenActive requires a PostalAddress's addressRegion.
    region: str | None = None

    def info(self, base: str, path: str) -> FeedInfo:
        """What the feed at ``base + path`` says about itself."""
        return FeedInfo(
            title=self.title,
            self_url=base + path,
            home_url=base + "/",
            hub_url=base + HUB_PATH,
            license_url=self.license_url,
            subtitle=self.subtitle,
        )

    def rpde_item(self, change: Change, base: str) -> dict[str, Any]:
        """The RPDE item for ``change``, data in OpenActive form; ``base`` is the URL of the feed's app."""
        if change.deleted or change.data is None:
            return rpde.deleted_item(change.id, change.change_number, change.kind)
        return rpde.updated_item(
            change.id, change.change_number, to_openactive(self.regional(change.data)), change.kind
        )

    def regional(self, activity: Mapping[str, Any]) -> Mapping[str, Any]:
        """``activity``, its address in :attr:`region` if it names no region of its own."""
        location = activity.get("location")
        address = location.get("address") if isinstance(location, Mapping) else None
        if not self.region or not isinstance(address, Mapping) or address.get("addressRegion"):
            return activity
        assert isinstance(location, Mapping)
        placed = {**location, "address": {**address, "addressRegion": self.region}}
        return {**activity, "location": placed}

    def rpde_items(self, changes: Iterable[Change], base: str) -> list[dict[str, Any]]:
        """The RPDE items for ``changes``, in order; one that cannot be built is left out (and logged)."""
        return list(render_each(changes, lambda change: self.rpde_item(change, base), where="RPDE feed"))

    def atom(self, changes: Iterable[Change], base: str) -> bytes:
        """The Atom document of ``changes``: live items as entries, deleted ones as tombstones."""
        listed = list(changes)
        live = [change.data for change in listed if not change.deleted and change.data is not None]
        return render_atom(
            self.info(base, ATOM_PATH),
            [self.regional(data) for data in live],
            [Tombstone(change.id, change.when) for change in listed if change.deleted],
        )


def pushed_topics(base: str) -> set[str]:
    """The topics the hub of the app at ``base`` publishes: its pushed feeds' URLs."""
    return {base + path for path in PUSHED_PATHS}


def split_topic(topic: str) -> tuple[str, str]:
    """The app's base URL and the feed path of one of its topics (the path alone if not a feed's)."""
    path = urlsplit(topic).path
    for feed_path in PUSHED_PATHS:
        if path.endswith(feed_path):
            return topic.removesuffix(feed_path), feed_path
    return topic, path
