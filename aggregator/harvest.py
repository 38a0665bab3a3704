"""Harvesting one source: walk its feed from the stored cursor and apply it, page by page.

``harvest_source`` is a plain function so that an rq worker can run it as a job; it
builds its own engine from the configuration it is given. Each page the adapter yields
is applied in ONE transaction together with the cursor it carries: a crash (or a killed
worker) resumes from the last applied page, and no page is applied twice.

Failures are the source's own business: they are recorded on the source (the thing,
the cause, the fix), push its next attempt back with jittered exponential backoff, and
leave everything stored from earlier harvests untouched.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine

from aggregator import geocode, merge, search_index
from aggregator.adapters import PROVENANCE_KEY, get_adapter
from aggregator.adapters.base import Page, SourceBusy, SourceGone
from aggregator.read_ahead import ReadAhead
from aggregator.store import chunks, copies, counter, init_store, quarantine, sources
from federation.clock import utcnow
from federation.db import make_engine, next_change_numbers
from federation.fetch import AddressPolicy, Fetched, FetchError, GuardedClient
from schema import is_valid_activity, normalise_activity_postcode, validate_activity
from schema.rpde import PageError

log = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}


class SourceRow(Protocol):
    """The columns of a ``sources`` row the harvest reads: a ``select(sources)`` Row gives them."""

    @property
    def id(self) -> int: ...
    @property
    def feed_url(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def cursor(self) -> str | None: ...
    @property
    def etag(self) -> str | None: ...
    @property
    def last_modified(self) -> str | None: ...
    @property
    def failures(self) -> int: ...


def engine_for(database_url: str) -> Engine:
    """One engine per database per process, so a worker running many jobs reuses its pool.

    A worker may start before any web process has created the tables, so it makes sure too.
    """
    if database_url not in _engines:
        engine = make_engine(database_url)
        init_store(engine)
        _engines[database_url] = engine
    return _engines[database_url]


def guarded_client(config: Mapping[str, Any]) -> GuardedClient:
    """The outbound client with the operator's address policy and limits."""
    public = tuple(n.strip() for n in str(config.get("FETCH_PUBLIC_NETWORKS") or "").split(",") if n.strip())
    policy = (
        AddressPolicy(allow_private=True)
        if config.get("ALLOW_PRIVATE_NETWORKS")
        else AddressPolicy.treating_as_public(*public)
    )
    total = float(config.get("FETCH_TIMEOUT", 30.0))
    return GuardedClient(
        policy=policy,
        max_bytes=int(config.get("FETCH_MAX_BYTES", 10_000_000)),
        read_timeout=min(10.0, total),
        connect_timeout=min(5.0, total),
        total_timeout=total,
    )


@dataclass
class HarvestResult:
    """What one run did; returned by the job so rq (and the CLI) can report it."""

    source_id: int
    status: str  # ok | not-modified | more | error | busy | gone | locked | skipped
    pages: int = 0
    updated: int = 0
    deleted: int = 0
    quarantined: int = 0
    message: str = ""


class SourceFetch:
    """The ``fetch(url)`` adapters call: guarded, conditional, and HTTP statuses given meaning.

    Conditional headers go only with the URL the stored validators belong to (the cursor,
    or the feed itself for formats without one), so a 304 means exactly "nothing new".
    """

    def __init__(self, client: GuardedClient, resume_url: str, etag: str | None, last_modified: str | None):
        self.client = client
        self.resume_url = resume_url
        self.etag = etag
        self.last_modified = last_modified
        self.last_url: str | None = None
        self.last_response: Fetched | None = None

    def __call__(self, url: str) -> Fetched | None:
        headers = {"Accept": "application/json, application/ld+json;q=0.9, */*;q=0.5"}
        if url == self.resume_url:
            if self.etag:
                headers["If-None-Match"] = self.etag
            if self.last_modified:
                headers["If-Modified-Since"] = self.last_modified
        response = self.client.get(url, headers=headers)
        self.last_url = url
        if response.status == 304:
            self.last_response = None
            return None
        self.last_response = response
        if response.status in (404, 410):
            word = "404 Not Found" if response.status == 404 else "410 Gone"
            raise SourceGone(f"{url} answered {word}: the publisher has removed or moved this feed")
        if response.status in (429, 503):
            raise SourceBusy(
                f"{url} answered {response.status}: the server is busy or down for maintenance",
                _retry_after(response.headers.get("retry-after")),
            )
        if response.status >= 400:
            raise FetchError(
                url,
                f"the server answered HTTP {response.status}",
                "Try again later; if it lasts, ask the publisher whether the feed has moved.",
            )
        return response

    def validators_for(self, url: str) -> tuple[str | None, str | None]:
        """The ETag and Last-Modified to keep for ``url``, if it is the one just fetched."""
        if url != self.last_url:
            return None, None
        if self.last_response is None:  # a 304: the stored validators still hold
            return self.etag, self.last_modified
        headers = self.last_response.headers
        return headers.get("etag"), headers.get("last-modified")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def backoff_delay(failures: int, config: Mapping[str, Any]) -> float:
    """Seconds to wait after ``failures`` failures in a row: doubling from a minute, capped, jittered.

    The jitter keeps many sources that failed together (a shared host going down) from
    all coming back in the same second.
    """
    ceiling = float(config.get("HARVEST_BACKOFF_MAX", 6 * 3600))
    delay = min(ceiling, 60.0 * 2 ** max(0, failures - 1))
    return delay * random.uniform(0.5, 1.0)


# -- one harvest at a time per source ---------------------------------------------------------


class _Lease:
    """Holds a source for one harvest: a Redis lock when Redis is configured, else a DB-row lease.

    Both expire on their own (``HARVEST_LEASE``), so a worker killed mid-harvest cannot
    hold its source for ever; both are renewed after every page.
    """

    def __init__(self, engine: Engine, source_id: int, config: Mapping[str, Any]):
        self.engine = engine
        self.source_id = source_id
        self.seconds = int(config.get("HARVEST_LEASE", 900))
        self.owner = uuid.uuid4().hex
        self._lock = None
        if config.get("REDIS_URL"):
            import redis

            connection = redis.Redis.from_url(config["REDIS_URL"])
            name = f"{config.get('RQ_QUEUE', 'localfeed')}:harvest-lock:{source_id}"
            self._lock = connection.lock(name, timeout=self.seconds, blocking=False)

    def acquire(self) -> bool:
        if self._lock is not None:
            return bool(self._lock.acquire(blocking=False))
        now = utcnow()
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(sources)
                .where(sources.c.id == self.source_id)
                .where((sources.c.lease_until.is_(None)) | (sources.c.lease_until < now))
                .values(lease_owner=self.owner, lease_until=now + timedelta(seconds=self.seconds))
            )
            return taken.rowcount == 1

    def renew(self, conn: Connection) -> None:
        """Extend the lease; inside the page's transaction for the DB lease."""
        if self._lock is not None:
            self._lock.reacquire()
            return
        conn.execute(
            update(sources)
            .where(sources.c.id == self.source_id, sources.c.lease_owner == self.owner)
            .values(lease_until=utcnow() + timedelta(seconds=self.seconds))
        )

    def release(self) -> None:
        if self._lock is not None:
            from redis.exceptions import LockError

            with suppress(LockError):  # expired meanwhile: nothing to give back
                self._lock.release()
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.id == self.source_id, sources.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
            )


@contextmanager
def _held(lease: _Lease) -> Iterator[bool]:
    got = lease.acquire()
    try:
        yield got
    finally:
        if got:
            lease.release()


# -- the job ------------------------------------------------------------------------------------


def harvest_source(source_id: int, app_config: Mapping[str, Any]) -> HarvestResult:
    """Harvest one approved source; safe to run as an rq job or in-process."""
    engine = engine_for(app_config["DATABASE_URL"])
    lease = _Lease(engine, source_id, app_config)
    with _held(lease) as got:
        if not got:
            return HarvestResult(source_id, "locked", message="Another harvest of this source is running.")
        return _harvest_held(engine, lease, source_id, app_config)


def _harvest_held(engine: Engine, lease: _Lease, source_id: int, config: Mapping[str, Any]) -> HarvestResult:
    with engine.connect() as conn:
        source = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    if source is None or source.state != "approved":
        state = "missing" if source is None else source.state
        return HarvestResult(source_id, "skipped", message=f"Source {source_id} is {state}, not approved.")

    result = HarvestResult(source_id, "ok")
    own_url = (config.get("PUBLIC_URL") or "").rstrip("/")
    page_limit = int(config.get("HARVEST_PAGE_LIMIT", 200))
    resume_url = source.cursor or source.feed_url
    try:
        adapter = get_adapter(source.kind)
        with guarded_client(config) as client:
            fetch = SourceFetch(client, resume_url, source.etag, source.last_modified)
            pages = adapter.pages(fetch, source.feed_url, source.cursor)
            # The validators are read as each page arrives, before the next fetch replaces them.
            with ReadAhead(pages, lambda page: fetch.validators_for(page.cursor or source.feed_url)) as ahead:
                for page, validators in ahead:
                    if result.pages >= page_limit:
                        # Give other sources a turn; this page is read again from the cursor next time.
                        result.status = "more"
                        break
                    ahead.fetch_next()  # the next page travels while this one is written
                    with engine.begin() as conn:
                        apply_page(conn, source, page, validators, own_url, result)
                        lease.renew(conn)
                    result.pages += 1
            if result.pages == 0 and fetch.last_url == resume_url and fetch.last_response is None:
                result.status = "not-modified"
    except SourceGone as exc:
        _record_failure(engine, source, config, result, "gone", _problem(source, str(exc), _GONE_FIX))
    except SourceBusy as exc:
        _record_failure(
            engine,
            source,
            config,
            result,
            "busy",
            _problem(source, str(exc), "Nothing to do: the harvest tries again later, as the server asked."),
            retry_after=exc.retry_after,
        )
    except FetchError as exc:
        _record_failure(engine, source, config, result, "error", _problem(source, exc.reason, exc.hint))
    except PageError as exc:
        _record_failure(
            engine,
            source,
            config,
            result,
            "error",
            _problem(source, f"a page of the feed is not a valid feed page ({exc})", _BAD_PAGE_FIX),
        )
    except Exception as exc:  # an adapter's bug must not stop the other sources
        log.exception("harvest of source %s failed", source_id)
        _record_failure(
            engine,
            source,
            config,
            result,
            "error",
            _problem(source, f"the harvest failed unexpectedly ({type(exc).__name__}: {exc})", _BUG_FIX),
        )
    else:
        _record_success(engine, source, config, result)
        if result.pages:
            place_waiting_rows(engine, config)
    return result


_geocoders: dict[tuple[Any, ...], geocode.Geocoder] = {}


def place_waiting_rows(engine: Engine, config: Mapping[str, Any]) -> int:
    """Ask the geocoders for the postcodes of search rows still without a place; returns how many.

    Runs after a harvest, outside its page transactions, since it may call a service; a
    service that cannot be asked now is asked again after the next harvest.
    """
    settings = tuple(
        config.get(key) for key in ("POSTCODE_CSV", "POSTCODES_API_URL", "ALLOW_PRIVATE_NETWORKS")
    )
    if settings not in _geocoders:  # one per process: a postcode file is read once, not per harvest
        _geocoders[settings] = geocode.from_config(config)
    try:
        with engine.begin() as conn:
            return search_index.geocode_missing(conn, _geocoders[settings], utcnow())
    except geocode.GeocoderUnavailable as exc:
        log.warning("postcodes left unplaced until the next harvest: %s", exc)
        return 0


_GONE_FIX = (
    "The source is stopped. Ask the publisher for the feed's new address and add it, "
    "or restart this source once the feed is back."
)
_BAD_PAGE_FIX = "Ask the publisher to check their feed against the Localfeed feed-page schema."
_BUG_FIX = "This is a fault in the aggregator, not the source: report it with this message."


def _problem(source: SourceRow, cause: str, fix: str) -> dict[str, str]:
    return {"thing": f"The feed {source.feed_url}", "cause": cause, "fix": fix, "at": utcnow().isoformat()}


def _record_success(
    engine: Engine, source: SourceRow, config: Mapping[str, Any], result: HarvestResult
) -> None:
    now = utcnow()
    wait = 0 if result.status == "more" else int(config.get("HARVEST_INTERVAL", 900))
    with engine.begin() as conn:
        conn.execute(
            update(sources)
            .where(sources.c.id == source.id)
            .values(
                last_harvest_at=now,
                last_success_at=now,
                last_status=result.status,
                last_error=None,
                failures=0,
                next_attempt_at=now + timedelta(seconds=wait),
            )
        )


def _record_failure(
    engine: Engine,
    source: SourceRow,
    config: Mapping[str, Any],
    result: HarvestResult,
    status: str,
    problem: dict[str, str],
    retry_after: float | None = None,
) -> None:
    """Record what went wrong on the source; the data stored from earlier harvests stays as it was."""
    now = utcnow()
    failures = source.failures + 1
    delay = backoff_delay(failures, config)
    if retry_after is not None:
        delay = min(max(retry_after, 1.0), float(config.get("HARVEST_BACKOFF_MAX", 6 * 3600)))
    values: dict[str, Any] = {
        "last_harvest_at": now,
        "last_status": status,
        "last_error": problem,
        "failures": failures,
        "next_attempt_at": now + timedelta(seconds=delay),
    }
    if status == "gone":
        values["state"] = "stopped"
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == source.id).values(**values))
    result.status = status
    result.message = f"{problem['thing']}: {problem['cause']}. {problem['fix']}"


# -- applying one page --------------------------------------------------------------------------


def _passes_through(upstream: list[dict[str, Any]], own_url: str) -> bool:
    return bool(own_url) and any(
        own_url in (via.rstrip("/") for via in entry.get("via", [])) for entry in upstream
    )


class _Copy(NamedTuple):
    """The columns of a copy the merge needs, read from the store or just written."""

    id: int
    source_id: int
    item_id: str
    data: dict[str, Any]
    upstream: list[dict[str, Any]]
    merged_id: int | None


_COPY = [copies.c[name] for name in _Copy._fields]


def apply_page(
    conn: Connection,
    source: SourceRow,
    page: Page,
    validators: tuple[str | None, str | None],
    own_url: str,
    result: HarvestResult,
) -> None:
    """Apply one page and its cursor; the caller's transaction makes it all-or-nothing.

    ``validators`` (ETag, Last-Modified) are kept with the cursor, for the next harvest's
    conditional request: :meth:`SourceFetch.validators_for` the cursor, as the page came.

    Statements are per page, not per item (bar refused items, which are rare), so a
    page of 500 costs about as much as a page of 5.
    """
    # Queue behind any other writer first (the counter row), so merges never interleave.
    next_change_numbers(conn, counter)
    latest = {change.id: change for change in page.changes}  # the last word on each id counts
    existing = _copies_of(conn, source.id, latest)
    now = utcnow()
    resolved: set[str] = set()  # refs whose earlier problems are gone
    refused: list[tuple[str, list[dict[str, str]], dict[str, Any] | None]] = []
    dropped: list[_Copy] = []
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    attached: list[_Copy] = []  # copy rows as they now stand, for the merge
    for change in latest.values():
        ref = change.ref or change.id
        data = dict(change.data) if change.data is not None else None
        upstream = (data.pop(PROVENANCE_KEY, None) or []) if data is not None else []
        if data is not None:
            normalise_activity_postcode(data)  # however the source spelt it, as every door does
        old = existing.get(change.id)
        if data is None or _passes_through(upstream, own_url):
            # Deleted at the source, or our own item coming back round: drop this source's copy.
            resolved |= {ref, change.id}
            if old is not None:
                dropped.append(old)
                result.deleted += 1
            continue
        if old is not None and old.data == data and old.upstream == upstream:
            # Unchanged: it passed validation when stored, so a re-harvest costs no checks or merge work.
            resolved |= {ref, change.id}
            continue
        if not is_valid_activity(data) or data.get("id") != change.id:
            refused.append((ref, _problems(change.id, data), data))
            if old is not None:
                # The source no longer vouches for the old version: it stops being shown too.
                dropped.append(old)
            result.quarantined += 1
            continue
        resolved |= {ref, change.id}
        values = {
            "data": data,
            "upstream": upstream,
            "last_verified": data.get("lastVerified"),
            "modified": data.get("dateModified"),
            "harvested_at": now,
        }
        if old is None:
            new_rows.append({"source_id": source.id, "item_id": change.id, **values})
        else:
            changed_rows.append({"b_copy": old.id, **{f"b_{name}": value for name, value in values.items()}})
            attached.append(old._replace(data=data, upstream=upstream))
        result.updated += 1
    refused += [
        (u.ref, [{"path": "$", "code": "unmapped", "message": u.reason}], None) for u in page.unmapped
    ]
    result.quarantined += len(page.unmapped)

    for chunk in chunks(resolved):
        conn.execute(
            delete(quarantine).where(quarantine.c.source_id == source.id, quarantine.c.item_ref.in_(chunk))
        )
    for ref, problems, data in refused:
        _quarantine(conn, source.id, ref, problems, data, now)
    for chunk in chunks(row.id for row in dropped):
        conn.execute(delete(copies).where(copies.c.id.in_(chunk)))
    if changed_rows:
        columns = ("data", "upstream", "last_verified", "modified", "harvested_at")
        conn.execute(
            update(copies)
            .where(copies.c.id == bindparam("b_copy"))
            .values({name: bindparam(f"b_{name}") for name in columns}),
            changed_rows,
        )
    if new_rows:
        # A plain many-row INSERT, then the ids: an ordered INSERT ... RETURNING runs row by row on SQLite.
        conn.execute(insert(copies), new_rows)
        new_ids = _copy_ids(conn, source.id, [row["item_id"] for row in new_rows])
        attached += [
            _Copy(new_ids[row["item_id"]], source.id, row["item_id"], row["data"], row["upstream"], None)
            for row in new_rows
        ]
    detached_from = [row.merged_id for row in dropped]
    if page.snapshot:
        detached_from += _drop_missing(conn, source.id, page, result)
    merge.attach(conn, attached, detached_from)

    etag, last_modified = validators
    conn.execute(
        update(sources)
        .where(sources.c.id == source.id)
        .values(cursor=page.cursor, etag=etag, last_modified=last_modified)
    )


def _copies_of(conn: Connection, source_id: int, item_ids: Iterable[str]) -> dict[str, _Copy]:
    found: dict[str, _Copy] = {}
    for chunk in chunks(item_ids):
        rows = conn.execute(
            select(*_COPY).where(copies.c.source_id == source_id, copies.c.item_id.in_(chunk))
        )
        found.update((row.item_id, _Copy(*row)) for row in rows)
    return found


def _copy_ids(conn: Connection, source_id: int, item_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunks(item_ids):
        found.update(
            conn.execute(
                select(copies.c.item_id, copies.c.id).where(
                    copies.c.source_id == source_id, copies.c.item_id.in_(chunk)
                )
            ).all()
        )
    return found


def _problems(item_id: str, data: dict[str, Any]) -> list[dict[str, str]]:
    """Why an item is refused: the contract's problems, and an id that contradicts the feed's."""
    problems = [p.to_dict() for p in validate_activity(data)]
    if data.get("id") != item_id:
        problems.append(
            {
                "path": "$.id",
                "code": "id-mismatch",
                "message": f"The feed item says its id is {item_id!r} but its data says {data.get('id')!r}; "
                "make them the same.",
            }
        )
    return problems


def _drop_missing(conn: Connection, source_id: int, page: Page, result: HarvestResult) -> list[int | None]:
    """A snapshot lists the whole set: copies and problems it no longer mentions are gone."""
    present = {change.id for change in page.changes}
    refs = present | {change.ref for change in page.changes} | {u.ref for u in page.unmapped}
    gone = [
        row
        for row in conn.execute(
            select(copies.c.id, copies.c.item_id, copies.c.merged_id).where(copies.c.source_id == source_id)
        )
        if row.item_id not in present
    ]
    if gone:
        conn.execute(delete(copies).where(copies.c.id.in_([row.id for row in gone])))
        result.deleted += len(gone)
    stale = [
        row.id
        for row in conn.execute(
            select(quarantine.c.id, quarantine.c.item_ref).where(quarantine.c.source_id == source_id)
        )
        if row.item_ref not in refs
    ]
    if stale:
        conn.execute(delete(quarantine).where(quarantine.c.id.in_(stale)))
    return [row.merged_id for row in gone]


def _quarantine(
    conn: Connection,
    source_id: int,
    ref: str,
    problems: list[dict[str, str]],
    data: dict[str, Any] | None,
    now: datetime,
) -> None:
    updated = conn.execute(
        update(quarantine)
        .where(quarantine.c.source_id == source_id, quarantine.c.item_ref == ref)
        .values(problems=problems, data=data, last_seen=now)
    )
    if updated.rowcount == 0:
        conn.execute(
            insert(quarantine).values(
                source_id=source_id, item_ref=ref, problems=problems, data=data, first_seen=now, last_seen=now
            )
        )


def due_sources(engine: Engine, now: datetime | None = None) -> list[int]:
    """Approved sources whose next attempt has come."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(sources.c.id, sources.c.next_attempt_at).where(sources.c.state == "approved")
        ).all()
    return [row.id for row in rows if row.next_attempt_at is None or row.next_attempt_at <= now]
