"""The aggregator as a WebSub subscriber: push from its sources' hubs, with polling behind it.

When a source is approved (and every ``WEBSUB_RENEW_SECONDS`` after), :func:`subscribe_source`
fetches its feed, discovers the hub (``Link`` headers first, then links in the document)
and subscribes with an unguessable per-subscription callback URL,
``/websub/callback/<token>``, and a random secret. The hub's verification GET is answered
only for what we asked (404 otherwise). A delivery is checked on its raw bytes against
the secret with a constant-time compare; an unsigned or badly signed one is answered 2xx
(WebSub §8) and changes nothing. A genuine one is applied through the harvest's own
page-applying code, in one transaction, and then a normal harvest of the source is
queued: the push is content plus a hint, so a lost push loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from flask import Blueprint, Flask, Response, abort, current_app, render_template, request
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from aggregator.adapters import localfeed
from aggregator.adapters.base import Page
from aggregator.auth import operator_required
from aggregator.extensions import csrf
from aggregator.harvest import HarvestResult, apply_page, engine_for, guarded_client
from aggregator.jobs import enqueue, enqueue_harvest
from aggregator.settings import job_config
from aggregator.store import metadata, sources
from federation.bodies import body_within
from federation.clock import utcnow
from federation.db import UTCDateTime
from federation.fetch import Fetched, FetchError
from federation.websub import (
    check_verification,
    discover,
    new_callback_token,
    new_secret,
    renew_due,
    subscribe_request,
    verify_delivery,
)
from federation.websub.subscriber import CHALLENGE_HEADERS, granted_lease
from schema.rpde import PageError, decode_page, encode_page

log = logging.getLogger(__name__)

CALLBACK_PATH = "/websub/callback/"
RETRY_UNANSWERED = timedelta(hours=1)  # a request unverified, or a hub unreachable, is asked again after this
RETRY_REFUSED = timedelta(days=1)  # a feed naming no hub, or a hub that said no, is asked again daily

# One row per source: our subscription to the hub its feed advertises.
push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("hub_url", Text),
    Column("topic", Text),
    Column("token", String(64), nullable=False, unique=True),  # the callback URL's capability
    Column("secret", String(100), nullable=False),
    # requested: awaiting the hub's verification; active; unsubscribing; ended;
    # denied: the hub said no; failed: the hub could not be asked; no-hub: the feed names none.
    Column("state", String(16), nullable=False),
    Column("lease_seconds", Integer),
    Column("expires_at", UTCDateTime),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("verified_at", UTCDateTime),
    Column("last_delivery_at", UTCDateTime),
    Column("deliveries", Integer, nullable=False, default=0),
    Column("ignored", Integer, nullable=False, default=0),  # unsigned or badly signed, or unusable
    Column("last_error", Text),
    # The request we sent and the hub has not yet verified ("subscribe" or "unsubscribe"); a
    # verification GET is believed only when it answers it (WebSub 5.3).
    Column("pending", String(16)),
)

bp = Blueprint("subscriptions", __name__)
csrf.exempt(bp)  # hubs are servers posting to capability URLs, with no session to forge


# -- subscribing -----------------------------------------------------------------------------


def subscribe_source(source_id: int, config: Mapping[str, Any], callback_base: str) -> str:
    """Discover the hub of an approved source's feed and ask it to push to us; returns the new state.

    A plain function taking plain arguments, so it runs as an rq job or in-process.
    ``callback_base`` is this aggregator's public base URL, which the hub must reach.
    """
    engine = engine_for(config["DATABASE_URL"])
    with engine.connect() as conn:
        source = conn.execute(select(sources).where(sources.c.id == source_id)).first()
        current = _row(conn, source_id)
    if source is None or source.state != "approved":
        return "skipped"
    with guarded_client(config) as client:
        try:
            found = discover(client.get(source.feed_url))
        except FetchError as error:
            return _record(
                engine, source_id, current, state="failed", last_error=f"fetching the feed: {error}"
            )
        if not found.hub:
            return _record(
                engine,
                source_id,
                current,
                state="no-hub",
                last_error=f'{source.feed_url} names no WebSub hub (rel="hub" link); it is polled instead.',
            )
        topic = found.self_url or source.feed_url
        same = current is not None and current.hub_url == found.hub and current.topic == topic
        token = current.token if same else new_callback_token()
        secret = current.secret if same else new_secret()
        keep_active = same and current.state == "active"
        _record(
            engine,
            source_id,
            current,
            hub_url=found.hub,
            topic=topic,
            token=token,
            secret=secret,
            state="active" if keep_active else "requested",
            pending="subscribe",
            last_error=None,
        )
        lease = int(config.get("WEBSUB_LEASE_SECONDS") or 0) or None
        callback = callback_base.rstrip("/") + CALLBACK_PATH + token
        try:
            answer = subscribe_request(client, found.hub, topic, callback, secret, lease)
        except FetchError as error:
            return _record(
                engine,
                source_id,
                None,
                state=_unless_active(keep_active, "failed"),
                pending=None,
                last_error=f"asking the hub {found.hub}: {error}",
            )
    if not 200 <= answer.status < 300:
        reason = answer.text.strip()[:500] or f"HTTP {answer.status}"
        return _record(
            engine,
            source_id,
            None,
            state=_unless_active(keep_active, "failed"),
            pending=None,
            last_error=f"the hub {found.hub} refused the subscription: {reason}",
        )
    return "active" if keep_active else "requested"


def _unless_active(keep_active: bool, state: str) -> str:
    """A renewal that fails leaves a live subscription live until its lease ends."""
    return "active" if keep_active else state


def _row(conn: Connection, source_id: int) -> Any:
    return conn.execute(select(push_subscriptions).where(push_subscriptions.c.source_id == source_id)).first()


def _record(engine: Engine, source_id: int, current: Any, **values: Any) -> str:
    """Write the source's subscription row (created when ``current`` is None and none exists)."""
    values["requested_at"] = utcnow()
    with engine.begin() as conn:
        if current is None and _row(conn, source_id) is None:
            values.setdefault("token", new_callback_token())
            values.setdefault("secret", new_secret())
            conn.execute(
                insert(push_subscriptions).values(source_id=source_id, deliveries=0, ignored=0, **values)
            )
        else:
            conn.execute(
                update(push_subscriptions).where(push_subscriptions.c.source_id == source_id).values(**values)
            )
    return values.get("state", "")


def enqueue_subscribe(source_id: int) -> Any:
    """Queue :func:`subscribe_source` for a source just approved, unless its subscription is live.

    Called in the operator's request, whose address gives our callback base when
    ``PUBLIC_URL`` is not set. Returns the job, or None when there was nothing to do.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # Flask types the proxy as the app
    with app.extensions["engine"].connect() as conn:
        row = _row(conn, source_id)
    if row is not None and row.state in ("active", "requested") and not _needs_asking(row, utcnow()):
        return None
    base = app.config.get("PUBLIC_URL") or request.url_root
    return enqueue(subscribe_source, source_id, job_config(app), base)


def renew_subscriptions(config: Mapping[str, Any]) -> list[int]:
    """Subscribe approved sources that need it, renew leases about to end, drop unapproved ones.

    Needs ``PUBLIC_URL`` (outside a request there is no other way to know our address);
    without it nothing is done. Returns the ids of the sources asked about.
    """
    base = config.get("PUBLIC_URL")
    if not base:
        log.warning("PUBLIC_URL is not set, so WebSub subscriptions cannot be renewed; sources are polled.")
        return []
    engine = engine_for(config["DATABASE_URL"])
    now = utcnow()
    s = push_subscriptions
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                sources.c.id.label("source_id"),
                sources.c.state.label("source_state"),
                s.c.state,
                s.c.token,
                s.c.hub_url,
                s.c.topic,
                s.c.lease_seconds,
                s.c.expires_at,
                s.c.requested_at,
            ).select_from(sources.outerjoin(s, s.c.source_id == sources.c.id))
        ).all()
    asked = []
    for row in rows:
        if row.source_state != "approved":
            if row.state in ("active", "requested"):
                _unsubscribe(engine, config, row, base)
            continue
        if _needs_asking(row, now):
            subscribe_source(row.source_id, config, base)
            asked.append(row.source_id)
    return asked


def _needs_asking(row: Any, now: datetime) -> bool:
    if row.state is None:
        return True
    if row.state == "active":
        margin = timedelta(seconds=min(86_400, (row.lease_seconds or 0) / 2))
        return renew_due(row.expires_at, now, margin=margin)
    waited = now - row.requested_at
    return waited >= (RETRY_REFUSED if row.state in ("no-hub", "denied") else RETRY_UNANSWERED)


def _unsubscribe(engine: Engine, config: Mapping[str, Any], row: Any, base: str) -> None:
    """Ask the hub to stop pushing for a source no longer approved."""
    _record(engine, row.source_id, row, state="unsubscribing", pending="unsubscribe")
    with guarded_client(config) as client:
        try:
            subscribe_request(
                client,
                row.hub_url,
                row.topic,
                base.rstrip("/") + CALLBACK_PATH + row.token,
                mode="unsubscribe",
            )
        except FetchError as error:
            log.info("unsubscribing source %s from %s failed: %s", row.source_id, row.hub_url, error)


# -- the callback ----------------------------------------------------------------------------


def _engine() -> Engine:
    return current_app.extensions["engine"]


def _by_token(conn: Connection, token: str) -> Any:
    return conn.execute(select(push_subscriptions).where(push_subscriptions.c.token == token)).first()


@bp.get(CALLBACK_PATH + "<token>")
def verification(token: str) -> Response:
    """Confirm the (un)subscription we are waiting on by echoing hub.challenge; 404 for anything else.

    Only a verification answering a request we sent and have not yet seen verified
    changes anything: a replayed or forged GET (a ``denied``, a new lease) with no such
    request pending is answered 404 and leaves the subscription as it was.
    """
    engine = _engine()
    with engine.connect() as conn:
        row = _by_token(conn, token)
    if row is None or row.pending is None or request.args.get("hub.topic") != row.topic:
        abort(404)
    if request.args.get("hub.mode") == "denied" and row.pending == "subscribe":
        reason = request.args.get("hub.reason") or "no reason given"
        denied = f"the hub denied it: {reason}"
        _record(engine, row.source_id, row, state="denied", pending=None, last_error=denied)
        return Response("Noted.\n", headers=CHALLENGE_HEADERS)
    challenge = check_verification(request.args, lambda topic, mode: mode == row.pending)
    if challenge is None:
        abort(404)
    if row.pending == "subscribe":
        lease = granted_lease(request.args)
        assert lease is not None  # check_verification refuses a subscription without one
        now = utcnow()
        _record(
            engine,
            row.source_id,
            row,
            state="active",
            pending=None,
            lease_seconds=lease,
            verified_at=now,
            expires_at=now + timedelta(seconds=lease),
            last_error=None,
        )
    else:
        _record(engine, row.source_id, row, state="ended", pending=None, expires_at=None)
    return Response(challenge, headers=CHALLENGE_HEADERS)


@bp.post(CALLBACK_PATH + "<token>")
def delivery(token: str) -> Response:
    """A pushed change: check its signature on the raw bytes, apply it, then queue a harvest."""
    engine = _engine()
    with engine.connect() as conn:
        row = _by_token(conn, token)
    if row is None or row.state == "ended":
        return Response("No such subscription.\n", 410, mimetype="text/plain")  # the hub ends it (§7)
    limit = int(current_app.config["FETCH_MAX_BYTES"])
    body = body_within(limit)
    if body is None:
        return Response(f"Deliveries are limited to {limit} bytes.\n", 413, mimetype="text/plain")
    if not verify_delivery(row.secret, body, request.headers):
        _count(engine, row.id, ignored=True, error="a delivery was unsigned or badly signed, and ignored")
        # 2xx all the same, so a forger learns nothing (WebSub §8).
        return Response("Received.\n", 202, mimetype="text/plain")
    config = job_config(current_app)
    try:
        applied = apply_push(config, row.source_id, body, request.mimetype, _own_url())
    except PageError as error:
        _count(engine, row.id, ignored=True, error=f"a signed delivery was not an RPDE page: {error}")
        return Response("Received.\n", 202, mimetype="text/plain")
    _count(engine, row.id, ignored=False, error=None)
    enqueue_harvest(row.source_id, config)  # the push is a hint too: walk the feed from our cursor
    return Response(f"Applied {applied} change(s).\n", 202, mimetype="text/plain")


def _own_url() -> str:
    return (current_app.config.get("PUBLIC_URL") or request.url_root).rstrip("/")


def _count(engine: Engine, subscription_id: int, *, ignored: bool, error: str | None) -> None:
    s = push_subscriptions
    counter = s.c.ignored if ignored else s.c.deliveries
    values = {counter.key: counter + 1, "last_delivery_at": utcnow()}
    if error is not None or not ignored:
        values["last_error"] = error
    with engine.begin() as conn:
        conn.execute(update(s).where(s.c.id == subscription_id).values(**values))


def apply_push(config: Mapping[str, Any], source_id: int, body: bytes, media_type: str, own_url: str) -> int:
    """Apply a pushed RPDE page to the source through the harvest's page code; returns the changes applied.

    Only our own format is applied (other formats' pushes are hints: the harvest follows).
    The source's cursor and validators stay as they are, so the next harvest still walks
    everything after them; items the cursor has already passed are older than what the
    harvest has seen and are dropped, so a late retry never brings old data back.
    """
    engine = engine_for(config["DATABASE_URL"])
    with engine.connect() as conn:
        source = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    if source is None or source.state != "approved" or source.kind != localfeed.KIND:
        return 0
    page = decode_page(body)
    after = _cursor_position(source.cursor)
    fresh = [item for item in page["items"] if after is None or item["modified"] > after]
    if not fresh:
        return 0
    resume_url = source.cursor or source.feed_url
    delivered = Fetched(
        url=resume_url,
        status=200,
        headers=httpx.Headers({"content-type": media_type}),
        content=encode_page(fresh, page["next"], page.get("license") or ""),
    )
    decoded: Page = next(localfeed.pages(lambda _url: delivered, source.feed_url, source.cursor))
    decoded.cursor = source.cursor
    result = HarvestResult(source_id, "ok")
    with engine.begin() as conn:
        # As after a 304: the stored validators still hold for the (unchanged) cursor.
        apply_page(conn, source, decoded, (source.etag, source.last_modified), own_url, result)
    return result.updated + result.deleted + result.quarantined


def _cursor_position(cursor: str | None) -> int | None:
    """The change number a localfeed cursor (``...?afterChangeNumber=N``) has reached."""
    if not cursor:
        return None
    values = parse_qs(urlsplit(cursor).query).get("afterChangeNumber")
    return int(values[0]) if values and values[0].isdigit() else None


# -- the operator's page ---------------------------------------------------------------------


@bp.get("/operator/subscriptions")
@operator_required
def operator_subscriptions() -> str:
    """Each source's push subscription: its hub, state, lease and deliveries."""
    with _engine().connect() as conn:
        rows = conn.execute(
            select(
                sources.c.name,
                sources.c.feed_url,
                sources.c.state.label("source_state"),
                push_subscriptions,
            )
            .select_from(
                sources.outerjoin(push_subscriptions, push_subscriptions.c.source_id == sources.c.id)
            )
            .where(sources.c.state != "pending")
            .order_by(sources.c.name)
        ).all()
    return render_template("hub/subscriptions.html", rows=rows, now=utcnow())


def init_app(app: Flask) -> None:
    """Mount the callback and the operator page."""
    app.register_blueprint(bp)
