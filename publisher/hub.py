"""The publisher's own WebSub hub: ``POST /websub`` for its feeds, and push of every change.

Each change is written with an outbox record in the change's own transaction
(``publisher.store``). The :class:`OutboxRelay` turns those records into fat pings —
an RPDE page of the changed items for the RPDE topic, an Atom document of the changed
entries for the Atom topic — and marks them relayed *in the same transaction* as
:meth:`federation.websub.Hub.publish` queues the deliveries. A crash therefore loses no
change and a restarted publisher resumes where it stopped: all state is in SQL.

Who does the work: a :class:`PublisherHubWorker` thread (no Redis needed), started by
``init_app`` unless ``HUB_WORKER`` is false; or, when ``REDIS_URL`` is set, rq jobs
(:func:`run_due`) enqueued on each wake, on the ``HUB_QUEUE`` queue.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, render_template, request
from sqlalchemy import Connection, Engine, and_, select, update

from federation.config import load_config
from federation.db import create_tables
from federation.feeds import ATOM_MEDIA_TYPE, FeedInfo, Tombstone, render_atom
from federation.fetch import GuardedClient
from federation.websub import AppHubWorker, Hub
from federation.websub import jobs as websub_jobs
from federation.websub.hub import LeasePolicy, RetryPolicy
from federation.websub.worker import PRUNE_EVERY
from publisher import admin
from publisher.auth import admin_required
from publisher.extensions import STORE_KEY, csrf, get_store, public_url
from publisher.feeds import ATOM_PATH, RPDE_PATH
from publisher.store import DELETED, Store, metadata, outbox
from schema import rpde

log = logging.getLogger(__name__)

HUB_KEY = "publisher.hub"
HUB_PATH = "/websub"
RELAY_BATCH = 500  # at most one RPDE page of changes per fat ping
OUTBOX_KEEP = timedelta(days=7)  # relayed records kept this long for operators, then purged

HUB_DEFAULTS: dict[str, Any] = {
    "HUB_WORKER": True,  # run the delivery thread in this process (ignored when REDIS_URL is set)
    "HUB_QUEUE": "localfeed-publisher-hub",  # the rq queue for hub jobs (one per publisher on a shared Redis)
    "HUB_POLL_SECONDS": 2.0,  # how often the thread looks for work nobody woke it for
    "HUB_RETRY_BASE_SECONDS": 30.0,  # first retry delay of a failed delivery; doubles, jittered
    "HUB_LEASE_SECONDS": 10 * 86_400,  # lease granted when a subscriber asks for none
    "HUB_LEASE_MIN_SECONDS": 3600,
    "HUB_LEASE_MAX_SECONDS": 30 * 86_400,
}

# The relay and purge of the process's most recent app: what an rq job in this process works for.
_current: dict[str, Any] = {}


class OutboxRelay:
    """Turns unrelayed outbox records into fat pings on ``hub``, one transaction per batch."""

    def __init__(self, hub: Hub, engine: Engine, *, title: str, license_url: str) -> None:
        self.hub = hub
        self.engine = engine
        self.title = title
        self.license_url = license_url

    def relay(self, limit: int = RELAY_BATCH) -> int:
        """Publish the oldest unrelayed changes to every subscribed topic; returns how many records.

        The records are claimed by the same ``UPDATE`` that marks them relayed: on
        PostgreSQL a second relay waits on the row locks and then finds them taken; on
        SQLite the write lock puts relays in single file.
        """
        now = datetime.now(UTC)
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
            if records:
                self._publish(conn, _latest_per_activity(records), now)
        return len(records)

    def _publish(self, conn: Connection, records: list[Mapping[str, Any]], now: datetime) -> None:
        s = self.hub.subscriptions
        topics = (
            conn.execute(select(s.c.topic).distinct().where(s.c.state == "active", s.c.expires_at > now))
            .scalars()
            .all()
        )
        for topic in topics:
            path = urlsplit(topic).path
            if path.endswith(ATOM_PATH):
                body, media_type = self._atom(topic, records), ATOM_MEDIA_TYPE
            elif path.endswith(RPDE_PATH):
                body, media_type = _rpde_page(topic, records, self.license_url), rpde.MEDIA_TYPE
            else:  # a topic this publisher no longer serves: nothing to say to it
                continue
            self.hub.publish(conn, topic, body, media_type)

    def _atom(self, topic: str, records: list[Mapping[str, Any]]) -> bytes:
        base = topic.removesuffix(ATOM_PATH)
        info = FeedInfo(
            title=f"{self.title}: activities",
            self_url=topic,
            home_url=base + "/",
            hub_url=base + HUB_PATH,
            license_url=self.license_url,
        )
        return render_atom(
            info,
            [r["data"] for r in records if r["state"] != DELETED],
            [Tombstone(r["activity_uri"], r["created_at"]) for r in records if r["state"] == DELETED],
        )


def _latest_per_activity(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One record per activity, its latest, in change order: an RPDE page lists an item once."""
    latest: dict[str, Mapping[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["change_number"]):
        latest.pop(record["activity_uri"], None)
        latest[record["activity_uri"]] = record
    return list(latest.values())


def _rpde_page(topic: str, records: list[Mapping[str, Any]], license_url: str) -> bytes:
    items = [
        rpde.deleted_item(r["activity_uri"], r["change_number"], r["kind"])
        if r["state"] == DELETED
        else rpde.updated_item(r["activity_uri"], r["change_number"], r["data"], r["kind"])
        for r in records
    ]
    reached = max(r["change_number"] for r in records)
    return rpde.encode_page(items, f"{topic}?afterChangeNumber={reached}", license_url)


def purge_old_records(store: Store, tombstone_days: int) -> None:
    """Forget outbox records relayed OUTBOX_KEEP ago, and tombstones older than ``tombstone_days``.

    Feed readers get each deletion for TOMBSTONE_DAYS; after that it goes, with no cron job.
    The hub's thread and its rq job each call this about hourly.
    """
    store.purge_outbox(OUTBOX_KEEP)
    store.purge_tombstones(timedelta(days=tombstone_days))


class PublisherHubWorker(AppHubWorker):
    """An :class:`AppHubWorker` that relays the outbox first, and hourly purges old records."""

    def __init__(self, app: Flask, relay: OutboxRelay, store: Store, interval: float) -> None:
        super().__init__(app, relay.hub, interval)
        self.relay = relay
        self.store = store
        self._next_purge = 0.0

    def run_for(self, app: Flask) -> int:
        if time.monotonic() >= self._next_purge:
            purge_old_records(self.store, app.config["TOMBSTONE_DAYS"])
            self._next_purge = time.monotonic() + PRUNE_EVERY
        return self.relay.relay() + super().run_for(app)


def _topics() -> set[str]:
    base = public_url()
    return {base + RPDE_PATH, base + ATOM_PATH}


def _hub_url_for(topic: str) -> str:
    path = urlsplit(topic).path
    for feed_path in (ATOM_PATH, RPDE_PATH):
        if path.endswith(feed_path):
            return topic.removesuffix(feed_path) + HUB_PATH
    return public_url() + HUB_PATH


def init_app(app: Flask) -> OutboxRelay:
    """Mount the hub on ``app``: tables, ``POST /websub``, the operator page, and its worker."""
    given = {key: app.config[key] for key in HUB_DEFAULTS if key in app.config}
    app.config.update(load_config(HUB_DEFAULTS, given))
    config = app.config
    store: Store = app.extensions[STORE_KEY]
    engine = store.engine
    allow_private = bool(config["ALLOW_PRIVATE_NETWORKS"])
    hub = Hub(
        metadata,
        engine=lambda: engine,
        topics=_topics,
        hub_url=_hub_url_for,
        client=lambda: GuardedClient(allow_private=allow_private),
        lease=LeasePolicy(
            default=int(config["HUB_LEASE_SECONDS"]),
            minimum=int(config["HUB_LEASE_MIN_SECONDS"]),
            maximum=int(config["HUB_LEASE_MAX_SECONDS"]),
        ),
        retry=RetryPolicy(base=float(config["HUB_RETRY_BASE_SECONDS"])),
    )
    create_tables(engine, metadata)  # the hub's tables sit beside the store's
    relay = OutboxRelay(hub, engine, title=config["PUBLISHER_NAME"], license_url=config["FEED_LICENSE"])
    app.extensions[HUB_KEY] = relay
    _current["relay"] = relay
    _current["purge"] = functools.partial(purge_old_records, store, config["TOMBSTONE_DAYS"])

    hub_bp = hub.blueprint()
    csrf.exempt(hub_bp)  # subscribers are servers posting forms, with no session to forge
    app.register_blueprint(hub_bp)
    app.register_blueprint(operator_bp)
    app.after_request(_wake_after_writes)

    if config["REDIS_URL"]:
        hub.on_wake(lambda: _enqueue_run_due(config["REDIS_URL"], config["HUB_QUEUE"]))
    elif config["HUB_WORKER"]:
        app.extensions["publisher.hub_worker"] = PublisherHubWorker(
            app, relay, store, float(config["HUB_POLL_SECONDS"])
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


def _enqueue_run_due(redis_url: str, queue_name: str) -> None:
    from redis import Redis
    from rq import Queue

    Queue(queue_name, connection=Redis.from_url(redis_url)).enqueue(run_due)


def current_relay() -> OutboxRelay:
    """The relay of the app built last in this process, or of one built from the environment."""
    if "relay" not in _current:
        from publisher import create_app

        create_app({"HUB_WORKER": False})
    return _current["relay"]


def current_hub() -> Hub:
    """The hub :func:`current_relay` serves (the factory the shared rq jobs name)."""
    return current_relay().hub


def run_due() -> int:
    """The rq job: relay the outbox, then verify and deliver whatever is due; purge about hourly."""
    relay = current_relay()
    if _purge_due():
        _current["purge"]()
    return relay.relay() + websub_jobs.run_due(f"{__name__}:current_hub")


def _purge_due() -> bool:
    """Whether this job is the first on its queue this hour (outside rq: always).

    The key lives on the job's queue, which is the publisher's own (HUB_QUEUE), and
    expires by itself: whichever worker sets it first does the purge.
    """
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        return True
    return bool(job.connection.set(f"{job.origin}:purged", 1, nx=True, ex=int(PRUNE_EVERY)))


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
        now=datetime.now(UTC),
    )
