"""Anonymous counts from a real browser: the widget on another origin's page, and /embed in its iframe.

A GP surgery's page (its own origin) embeds the widget from a live aggregator; Chromium
shows the results and a person opens one. The aggregator's counts go up, credited to the
surgery's origin. With Global Privacy Control on, or the site's ``counting="off"``, nothing
is counted, whatever the page does.
"""

from __future__ import annotations

import time

import pytest
from flask import Flask
from sqlalchemy import select

from aggregator.impact import tally
from aggregator.store import impact_counts
from tests.browser.test_widget import names, surgery_site, wait_settled
from tests.embed.live import HOME, live_aggregator

pytestmark = pytest.mark.browser


def counts(app) -> dict[tuple[str, str], int]:
    """(activity name's last path part, kind) -> events, once the counts waiting in memory are written."""
    tally(app).flush()
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(impact_counts)).all()
    return {(row.activity_id.rsplit("/", 1)[-1], row.kind, row.site): row.events for row in rows}


def counted_soon(app, wanted, seconds: float = 8.0) -> dict:
    """The counts once ``wanted(counts)`` holds (beacons arrive after the page lets them go)."""
    deadline = time.monotonic() + seconds
    while True:
        found = counts(app)
        if wanted(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def show_and_open(tab, site_url: str) -> None:
    """Load the surgery's page, let the widget show its results, then open the walk's own page."""
    tab.goto(site_url)
    wait_settled(tab)
    assert "Mitcham Health Walk" in names(tab)
    tab.locator("localfeed-activities").get_by_role("link", name="Mitcham Health Walk").click()
    tab.wait_for_load_state()


def test_widget_counts_go_up_when_shown_and_opened_credited_to_the_embedding_site(chromium, serve, tmp_path):
    app, aggregator = live_aggregator(serve, tmp_path)
    surgery = serve(
        surgery_site(
            f"{aggregator.url}/widgets/localfeed.js", {"src": aggregator.url, "near": HOME, "radius": "5"}
        )
    )
    context = chromium.new_context(locale="en-GB")
    try:
        show_and_open(context.new_page(), surgery.url)
        found = counted_soon(app, lambda c: ("mitcham-health-walk", "opened", surgery.url) in c)
    finally:
        context.close()
    assert found[("mitcham-health-walk", "opened", surgery.url)] == 1
    shown = {name: events for (name, kind, site), events in found.items() if kind == "shown"}
    assert shown == {
        "winter-warmer-lunch": 1,
        "mitcham-health-walk": 1,
        "singing-for-the-brain": 1,
        "wimbledon-mens-shed": 1,
    }
    assert {site for (_name, _kind, site) in found} == {surgery.url}  # the site's origin, never its page path

    # Shown again: the same day's counter goes up.
    context = chromium.new_context(locale="en-GB")
    try:
        show_and_open(context.new_page(), surgery.url)
        found = counted_soon(app, lambda c: c.get(("mitcham-health-walk", "opened", surgery.url)) == 2)
    finally:
        context.close()
    assert found[("mitcham-health-walk", "opened", surgery.url)] == 2
    assert found[("wimbledon-mens-shed", "shown", surgery.url)] == 2


def iframe_page(embed_url: str) -> Flask:
    app = Flask("surgery_iframe")

    @app.get("/")
    def home() -> str:
        return (
            f'<!doctype html><html lang="en-GB"><head><title>Surgery</title></head><body>'
            f'<iframe title="Activities" src="{embed_url}" width="600" height="800"></iframe></body></html>'
        )

    return app


def test_embed_iframe_without_javascript_counts_shown_for_the_framing_site(chromium, serve, tmp_path):
    app, aggregator = live_aggregator(serve, tmp_path)
    surgery = serve(iframe_page(f"{aggregator.url}/embed?near={HOME.replace(' ', '+')}&radius=5"))
    context = chromium.new_context(locale="en-GB", java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.goto(surgery.url)
        tab.frame_locator("iframe").locator("h2").first.wait_for()
        found = counted_soon(app, lambda c: len(c) == 4)
    finally:
        context.close()
    assert found == {
        (name, "shown", surgery.url): 1
        for name in (
            "winter-warmer-lunch",
            "mitcham-health-walk",
            "singing-for-the-brain",
            "wimbledon-mens-shed",
        )
    }


GPC = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });"


@pytest.mark.parametrize("how", ["global privacy control", "counting off attribute"])
def test_nothing_is_counted_with_global_privacy_control_or_the_sites_opt_out(chromium, serve, tmp_path, how):
    app, aggregator = live_aggregator(serve, tmp_path)
    attributes = {"src": aggregator.url, "near": HOME, "radius": "5"}
    if how == "counting off attribute":
        attributes["counting"] = "off"
    surgery = serve(surgery_site(f"{aggregator.url}/widgets/localfeed.js", attributes))
    framed = serve(
        iframe_page(
            f"{aggregator.url}/embed?near={HOME.replace(' ', '+')}&radius=5"
            + ("&counting=off" if how == "counting off attribute" else "")
        )
    )
    if how == "global privacy control":
        context = chromium.new_context(locale="en-GB", extra_http_headers={"Sec-GPC": "1"})
        context.add_init_script(GPC)
    else:
        context = chromium.new_context(locale="en-GB")
    try:
        tab = context.new_page()
        sent: list[str] = []
        tab.on("request", lambda request: "/impact/" in request.url and sent.append(request.url))
        show_and_open(tab, surgery.url)
        tab.goto(framed.url)  # and the no-JavaScript list, in its iframe
        tab.frame_locator("iframe").locator("h2").first.wait_for()
        tab.goto("about:blank")  # the page is left: any beacon held back would go now
        time.sleep(1.5)
    finally:
        context.close()
    assert sent == []  # the widget sent no beacon, and the list asked for no counting image
    assert counts(app) == {}
