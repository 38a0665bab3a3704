"""Query latency against its budget (<= 20 ms p95 at 1,000,000 items), and requests/s under gunicorn.

For each size (10k, 100k, 1M items by default) and each database, the search index is
filled with a synthetic network spread over Great Britain (``bench.network``), then
typical widget queries are timed through ``aggregator.query.search``: near a postcode
or a point, a radius of 2 to 5 km, a filter or two, 8 to 20 results; a quarter of them
near + day + category + free, whose times are also reported on their own. Then gunicorn
serves the aggregator on the largest index and a loopback load generator (a thread
pool of httpx clients) sends the same kind of queries for a bounded time.

Rows are built by the search index's own row function (``search_index._row``) for a few
thousand distinct activities; each of the N items is one of those moved to its own
place (``search_index._placed``); they are written with executemany (SQLite) or COPY
(PostgreSQL), the index's own indexes created afterwards. Built databases
are kept under bench/results/cache (SQLite files, and PostgreSQL databases named in a
marker file there) and reused by later runs; ``--rebuild`` builds them again and
``--drop-cache`` removes them.

Run: .venv/bin/python bench/query.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import JSON, func, insert, select
from sqlalchemy.engine import Engine

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import geocode, query
from aggregator import search_index as si
from aggregator.freshness import Thresholds
from aggregator.store import init_store, sources
from bench.common import (
    CACHE,
    RESULTS,
    create_postgres_database,
    drop_postgres_database,
    gunicorn,
    percentiles,
    postgres_available,
    postgres_database_exists,
    postgres_url_for,
    stopwatch,
    table,
    write_results,
)
from bench.network import TOWNS, pick_town, published, publisher_network, relocated
from federation.db import make_engine
from schema.vocab import ids as vocabulary_ids

BUDGET_P95_MS = 20.0  # issue 21
BUDGET_SIZE = 1_000_000
TEMPLATE_PUBLISHERS = 36
TEMPLATES_EACH = 100
SOURCES = 40
BATCH = 10_000
# Bump when the way the index is filled changes, so cached databases are rebuilt.
BUILD_VERSION = 2
MIN_QUERIES = 50  # timed queries taken however long they take


# -- building (or reusing) an index --------------------------------------------------------------


def fingerprint(size: int, seed: int) -> str:
    """What a cached database must agree with: the index's shape and grid, this build, the size and seed."""
    shape = [
        (
            table.name,
            [(c.name, str(c.type)) for c in table.columns],
            sorted((str(i.name), [c.name for c in i.columns]) for i in table.indexes),
        )
        for table in (si.index, si.documents, si.index_sources)
    ]
    raw = orjson.dumps([shape, si.CELL_DEGREES, BUILD_VERSION, size, seed])
    return hashlib.sha256(raw).hexdigest()[:10]


def town_postcodes() -> dict[str, tuple[float, float]]:
    """One made-up postcode per town centre, so that some queries are ``near=<postcode>``."""
    return {f"ZZ{number} 1AA": (lat, lon) for number, (_, lat, lon, _w, _s) in enumerate(TOWNS, start=1)}


class _Chunks:
    """Builds the rows of one chunk of items; one per process, so chunks are built on every core.

    Values come out ready for the driver (JSON as text, and on SQLite dates and times as
    SQLAlchemy writes them), so the writer only hands them on.
    """

    def __init__(self, seed: int, now: datetime, dialect_name: str):
        network = publisher_network(TEMPLATE_PUBLISHERS, TEMPLATES_EACH, seed=seed, today=now.date())
        self.templates = [doc for p in network for doc in published(p, "https://bench.example", now)]
        self.base = [
            si._row(doc, si._postcode(doc), si._own_position(doc), True, now) for doc in self.templates
        ]
        self.seed = seed
        dialect = make_engine(
            "sqlite://" if dialect_name == "sqlite" else "postgresql://x@localhost/x"
        ).dialect
        self.processors = {table.name: _processors(table, dialect) for table in (si.index, si.documents)}

    def __call__(self, span: tuple[int, int]) -> tuple[list[tuple], list[tuple], list[tuple]]:
        first, count = span
        rng = random.Random(self.seed * 7919 + first)
        index_rows, document_rows, link_rows = [], [], []
        for number, (template, activity, position) in zip(
            range(first, first + count),
            relocated(self.templates, count, seed=self.seed, first=first),
            strict=True,
        ):
            key = str(number + 1)
            source_id = rng.randint(1, SOURCES)
            provenance = [
                {"source_id": source_id, "source_url": _feed(source_id), "item_id": activity["id"], "via": []}
            ]
            row = {**self.base[template], **si._placed(position), "merged_id": key}
            index_rows.append(_ready(self.processors[si.index.name], row))
            document_rows.append(
                _ready(
                    self.processors[si.documents.name],
                    {"merged_id": key, "activity": activity, "provenance": provenance},
                )
            )
            link_rows.append((key, source_id))
        return index_rows, document_rows, link_rows


def _processors(table: Any, dialect: Any) -> list[tuple[str, Any]]:
    """(column, value -> driver value) for each column, as SQLAlchemy would bind it; JSON via orjson."""
    processors: list[tuple[str, Any]] = []
    for column in table.columns:
        if isinstance(column.type, JSON):
            processors.append((column.name, _json_text))
        elif dialect.name == "sqlite":
            processors.append((column.name, column.type.dialect_impl(dialect).bind_processor(dialect)))
        else:  # psycopg adapts dates, times and booleans itself
            processors.append((column.name, None))
    return processors


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _ready(processors: list[tuple[str, Any]], row: dict[str, Any]) -> tuple:
    return tuple(row[name] if process is None else process(row[name]) for name, process in processors)


_chunks: _Chunks | None = None


def _start_chunks(seed: int, now: datetime, dialect_name: str) -> None:
    global _chunks
    _chunks = _Chunks(seed, now, dialect_name)


def _chunk(span: tuple[int, int]) -> tuple[list[tuple], list[tuple], list[tuple]]:
    assert _chunks is not None
    return _chunks(span)


def _feed(source_id: int) -> str:
    return f"https://publisher-{source_id}.example/feeds/activities"


def build(engine: Engine, size: int, seed: int) -> float:
    """Fill an empty database with ``size`` items; returns the seconds taken.

    The index's own indexes are created after the rows are in (the usual way to load a
    table in bulk); the rows come from a process pool, one process per core.
    """
    now = datetime.now(UTC)
    with stopwatch() as elapsed:
        init_store(engine)
        tables = (si.index, si.documents, si.index_sources)
        with engine.begin() as conn:
            conn.execute(
                insert(sources),
                [
                    {
                        "id": n,
                        "url": _feed(n),
                        "feed_url": _feed(n),
                        "kind": "localfeed",
                        "name": f"Publisher {n}",
                        "state": "approved",
                        "trust": 50,
                        "failures": 0,
                        "created_at": now,
                    }
                    for n in range(1, SOURCES + 1)
                ],
            )
            for postcode, position in town_postcodes().items():
                geocode.learn(conn, postcode, position, now)
            for table in tables:
                for index in table.indexes:
                    index.drop(conn)
        spans = [(first, min(BATCH, size - first)) for first in range(0, size, BATCH)]
        # Not "fork": the bench may run in a process with threads (a test worker driving Chromium),
        # and a forked copy of a thread's held lock never lets go.
        context = multiprocessing.get_context("forkserver")
        with context.Pool(os.cpu_count() or 1, _start_chunks, (seed, now, engine.dialect.name)) as pool:
            for chunk in pool.imap(_chunk, spans):
                _write(engine, tables, chunk)
        with engine.begin() as conn:
            for table in tables:
                for index in table.indexes:
                    index.create(conn)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
    return elapsed()


def _write(engine: Engine, tables: tuple[Any, ...], chunk: tuple[list[tuple], ...]) -> None:
    """One chunk in one transaction: COPY on PostgreSQL, executemany on SQLite."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, rows in zip(tables, chunk, strict=True):
            names = [column.name for column in table.columns]
            if engine.dialect.name == "postgresql":
                with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" for _ in names)
                cursor.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", rows)
        raw.commit()
    finally:
        raw.close()


def prepared(database: str, size: int, seed: int, rebuild: bool, cache: Path) -> tuple[str, dict[str, Any]]:
    """The URL of a database holding ``size`` items, built now or reused from ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    print_ = _progress(f"{database}, {size:,} items")
    key = fingerprint(size, seed)
    if database == "sqlite":
        path = cache / f"query-{size}-{key}.sqlite"
        url = f"sqlite:///{path}"
        if rebuild or not path.exists():
            for stale in cache.glob(f"query-{size}-*.sqlite*"):
                stale.unlink()
            return url, _built(url, size, seed, print_)
    else:
        name = f"localfeed_bench_query_{size}_{key}"
        url = postgres_url_for(name)
        marker = cache / f"{name}.postgres"
        if rebuild or not marker.exists() or not postgres_database_exists(name):
            for stale in cache.glob(f"localfeed_bench_query_{size}_*.postgres"):
                drop_postgres_database(stale.stem)
                stale.unlink()
            drop_postgres_database(name)  # a build stopped half way leaves no marker
            create_postgres_database(name)
            info = _built(url, size, seed, print_)
            marker.write_text(url + "\n")
            return url, info
    print_("reusing the cached database")
    engine = make_engine(url)
    rolled = _roll_forward(engine)
    engine.dispose()
    return url, {"built_seconds": None, "rolled_forward": rolled}


def _built(url: str, size: int, seed: int, print_: Any) -> dict[str, Any]:
    print_("building")
    engine = make_engine(url)
    seconds = build(engine, size, seed)
    engine.dispose()
    print_(f"built in {seconds:.0f} s")
    return {"built_seconds": seconds, "rolled_forward": 0}


def _roll_forward(engine: Engine) -> int:
    """Bring a reused index's next sessions up to now, as the aggregator's periodic job does."""
    total = 0
    while True:
        with engine.begin() as conn:
            done = si.roll_forward(conn, datetime.now(UTC), limit=5000)
        total += done
        if done == 0:
            return total


def _progress(what: str) -> Any:
    def say(message: str) -> None:
        print(f"  {what}: {message}", flush=True)

    return say


# -- the queries --------------------------------------------------------------------------------


# The filters people use together (issue 21): what's on near here, on a day, of a kind, free.
COMBINATION = ("near", "day", "category", "free")
COMBINATION_SHARE = 0.25


def widget_queries(count: int, seed: int) -> list[dict[str, str]]:
    """Typical widget queries: near a postcode or a point in a town, 2-5 km, a filter or two.

    A quarter use the filters people use together (:data:`COMBINATION`) instead. They are
    chosen with their own random numbers, so the other queries are the ones earlier runs
    timed.
    """
    rng, together = random.Random(seed), random.Random(seed + 1)
    categories = list(vocabulary_ids("categories"))
    days = ["mo", "tu", "we", "th", "fr", "sa"]
    postcodes = list(town_postcodes())
    wanted = []
    for _ in range(count):
        name, lat, lon, _weight, spread = pick_town(rng)
        if rng.random() < 0.3:
            near = postcodes[[t[0] for t in TOWNS].index(name)]
        else:
            point = (lat + rng.uniform(-0.5, 0.5) * spread / 111, lon + rng.uniform(-0.5, 0.5) * spread / 70)
            near = f"{point[0]:.4f},{point[1]:.4f}"
        params = {
            "near": near,
            "radius": str(rng.choice([2, 3, 3, 5, 5])),
            "limit": str(rng.choice([8, 10, 20])),
        }
        filters = {
            "category": lambda: rng.choice(categories),
            "day": lambda: rng.choice(days),
            "free": lambda: "true",
            "time": lambda: rng.choice(["morning", "afternoon", "evening"]),
            "has_space": lambda: "true",
            "age": lambda: str(rng.choice([2, 30, 70, 80])),
        }
        chosen = {name: filters[name]() for name in rng.sample(sorted(filters), rng.choice([1, 1, 2]))}
        if together.random() < COMBINATION_SHARE:
            chosen = {"day": together.choice(days), "category": together.choice(categories), "free": "true"}
        wanted.append({**params, **chosen})
    return wanted


def is_combination(params: dict[str, str]) -> bool:
    """Whether a query uses the filters people use together (and no others)."""
    return set(params) - {"radius", "limit"} == set(COMBINATION)


def time_queries(url: str, queries: list[dict[str, str]], warmup: int, seconds: float) -> dict[str, Any]:
    """Milliseconds per ``search`` call, each in its own transaction as the API runs it.

    Stops after ``seconds`` of timed queries (with at least a minimum taken), so a slow
    database cannot stretch the run past its time limit.
    """
    engine = make_engine(url)
    geocoder, thresholds = geocode.NoGeocoder(), Thresholds()
    samples: list[float] = []
    together: list[float] = []
    found: list[int] = []
    deadline = None
    try:
        for number, params in enumerate(queries):
            if number == warmup:
                deadline = time.perf_counter() + seconds
            elif deadline is not None and time.perf_counter() > deadline and len(samples) >= MIN_QUERIES:
                break
            with stopwatch() as elapsed, engine.begin() as conn:
                body = query.search(
                    conn, params, now=datetime.now(UTC), geocoder=geocoder, thresholds=thresholds
                )
            if number >= warmup:
                samples.append(elapsed() * 1000)
                found.append(len(body["items"]))
                if is_combination(params):
                    together.append(samples[-1])
        with engine.connect() as conn:
            items = conn.execute(select(func.count()).select_from(si.index)).scalar_one()
    finally:
        engine.dispose()
    return {
        "items": items,
        "queries": len(samples),
        "ms": percentiles(samples),
        "mean_results": sum(found) / len(found),
        # The same runs, only those near a place for a day, a category and free activities.
        "combination": {"queries": len(together), "ms": percentiles(together) if together else None},
    }


# -- load through gunicorn -----------------------------------------------------------------------


def load(
    url: str, queries: list[dict[str, str]], seconds: float, max_requests: int, clients: int, workers: int
) -> dict:
    """Requests/s from ``clients`` loopback threads on gunicorn, up to ``seconds`` and ``max_requests``."""
    env = {"DATABASE_URL": url, "SECRET_KEY": "bench", "RATELIMIT_ENABLED": "0"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="localfeed-bench-") as workdir:
        log = Path(workdir) / "gunicorn.log"
        with gunicorn("aggregator:create_app()", env, workers, log) as base:
            taken = iter(range(max_requests))
            deadline = time.perf_counter() + seconds

            def client(offset: int) -> None:
                with httpx.Client(base_url=base, timeout=30) as http:
                    for number in taken:
                        if time.perf_counter() > deadline:
                            return
                        params = queries[(number + offset) % len(queries)]
                        with stopwatch() as elapsed:
                            try:
                                status: int | str = http.get("/api/activities", params=params).status_code
                            except httpx.TransportError as error:  # counted: one must not lose the run
                                status = type(error).__name__
                        with lock:
                            latencies.append(elapsed() * 1000)
                            statuses[str(status)] = statuses.get(str(status), 0) + 1

            with stopwatch() as elapsed, ThreadPoolExecutor(clients) as pool:
                list(pool.map(client, range(clients)))
            wall = elapsed()
        if set(statuses) - {"200"}:  # what the server said about the failures
            print(log.read_text(errors="replace")[-3000:], flush=True)
    ok = statuses.get("200", 0)
    return {
        "seconds": wall,
        "requests": len(latencies),
        "by_status": statuses,
        "requests_per_second": len(latencies) / wall,
        "ok_per_second": ok / wall,
        "ms": percentiles(latencies),
        "clients": clients,
        "gunicorn_workers": workers,
    }


# -- the run ---------------------------------------------------------------------------------------


def drop_cache(cache: Path) -> None:
    """Remove the cached databases: SQLite files and the PostgreSQL databases their markers name."""
    for marker in cache.glob("localfeed_bench_query_*.postgres"):
        if postgres_available() is None:
            drop_postgres_database(marker.stem)
        marker.unlink()
    for path in cache.glob("query-*.sqlite*"):
        path.unlink()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="index sizes, comma-separated")
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql")
    parser.add_argument("--queries", type=int, default=400, help="timed queries per size and database")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first")
    parser.add_argument(
        "--query-seconds",
        type=float,
        default=45.0,
        help="most seconds of timed queries per size and database",
    )
    parser.add_argument("--load-seconds", type=float, default=15.0, help="length of the gunicorn load test")
    parser.add_argument("--load-requests", type=int, default=20_000, help="most requests the load test sends")
    parser.add_argument("--clients", type=int, default=8, help="load generator threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="build the cached databases again")
    parser.add_argument("--drop-cache", action="store_true", help="remove the cached databases and stop")
    parser.add_argument("--name", default="query", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    parser.add_argument("--cache", type=Path, default=CACHE, help="directory for the built databases' cache")
    args = parser.parse_args(argv)
    if args.drop_cache:
        drop_cache(args.cache)
        print("cached query databases removed")
        return {}

    sizes = [int(size) for size in args.sizes.split(",")]
    wanted = args.databases.split(",")
    if "postgresql" in wanted and (reason := postgres_available()):
        print(f"skipping PostgreSQL: {reason}")
        wanted.remove("postgresql")
    queries = widget_queries(args.warmup + args.queries, args.seed)
    results: list[dict[str, Any]] = []
    loads: list[dict[str, Any]] = []
    for database in wanted:
        largest = None
        for size in sizes:
            url, info = prepared(database, size, args.seed, args.rebuild, args.cache)
            timed = time_queries(url, queries, args.warmup, args.query_seconds)
            results.append({"database": database, "size": size, **info, **timed})
            print(f"  {database}, {size:,} items: p95 {timed['ms']['p95']:.1f} ms", flush=True)
            largest = (size, url)
        if largest and args.load_seconds > 0:
            print(f"  {database}: gunicorn load test on {largest[0]:,} items...", flush=True)
            measured = load(
                largest[1], queries, args.load_seconds, args.load_requests, args.clients, args.workers
            )
            loads.append({"database": database, "size": largest[0], **measured})

    report(results, loads)
    document = {"queries": queries[args.warmup :], "latency": results, "load": loads}
    path = write_results(args.name, document, args.results)
    print(f"\nresults: {path}")
    return document


def report(results: list[dict[str, Any]], loads: list[dict[str, Any]]) -> None:
    print()
    print(
        table(
            "Widget queries through aggregator.query.search (ms)",
            ["database", "items", "p50", "p95", "p99", "max", "mean results", "p95/budget"],
            [
                [
                    r["database"],
                    r["items"],
                    r["ms"]["p50"],
                    r["ms"]["p95"],
                    r["ms"]["p99"],
                    r["ms"]["max"],
                    r["mean_results"],
                    r["ms"]["p95"] / BUDGET_P95_MS,
                ]
                for r in results
            ],
        )
    )
    print()
    print(
        table(
            "Of those, near + day + category + free (ms)",
            ["database", "items", "queries", "p50", "p95", "p99", "max", "p95/budget"],
            [
                [
                    r["database"],
                    r["items"],
                    r["combination"]["queries"],
                    r["combination"]["ms"]["p50"],
                    r["combination"]["ms"]["p95"],
                    r["combination"]["ms"]["p99"],
                    r["combination"]["ms"]["max"],
                    r["combination"]["ms"]["p95"] / BUDGET_P95_MS,
                ]
                for r in results
                if r["combination"]["ms"]
            ],
        )
    )
    if loads:
        print()
        print(
            table(
                "GET /api/activities under load (gunicorn, loopback)",
                ["database", "items", "workers", "clients", "requests", "req/s", "200s", "p50 ms", "p95 ms"],
                [
                    [
                        run["database"],
                        run["size"],
                        run["gunicorn_workers"],
                        run["clients"],
                        run["requests"],
                        run["requests_per_second"],
                        run["by_status"].get("200", 0),
                        run["ms"]["p50"],
                        run["ms"]["p95"],
                    ]
                    for run in loads
                ],
            )
        )
    print()
    for r in results:
        if r["size"] == BUDGET_SIZE:
            for what, ms in (
                ("all queries", r["ms"]),
                ("near + day + category + free", r["combination"]["ms"]),
            ):
                if ms:
                    verdict = "meets" if ms["p95"] <= BUDGET_P95_MS else "misses"
                    print(
                        f"{r['database']}, {what}: p95 {ms['p95']:.1f} ms at {r['items']:,} items = "
                        f"{ms['p95'] / BUDGET_P95_MS:.2f}x the {BUDGET_P95_MS:g} ms budget ({verdict} it)."
                    )


if __name__ == "__main__":
    main()
