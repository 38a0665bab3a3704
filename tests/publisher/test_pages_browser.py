"""The public pages in a real Chromium on a phone: accessible (axe-core, WCAG 2.2 AA) and readable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from publisher import editing
from tests.conftest import ARTIFACTS, assert_accessible, open_tab
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import store_of

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}


@pytest.fixture
def phone(chromium) -> Iterator:
    """A small phone (360 CSS pixels), JavaScript on: narrower than PHONE, for the public pages."""
    with open_tab(chromium, PHONE) as tab:
        yield tab


def test_home_and_activity_pages_are_accessible_on_a_phone(make_publisher, serve, tmp_path, phone):
    app = make_publisher(f"sqlite:///{tmp_path / 'browser.sqlite'}")
    server = serve(app)
    store = store_of(app)
    walkers = store.add_group("Mitcham Walkers", url="https://walkers.example/")
    lunch = store.add_group("St Mark's Lunch Club")
    walk = editing.save_activity(store, walkers, weekly_activity(), base_url=server.url)
    editing.save_activity(store, lunch, event_activity(status="cancelled"), base_url=server.url)
    ARTIFACTS.mkdir(exist_ok=True)

    for path, shot in (("/", "publisher-home.png"), (f"/activities/{walk.slug}", "publisher-activity.png")):
        phone.goto(server.url + path)
        assert_accessible(phone)
        # Nothing wider than the phone: no sideways scrolling to read a line.
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone.screenshot(path=str(ARTIFACTS / shot), full_page=True)

    # The skip link is the first thing a keyboard reaches, and it moves focus to the content.
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.textContent") == "Skip to main content"
    phone.keyboard.press("Enter")
    assert phone.evaluate("document.activeElement.id") == "main"
    assert phone.get_by_role("heading", level=1).inner_text() == "Mitcham Health Walk"
