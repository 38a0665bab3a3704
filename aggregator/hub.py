"""The aggregator's own WebSub hub: push of its republished merged feed to other aggregators.

The merged table is already a change log: every change to a merged item takes the next
change number, and numbers commit in order (``store.next_change_number``). So the relay
needs no outbox written by the merge: it keeps a cursor, the last change number it has
pushed, and moves it in the same transaction as :meth:`federation.websub.Hub.publish` queues
the fat pings. A crash loses nothing; a restart resumes from the cursor.

Who does the work: a thread started by ``init_app`` (unless ``HUB_WORKER`` is false) that
relays new merged changes and, without Redis, delivers them too; with ``REDIS_URL`` set,
deliveries and retries run as rq jobs on ``RQ_QUEUE``. The same thread renews this
aggregator's own subscriptions to its sources' hubs (``aggregator.subscriptions``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, current_app, request
from sqlalchemy import BigInteger, Column, Connection, Engine, String, Table, insert, select, update

from aggregator.adapters import PROVENANCE_KEY
from aggregator.extensions import csrf
from aggregator.feeds import republished_provenance
from aggregator.harvest import guarded_client
from aggregator.store import CHANGES, as_utc, counter, merged, metadata, utcnow
from federation.config import load_config
from federation.db import create_tables
from federation.feeds import ATOM_MEDIA_TYPE, FeedInfo, Tombstone, render_atom
from federation.websub import AppHubWorker, Hub
from federation.websub import jobs as websub_jobs
from federation.websub.hub import LeasePolicy, RetryPolicy
from schema import rpde

log = logging.getLogger(__name__)

HUB_KEY = "aggregator.hub"
HUB_PATH = "/websub"
RPDE_PATH = "/feeds/activities"
ATOM_PATH = "/feeds/activities.atom"
RELAY_BATCH = 500

HUB_DEFAULTS: dict[str, Any] = {
    "HUB_WORKER": True,  # run the hub thread (relay, renewals; deliveries too without Redis)
    "HUB_POLL_SECONDS": 1.0,  # how often the thread looks for new merged changes
    "HUB_RETRY_BASE_SECONDS": 30.0,  # first retry delay of a failed delivery; doubles, jittered
    "HUB_LEASE_SECONDS": 10 * 86_400,  # lease granted when a subscriber asks for none
    "HUB_LEASE_MIN_SECONDS": 3600,
    "HUB_LEASE_MAX_SECONDS": 30 * 86_400,
    "WEBSUB_LEASE_SECONDS": 0,  # lease this aggregator asks its sources' hubs for (0: their default)
    "WEBSUB_RENEW_SECONDS": 3600,  # how often subscriptions are checked for renewal and new sources
}

relay_cursor = Table(
    "websub_relay_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("change_number", BigInteger, nullable=False),
)

_current: dict[str, MergedRelay] = {}


class MergedRelay:
    """Pushes merged changes past its cursor to every subscribed topic, one transaction per batch."""

    def __init__(self, hub: Hub, engine: Engine, *, title: str) -> None:
        self.hub = hub
        self.engine = engine
        self.title = title

    def pending(self) -> bool:
        """Whether changes were numbered since the last relay (a cheap read, no lock)."""
        with self.engine.connect() as conn:
            latest = conn.execute(select(counter.c.value).where(counter.c.name == CHANGES)).scalar() or 0
            reached = conn.execute(select(relay_cursor.c.change_number)).scalar()
        return reached is None or latest > reached

    def relay(self, limit: int = RELAY_BATCH) -> int:
        """Publish the next merged changes; returns how many items were pushed."""
        if not self.pending():
            return 0
        with self.engine.begin() as conn:
            # The UPDATE locks the cursor row first, so relays in several processes queue.
            conn.execute(update(relay_cursor).values(change_number=relay_cursor.c.change_number))
            reached = conn.execute(select(relay_cursor.c.change_number)).scalar_one()
            rows = (
                conn.execute(
                    select(merged)
                    .where(merged.c.change_number > reached)
                    .order_by(merged.c.change_number)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            latest = (
                rows[-1]["change_number"]
                if rows
                else conn.execute(select(counter.c.value).where(counter.c.name == CHANGES)).scalar()
            )
            if rows:
                self._publish(conn, rows)
            conn.execute(update(relay_cursor).values(change_number=latest))
        return len(rows)

    def _publish(self, conn: Connection, rows: list[Mapping[str, Any]]) -> None:
        s = self.hub.subscriptions
        topics = (
            conn.execute(select(s.c.topic).distinct().where(s.c.state == "active", s.c.expires_at > utcnow()))
            .scalars()
            .all()
        )
        for topic in topics:
            base, path = _split_topic(topic)
            if path == ATOM_PATH:
                self.hub.publish(conn, topic, self._atom(topic, base, rows), ATOM_MEDIA_TYPE)
            elif path == RPDE_PATH:
                self.hub.publish(conn, topic, _rpde_page(topic, base, rows), rpde.MEDIA_TYPE)

    def _atom(self, topic: str, base: str, rows: list[Mapping[str, Any]]) -> bytes:
        info = FeedInfo(title=self.title, self_url=topic, home_url=base + "/", hub_url=base + HUB_PATH)
        return render_atom(
            info,
            [row["data"] for row in rows if row["state"] != "deleted"],
            [
                Tombstone(row["item_id"], as_utc(row["modified_at"]))
                for row in rows
                if row["state"] == "deleted"
            ],
        )


def _split_topic(topic: str) -> tuple[str, str]:
    """The aggregator's base URL and the feed path of one of its topics."""
    path = urlsplit(topic).path
    for feed_path in (ATOM_PATH, RPDE_PATH):
        if path.endswith(feed_path):
            return topic.removesuffix(feed_path), feed_path
    return topic, path


def _rpde_page(topic: str, base: str, rows: list[Mapping[str, Any]]) -> bytes:
    """The same items ``GET /feeds/activities`` serves for these rows, provenance included."""
    items = []
    for row in rows:
        if row["state"] == "deleted":
            items.append(rpde.deleted_item(row["item_id"], row["change_number"], row["kind"]))
            continue
        item = rpde.updated_item(row["item_id"], row["change_number"], row["data"], row["kind"])
        item[PROVENANCE_KEY] = republished_provenance(row["provenance"], base)
        items.append(item)
    next_url = f"{topic}?{urlencode({'afterChangeNumber': rows[-1]['change_number']})}"
    return rpde.encode_page(items, next_url, rpde.DEFAULT_LICENSE)


class AggregatorHubWorker(AppHubWorker):
    """Relays merged changes, delivers (unless rq does), and renews subscriptions now and then."""

    def __init__(self, app: Flask, relay: MergedRelay, deliver: bool) -> None:
        super().__init__(app, relay.hub, float(app.config["HUB_POLL_SECONDS"]))
        self.relay = relay
        self.deliver = deliver
        # Not at once: a restarted app's subscriptions are in the database, and a new app
        # gets its PUBLIC_URL and first sources in its first minute.
        self._next_renewal = time.monotonic() + min(60.0, float(app.config["WEBSUB_RENEW_SECONDS"]))

    def run_for(self, app: Flask) -> int:
        from aggregator import job_config
        from aggregator.subscriptions import renew_subscriptions

        if time.monotonic() >= self._next_renewal:
            self._next_renewal = time.monotonic() + float(app.config["WEBSUB_RENEW_SECONDS"])
            try:
                renew_subscriptions(job_config(app))
            except Exception:  # a source's hub being down must not stop our own hub
                log.exception("renewing WebSub subscriptions failed")
        relayed = self.relay.relay()
        if relayed and not self.deliver:
            self.hub.wake()
        return relayed + (super().run_for(app) if self.deliver else 0)


def own_url() -> str:
    return (current_app.config.get("PUBLIC_URL") or request.url_root).rstrip("/")


def _topics() -> set[str]:
    base = own_url()
    return {base + RPDE_PATH, base + ATOM_PATH}


def _start_cursor(conn: Connection) -> None:
    """On a first start, relay the changes from now on, not the whole history."""
    if conn.execute(select(relay_cursor.c.change_number)).first() is None:
        latest = conn.execute(select(counter.c.value).where(counter.c.name == CHANGES)).scalar() or 0
        conn.execute(insert(relay_cursor).values(name=CHANGES, change_number=latest))


def init_app(app: Flask) -> MergedRelay:
    """Mount the hub on ``app``: its tables, ``POST /websub``, ``Link`` headers, and the worker."""
    given = {key: app.config[key] for key in HUB_DEFAULTS if key in app.config}
    app.config.update(load_config(HUB_DEFAULTS, given))
    config = app.config
    engine: Engine = app.extensions["engine"]
    hub = Hub(
        metadata,
        engine=lambda: engine,
        topics=_topics,
        hub_url=lambda topic: _split_topic(topic)[0] + HUB_PATH,
        client=lambda: guarded_client(config),
        lease=LeasePolicy(
            default=int(config["HUB_LEASE_SECONDS"]),
            minimum=int(config["HUB_LEASE_MIN_SECONDS"]),
            maximum=int(config["HUB_LEASE_MAX_SECONDS"]),
        ),
        retry=RetryPolicy(base=float(config["HUB_RETRY_BASE_SECONDS"])),
    )
    create_tables(engine, metadata, seed=_start_cursor)
    relay = MergedRelay(hub, engine, title=config["AGGREGATOR_NAME"])
    app.extensions[HUB_KEY] = relay
    _current["relay"] = relay

    hub_bp = hub.blueprint()
    csrf.exempt(hub_bp)  # subscribers are servers posting forms, with no session to forge
    app.register_blueprint(hub_bp)
    app.after_request(_advertise_hub)

    if config["REDIS_URL"]:
        hub.on_wake(lambda: _enqueue_run_due(config))
    if config["HUB_WORKER"]:
        worker = AggregatorHubWorker(app, relay, deliver=not config["REDIS_URL"]).start()
        app.extensions["aggregator.hub_worker"] = worker
    return relay


def _advertise_hub(response: Response) -> Response:
    """Every republished feed names its hub and itself (WebSub discovery, §4)."""
    if request.endpoint and request.endpoint.startswith("feeds.") and response.status_code < 400:
        self_url = own_url() + request.path
        response.headers.add("Link", f'<{own_url()}{HUB_PATH}>; rel="hub"')
        response.headers.add("Link", f'<{self_url}>; rel="self"')
    return response


def _enqueue_run_due(config: Mapping[str, Any]) -> None:
    from redis import Redis
    from rq import Queue

    queue = Queue(config.get("RQ_QUEUE", "localfeed"), connection=Redis.from_url(config["REDIS_URL"]))
    queue.enqueue(websub_jobs.run_due, f"{__name__}:current_hub")


def current_hub() -> Hub:
    """The hub of the app built last in this process, or of one built from the environment (rq jobs)."""
    if "relay" not in _current:
        from aggregator import create_app

        create_app({"HUB_WORKER": False})
    return _current["relay"].hub


def stop_worker(app: Flask, timeout: float = 10.0) -> None:
    """Stop the app's hub thread (tests and orderly shutdowns)."""
    worker = app.extensions.get("aggregator.hub_worker")
    if worker is not None:
        worker.stop(timeout)
