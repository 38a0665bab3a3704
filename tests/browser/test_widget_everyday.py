"""What the public reads in the widget and on /embed (issue 20): first visits, who it's for, links, counts.

A live aggregator harvests the usual four activities (tests/embed/live.py) and a dozen more
walks nearby, so that a page of 10 is "Showing 10 of 16". The lunch, about 85 m from the
surgery's postcode, has a long first-visit text (folded away) and its audiences; the walk has
a short one (shown as it is) and a contact with a telephone number and an email address.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from aggregator import search_index
from aggregator.store import merged
from tests import factories
from tests.browser.test_widget import open_widget
from tests.conftest import assert_accessible, assert_accessible_without_script, assert_no_sideways_scroll
from tests.embed.live import (
    FEED_PATH,
    HOME,
    HOME_GEO,
    NOW,
    TODAY,
    activities,
    aggregator_app,
    harvest,
    place,
    serve_feed,
)

pytestmark = pytest.mark.browser

LONG_FIRST_VISIT = (
    "Come in through the side door on St Mark's Road; the hall is on the left. A volunteer meets "
    "everyone at the door and finds you a seat with people to chat to. You are welcome to bring "
    "a friend or the person you care for, and there is always a vegetarian choice."
)
SHORT_FIRST_VISIT = factories.weekly_activity()["firstVisit"]
EXTRA_WALKS = 12
TOTAL = 4 + EXTRA_WALKS  # every one within 5 km of HOME


def everyday_activities(site: str) -> list[dict[str, Any]]:
    """The usual four, the lunch with a long first-visit text and its audiences, and a dozen walks."""
    lunch, walk, choir, shed = activities(site)
    lunch.update(firstVisit=LONG_FIRST_VISIT, audiences=["older-people", "carers"])
    lat, lon = HOME_GEO
    extras = [
        factories.weekly_activity(
            base=site,
            id=f"{site}/activities/morden-walk-{n}",
            name=f"Morden Walk {n}",
            location=place(lat + 0.003 * n, lon, f"Morden Park Gate {n}", "CR4 3AA"),  # 0.3 to 4 km north
            lastVerified=TODAY.isoformat(),
            dateModified=NOW.isoformat(),
        )
        for n in range(1, EXTRA_WALKS + 1)
    ]
    return [lunch, walk, choir, shed, *extras]


@pytest.fixture
def everyday(serve, tmp_path):
    """(aggregator app, its LiveServer) holding :func:`everyday_activities`."""
    site = serve_feed(serve, everyday_activities)
    app = aggregator_app(tmp_path)
    harvest(app, site + FEED_PATH)
    return app, serve(app)


def store_contact(app, name: str, contact: dict[str, str]) -> None:
    """Write ``contact`` into the stored activity ``name``, as an upstream the contract never saw might.

    A harvest refuses a malformed number or address, so the test writes it directly: the pages
    must still show it, as text rather than as a link.
    """
    with app.extensions["engine"].begin() as conn:
        (row,) = [r for r in conn.execute(select(merged)).all() if r.data["name"] == name]
        data = copy.deepcopy(row.data)
        data["contact"] = contact
        conn.execute(update(merged).where(merged.c.id == row.id).values(data=data))
        search_index.reindex(conn, row.id, data, row.provenance)


def count_status(scope):
    """The status line that counts the results (others may speak of other things)."""
    return scope.get_by_role("status").filter(has_text=re.compile(r"\d activit"))


def item_named(scope, name: str):
    """The result named ``name`` within ``scope`` (a page, or the widget)."""
    root = getattr(scope, "page", scope)  # a locator's page; a page is its own
    return scope.locator("li.item").filter(has=root.get_by_role("heading", name=name, exact=True))


def assert_source_page(href: str, base: str) -> None:
    """ "Listed by" opens the aggregator's page about the source, for people: HTML, not the feed."""
    assert re.fullmatch(rf"{re.escape(base)}/sources/\d+", href), href
    response = httpx.get(href)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Mitcham CVS</h1>" in response.text


def test_widget_shows_first_visits_audiences_contact_links_and_the_count(page, serve, everyday):
    app, aggregator = everyday
    store_contact(app, "Singing for the Brain", {"telephone": "ring 020 8123 4567", "email": "the office"})
    open_widget(page, serve, aggregator, near=HOME, radius="5", limit="10")
    widget = page.locator("localfeed-activities")
    status = count_status(widget)
    assert status.inner_text() == f"Showing 10 of {TOTAL} activities"

    lunch = item_named(widget, "Winter Warmer Lunch")
    lunch_text = lunch.inner_text()
    assert "at or near this postcode" in lunch_text
    assert " km" not in lunch_text and "min walk" not in lunch_text
    assert "Who it's for: Older people, Carers" in lunch_text
    # Long: folded under a summary, opened by the keyboard.
    summary = lunch.locator("details summary")
    assert summary.inner_text() == "What to expect on a first visit"
    assert not lunch.get_by_text(LONG_FIRST_VISIT).is_visible()
    summary.focus()
    page.keyboard.press("Enter")
    assert lunch.get_by_text(LONG_FIRST_VISIT).is_visible()

    walk = item_named(widget, "Mitcham Health Walk")
    walk_text = walk.inner_text()
    assert f"First visit: {SHORT_FIRST_VISIT}" in walk_text  # short: shown as it is
    assert walk.locator("details").count() == 0
    assert "Who it's for: Older people" in walk_text
    assert re.search(r"0\.9 km · 1\d min walk", walk_text)  # further away: the distance as before
    assert walk.get_by_role("link", name="020 8123 4567").get_attribute("href") == "tel:02081234567"
    email = walk.get_by_role("link", name="hello@mitcham-walkers.example")
    assert email.get_attribute("href") == "mailto:hello@mitcham-walkers.example"
    listed_by = walk.get_by_role("link", name="Mitcham CVS")
    assert_source_page(listed_by.get_attribute("href"), aggregator.url)

    assert_accessible(page)  # with the first-visit text open

    page.get_by_role("button", name="Show more").click()
    items = "document.querySelector('localfeed-activities').shadowRoot.querySelectorAll('li.item')"
    page.wait_for_function(f"{items}.length === {TOTAL}")
    assert status.inner_text() == f"{TOTAL} activities"  # every one shown
    choir = item_named(widget, "Singing for the Brain")
    assert "Contact: ring 020 8123 4567, the office" in choir.inner_text()
    assert choir.locator("a[href^='tel:'], a[href^='mailto:']").count() == 0  # malformed: text, not links


def test_embed_shows_the_same_on_a_phone_without_javascript(phone, chromium, everyday):
    app, aggregator = everyday
    store_contact(app, "Singing for the Brain", {"telephone": "ring 020 8123 4567", "email": "the office"})
    phone.goto(f"{aggregator.url}/embed?near=CR4+1AA&radius=5&limit=10")
    assert count_status(phone).inner_text() == f"Showing 10 of {TOTAL} activities"

    lunch = item_named(phone, "Winter Warmer Lunch")
    lunch_text = lunch.inner_text()
    assert "at or near this postcode" in lunch_text and " km" not in lunch_text
    assert "Who it's for: Older people, Carers" in lunch_text
    summary = lunch.locator("details summary")
    assert summary.inner_text() == "What to expect on a first visit"
    assert not lunch.get_by_text(LONG_FIRST_VISIT).is_visible()
    summary.click()  # <details> opens without JavaScript
    assert lunch.get_by_text(LONG_FIRST_VISIT).is_visible()

    walk = item_named(phone, "Mitcham Health Walk")
    assert f"First visit: {SHORT_FIRST_VISIT}" in walk.inner_text()
    assert walk.locator("details").count() == 0
    assert walk.get_by_role("link", name="020 8123 4567").get_attribute("href") == "tel:02081234567"
    email = walk.get_by_role("link", name="hello@mitcham-walkers.example")
    assert email.get_attribute("href") == "mailto:hello@mitcham-walkers.example"
    listed_by = walk.get_by_role("link", name="Mitcham CVS")
    assert_source_page(aggregator.url + listed_by.get_attribute("href"), aggregator.url)

    assert_no_sideways_scroll(phone)
    assert_accessible_without_script(chromium, phone)

    # The next page says the same total; the last one holds the malformed contact, as text.
    phone.get_by_role("link", name="Next page").click()
    assert count_status(phone).inner_text() == f"Showing {TOTAL - 10} of {TOTAL} activities"
    choir = item_named(phone, "Singing for the Brain")
    assert "Contact: ring 020 8123 4567, the office" in " ".join(choir.inner_text().split())
    assert choir.locator("a[href^='tel:'], a[href^='mailto:']").count() == 0

    everything = httpx.get(f"{aggregator.url}/embed", params={"near": HOME, "radius": "5", "limit": "20"})
    assert f'<p role="status">{TOTAL} activities</p>' in everything.text
