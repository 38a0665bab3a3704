"""A volunteer fills in the activity form on a phone (390×844), in a real Chromium.

The essentials come first and reach Save within three screens; every problem comes in one
round, listed in the form's order with focus on the list; a weekly group needs no first
date; pay what you can is a cost; contradictions are saved and pointed out; long values wrap.
JavaScript is off unless a test says otherwise: the form must not need it.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from publisher import editing
from schema.openactive import from_openactive
from schema.price import pay_what_you_can
from tests.conftest import (
    ARTIFACTS,
    assert_accessible,
    assert_accessible_without_script,
    assert_no_sideways_scroll,
)
from tests.publisher.conftest import Site, fill_essentials, log_in

pytestmark = pytest.mark.browser

# Every required field, in the order the form shows them: an empty form's summary lists these.
REQUIRED_IN_ORDER = [
    "name", "categories", "venue", "street", "town", "postcode", "days", "start_time", "end_time",
    "cost", "booking",
]  # fmt: skip


def open_new_form(page, site: Site) -> None:
    log_in(page, site.url)
    page.get_by_role("link", name="Add an activity").click()


def screens_scrolled_to_see(page, selector: str) -> int:
    """Screens a person scrolls down from the top before ``selector`` is wholly in view."""
    page.evaluate("window.scrollTo(0, 0)")
    screens = 0
    while not page.evaluate(
        "(s) => document.querySelector(s).getBoundingClientRect().bottom <= window.innerHeight", selector
    ):
        page.evaluate("window.scrollBy(0, window.innerHeight)")
        screens += 1
        assert screens < 20, f"{selector} is never reached by scrolling"
    return screens


def feed_activities(site: Site) -> list[dict]:
    feed = httpx.get(f"{site.url}/feeds/activities", timeout=10).json()
    return [from_openactive(item["data"]) for item in feed["items"] if item["state"] == "updated"]


def test_only_the_essentials_reach_save_within_three_screens_and_are_published(site, phone):
    page = phone
    open_new_form(page, site)
    assert page.locator("details.more").get_attribute("open") is None  # the rest waits, folded away
    fill_essentials(page)

    screens = screens_scrolled_to_see(page, "button[name=save]")
    height = page.evaluate("document.documentElement.scrollHeight")
    print(f"Save is wholly in view after scrolling {screens} screens; the page is {height}px long")
    assert screens <= 3
    save, more = page.locator("button[name=save]"), page.locator("details.more")
    assert more.bounding_box()["y"] < save.bounding_box()["y"]  # nothing of "More" stands in the way
    assert_no_sideways_scroll(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "activity-form-phone.png"), full_page=True)

    page.get_by_role("button", name="Save").click()
    assert "Saved “Mitcham Health Walk”" in page.locator("main").inner_text()
    for contradiction in ("just turn up", "no way to ask"):  # none: it has space, and a contact
        assert page.locator(".notice.warning", has_text=contradiction).count() == 0

    [walk] = feed_activities(site)
    assert walk["name"] == "Mitcham Health Walk"
    assert walk["categories"] == ["walking"]
    assert walk["location"]["address"] == {
        "streetAddress": "Windmill Road", "addressLocality": "Mitcham", "postalCode": "CR4 1HT",
    }  # fmt: skip
    [entry] = walk["schedule"]
    assert (entry["repeatFrequency"], entry["byDay"], entry["startTime"], entry["endTime"]) == (
        "P1W", ["TU"], "10:00", "11:00",
    )  # fmt: skip
    assert entry["startDate"] == editing.today().isoformat()  # no first date: listed from today
    assert walk["price"] == {"isFree": True}
    assert walk["booking"] == {"method": "drop-in"}
    assert walk["contact"] == {"email": "walks@mitcham-walkers.example"}


def summary_links(page) -> list[str]:
    return [link.get_attribute("href") for link in page.locator(".error-summary a").all()]


def test_an_empty_form_gives_every_problem_at_once_in_field_order_with_focus_on_the_summary(
    site, scripted_phone, phone, chromium
):
    page = scripted_phone
    open_new_form(page, site)
    assert page.get_by_label("Just turn up").is_checked() is False  # nothing is chosen for the volunteer
    assert "(required)" in page.locator("label[for=name]").inner_text()
    assert page.locator("#name").get_attribute("required") is not None
    page.get_by_role("button", name="Save").click()

    assert page.title().startswith("Error: ")
    # autofocus takes effect just after the page loads: wait for it (up to the default timeout).
    expect(page.locator(".error-summary")).to_be_focused()
    assert summary_links(page) == [f"#{name}" for name in REQUIRED_IN_ORDER]
    for name in REQUIRED_IN_ORDER:
        control = page.locator(f"#{name}")
        assert control.count() == 1, name  # the link leads to the field
        message = page.locator(f"#{name}-error").inner_text()
        assert message.startswith("Error:") and len(message) > len("Error: "), name
    # The summary's links are in the same order as the fields on the page.
    tops = [page.locator(f"#{name}").bounding_box()["y"] for name in REQUIRED_IN_ORDER]
    assert tops == sorted(tops)
    page.locator(".error-summary a", has_text="postcode").click()
    assert page.url.endswith("#postcode")
    assert page.locator("#postcode").is_visible()
    assert_accessible(page)
    assert site.store.list_activities() == []

    # Without JavaScript the same summary comes, every problem in the one round.
    open_new_form(phone, site)
    phone.get_by_role("button", name="Save").click()
    assert phone.locator(".error-summary h2").inner_text() == f"There are {len(REQUIRED_IN_ORDER)} problems"
    assert summary_links(phone) == [f"#{name}" for name in REQUIRED_IN_ORDER]
    assert_accessible_without_script(chromium, phone)


def test_pay_what_you_can_is_saved_by_the_form_and_shown_again_for_editing(site, phone):
    page = phone
    open_new_form(page, site)
    fill_essentials(page, "Pollards Hill Walk")
    page.get_by_label("Pay what you can").check()
    page.get_by_label("Amount in pounds").fill("£3")
    page.get_by_role("button", name="Save").click()
    assert "Saved “Pollards Hill Walk”" in page.locator("main").inner_text()

    [walk] = feed_activities(site)
    assert walk["price"] == pay_what_you_can(3.0)
    [stored] = site.store.list_activities()
    page.goto(f"{site.url}/activities/{stored.slug}")
    assert "Pay what you can (suggested donation £3.00)" in page.locator("main").inner_text()

    page.goto(f"{site.url}/admin/activities/{stored.slug}/edit")
    assert page.get_by_label("Pay what you can").is_checked()
    assert page.get_by_label("Amount in pounds").input_value() == "3.00"
    assert page.get_by_label("About the cost", exact=True).input_value() == ""
    # Saved again unchanged, it stays pay what you can; without the suggestion, it is plain pay what you can.
    page.get_by_label("Amount in pounds").fill("")
    page.get_by_role("button", name="Save").click()
    assert site.store.get_activity(stored.slug).data["price"] == pay_what_you_can()


def test_full_with_a_waiting_list_and_just_turn_up_saves_with_warnings(site, phone, chromium):
    page = phone
    open_new_form(page, site)
    fill_essentials(page, "Chair Yoga")
    page.get_by_label("Contact email").fill("")  # and no way to reach anyone: the group has none either
    page.locator("details.more summary").click()  # opens without JavaScript
    page.get_by_label("Full, with a waiting list").check()
    page.get_by_role("button", name="Save").click()

    main = page.locator("main").inner_text()
    assert "Saved “Chair Yoga”" in main
    full = page.locator(".notice.warning", has_text="also that people can just turn up")
    assert "Chair Yoga” says it is full, with a waiting list" in full.inner_text()
    assert "Get in touch first" in full.inner_text()
    unreachable = page.locator(".notice.warning", has_text="no way to ask about it or book")
    assert "Add a contact email or telephone" in unreachable.inner_text()
    [stored] = site.store.list_activities()
    assert stored.data["capacity"]["status"] == "waiting-list"
    assert stored.data["booking"] == {"method": "drop-in"}
    assert_no_sideways_scroll(page)
    assert_accessible_without_script(chromium, page)

    # A preview says the same before anything is saved.
    page.goto(f"{site.url}/admin/activities/{stored.slug}/edit")
    page.get_by_role("button", name="Preview").click()
    assert page.locator(".preview .notice.warning", has_text="just turn up").count() == 1
    assert page.locator(".preview .notice.warning", has_text="no way to ask").count() == 1


def test_a_weekly_group_needs_no_first_date_but_every_other_week_does(site, phone):
    page = phone
    open_new_form(page, site)
    fill_essentials(page, "Tuesday Walk")
    page.get_by_label("How often").select_option(label="Every other week")
    page.get_by_role("button", name="Save").click()
    assert summary_links(page) == ["#first_date"]
    assert "date of one session" in page.locator("#first_date-error").inner_text()
    assert site.store.list_activities() == []

    page.get_by_label("How often").select_option(label="Every week")
    page.get_by_role("button", name="Save").click()
    assert "Saved “Tuesday Walk”" in page.locator("main").inner_text()
    [stored] = site.store.list_activities()
    assert stored.data["schedule"][0]["startDate"] == editing.today().isoformat()
    assert stored.data["schedule"][0]["byDay"] == ["TU"]


def test_a_very_long_web_address_in_an_error_wraps_on_a_phone(site, phone, chromium):
    page = phone
    open_new_form(page, site)
    fill_essentials(page, "Book Club")
    page.get_by_label("Book ahead").check()
    long_link = "htp://www.mitcham-library.example/" + "book-club-" * 30
    page.get_by_label("Booking link").fill(long_link)
    page.get_by_role("button", name="Save").click()

    assert summary_links(page) == ["#booking_link"]
    assert long_link[:40] in page.locator("#booking_link-error").inner_text()
    assert_no_sideways_scroll(page)
    assert_accessible_without_script(chromium, page)


def test_the_form_passes_axe_with_and_without_script_and_with_everything_open(
    site, scripted_phone, phone, chromium
):
    open_new_form(scripted_phone, site)
    assert_accessible(scripted_phone)
    scripted_phone.locator("details.more summary").click()
    assert scripted_phone.get_by_label("Older people").is_visible()
    assert_accessible(scripted_phone)
    assert_no_sideways_scroll(scripted_phone)

    open_new_form(phone, site)
    assert_accessible_without_script(chromium, phone)
