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
workers can share the tables without sending the same request twice at once.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
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
CLAIM_SECONDS = CALLBACK_DEADLINE + 2
HUB_PATH = "/websub"  # where an app mounts the blueprint; its feeds name it in rel="hub" links


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
    client used for callbacks; ``now`` is the clock, injectable so tests can move time.
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
    ) -> None:
        self.subscriptions, self.intents, self.deliveries = define_tables(metadata)
        self._engine = engine
        self._topics = topics
        self._hub_url = hub_url
        self._client_factory = client
        self._client: GuardedClient | None = None
        self._client_lock = threading.Lock()
        self.now = now
        self.lease = lease or LeasePolicy()
        self.retry = retry or RetryPolicy()
        self.retention = retention or Retention()
        self._rng = rng or random.SystemRandom()
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
                if mode else "hub.mode is missing; send 'subscribe' or 'unsubscribe'."
            )
        if not topic:
            raise HubRequestError("hub.topic is missing; send the feed URL found in its rel=\"self\" link.")
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
            intent_id = inserted_id(conn.execute(
                insert(self.intents).values(
                    mode=mode, topic=topic, callback=callback, secret=secret, lease_seconds=lease_seconds,
                    requested_at=now, state="pending", attempts=0, next_attempt_at=now,
                )
            ))
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
            due = conn.execute(
                select(i).where(i.c.state == "pending", i.c.next_attempt_at <= now, _unclaimed(i, now))
                .order_by(i.c.next_attempt_at, i.c.id).limit(limit)
            ).mappings().all()
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
                update(i).where(i.c.id == intent["id"])
                .values(state="verified", finished_at=now, claimed_until=None, attempts=i.c.attempts + 1)
            )

    def _intent_failed(self, intent: Any, reason: str) -> None:
        """Leave the subscription state as it was (§5.1); drop a never-verified listing."""
        s, i = self.subscriptions, self.intents
        topic, callback = intent["topic"], intent["callback"]
        with self._engine().begin() as conn:
            conn.execute(
                update(i).where(i.c.id == intent["id"]).values(
                    state="failed", finished_at=self.now(), claimed_until=None,
                    attempts=i.c.attempts + 1, last_error=reason,
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
                update(i).where(i.c.id == intent["id"]).values(
                    attempts=attempts, claimed_until=None, last_error=reason,
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
        subscribers = conn.execute(
            select(s.c.id).where(s.c.topic == topic, s.c.state == "active", s.c.expires_at > now)
        ).scalars().all()
        if subscribers:
            conn.execute(
                insert(self.deliveries),
                [
                    {
                        "subscription_id": sid, "topic": topic, "body": body, "content_type": content_type,
                        "created_at": now, "state": "pending", "attempts": 0, "next_attempt_at": now,
                    }
                    for sid in subscribers
                ],
            )
        return len(subscribers)

    def deliver_due(self, now: datetime | None = None, limit: int = 100) -> int:
        """POST every due delivery to its callback; returns how many were handled."""
        d, s = self.deliveries, self.subscriptions
        now = now or self.now()
        with self._engine().connect() as conn:
            due = conn.execute(
                select(
                    d.c.id, d.c.topic, d.c.body, d.c.content_type, d.c.attempts,
                    s.c.id.label("subscription_id"), s.c.callback, s.c.secret, s.c.expires_at,
                )
                .join(s, s.c.id == d.c.subscription_id)
                .where(d.c.state == "pending", d.c.next_attempt_at <= now, _unclaimed(d, now))
                .order_by(d.c.next_attempt_at, d.c.id).limit(limit)
            ).mappings().all()
        handled = 0
        for delivery in due:
            if not self._claim(d, delivery["id"], now):
                continue
            handled += 1
            if delivery["expires_at"] <= now:
                self._finish_delivery(delivery, "expired", "the subscription's lease ended before delivery")
                continue
            self._deliver(delivery)
        return handled

    def _deliver(self, delivery: Any) -> None:
        topic = delivery["topic"]
        headers = {
            "Content-Type": delivery["content_type"],
            "Link": f'<{self.hub_url_for(topic)}>; rel="hub", <{topic}>; rel="self"',
        }
        if delivery["secret"]:
            headers["X-Hub-Signature"] = sign(delivery["secret"], delivery["body"])
        try:
            # Subscribers must not move by redirect (§7): a 3xx is a failure like any other.
            answer = self.client.post(
                delivery["callback"], delivery["body"], headers,
                follow_redirects=False, total_timeout=CALLBACK_DEADLINE,
            )
        except BlockedAddress as refused:
            # The guard will refuse this callback every time: retrying would never succeed.
            self._delivery_failed(delivery, None, str(refused), final=True)
            return
        except FetchError as error:
            self._delivery_failed(delivery, None, str(error))
            return
        if 200 <= answer.status < 300:
            self._finish_delivery(delivery, "delivered", None, status=answer.status)
        elif answer.status == 410:
            with self._engine().begin() as conn:
                self._remove(conn, self.subscriptions.c.id == delivery["subscription_id"])
            log.info("WebSub subscriber %s answered 410 Gone; subscription ended", delivery["callback"])
        else:
            self._delivery_failed(delivery, answer.status, f"the callback answered HTTP {answer.status}")

    def _finish_delivery(
        self, delivery: Any, state: str, error: str | None, status: int | None = None
    ) -> None:
        d, s = self.deliveries, self.subscriptions
        now = self.now()
        with self._engine().begin() as conn:
            conn.execute(
                update(d).where(d.c.id == delivery["id"]).values(
                    state=state, finished_at=now, claimed_until=None, last_error=error,
                    attempts=d.c.attempts + int(state == "delivered"),
                )
            )
            if state == "delivered":
                conn.execute(
                    update(s).where(s.c.id == delivery["subscription_id"]).values(
                        last_delivery_at=now, last_delivery_status=status,
                        last_delivery_error=None, failures=0,
                    )
                )

    def _delivery_failed(
        self, delivery: Any, status: int | None, reason: str, *, final: bool = False
    ) -> None:
        """Retry later with backoff, unless ``final`` or out of attempts; the subscription stays (§7)."""
        d, s = self.deliveries, self.subscriptions
        attempts = delivery["attempts"] + 1
        now = self.now()
        gave_up = final or attempts >= self.retry.max_attempts
        with self._engine().begin() as conn:
            conn.execute(
                update(d).where(d.c.id == delivery["id"]).values(
                    attempts=attempts, claimed_until=None, last_error=reason,
                    state="failed" if gave_up else "pending",
                    finished_at=now if gave_up else None,
                    next_attempt_at=now + self.retry.delay(attempts, self._rng),
                )
            )
            conn.execute(
                update(s).where(s.c.id == delivery["subscription_id"]).values(
                    last_delivery_at=now, last_delivery_status=status, last_delivery_error=reason,
                    failures=s.c.failures + 1,
                )
            )
        log.info("WebSub delivery %s to %s failed (attempt %d): %s",
                 delivery["id"], delivery["callback"], attempts, reason)

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
                update(table).where(table.c.id == row_id, table.c.state == "pending", _unclaimed(table, now))
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
                    select(d.c.subscription_id, func.count(d.c.id)).where(d.c.state == "pending")
                    .group_by(d.c.subscription_id)
                ).all()
            )
        return [
            {k: v for k, v in row.items() if k != "secret"} | {"queued": queued.get(row["id"], 0),
                                                                 "signed": bool(row["secret"])}
            for row in rows
        ]


def _unclaimed(table: Table, now: datetime) -> Any:
    return or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now)


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
