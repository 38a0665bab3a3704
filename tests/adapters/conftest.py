"""Fixtures for the format adapters: the shared sample feeds, and feeds served from loopback.

Every adapter test fetches through the harvest's own ``SourceFetch`` over a real
``GuardedClient``, from a real HTTP server, so status handling, conditional requests
and bytes on the wire are the ones a harvest sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask, Response, request

from aggregator.harvest import SourceFetch
from federation.fetch import GuardedClient
from tests.conftest import LiveServer, need_service

# The real-world examples other people wrote (see their README for sources and licences):
# beside the checkout, as ../shared/samples, unless TEST_SAMPLES names the folder.
SAMPLES = Path(
    os.environ.get("TEST_SAMPLES") or Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
)
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def samples() -> Path:
    """The shared samples folder; skipped (outside CI) where this checkout has none."""
    if not (SAMPLES / "README.md").exists():
        need_service(
            "shared samples",
            f"no sample feeds at {SAMPLES.resolve()}",
            "set TEST_SAMPLES to the folder holding them (a checkout beside ../shared finds it by itself)",
        )
    return SAMPLES


class FeedSite:
    """A loopback web server whose routes a test fills in; it logs every request it answers."""

    def __init__(self, serve: Callable[[Flask], LiveServer]):
        self.routes: dict[str, Callable[[], Response | tuple]] = {}
        self.requests: list[str] = []
        app = Flask(__name__)

        @app.route("/<path:path>")
        def _answer(path: str):
            self.requests.append(request.full_path.rstrip("?"))
            handler = self.routes.get("/" + path)
            return handler() if handler else ("not here", 404)

        self.server = serve(app)
        self.url = self.server.url

    def file(self, path: str, body: bytes, content_type: str) -> str:
        """Serve ``body`` at ``path``; returns its absolute URL."""
        self.routes[path] = lambda: Response(body, content_type=content_type)
        return self.url + path

    def handler(self, path: str, answer: Callable[[], Response | tuple]) -> str:
        self.routes[path] = answer
        return self.url + path


@pytest.fixture
def site(serve) -> FeedSite:
    return FeedSite(serve)


@pytest.fixture
def client() -> Iterator[GuardedClient]:
    with GuardedClient(allow_private=True) as guarded:
        yield guarded


@pytest.fixture
def fetch_for(client: GuardedClient) -> Callable[..., SourceFetch]:
    """``fetch_for(url, cursor=None)``: the fetch a harvest of that source would hand an adapter."""

    def _fetch(url: str, cursor: str | None = None) -> SourceFetch:
        return SourceFetch(client, cursor or url, None, None)

    return _fetch
