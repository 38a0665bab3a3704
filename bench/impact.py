"""Counting impact while answering queries: 1,000 counting events a second on one gunicorn worker.

One run, one aggregator (gunicorn, one worker) on a copy of the query benchmark's index
(``bench.query.prepared``, cached and reused), with activities it lists. Two phases of
the same length: first the widget query load alone (paced, ``--query-rate`` a second),
then the same query load while beacons of ``--batch`` events arrive at
``--events-per-second``, as widgets on many sites would send them (``POST /impact/events``,
an ``Origin`` each). Reported: the query p50/p95 of each phase, their ratio (counting
against none), p95 against the query budget, and the counting events actually taken a second.

Run: .venv/bin/python bench/impact.py [--size 100000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import insert, inspect

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.store import impact_counts, impact_relayed, init_store, merge_keys, merged, metadata
from bench.common import CACHE, RESULTS, gunicorn, percentiles, stopwatch, table, write_results
from bench.query import BUDGET_P95_MS, prepared, widget_queries
from federation.db import make_engine

LISTED = 400  # activities the beacons name (the aggregator checks each is one it lists)
SITES = 25  # embedding websites the beacons come from
ORIGIN = "https://bench-publisher.example"


def counting_database(size: int, seed: int, cache: Path, workdir: Path) -> str:
    """A copy of the cached query index, with ``LISTED`` merged activities and the impact tables."""
    source, _info = prepared("sqlite", size, seed, False, cache)
    path = Path(source.removeprefix("sqlite:///"))
    copy = workdir / "impact.sqlite"
    shutil.copyfile(path, copy)
    url = f"sqlite:///{copy}"
    engine = make_engine(url)
    try:
        init_store(engine, auto_upgrade=True)
        if not inspect(engine).has_table(impact_counts.name):  # a cache made before the tables were
            metadata.create_all(engine, tables=[impact_counts, impact_relayed])
        now = datetime.now(UTC)
        with engine.begin() as conn:
            first = 10**9  # change numbers above any the index holds
            rows = [
                {
                    "id": first + n,
                    "item_id": activity_id(n),
                    "kind": "SessionSeries",
                    "state": "updated",
                    "data": {"booking": {"method": "book-ahead", "url": f"https://tickets.example/{n}"}},
                    "provenance": [],
                    "change_number": first + n,
                    "modified_at": now,
                }
                for n in range(LISTED)
            ]
            conn.execute(insert(merged), rows)
            conn.execute(
                insert(merge_keys), [{"key": f"uri:{row['item_id']}", "merged_id": row["id"]} for row in rows]
            )
    finally:
        engine.dispose()
    return url


def activity_id(n: int) -> str:
    return f"{ORIGIN}/activities/bench-{n}"


def paced(rate: float, deadline: float, stop: threading.Event) -> Any:
    """Yields at ``rate`` a second until ``deadline`` (a shared clock, so threads keep the pace together)."""
    start = time.perf_counter()
    number = 0
    while not stop.is_set():
        due = start + number / rate
        if due > deadline:
            return
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        yield number
        number += 1


def phase(
    base: str, queries: list[dict[str, str]], args: argparse.Namespace, counting: bool
) -> dict[str, Any]:
    """Query latencies (ms) under the paced query load, with or without the counting beacons."""
    latencies: list[float] = []
    query_status: dict[str, int] = {}
    beacon_status: dict[str, int] = {}
    events = 0
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.perf_counter() + args.seconds

    def ask(http: httpx.Client, number: int) -> None:
        params = queries[number % len(queries)]
        with stopwatch() as elapsed:
            try:
                status: int | str = http.get("/api/activities", params=params).status_code
            except httpx.TransportError as error:
                status = type(error).__name__
        with lock:
            latencies.append(elapsed() * 1000)
            query_status[str(status)] = query_status.get(str(status), 0) + 1

    def querying(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            for number in paced(args.query_rate / args.clients, deadline, stop):
                ask(http, number * args.clients + offset)

    def beaconing(offset: int) -> None:
        nonlocal events
        rate = args.events_per_second / args.batch / args.beacon_clients
        with httpx.Client(base_url=base, timeout=30) as http:
            for number in paced(rate, deadline, stop):
                n = number * args.beacon_clients + offset
                batch = [
                    ["shown" if k else "opened", activity_id((n * args.batch + k) % LISTED)]
                    for k in range(args.batch)
                ]
                headers = {"Origin": f"https://site-{n % SITES}.example", "Content-Type": "text/plain"}
                try:
                    answer = http.post(
                        "/impact/events", content=orjson.dumps({"events": batch}), headers=headers
                    )
                    status: int | str = answer.status_code
                except httpx.TransportError as error:
                    status = type(error).__name__
                with lock:
                    beacon_status[str(status)] = beacon_status.get(str(status), 0) + 1
                    if status == 204:
                        events += len(batch)

    workers = [(querying, offset) for offset in range(args.clients)]
    if counting:
        workers += [(beaconing, offset) for offset in range(args.beacon_clients)]
    with stopwatch() as elapsed, ThreadPoolExecutor(len(workers)) as pool:
        for future in [pool.submit(work, offset) for work, offset in workers]:
            future.result()
    wall = elapsed()
    return {
        "counting": counting,
        "seconds": wall,
        "queries": len(latencies),
        "query_status": query_status,
        "query_ms": percentiles(latencies),
        "beacons": beacon_status,
        "events_per_second": events / wall,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="items in the query index")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument(
        "--events-per-second", type=float, default=1000.0, help="counting events sent a second"
    )
    parser.add_argument(
        "--batch", type=int, default=10, help="events per beacon (a widget's page of results)"
    )
    parser.add_argument("--beacon-clients", type=int, default=4, help="threads sending beacons")
    parser.add_argument("--query-rate", type=float, default=20.0, help="widget queries sent a second")
    parser.add_argument("--clients", type=int, default=2, help="threads sending queries")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="impact", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    parser.add_argument(
        "--cache", type=Path, default=CACHE, help="directory of the query benchmark's databases"
    )
    args = parser.parse_args(argv)

    queries = widget_queries(200, args.seed)
    with tempfile.TemporaryDirectory(prefix="localfeed-bench-impact-") as workdir:
        url = counting_database(args.size, args.seed, args.cache, Path(workdir))
        env = {"DATABASE_URL": url, "SECRET_KEY": "bench", "RATELIMIT_ENABLED": "0"}
        with gunicorn("aggregator:create_app()", env, 1, Path(workdir) / "gunicorn.log") as base:
            for params in queries[:20]:  # warm the worker's caches before either phase
                httpx.get(f"{base}/api/activities", params=params, timeout=30)
            phases = [phase(base, queries, args, counting=False), phase(base, queries, args, counting=True)]
    without, with_counting = phases
    ratio = with_counting["query_ms"]["p95"] / without["query_ms"]["p95"]
    print()
    print(
        table(
            f"Widget queries with and without {args.events_per_second:,.0f} counting events/s "
            f"(one gunicorn worker, SQLite, {args.size:,} items)",
            ["phase", "queries", "p50 ms", "p95 ms", "p95/budget", "events/s taken", "beacons"],
            [
                [
                    "counting" if p["counting"] else "queries only",
                    p["queries"],
                    p["query_ms"]["p50"],
                    p["query_ms"]["p95"],
                    p["query_ms"]["p95"] / BUDGET_P95_MS,
                    p["events_per_second"],
                    ", ".join(f"{k}: {v}" for k, v in sorted(p["beacons"].items())) or "-",
                ]
                for p in phases
            ],
        )
    )
    print(f"query p95 with counting / without: {ratio:.2f}")
    document = {
        "size": args.size,
        "events_per_second_sent": args.events_per_second,
        "batch": args.batch,
        "query_rate": args.query_rate,
        "budget_p95_ms": BUDGET_P95_MS,
        "phases": phases,
        "p95_ratio": ratio,
    }
    path = write_results(args.name, document, args.results)
    print(f"\nresults: {path}")
    return document


if __name__ == "__main__":
    main()
