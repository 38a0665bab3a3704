"""Near a place, in Chromium, with no geocoding settings: the README's postcode shows the demo's
listings in the widget, and the builder refuses a place it cannot find (no snippet), saying why.

The aggregator harvests the demo's sample network from a live feed and has neither a postcode
file nor a postcode service: postcodes no listing carries are placed at their district.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator import create_app
from aggregator.hub import stop_worker
from demo.sample_data import sample_network
from tests.aggregator.conftest import follow, harvest
from tests.aggregator.feedserver import FeedServer
from tests.browser.test_widget import open_widget
from tests.conftest import assert_accessible
from tests.factories import weekly_activity

pytestmark = pytest.mark.browser

# The README's snippet, as a website owner pastes it.
README_SNIPPET = {"near": "CR4 1AA", "radius": "3", "categories": "walking,baby-toddler", "limit": "8"}


@pytest.fixture
def aggregator(serve, tmp_path, request):
    """A live aggregator with no geocoding settings, holding the demo's sample network."""
    feed = FeedServer(page_size=100)
    feed.base_url = serve(feed.app).url
    modified = datetime.now(UTC).isoformat(timespec="seconds")
    for group in sample_network():
        for number, activity in enumerate(group.activities):
            feed.put({**activity, "id": feed.activity_id(f"{group.slug}-{number}"), "dateModified": modified})
    app = create_app({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'aggregator.sqlite'}",
        "SECRET_KEY": "test",
        "ALLOW_PRIVATE_NETWORKS": True,
        "RATELIMIT_ENABLED": False,
    })  # fmt: skip
    request.node.addfinalizer(lambda: stop_worker(app))
    result = harvest(app, follow(app, feed.feed_url))
    assert result.status == "ok" and not result.quarantined, result
    return serve(app)


def test_the_widget_with_the_readme_postcode_shows_listings_near_its_district(page, serve, aggregator):
    open_widget(page, serve, aggregator, **README_SNIPPET)
    widget = page.locator("localfeed-activities")
    assert widget.locator("li.item").count() >= 1
    assert widget.locator(".located").inner_text() == "Showing activities near CR4 (Mitcham)"
    assert "about " in widget.locator("li.item").first.inner_text()  # measured from a district's middle
    assert_accessible(page)

    # A town by name, typed into the widget's own search.
    open_widget(page, serve, aggregator, near="mitcham", radius="2", controls="")
    assert widget.locator(".located").inner_text() == "Showing activities near Mitcham"
    assert widget.locator("li.item").count() >= 1
    # A place nobody knows: the aggregator's plain words, and nothing to retry.
    widget.get_by_label("Postcode or town").fill("ZZ9 9ZZ")
    widget.get_by_role("button", name="Search").click()
    status = widget.locator(".status")
    status.filter(has_text="We couldn't find").wait_for()
    assert status.inner_text() == "We couldn't find ZZ9 9ZZ. Check the postcode, or try a nearby town."
    assert widget.get_by_role("button", name="Try again").count() == 0
    assert widget.locator(".located").inner_text() == ""
    assert_accessible(page)


def test_the_builder_refuses_a_place_it_cannot_find_and_says_why(page, aggregator):
    page.goto(f"{aggregator.url}/embed/builder?near=ZZ9+9ZZ&categories=walking")
    problem = page.get_by_role("alert")
    assert "We couldn't find ZZ9 9ZZ. Check the postcode, or try a nearby town." in problem.inner_text()
    assert page.locator("#snippet").count() == 0
    assert page.locator("localfeed-activities").count() == 0
    assert page.get_by_label("Postcode or town").input_value() == "ZZ9 9ZZ"  # kept, to correct
    assert_accessible(page)

    # Corrected to a postcode in a known district: the snippet, and what it will show.
    page.get_by_label("Postcode or town").fill("CR4 2DG")
    page.get_by_role("button", name="Update the snippet and preview").click()
    assert page.get_by_text("The list will show activities near CR4 (Mitcham).").is_visible()
    assert 'near="CR4 2DG"' in page.locator("#snippet").input_value()
    page.wait_for_function(
        "document.querySelector('localfeed-activities').shadowRoot?.querySelector('li.item')"
    )
    assert_accessible(page)

    # The iframe page and the printable sheet say where they measure from.
    page.goto(f"{aggregator.url}/embed?near=CR4+1AA&radius=3")
    assert page.locator(".located").inner_text() == "Showing activities near CR4 (Mitcham)"
    assert page.locator("h2").count() >= 1
    assert_accessible(page)
    page.goto(f"{aggregator.url}/embed/print?near=CR4+1AA&radius=3")
    assert page.locator("h1").inner_text() == "Activities within 3 km of CR4 (Mitcham)"


def test_the_source_page_naming_unplaced_listings_passes_axe(page, serve, tmp_path, request):
    feed = FeedServer(page_size=10)
    feed.base_url = serve(feed.app).url
    placed = weekly_activity(base=feed.origin, id=feed.activity_id("placed"), name="Placed Walk")
    lost = weekly_activity(base=feed.origin, id=feed.activity_id("lost"), name="Lost Lunch Club")
    rough = weekly_activity(base=feed.origin, id=feed.activity_id("rough"), name="Rough Choir")
    for item, postcode in ((lost, "ZZ9 9ZZ"), (rough, "CR4 9ZZ")):
        del item["location"]["geo"]
        item["location"]["address"]["postalCode"] = postcode
    for item in (placed, lost, rough):
        feed.put(item)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.sqlite'}", "SECRET_KEY": "test",
                      "ALLOW_PRIVATE_NETWORKS": True})  # fmt: skip
    request.node.addfinalizer(lambda: stop_worker(app))
    source_id = follow(app, feed.feed_url)
    harvest(app, source_id)
    server = serve(app)
    page.goto(f"{server.url}/sources/{source_id}")
    assert page.get_by_role("heading", name="Not on the map (1)").is_visible()
    assert page.get_by_role("heading", name="Only roughly on the map (1)").is_visible()
    assert page.get_by_text("Lost Lunch Club").is_visible() and page.get_by_text("Rough Choir").is_visible()
    assert_accessible(page)
