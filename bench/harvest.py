"""Harvest throughput against the floor: end to end >= 0.6x the floor on SQLite, >= 0.4x on PostgreSQL.

One run, same bytes, on SQLite and on PostgreSQL:

- end to end: P real publisher apps on loopback HTTP, one real ``rq worker`` process on
  real Redis (a queue of its own), harvest jobs queued as the aggregator queues them;
- the floor: the pages the harvest fetched, read with orjson, each item mapped from its
  OpenActive form and checked with the compiled JSON Schema, then an ``executemany`` upsert
  of (id, modified, json) into a table of its own, one transaction a page: the least work
  that stores the same thing, with the database's plain driver (sqlite3, psycopg);
- bare loop: every page fetched first, then only parse + validate + upsert, timed, through
  the harvest's own adapter and page-applying code (no HTTP, no jobs, no lease);
- naive: the same bytes parsed with the standard library, each item checked with
  jsonschema alone and stored in a transaction of its own;
- the ``openactive`` client (OpenActive's own, from PyPI) walking the same feeds over HTTP:
  fetch and parse only, nothing stored (once, whatever the database).

Then a re-harvest with 0% and 1% of the items changed at the publishers: its time and
the HTTP requests the publishers answered (counted by a WSGI middleware), to show the
cost follows the changes, not the size.

Run: .venv/bin/python bench/harvest.py [--publishers 6 --activities 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
from jsonschema import Draft202012Validator, FormatChecker
from rq.job import Job
from sqlalchemy import func, select

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import create_app
from aggregator.adapters import localfeed
from aggregator.adapters.base import Change, Page
from aggregator.harvest import HarvestResult, SourceFetch, apply_page, engine_for, guarded_client
from aggregator.jobs import enqueue_harvest
from aggregator.settings import job_config
from aggregator.sources import add_source
from aggregator.store import copies, quarantine, sources
from bench.common import (
    REDIS_URL,
    RESULTS,
    CountingMiddleware,
    LoopbackServer,
    fresh_postgres,
    postgres_available,
    redis_available,
    rq_worker,
    stopwatch,
    table,
    write_results,
)
from bench.network import Publisher, published, publisher_network
from federation.fetch import Fetched
from publisher import create_app as create_publisher
from publisher.extensions import get_store
from schema.openactive import from_openactive
from schema.resources import shared
from schema.validation import ACTIVITY_SCHEMA, matches_schema

BUDGET_ITEMS_PER_SECOND = 10_000
BUDGET_BARE_RATIO = 0.5  # within 2x of the bare loop
# Issue 21: end to end against the floor, by database.
BUDGET_FLOOR_RATIO = {"sqlite": 0.6, "postgresql": 0.4}
JOB_DEADLINE = 1800.0


# -- the publishers ---------------------------------------------------------------------------


@dataclass
class LivePublisher:
    network: Publisher
    server: LoopbackServer
    counter: CountingMiddleware
    app: Any
    slugs: list[str] = field(default_factory=list)

    @property
    def feed_url(self) -> str:
        return f"{self.server.url}/feeds/activities"


def start_publishers(network: list[Publisher], workdir: Path) -> list[LivePublisher]:
    """One publisher app per umbrella body, each with its own SQLite store, on a loopback port."""
    live = []
    for publisher in network:
        app = create_publisher(
            {
                "INSTANCE_PATH": str(workdir / publisher.slug),
                "SECRET_KEY": "bench",
                "RATELIMIT_ENABLED": False,
                "ALLOW_PRIVATE_NETWORKS": True,
            }
        )
        counter = CountingMiddleware(app.wsgi_app)
        app.wsgi_app = counter  # type: ignore[method-assign]  # Flask's documented way to add middleware
        server = LoopbackServer(app)
        entry = LivePublisher(publisher, server, counter, app)
        store = get_store_of(app)
        group = store.add_group(publisher.name, publisher.slug)
        for doc in published(publisher, server.url):
            slug = doc["id"].rsplit("/", 1)[1]
            store.create_activity(group.id, slug, doc)
            entry.slugs.append(slug)
        live.append(entry)
    return live


def get_store_of(app: Any) -> Any:
    with app.app_context():
        return get_store()


def change_some(publishers: list[LivePublisher], share: float, rng: random.Random) -> int:
    """Edit ``share`` of all activities through the publisher's store, as an editor's save would."""
    total = sum(len(p.slugs) for p in publishers)
    wanted = math.ceil(total * share)
    chosen = rng.sample([(p, slug) for p in publishers for slug in p.slugs], wanted)
    for publisher, slug in chosen:
        store = get_store_of(publisher.app)
        current = store.get_activity(slug)
        doc = {**current.data, "name": current.data["name"][:100] + f" ({rng.randint(1, 9999)})"}
        store.replace_activity(slug, doc)
    return wanted


# -- the aggregator, end to end -----------------------------------------------------------------


def aggregator_config(database_url: str, queue: str) -> dict[str, Any]:
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "RQ_QUEUE": queue,
            "SECRET_KEY": "bench",
            "ALLOW_PRIVATE_NETWORKS": True,
            "RATELIMIT_ENABLED": False,
            "HARVEST_PAGE_LIMIT": 100_000,  # one job walks its whole feed: the time is the harvest's
            # The web process's hub thread (republishing merged changes) is not the harvest; the
            # bare and naive loops do without it too.
            "HUB_WORKER": False,
        }
    )
    return job_config(app)


def follow_all(config: dict[str, Any], feeds: list[tuple[str, str, str]]) -> list[int]:
    """Add each (site URL, feed URL, name) as an approved source of the aggregator; their ids."""
    engine = engine_for(config["DATABASE_URL"])
    return [
        add_source(engine, site, feed_url=url, kind=localfeed.KIND, name=n, state="approved", config=config)
        for site, url, n in feeds
    ]


def feeds_of(publishers: list[LivePublisher]) -> list[tuple[str, str, str]]:
    return [(p.server.url, p.feed_url, p.network.name) for p in publishers]


def run_jobs(config: dict[str, Any], source_ids: list[int]) -> tuple[float, list[Job]]:
    """Queue one harvest per source and wait for the workers to finish them all; (seconds, jobs).

    Raises if a job failed or a harvest did not succeed (a source locked by another holder
    included), so a figure is only ever of a harvest that stored everything.
    """
    with stopwatch() as elapsed:
        jobs = [enqueue_harvest(source_id, config) for source_id in source_ids]
        pending = list(jobs)
        while pending:
            if elapsed() > JOB_DEADLINE:
                raise RuntimeError(f"harvest jobs still pending after {JOB_DEADLINE:.0f} s")
            for job in list(pending):
                status = job.get_status(refresh=True)
                if status == "finished":
                    pending.remove(job)
                elif status in ("failed", "stopped", "canceled"):
                    result = job.latest_result()
                    raise RuntimeError(f"harvest job {job.id} {status}: {result and result.exc_string}")
            time.sleep(0.005)
    bad = [r for r in results_of(jobs) if r.status not in ("ok", "not-modified")]
    if bad:
        raise RuntimeError(f"harvests did not succeed: {bad}")
    return elapsed(), jobs


def results_of(jobs: list[Job]) -> list[HarvestResult]:
    return [cast(HarvestResult, job.return_value()) for job in jobs]


def counts(database_url: str) -> tuple[int, int]:
    """(copies stored, items quarantined)."""
    with engine_for(database_url).connect() as conn:
        stored = conn.execute(select(func.count()).select_from(copies)).scalar_one()
        bad = conn.execute(select(func.count()).select_from(quarantine)).scalar_one()
    return stored, bad


# -- the same bytes without HTTP or jobs ----------------------------------------------------------


class Replay:
    """A client that answers each URL with the response recorded for it: the bytes, no network."""

    def __init__(self, recorded: dict[str, Fetched]):
        self.recorded = recorded
        self.total_timeout = 30.0

    def get(self, url: str, headers: Any = None, **_options: Any) -> Fetched:
        return self.recorded[url]


def record_pages(
    config: dict[str, Any], publishers: list[LivePublisher]
) -> list[tuple[str, dict[str, Fetched]]]:
    """Walk each feed once over HTTP with the harvest's own client and keep every response."""
    recorded = []
    with guarded_client(config) as client:
        for publisher in publishers:
            responses: dict[str, Fetched] = {}

            def keep(url: str, responses: dict[str, Fetched] = responses) -> Fetched:
                responses[url] = client.get(url)
                return responses[url]

            for _page in localfeed.pages(keep, publisher.feed_url, None):
                pass
            recorded.append((publisher.feed_url, responses))
    return recorded


def bare_loop(
    database_url: str, recorded: list[tuple[str, dict[str, Fetched]]], source_ids: list[int]
) -> float:
    """Parse + validate + upsert every recorded page with the harvest's own code; seconds taken."""
    engine = engine_for(database_url)
    rows = _source_rows(engine, source_ids)
    with stopwatch() as elapsed:
        for (feed_url, responses), source in zip(recorded, rows, strict=True):
            fetch = SourceFetch(Replay(responses), feed_url, None, None)  # type: ignore[arg-type]
            result = HarvestResult(source.id, "ok")
            for page in localfeed.pages(fetch, feed_url, None):
                with engine.begin() as conn:
                    apply_page(conn, source, page, fetch.validators_for(page.cursor or feed_url), "", result)
    return elapsed()


def naive_loop(
    database_url: str, recorded: list[tuple[str, dict[str, Fetched]]], source_ids: list[int], limit: int
) -> tuple[float, int]:
    """The baseline: stdlib JSON, jsonschema alone, one transaction per item; (seconds, items)."""
    engine = engine_for(database_url)
    rows = _source_rows(engine, source_ids)
    validator = Draft202012Validator(shared("activity.schema.json"), format_checker=FormatChecker())
    done = 0
    with stopwatch() as elapsed:
        for (_, responses), source in zip(recorded, rows, strict=True):
            result = HarvestResult(source.id, "ok")
            for response in responses.values():
                for item in json.loads(response.content)["items"]:
                    if done >= limit:
                        return elapsed(), done
                    data = from_openactive(item["data"]) if item["state"] == "updated" else None
                    if data is not None and not validator.is_valid(data):
                        continue
                    with engine.begin() as conn:
                        page = Page([Change(item["id"], data)])
                        apply_page(conn, source, page, (None, None), "", result)
                    done += 1
    return elapsed(), done


# -- the floor, and OpenActive's own client ------------------------------------------------------

FLOOR_TABLE = "CREATE TABLE floor_items (id TEXT PRIMARY KEY, modified TEXT NOT NULL, json {json})"
FLOOR_UPSERT = (
    "INSERT INTO floor_items (id, modified, json) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, json = excluded.json"
)


def floor_rows(content: bytes) -> list[tuple[str, str, str | None]]:
    """One page's rows as the floor stores them: (id, modified, the activity as JSON; None if deleted).

    Each item is mapped from its OpenActive form with the contract's one mapping (the
    compiled schema describes the activity, not the feed's form) and checked with the
    compiled schema; an item that fails it is left out, as the harvest would quarantine it.
    """
    rows: list[tuple[str, str, str | None]] = []
    for item in orjson.loads(content)["items"]:
        if item["state"] == "deleted":
            rows.append((item["id"], str(item["modified"]), None))
            continue
        data = from_openactive(item["data"])
        if matches_schema(ACTIVITY_SCHEMA, data):
            rows.append((item["id"], str(item["modified"]), orjson.dumps(data).decode()))
    return rows


def floor_loop(database: str, url: str, recorded: list[tuple[str, dict[str, Fetched]]]) -> tuple[float, int]:
    """The recorded pages through :func:`floor_rows` and an executemany upsert a page; (seconds, rows)."""
    pages = [response.content for _, responses in recorded for response in responses.values()]
    if database == "sqlite":
        return _floor_sqlite(url.removeprefix("sqlite:///"), pages)
    return _floor_postgres(url, pages)


def _floor_sqlite(path: str, pages: list[bytes]) -> tuple[float, int]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # as federation.db sets every aggregator database
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(FLOOR_TABLE.format(json="TEXT"))
        upsert = FLOOR_UPSERT.format(p="?")
        with stopwatch() as elapsed:
            for content in pages:
                with conn:  # one transaction a page
                    conn.executemany(upsert, floor_rows(content))
        stored: int = conn.execute("SELECT count(*) FROM floor_items").fetchone()[0]
    finally:
        conn.close()
    return elapsed(), stored


def _floor_postgres(url: str, pages: list[bytes]) -> tuple[float, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(FLOOR_TABLE.format(json="JSON"))  # the type SQLAlchemy's JSON gives the copies there
        conn.commit()
        upsert = FLOOR_UPSERT.format(p="%s")
        with stopwatch() as elapsed:
            for content in pages:
                with conn.transaction(), conn.cursor() as cursor:  # one transaction a page
                    cursor.executemany(upsert, floor_rows(content))
        row = conn.execute("SELECT count(*) FROM floor_items").fetchone()
    return elapsed(), row[0] if row else 0


def openactive_walk(publishers: list[LivePublisher]) -> tuple[float, int]:
    """OpenActive's Python client walks every feed to its end over HTTP, fetch and parse; (seconds, items)."""
    import openactive  # type: ignore[import-untyped]  # the package ships no type information

    items = 0
    with stopwatch() as elapsed:
        for publisher in publishers:
            read = openactive.get_opportunities(publisher.feed_url, seconds_wait_next=0, seconds_timeout=60)
            if read["status"] != "COMPLETE":
                status = read["status"]
                raise RuntimeError(f"the openactive client did not finish {publisher.feed_url}: {status}")
            items += len(read["items"])
    return elapsed(), items


def _source_rows(engine: Any, source_ids: list[int]) -> list[Any]:
    with engine.connect() as conn:
        by_id = {row.id: row for row in conn.execute(select(sources).where(sources.c.id.in_(source_ids)))}
    return [by_id[source_id] for source_id in source_ids]


# -- one database -------------------------------------------------------------------------------


def databases(wanted: list[str]) -> Iterator[tuple[str, Callable[[], Any]]]:
    """(name, context manager factory giving a fresh database URL) for each database wanted."""
    for name in wanted:
        if name == "sqlite":
            yield name, _fresh_sqlite
        elif name == "postgresql":
            if reason := postgres_available():
                print(f"skipping PostgreSQL: {reason}")
                continue
            yield name, fresh_postgres
        else:
            raise SystemExit(f"Unknown database {name!r}; use sqlite and/or postgresql.")


class _fresh_sqlite:
    def __enter__(self) -> str:
        self._dir = tempfile.TemporaryDirectory(prefix="localfeed-bench-")
        return f"sqlite:///{self._dir.name}/aggregator.sqlite"

    def __exit__(self, *exc: object) -> None:
        from aggregator.harvest import _engines

        for url in [url for url in _engines if url.startswith(f"sqlite:///{self._dir.name}")]:
            _engines.pop(url).dispose()
        self._dir.cleanup()


def measure(
    database: str,
    fresh: Callable[[], Any],
    publishers: list[LivePublisher],
    queue: str,
    args: argparse.Namespace,
    rng: random.Random,
) -> dict[str, Any]:
    """The three ways, ``args.repeat`` times each on fresh databases (the best counts), then the re-harvests.

    Best of several: other work on a shared machine only ever slows a run down, so the
    fastest run is the one closest to what the code itself costs.
    """
    total = sum(len(p.slugs) for p in publishers)
    result: dict[str, Any] = {"database": database, "items": total, "repeats": args.repeat}
    runs: dict[str, list[dict[str, Any]]] = {"end_to_end": [], "floor": [], "bare": [], "naive": []}
    recorded = None
    for attempt in range(args.repeat):
        with fresh() as url:
            config = aggregator_config(url, queue)
            ids = follow_all(config, feeds_of(publishers))
            warm_up(config)
            for p in publishers:
                p.counter.reset()
            seconds, _ = run_jobs(config, ids)
            stored, bad = counts(url)
            if stored != total or bad:
                raise RuntimeError(f"end-to-end harvest stored {stored} of {total} items ({bad} quarantined)")
            requests = sum(p.counter.total for p in publishers)
            runs["end_to_end"].append(
                {"seconds": seconds, "items_per_second": total / seconds, "requests": requests}
            )
            if attempt == 0:
                result.update(reharvests(config, ids, publishers, args.changed, rng))
                with stopwatch() as fetching:
                    recorded = record_pages(config, publishers)
                # The HTTP side alone: what end to end adds to the bare loop, page by page.
                result["fetch_only"] = {"seconds": fetching(), "items_per_second": total / fetching()}
        assert recorded is not None

        with fresh() as url:
            seconds, stored = floor_loop(database, url, recorded)
            if stored != total:
                raise RuntimeError(f"the floor stored {stored} of {total} items")
            runs["floor"].append({"seconds": seconds, "items_per_second": total / seconds})

        with fresh() as url:
            config = aggregator_config(url, queue)
            ids = follow_all(config, feeds_of(publishers))
            seconds = bare_loop(url, recorded, ids)
            stored, _ = counts(url)
            if stored != total:
                raise RuntimeError(f"the bare loop stored {stored} of {total} items")
            runs["bare"].append({"seconds": seconds, "items_per_second": total / seconds})

        with fresh() as url:
            config = aggregator_config(url, queue)
            ids = follow_all(config, feeds_of(publishers))
            seconds, items = naive_loop(url, recorded, ids, args.naive_items)
            runs["naive"].append({"seconds": seconds, "items": items, "items_per_second": items / seconds})

    for way, measured in runs.items():
        result[way] = {**max(measured, key=lambda run: run["items_per_second"]), "runs": measured}
    e2e = result["end_to_end"]["items_per_second"]
    result["ratio_to_floor"] = e2e / result["floor"]["items_per_second"]
    result["floor_budget"] = BUDGET_FLOOR_RATIO[database]
    result["ratio_to_bare"] = e2e / result["bare"]["items_per_second"]
    result["ratio_to_naive"] = e2e / result["naive"]["items_per_second"]
    result["ratio_to_budget"] = e2e / BUDGET_ITEMS_PER_SECOND
    return result


def warm_up(config: dict[str, Any]) -> None:
    """One job for a source that does not exist: the worker imports the harvest and opens this database."""
    job = enqueue_harvest(0, config)
    end = time.monotonic() + 60
    while job.get_status(refresh=True) != "finished":
        if time.monotonic() > end:
            raise RuntimeError("the rq worker did not run a warm-up job within 60 s")
        time.sleep(0.01)


def reharvests(
    config: dict[str, Any], ids: list[int], publishers: list[LivePublisher], share: float, rng: random.Random
) -> dict[str, Any]:
    """Harvest again with nothing changed, then with ``share`` of the items changed: seconds and requests."""
    measured = {}
    for changed_share in (0.0, share):
        changed = change_some(publishers, changed_share, rng) if changed_share else 0
        for p in publishers:
            p.counter.reset()
        seconds, jobs = run_jobs(config, ids)
        updated = sum(r.updated for r in results_of(jobs))
        if updated != changed:
            raise RuntimeError(f"re-harvest with {changed} changes applied {updated}")
        measured[f"reharvest_{changed_share:.0%}"] = {
            "changed": changed,
            "seconds": seconds,
            "requests": sum(p.counter.total for p in publishers),
            "by_status": _merged_status(publishers),
        }
    return measured


def _merged_status(publishers: list[LivePublisher]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for p in publishers:
        for status, n in p.counter.statuses().items():
            merged[status] = merged.get(status, 0) + n
    return merged


def report(results: list[dict[str, Any]], walk: dict[str, Any], publishers: int, activities: int) -> None:
    if not results:
        print("no database measured")
        return
    print()
    print(
        table(
            f"Harvest of {publishers} publishers x {activities} activities, one rq worker "
            f"(items/s, best of {results[0]['repeats']})",
            [
                "database",
                "items",
                "end to end",
                "floor",
                "openactive",
                "bare loop",
                "fetch only",
                "naive",
                "e2e/floor",
                "openactive/floor",
                "e2e/bare",
            ],
            [
                [
                    r["database"],
                    r["items"],
                    r["end_to_end"]["items_per_second"],
                    r["floor"]["items_per_second"],
                    walk["items_per_second"],
                    r["bare"]["items_per_second"],
                    r["fetch_only"]["items_per_second"],
                    r["naive"]["items_per_second"],
                    r["ratio_to_floor"],
                    walk["items_per_second"] / r["floor"]["items_per_second"],
                    r["ratio_to_bare"],
                ]
                for r in results
            ],
        )
    )
    print()
    rows = []
    for r in results:
        rows.append(
            [
                r["database"],
                "full harvest",
                r["items"],
                r["end_to_end"]["seconds"],
                r["end_to_end"]["requests"],
            ]
        )
        for key, label in (
            ("reharvest_0%", "re-harvest, 0% changed"),
            ("reharvest_1%", "re-harvest, 1% changed"),
        ):
            if key in r:
                rows.append([r["database"], label, r[key]["changed"], r[key]["seconds"], r[key]["requests"]])
    print(
        table(
            "Re-harvest: the cost follows the changes",
            ["database", "run", "items", "seconds", "requests"],
            rows,
        )
    )
    print()
    for r in results:
        verdict_floor = "meets" if r["ratio_to_floor"] >= r["floor_budget"] else "misses"
        verdict_bare = "meets" if r["ratio_to_bare"] >= BUDGET_BARE_RATIO else "misses"
        print(
            f"{r['database']}: end to end {r['end_to_end']['items_per_second']:,.0f} items/s = "
            f"{r['ratio_to_floor']:.2f}x the floor (budget >= {r['floor_budget']:.1f}: {verdict_floor} it); "
            f"{r['ratio_to_budget']:.2f}x the 10,000 items/s budget; "
            f"{r['ratio_to_bare']:.2f}x the bare loop (budget >= 0.50: {verdict_bare} it); "
            f"{r['ratio_to_naive']:.2f}x the naive baseline."
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishers", type=int, default=6, help="publishers harvested (default 6)")
    parser.add_argument(
        "--activities", type=int, default=1000, help="activities per publisher (default 1000)"
    )
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql")
    parser.add_argument("--changed", type=float, default=0.01, help="share changed before the 2nd re-harvest")
    parser.add_argument(
        "--naive-items", type=int, default=1000, help="items the (slow) naive loop runs over (default 1000)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way; the best counts (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="harvest", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)

    if reason := redis_available():
        raise SystemExit(f"The harvest benchmark needs Redis for its rq worker: {reason}")
    rng = random.Random(args.seed)
    queue = f"bench-harvest-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="localfeed-bench-") as workdir:
        network = publisher_network(args.publishers, args.activities, seed=args.seed)
        with stopwatch() as seeding:
            publishers = start_publishers(network, Path(workdir))
        print(f"{len(publishers)} publishers x {args.activities} activities, seeded in {seeding():.1f} s")
        results = []
        try:
            walks = [openactive_walk(publishers) for _ in range(args.repeat)]
            seconds, items = min(walks)
            if items != sum(len(p.slugs) for p in publishers):
                raise RuntimeError(f"the openactive client read {items} items, not every one")
            walk = {"seconds": seconds, "items": items, "items_per_second": items / seconds}
            with rq_worker(queue, Path(workdir) / "worker.log"):
                for database, fresh in databases(args.databases.split(",")):
                    print(f"measuring on {database}...", flush=True)
                    results.append(measure(database, fresh, publishers, queue, args, rng))
        finally:
            for p in publishers:
                p.server.stop()
    report(results, walk, args.publishers, args.activities)
    document = {
        "publishers": args.publishers,
        "activities_per_publisher": args.activities,
        "openactive_client": walk,
        "results": results,
    }
    path = write_results(args.name, document, args.results)
    print(f"\nresults: {path}")
    return document


if __name__ == "__main__":
    main()
