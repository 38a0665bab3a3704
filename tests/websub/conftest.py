"""A real publisher and a real aggregator on loopback, joined by WebSub.

``make_world(...)`` serves both apps, gives the publisher a group and an API token, has
the aggregator follow the publisher's RPDE feed (one harvest, so its cursor is at the
end) and subscribe to its hub, and waits until the hub has verified the subscription.
Each app is wrapped in a :class:`Gate`, a WSGI middleware the test uses to refuse the
feed (so only push can bring a change) or to fail callbacks (so the hub must retry).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

import aggregator
import publisher
from aggregator.harvest import harvest_source
from aggregator.hub import stop_worker as stop_aggregator_worker
from aggregator.settings import job_config
from aggregator.sources import add_source
from aggregator.subscriptions import push_subscriptions, subscribe_source
from publisher.extensions import get_store
from publisher.hub import stop_worker as stop_publisher_worker
from publisher.store import Store


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "the condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Gate:
    """WSGI middleware: answers ``status`` to matching requests while the rule holds, and logs them all."""

    app: Any
    block_feed: bool = False  # 503 to GET of the RPDE feed: the aggregator cannot poll
    fail_callbacks: int = 0  # answer 500 to this many callback POSTs first
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        status = None
        if self.block_feed and method == "GET" and path == "/feeds/activities":
            status = "503 Service Unavailable"
        elif self.fail_callbacks and method == "POST" and path.startswith("/websub/callback/"):
            self.fail_callbacks -= 1
            status = "500 Internal Server Error"
        if status is None:
            self.seen.append((method, path, 0))
            return self.app(environ, start_response)
        self.seen.append((method, path, int(status[:3])))
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(status, [("Content-Type", "text/plain"), ("Retry-After", "3600")])
        return [b"refused by the test's gate\n"]


@dataclass
class World:
    publisher: Flask
    aggregator: Flask
    publisher_url: str
    aggregator_url: str
    publisher_gate: Gate
    aggregator_gate: Gate
    publisher_server: Any
    token: str
    source_id: int
    http: httpx.Client

    @property
    def store(self) -> Store:
        with self.publisher.app_context():
            return get_store()

    @property
    def feed_url(self) -> str:
        return self.publisher_url + "/feeds/activities"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.http.request(method, self.publisher_url + "/api" + path, headers=headers, **kwargs)

    def subscription(self) -> Any:
        with self.aggregator.extensions["engine"].connect() as conn:
            return conn.execute(
                select(push_subscriptions).where(push_subscriptions.c.source_id == self.source_id)
            ).first()

    def found(self, name: str) -> list[dict[str, Any]]:
        """The aggregator's query API results for ``name``."""
        answer = self.http.get(self.aggregator_url + "/api/activities", params={"q": name})
        answer.raise_for_status()
        return [item["activity"] for item in answer.json()["items"] if item["activity"]["name"] == name]


# Each app's hub thread is stopped when the test ends (a finalizer of the test, so it runs
# before any fixture's teardown): none polls a database that ``database_url`` has dropped.


@pytest.fixture
def make_publisher_app(tmp_path, request) -> Callable[..., Flask]:
    def _make(**config: Any) -> Flask:
        settings = {
            "INSTANCE_PATH": str(tmp_path / "publisher"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'publisher.sqlite'}",
            "SECRET_KEY": "test-secret",
            "ALLOW_PRIVATE_NETWORKS": True,
            "RATELIMIT_ENABLED": False,
            "HUB_POLL_SECONDS": 0.2,
            **config,
        }
        app = publisher.create_app(settings)
        request.node.addfinalizer(lambda: stop_publisher_worker(app))
        return app

    return _make


@pytest.fixture
def make_aggregator_app(tmp_path, request) -> Callable[..., Flask]:
    def _make(**config: Any) -> Flask:
        settings = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'aggregator.sqlite'}",
            "SECRET_KEY": "test",
            "ALLOW_PRIVATE_NETWORKS": True,
            "FETCH_TIMEOUT": 5.0,
            "HARVEST_INTERVAL": 3600,  # no scheduler runs here anyway: only push or the test harvests
            "HUB_POLL_SECONDS": 0.2,
            **config,
        }
        app = aggregator.create_app(settings)
        request.node.addfinalizer(lambda: stop_aggregator_worker(app))
        return app

    return _make


@pytest.fixture
def make_world(serve, make_publisher_app, make_aggregator_app) -> Iterator[Callable[..., World]]:
    clients: list[httpx.Client] = []

    def _make(
        publisher_config: dict[str, Any] | None = None,
        aggregator_config: dict[str, Any] | None = None,
        subscribe: bool = True,
    ) -> World:
        pub = make_publisher_app(**(publisher_config or {}))
        agg = make_aggregator_app(**(aggregator_config or {}))
        pub_gate, agg_gate = Gate(pub.wsgi_app), Gate(agg.wsgi_app)
        pub.wsgi_app, agg.wsgi_app = pub_gate, agg_gate
        pub_server = serve(pub)
        pub_url, agg_url = pub_server.url, serve(agg).url
        agg.config["PUBLIC_URL"] = agg_url  # the callback address the publisher's hub must reach
        with pub.app_context():
            store = get_store()
            group = store.add_group("Mitcham Walkers")
            _, token = store.create_token(group.id, "tests")
        source_id = add_source(
            agg.extensions["engine"],
            pub_url + "/feeds/activities",
            kind="localfeed",
            state="approved",
            config=agg.config,
        )
        http = httpx.Client(timeout=10)
        clients.append(http)
        world = World(pub, agg, pub_url, agg_url, pub_gate, agg_gate, pub_server, token, source_id, http)
        assert harvest_source(source_id, job_config(agg)).status in ("ok", "not-modified")
        if subscribe:
            assert subscribe_source(source_id, job_config(agg), agg_url) == "requested"
            wait_for(
                lambda: world.subscription().state == "active", what="the hub to verify the subscription"
            )
        return world

    yield _make
    for http in clients:
        http.close()
