"""A lossy loopback forwarder between a publisher's WebSub hub and an aggregator's callback.

It stands in for the network, not for any of our code: the aggregator's ``PUBLIC_URL``
names the proxy, so the hub posts its deliveries here. Verification requests (GET) pass
through untouched, so the subscription is made as usual. Of the deliveries (POST), a
share is dropped (answered 202, never forwarded: a push lost on the way), a share is held
and forwarded a little later, after newer deliveries have gone through (late and out of
order), and the rest are forwarded at once, the aggregator's answer passed back.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

FORWARDED_HEADERS = ("Content-Type", "Link", "X-Hub-Signature")


class FaultyProxy:
    """Forwards to ``target``, dropping ``drop`` of the deliveries and holding back ``delay`` of them."""

    def __init__(
        self,
        target: str,
        rng: random.Random,
        drop: float = 0.3,
        delay: float = 0.15,
        hold: tuple[float, float] = (0.5, 3.0),
    ) -> None:
        self.target = target.rstrip("/")
        self.rng, self.drop, self.delay, self.hold = rng, drop, delay, hold
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._held: set[threading.Timer] = set()
        self._client = httpx.Client(timeout=10)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            held = list(self._held)
        for timer in held:
            timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    @property
    def deliveries(self) -> int:
        return self.counts["forwarded"] + self.counts["dropped"] + self.counts["held"]

    @property
    def holding(self) -> int:
        with self._lock:
            return len(self._held)

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def forward(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self._client.request(method, self.target + path, content=body, headers=headers)

    def deliver(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """What happens to one delivery; returns the status the hub is answered with."""
        with self._lock:
            roll = self.rng.random()
        if roll < self.drop:
            self._count("dropped")
            return 202
        if roll < self.drop + self.delay:
            self._count("held")
            with self._lock:
                timer = threading.Timer(self.rng.uniform(*self.hold), self._late)
                timer.args = (path, body, headers, timer)  # it removes itself from the held set
                timer.daemon = True
                self._held.add(timer)
            timer.start()
            return 202
        try:
            status = self.forward("POST", path, body, headers).status_code
        except httpx.HTTPError:
            self._count("unreachable")
            return 502  # the aggregator is down: the hub retries later
        self._count("forwarded")
        return status

    def _late(self, path: str, body: bytes, headers: dict[str, str], timer: threading.Timer) -> None:
        try:
            self.forward("POST", path, body, headers)
            self._count("late")
        except httpx.HTTPError:
            self._count("late-lost")  # the aggregator was down when it came: lost, like a dropped one
        finally:
            with self._lock:
                self._held.discard(timer)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reports the counts
                pass

            def _headers(self) -> dict[str, str]:
                return {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers.get(name)}

            def _answer(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                try:
                    answer = proxy.forward("GET", self.path, b"", self._headers())
                except httpx.HTTPError:
                    self._answer(502)
                    return
                self._answer(
                    answer.status_code, answer.content, answer.headers.get("content-type", "text/plain")
                )

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(proxy.deliver(self.path, body, self._headers()))

        return Handler
