"""A failing source gets a clear error, keeps what it had, and is backed off or stopped."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from aggregator.store import copies, merged, sources
from federation.clock import utcnow
from tests.aggregator.conftest import follow, harvest, live, source_row
from tests.aggregator.feedserver import FeedServer
from tests.conftest import LiveServer
from tests.factories import weekly_activity


def _stored(app):
    with app.extensions["engine"].connect() as conn:
        return (
            conn.execute(select(copies.c.item_id, copies.c.data).order_by(copies.c.id)).all(),
            conn.execute(select(merged.c.item_id, merged.c.change_number).order_by(merged.c.id)).all(),
        )


def _point_at(app, source_id, url):
    """The source's feed moves to ``url`` (as if the publisher's server changed)."""
    with app.extensions["engine"].begin() as conn:
        conn.execute(
            update(sources).where(sources.c.id == source_id).values(feed_url=url, cursor=None, etag=None)
        )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def public_feed():
    """A feed on 127.0.0.2, which the aggregator is told to treat as a public address."""
    feed = FeedServer()
    server = LiveServer(feed.app, host="127.0.0.2").start()
    feed.base_url = server.url
    yield feed
    server.stop()


@pytest.mark.parametrize("case", ["unreachable", "slow", "oversized", "redirect-to-loopback"])
def test_a_failing_fetch_records_a_clear_error_and_keeps_the_data(
    case, public_feed, make_feed, make_aggregator
):
    loopback = make_feed()
    public_feed.put(weekly_activity(id=public_feed.activity_id("1")))
    app = make_aggregator(
        ALLOW_PRIVATE_NETWORKS=False,
        FETCH_PUBLIC_NETWORKS="127.0.0.2/32",
        FETCH_TIMEOUT=1.0,
        FETCH_MAX_BYTES=50_000,
    )
    source_id = follow(app, public_feed.feed_url)
    assert harvest(app, source_id).status == "ok"
    before = _stored(app)

    failing = {
        "unreachable": f"http://127.0.0.2:{_closed_port()}/feed",
        "slow": f"{public_feed.base_url}/slow?seconds=3",
        "oversized": f"{public_feed.base_url}/huge",
        "redirect-to-loopback": f"{public_feed.base_url}/redirect?to={loopback.feed_url}",
    }[case]
    _point_at(app, source_id, failing)
    result = harvest(app, source_id)

    assert result.status == "error"
    row = source_row(app, source_id)
    assert row.state == "approved"
    assert row.failures == 1
    assert row.last_error["thing"] == f"The feed {failing}"
    expected_cause = {
        "unreachable": "connection failed",
        "slow": "did not answer in time",
        "oversized": "larger than 50,000 bytes",
        "redirect-to-loopback": "loopback address",
    }[case]
    assert expected_cause in row.last_error["cause"]
    assert row.last_error["fix"]
    assert row.next_attempt_at > utcnow() + timedelta(seconds=20)  # backed off
    assert _stored(app) == before
    assert loopback.requests == []  # the redirect was refused before any connection
    page = app.test_client().get(f"/sources/{source_id}").text
    assert expected_cause in page.replace("&#39;", "'")


@pytest.mark.parametrize("code", [404, 410])
def test_gone_stops_the_source(code, make_feed, make_aggregator):
    feed = make_feed()
    feed.put(weekly_activity(id=feed.activity_id("1")))
    app = make_aggregator()
    source_id = follow(app, feed.feed_url)
    harvest(app, source_id)
    _point_at(app, source_id, f"{feed.base_url}/status/{code}")

    assert harvest(app, source_id).status == "gone"
    row = source_row(app, source_id)
    assert row.state == "stopped"
    assert str(code) in row.last_error["cause"] and "stopped" in row.last_error["fix"]
    assert list(live(app)) == [feed.activity_id("1")]  # kept until an operator decides
    assert harvest(app, source_id).status == "skipped"  # a stopped source is not fetched again
    assert len(feed.requests) == 3


def test_busy_source_is_retried_when_it_asks(make_feed, make_aggregator):
    feed = make_feed()
    app = make_aggregator()
    source_id = follow(app, f"{feed.base_url}/status/503?retry_after=120")
    result = harvest(app, source_id)
    assert result.status == "busy"
    row = source_row(app, source_id)
    assert row.state == "approved"
    wait = (row.next_attempt_at - row.last_harvest_at).total_seconds()
    assert 119 <= wait <= 121
    assert "503" in row.last_error["cause"]
