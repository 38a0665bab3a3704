"""Finding a source's feed runs as a job: the operator's page answers at once, then shows the outcome.

Over real HTTP: the aggregator and a publisher's home page that answers slowly are real servers
on loopback. Approving a join request, adding a home page and finding a feed again each
return while the home page is still sleeping; the source's page shows "finding the feed…",
then the feed found (and harvesting starts if approved), or why none was found and what to do.
In-process jobs (no Redis) on both databases, and rq jobs on a real Redis.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import select, update

from aggregator.auth import create_operator
from aggregator.discovery import DiscoveryError, run_discovery, start_discovery
from aggregator.settings import job_config
from aggregator.sources import add_source
from aggregator.store import sources
from tests.aggregator.conftest import live, source_row
from tests.aggregator.finding import SLOW_SECONDS, SlowSite, search_ended
from tests.factories import weekly_activity

EMAIL, PASSWORD = "ops@council.example", "correct horse battery"
# The operator's request must come back well before the slow home page does.
ANSWERED_WITHIN = 2.0


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


class Site:
    """The aggregator served on loopback, with an operator's browser (cookies kept) and the public's."""

    def __init__(self, app: Flask, url: str):
        self.app = app
        self.url = url
        create_operator(app.extensions["engine"], EMAIL, PASSWORD)
        self.operator = httpx.Client(base_url=url, timeout=30)
        self.public = httpx.Client(base_url=url, timeout=30)
        token = _csrf(self.operator.get("/operator/login").text)
        logged_in = self.operator.post(
            "/operator/login", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD}
        )
        assert logged_in.status_code == 302

    def post(self, path: str, **form: str) -> tuple[httpx.Response, float]:
        """The operator posts a form from the sources page; returns the response and how long it took."""
        token = _csrf(self.operator.get("/operator/sources").text)
        started = time.monotonic()
        response = self.operator.post(path, data={"csrf_token": token, **form})
        return response, time.monotonic() - started

    def ask_to_join(self, url: str, name: str = "Slow Walkers") -> None:
        token = _csrf(self.public.get("/join").text)
        asked = self.public.post(
            "/join", data={"csrf_token": token, "url": url, "name": name, "contact": "sec@walkers.example"}
        )
        assert asked.status_code == 200, asked.text

    def close(self) -> None:
        self.operator.close()
        self.public.close()


@pytest.fixture
def make_site(make_aggregator, serve) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def _make(database_url: str | None = None, **settings) -> Site:
        app = make_aggregator(database_url, RATELIMIT_ENABLED=False, **settings)
        site = Site(app, serve(app).url)
        sites.append(site)
        return site

    yield _make
    for site in sites:
        site.close()


def _approve_join_request(site: Site, home_url: str) -> httpx.Response:
    """A group asks to join, giving its home page; the operator approves. The answer must not wait for it."""
    site.ask_to_join(home_url)
    approved, took = site.post("/operator/sources/1/approve")
    assert approved.status_code == 302 and approved.headers["Location"] == "/sources/1"
    assert took < ANSWERED_WITHIN, f"approving took {took:.1f} s: it waited for the {SLOW_SECONDS} s page"
    return approved


def test_approving_a_join_request_answers_at_once_then_the_page_shows_the_feed(
    make_site, make_feed, serve, database_url
):
    feed = make_feed()
    feed.put(weekly_activity(id=feed.activity_id("walk"), name="Tuesday walk"))
    home = SlowSite(feed_url=feed.feed_url)
    home_url = serve(home.app).url + "/"
    site = make_site(database_url)

    _approve_join_request(site, home_url)
    page = site.operator.get("/sources/1").text
    assert "Finding the feed…" in page and "Harvesting starts once it is found." in page
    assert "Approved Slow Walkers" in page  # the approval is recorded and said at once
    assert source_row(site.app, 1).state == "discovering"
    assert "Finding the feed…" in site.operator.get("/operator/sources").text

    row = search_ended(site.app, 1)
    assert (row.state, row.feed_url, row.kind, row.name, row.discovery, row.last_error) == (
        "approved", feed.feed_url, "localfeed", "Slow Walkers", None, None,
    )  # fmt: skip
    page = site.operator.get("/sources/1").text
    assert f'Feed: <a href="{feed.feed_url}">{feed.feed_url}</a> (localfeed)' in page
    assert "State: <strong>Harvesting</strong>" in page and "Finding the feed" not in page
    # Approved, so harvesting starts once the feed is known: the walk is shown.
    deadline = time.monotonic() + 20
    while not live(site.app) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [item["data"]["name"] for item in live(site.app).values()] == ["Tuesday walk"]
    assert site.public.get("/sources.json").json()["sources"][0]["feed_url"] == feed.feed_url


def test_a_slow_home_page_without_a_feed_is_reported_with_the_fix_and_nothing_is_harvested(make_site, serve):
    home = SlowSite(feed_url=None)
    home_url = serve(home.app).url + "/"
    site = make_site()

    _approve_join_request(site, home_url)
    row = search_ended(site.app, 1)
    assert row.state == "no-feed" and row.discovery["then"] == "approved"  # the approval is kept
    page = site.operator.get("/sources/1").text
    assert "No feed was found." in page
    assert f"Finding the feed at {home_url}" in page
    assert "is neither a feed we can read nor a page that links to one" in page
    assert "What to do: Give the feed&#39;s own address instead." in page
    assert "Find the feed again" in page  # the operator's way to retry, on the page
    assert "No feed found" in site.operator.get("/operator/sources").text
    assert site.public.get("/sources.json").json()["sources"] == []
    # A source without a feed cannot be harvested or approved into harvesting by mistake.
    refused, _ = site.post("/operator/sources/1/harvest")
    assert refused.headers["Location"] == "/sources/1"
    assert "has no feed yet" in site.operator.get("/sources/1").text
    assert source_row(site.app, 1).state == "no-feed"


def test_the_search_stops_at_its_time_limit_and_says_so(make_site, serve):
    home = SlowSite(delay=SLOW_SECONDS)
    site = make_site(DISCOVERY_TIME_LIMIT=1.5)
    added, took = site.post("/operator/sources", url=serve(home.app).url + "/", approve="1")
    assert added.headers["Location"] == "/sources/1" and took < ANSWERED_WITHIN

    row = search_ended(site.app, 1)
    assert row.state == "no-feed"
    assert "stopped at its time limit of 1.5 seconds" in row.last_error["cause"]
    assert "Check that the address opens in a browser" in row.last_error["fix"]
    assert "time limit of 1.5 seconds" in site.operator.get("/sources/1").text


def test_adding_a_home_page_answers_at_once_and_the_source_waits_for_approval(make_site, make_feed, serve):
    feed = make_feed()
    home = SlowSite(feed_url=feed.feed_url, title="Mitcham Walkers")
    home_url = serve(home.app).url + "/"
    site = make_site()

    added, took = site.post("/operator/sources", url=home_url, trust="70")  # "approve now" unticked
    assert added.status_code == 302 and added.headers["Location"] == "/sources/1"
    assert took < ANSWERED_WITHIN
    assert f"Added {home_url}: finding its feed" in site.operator.get("/sources/1").text
    # Not approved: nobody but the operator sees it, while its feed is found and after.
    assert site.public.get("/sources/1").status_code == 404
    row = search_ended(site.app, 1)
    assert (row.state, row.feed_url, row.name, row.trust) == ("pending", feed.feed_url, "Mitcham Walkers", 70)
    assert site.public.get("/sources/1").status_code == 404
    assert feed.requests == [("/feed", 200)]  # found, not harvested: it is not approved yet

    # The same address again is refused at once, without fetching anything.
    again, _ = site.post("/operator/sources", url=feed.feed_url)
    assert again.headers["Location"] == "/operator/sources"
    assert "already source 1" in site.operator.get("/operator/sources").text
    assert home.requests == 1


def test_finding_the_feed_again_after_the_site_is_fixed(make_site, make_feed, serve):
    feed = make_feed()
    feed.put(weekly_activity(id=feed.activity_id("walk"), name="Tuesday walk"))
    home = SlowSite(delay=0.5, feed_url=None)
    site = make_site()
    site.post("/operator/sources", url=serve(home.app).url + "/", approve="1")
    assert search_ended(site.app, 1).state == "no-feed"

    home.feed_url = feed.feed_url  # the publisher adds the link
    again, took = site.post("/operator/sources/1/rediscover")
    assert again.headers["Location"] == "/sources/1" and took < ANSWERED_WITHIN
    row = search_ended(site.app, 1)
    assert (row.state, row.feed_url, row.last_error) == ("approved", feed.feed_url, None)
    deadline = time.monotonic() + 20
    while not live(site.app) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(live(site.app)) == 1

    # A feed that moves: finding it again follows it, from the start of the new feed.
    moved = make_feed()
    home.feed_url = moved.feed_url
    site.post("/operator/sources/1/rediscover")
    row = search_ended(site.app, 1)
    assert (row.state, row.feed_url) == ("approved", moved.feed_url)


def test_only_the_latest_search_records_its_outcome(make_aggregator, make_feed):
    feed = make_feed()
    app = make_aggregator()
    engine = app.extensions["engine"]
    source_id = add_source(engine, feed.feed_url, kind="localfeed", state="paused", config=app.config)
    config = job_config(app)
    start_discovery(engine, source_id, "paused", config, "http://agg.example/")
    first_token = source_row(app, source_id).discovery["job"]
    search_ended(app, source_id)
    # A search asked for earlier (a slow one, say) that ends later changes nothing.
    asked_again = {"then": "paused", "since": "2026-01-01T00:00:00+00:00", "job": "later"}
    with engine.begin() as conn:
        conn.execute(
            update(sources)
            .where(sources.c.id == source_id)
            .values(state="discovering", discovery=asked_again)
        )
    assert run_discovery(source_id, first_token, config, "http://agg.example/") == "superseded"
    assert source_row(app, source_id).state == "discovering"
    assert run_discovery(source_id, "later", config, "http://agg.example/").startswith("found localfeed")
    assert source_row(app, source_id).state == "paused"


def test_the_command_lines_add_waits_for_the_search_within_its_time_limit(make_aggregator, serve):
    home = SlowSite(delay=SLOW_SECONDS, feed_url=None)
    app = make_aggregator(DISCOVERY_TIME_LIMIT=1.0)
    with pytest.raises(DiscoveryError, match="time limit of 1 second,"):
        add_source(app.extensions["engine"], serve(home.app).url + "/", config=app.config)
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(sources)).all() == []


def test_with_redis_the_search_is_an_rq_job(make_site, make_feed, serve, redis_url, unique_name):
    feed = make_feed()
    feed.put(weekly_activity(id=feed.activity_id("walk"), name="Tuesday walk"))
    home = SlowSite(delay=1.0, feed_url=feed.feed_url)
    site = make_site(REDIS_URL=redis_url, RQ_QUEUE=unique_name)
    connection = Redis.from_url(redis_url)
    queue = Queue(unique_name, connection=connection)
    try:
        _approve_join_request(site, serve(home.app).url + "/")
        assert home.requests == 0 and queue.count == 1  # queued for a worker, nothing fetched yet
        assert source_row(site.app, 1).state == "discovering"
        SimpleWorker([queue], connection=connection).work(burst=True)  # the search, then the harvest
        row = source_row(site.app, 1)
        assert (row.state, row.feed_url) == ("approved", feed.feed_url)
        assert [item["data"]["name"] for item in live(site.app).values()] == ["Tuesday walk"]
        assert "(localfeed)" in site.operator.get("/sources/1").text
    finally:
        queue.delete(delete_jobs=True)
