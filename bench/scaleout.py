"""Scale-out: 1 and then 2 ``rq worker`` processes on one Redis and one database harvest different sources.

The pages are fetched once from real publisher apps (``bench/harvest.py`` starts them), then
served from memory by one light static HTTP server on loopback, so the publishers' own work
(rendering pages from their databases) does not compete with the workers for the cores:
what is measured is the aggregator's side. Each run starts on a fresh database with every
source approved, starts the workers on a queue of their own, lets each worker run a warm-up
job (it imports the harvest and opens this database), then queues one harvest per source as
the aggregator does (``aggregator.jobs.enqueue_harvest``) and times until the last finishes.

No conflicts, checked on every run: every job finished and every harvest succeeded (a
source locked by another holder would fail the run), every item stored exactly once,
none quarantined, the same number of merged items whatever the number of workers, no
error or traceback in any worker's log, and with two workers both took jobs.

Issue 21's budget: 2 workers >= 1.5x the throughput of 1 on PostgreSQL.

Run: .venv/bin/python bench/scaleout.py [--publishers 8 --activities 750 --workers 1,2]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import distinct, func, select

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.harvest import engine_for
from aggregator.jobs import enqueue, harvest_now
from aggregator.store import copies, merged
from bench.common import RESULTS, redis_available, rq_worker, table, write_results
from bench.harvest import (
    aggregator_config,
    counts,
    databases,
    follow_all,
    record_pages,
    run_jobs,
    start_publishers,
)
from bench.network import Publisher, publisher_network

BUDGET_TWO_OVER_ONE = 1.5
WARM_UP_DEADLINE = 60.0
# Lines in a worker's log that mean something went wrong in it.
TROUBLE = re.compile(r"Traceback|LeaseLost|Error|failed", re.I)


class StaticPages:
    """One threaded HTTP server on loopback answering each path with bytes held in memory.

    It does nothing per request but a dictionary look-up and a write, so the workers
    harvesting from it have the cores to themselves.
    """

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, str]] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real web server offers

            def do_GET(self) -> None:  # the standard library's name
                found = pages.get(self.path)
                body, content_type = found or (b"not here\n", "text/plain")
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # no line per request in the report

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def prefetch(network: list[Publisher], workdir: Path, static: StaticPages) -> list[tuple[str, str, str]]:
    """Walk every publisher's feed once, then serve the same pages from ``static``; the feeds to follow.

    Publisher number n's pages move under ``/n``: its base URL in each page's links and
    ids is rewritten to the static server's, so the harvest follows ``next`` to the copies.
    """
    publishers = start_publishers(network, workdir)
    try:
        config = aggregator_config(f"sqlite:///{workdir / 'recording.sqlite'}", "unused")
        recorded = record_pages(config, publishers)
    finally:
        for publisher in publishers:
            publisher.server.stop()
    feeds = []
    for number, (publisher, (feed_url, responses)) in enumerate(zip(publishers, recorded, strict=True)):
        old, new = publisher.server.url, f"{static.url}/{number}"
        for url, fetched in responses.items():
            path = url.removeprefix(old)
            body = fetched.content.replace(old.encode(), new.encode())
            static.pages[f"/{number}{path}"] = (body, fetched.headers.get("content-type", "application/json"))
        feeds.append((new, feed_url.replace(old, new), publisher.network.name))
    return feeds


def warm_up(config: dict[str, Any], workers: int) -> None:
    """Jobs of a source that does not exist until every worker has run one: each has imported the
    harvest and opened this database, so the timed run is the steady state."""
    seen: set[str] = set()
    end = time.monotonic() + WARM_UP_DEADLINE
    while len(seen) < workers:
        if time.monotonic() > end:
            raise RuntimeError(f"only {len(seen)} of {workers} rq workers ran a warm-up job within 60 s")
        jobs = [enqueue(harvest_now, 0, config, config=config) for _ in range(2 * workers)]
        for job in jobs:
            while (status := job.get_status(refresh=True)) != "finished":
                if time.monotonic() > end or status in ("failed", "stopped", "canceled"):
                    result = job.latest_result()
                    raise RuntimeError(f"a warm-up job is {status}: {result and result.exc_string}")
                time.sleep(0.01)
            job.refresh()  # the whole record: the status alone leaves out who ran it
            if job.worker_name:
                seen.add(job.worker_name)


def stored_once(database_url: str) -> tuple[int, int]:
    """(distinct item ids among the copies, merged items)."""
    with engine_for(database_url).connect() as conn:
        distinct_ids = conn.execute(select(func.count(distinct(copies.c.item_id)))).scalar_one()
        merged_items = conn.execute(select(func.count()).select_from(merged)).scalar_one()
    return distinct_ids, merged_items


def measure(
    database: str, fresh: Any, workers: int, feeds: list[tuple[str, str, str]], total: int, workdir: Path
) -> dict[str, Any]:
    queue = f"bench-scaleout-{uuid.uuid4().hex[:10]}"
    logs = [workdir / f"{queue}-worker-{n}.log" for n in range(workers)]
    with fresh() as url, contextlib.ExitStack() as stack:
        config = aggregator_config(url, queue)
        ids = follow_all(config, feeds)
        for log in logs:
            stack.enter_context(rq_worker(queue, log))
        warm_up(config, workers)
        seconds, jobs = run_jobs(config, ids)
        stored, quarantined = counts(url)
        distinct_ids, merged_items = stored_once(url)
    trouble = [
        line for log in logs for line in log.read_text(errors="replace").splitlines() if TROUBLE.search(line)
    ]
    by_worker: dict[str, int] = {}
    for job in jobs:
        job.refresh()
        by_worker[job.worker_name or "?"] = by_worker.get(job.worker_name or "?", 0) + 1
    problems = []
    if stored != total or distinct_ids != total:
        problems.append(f"{stored} copies of {distinct_ids} distinct items stored, not {total} once each")
    if quarantined:
        problems.append(f"{quarantined} items quarantined")
    if trouble:
        problems.append(f"the workers' logs hold {len(trouble)} error lines, first: {trouble[0]}")
    if workers > 1 and len(by_worker) < workers:
        problems.append(f"only {len(by_worker)} of {workers} workers took jobs: {by_worker}")
    if problems:
        raise RuntimeError(f"{workers} worker(s) on {database}: " + "; ".join(problems))
    return {
        "database": database,
        "workers": workers,
        "sources": len(ids),
        "items": total,
        "seconds": seconds,
        "items_per_second": total / seconds,
        "jobs_by_worker": sorted(by_worker.values(), reverse=True),
        "merged_items": merged_items,
        "failed_jobs": 0,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishers", type=int, default=8, help="sources harvested (default 8)")
    parser.add_argument("--activities", type=int, default=750, help="activities per source (default 750)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--databases", default="postgresql", help="comma-separated: sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="scaleout", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)
    if reason := redis_available():
        raise SystemExit(f"The scale-out benchmark needs Redis for its rq workers: {reason}")
    counts_of_workers = [int(n) for n in args.workers.split(",")]
    total = args.publishers * args.activities

    results = []
    static = StaticPages()
    try:
        with tempfile.TemporaryDirectory(prefix="localfeed-bench-") as folder:
            workdir = Path(folder)
            network = publisher_network(args.publishers, args.activities, seed=args.seed)
            feeds = prefetch(network, workdir, static)
            print(f"{len(feeds)} feeds x {args.activities} activities fetched once, served from memory")
            for database, fresh in databases(args.databases.split(",")):
                for workers in counts_of_workers:
                    print(f"measuring {workers} worker(s) on {database}...", flush=True)
                    results.append(measure(database, fresh, workers, feeds, total, workdir))
    finally:
        static.stop()

    merged_counts = {(r["database"], r["merged_items"]) for r in results}
    if len(merged_counts) != len({r["database"] for r in results}):
        raise RuntimeError(f"the merged items differ with the number of workers: {sorted(merged_counts)}")
    ratios = {}
    for r in results:
        one = next(
            o for o in results if o["database"] == r["database"] and o["workers"] == min(counts_of_workers)
        )
        r["over_one_worker"] = r["items_per_second"] / one["items_per_second"]
        if r["workers"] == 2 and one["workers"] == 1:
            ratios[r["database"]] = r["over_one_worker"]
    print()
    print(
        table(
            f"Harvest of {args.publishers} sources x {args.activities} activities, pages served from memory",
            ["database", "workers", "items", "seconds", "items/s", "jobs per worker", "x 1 worker"],
            [
                [
                    r["database"],
                    r["workers"],
                    r["items"],
                    r["seconds"],
                    r["items_per_second"],
                    " + ".join(map(str, r["jobs_by_worker"])),
                    r["over_one_worker"],
                ]
                for r in results
            ],
        )
    )
    for database, ratio in ratios.items():
        verdict = "meets" if ratio >= BUDGET_TWO_OVER_ONE else "misses"
        print(f"{database}: 2 workers / 1 = {ratio:.2f} (budget >= {BUDGET_TWO_OVER_ONE}: {verdict} it)")
    print("No conflicts: every job finished, every item stored once, none quarantined, no errors logged.")
    document = {
        "publishers": args.publishers,
        "activities_per_publisher": args.activities,
        "two_over_one": ratios,
        "results": results,
    }
    path = write_results(args.name, document, args.results)
    print(f"\nresults: {path}")
    return document


if __name__ == "__main__":
    main()
