"""Fan-out: one publisher's hub pushing each edit to 1,000 subscribers; from the edit to the last delivery.

A real publisher app (SQLite, its hub worker thread, as ``localfeed-publisher serve`` runs
it without Redis) on loopback, and one light receiver: a threaded HTTP server in a
process of its own that answers every subscriber's callback (``/callbacks/<n>``), echoing the
hub's verification challenge and noting when each push arrives. Each subscriber subscribes
through the hub's own ``POST /websub`` with a secret of its own, so every push is signed,
as the aggregator's are. Each edit is a ``PUT`` through the publisher's JSON API; the clock
runs from sending it to the push reaching the last subscriber, and every subscriber must
get every edit exactly once.

Issue 21's budget: p95 from an edit to its last delivery <= 2 s with 1,000 subscribers.

Run: .venv/bin/python bench/fanout.py [--subscribers 1000 --edits 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import publisher
from bench.common import RESULTS, LoopbackServer, percentiles, stopwatch, table, write_results
from demo.sample_data import sample_activity
from publisher.extensions import get_store
from publisher.hub import HUB_KEY

BUDGET_P95_SECONDS = 2.0
DEADLINE = 120.0  # an edit (or the subscribing) slower than this fails the run instead of waiting for ever
MARKER = re.compile(rb"fan-out edit (\d+)\b")


def serve_callbacks(ready: Connection) -> None:
    """The receiver process: every callback on one light threaded server; sends its port on ``ready``.

    Verifications are answered and pushes noted with their arrival time (``time.time()``, a
    clock both processes share) by the edit they carry. ``GET /arrived/<n>`` tells how many
    callbacks have edit ``n`` and ``GET /report`` everything seen, for the benchmark to read.
    """
    verified: set[str] = set()
    # edit number -> callback path -> arrival times, one per push received
    arrivals: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    unsigned = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # the standard library's name
            parts = urlsplit(self.path)
            if parts.path.startswith("/arrived/"):
                with lock:
                    count = len(arrivals[int(parts.path.rsplit("/", 1)[1])])
                self._answer(200, str(count).encode())
                return
            if parts.path == "/report":
                with lock:
                    report = {"verified": sorted(verified), "unsigned": unsigned, "arrivals": arrivals}
                    body = json.dumps(report).encode()
                self._answer(200, body)
                return
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            if query.get("hub.mode") == "subscribe":
                with lock:
                    verified.add(parts.path)
            self._answer(200, query.get("hub.challenge", "").encode())

        def do_POST(self) -> None:  # the standard library's name
            nonlocal unsigned
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                unsigned += "X-Hub-Signature" not in self.headers
                for number in {int(found) for found in MARKER.findall(body)}:
                    arrivals[number][self.path].append(arrived)
            self._answer(204, b"")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # no line per request in the report

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024  # a thousand verifications may come close together
    ready.send(server.server_port)
    server.serve_forever(poll_interval=0.05)


class Receiver:
    """The subscribers' side: :func:`serve_callbacks` in a process of its own.

    Subscribers are other machines: a receiver in the publisher's process would take the
    same interpreter lock as the hub's threads, and the benchmark would time the two
    sharing it instead of the hub.
    """

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process running threads
        ours, theirs = context.Pipe()
        self._process = context.Process(target=serve_callbacks, args=(theirs,), daemon=True)
        self._process.start()
        end = time.monotonic() + DEADLINE
        while not ours.poll(0.1):
            if not self._process.is_alive() or time.monotonic() > end:
                raise RuntimeError("the receiver process did not start (its error, if any, is above)")
        self.url = f"http://127.0.0.1:{ours.recv()}"
        self._http = httpx.Client(timeout=30)

    def arrived(self, number: int) -> int:
        """How many callbacks have had edit ``number`` so far."""
        return int(self._http.get(f"{self.url}/arrived/{number}").text)

    def report(self) -> dict[str, Any]:
        """What the receiver saw: verified callbacks, unsigned pushes, arrival times by edit and callback."""
        report: dict[str, Any] = self._http.get(f"{self.url}/report").json()
        report["arrivals"] = {int(number): paths for number, paths in report["arrivals"].items()}
        return report

    def stop(self) -> None:
        self._http.close()
        self._process.terminate()
        self._process.join(timeout=5)


def the_activity(marker: str) -> dict[str, Any]:
    doc = sample_activity(random.Random(7), organizer="Mitcham Walkers", today=date(2026, 1, 5), kind=0)
    return {**doc, "name": "Fan-out Walk", "description": f"A walk. {marker}."}


def wait_for(done: Any, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not done():
        if time.monotonic() > end:
            raise RuntimeError(f"{what} did not happen within {DEADLINE:.0f} s")
        # Not often: each look is a request or a query in the hub's process, and the clock
        # runs on arrival times the receiver notes, not on when the benchmark looks.
        time.sleep(0.05)


def run(folder: Path, subscribers: int, edits: int) -> dict[str, Any]:
    app = publisher.create_app(
        {
            "INSTANCE_PATH": str(folder / "publisher"),
            "SECRET_KEY": "bench",
            "ALLOW_PRIVATE_NETWORKS": True,
            "RATELIMIT_ENABLED": False,
        }
    )
    server, receiver = LoopbackServer(app), Receiver()
    http = httpx.Client(timeout=30)
    try:
        with app.app_context():
            store = get_store()
            group = store.add_group("Mitcham Walkers")
            _, token = store.create_token(group.id, "bench")
        auth = {"Authorization": f"Bearer {token}"}
        created = http.post(server.url + "/api/activities", json=the_activity("first"), headers=auth)
        created.raise_for_status()
        slug = created.json()["slug"]
        topic = server.url + "/feeds/activities"

        callbacks = [f"/callbacks/{n}" for n in range(subscribers)]
        with stopwatch() as subscribing:
            for n, path in enumerate(callbacks):
                form = {
                    "hub.mode": "subscribe",
                    "hub.topic": topic,
                    "hub.callback": receiver.url + path,
                    "hub.secret": f"secret-of-subscriber-{n}",
                }
                http.post(server.url + "/websub", data=form).raise_for_status()
            hub = app.extensions[HUB_KEY].hub
            wait_for(
                lambda: sum(s["state"] == "active" for s in hub.subscribers()) == subscribers,
                f"the verification of {subscribers} subscriptions",
            )
        verified = receiver.report()["verified"]
        if set(verified) != set(callbacks):
            raise RuntimeError(f"{len(verified)} of {subscribers} callbacks were asked to verify")

        to_last, to_first, each, started = [], [], [], {}
        for number in range(edits):
            doc = the_activity(f"fan-out edit {number}")
            started[number] = time.time()
            http.put(f"{server.url}/api/activities/{slug}", json=doc, headers=auth).raise_for_status()
            wait_for(lambda n=number: receiver.arrived(n) == subscribers, f"edit {number} reaching all")
        time.sleep(0.5)  # a duplicate push would arrive within this
        report = receiver.report()
        for number in range(edits):
            times = [t - started[number] for path in callbacks for t in report["arrivals"][number][path]]
            to_last.append(max(times))
            to_first.append(min(times))
            each += times
        copies = [len(times) for number in range(edits) for times in report["arrivals"][number].values()]
        if copies != [1] * (subscribers * edits) or report["unsigned"]:
            raise RuntimeError(
                f"pushes received: {sum(copies)} for {subscribers} subscribers x {edits} edits "
                f"(most to one subscriber for one edit: {max(copies)}), {report['unsigned']} unsigned"
            )
    finally:
        http.close()
        server.stop()
        receiver.stop()
        publisher.hub.stop_worker(app)
    last, first = percentiles(to_last), percentiles(to_first)
    spread = last["mean"] - first["mean"]  # from the first subscriber served to the last, on average
    return {
        "subscribers": subscribers,
        "edits": edits,
        "subscribing_seconds": subscribing(),
        "edit_to_last_delivery": last,
        "edit_to_first_delivery": first,
        "edit_to_each_delivery": percentiles(each),
        "deliveries_per_second": (subscribers - 1) / spread if spread > 0 else None,
        "every_subscriber_got_every_edit_once": True,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000, help="subscribers of the feed")
    parser.add_argument("--edits", type=int, default=10, help="edits timed (default 10)")
    parser.add_argument("--name", default="fanout", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="localfeed-bench-") as folder:
        measured = run(Path(folder), args.subscribers, args.edits)
    last, first, each = (
        measured[key] for key in ("edit_to_last_delivery", "edit_to_first_delivery", "edit_to_each_delivery")
    )
    print(
        table(
            f"One hub, {args.subscribers:,} subscribers, {args.edits} edits: seconds from the edit",
            ["to", "p50", "p95", "max"],
            [
                ["first delivery", first["p50"], first["p95"], first["max"]],
                ["each delivery", each["p50"], each["p95"], each["max"]],
                ["last delivery", last["p50"], last["p95"], last["max"]],
            ],
        )
    )
    rate = measured["deliveries_per_second"]
    verdict = "within" if last["p95"] <= BUDGET_P95_SECONDS else "OVER"
    print(
        f"edit to last delivery p95 {last['p95']:.2f} s: {verdict} the {BUDGET_P95_SECONDS:g} s budget; "
        f"about {rate or 0:,.0f} deliveries a second; subscribing and verifying took "
        f"{measured['subscribing_seconds']:.1f} s; every subscriber got every edit once, signed."
    )
    document = measured | {
        "budget_p95_s": BUDGET_P95_SECONDS,
        "within_budget": last["p95"] <= BUDGET_P95_SECONDS,
    }
    path = write_results(args.name, document, args.results)
    print(f"\nresults: {path}")
    return document


if __name__ == "__main__":
    main()
