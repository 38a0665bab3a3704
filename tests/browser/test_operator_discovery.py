"""An operator approves join requests in Chromium; the feed is found by a job, not in the click.

Two groups ask to join through the public form, each giving a home page that answers slowly:
one links to its feed, the other to nothing. The operator logs in and clicks "Approve" on
each: the page comes back within a second or two, long before the home page answers, saying
the feed is being found; later (the page checks by itself) it shows the feed found, or why
none was and what to do. axe-core finds no WCAG 2.2 A/AA problem on any page on the way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from aggregator import create_app
from aggregator.auth import create_operator
from aggregator.hub import stop_worker
from tests.aggregator.feedserver import FeedServer
from tests.aggregator.finding import OUTCOME_TIMEOUT, SLOW_SECONDS, SlowSite
from tests.conftest import assert_accessible
from tests.factories import weekly_activity

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "ops@council.example", "correct horse battery"
ANSWERED_WITHIN = 2.0  # seconds; the home pages take SLOW_SECONDS


def ask_to_join(page, base: str, name: str, url: str) -> None:
    """What a group's secretary does on the public form."""
    page.goto(f"{base}/join")
    assert_accessible(page)
    page.get_by_label("Your group or organisation").fill(name)
    page.get_by_label("Feed or website address").fill(url)
    page.get_by_label("Email for the operator's reply").fill("sec@walkers.example")
    page.get_by_role("button", name="Send request").click()
    page.wait_for_load_state()
    assert "waiting for an operator" in page.content()


def approve(page, base: str, name: str) -> float:
    """The operator clicks "Approve" on the request's row; returns how long until the next page showed."""
    page.goto(f"{base}/operator/sources")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name))
    started = time.monotonic()
    with page.expect_navigation():
        row.get_by_role("button", name="Approve").click()
    took = time.monotonic() - started
    assert page.get_by_role("heading", level=1).inner_text() == name
    return took


@pytest.fixture
def aggregator(tmp_path) -> Iterator:
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'aggregator.sqlite'}",
            "SECRET_KEY": "test",
            "ALLOW_PRIVATE_NETWORKS": True,  # the feeds and home pages are on loopback
            "FETCH_TIMEOUT": 10.0,
            "RATELIMIT_ENABLED": False,
        }
    )
    create_operator(app.extensions["engine"], EMAIL, PASSWORD)
    yield app
    stop_worker(app)


def test_approving_join_requests_for_slow_home_pages(page, aggregator, serve):
    feed = FeedServer()
    feed.base_url = serve(feed.app).url
    feed.put(weekly_activity(id=feed.activity_id("walk"), name="Tuesday walk"))
    found_home = serve(SlowSite(feed_url=feed.feed_url).app).url + "/"
    bare_home = serve(SlowSite(feed_url=None).app).url + "/"
    base = serve(aggregator).url

    ask_to_join(page, base, "Mitcham Walkers", found_home)
    ask_to_join(page, base, "Colliers Wood Knitters", bare_home)

    page.goto(f"{base}/operator/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/operator/sources")
    assert_accessible(page)

    took = approve(page, base, "Mitcham Walkers")
    assert took < ANSWERED_WITHIN, f"the click took {took:.1f} s: it waited for the {SLOW_SECONDS} s page"
    status = page.get_by_role("status").filter(has_text="Finding the feed…")
    assert "Harvesting starts once it is found." in status.inner_text()
    assert_accessible(page)
    # The page checks for the outcome itself and reloads once there is one.
    page.get_by_text(f"Feed: {feed.feed_url} (localfeed)").wait_for(timeout=OUTCOME_TIMEOUT * 1000)
    assert "State: Harvesting." in page.locator("main").inner_text()
    assert_accessible(page)

    took = approve(page, base, "Colliers Wood Knitters")
    assert took < ANSWERED_WITHIN, f"the click took {took:.1f} s: it waited for the {SLOW_SECONDS} s page"
    alert = page.get_by_role("alert")
    alert.wait_for(timeout=OUTCOME_TIMEOUT * 1000)
    told = alert.inner_text()
    assert "No feed was found." in told and "neither a feed we can read nor a page that links to one" in told
    assert "What to do: Give the feed's own address instead." in told
    assert page.get_by_role("button", name="Find the feed again").is_visible()
    assert_accessible(page)

    page.goto(f"{base}/operator/sources")
    sources_table = page.locator("table").inner_text()
    assert "No feed found" in sources_table and "Harvesting" in sources_table
    assert_accessible(page)
