"""The aggregator's own WebSub hub: push of its republished merged feed to other aggregators.

The merged table is already a change log: every change to a merged item takes the next
change number, and numbers commit in order (``federation.db.next_change_numbers``). So the relay
needs no outbox written by the merge: it keeps a cursor, the last change number it has
pushed, and moves it in the same transaction as :meth:`federation.websub.Hub.publish` queues
the fat pings. A crash loses nothing; a restart resumes from the cursor.

Rendering and publishing the fat pings is :class:`federation.relay.Relay`'s, through the
same builder the merged feeds are served with (``aggregator.feeds.feed_builder``).

Who does the work: a thread started by ``init_app`` (unless ``HUB_WORKER`` is false) that
relays new merged changes and, without Redis, delivers them too; with ``REDIS_URL`` set,
deliveries and retries run as rq jobs on ``RQ_QUEUE``, which build the hub from the job's
settings (:func:`hub_for`). The same thread renews this aggregator's own subscriptions
to its sources' hubs (``aggregator.subscriptions``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import BigInteger, Column, Connection, Engine, String, Table, event, insert, select, update

from aggregator.extensions import csrf
from aggregator.feeds import feed_builder, merged_changes, own_url
from aggregator.harvest import engine_for, guarded_client
from aggregator.settings import job_config
from aggregator.store import counter, merged, metadata
from federation.config import load_config
from federation.db import last_change_number
from federation.feeds import FeedBuilder
from federation.queue import queue_for
from federation.relay import BATCH, Relay, feed_hub
from federation.websub import AppHubWorker, Hub
from federation.websub import jobs as websub_jobs
from federation.websub.hub import HUB_PATH

log = logging.getLogger(__name__)

HUB_KEY = "aggregator.hub"

HUB_DEFAULTS: dict[str, Any] = {
    "HUB_WORKER": True,  # run the hub thread (relay, renewals; deliveries too without Redis)
    "HUB_POLL_SECONDS": 1.0,  # how often the thread looks for new merged changes
    "HUB_RETRY_BASE_SECONDS": 30.0,  # first retry delay of a failed delivery; doubles, jittered
    "HUB_DELIVERY_THREADS": 16,  # pushes sent at once (one subscriber's always one at a time, in order)
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


@event.listens_for(relay_cursor, "after_create")
def _start_cursor(target: Table, connection: Connection, **_kw: Any) -> None:
    # One row, from the start; the first migration writes the same row.
    connection.execute(insert(target).values(name="changes", change_number=0))


# The hubs rq jobs work for, one per database in a process (built from the jobs' settings).
_hubs: dict[str, Hub] = {}


class MergedRelay(Relay):
    """Pushes merged changes past its cursor to every subscribed topic, one transaction per batch."""

    def __init__(self, hub: Hub, feed: FeedBuilder, engine: Engine) -> None:
        super().__init__(hub, feed)
        self.engine = engine

    def pending(self) -> bool:
        """Whether changes were numbered since the last relay (a cheap read, no lock)."""
        with self.engine.connect() as conn:
            latest = last_change_number(conn, counter)
            reached = conn.execute(select(relay_cursor.c.change_number)).scalar()
        return reached is None or latest > reached

    def relay(self, limit: int = BATCH) -> int:
        """Publish the next merged changes; returns how many items were pushed."""
        if not self.pending():
            return 0
        with self.engine.begin() as conn:
            # The UPDATE locks the cursor row first, so relays in several processes queue.
            conn.execute(update(relay_cursor).values(change_number=relay_cursor.c.change_number))
            reached = conn.execute(select(relay_cursor.c.change_number)).scalar_one()
            changes = merged_changes(conn, merged.c.change_number > reached, limit=limit)
            latest = changes[-1].change_number if changes else last_change_number(conn, counter)
            self.publish(conn, changes)
            conn.execute(update(relay_cursor).values(change_number=latest))
        return len(changes)


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


def _hub(engine: Engine, settings: Mapping[str, Any]) -> Hub:
    """The hub on ``engine`` (its tables and the relay's cursor come with the database's
    migrations): for the app and for rq jobs alike."""
    return feed_hub(metadata, engine, settings, base_url=own_url, client=lambda: guarded_client(settings))


def init_app(app: Flask) -> MergedRelay:
    """Mount the hub on ``app``: ``POST /websub``, ``Link`` headers, and the worker."""
    given = {key: app.config[key] for key in HUB_DEFAULTS if key in app.config}
    app.config.update(load_config(HUB_DEFAULTS, given))
    config = app.config
    engine: Engine = app.extensions["engine"]
    hub = _hub(engine, config)
    relay = MergedRelay(hub, feed_builder(config), engine)
    app.extensions[HUB_KEY] = relay

    hub_bp = hub.blueprint()
    csrf.exempt(hub_bp)  # subscribers are servers posting forms, with no session to forge
    app.register_blueprint(hub_bp)
    app.after_request(_advertise_hub)

    if config["REDIS_URL"]:
        settings = job_config(app)
        hub.on_wake(lambda: _enqueue_run_due(settings))
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


def _enqueue_run_due(settings: Mapping[str, Any]) -> None:
    queue_for(settings["REDIS_URL"], settings["RQ_QUEUE"]).enqueue(
        websub_jobs.run_due, f"{__name__}:hub_for", settings
    )


def hub_for(settings: Mapping[str, Any]) -> Hub:
    """The hub an rq job works for, built from the job's settings (``job_config``), no app needed."""
    url = settings["DATABASE_URL"]
    if url not in _hubs:
        _hubs[url] = _hub(engine_for(url), settings)
    return _hubs[url]


def stop_worker(app: Flask, timeout: float = 10.0) -> None:
    """Stop the app's hub thread (tests and orderly shutdowns)."""
    worker = app.extensions.get("aggregator.hub_worker")
    if worker is not None:
        worker.stop(timeout)
