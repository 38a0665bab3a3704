"""The operator's sources page, and a source's public page with its quality report, at a phone's width
and at 200% zoom, in Chromium.

Two sources with long feed addresses, one harvested (its server refuses the connection,
so the page has an outcome and a time to show) and with refused items of long addresses:
the pages reflow instead of scrolling sideways, each row's buttons are named for their
source, the harvest's outcome is a sentence with a UK time, "Approve now" starts unticked,
and refused items are listed by name with their reasons in words.
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
from tests.aggregator.test_refused_items import MACHINE_WORDS, PLAIN_TIME, problem, refuse, shown_text
from tests.conftest import ARTIFACTS, PHONE, assert_accessible, assert_no_sideways_scroll

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "ops@council.example", "correct horse battery"
# 200% zoom of a 1280-pixel-wide window lays the page out in 640 CSS pixels; then a phone.
SCREENS = ({"width": 640, "height": 422}, PHONE)
LONG_REF = "https://mitcham-walkers.example/activities/" + "-".join(["a-very-long-activity-address"] * 4)


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
    missing = problem("required", "Postcode is missing; add it.", "$.location.address.postalCode")
    refuse(app, 1, LONG_REF, [missing], name="Tuesday Health Walk around Mitcham Common")
    refuse(
        app, 1, LONG_REF + "-2", [problem("unmapped", "The event has no start date, so it cannot be listed.")]
    )
    yield app
    stop_worker(app)


def test_the_sources_table_reflows_and_names_each_button(chromium, aggregator, serve):
    base = serve(aggregator).url
    for screen in SCREENS:
        context = chromium.new_context(viewport=screen, locale="en-GB")
        page = context.new_page()
        page.goto(f"{base}/operator/login")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/operator/sources")

        assert_no_sideways_scroll(page)
        for name in ("Mitcham Walkers", "Colliers Wood Knitters"):
            assert page.get_by_role("button", name=f"Remove {name}", exact=True).count() == 1
            assert page.get_by_role("button", name=f"Pause {name}", exact=True).count() == 1
        assert not page.get_by_label(re.compile("Approve now")).is_checked()
        table = page.locator("table").inner_text()
        assert "The harvest failed" in table and "Never harvested" in table
        assert re.search(PLAIN_TIME, table), table
        assert_accessible(page)
        if screen == PHONE:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "operator-sources.png", full_page=True)
        context.close()


def test_the_source_page_and_its_quality_report_reflow_and_speak_plainly(chromium, aggregator, serve):
    base = serve(aggregator).url
    for screen in SCREENS:
        context = chromium.new_context(viewport=screen, locale="en-GB")
        page = context.new_page()
        page.goto(f"{base}/sources/1")

        assert_no_sideways_scroll(page)
        assert_accessible(page)
        refused = page.locator("table", has=page.get_by_role("columnheader", name="Item"))
        assert refused.get_by_role(
            "rowheader", name=re.compile("^Tuesday Health Walk around Mitcham Common")
        ).count()
        assert refused.get_by_role("rowheader", name=re.compile("^An item with no name")).count() == 1
        assert (
            page.get_by_role("heading", name="Could not be read as an activity: 1 refused item").count() == 1
        )
        assert "Postcode is missing; add it. (field: Postcode)" in refused.first.inner_text()
        assert (
            "Could not be read as an activity: 1"
            in page.locator("section[aria-labelledby=quality-heading]").inner_text()
        )
        text = shown_text(page.content()).replace(LONG_REF, "")
        assert re.search(rf"Last tried on {PLAIN_TIME}: The harvest failed\.", " ".join(text.split()))
        assert MACHINE_WORDS.findall(text) == [], MACHINE_WORDS.findall(text)
        context.close()
