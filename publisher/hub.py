"""The publisher's own WebSub hub: ``POST /websub`` for its feeds, and push of every change.

Each change is written with an outbox record in the change's own transaction
(``publisher.store``). The :class:`OutboxRelay` claims those records and marks them
relayed *in the same transaction* as :class:`federation.relay.Relay` queues their fat
pings, rendered by the builder the feeds are served with (``publisher.feeds.feed_builder``).
A crash therefore loses no change and a restarted publisher resumes where it stopped:
all state is in SQL.

Who does the work: a :class:`PublisherHubWorker` thread (no Redis needed), started by
``init_app`` unless ``HUB_WORKER`` is false; or, when ``REDIS_URL`` is set, rq jobs
(:func:`run_due`) enqueued on each wake, on the ``HUB_QUEUE`` queue, which build the hub
from the plain settings they carry (:func:`job_settings`), not from an app.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template, request
from sqlalchemy import RowMapping, and_, select, update

from federation.clock import utcnow
from federation.config import load_config
from federation.feeds import Change, FeedBuilder
from federation.fetch import GuardedClient
from federation.queue import queue_for
from federation.relay import BATCH, Relay, feed_hub, housekeeping_settings
from federation.websub import AppHubWorker, Hub
from federation.websub import jobs as websub_jobs
from federation.websub.hub import HUB_PATH
from publisher import admin, housekeeping
from publisher.auth import admin_required
from publisher.extensions import STORE_KEY, csrf, get_store, public_url
from publisher.feeds import feed_builder
from publisher.store import Store, metadata, outbox

log = logging.getLogger(__name__)

HUB_KEY = "publisher.hub"

HUB_DEFAULTS: dict[str, Any] = {
    "HUB_WORKER": True,  # run the delivery thread in this process (ignored when REDIS_URL is set)
    "HUB_QUEUE": "localfeed-publisher-hub",  # the rq queue for hub jobs (one per publisher on a shared Redis)
    "HUB_POLL_SECONDS": 2.0,  # how often the thread looks for work nobody woke it for
    "HUB_RETRY_BASE_SECONDS": 30.0,  # first retry delay of a failed delivery; doubles, jittered
    "HUB_DELIVERY_THREADS": 16,  # pushes sent at once (one subscriber's always one at a time, in order)
    "HUB_LEASE_SECONDS": 10 * 86_400,  # lease granted when a subscriber asks for none
    "HUB_LEASE_MIN_SECONDS": 3600,
    "HUB_LEASE_MAX_SECONDS": 30 * 86_400,
}

# What the hub's rq jobs rebuild it from. Named one by one: rq keeps them in Redis, which
# is no place for the secret key or the mail password.
JOB_SETTINGS = (
    "DATABASE_URL",
    "ALLOW_PRIVATE_NETWORKS",
    "PUBLISHER_NAME",
    "PUBLISHER_REGION",
    "FEED_LICENSE",
    "TOMBSTONE_DAYS",
)

# The relays rq jobs work for, one per database in a process.
_relays: dict[str, OutboxRelay] = {}


class OutboxRelay(Relay):
    """Turns unrelayed outbox records into fat pings, one transaction per batch."""

    def __init__(self, hub: Hub, feed: FeedBuilder, store: Store) -> None:
        super().__init__(hub, feed)
        self.store = store
        self.engine = store.engine

    def relay(self, limit: int = BATCH) -> int:
        """Publish the oldest unrelayed changes to every subscribed topic; returns how many records.

        The records are claimed by the same ``UPDATE`` that marks them relayed: on
        PostgreSQL a second relay waits on the row locks and then finds them taken; on
        SQLite the write lock puts relays in single file.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            oldest = (
                select(outbox.c.id)
                .where(outbox.c.delivered_at.is_(None))
                .order_by(outbox.c.change_number)
                .limit(limit)
            )
            records = (
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(oldest.scalar_subquery()), outbox.c.delivered_at.is_(None))
                    .values(delivered_at=now, claimed_by="websub-relay", claimed_at=now)
                    .returning(*outbox.c)
                )
                .mappings()
                .all()
            )
            self.publish(conn, map(_outbox_change, records))
        return len(records)


def _outbox_change(record: RowMapping) -> Change:
    return Change(
        id=record["activity_uri"],
        change_number=record["change_number"],
        state=record["state"],
        kind=record["kind"],
        data=record["data"],
        when=record["created_at"],
    )


class PublisherHubWorker(AppHubWorker):
    """An :class:`AppHubWorker` that relays the outbox first, and keeps house (``publisher.housekeeping``)."""

    def __init__(self, app: Flask, relay: OutboxRelay, interval: float) -> None:
        super().__init__(app, relay.hub, interval)
        self.relay = relay
        self._next_purge = 0.0

    def run_for(self, app: Flask) -> int:
        if time.monotonic() >= self._next_purge:
            housekeeping.run(self.relay.store, self.hub, app.config)
            self._next_purge = time.monotonic() + housekeeping.interval(app.config)
        return self.relay.relay() + super().run_for(app)


def _relay(store: Store, settings: Mapping[str, Any]) -> OutboxRelay:
    """The hub and its outbox relay over ``store``: for the app and for rq jobs alike."""
    client = functools.partial(GuardedClient, allow_private=bool(settings["ALLOW_PRIVATE_NETWORKS"]))
    hub = feed_hub(metadata, store.engine, settings, base_url=public_url, client=client)
    return OutboxRelay(hub, feed_builder(settings), store)


def init_app(app: Flask) -> OutboxRelay:
    """Mount the hub on ``app``: ``POST /websub``, the operator page, and its worker."""
    given = {key: app.config[key] for key in HUB_DEFAULTS if key in app.config}
    app.config.update(load_config(HUB_DEFAULTS, given))
    config = app.config
    relay = _relay(app.extensions[STORE_KEY], config)
    app.extensions[HUB_KEY] = relay

    hub_bp = relay.hub.blueprint()
    csrf.exempt(hub_bp)  # subscribers are servers posting forms, with no session to forge
    app.register_blueprint(hub_bp)
    app.register_blueprint(operator_bp)
    app.after_request(_wake_after_writes)

    if config["REDIS_URL"]:
        queue, settings = queue_for(config["REDIS_URL"], config["HUB_QUEUE"]), job_settings(config)
        relay.hub.on_wake(lambda: queue.enqueue(run_due, settings))
    elif config["HUB_WORKER"]:
        app.extensions["publisher.hub_worker"] = PublisherHubWorker(
            app, relay, float(config["HUB_POLL_SECONDS"])
        ).start()
    return relay


def stop_worker(app: Flask, timeout: float = 10.0) -> None:
    """Stop the app's hub thread, if it runs one (tests and orderly shutdowns)."""
    worker = app.extensions.get("publisher.hub_worker")
    if worker is not None:
        worker.stop(timeout)


def _wake_after_writes(response: Response) -> Response:
    """A successful write may have left outbox records: relay them now (the hub wakes itself)."""
    writes = ("POST", "PUT", "PATCH", "DELETE")
    if request.method in writes and response.status_code < 400 and request.blueprint != "websub":
        current_app.extensions[HUB_KEY].hub.wake()
    return response


def job_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the hub's rq jobs build it from (:func:`run_due` takes them)."""
    return {key: config[key] for key in (*JOB_SETTINGS, *HUB_DEFAULTS)} | housekeeping_settings(config)


def relay_for(settings: Mapping[str, Any]) -> OutboxRelay:
    """The relay an rq job works for, built from the job's settings, no app needed."""
    url = settings["DATABASE_URL"]
    if url not in _relays:
        _relays[url] = _relay(Store.from_url(url), settings)
    return _relays[url]


def hub_for(settings: Mapping[str, Any]) -> Hub:
    """The hub :func:`relay_for` serves (the factory the shared rq jobs name)."""
    return relay_for(settings).hub


def run_due(settings: Mapping[str, Any]) -> int:
    """The rq job: relay the outbox, then verify and deliver whatever is due; keep house now and then."""
    relay = relay_for(settings)
    if _purge_due(settings):
        housekeeping.run(relay.store, relay.hub, settings)
    return relay.relay() + websub_jobs.run_due(f"{__name__}:hub_for", settings)


def _purge_due(settings: Mapping[str, Any]) -> bool:
    """Whether this job is the first on its queue for ``HOUSEKEEPING_SECONDS`` (outside rq: always).

    The key lives on the job's queue, which is the publisher's own (HUB_QUEUE), and
    expires by itself: whichever worker sets it first does the purge.
    """
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        return True
    every = int(housekeeping.interval(settings))
    return bool(job.connection.set(f"{job.origin}:purged", 1, nx=True, ex=every))


# -- the operator's page ----------------------------------------------------------------------

operator_bp = Blueprint("hub_admin", __name__, url_prefix="/admin")
operator_bp.register_error_handler(403, admin.forbidden_page)


@operator_bp.get("/subscribers")
@admin_required
def subscribers() -> str:
    """Who follows this publisher by push, until when, and how deliveries to them are going."""
    relay: OutboxRelay = current_app.extensions[HUB_KEY]
    d = relay.hub.deliveries
    with relay.engine.connect() as conn:
        failing = (
            conn.execute(
                select(d.c.topic, d.c.subscription_id, d.c.attempts, d.c.next_attempt_at, d.c.last_error)
                .where(and_(d.c.state == "pending", d.c.attempts > 0))
                .order_by(d.c.next_attempt_at)
                .limit(50)
            )
            .mappings()
            .all()
        )
    return render_template(
        "hub/subscribers.html",
        subscribers=relay.hub.subscribers(),
        failing=failing,
        backlog=get_store().outbox_backlog(),
        hub_url=public_url() + HUB_PATH,
        now=utcnow(),
    )
