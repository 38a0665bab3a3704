"""A volunteer adds a weekly walking group on a phone, in a real Chromium with JavaScript off.

The publisher runs on a loopback port; the browser logs in, fills the form, meets the
postcode message next to the postcode field, fixes it, and the walk is then in the
public RPDE feed.
"""

from __future__ import annotations

import httpx
import pytest

from schema.openactive import from_openactive
from tests.conftest import assert_accessible_without_script
from tests.factories import weekly_activity
from tests.publisher.conftest import fill_essentials, log_in

pytestmark = pytest.mark.browser


def test_volunteer_adds_a_weekly_walk_and_fixes_the_postcode(site, chromium, phone):
    page = phone

    log_in(page, site.url)
    page.get_by_role("link", name="Add an activity").click()

    fill_essentials(page, postcode="CR4 1H")
    page.get_by_label("What happens").fill("A gentle walk around Mitcham Common, finishing at the café.")
    page.get_by_label("First date").fill("2026-01-06")
    page.get_by_text("More about this activity").click()
    page.get_by_label("Older people").check()
    page.get_by_role("button", name="Save").click()

    postcode_field = page.locator(".field", has=page.locator("input#postcode"))
    assert "not a UK postcode" in postcode_field.locator(".error-message").inner_text()
    assert page.get_by_role("link", name="Postcode 'CR4 1H' is not a UK postcode").get_attribute("href") == (
        "#postcode"
    )
    # Everything typed is still there: only the postcode needs fixing.
    assert page.get_by_label("Name of the activity").input_value() == "Mitcham Health Walk"
    assert page.get_by_label("Tuesday").is_checked()
    assert page.get_by_label("Start time").input_value() == "10:00"
    assert site.store.list_activities() == []
    assert_accessible_without_script(chromium, page)

    page.get_by_label("Postcode").fill("CR4 1HT")
    page.get_by_role("button", name="Save").click()
    assert "Saved “Mitcham Health Walk”" in page.locator("main").inner_text()
    assert "Every Tuesday, 10:00\u201311:00" in page.locator("main").inner_text()

    feed = httpx.get(f"{site.url}/feeds/activities", timeout=10).json()
    [item] = [item for item in feed["items"] if item["state"] == "updated"]
    walk = from_openactive(item["data"])  # the feed speaks OpenActive; read back as the contract's activity
    assert walk["name"] == "Mitcham Health Walk"
    assert walk["location"]["address"]["postalCode"] == "CR4 1HT"
    assert walk["schedule"] == weekly_activity()["schedule"]  # typed as the canonical weekly walk
    assert walk["organizer"]["name"] == "Mitcham Walkers"
    assert walk["audiences"] == ["older-people"]
    assert walk["price"] == {"isFree": True}
    assert walk["booking"] == {"method": "drop-in"}
