"""Propagation: from an edit on a publisher to the aggregator's query API, by WebSub push and by polling.

A real publisher and a real aggregator run on loopback (SQLite files in a temporary
folder), each with its one in-process worker. Each edit is a ``PUT`` through the
publisher's JSON API; the clock stops when the aggregator's query API first shows the
edited text. Polling runs first (the aggregator harvests on a short schedule and is not
subscribed), then push (subscribed, no schedule). Budget (DESIGN.md): push ≤ 2 s p95.

Run: ``.venv/bin/python bench/propagation.py [--edits 100] [--poll-interval 1]``.
Prints a table and writes ``bench/results/propagation.json``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aggregator
import publisher
from aggregator.harvest import harvest_source
from aggregator.jobs import start_scheduler
from aggregator.settings import job_config
from aggregator.sources import add_source
from aggregator.subscriptions import push_subscriptions, subscribe_source
from bench.common import RESULTS, LoopbackServer, percentiles, table, write_results
from demo.sample_data import sample_activity
from publisher.extensions import get_store

BUDGET_P95_SECONDS = 2.0

EDIT_TIMEOUT = 30.0  # an edit slower than this is reported as a failure, not waited for
OBSERVE_EVERY = 0.005


def bench_walk(**changes: Any) -> dict[str, Any]:
    """The benchmark's one activity, from the demo's generator with a fixed seed and name."""
    doc = sample_activity(random.Random(7), organizer="Mitcham Walkers", today=date(2026, 1, 5), kind=0)
    return {**doc, "name": "Bench Walk", **changes}

class Bench:
    """One publisher, one aggregator following it, and an HTTP client to edit and query."""

    def __init__(self, folder: Path, poll_interval: float) -> None:
        self.publisher = publisher.create_app(
            {
                "INSTANCE_PATH": str(folder / "publisher"),
                "DATABASE_URL": f"sqlite:///{folder / 'publisher.sqlite'}",
                "SECRET_KEY": "bench",
                "ALLOW_PRIVATE_NETWORKS": True,
                "RATELIMIT_ENABLED": False,
            }
        )
        self.aggregator = aggregator.create_app(
            {
                "DATABASE_URL": f"sqlite:///{folder / 'aggregator.sqlite'}",
                "SECRET_KEY": "bench",
                "ALLOW_PRIVATE_NETWORKS": True,
                "RATELIMIT_ENABLED": False,
                "HARVEST_INTERVAL": poll_interval,
                "SCHEDULER_TICK": min(0.25, poll_interval / 4),
                # Its hub thread would subscribe the source on its own within a minute, and the
                # polling figures must be polling only; push into it needs no thread of its own.
                "HUB_WORKER": False,
            }
        )
        self.servers = [LoopbackServer(self.publisher), LoopbackServer(self.aggregator)]
        self.publisher_url, self.aggregator_url = (server.url for server in self.servers)
        self.aggregator.config["PUBLIC_URL"] = self.aggregator_url
        self.http = httpx.Client(timeout=10)
        with self.publisher.app_context():
            store = get_store()
            group = store.add_group("Mitcham Walkers")
            _, token = store.create_token(group.id, "bench")
        self.auth = {"Authorization": f"Bearer {token}"}
        created = self.http.post(
            self.publisher_url + "/api/activities", json=bench_walk(), headers=self.auth
        )
        created.raise_for_status()
        self.slug = created.json()["slug"]
        self.detail_url = (
            self.aggregator_url + "/api/activities/" + quote(created.json()["activity"]["id"], safe="")
        )
        self.config = job_config(self.aggregator)
        self.source_id = add_source(
            self.aggregator.extensions["engine"],
            self.publisher_url + "/feeds/activities",
            kind="localfeed",
            state="approved",
            config=self.config,
        )
        harvest_source(self.source_id, self.config)

    def edit_and_wait(self, marker: str) -> float:
        """Seconds from sending the edit to the query API showing it."""
        doc = bench_walk(description=marker)
        started = time.perf_counter()
        self.http.put(
            f"{self.publisher_url}/api/activities/{self.slug}", json=doc, headers=self.auth
        ).raise_for_status()
        while time.perf_counter() - started < EDIT_TIMEOUT:
            answer = self.http.get(self.detail_url)
            if answer.status_code == 200 and answer.json()["activity"].get("description") == marker:
                return time.perf_counter() - started
            time.sleep(OBSERVE_EVERY)
        raise RuntimeError(f"edit {marker!r} did not reach the query API within {EDIT_TIMEOUT} s")

    def subscribe(self) -> None:
        subscribe_source(self.source_id, self.config, self.aggregator_url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self.aggregator.extensions["engine"].connect() as conn:
                state = conn.execute(push_subscriptions.select()).first().state
            if state == "active":
                return
            time.sleep(0.05)
        raise RuntimeError("the publisher's hub did not verify the subscription within 30 s")

    def close(self) -> None:
        self.http.close()
        for server in self.servers:
            server.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=100, help="edits measured per mode (default 100)")
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between polls, polling mode"
    )
    parser.add_argument("--name", default="propagation", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)
    rng = random.Random(5)

    with tempfile.TemporaryDirectory(prefix="localfeed-bench-") as folder:
        bench = Bench(Path(folder), args.poll_interval)
        try:
            stop = start_scheduler(bench.config)
            polling = []
            for i in range(args.edits):
                # Edits land at random points of the polling cycle, as real ones do.
                time.sleep(rng.uniform(0, args.poll_interval))
                polling.append(bench.edit_and_wait(f"polled edit {i}"))
            stop.set()
            bench.subscribe()
            pushed = [bench.edit_and_wait(f"pushed edit {i}") for i in range(args.edits)]
        finally:
            bench.close()

    push, poll = percentiles(pushed), percentiles(polling)
    results = {
        "edits": args.edits,
        "websub": push | {"workers": 1},
        "polling_only": poll | {"harvest_interval_s": args.poll_interval},
        "budget_p95_s": BUDGET_P95_SECONDS,
        "websub_within_budget": push["p95"] <= BUDGET_P95_SECONDS,
        "polling_over_websub_p50": poll["p50"] / push["p50"],
    }
    path = write_results(args.name, results, args.results)
    rows = [
        ("WebSub push, one worker", push["p50"], push["p95"], push["max"]),
        (f"polling only, every {args.poll_interval:g} s", poll["p50"], poll["p95"], poll["max"]),
    ]
    title = f"Edit to queryable, {args.edits} edits each (milliseconds)"
    print(table(title, ["mode", "p50", "p95", "max"], [(m, *(v * 1000 for v in r)) for m, *r in rows]))
    verdict = "within" if results["websub_within_budget"] else "OVER"
    print(
        f"push p95 {push['p95']:.3f} s: {verdict} the {BUDGET_P95_SECONDS:g} s budget; "
        f"polling p50 is {results['polling_over_websub_p50']:.1f}x push p50 "
        f"(with the default HARVEST_INTERVAL of 900 s, polling alone waits about 450 s at p50)"
    )
    print(f"written to {path}")
    return results


if __name__ == "__main__":
    main()
