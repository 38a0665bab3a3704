"""The change relay: a batch of changes pushed to a hub's subscribers as fat pings.

Both apps are hubs for their own feeds and push each change the same way: an RPDE page of
the changed items to subscribers of the RPDE topic, an Atom document of them to those of
the Atom topic, queued by :meth:`~federation.websub.Hub.publish` in the caller's
transaction, so the change, whatever marks it relayed, and its pushes commit together.
Where the changes come from is each app's own business: the publisher's outbox, the
aggregator's merged table past a cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, select

from federation.config import load_config
from federation.feedpaging import CURSOR
from federation.feeds import (
    ATOM_MEDIA_TYPE,
    ATOM_PATH,
    RPDE_PATH,
    Change,
    FeedBuilder,
    pushed_topics,
    split_topic,
)
from federation.fetch import GuardedClient
from federation.websub import Hub
from federation.websub.hub import DELIVERY_THREADS, HUB_PATH, LeasePolicy, Retention, RetryPolicy
from schema import rpde

BATCH = 500  # changes in one fat ping: at most one RPDE page

# Both apps' housekeeping (``publisher.housekeeping``, ``aggregator.housekeeping``), read from the
# environment and then the app's settings, so a thread, a job or the command line reads the same.
HOUSEKEEPING_DEFAULTS: dict[str, Any] = {
    "HOUSEKEEPING_SECONDS": 3600,  # between passes
    # Delivered pushes (and the publisher's relayed outbox records) kept for operators to see.
    "DELIVERED_KEEP_SECONDS": 3600,
}


class Relay:
    """Publishes changes rendered by the app's :class:`FeedBuilder`, as its feeds render them when polled.

    Each app subclasses it with where its changes come from, and calls :meth:`publish`.
    """

    def __init__(self, hub: Hub, feed: FeedBuilder) -> None:
        self.hub = hub
        self.feed = feed

    def publish(self, conn: Connection, changes: Iterable[Change]) -> int:
        """Queue ``changes`` for every subscriber of the app's topics, in ``conn``'s transaction.

        Returns how many deliveries were queued; the caller wakes the hub after its commit.
        """
        latest = _latest_per_item(changes)
        if not latest:
            return 0
        queued = 0
        for topic in self._subscribed_topics(conn):
            base, path = split_topic(topic)
            if path == ATOM_PATH:
                queued += self.hub.publish(conn, topic, self.feed.atom(latest, base), ATOM_MEDIA_TYPE)
            elif path == RPDE_PATH:
                items = self.feed.rpde_items(latest, base)
                # A follower that walks on from ``next`` goes on where this page ends.
                next_url = f"{topic}?{CURSOR}={latest[-1].change_number}"
                page = rpde.encode_page(items, next_url, self.feed.license_url)
                queued += self.hub.publish(conn, topic, page, rpde.MEDIA_TYPE)
            # Any other topic is one this app no longer serves: nothing to say to it.
        return queued

    def _subscribed_topics(self, conn: Connection) -> list[str]:
        s = self.hub.subscriptions
        active = (s.c.state == "active") & (s.c.expires_at > self.hub.now())
        return list(conn.execute(select(s.c.topic).distinct().where(active)).scalars())


def _latest_per_item(changes: Iterable[Change]) -> list[Change]:
    """Each item's latest change, in change order: an RPDE page lists an item once."""
    latest: dict[str, Change] = {}
    for change in sorted(changes, key=lambda c: c.change_number):
        latest.pop(change.id, None)
        latest[change.id] = change
    return list(latest.values())


def housekeeping_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``HOUSEKEEPING_*`` settings: defaults, then the environment, then ``settings``."""
    given = {key: settings[key] for key in HOUSEKEEPING_DEFAULTS if key in settings}
    return load_config(HOUSEKEEPING_DEFAULTS, given)


def feed_hub(
    metadata: MetaData,
    engine: Engine,
    settings: Mapping[str, Any],
    *,
    base_url: Callable[[], str],
    client: Callable[[], GuardedClient],
) -> Hub:
    """The hub of the pushed feeds of the app at ``base_url()``, its leases and retries as the
    ``HUB_*`` settings say, and how long it keeps delivered pushes as ``DELIVERED_KEEP_SECONDS`` does.

    Plain settings are enough, so an rq job builds the same hub the app mounts.
    """
    return Hub(
        metadata,
        engine=lambda: engine,
        topics=lambda: pushed_topics(base_url()),
        hub_url=lambda topic: split_topic(topic)[0] + HUB_PATH,
        client=client,
        lease=LeasePolicy(
            default=int(settings["HUB_LEASE_SECONDS"]),
            minimum=int(settings["HUB_LEASE_MIN_SECONDS"]),
            maximum=int(settings["HUB_LEASE_MAX_SECONDS"]),
        ),
        retry=RetryPolicy(base=float(settings["HUB_RETRY_BASE_SECONDS"])),
        # Jobs queued by a version without the setting carry none: the hub's default then.
        delivery_threads=int(settings.get("HUB_DELIVERY_THREADS", DELIVERY_THREADS)),
        retention=Retention(
            delivered=timedelta(seconds=int(housekeeping_settings(settings)["DELIVERED_KEEP_SECONDS"]))
        ),
    )
