"""The operator's sources page read at a phone's width and at 200% zoom, in Chromium.

Two sources with long feed addresses, one harvested (its server refuses the connection,
so the page has an outcome and a time to show): the table reflows instead of scrolling
sideways, each row's buttons are named for their source, the harvest's outcome is a
sentence with a UK time, and "Approve now" starts unticked.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

from aggregator import create_app
from aggregator.auth import create_operator
from aggregator.harvest import harvest_source
from aggregator.hub import stop_worker
from aggregator.sources import add_source
from tests.conftest import assert_accessible

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "ops@council.example", "correct horse battery"
# 200% zoom of a 1280-pixel-wide window lays the page out in 640 CSS pixels; 390 is a phone.
WIDTHS = (640, 390)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def aggregator(tmp_path) -> Iterator:
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'aggregator.sqlite'}",
            "SECRET_KEY": "test",
            "ALLOW_PRIVATE_NETWORKS": True,
            "RATELIMIT_ENABLED": False,
        }
    )
    create_operator(app.extensions["engine"], EMAIL, PASSWORD)
    engine, port = app.extensions["engine"], _closed_port()
    long_path = "/community/activities/" + "-".join(["very-long-feed-address"] * 4) + "/feeds/activities"
    for name in ("Mitcham Walkers", "Colliers Wood Knitters"):
        add_source(
            engine, f"http://127.0.0.1:{port}{long_path}?group={name.split()[0].lower()}",
            kind="openactive", name=name, state="approved", config=app.config,
        )  # fmt: skip
    harvest_source(1, app.config)  # refused: an outcome and a time for the table
    yield app
    stop_worker(app)


def test_the_sources_table_reflows_and_names_each_button(chromium, aggregator, serve):
    base = serve(aggregator).url
    for width in WIDTHS:
        context = chromium.new_context(viewport={"width": width, "height": 800}, locale="en-GB")
        page = context.new_page()
        page.goto(f"{base}/operator/login")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/operator/sources")

        overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"the sources page scrolls sideways by {overflow}px at {width}px wide"
        for name in ("Mitcham Walkers", "Colliers Wood Knitters"):
            assert page.get_by_role("button", name=f"Remove {name}", exact=True).count() == 1
            assert page.get_by_role("button", name=f"Pause {name}", exact=True).count() == 1
        assert not page.get_by_label(re.compile("Approve now")).is_checked()
        table = page.locator("table").inner_text()
        assert "The harvest failed" in table and "Never harvested" in table
        assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d", table), table
        assert_accessible(page)
        context.close()
