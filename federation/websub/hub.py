"""A WebSub hub for an app's own topics (W3C WebSub Recommendation, §5 to §8).

An app plugs it in with a few lines::

    hub = Hub(metadata, engine=get_engine, topics=lambda: {feed_url}, hub_url=hub_url_for,
              client=lambda: GuardedClient(allow_private=config["ALLOW_PRIVATE_NETWORKS"]))
    app.register_blueprint(hub.blueprint())
    ...
    with engine.begin() as conn:           # the change and its push, in one transaction
        store_change(conn, ...)
        hub.publish(conn, feed_url, page_bytes, "application/json")
    hub.wake()

All state is in SQL, so the work survives a restart and needs no Redis: a
:class:`~federation.websub.worker.HubWorker` thread or the rq jobs in :mod:`federation.websub.jobs`
call :meth:`Hub.run_pending` (intent verification) and :meth:`Hub.deliver_due` (content
distribution). Rows are claimed for a short while before the HTTP call, so several
workers can share the tables without sending the same request twice at once. Deliveries
are claimed, sent and recorded a pass at a time: one transaction to claim a batch, the
POSTs from a small pool of threads (one callback's in order, in one thread), one
transaction to record the outcomes.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import repeat
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, request
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    exc,
    func,
    insert,
    or_,
    select,
    update,
)

from ..clock import utcnow
from ..db import UTCDateTime, inserted_id
from ..fetch import BlockedAddress, FetchError, GuardedClient
from .signing import sign

log = logging.getLogger(__name__)

DAY = 86_400
MAX_SECRET_BYTES = 200  # hub.secret "MUST be less than 200 bytes"
MAX_URL_LENGTH = 1000  # topic + callback must fit one PostgreSQL index entry
# A subscriber answers a verification or a delivery at once (it may apply the change first);
# one that takes longer is tried again later. The claim on a row outlasts one such request,
# and is short, so the rows a killed hub worker held are sent again soon after it restarts.
CALLBACK_DEADLINE = 8.0
# A delivery pass starts its POSTs within this long of claiming them; what it could not start
# by then (its threads held by slow callbacks) it lets go for the next pass, so a claim lasts
# one window, one callback deadline and the recording, however long the pass's queue.
SEND_WINDOW = 1.0
CLAIM_SECONDS = SEND_WINDOW + CALLBACK_DEADLINE + 1
HUB_PATH = "/websub"  # where an app mounts the blueprint; its feeds name it in rel="hub" links
DELIVERY_THREADS = 16  # POSTs in flight at once by default (the apps' HUB_DELIVERY_THREADS setting)
PASS_ROUNDS = 8  # a delivery pass claims this many deliveries per thread (128 with 16 threads)
# PostgreSQL advisory lock held while a hub claims deliveries (see _claims_in_turn).
DELIVERY_CLAIM_LOCK_KEY = 0x10CA1C1A1


class HubRequestError(ValueError):
    """A subscription request the hub refuses; the message tells the subscriber's developer why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LeasePolicy:
    """Lease bounds: WebSub hubs must enforce expiry and never grant a perpetual lease."""

    default: int = 10 * DAY
    minimum: int = 3600
    maximum: int = 30 * DAY

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.default <= self.maximum:
            raise ValueError(
                f"Lease bounds must satisfy 0 < minimum <= default <= maximum; got minimum={self.minimum}, "
                f"default={self.default}, maximum={self.maximum} (seconds)."
            )

    def grant(self, requested: int | None) -> int:
        if requested is None:
            return self.default
        return max(self.minimum, min(self.maximum, requested))


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff for failed deliveries (and unreachable callbacks)."""

    base: float = 30.0
    cap: float = 6 * 3600.0
    max_attempts: int = 12  # ≈ two days with the defaults, then that notification is dropped

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """How long to wait after the ``attempts``-th failure: half to all of base·2^(n-1)."""
        ceiling = min(self.cap, self.base * 2 ** (attempts - 1))
        return timedelta(seconds=ceiling * rng.uniform(0.5, 1.0))


@dataclass(frozen=True)
class Retention:
    """How long finished rows stay before :meth:`Hub.prune` deletes them.

    A delivered push's body is of no further use (the subscription row keeps the time and
    status of its last delivery, which is what operators' pages show), so it goes soon and
    the table holds about an hour of pushes, not every push ever made. Failed and expired
    deliveries and finished verifications stay a week, so an operator sees recent failures.
    """

    delivered: timedelta = timedelta(hours=1)
    finished: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class _Outcome:
    """What became of one claimed delivery in a pass; the pass records them all at its end.

    ``result`` is "delivered"; "failed" (tried again later unless out of attempts);
    "refused" (by the guard: never tried again); "gone" (410: the subscription ends);
    "expired" (the lease ended first, nothing sent); or "unsent" (an earlier push to the
    same callback failed this pass, or the pass could not start it in time: a later pass will).
    """

    delivery: RowMapping
    result: str
    status: int | None = None
    reason: str | None = None


# Table() puts itself in metadata.tables before it is fully built, so a second thread
# defining (or creating) the same tables could see a half-made one: hubs built in parallel
# threads on one metadata define them one at a time.
_defining = threading.Lock()


def _table(metadata: MetaData, name: str, *parts: Any) -> Table:
    """The table ``name`` on ``metadata``, defined once however many hubs share the metadata."""
    if name in metadata.tables:
        return metadata.tables[name]
    return Table(name, metadata, *parts)


def define_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    """The hub's tables: subscriptions, intents awaiting verification, deliveries."""
    with _defining:
        return _define_tables(metadata)


def _define_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    subscriptions = _table(
        metadata,
        "websub_subscriptions",
        Column("id", Integer, primary_key=True),
        Column("topic", String(MAX_URL_LENGTH), nullable=False),
        Column("callback", String(MAX_URL_LENGTH), nullable=False),
        # "pending": asked for but not verified yet; never delivered to.
        Column("state", String(16), nullable=False),
        Column("secret", String(MAX_SECRET_BYTES)),
        Column("lease_seconds", Integer),
        Column("expires_at", UTCDateTime),
        Column("created_at", UTCDateTime, nullable=False),
        Column("verified_at", UTCDateTime),
        Column("last_delivery_at", UTCDateTime),
        Column("last_delivery_status", Integer),
        Column("last_delivery_error", Text),
        Column("failures", Integer, nullable=False, default=0),  # consecutive failed attempts
        UniqueConstraint("topic", "callback", name="uq_websub_subscriptions_topic_callback"),
    )
    intents = _table(
        metadata,
        "websub_intents",
        Column("id", Integer, primary_key=True),
        Column("mode", String(16), nullable=False),
        Column("topic", String(MAX_URL_LENGTH), nullable=False),
        Column("callback", String(MAX_URL_LENGTH), nullable=False),
        Column("secret", String(MAX_SECRET_BYTES)),
        Column("lease_seconds", Integer),
        Column("requested_at", UTCDateTime, nullable=False),
        Column("state", String(16), nullable=False),  # pending, verified, failed
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", UTCDateTime, nullable=False),
        Column("claimed_until", UTCDateTime),
        Column("finished_at", UTCDateTime),
        Column("last_error", Text),
        Index("ix_websub_intents_due", "state", "next_attempt_at"),
    )
    deliveries = _table(
        metadata,
        "websub_deliveries",
        Column("id", Integer, primary_key=True),
        Column(
            "subscription_id",
            Integer,
            ForeignKey("websub_subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("topic", String(MAX_URL_LENGTH), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("content_type", String(200), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("state", String(16), nullable=False),  # pending, delivered, failed, expired
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", UTCDateTime, nullable=False),
        Column("claimed_until", UTCDateTime),
        Column("finished_at", UTCDateTime),
        Column("last_error", Text),
        Index("ix_websub_deliveries_due", "state", "next_attempt_at"),
        Index("ix_websub_deliveries_subscription", "subscription_id"),
    )
    return subscriptions, intents, deliveries


class Hub:
    """A WebSub hub serving the topics ``topics()`` returns.

    ``engine`` returns the SQLAlchemy engine (called when needed, so an app can build it
    lazily); ``hub_url`` is this hub's public URL, or a function of the topic giving it
    (useful when URLs derive from a topic's origin); ``client`` makes the guarded HTTP
    client used for callbacks; ``now`` is the clock, injectable so tests can move time;
    ``delivery_threads`` bounds the POSTs a delivery pass has in flight at once.
    """

    def __init__(
        self,
        metadata: MetaData,
        *,
        engine: Callable[[], Engine],
        topics: Callable[[], Collection[str]],
        hub_url: str | Callable[[str], str],
        client: Callable[[], GuardedClient],
        now: Callable[[], datetime] = utcnow,
        lease: LeasePolicy | None = None,
        retry: RetryPolicy | None = None,
        retention: Retention | None = None,
        rng: random.Random | None = None,
        delivery_threads: int = DELIVERY_THREADS,
    ) -> None:
        if delivery_threads < 1:
            raise ValueError(f"A hub needs at least one delivery thread, not {delivery_threads}.")
        self.subscriptions, self.intents, self.deliveries = define_tables(metadata)
        self._engine = engine
        self._topics = topics
        self._hub_url = hub_url
        self._client_factory = client
        self._client: GuardedClient | None = None
        self._client_lock = threading.Lock()
        self._idle_delivery_clients: list[GuardedClient] = []
        self.now = now
        self.lease = lease or LeasePolicy()
        self.retry = retry or RetryPolicy()
        self.retention = retention or Retention()
        self._rng = rng or random.SystemRandom()
        self.delivery_threads = delivery_threads
        self._wake_listeners: list[Callable[[], object]] = []

    # -- wiring ---------------------------------------------------------------------------

    def hub_url_for(self, topic: str) -> str:
        return self._hub_url(topic) if callable(self._hub_url) else self._hub_url

    def on_wake(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` whenever new work is queued (e.g. to enqueue an rq job)."""
        self._wake_listeners.append(listener)

    def wake(self) -> None:
        """Tell the workers there is new work; call it after committing a :meth:`publish`."""
        for listener in self._wake_listeners:
            try:
                listener()
            except Exception:  # a broken listener must not fail the publisher's request
                log.exception("WebSub wake listener %r failed", listener)

    @property
    def client(self) -> GuardedClient:
        with self._client_lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            while self._idle_delivery_clients:
                self._idle_delivery_clients.pop().close()

    @contextmanager
    def _delivery_client(self) -> Iterator[GuardedClient]:
        """A client of its own for one delivery thread's turn, kept for the next pass.

        One client shared by the pool's threads would have them queue on the lock of its
        connection pool; a client each, from the same factory, is as guarded and does not.
        A pass never has more turns running than threads, so the hub keeps at most that many.
        """
        with self._client_lock:
            client = self._idle_delivery_clients.pop() if self._idle_delivery_clients else None
        if client is None:
            client = self._client_factory()
        try:
            yield client
        finally:
            with self._client_lock:
                self._idle_delivery_clients.append(client)

    # -- subscription requests (§5.1) ---------------------------------------------------

    def blueprint(self, name: str = "websub", url_prefix: str | None = None) -> Blueprint:
        """A blueprint with ``POST /websub``, the hub's subscription endpoint."""
        bp = Blueprint(name, __name__, url_prefix=url_prefix)

        @bp.post(HUB_PATH)
        def websub() -> Response:
            if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
                return Response(
                    "Send the subscription request as application/x-www-form-urlencoded "
                    f"(WebSub 5.1), not {request.mimetype or 'an untyped body'}.\n",
                    415,
                    mimetype="text/plain",
                )
            try:
                self.accept_request(request.form)
            except HubRequestError as refused:
                return Response(f"{refused}\n", refused.status, mimetype="text/plain")
            return Response(
                "Accepted. The hub will now confirm this request with a GET to your callback.\n",
                202,
                mimetype="text/plain",
            )

        return bp

    def accept_request(self, form: Any) -> int:
        """Record a subscription request (form fields ``hub.*``); returns the intent's id.

        Raises :class:`HubRequestError` for a request the hub cannot accept. Parameters it
        does not understand are ignored, as the spec requires.
        """
        mode = (form.get("hub.mode") or "").strip()
        topic = (form.get("hub.topic") or "").strip()
        callback = (form.get("hub.callback") or "").strip()
        if mode not in ("subscribe", "unsubscribe"):
            raise HubRequestError(
                f"hub.mode {mode!r} is not supported here; send 'subscribe' or 'unsubscribe'."
                if mode
                else "hub.mode is missing; send 'subscribe' or 'unsubscribe'."
            )
        if not topic:
            raise HubRequestError('hub.topic is missing; send the feed URL found in its rel="self" link.')
        if not callback:
            raise HubRequestError("hub.callback is missing; send the URL the hub should deliver to.")
        _check_callback(callback)
        topics = self._topics()
        if topic not in topics:
            raise HubRequestError(
                f"This hub does not publish {topic}. Its topics are: {', '.join(sorted(topics))}.", status=404
            )
        secret = form.get("hub.secret") or None
        secret_bytes = len(secret.encode("utf-8")) if secret else 0
        if secret_bytes >= MAX_SECRET_BYTES:
            raise HubRequestError(
                f"hub.secret is {secret_bytes} bytes; it must be under {MAX_SECRET_BYTES} bytes."
            )
        lease_seconds = None
        if mode == "subscribe":  # the spec says to ignore it when unsubscribing
            lease_seconds = self.lease.grant(_positive_int(form.get("hub.lease_seconds")))
        now = self.now()
        with self._engine().begin() as conn:
            intent_id = inserted_id(
                conn.execute(
                    insert(self.intents).values(
                        mode=mode,
                        topic=topic,
                        callback=callback,
                        secret=secret,
                        lease_seconds=lease_seconds,
                        requested_at=now,
                        state="pending",
                        attempts=0,
                        next_attempt_at=now,
                    )
                )
            )
            if mode == "subscribe":
                self._ensure_listed(conn, topic, callback, now)
        self.wake()
        return intent_id

    def _ensure_listed(self, conn: Connection, topic: str, callback: str, now: datetime) -> None:
        """Show a first-time subscriber to operators as "pending" until it is verified."""
        s = self.subscriptions
        exists = conn.execute(select(s.c.id).where(s.c.topic == topic, s.c.callback == callback)).first()
        if exists:
            return
        try:
            with conn.begin_nested():
                listing = {"topic": topic, "callback": callback, "state": "pending", "created_at": now}
                conn.execute(insert(s).values(failures=0, **listing))
        except exc.IntegrityError:
            pass  # a concurrent request listed it first

    # -- verification of intent (§5.3) --------------------------------------------------

    def run_pending(self, limit: int = 50) -> int:
        """Verify due subscription requests with their callbacks; returns how many were tried."""
        i = self.intents
        now = self.now()
        with self._engine().connect() as conn:
            due = (
                conn.execute(
                    select(i)
                    .where(i.c.state == "pending", i.c.next_attempt_at <= now, _unclaimed(i, now))
                    .order_by(i.c.next_attempt_at, i.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        tried = 0
        for intent in due:
            if self._claim(i, intent["id"], now):
                self._verify(intent)
                tried += 1
        return tried

    def _verify(self, intent: Any) -> None:
        challenge = secrets.token_urlsafe(32)  # fresh for every attempt, so single use
        params = {"hub.mode": intent["mode"], "hub.topic": intent["topic"], "hub.challenge": challenge}
        if intent["mode"] == "subscribe":
            params["hub.lease_seconds"] = str(intent["lease_seconds"])
        # The callback's own query string is kept, the new parameters appended (§5.1.1).
        parts = urlsplit(intent["callback"])
        query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
        url = urlunsplit(parts._replace(query=query, fragment=""))
        started = self.now()
        try:
            # A redirect counts as a failure (§5.3.1), so it is not followed.
            answer = self.client.get(url, follow_redirects=False, total_timeout=CALLBACK_DEADLINE)
        except BlockedAddress as refused:
            # The guard will refuse this callback every time: retrying only delays the answer.
            self._intent_failed(intent, str(refused))
            return
        except FetchError as error:
            self._intent_unreachable(intent, str(error))
            return
        if not 200 <= answer.status < 300:
            self._intent_failed(intent, f"the callback answered HTTP {answer.status}, not confirming intent")
        elif answer.content != challenge.encode("ascii"):
            self._intent_failed(intent, "the callback answered without echoing hub.challenge exactly")
        else:
            self._intent_verified(intent, started)

    def _intent_verified(self, intent: Any, started: datetime) -> None:
        s, i = self.subscriptions, self.intents
        topic, callback, now = intent["topic"], intent["callback"], self.now()
        where = and_(s.c.topic == topic, s.c.callback == callback)
        with self._engine().begin() as conn:
            if intent["mode"] == "unsubscribe":
                self._remove(conn, where)
            else:
                values = {
                    "state": "active",
                    "secret": intent["secret"],
                    "lease_seconds": intent["lease_seconds"],
                    # The lease runs from the verification request (§5.3).
                    "expires_at": started + timedelta(seconds=intent["lease_seconds"]),
                    "verified_at": now,
                    "failures": 0,
                }
                if not conn.execute(update(s).where(where).values(**values)).rowcount:
                    conn.execute(insert(s).values(topic=topic, callback=callback, created_at=now, **values))
            conn.execute(
                update(i)
                .where(i.c.id == intent["id"])
                .values(state="verified", finished_at=now, claimed_until=None, attempts=i.c.attempts + 1)
            )

    def _intent_failed(self, intent: Any, reason: str) -> None:
        """Leave the subscription state as it was (§5.1); drop a never-verified listing."""
        s, i = self.subscriptions, self.intents
        topic, callback = intent["topic"], intent["callback"]
        with self._engine().begin() as conn:
            conn.execute(
                update(i)
                .where(i.c.id == intent["id"])
                .values(
                    state="failed",
                    finished_at=self.now(),
                    claimed_until=None,
                    attempts=i.c.attempts + 1,
                    last_error=reason,
                )
            )
            same_pair = and_(i.c.topic == topic, i.c.callback == callback)
            others_pending = conn.execute(
                select(i.c.id).where(same_pair, i.c.mode == "subscribe", i.c.state == "pending")
            ).first()
            if not others_pending:
                listed = and_(s.c.topic == topic, s.c.callback == callback, s.c.state == "pending")
                conn.execute(delete(s).where(listed))
        log.info("WebSub %s of %s for %s failed: %s", intent["mode"], callback, topic, reason)

    def _intent_unreachable(self, intent: Any, reason: str) -> None:
        attempts = intent["attempts"] + 1
        if attempts >= 3:  # a callback unreachable three times running is not coming back soon
            self._intent_failed(intent, reason)
            return
        i = self.intents
        with self._engine().begin() as conn:
            conn.execute(
                update(i)
                .where(i.c.id == intent["id"])
                .values(
                    attempts=attempts,
                    claimed_until=None,
                    last_error=reason,
                    next_attempt_at=self.now() + self.retry.delay(attempts, self._rng),
                )
            )

    # -- content distribution (§7, §8) --------------------------------------------------

    def publish(self, conn: Connection, topic: str, body: bytes, content_type: str) -> int:
        """Queue ``body`` for every active, unexpired subscriber of ``topic``, in ``conn``'s transaction.

        Writing the push with the change it announces means a crash loses neither.
        Returns the number of deliveries queued; call :meth:`wake` after the commit.
        """
        s = self.subscriptions
        now = self.now()
        subscribers = (
            conn.execute(
                select(s.c.id).where(s.c.topic == topic, s.c.state == "active", s.c.expires_at > now)
            )
            .scalars()
            .all()
        )
        if subscribers:
            conn.execute(
                insert(self.deliveries),
                [
                    {
                        "subscription_id": sid,
                        "topic": topic,
                        "body": body,
                        "content_type": content_type,
                        "created_at": now,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for sid in subscribers
                ],
            )
        return len(subscribers)

    def deliver_due(self, now: datetime | None = None, limit: int | None = None) -> int:
        """POST due deliveries to their callbacks, one pass; returns how many were handled.

        A pass claims up to ``limit`` due deliveries in one transaction (by default
        :data:`PASS_ROUNDS` for each of the :attr:`delivery_threads`), sends them from a pool
        of that many threads and records every outcome in one more transaction: SQLite takes
        one writer at a time, so two transactions a pass, not two a delivery, is what lets
        the POSTs overlap. Deliveries to one callback go in one thread, oldest first, so a
        subscriber never gets two at once nor a later push before an earlier one; a slow
        callback keeps only its own thread, and what waits behind it past :data:`SEND_WINDOW`
        goes in the next pass.
        """
        now = now or self.now()
        chains = self._claim_deliveries(now, limit or PASS_ROUNDS * self.delivery_threads)
        if not chains:
            return 0
        start_by = time.monotonic() + SEND_WINDOW
        if len(chains) == 1:  # no thread to start for a lone subscriber
            sent = [self._send_chain(chains[0], now, start_by)]
        else:
            threads = min(self.delivery_threads, len(chains))
            # The pool lives for one pass: leaving the block waits for its threads, so none
            # outlives the pass to keep a stopped worker's process or app alive.
            with ThreadPoolExecutor(threads, thread_name_prefix="websub-delivery") as pool:
                sent = list(pool.map(self._send_chain, chains, repeat(now), repeat(start_by)))
        self._record([outcome for chain in sent for outcome in chain])
        return sum(map(len, chains))

    def _claim_deliveries(self, now: datetime, limit: int) -> list[list[RowMapping]]:
        """Claim the oldest due deliveries in one transaction; returns them grouped by callback.

        Callbacks with a delivery claimed already (by this hub or another process on the
        database) are left out, so one callback's pushes are never sent two at once. The
        claim is taken in turn (see :func:`_claims_in_turn`) and lasts :data:`CLAIM_SECONDS`,
        as long as a pass may take; a worker that dies mid-pass lets go when it ends.
        """
        d, s = self.deliveries, self.subscriptions
        in_flight = (
            select(s.c.callback)
            .join(d, d.c.subscription_id == s.c.id)
            .where(d.c.state == "pending", d.c.claimed_until > now)
        )
        with self._engine().begin() as conn:
            _claims_in_turn(conn)
            due = (
                conn.execute(
                    select(
                        d.c.id,
                        d.c.topic,
                        d.c.body,
                        d.c.content_type,
                        d.c.attempts,
                        s.c.id.label("subscription_id"),
                        s.c.callback,
                        s.c.secret,
                        s.c.expires_at,
                    )
                    .join(s, s.c.id == d.c.subscription_id)
                    .where(
                        d.c.state == "pending",
                        d.c.next_attempt_at <= now,
                        _unclaimed(d, now),
                        s.c.callback.not_in(in_flight),
                    )
                    .order_by(d.c.next_attempt_at, d.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            if not due:
                return []
            by_callback: dict[str, list[RowMapping]] = {}
            for delivery in sorted(due, key=lambda row: row["id"]):  # oldest push first
                by_callback.setdefault(delivery["callback"], []).append(delivery)
            chains = list(by_callback.values())
            claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
            conn.execute(
                update(d).where(d.c.id.in_([row["id"] for row in due])).values(claimed_until=claimed_until)
            )
        return chains

    def _send_chain(self, chain: list[RowMapping], now: datetime, start_by: float) -> list[_Outcome]:
        """Send one callback's claimed deliveries in order, until one fails or ``start_by`` passes.

        What is left is let go unsent for a later pass: after a failure, so that a failing
        subscriber is not sent its later pushes at once; after ``start_by`` (monotonic), so
        that nothing is still being sent when the pass's claim ends.
        """
        outcomes: list[_Outcome] = []
        with self._delivery_client() as client:
            for position, delivery in enumerate(chain):
                if delivery["expires_at"] <= now:
                    reason = "the subscription's lease ended before delivery"
                    outcomes.append(_Outcome(delivery, "expired", reason=reason))
                    continue
                if time.monotonic() > start_by:
                    outcome = _Outcome(delivery, "unsent")
                else:
                    try:
                        outcome = self._send(delivery, client)
                    except Exception:  # a bug in one send must not lose the outcomes of the others
                        log.exception(
                            "WebSub delivery %s to %s failed unexpectedly; tried again when its claim ends",
                            delivery["id"],
                            delivery["callback"],
                        )
                        return outcomes  # the rest stay claimed until the claim ends, then go again
                outcomes.append(outcome)
                if outcome.result != "delivered":
                    outcomes += [_Outcome(later, "unsent") for later in chain[position + 1 :]]
                    break
        return outcomes

    def _send(self, delivery: RowMapping, client: GuardedClient) -> _Outcome:
        """POST one signed fat ping through the thread's guarded ``client``."""
        topic = delivery["topic"]
        headers = {
            "Content-Type": delivery["content_type"],
            "Link": f'<{self.hub_url_for(topic)}>; rel="hub", <{topic}>; rel="self"',
        }
        if delivery["secret"]:
            headers["X-Hub-Signature"] = sign(delivery["secret"], delivery["body"])
        try:
            # Subscribers must not move by redirect (§7): a 3xx is a failure like any other.
            answer = client.post(
                delivery["callback"],
                delivery["body"],
                headers,
                follow_redirects=False,
                total_timeout=CALLBACK_DEADLINE,
            )
        except BlockedAddress as refused:
            # The guard will refuse this callback every time: retrying would never succeed.
            return _Outcome(delivery, "refused", reason=str(refused))
        except FetchError as error:
            return _Outcome(delivery, "failed", reason=str(error))
        if 200 <= answer.status < 300:
            return _Outcome(delivery, "delivered", status=answer.status)
        if answer.status == 410:
            return _Outcome(delivery, "gone", status=410)
        return _Outcome(
            delivery, "failed", status=answer.status, reason=f"the callback answered HTTP {answer.status}"
        )

    def _record(self, outcomes: list[_Outcome]) -> None:
        """Write a pass's outcomes in one transaction: few statements, each for many rows.

        Failures are retried with backoff unless refused or out of attempts, and the
        subscription stays (§7); a 410 Gone ends the subscription.
        """
        d, s = self.deliveries, self.subscriptions
        now = self.now()
        by_result: dict[str, list[_Outcome]] = {}
        for outcome in outcomes:
            by_result.setdefault(outcome.result, []).append(outcome)
        delivered = by_result.get("delivered", [])
        failed = by_result.get("failed", []) + by_result.get("refused", [])
        ended = by_result.get("expired", [])
        unsent = by_result.get("unsent", [])
        gone = by_result.get("gone", [])
        with self._engine().begin() as conn:
            if delivered:
                conn.execute(
                    update(d)
                    .where(d.c.id == bindparam("row"))
                    .values(
                        state="delivered",
                        finished_at=now,
                        claimed_until=None,
                        last_error=None,
                        attempts=d.c.attempts + 1,
                    ),
                    [{"row": o.delivery["id"]} for o in delivered],
                )
                conn.execute(
                    update(s)
                    .where(s.c.id == bindparam("subscription"))
                    .values(
                        last_delivery_at=now,
                        last_delivery_status=bindparam("status"),
                        last_delivery_error=None,
                        failures=0,
                    ),
                    [{"subscription": o.delivery["subscription_id"], "status": o.status} for o in delivered],
                )
            if failed:
                retries = [self._retry(o, now) for o in failed]
                conn.execute(
                    update(d)
                    .where(d.c.id == bindparam("row"))
                    .values(
                        attempts=bindparam("tries"),
                        claimed_until=None,
                        last_error=bindparam("reason"),
                        state=bindparam("outcome"),
                        finished_at=bindparam("gave_up_at"),
                        next_attempt_at=bindparam("retry_at"),
                    ),
                    retries,
                )
                # After the deliveries' own: a callback's chain stops at its failure, so a
                # subscription's failure comes after any of its deliveries this pass.
                conn.execute(
                    update(s)
                    .where(s.c.id == bindparam("subscription"))
                    .values(
                        last_delivery_at=now,
                        last_delivery_status=bindparam("status"),
                        last_delivery_error=bindparam("reason"),
                        failures=s.c.failures + 1,
                    ),
                    [
                        {
                            "subscription": o.delivery["subscription_id"],
                            "status": o.status,
                            "reason": o.reason,
                        }
                        for o in failed
                    ],
                )
            if ended:
                conn.execute(
                    update(d)
                    .where(d.c.id == bindparam("row"))
                    .values(
                        state="expired",
                        finished_at=now,
                        claimed_until=None,
                        last_error=bindparam("reason"),
                    ),
                    [{"row": o.delivery["id"], "reason": o.reason} for o in ended],
                )
            if unsent:
                conn.execute(
                    update(d).where(d.c.id.in_([o.delivery["id"] for o in unsent])).values(claimed_until=None)
                )
            if gone:
                self._remove(conn, s.c.id.in_([o.delivery["subscription_id"] for o in gone]))
        for o in gone:
            log.info("WebSub subscriber %s answered 410 Gone; subscription ended", o.delivery["callback"])

    def _retry(self, outcome: _Outcome, now: datetime) -> dict[str, Any]:
        """The failed delivery's row: tried again after a backoff, or given up."""
        attempts = outcome.delivery["attempts"] + 1
        gave_up = outcome.result == "refused" or attempts >= self.retry.max_attempts
        log.info(
            "WebSub delivery %s to %s failed (attempt %d): %s",
            outcome.delivery["id"],
            outcome.delivery["callback"],
            attempts,
            outcome.reason,
        )
        return {
            "row": outcome.delivery["id"],
            "tries": attempts,
            "reason": outcome.reason,
            "outcome": "failed" if gave_up else "pending",
            "gave_up_at": now if gave_up else None,
            "retry_at": now + self.retry.delay(attempts, self._rng),
        }

    def prune(self, keep: timedelta | None = None) -> int:
        """Delete finished deliveries and verifications older than ``keep``; returns how many.

        Without ``keep``, as :attr:`retention` says: delivered pushes after ``delivered``,
        the rest after ``finished``. Pending rows are never deleted.
        """
        now = self.now()
        delivered = now - (keep or self.retention.delivered)
        finished = now - (keep or self.retention.finished)
        d, i = self.deliveries, self.intents
        removed = 0
        with self._engine().begin() as conn:
            for table, state, cutoff in (
                (d, d.c.state == "delivered", delivered),
                (d, d.c.state.in_(("failed", "expired")), finished),
                (i, i.c.state != "pending", finished),
            ):
                old = and_(state, table.c.finished_at < cutoff)
                removed += conn.execute(delete(table).where(old)).rowcount
        return removed

    def next_due(self) -> datetime | None:
        """When the earliest pending verification or delivery falls due, if any is pending."""
        i, d = self.intents, self.deliveries
        with self._engine().connect() as conn:
            times = [
                conn.execute(select(func.min(t.c.next_attempt_at)).where(t.c.state == "pending")).scalar()
                for t in (i, d)
            ]
        pending = [t for t in times if t is not None]
        return min(pending) if pending else None

    # -- shared pieces ------------------------------------------------------------------

    def _remove(self, conn: Connection, where: Any) -> None:
        """Delete subscriptions and their queued deliveries (explicitly: SQLite may lack FK cascades)."""
        s, d = self.subscriptions, self.deliveries
        conn.execute(delete(d).where(d.c.subscription_id.in_(select(s.c.id).where(where))))
        conn.execute(delete(s).where(where))

    def _claim(self, table: Table, row_id: int, now: datetime) -> bool:
        """Take ``row_id`` for one attempt, unless another worker holds it."""
        with self._engine().begin() as conn:
            taken = conn.execute(
                update(table)
                .where(table.c.id == row_id, table.c.state == "pending", _unclaimed(table, now))
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            )
            return taken.rowcount == 1

    def subscribers(self) -> list[dict[str, Any]]:
        """Every subscription with its delivery state, for operators' pages."""
        s, d = self.subscriptions, self.deliveries
        with self._engine().connect() as conn:
            rows = conn.execute(select(s).order_by(s.c.topic, s.c.callback)).mappings().all()
            queued: dict[int, int] = dict(
                conn.execute(
                    select(d.c.subscription_id, func.count(d.c.id))
                    .where(d.c.state == "pending")
                    .group_by(d.c.subscription_id)
                ).all()
            )
        return [
            {k: v for k, v in row.items() if k != "secret"}
            | {"queued": queued.get(row["id"], 0), "signed": bool(row["secret"])}
            for row in rows
        ]


def _unclaimed(table: Table, now: datetime) -> Any:
    return or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now)


def _claims_in_turn(conn: Connection) -> None:
    """Make hubs on one database claim deliveries one after another, for the rest of the transaction.

    A claim reads which callbacks have a delivery claimed already, so two claims at once
    could each send one of a callback's pushes. PostgreSQL: an advisory lock, so the next
    claim reads the last one committed. SQLite: the write lock, taken before the read
    (``BEGIN IMMEDIATE``). Either is held for one short transaction.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(DELIVERY_CLAIM_LOCK_KEY)))
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _positive_int(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise HubRequestError(
            f"hub.lease_seconds {raw!r} is not a whole number of seconds; send e.g. 864000 for ten days."
        ) from None
    if value <= 0:
        raise HubRequestError(f"hub.lease_seconds must be positive, not {value}.")
    return value


def _check_callback(callback: str) -> None:
    parts = urlsplit(callback)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HubRequestError(
            f"hub.callback {callback!r} is not an absolute http(s) URL; send a full URL like https://example.org/cb."
        )
    if len(callback) > MAX_URL_LENGTH:
        raise HubRequestError(f"hub.callback is longer than {MAX_URL_LENGTH} characters; use a shorter URL.")
