"""Finding a source's feed from the address someone gave, within a time limit, as a job.

A publisher's home page is a stranger's server: it may answer slowly, link to feeds that
answer slowly, or never answer. So finding its feed never runs in an operator's web
request. The request stores the source at once in the state "discovering", with
``sources.discovery`` saying what the operator decided (the state to take once the feed is
found); :func:`run_discovery`, an rq job or an in-process one (``aggregator.jobs.enqueue``),
looks for the feed under its own :class:`~aggregator.budget.Budget` and records the outcome:
the feed, its kind and its name, then harvesting starts if the source is approved; or the
state "no-feed" with the reason and the fix in ``last_error``, for the source's page.

:func:`find_feed` is the same search, waited for: the command line's ``add-source`` uses it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from aggregator import budget
from aggregator.adapters import ADAPTERS, detect
from aggregator.harvest import engine_for, guarded_client
from aggregator.jobs import enqueue, enqueue_harvest
from aggregator.store import sources
from aggregator.subscriptions import subscribe_source
from federation.clock import utcnow
from federation.fetch import Fetched, FetchError, GuardedClient

log = logging.getLogger(__name__)

# Seconds one search for a feed may take, home page and candidate feeds together
# (DISCOVERY_TIME_LIMIT); each request is also held to FETCH_TIMEOUT.
DISCOVERY_TIME_LIMIT = 60.0
# Feeds a home page may name that are tried; more are ignored, so a page cannot make us fetch the web.
_DISCOVERY_CANDIDATES = 6
# A search running this much longer than its time limit has died with its worker: it may be asked again.
_STALLED_AFTER = timedelta(seconds=60)

DISCOVERING, NO_FEED = "discovering", "no-feed"
# The states of a source whose feed is not known yet: it stores the address given.
FEED_UNKNOWN = (DISCOVERING, NO_FEED)


class DiscoveryError(ValueError):
    """No feed could be found at the address given: ``cause`` says why, ``fix`` what to try."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}. {fix}")
        self.cause = cause
        self.fix = fix


@dataclass(frozen=True)
class Discovered:
    feed_url: str
    kind: str
    name: str


class _FeedLinks(HTMLParser):
    """Collects what a publisher's home page says about its feeds: alternate links and JSON-LD."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.title = ""
        self._json_ld: list[str] = []
        self._in_json_ld = False
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if (
            tag == "link"
            and "alternate" in attributes.get("rel", "").lower().split()
            and attributes.get("href")
        ):
            self.links.append(attributes["href"])
        elif tag == "script" and attributes.get("type", "").lower() == "application/ld+json":
            self._in_json_ld = True
            self._json_ld.append("")
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_json_ld = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_json_ld:
            self._json_ld[-1] += data
        elif self._in_title:
            self.title += data

    def datasets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for text in self._json_ld:
            try:
                document = json.loads(text)
            except ValueError:
                continue
            stack = document if isinstance(document, list) else [document]
            while stack:
                node = stack.pop(0)
                if not isinstance(node, dict):
                    continue
                stack.extend(node.get("@graph", []))
                types = node.get("@type")
                if types == "Dataset" or (isinstance(types, list) and "Dataset" in types):
                    found.append(node)
        return found


def _distribution_urls(dataset: Mapping[str, Any]) -> list[str]:
    distribution = dataset.get("distribution") or []
    if isinstance(distribution, dict):
        distribution = [distribution]
    return [url for d in distribution if isinstance(d, dict) and (url := d.get("contentUrl") or d.get("url"))]


def discover(client: GuardedClient, url: str) -> Discovered:
    """The feed at ``url``: the URL itself if it is a feed, else the best feed its page links to.

    Our own RPDE format is preferred over the others, as it carries everything. Under a
    budget in force (:func:`find_feed`) each request gets only the time left, and the
    search raises :class:`~aggregator.budget.BudgetSpent` once there is none.
    """
    fetched = _get(client, url)
    kind = detect(fetched.content_type, fetched.content)
    if kind is not None:
        return Discovered(fetched.url, kind, "")
    page = _FeedLinks()
    page.feed(fetched.text)
    name = page.title.strip()
    candidates: list[str] = []
    for dataset in page.datasets():
        name = str(dataset.get("name") or name)
        candidates += _distribution_urls(dataset)
    candidates += page.links
    candidates = list(dict.fromkeys(urljoin(fetched.url, c) for c in candidates))[:_DISCOVERY_CANDIDATES]
    if not candidates:
        raise DiscoveryError(
            f"{url} is neither a feed we can read nor a page that links to one (no JSON-LD Dataset "
            'distribution and no <link rel="alternate">)',
            "Give the feed's own address instead.",
        )
    rank = {kind: position for position, kind in enumerate(ADAPTERS)}
    found: list[Discovered] = []
    for candidate in candidates:
        try:
            response = _get(client, candidate)
        except DiscoveryError:
            continue
        kind = detect(response.content_type, response.content)
        if kind is not None:
            found.append(Discovered(response.url, kind, name))
            if rank[kind] == 0:
                break  # nothing can beat it
    if not found:
        raise DiscoveryError(
            f"{url} links to {len(candidates)} feed(s) ({', '.join(candidates)}) but none is in a format "
            f"this aggregator reads ({', '.join(ADAPTERS)})",
            "Give the address of a feed in one of those formats, or ask the publisher to offer one.",
        )
    return min(found, key=lambda d: rank[d.kind])


def _get(client: GuardedClient, url: str) -> Fetched:
    budget.spend(pages=1)  # out of time: stop here rather than start another request
    try:
        response = client.get(url, total_timeout=budget.remaining_seconds(client.total_timeout))
    except FetchError as exc:
        budget.spend()  # a request cut short by the search's time limit: that limit is the reason
        cause = f"{exc.url} could not be fetched: {exc.reason}"
        raise DiscoveryError(cause, exc.hint or "Check the address.") from None
    budget.spend(bytes=len(response.content))
    if response.status >= 400:
        raise DiscoveryError(f"{url} answered HTTP {response.status}", "Check the address.")
    return response


def time_limit(config: Mapping[str, Any]) -> float:
    """Seconds one search for a feed may take (``DISCOVERY_TIME_LIMIT``)."""
    return float(config.get("DISCOVERY_TIME_LIMIT", DISCOVERY_TIME_LIMIT))


def find_feed(url: str, config: Mapping[str, Any]) -> Discovered:
    """:func:`discover` with the operator's fetch policy, ended at its time limit with a reason."""
    seconds = time_limit(config)
    limits = budget.Budget(seconds=seconds, pages=_DISCOVERY_CANDIDATES + 1)
    spoken = f"{seconds:g} second{'' if seconds == 1 else 's'}"
    with guarded_client(config) as client, budget.in_force(limits):
        try:
            return discover(client, url)
        except budget.BudgetSpent:
            raise DiscoveryError(
                f"the search stopped at its time limit of {spoken}, as {url} (or a feed it "
                "links to) answered too slowly",
                "Check that the address opens in a browser, then find the feed again later; or give "
                "the feed's own address.",
            ) from None


# -- as a job, for a stored source ----------------------------------------------------------------


def start_discovery(
    engine: Engine, source_id: int, then: str, config: Mapping[str, Any], callback_base: str
) -> Any:
    """Mark the source "discovering" and queue the job that finds its feed; returns the job.

    ``then`` is the state the source takes once its feed is found ("approved" starts the
    harvest). ``config`` is ``settings.job_config(app)``; ``callback_base`` is this
    aggregator's public address, for the WebSub subscription that follows an approval.
    A new token makes any earlier search of this source's outcome stale, so only the
    latest one asked for is recorded.
    """
    token = uuid.uuid4().hex
    with engine.begin() as conn:
        conn.execute(
            update(sources)
            .where(sources.c.id == source_id)
            .values(
                state=DISCOVERING,
                discovery={"then": then, "since": utcnow().isoformat(), "job": token},
                last_error=None,
            )
        )
    return enqueue(run_discovery, source_id, token, dict(config), callback_base, config=config)


def run_discovery(source_id: int, token: str, config: Mapping[str, Any], callback_base: str) -> str:
    """The job: find the source's feed and record the outcome; returns it in a few words.

    Whatever happens, the source leaves "discovering": with its feed, or as "no-feed" with
    the reason, so a page never shows "finding the feed…" for a search that ended.
    """
    engine = engine_for(config["DATABASE_URL"])
    with engine.connect() as conn:
        row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    if row is None or not _asked(row, token):
        return "superseded"  # removed, or asked again since: the later search records its outcome
    try:
        found = find_feed(row.url, config)
    except DiscoveryError as exc:
        return _failed(engine, source_id, token, row.url, exc.cause, exc.fix)
    except Exception as exc:  # a job has no caller to tell: the source's page does
        log.exception("finding the feed of source %s failed", source_id)
        return _failed(
            engine, source_id, token, row.url, f"an unexpected error stopped the search ({exc})",
            "Find the feed again; if it happens again, give the feed's own address and its format.",
        )  # fmt: skip
    return _found(engine, source_id, token, found, config, callback_base)


def _asked(row: Any, token: str) -> bool:
    return row.state == DISCOVERING and (row.discovery or {}).get("job") == token


def _found(
    engine: Engine,
    source_id: int,
    token: str,
    found: Discovered,
    config: Mapping[str, Any],
    callback_base: str,
) -> str:
    with engine.begin() as conn:
        row = conn.execute(select(sources).where(sources.c.id == source_id).with_for_update()).first()
        if row is None or not _asked(row, token):
            return "superseded"
        then = row.discovery["then"]
        duplicate = conn.execute(
            select(sources.c.id, sources.c.name).where(
                sources.c.feed_url == found.feed_url, sources.c.id != source_id
            )
        ).first()
        if duplicate is None:
            values: dict[str, Any] = {
                "feed_url": found.feed_url,
                "kind": found.kind,
                "state": then,
                "discovery": None,
                "last_error": None,
            }
            if row.name in ("", row.url):  # nobody named it: the feed's publisher does
                values["name"] = found.name or found.feed_url
            if (row.feed_url, row.kind) != (found.feed_url, found.kind):
                # Another feed: its pages start from the beginning.
                values.update(cursor=None, etag=None, last_modified=None, failures=0, next_attempt_at=None)
            conn.execute(update(sources).where(sources.c.id == source_id).values(**values))
    if duplicate is not None:
        return _failed(
            engine, source_id, token, row.url,
            f"its feed {found.feed_url} is already followed as source {duplicate.id} ({duplicate.name})",
            "Remove this one, and change that one instead.",
        )  # fmt: skip
    if then == "approved":
        enqueue_harvest(source_id, config)
        enqueue(subscribe_source, source_id, dict(config), callback_base, config=config)
    return f"found {found.kind} feed {found.feed_url}"


def _failed(engine: Engine, source_id: int, token: str, url: str, cause: str, fix: str) -> str:
    problem = {"thing": f"Finding the feed at {url}", "cause": cause, "fix": fix, "at": utcnow().isoformat()}
    with engine.begin() as conn:
        row = conn.execute(select(sources).where(sources.c.id == source_id).with_for_update()).first()
        if row is None or not _asked(row, token):
            return "superseded"
        conn.execute(
            update(sources).where(sources.c.id == source_id).values(state=NO_FEED, last_error=problem)
        )
    return f"no feed: {cause}"


def searching(row: Any, config: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any] | None:
    """What a page says of the search for the source's feed, or None when its feed is known.

    ``then`` is the state it takes once found; ``stalled`` is true when a search has run well
    past its time limit (its worker was stopped), so the operator may ask again.
    """
    if row.state not in FEED_UNKNOWN or not row.discovery:
        return None
    since = datetime.fromisoformat(row.discovery["since"])
    overdue = since + timedelta(seconds=time_limit(config)) + _STALLED_AFTER
    return {
        "then": row.discovery["then"],
        "since": row.discovery["since"],
        "stalled": row.state == DISCOVERING and (now or utcnow()) > overdue,
    }


def state_when_found(row: Any) -> str | None:
    """The state a source without its feed yet takes once the feed is found; None for any other source."""
    return (row.discovery or {}).get("then") if row.state in FEED_UNKNOWN else None


def awaiting_approval(row: Any) -> bool:
    """Pending, or to be pending once its feed is found: nobody has approved it yet, so not public."""
    return row.state == "pending" or state_when_found(row) == "pending"
