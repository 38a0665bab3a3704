"""The aggregator's own Atom and iCalendar feeds, serving a large merged set.

An aggregator that followed a source of 10,000 events serves them all again in its Atom
and iCalendar feeds, so these must stay linear and cheap per item. ``--items`` merged
activities of the synthetic network (``bench/network.py``: series and one-off events,
varied text) are written straight into a fresh SQLite aggregator, which is then served on
loopback; each feed is
fetched over real HTTP ``--fetches`` times (the best is kept: interference only ever
slows a run down).

The baseline, in the same run, is the least any feed of these items must pay: reading
the same rows from the database and writing them out as JSON (orjson). The ratio says how
many times that floor each feed costs; it does not depend on how fast the machine is.

Run: .venv/bin/python bench/feeds.py [--items 10000] [--fetches 3]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import insert, select

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import create_app
from aggregator.store import merged
from bench.common import LoopbackServer, stopwatch, table, write_results
from bench.network import published, publisher_network


def build(database: Path, items: int) -> Any:
    """A fresh aggregator holding ``items`` merged activities, written directly."""
    app = create_app({"DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": "bench"})
    now = datetime.now(UTC)
    (publisher,) = publisher_network(1, items)
    rows = []
    for number, doc in enumerate(published(publisher, "https://publisher.example", now), start=1):
        source = {"source_url": "https://publisher.example/feeds/activities", "item_id": doc["id"]}
        rows.append(
            {"item_id": doc["id"], "kind": doc["type"], "data": doc, "provenance": [source],
             "state": "updated", "change_number": number, "modified_at": now}
        )  # fmt: skip
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(merged), rows)
    return app


def floor_seconds(app: Any) -> float:
    """Read every merged activity and write them all out as JSON: what any feed must pay."""
    query = select(merged.c.data).order_by(merged.c.change_number)
    with stopwatch() as elapsed, app.extensions["engine"].connect() as conn:
        orjson.dumps([row.data for row in conn.execute(query)])
    return elapsed()


def best_fetch(url: str, fetches: int) -> tuple[float, int]:
    """The fastest of ``fetches`` GETs of ``url`` (seconds), and the body's size."""
    times, size = [], 0
    with httpx.Client(timeout=600) as client:
        for _ in range(fetches):
            with stopwatch() as elapsed:
                response = client.get(url)
            response.raise_for_status()
            times.append(elapsed())
            size = len(response.content)
    return min(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--fetches", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        app = build(Path(folder) / "aggregator.sqlite", args.items)
        floor = min(floor_seconds(app) for _ in range(args.fetches))
        server = LoopbackServer(app)
        try:
            figures = {path: best_fetch(server.url + path, args.fetches) for path in FEEDS}
        finally:
            server.stop()
            app.extensions["engine"].dispose()

    rows = [["JSON floor (read + orjson)", floor, None, 1.0, floor / args.items * 1e6]]
    rows += [
        [path, seconds, size, seconds / floor, seconds / args.items * 1e6]
        for path, (seconds, size) in figures.items()
    ]
    print(
        table(
            f"Aggregator feeds over {args.items:,} merged activities (best of {args.fetches})",
            ["what", "seconds", "bytes", "× floor", "µs per item"],
            rows,
        )
    )
    write_results(
        "feeds",
        {
            "items": args.items,
            "floor_seconds": floor,
            "feeds": {
                path: {"seconds": seconds, "bytes": size, "ratio": seconds / floor}
                for path, (seconds, size) in figures.items()
            },
        },
    )


FEEDS = ("/feeds/activities.ics", "/feeds/activities.atom")

if __name__ == "__main__":
    main()
