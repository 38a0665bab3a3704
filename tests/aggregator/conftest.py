"""Fixtures for the aggregator's tests: controllable feeds and aggregators on real databases."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert, select

from aggregator import create_app
from aggregator.harvest import HarvestResult, harvest_source
from aggregator.hub import stop_worker
from aggregator.settings import job_config
from aggregator.sources import add_source
from aggregator.store import copies, merged, sources
from aggregator.subscriptions import push_subscriptions
from federation.clock import utcnow
from tests.aggregator.feedserver import FeedServer


@pytest.fixture
def make_feed(serve) -> Callable[..., FeedServer]:
    """``make_feed(page_size=3)``: a FeedServer on its own loopback port."""

    def _make(page_size: int = 3) -> FeedServer:
        feed = FeedServer(page_size=page_size)
        feed.base_url = serve(feed.app).url
        return feed

    return _make


@pytest.fixture
def make_aggregator(tmp_path, request) -> Callable[..., Flask]:
    """``make_aggregator(database_url, **settings)``: an aggregator app on that database.

    Each app's hub thread is stopped when the test ends, before any fixture's teardown,
    so none outlives its test's database.
    """
    numbers = itertools.count(1)

    def _make(database_url: str | None = None, **settings: Any) -> Flask:
        config = {
            "DATABASE_URL": database_url or f"sqlite:///{tmp_path / f'aggregator{next(numbers)}.sqlite'}",
            "SECRET_KEY": "test",
            "ALLOW_PRIVATE_NETWORKS": True,
            "FETCH_TIMEOUT": 5.0,
            "TESTING": True,
            **settings,
        }
        app = create_app(config)
        request.node.addfinalizer(lambda: stop_worker(app))
        return app

    return _make


def follow(app: Flask, feed_url: str, trust: int = 50, kind: str | None = "localfeed") -> int:
    """Add and approve a source the way an operator would."""
    return add_source(
        app.extensions["engine"], feed_url, kind=kind, state="approved", trust=trust, config=app.config
    )


def harvest(app: Flask, source_id: int) -> HarvestResult:
    """One harvest run, the same function an rq worker runs."""
    return harvest_source(source_id, job_config(app))


def live(app: Flask) -> dict[str, dict[str, Any]]:
    """The merged items shown now: item id -> row mapping."""
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(merged).where(merged.c.state == "updated")).mappings().all()
    return {row["item_id"]: dict(row) for row in rows}


def source_row(app: Flask, source_id: int) -> Any:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(sources).where(sources.c.id == source_id)).one()


def copies_of(app: Flask, item_id: str) -> dict[int, dict[str, Any]]:
    """Which sources hold a copy of ``item_id``: source id -> the copy's data."""
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(copies.c.source_id, copies.c.data).where(copies.c.item_id == item_id))
        return {row.source_id: row.data for row in rows}


def subscribed(app: Flask, source_id: int, topic: str, *, pending: str | None = None) -> Any:
    """A push subscription row for ``source_id``, as the subscribe job leaves it."""
    now = utcnow()
    values = {
        "source_id": source_id,
        "hub_url": topic.rsplit("/", 1)[0] + "/websub",
        "topic": topic,
        "token": f"token-{source_id}-{'x' * 40}",
        "secret": "s" * 40,
        "state": "active" if pending is None else "requested",
        "pending": pending,
        "lease_seconds": 600,
        "expires_at": now,
        "requested_at": now,
        "deliveries": 0,
        "ignored": 0,
    }
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(push_subscriptions).values(**values))
        return conn.execute(
            select(push_subscriptions).where(push_subscriptions.c.source_id == source_id)
        ).one()
