"""Helpers for sources whose feed is found by a job (aggregator.discovery): a slow site, and waiting.

A site that answers slowly is the outside world here, so it is a real HTTP server on loopback.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask import Flask, Response
from sqlalchemy import select

from aggregator.store import sources

# Long enough that a request waiting for the search would be plainly slow; the searches in these
# tests are held to it (and to DISCOVERY_TIME_LIMIT) so that each test stays a few seconds long.
SLOW_SECONDS = 4.0
OUTCOME_TIMEOUT = 20.0


class SlowSite:
    """A publisher's home page that answers after ``delay`` seconds, linking to ``feed_url`` if set.

    ``feed_url`` may change between requests (the site fixed, or its feed moved).
    """

    def __init__(self, delay: float = SLOW_SECONDS, feed_url: str | None = None, title: str = "Slow Walkers"):
        self.delay = delay
        self.feed_url = feed_url
        self.title = title
        self.requests = 0
        self._lock = threading.Lock()
        self.app = Flask("slow_site")
        self.app.add_url_rule("/", view_func=self.home)

    def home(self) -> Response:
        with self._lock:
            self.requests += 1
        time.sleep(self.delay)
        link = (
            f'<link rel="alternate" type="application/json" href="{self.feed_url}">' if self.feed_url else ""
        )
        return Response(
            f"<!doctype html><html><head><title>{self.title}</title>{link}</head>"
            "<body><h1>Our walks</h1></body></html>",
            mimetype="text/html",
        )


def search_ended(app: Flask, source_id: int, timeout: float = OUTCOME_TIMEOUT) -> Any:
    """Wait until the source's feed is found or could not be; returns its row."""
    deadline = time.monotonic() + timeout
    while True:
        with app.extensions["engine"].connect() as conn:
            row = conn.execute(select(sources).where(sources.c.id == source_id)).one()
        if row.state != "discovering":
            return row
        if time.monotonic() > deadline:
            pytest.fail(f"source {source_id} was still discovering its feed after {timeout} s")
        time.sleep(0.05)
