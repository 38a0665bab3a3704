"""Impact without surveillance: anonymous daily counts of how often listings were seen and followed.

What reaches us, and from where:

- ``POST /impact/events``: the widget's batched ``navigator.sendBeacon`` of
  ``{"events": [[kind, activity id], ...]}``;
- ``GET /impact/pixel.gif?k=shown&a=<id>&a=<id>``: a 1×1 image the embed and print pages
  (which need no JavaScript) load;
- ``GET /go/booking?a=<id>``: a booking link on those pages, counted and then redirected to
  the booking address *held for that activity*, never to an address the request names.

Each is added to ``impact_counts`` (activity, London day, embedding website's origin, kind)
as an upserted counter. Nothing else is kept: no cookie is read or set, and the
:class:`AnonymousCounting` middleware takes the client's address, user agent, cookies and
the page path of the Referer out of these requests before anything (the app, the limiter,
Werkzeug's or gunicorn's access log) sees them; the rate limit keys on a keyed hash of the
address that changes every day. A browser sending ``Sec-GPC: 1`` or ``DNT: 1`` is not counted.

``GET /impact/report?origin=<publisher origin>`` serves the counts for that publisher's
activities (CORS ``*``), suppressed as :mod:`federation.impact` explains, with the counts of
the aggregators that follow us (our WebSub subscribers) for the same items: we fetch their
reports in the background when ours is asked for and ours is stale, so a publisher asking
us also learns what is counted further down the chain.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Blueprint, Flask, Response, abort, current_app, request, url_for
from sqlalchemy import Connection, Engine, and_, select
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.exceptions import HTTPException

from aggregator.extensions import csrf, limiter
from aggregator.store import impact_counts, impact_relayed, merge_keys, merged, metadata
from federation import impact
from federation.bodies import body_within
from federation.clock import clock, utcnow
from federation.config import load_config
from federation.fetch import GuardedClient
from federation.websub.hub import define_tables
from schema.schedule import LOCAL_ZONE
from schema.text import http_url

log = logging.getLogger(__name__)


IMPACT_DEFAULTS: dict[str, Any] = {
    "IMPACT_COUNTING": True,  # 0: take no counts at all (the report endpoints still answer)
    "IMPACT_RATE_LIMIT": "120 per minute",  # counting requests per browser (keyed on a daily hash)
    "IMPACT_MAX_EVENTS": 100,  # events one beacon may carry
    "IMPACT_FLUSH_SECONDS": 1.0,  # how long counts wait in memory to be written together; 0: at once
    "IMPACT_REPORT_DAYS": 400,  # how far back a report goes
    "IMPACT_REFRESH_SECONDS": 6 * 3600,  # how old relayed counts may be before they are fetched again
}
MAX_BODY_BYTES = 16_384  # a beacon of IMPACT_MAX_EVENTS events with long ids fits well within
PATH_PREFIXES = ("/impact/events", "/impact/pixel.gif", "/go/")  # the counting paths
# What a browser sends about itself or its person; none of it is needed to count.
PERSONAL_HEADERS = (
    "HTTP_USER_AGENT",
    "HTTP_COOKIE",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_REAL_IP",
    "HTTP_FORWARDED",
    "HTTP_FROM",
    "HTTP_AUTHORIZATION",
    "HTTP_SEC_CH_UA",
    "HTTP_SEC_CH_UA_MOBILE",
    "HTTP_SEC_CH_UA_PLATFORM",
)
CLIENT_KEY = "localfeed.impact.client"  # where the middleware leaves the hashed address for the limiter
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

bp = Blueprint("impact", __name__)


class AnonymousCounting:
    """WSGI middleware: counting requests lose everything that could name a person, before anyone reads them.

    It sits inside ``ProxyFix`` (when TRUSTED_PROXIES is set), so it sees the visitor's
    address, not the proxy's; it replaces that address with ``-`` in the WSGI environ that
    Flask, Werkzeug's request log and gunicorn's access log all read, keeping only a keyed
    hash of it (SECRET_KEY and today's date) for the rate limit. The Referer is cut to its
    origin: the path of the embedding page could say what someone was reading.
    """

    def __init__(self, app: Flask, wsgi_app: Any) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith(PATH_PREFIXES):
            address = str(environ.get("REMOTE_ADDR") or "")
            secret = str(self.app.config["SECRET_KEY"]).encode()
            today = utcnow().date().isoformat()
            keyed = hmac.new(secret, f"impact-limit\0{today}\0{address}".encode(), hashlib.sha256)
            environ[CLIENT_KEY] = keyed.hexdigest()[:20]
            environ["REMOTE_ADDR"] = "-"
            environ.pop("REMOTE_PORT", None)
            environ.pop("werkzeug.proxy_fix.orig", None)  # ProxyFix's copy of the original address
            for name in PERSONAL_HEADERS:
                environ.pop(name, None)
            if "HTTP_REFERER" in environ:
                origin = impact.web_origin(environ["HTTP_REFERER"])
                if origin:
                    environ["HTTP_REFERER"] = origin + "/"
                else:
                    del environ["HTTP_REFERER"]
        return self.wsgi_app(environ, start_response)


def keep_counting_anonymous(app: Flask) -> None:
    """Put :class:`AnonymousCounting` round the app; call it before ``trust_proxies`` so it sits inside."""
    app.wsgi_app = AnonymousCounting(app, app.wsgi_app)  # type: ignore[method-assign]


def _client_key() -> str:
    return str(request.environ.get(CLIENT_KEY, "-"))


def _rate_limit() -> str:
    return str(current_app.config["IMPACT_RATE_LIMIT"])


# -- what is counted, and where it was seen -----------------------------------------------------


def own_origin() -> str:
    """This aggregator's origin: PUBLIC_URL's, else the request's."""
    return impact.web_origin(current_app.config.get("PUBLIC_URL") or request.host_url) or impact.NO_SITE


def site_signature(site: str) -> str:
    """Signs a website origin that one of our own pages passes on to the pixel or the redirect."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, f"impact-site\0{site}".encode(), hashlib.sha256).hexdigest()[:24]


def reporting_site() -> str:
    """The website the event happened on: the origin the browser names, never a page path.

    Requests from another website's page (the widget's beacon) carry that site's origin in
    ``Origin`` or ``Referer``. Requests from our own embed and print pages carry ours; those
    pages pass on the site that embedded them as ``site``, signed so nobody else can claim one.
    """
    own = own_origin()
    given = request.headers.get("Origin")
    named = impact.web_origin(given) if given and given != "null" else None
    named = named or impact.web_origin(request.headers.get("Referer"))
    if named and named != own:
        return named
    declared = request.args.get("site")
    signature = request.args.get("sig", "")
    if declared is not None and hmac.compare_digest(site_signature(declared), signature):
        return declared
    return named or impact.NO_SITE


def embedding_site() -> str:
    """For our own pages: the site whose page they were opened from (the Referer's origin), else ours."""
    return impact.web_origin(request.headers.get("Referer")) or own_origin()


def counting_allowed() -> bool:
    """False when the browser asks not to be tracked (GPC, DNT), or the page or operator turned it off."""
    if not current_app.config["IMPACT_COUNTING"]:
        return False
    if request.headers.get("Sec-GPC", "").strip() == "1" or request.headers.get("DNT", "").strip() == "1":
        return False
    return request.args.get("counting", "").strip().lower() not in ("off", "0", "no", "false")


def today(app: Flask) -> date:
    return clock(app)().astimezone(LOCAL_ZONE).date()


def known_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Those of ``ids`` that name an activity we list now (by its id or a sameAs): nothing else is counted."""
    wanted = {f"uri:{activity_id}" for activity_id in ids}
    if not wanted:
        return set()
    rows = conn.execute(
        select(merge_keys.c.key)
        .join(merged, merged.c.id == merge_keys.c.merged_id)
        .where(merge_keys.c.key.in_(wanted), merged.c.state == "updated")
    )
    return {row.key.removeprefix("uri:") for row in rows}


def _upsert(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(impact_counts)
    return statement.on_conflict_do_update(
        index_elements=[
            impact_counts.c.activity_id,
            impact_counts.c.day,
            impact_counts.c.site,
            impact_counts.c.kind,
        ],
        set_={"events": impact_counts.c.events + statement.excluded.events},
    )


Key = tuple[date, str, str, str]  # (day, site, kind, activity id)


def write(engine: Engine, tally: Mapping[Key, int]) -> int:
    """Add the tallied events to the counts in one transaction; returns how many were counted.

    Unknown kinds and activities we do not list are dropped, so nobody can fill the table
    with made-up ids. One upsert per (activity, day, site, kind).
    """
    tally = {key: count for key, count in tally.items() if key[2] in impact.KINDS}
    if not tally:
        return 0
    with engine.begin() as conn:
        listed = known_ids(conn, {key[3] for key in tally})
        rows = [
            {
                "activity_id": activity_id,
                "day": day,
                "site": site,
                "kind": kind,
                "origin": impact.web_origin(activity_id) or "",
                "events": count,
            }
            for (day, site, kind, activity_id), count in sorted(tally.items())
            if activity_id in listed
        ]
        if rows:
            conn.execute(_upsert(conn), rows)
    return sum(count for key, count in tally.items() if key[3] in listed)


def record(engine: Engine, day: date, site: str, events: Iterable[tuple[str, str]]) -> int:
    """Add ``(kind, activity id)`` events seen on ``site`` on ``day`` now; returns how many were counted."""
    return write(engine, Counter((day, site, kind, activity_id) for kind, activity_id in events))


class Tally:
    """Events waiting to be written, added up in memory and written every IMPACT_FLUSH_SECONDS.

    A beacon then costs a web worker a dictionary update, not a transaction, so counting
    at a thousand events a second leaves the queries their time. What waits is only counts
    (day, site, kind, activity), like the table; a crash loses at most those seconds' counts,
    which for approximate statistics is the right trade. With IMPACT_FLUSH_SECONDS 0 each
    request writes at once. Each process (gunicorn worker) has its own, written on exit too.
    """

    MAX_WAITING = 50_000  # distinct keys held before a request writes them itself

    def __init__(self, engine: Engine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._waiting: Counter[Key] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, day: date, site: str, events: Iterable[tuple[str, str]]) -> None:
        if self.interval <= 0:
            record(self.engine, day, site, events)
            return
        with self._lock:
            self._waiting.update((day, site, kind, activity_id) for kind, activity_id in events)
            full = len(self._waiting) >= self.MAX_WAITING
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="localfeed-impact-tally", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        if full:
            self.flush()

    def flush(self) -> int:
        """Write what is waiting now; returns how many events were counted."""
        with self._lock:
            waiting, self._waiting = self._waiting, Counter()
        return write(self.engine, waiting) if waiting else 0

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.flush()
            except Exception:  # the counts of those seconds are lost; counting goes on
                log.exception("Writing impact counts failed")


def tally(app: Flask) -> Tally:
    held: Tally = app.extensions["impact.tally"]
    return held


def _events_from(body: bytes, limit: int) -> list[tuple[str, str]] | None:
    """``[[kind, id], ...]`` from a beacon's body, or None when it is not that shape (or too many)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    events = parsed.get("events") if isinstance(parsed, dict) else None
    if not isinstance(events, list) or len(events) > limit:
        return None
    valid = [
        (event[0], event[1])
        for event in events
        if isinstance(event, list) and len(event) == 2 and all(isinstance(part, str) for part in event)
    ]
    return valid if len(valid) == len(events) else None


def _no_content() -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-store"
    return response


def _problem(status: int, message: str) -> Response:
    response = Response(
        orjson.dumps({"error": {"message": message}}), status=status, mimetype="application/json"
    )
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.errorhandler(429)
def _too_many(error: HTTPException) -> Response:
    return _problem(
        429, f"Too many counting requests ({error.description}); the counts are approximate anyway."
    )


@bp.post("/impact/events")
@csrf.exempt
@limiter.limit(_rate_limit, key_func=_client_key)
def events() -> Response:
    """A beacon of events. Always answered 204 when well-formed, counted or not (GPC, DNT)."""
    body = body_within(MAX_BODY_BYTES)
    if body is None:
        return _problem(
            413, f"A beacon may be at most {MAX_BODY_BYTES} bytes; send the events in smaller batches."
        )
    limit = int(current_app.config["IMPACT_MAX_EVENTS"])
    batch = _events_from(body, limit)
    if batch is None:
        return _problem(
            400,
            f'Send {{"events": [[kind, activity id], ...]}} with at most {limit} events; kinds are '
            f"{', '.join(impact.KINDS)}.",
        )
    if counting_allowed():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        tally(app).add(today(app), reporting_site(), batch)
    return _no_content()


@bp.get("/impact/pixel.gif")
@limiter.limit(_rate_limit, key_func=_client_key)
def pixel() -> Response:
    """The no-JavaScript way: a 1×1 image whose address names the events."""
    kind = request.args.get("k", "")
    ids = request.args.getlist("a")[: int(current_app.config["IMPACT_MAX_EVENTS"])]
    if counting_allowed() and kind in impact.KINDS:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        tally(app).add(today(app), reporting_site(), [(kind, i) for i in ids])
    response = Response(GIF, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def booking_destination(conn: Connection, activity_id: str) -> str | None:
    """The booking address of the activity we list under ``activity_id`` (http(s) only), or None."""
    row = conn.execute(
        select(merged.c.data)
        .join(merge_keys, merge_keys.c.merged_id == merged.c.id)
        .where(merge_keys.c.key == f"uri:{activity_id}", merged.c.state == "updated")
    ).first()
    if row is None or not row.data:
        return None
    return http_url((row.data.get("booking") or {}).get("url"))


@bp.get("/go/booking")
@limiter.limit(_rate_limit, key_func=_client_key)
def go_booking() -> Response:
    """Count a booking link followed, then send the browser to the activity's own booking address.

    The destination comes only from what we hold for the activity (an Eventbrite ``aff``
    code of the embedding site may be added, as on the page): a request can never choose
    where it is sent, so this is no open redirect.
    """
    from aggregator.embed import with_affiliate  # the embed pages' own rule for the code

    activity_id = request.args.get("a", "")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with app.extensions["engine"].connect() as conn:
        destination = booking_destination(conn, activity_id)
    if destination is None:
        abort(404, "We do not list that activity, or it has no booking link. Go back and look again.")
    if counting_allowed():
        tally(app).add(today(app), reporting_site(), [("booking", activity_id)])
    response = Response(
        status=302, headers={"Location": with_affiliate(destination, request.args.get("aff"))}
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the destination learns nothing from us
    return response


# -- for the embed and print pages --------------------------------------------------------------

URL_BUDGET = 1800  # characters of ids one pixel's address carries: well inside every browser's limit


def pixel_urls(kind: str, ids: Iterable[str]) -> list[str]:
    """The image addresses that count ``kind`` for ``ids`` on this page; none when counting is off."""
    if not counting_allowed():
        return []
    site = embedding_site()
    signed = {"k": kind, "site": site, "sig": site_signature(site)}
    urls: list[str] = []
    batch: list[str] = []
    for activity_id in ids:
        batch.append(activity_id)
        if len(batch) >= int(current_app.config["IMPACT_MAX_EVENTS"]) or sum(map(len, batch)) > URL_BUDGET:
            urls.append(f"{url_for('impact.pixel')}?{urlencode({**signed, 'a': batch}, doseq=True)}")
            batch = []
    if batch:
        urls.append(f"{url_for('impact.pixel')}?{urlencode({**signed, 'a': batch}, doseq=True)}")
    return urls


def booking_link(activity_id: str, url: str, aff: str | None = None) -> str:
    """The booking link an embed page shows: through ``/go/booking`` when counting, else ``url`` itself."""
    if not activity_id or not counting_allowed():
        return url
    site = embedding_site()
    query = {"a": activity_id, "site": site, "sig": site_signature(site)}
    if aff:
        query["aff"] = aff
    return f"{url_for('impact.go_booking')}?{urlencode(query)}"


@bp.app_context_processor
def _in_templates() -> dict[str, Any]:
    return {"impact_pixels": pixel_urls, "counted_booking_link": booking_link}


# -- reports ------------------------------------------------------------------------------------


def own_cells(conn: Connection, origin: str, first: date, last: date) -> list[dict[str, Any]]:
    """Our published day cells for ``origin``'s activities, ``first`` to ``last`` (days that are over)."""
    rows = conn.execute(
        select(
            impact_counts.c.activity_id,
            impact_counts.c.day,
            impact_counts.c.site,
            impact_counts.c.kind,
            impact_counts.c.events,
        )
        .where(impact_counts.c.origin == origin, impact_counts.c.day >= first, impact_counts.c.day <= last)
        .order_by(
            impact_counts.c.activity_id, impact_counts.c.day, impact_counts.c.site, impact_counts.c.kind
        )
    )
    return [impact.day_cell(r.activity_id, r.day, r.site, r.kind, r.events) for r in rows]


def relayed_sections(conn: Connection, origin: str, first: date) -> list[dict[str, Any]]:
    """What the aggregators following us published for ``origin``, as we last fetched it."""
    rows = conn.execute(select(impact_relayed).where(impact_relayed.c.origin == origin))
    return [
        impact.section(
            row.counted_by,
            datetime.fromisoformat(row.generated),
            [cell for cell in row.days if cell["day"] >= first.isoformat()],
        )
        for row in rows
    ]


@bp.get("/impact/report")
def report() -> Response:
    origin = impact.web_origin(request.args.get("origin"))
    if origin is None or origin != request.args.get("origin", "").rstrip("/"):
        return _problem(
            400,
            "Give the publisher's origin, e.g. ?origin=https://publisher.example (scheme, host, port only).",
        )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now = clock(app)()
    last = today(app) - timedelta(days=1)  # only days that are over
    first = last - timedelta(days=int(app.config["IMPACT_REPORT_DAYS"]))
    own = own_origin()
    with app.extensions["engine"].connect() as conn:
        sections: list[Mapping[str, Any]] = [impact.section(own, now, own_cells(conn, origin, first, last))]
        sections += impact.latest(relayed_sections(conn, origin, first), leave_out=own)
    refresh_soon(app, origin, own)
    response = Response(orjson.dumps(impact.report(origin, last, sections, now)), mimetype="application/json")
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


# -- counts relayed from the aggregators that follow us -------------------------------------------

_refreshing: dict[tuple[str, str], float] = {}  # (database, origin) -> when last started, per process
_refreshing_lock = threading.Lock()
# Origins remembered at once. Anyone may ask for a report on any origin, so without a bound
# the memory of when each was last refreshed would grow with the origins asked about.
REFRESHING_KEPT = 1024


def followers(conn: Connection, now: datetime) -> list[str]:
    """The origins of the aggregators subscribed to our hub now: they may count items we relay."""
    subscriptions = define_tables(metadata)[0]
    rows = conn.execute(
        select(subscriptions.c.callback).where(
            and_(subscriptions.c.state == "active", subscriptions.c.expires_at > now)
        )
    )
    return sorted({origin for row in rows if (origin := impact.web_origin(row.callback))})


def holds_items_of(conn: Connection, origin: str) -> bool:
    return (
        conn.execute(
            select(merged.c.id).where(merged.c.item_id.startswith(origin + "/", autoescape=True)).limit(1)
        ).first()
        is not None
    )


def refresh_relayed(config: Mapping[str, Any], engine: Engine, origin: str, own: str) -> list[str]:
    """Fetch our followers' reports for ``origin`` and keep their sections; returns the problems met."""
    now = utcnow()
    with engine.connect() as conn:
        if not holds_items_of(conn, origin):
            return []
        aggregators = [follower for follower in followers(conn, now) if follower != own]
    problems, fetched = [], []
    with GuardedClient(allow_private=bool(config["ALLOW_PRIVATE_NETWORKS"]), max_bytes=20_000_000) as client:
        for aggregator in aggregators:
            try:
                fetched += impact.fetch_report(client, aggregator, origin)
            except impact.ImpactError as error:
                problems.append(str(error))
    with engine.begin() as conn:
        held = {s["countedBy"]: s for s in relayed_sections(conn, origin, date.min)}
        for given in impact.latest(fetched, leave_out=own):
            if given["countedBy"] in held and held[given["countedBy"]]["generated"] >= given["generated"]:
                continue
            impact.keep_section(conn, impact_relayed, origin, given, now)
    for problem in problems:
        log.warning("Relayed impact counts: %s", problem)
    return problems


def refresh_soon(app: Flask, origin: str, own: str) -> None:
    """Run :func:`refresh_relayed` in a thread, unless it ran for ``origin`` within IMPACT_REFRESH_SECONDS."""
    key = (str(app.config["DATABASE_URL"]), origin)
    interval = float(app.config["IMPACT_REFRESH_SECONDS"])
    with _refreshing_lock:
        now = time.monotonic()
        started = _refreshing.get(key)
        if started is not None and now - started < interval:
            return
        for done in [k for k, at in _refreshing.items() if now - at >= interval]:
            del _refreshing[done]  # due again anyway: forgetting it changes nothing
        if len(_refreshing) >= REFRESHING_KEPT:  # a flood of origins: the oldest may refresh early
            del _refreshing[next(iter(_refreshing))]
        _refreshing[key] = now
    config, engine = dict(app.config), app.extensions["engine"]

    def run() -> None:
        try:
            refresh_relayed(config, engine, origin, own)
        except Exception:  # the report was served; the next one tries again
            log.exception("Fetching relayed impact counts for %s failed", origin)
            with _refreshing_lock:
                _refreshing.pop(key, None)

    threading.Thread(target=run, name="localfeed-impact-relay", daemon=True).start()


def init_app(app: Flask) -> None:
    """Settings and the counting and report endpoints."""
    given = {key: app.config[key] for key in IMPACT_DEFAULTS if key in app.config}
    app.config.update(load_config(IMPACT_DEFAULTS, given))
    app.extensions["impact.tally"] = Tally(
        app.extensions["engine"], float(app.config["IMPACT_FLUSH_SECONDS"])
    )
    app.register_blueprint(bp)
