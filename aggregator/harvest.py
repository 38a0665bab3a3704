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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol
from urllib.parse import urljoin

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine

from aggregator import budget, geocode, merge, search_index
from aggregator.adapters import PROVENANCE_KEY, get_adapter
from aggregator.adapters.base import Change, Page, SourceBusy, SourceGone
from aggregator.adapters.mapping import keep_verification
from aggregator.authority import SourceAuthority, future_claim, origin_of
from aggregator.lease import LeaseLost, SourceLease, held
from aggregator.read_ahead import ReadAhead
from aggregator.store import chunks, copies, counter, init_store, quarantine, sources, tombstones
from federation.clock import utcnow
from federation.db import make_engine, next_change_numbers
from federation.fetch import AddressPolicy, Fetched, FetchError, GuardedClient
from schema import is_valid_activity, normalise_activity_postcode, outsized, validate_activity
from schema.rpde import PageError

log = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}


class SourceRow(Protocol):
    """The columns of a ``sources`` row the harvest reads: a ``select(sources)`` Row gives them."""

    @property
    def id(self) -> int: ...
    @property
    def url(self) -> str: ...
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
    @property
    def is_aggregator(self) -> bool: ...


def authority_of(source: SourceRow) -> SourceAuthority:
    """What ``source`` may speak for: its own site's ids, and relays if it is an aggregator."""
    return SourceAuthority.of((source.feed_url, source.url), relays=bool(source.is_aggregator))


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
    stale: int = 0  # changes older than what was held for their item, skipped
    message: str = ""


class LeftOrigin(FetchError):
    """A later page of a feed (a ``next`` link, or its redirect) is on another site than the source's."""


def left_home(url: str, asked: str | None = None) -> LeftOrigin:
    """Why the harvest stops: the feed leads to ``url``, off its site (from ``asked``, by a redirect)."""
    where = f"redirects {asked} to" if asked and asked != url else "links to"
    return LeftOrigin(
        asked or url,
        f"the feed {where} {url}, which is not on the feed's own site",
        "The harvest stopped there and kept what it had read. Ask the publisher to keep every page "
        "of the feed on its own site, or add the other site as a source of its own.",
    )


class SourceFetch:
    """The ``fetch(url)`` adapters call: guarded, conditional, kept home, within the harvest's budget.

    Conditional headers go only with the URL the stored validators belong to (the cursor,
    or the feed itself for formats without one), so a 304 means exactly "nothing new".

    A feed stays where it is: every URL asked for, and where any page but the feed's own
    address redirects to, must be on the source's site. Otherwise a ``next`` link could
    move the harvest to another server whose items would be stored as this source's.
    Each request is charged to the budget in force (:mod:`aggregator.budget`) and given
    no more time than the budget has left.
    """

    def __init__(
        self,
        client: GuardedClient,
        resume_url: str,
        etag: str | None,
        last_modified: str | None,
        *,
        home: SourceAuthority | None = None,
        feed_url: str | None = None,
    ):
        self.client = client
        self.resume_url = resume_url
        self.etag = etag
        self.last_modified = last_modified
        self.home = home
        self.feed_url = feed_url
        self.timeout = client.total_timeout
        self.last_url: str | None = None
        self.last_response: Fetched | None = None

    def __call__(self, url: str) -> Fetched | None:
        self._keep_home(url, url)
        budget.spend(pages=1)
        headers = {"Accept": "application/json, application/ld+json;q=0.9, */*;q=0.5"}
        if url == self.resume_url:
            if self.etag:
                headers["If-None-Match"] = self.etag
            if self.last_modified:
                headers["If-Modified-Since"] = self.last_modified
        response = self.client.get(url, headers=headers, total_timeout=budget.remaining_seconds(self.timeout))
        budget.spend(bytes=len(response.content))
        if url != self.feed_url:
            self._keep_home(url, response.url)
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

    def _keep_home(self, asked: str, url: str) -> None:
        if self.home is None or self.home.speaks_for(url):
            return
        raise left_home(url, asked)

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


# -- the job ------------------------------------------------------------------------------------


def harvest_source(source_id: int, app_config: Mapping[str, Any]) -> HarvestResult:
    """Harvest one approved source; safe to run as an rq job or in-process."""
    engine = engine_for(app_config["DATABASE_URL"])
    lease = SourceLease(engine, source_id, app_config)
    with held(lease) as got:
        if not got:
            return HarvestResult(source_id, "locked", message="Another harvest of this source is running.")
        return _harvest_held(engine, lease, source_id, app_config)


def _harvest_held(
    engine: Engine, lease: SourceLease, source_id: int, config: Mapping[str, Any]
) -> HarvestResult:
    with engine.connect() as conn:
        source = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    if source is None or source.state != "approved":
        state = "missing" if source is None else source.state
        return HarvestResult(source_id, "skipped", message=f"Source {source_id} is {state}, not approved.")

    result = HarvestResult(source_id, "ok")
    own_url = (config.get("PUBLIC_URL") or "").rstrip("/")
    page_limit = int(config.get("HARVEST_PAGE_LIMIT", 200))
    resume_url = source.cursor or source.feed_url
    stored_cursor = source.cursor
    authority = authority_of(source)
    try:
        adapter = get_adapter(source.kind)
        with guarded_client(config) as client, budget.in_force(budget.Budget.from_config(config)):
            fetch = SourceFetch(
                client,
                resume_url,
                source.etag,
                source.last_modified,
                home=authority,
                feed_url=source.feed_url,
            )
            pages = adapter.pages(fetch, source.feed_url, source.cursor)
            # The validators are read as each page arrives, before the next fetch replaces them.
            with ReadAhead(pages, lambda page: fetch.validators_for(page.cursor or source.feed_url)) as ahead:
                while (read := _read_page(ahead)) is not None:
                    page, validators = read
                    if result.pages >= page_limit:
                        # Give other sources a turn; this page is read again from the cursor next time.
                        result.status = "more"
                        break
                    if lease.lost:
                        raise LeaseLost(source_id)
                    ahead.fetch_next()  # the next page travels while this one is written
                    if _relays(page) and not authority.relays:
                        authority = _discover_aggregator(engine, client, source, authority)
                    away = _off_site(page, authority)
                    if away:  # apply what the page holds, but keep the cursor home
                        page.cursor, validators = stored_cursor, (None, None)
                    with engine.begin() as conn:
                        apply_page(conn, source, page, validators, own_url, result, authority=authority)
                        lease.renew(conn)
                    result.pages += 1
                    stored_cursor = page.cursor
                    if away:
                        raise left_home(away)
            if result.pages == 0 and fetch.last_url == resume_url and fetch.last_response is None:
                result.status = "not-modified"
    except budget.BudgetSpent as exc:
        _record_limited(engine, source, config, result, exc.reason)
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
    except UnreadableFeed as exc:
        cause = exc.__cause__
        log.warning("source %s sent a feed its adapter could not read", source_id, exc_info=cause)
        _record_failure(
            engine,
            source,
            config,
            result,
            "error",
            _problem(source, f"the feed could not be read ({_described(cause)})", _BAD_FEED_FIX),
        )
    except LeaseLost as exc:
        # Another harvest holds the source now and goes on from the stored cursor: nothing to record.
        result.status = "locked"
        result.message = str(exc)
        return result
    except Exception as exc:  # our own bug: it must not stop the other sources
        log.exception("harvest of source %s failed", source_id)
        _record_failure(
            engine,
            source,
            config,
            result,
            "error",
            _problem(source, f"the harvest failed unexpectedly ({_described(exc)})", _BUG_FIX),
        )
    else:
        _record_success(engine, source, config, result)
    if result.pages:
        place_waiting_rows(engine, config)
    return result


class UnreadableFeed(Exception):
    """An adapter failed on what the source sent (its ``__cause__``): the source's problem, not ours."""


# What a feed's content can make an adapter raise: the source's problem. Anything else
# (an assertion, a name error, a database error) is ours.
_CONTENT_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    OverflowError,
    UnicodeError,
    SyntaxError,  # lxml's XMLSyntaxError is one
)


def _read_page(ahead: ReadAhead[Page]) -> tuple[Page, Any] | None:
    """The next page from the adapter, None at the end; its failures on the content become UnreadableFeed."""
    try:
        return next(ahead)
    except StopIteration:
        return None
    except PageError:  # the feed's own kind of unreadable, with its own message
        raise
    except _CONTENT_ERRORS as exc:
        raise UnreadableFeed() from exc


def _described(exc: BaseException | None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:300] + "…"


def _off_site(page: Page, authority: SourceAuthority) -> str | None:
    """The page's cursor when it is a web address on another site (a ``next`` link leading away)."""
    cursor = page.cursor
    if cursor and origin_of(cursor) is not None and not authority.speaks_for(cursor):
        return cursor
    return None


def _relays(page: Page) -> bool:
    """Whether the page carries items relayed from elsewhere (with an aggregator's provenance)."""
    return any(change.data is not None and PROVENANCE_KEY in change.data for change in page.changes)


def _discover_aggregator(
    engine: Engine, client: GuardedClient, source: SourceRow, authority: SourceAuthority
) -> SourceAuthority:
    """Whether a source relaying items is an aggregator: it says so at ``/sources.json`` on its site.

    Asked once, when a source first relays; the answer is kept on the source (the operator can
    also set it). A source that is not an aggregator keeps its relayed items refused.
    """
    listing = urljoin(source.feed_url, "/sources.json")
    try:
        budget.spend(pages=1)
        answer = client.get(listing, headers={"Accept": "application/json"})
        document = answer.json() if answer.status == 200 else None
    except (FetchError, ValueError):
        return authority
    if not (isinstance(document, dict) and isinstance(document.get("sources"), list)):
        return authority
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == source.id).values(is_aggregator=True))
    return SourceAuthority(authority.origins, relays=True)


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
_BAD_FEED_FIX = (
    "Ask the publisher to check the feed with a validator for its format; the harvest tries again later "
    "and keeps everything read before."
)


def _problem(source: SourceRow, cause: str, fix: str) -> dict[str, str]:
    return {"thing": f"The feed {source.feed_url}", "cause": cause, "fix": fix, "at": utcnow().isoformat()}


def _record_success(
    engine: Engine,
    source: SourceRow,
    config: Mapping[str, Any],
    result: HarvestResult,
    problem: dict[str, str] | None = None,
) -> None:
    """Record a harvest that made progress; ``problem`` says why it stopped short, if it did."""
    now = utcnow()
    wait = 0 if result.status in ("more", "limited") else int(config.get("HARVEST_INTERVAL", 900))
    with engine.begin() as conn:
        conn.execute(
            update(sources)
            .where(sources.c.id == source.id)
            .values(
                last_harvest_at=now,
                last_success_at=now,
                last_status=result.status,
                last_error=problem,
                failures=0,
                next_attempt_at=now + timedelta(seconds=wait),
            )
        )


def _record_limited(
    engine: Engine, source: SourceRow, config: Mapping[str, Any], result: HarvestResult, reason: str
) -> None:
    """The job used up its budget: what it applied stays, with its cursor, and the reason is shown.

    With progress made, the next harvest comes at once and goes on from the cursor; without
    any, the source is retried with the usual backoff, since the same wall will be hit again.
    """
    problem = _problem(
        source,
        f"{reason}, so it stopped after {result.pages} page(s) and kept them",
        "Nothing to do if it happens once: the next harvest continues from there. If it repeats, "
        "ask the publisher for smaller pages, or raise the HARVEST_* limits for this aggregator.",
    )
    if not result.pages:
        _record_failure(engine, source, config, result, "limited", problem)
        return
    result.status, result.message = "limited", _told(problem)
    _record_success(engine, source, config, result, problem)


def _told(problem: dict[str, str]) -> str:
    return f"{problem['thing']}: {problem['cause']}. {problem['fix']}"


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
    result.status, result.message = status, _told(problem)


# -- applying one page --------------------------------------------------------------------------


def _passes_through(upstream: list[dict[str, Any]], own_url: str) -> bool:
    return bool(own_url) and any(
        own_url in (via.rstrip("/") for via in entry.get("via", [])) for entry in upstream
    )


class _Copy(NamedTuple):
    """A copy as the merge takes it: as it now stands, ``id`` None until a new one is written."""

    id: int | None
    source_id: int
    item_id: str
    data: dict[str, Any]
    upstream: list[dict[str, Any]]
    merged_id: int | None
    modified: str | None


class _Stored(NamedTuple):
    """What a page's first read learns of each stored copy: enough to tell whether a change is newer."""

    id: int
    merged_id: int | None
    modified: str | None


def apply_page(
    conn: Connection,
    source: SourceRow,
    page: Page,
    validators: tuple[str | None, str | None],
    own_url: str,
    result: HarvestResult,
    *,
    authority: SourceAuthority | None = None,
) -> None:
    """Apply one page and its cursor; the caller's transaction makes it all-or-nothing.

    ``validators`` (ETag, Last-Modified) are kept with the cursor, for the next harvest's
    conditional request: :meth:`SourceFetch.validators_for` the cursor, as the page came.
    ``authority`` is what the source may speak for (:func:`authority_of` it by default).

    Polled pages and pushed deliveries both come here, so one set of rules holds for both:
    a change older than what is held for its item (by the source's change marker) is
    skipped; an item of another origin, or with a date in the future, is refused.

    Statements are per page, not per item (bar refused items, which are rare), so a
    page of 500 costs about as much as a page of 5. The work follows the change: a change
    no newer than the stored copy costs a comparison of markers, and only the copies a newer
    change may replace are read whole, to see whether their content really changed.
    """
    authority = authority or authority_of(source)
    # Queue behind any other writer first (the counter row), so merges never interleave.
    next_change_numbers(conn, counter)
    latest = _newest(page.changes)
    stored = _stored_of(conn, source.id, latest)
    buried = _tombstones_of(conn, source.id, latest)
    newer = []
    for change in latest.values():
        held = stored.get(change.id)
        if _newer(change.modified, held.modified if held is not None else buried.get(change.id)):
            newer.append(change)
        else:
            result.stale += 1  # a late, older change (a retried push), or one already applied
    contents = _contents_of(conn, [stored[c.id].id for c in newer if c.data is not None and c.id in stored])
    now = utcnow()
    resolved: set[str] = set()  # refs whose earlier problems are gone
    refused: list[tuple[str, list[dict[str, str]], dict[str, Any] | None]] = []
    dropped: list[_Stored] = []
    marked: list[dict[str, Any]] = []  # unchanged copies whose change marker moved on
    buried_now: dict[str, str] = {}  # deletions, by their change marker
    attached: list[_Copy] = []  # new and changed copies as they now stand, for the merge
    for change in newer:
        ref = change.ref or change.id
        old = stored.get(change.id)
        before = contents.get(old.id) if old is not None else None
        marker = None if change.modified is None else str(change.modified)
        data = dict(change.data) if change.data is not None else None
        upstream = (data.pop(PROVENANCE_KEY, None) or []) if data is not None else []
        if data is not None:
            normalise_activity_postcode(data)  # however the source spelt it, as every door does
            keep_verification(data, before[0] if before is not None else None)  # undated: first seen
        if data is None or _passes_through(upstream, own_url):
            # Deleted at the source, or our own item coming back round: drop this source's copy.
            resolved |= {ref, change.id}
            if old is not None:
                dropped.append(old)
                result.deleted += 1
            if marker is not None:
                buried_now[change.id] = marker
            continue
        if old is not None and before == (data, upstream):
            # Unchanged: it passed validation when stored, so a re-harvest costs no checks or merge work.
            resolved |= {ref, change.id}
            if marker is not None and marker != old.modified:
                marked.append({"b_copy": old.id, "b_modified": marker})
            continue
        problems = _refusals(change.id, data, upstream, authority, now)
        if problems:
            refused.append((ref, problems, data))
            if old is not None:
                # The source no longer vouches for the old version: it stops being shown too.
                dropped.append(old)
                if marker is not None:
                    buried_now[change.id] = marker
            result.quarantined += 1
            continue
        resolved |= {ref, change.id}
        modified = marker if marker is not None else data.get("dateModified")
        attached.append(
            _Copy(
                old.id if old is not None else None,
                source.id,
                change.id,
                data,
                upstream,
                old.merged_id if old is not None else None,
                modified,
            )
        )
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
    revived = [copy.item_id for copy in attached if copy.id is None and copy.item_id in buried]
    _bury(conn, source.id, buried_now, revived)
    for chunk in chunks(row.id for row in dropped):
        conn.execute(delete(copies).where(copies.c.id.in_(chunk)))
    detached_from = [row.merged_id for row in dropped]
    if page.snapshot:
        detached_from += _drop_missing(conn, source.id, page, result)
    if marked:
        conn.execute(
            update(copies).where(copies.c.id == bindparam("b_copy")).values(modified=bindparam("b_modified")),
            marked,
        )
    # Each copy is written once, already in its merged item: placed first, then stored.
    placement = merge.place(conn, attached)
    _write_copies(conn, attached, placement, now)
    merge.settle(conn, placement, detached_from)

    etag, last_modified = validators
    conn.execute(
        update(sources)
        .where(sources.c.id == source.id)
        .values(cursor=page.cursor, etag=etag, last_modified=last_modified)
    )


def _write_copies(conn: Connection, attached: list[_Copy], placement: merge.Placement, now: datetime) -> None:
    """Store the new and changed copies, each with its merged item: one statement for each kind."""

    def values(copy: _Copy) -> dict[str, Any]:
        return {
            "data": copy.data,
            "upstream": copy.upstream,
            "last_verified": copy.data.get("lastVerified"),
            "modified": copy.modified,
            "harvested_at": now,
            "merged_id": placement.target_of(copy),
        }

    changed = [
        {"b_copy": copy.id, **{f"b_{name}": value for name, value in values(copy).items()}}
        for copy in attached
        if copy.id is not None
    ]
    if changed:
        columns = ("data", "upstream", "last_verified", "modified", "harvested_at", "merged_id")
        conn.execute(
            update(copies)
            .where(copies.c.id == bindparam("b_copy"))
            .values({name: bindparam(f"b_{name}") for name in columns}),
            changed,
        )
    new = [
        {"source_id": copy.source_id, "item_id": copy.item_id, **values(copy)}
        for copy in attached
        if copy.id is None
    ]
    if new:
        conn.execute(insert(copies), new)


def _marker(value: int | str) -> int | str:
    text = str(value)
    return int(text) if text.isdigit() else text


def _newer(change: int | str | None, held: str | None) -> bool:
    """Whether a change with marker ``change`` is newer than the held marker ``held``.

    RPDE markers are integers (compared as numbers) or strings; without both, or with
    markers of different kinds (a format change), the change is applied as before.
    """
    if change is None or held is None:
        return True
    new, old = _marker(change), _marker(held)
    if type(new) is not type(old):
        return True
    return new > old  # type: ignore[operator]  # both int or both str, checked above


def _newest(changes: Iterable[Change]) -> dict[str, Change]:
    """One change per id: the one with the newest marker, or the last one listed."""
    latest: dict[str, Change] = {}
    for change in changes:
        held = latest.get(change.id)
        if held is None or held.modified is None or _newer(change.modified, str(held.modified)):
            latest[change.id] = change
    return latest


def _refusals(
    item_id: str,
    data: dict[str, Any],
    upstream: list[dict[str, Any]],
    authority: SourceAuthority,
    now: datetime,
) -> list[dict[str, str]]:
    """Why an item cannot be taken from this source: the contract, its origin, its dates; [] if it can."""
    # The fast check bounds nesting and size before reading further, so it goes first; an item it
    # refuses is measured again, and one too deep or too large is refused for that alone: more
    # is an attack on the explainer's time.
    if is_valid_activity(data) and data.get("id") == item_id:
        problems = []
    else:
        too_big = outsized(data)
        if too_big is not None:
            return [too_big.to_dict()]
        problems = _problems(item_id, data)
    foreign = authority.refusal(item_id, upstream)
    if foreign:
        problems.append({"path": "$.id", "code": "foreign-origin", "message": f"{foreign}."})
    future = future_claim(data, now)
    if future:
        problems.append({"path": "$", "code": "future-date", "message": f"{future}."})
    return problems


def _tombstones_of(conn: Connection, source_id: int, item_ids: Iterable[str]) -> dict[str, str]:
    return _by_item(conn, tombstones.c.modified, source_id, item_ids)


def _bury(conn: Connection, source_id: int, deleted: Mapping[str, str], revived: list[str]) -> None:
    """Keep the marker of each deletion (replacing an older one); forget those of items back again."""
    for chunk in chunks([*deleted, *revived]):
        conn.execute(
            delete(tombstones).where(tombstones.c.source_id == source_id, tombstones.c.item_id.in_(chunk))
        )
    if deleted:
        conn.execute(
            insert(tombstones),
            [{"source_id": source_id, "item_id": item_id, "modified": m} for item_id, m in deleted.items()],
        )


def _stored_of(conn: Connection, source_id: int, item_ids: Iterable[str]) -> dict[str, _Stored]:
    """The source's stored copies among ``item_ids``, by item id: their ids and markers, not their data."""
    found: dict[str, _Stored] = {}
    c = copies.c
    for chunk in chunks(item_ids):
        rows = conn.execute(
            select(c.item_id, c.id, c.merged_id, c.modified).where(
                c.source_id == source_id, c.item_id.in_(chunk)
            )
        )
        found.update((row.item_id, _Stored(row.id, row.merged_id, row.modified)) for row in rows)
    return found


def _contents_of(
    conn: Connection, copy_ids: list[int]
) -> dict[int, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``copy id -> (data, upstream)`` for the stored copies a newer change may replace."""
    found: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for chunk in chunks(copy_ids):
        rows = conn.execute(
            select(copies.c.id, copies.c.data, copies.c.upstream).where(copies.c.id.in_(chunk))
        )
        found.update((row.id, (row.data, row.upstream)) for row in rows)
    return found


def _by_item(conn: Connection, column: Any, source_id: int, item_ids: Iterable[str]) -> dict[str, Any]:
    """``item_id -> column`` for the source's rows (of ``column``'s table) among ``item_ids``."""
    table = column.table
    found: dict[str, Any] = {}
    for chunk in chunks(item_ids):
        mine = (table.c.source_id == source_id) & table.c.item_id.in_(chunk)
        found.update(conn.execute(select(table.c.item_id, column).where(mine)).all())
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
    """Keep a refused item with its reasons: a sample of it, never more than a few KB, whatever was sent."""
    ref = _clipped(ref, QUARANTINE_TEXT)
    problems = [
        {key: _clipped(str(value), QUARANTINE_TEXT) for key, value in problem.items()}
        for problem in problems[:QUARANTINE_PROBLEMS]
    ]
    data = _sample(data) if data is not None else None
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


# What quarantine keeps of a refused item: enough for a person to recognise it and see why.
QUARANTINE_TEXT = 300  # characters of any one string
QUARANTINE_PROBLEMS = 20
QUARANTINE_BYTES = 4_000  # of the item's data, as JSON


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sample(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` cut to at most QUARANTINE_BYTES: long strings clipped, then deep or long parts dropped."""

    def cut(value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return _clipped(value, QUARANTINE_TEXT)
        if isinstance(value, dict):
            if depth > 4:
                return "…"
            return {_clipped(str(k), 60): cut(v, depth + 1) for k, v in list(value.items())[:30]}
        if isinstance(value, list):
            return "…" if depth > 4 else [cut(v, depth + 1) for v in value[:10]]
        return value

    sample = cut(data, 0)
    if len(orjson.dumps(sample)) <= QUARANTINE_BYTES:
        return sample
    # Still too big: keep what names the item, and say the rest was left out.
    named = {key: sample[key] for key in ("id", "name", "type") if isinstance(sample.get(key), str)}
    return {**named, "localfeed:omitted": f"the rest of the item was over {QUARANTINE_BYTES} bytes"}


def due_sources(engine: Engine, now: datetime | None = None) -> list[int]:
    """Approved sources whose next attempt has come."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(sources.c.id, sources.c.next_attempt_at).where(sources.c.state == "approved")
        ).all()
    return [row.id for row in rows if row.next_attempt_at is None or row.next_attempt_at <= now]
