"""A link worker's shortlist, in Chromium at a phone's size: tick, print, share by short link.

A live aggregator harvests a stand-in publisher's feed (the real harvest, merge, store and
query); the feed can later withdraw an activity, as a group that stops would. The widget sits
on a stand-in surgery site on another origin; /embed is used with JavaScript off.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import segno
from flask import Flask, Response, request, url_for
from sqlalchemy import insert

from aggregator import shortlist
from aggregator.harvest import harvest_source
from aggregator.settings import job_config
from aggregator.store import sources
from schema import rpde
from tests import factories
from tests.browser.test_widget import open_widget
from tests.conftest import (
    ARTIFACTS,
    assert_accessible,
    assert_accessible_without_script,
    assert_no_sideways_scroll,
)
from tests.embed.live import FEED_PATH, HOME, activities, aggregator_app, place

pytestmark = pytest.mark.browser

PHONE_NUMBER = "020 8765 4321"
BOOKING_PAGE = "https://movewell.example/book/chair-yoga"
PICKED = ["Winter Warmer Lunch", "Mitcham Health Walk", "Singing for the Brain"]


def more_activities(site: str) -> list[dict[str, Any]]:
    """Five more walks near HOME, an online class booked online, and a group that will stop."""
    walks = [
        factories.weekly_activity(
            base=site,
            id=f"{site}/activities/park-walk-{number}",
            name=f"Park Walk {number}",
            location=place(51.4015 + number / 1000, -0.1660, f"Park Gate {number}", "CR4 1AA"),
        )
        for number in range(1, 6)
    ]
    online = factories.weekly_activity(
        base=site,
        id=f"{site}/activities/chair-yoga-online",
        name="Chair Yoga Online",
        organizer={"name": "Move Well Merton"},
        categories=["chair-exercise"],
        attendanceMode="online",
        onlineUrl="https://movewell.example/live",
        booking={"method": "book-ahead", "url": BOOKING_PAGE},
        contact={"name": "Jo", "telephone": PHONE_NUMBER, "email": "jo@movewell.example"},
    )
    online.pop("location")
    closing = factories.weekly_activity(
        base=site,
        id=f"{site}/activities/knit-and-natter",
        name="Knit and Natter",
        categories=["arts-crafts"],
        location=place(51.4010, -0.1650, "Library", "CR4 1AA"),
    )
    return [*walks, online, closing]


class Publisher:
    """A feed whose changes are appended as they happen: a publishing, then perhaps a withdrawal."""

    def __init__(self, serve: Callable) -> None:
        self.changes: list[dict[str, Any]] = []
        app = Flask("changing_feed")

        @app.get(FEED_PATH)
        def feed() -> Response:
            after = int(request.args.get("afterChangeNumber", 0))
            page = [item for item in self.changes if item["modified"] > after]
            next_url = url_for(
                "feed", afterChangeNumber=page[-1]["modified"] if page else after, _external=True
            )
            return Response(rpde.encode_page(page, next_url), content_type=rpde.MEDIA_TYPE)

        self.site = serve(app).url

    def publish(self, activity: dict[str, Any]) -> None:
        self.changes.append(factories.wire_item(activity["id"], len(self.changes) + 1, activity))

    def withdraw(self, activity_id: str) -> None:
        self.changes.append(rpde.deleted_item(activity_id, len(self.changes) + 1))


class Live:
    """The aggregator following the publisher, and its address."""

    def __init__(self, serve: Callable, tmp_path) -> None:
        self.publisher = Publisher(serve)
        for activity in [*activities(self.publisher.site), *more_activities(self.publisher.site)]:
            self.publisher.publish(activity)
        self.app = aggregator_app(tmp_path)
        feed_url = self.publisher.site + FEED_PATH
        with self.app.extensions["engine"].begin() as conn:
            self.source_id = conn.execute(
                insert(sources).values(
                    url=feed_url, feed_url=feed_url, kind="localfeed", name="Mitcham CVS", state="approved"
                )
            ).inserted_primary_key[0]
        self.harvest()
        self.url = serve(self.app).url

    def harvest(self) -> None:
        result = harvest_source(self.source_id, job_config(self.app))
        assert result.status == "ok", result

    def id(self, slug: str) -> str:
        return f"{self.publisher.site}/activities/{slug}"


@pytest.fixture
def live(serve, tmp_path) -> Live:
    return Live(serve, tmp_path)


def pdf_pages(page) -> int:
    """How many A4 pages ``page`` prints to (Chromium writes one ``/Type /Page`` object a page)."""
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", page.pdf(format="A4")))


def headings(page) -> list[str]:
    return page.locator("li.item h2").all_inner_texts()


def short_link_on(page) -> str:
    return page.locator(".short").inner_text()


def assert_qr_encodes(page, url: str) -> None:
    """The page's QR code is the one segno draws for ``url`` (segno cannot read one back)."""
    drawn = page.locator("svg[role=img] path").get_attribute("d")
    expected = re.search(r' d="([^"]+)"', segno.make(url, micro=False).svg_inline()).group(1)
    assert drawn == expected
    assert page.get_by_role("img", name="QR code for the up-to-date list").count() == 1


def test_a_shortlist_from_the_widget_prints_on_one_or_two_pages_and_shares_by_short_link(
    scripted_phone, serve, live
):
    page = scripted_phone
    open_widget(page, serve, live, near=HOME, radius="5", limit="20")
    widget = page.locator("localfeed-activities")
    # Nothing ticked yet: the buttons say what they need, in the live region.
    page.get_by_role("button", name="Print these").click()
    assert widget.locator("[aria-live=polite]").inner_text() == "Tick the activities you want first."
    for name in PICKED:
        widget.get_by_role("checkbox", name=f"Pick {name}").check()

    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Print these").click()
    sheet = opened.value
    sheet.wait_for_load_state()
    assert "/embed/print?" in sheet.url and sheet.url.count("pick=") == 3
    assert headings(sheet) == PICKED
    text = sheet.locator("main").inner_text()
    assert "St Mark's Church Hall, 1 St Mark's Church Hall Road, Mitcham, CR4 2LF" in text  # how to get there
    assert "Next dates" in text and "nothing about you" in text
    link = short_link_on(sheet)
    assert re.fullmatch(rf"{re.escape(live.url)}/s/[0-9a-z-]{{3,20}}", link), link
    assert_qr_encodes(sheet, link)
    assert_accessible(sheet)
    assert_no_sideways_scroll(sheet)
    ARTIFACTS.mkdir(exist_ok=True)
    sheet.emulate_media(media="print")
    sheet.screenshot(path=ARTIFACTS / "shortlist-sheet.png", full_page=True)
    assert 1 <= pdf_pages(sheet) <= 2

    # "Copy a link to these": the same short link, on the clipboard, and said in the live region.
    page.get_by_role("button", name="Copy a link to these").click()
    said = widget.locator("[aria-live=polite]")
    page.wait_for_function(
        "() => document.querySelector('localfeed-activities').shadowRoot"
        ".querySelector('[aria-live=polite]').textContent.startsWith('Link copied')"
    )
    assert said.inner_text() == f"Link copied: {link}"
    assert page.evaluate("navigator.clipboard.readText()") == link

    # The short link opens the live list of the same picks, which links to the sheet.
    page.goto(link)
    assert "/embed/shortlist?" in page.url
    assert headings(page) == PICKED
    assert_accessible(page)
    assert_no_sideways_scroll(page)
    page.get_by_role("link", name="Print these").click()
    assert headings(page) == PICKED and "/embed/print?" in page.url


def test_a_shortlist_from_embed_without_javascript(phone, chromium, live):
    phone.goto(f"{live.url}/embed?near=CR4+1AA&radius=5&limit=20")
    assert_no_sideways_scroll(phone)
    for name in PICKED:
        phone.get_by_role("checkbox", name=f"Pick {name}").check()
    with phone.context.expect_page() as opened:
        phone.get_by_role("button", name="Print these").click()
    sheet = opened.value
    sheet.wait_for_load_state()
    assert headings(sheet) == PICKED
    assert_no_sideways_scroll(sheet)
    link = short_link_on(sheet)
    assert_qr_encodes(sheet, link)

    # Without JavaScript, "Copy a link to these" opens a page showing the link to copy.
    with phone.context.expect_page() as opened:
        phone.get_by_role("button", name="Copy a link to these").click()
    link_page = opened.value
    link_page.wait_for_load_state()
    assert link_page.get_by_label("The link (select it and copy it)").input_value() == link
    assert "these 3 activities" in link_page.locator("main").inner_text()
    assert_qr_encodes(link_page, link)
    assert_no_sideways_scroll(link_page)
    assert_accessible_without_script(chromium, link_page)

    link_page.goto(link)
    assert "/embed/shortlist?" in link_page.url and headings(link_page) == PICKED
    assert_accessible_without_script(chromium, link_page)

    # Nothing ticked: a kind message instead of the whole list.
    phone.goto(f"{live.url}/embed?near=CR4+1AA&radius=5")
    with phone.context.expect_page() as opened:
        phone.get_by_role("button", name="Print these").click()
    empty = opened.value
    empty.wait_for_load_state()
    assert "No activities were ticked" in empty.get_by_role("alert").inner_text()
    assert headings(empty) == []


def test_print_honours_limit_and_filters(phone, live):
    phone.goto(f"{live.url}/embed/print?near=CR4+1AA&radius=5&limit=5")
    assert len(headings(phone)) == 5
    phone.goto(f"{live.url}/embed/print?near=CR4+1AA&radius=5&limit=5&category=arts-crafts")
    assert headings(phone) == ["Knit and Natter"]
    phone.goto(f"{live.url}/embed/print?near=CR4+1AA&radius=5&category=walking&limit=3")
    assert len(headings(phone)) == 3
    assert set(headings(phone)) <= {"Mitcham Health Walk", *(f"Park Walk {n}" for n in range(1, 6))}
    assert_no_sideways_scroll(phone)


def test_online_booking_puts_the_phone_number_first(phone, chromium, live):
    phone.goto(f"{live.url}/embed/print?pick={live.id('chair-yoga-online')}")
    assert headings(phone) == ["Chair Yoga Online"]
    how = phone.locator("dt:text-is('How to join') + dd").inner_text()
    assert how == f"Phone {PHONE_NUMBER} to book, or book online at {BOOKING_PAGE}"
    assert phone.locator("dt:text-is('Where') + dd").inner_text() == "Online"
    assert_accessible_without_script(chromium, phone)


def test_withdrawn_and_unknown_picks_are_said_plainly(phone, live):
    kept, closing = live.id("mitcham-health-walk"), live.id("knit-and-natter")
    phone.goto(f"{live.url}/embed/print?pick={kept}&pick={closing}")
    before = short_link_on(phone)
    assert headings(phone) == ["Mitcham Health Walk", "Knit and Natter"]

    live.publisher.withdraw(closing)
    live.harvest()
    phone.goto(f"{live.url}/embed/print?pick={kept}&pick={closing}")
    assert headings(phone) == ["Mitcham Health Walk"]
    assert phone.get_by_role("status").inner_text().startswith("1 of your picks is no longer listed")
    assert short_link_on(phone) != before  # the new link names only what is listed
    # The short link printed before still opens, and says so too.
    phone.goto(before)
    assert headings(phone) == ["Mitcham Health Walk"]
    assert phone.get_by_role("status").inner_text().startswith("1 of your picks is no longer listed")

    phone.goto(f"{live.url}/embed/shortlist?pick={live.id('never-listed')}&pick={closing}")
    assert headings(phone) == []
    assert phone.get_by_role("status").inner_text().startswith("2 of your picks are no longer listed")


def test_short_links_refuse_what_we_did_not_make(phone, live):
    made = shortlist.encode([1, 2, 3])
    mistyped = made[:2] + ("x" if made[2] != "x" else "y") + made[3:]
    for code in (mistyped, "zzzz", "1-2", "--", made + "0", "-".join(["1"] * 21) + "00"):
        response = httpx.get(f"{live.url}/s/{code}")
        assert response.status_code == 404, code
        assert "We can't open this short link" in response.text
    phone.goto(f"{live.url}/s/{mistyped}")
    assert phone.get_by_role("heading", level=1).inner_text() == "We can't open this short link"
    assert_no_sideways_scroll(phone)
    # Read off paper: capitals, and O for 0 or l for 1, are what a person types.
    assert shortlist.decode(made.upper().replace("0", "O").replace("1", "l")) == [1, 2, 3]


def test_a_shortlist_holds_at_most_twenty(phone, live):
    picks = "&".join(f"pick={live.id(f'park-walk-{n % 5 + 1}')}%3Fcopy{n}" for n in range(22))
    phone.goto(f"{live.url}/embed/print?pick={live.id('mitcham-health-walk')}&{picks}")
    assert "A shortlist holds at most 20 activities" in phone.locator("main").inner_text()
    assert headings(phone) == ["Mitcham Health Walk"]
