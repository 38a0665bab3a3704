"""The widget on a stand-in GP surgery website (another origin) against a live aggregator, in Chromium.

One browser per test process (the ``chromium`` fixture); each test gets a fresh context.
axe-core checks WCAG 2.2 A/AA on the widget (inside its Shadow DOM), /embed and /embed/print.
Screenshots of the widget and the print sheet go to tests/artifacts/ for the README.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import escape

import pytest
from flask import Flask, jsonify

from schema.price import describe_price
from schema.schedule import describe
from tests.conftest import ARTIFACTS, assert_accessible
from tests.embed.live import (
    CHOIR_VERIFIED,
    HOME,
    HOSTILE,
    LUNCH_START,
    WALK_VERIFIED,
    live_aggregator,
    make_hostile,
    month_year,
    next_walk,
    short_day,
)

pytestmark = pytest.mark.browser


def surgery_site(script_url: str, attributes: Mapping[str, str], css: str = "") -> Flask:
    """The GP surgery's own page, embedding the widget with the snippet the builder gives."""
    app = Flask("surgery")
    written = " ".join(f'{name}="{escape(value)}"' if value else name for name, value in attributes.items())

    @app.get("/")
    def home() -> str:
        return f"""<!doctype html><html lang="en-GB"><head><meta charset="utf-8">
<title>Mitcham Surgery</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 1rem; }} {css}</style>
<script type="module" src="{script_url}"></script></head>
<body><main><h1>Mitcham Surgery: things to do</h1>
<localfeed-activities {written}><a href="{attributes.get("src", "")}/embed">What's on near us</a>
</localfeed-activities></main></body></html>"""

    return app


def names(page) -> list[str]:
    return page.locator("localfeed-activities li.item h3").all_inner_texts()


SETTLED = """() => {
    const root = document.querySelector('localfeed-activities').shadowRoot;
    return root && !root.querySelector('[aria-busy]') && root.querySelector('.status').textContent;
}"""
FOCUSED = """() => {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    return el ? (el.getAttribute('name') || el.textContent.trim()) : '';
}"""


def wait_settled(page) -> None:
    page.wait_for_function(SETTLED)


def focused(page) -> str:
    """What has the keyboard focus, looking inside the widget's shadow root."""
    return page.evaluate(FOCUSED)


def open_widget(page, serve, aggregator, css: str = "", **attributes: str) -> None:
    script = f"{aggregator.url}/widgets/localfeed.js"
    site = serve(surgery_site(script, {"src": aggregator.url, **attributes}, css))
    page.goto(site.url)
    wait_settled(page)


def test_widget_lists_pages_filters_by_keyboard_and_prints(page, serve, tmp_path):
    _, aggregator = live_aggregator(serve, tmp_path)
    open_widget(
        page,
        serve,
        aggregator,
        near=HOME,
        radius="2",
        limit="2",
        aff="mitcham-surgery",
        controls="",
        heading="Things to do near the surgery",
    )

    assert not page.get_by_text("What's on near us").is_visible()  # the no-JS fallback is hidden
    assert page.get_by_role("heading", name="Things to do near the surgery").is_visible()
    assert names(page) == ["Winter Warmer Lunch", "Mitcham Health Walk"]
    lunch, walk = page.locator("localfeed-activities li.item").all()
    walk_text = walk.inner_text()
    assert f"Every Tuesday, 10:00\u201311:00 · next: {short_day(next_walk())}" in walk_text
    assert re.search(r"0\.9 km · 1\d min walk", walk_text)
    for words in (
        "Run by Mitcham Walkers",
        "Free",
        "Spaces available",
        "Just turn up",
        "Access: Step-free access, Accessible toilet",
        f"Last checked {month_year(WALK_VERIFIED)}",
    ):
        assert words in walk_text
    lunch_text = lunch.inner_text()
    assert f"{short_day(LUNCH_START)}, 12:00\u201314:00" in lunch_text
    assert "£3.50 (Pay what you can)" in lunch_text
    assert "Waiting list" in lunch_text
    booking = lunch.get_by_role("link", name="Book on Eventbrite")
    assert booking.get_attribute("href").endswith("tickets-123456789?aff=mitcham-surgery")
    assert "Listed by" in lunch_text

    assert_accessible(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("localfeed-activities").screenshot(path=ARTIFACTS / "widget.png")

    # "Show more" brings the next page and moves focus to the first new result.
    page.get_by_role("button", name="Show more").click()
    page.wait_for_function(
        "document.querySelector('localfeed-activities').shadowRoot.querySelectorAll('li.item').length === 3"
    )
    assert names(page)[2] == "Singing for the Brain"
    choir_text = page.locator("localfeed-activities li.item").nth(2).inner_text()
    assert "First Thursday of the month, 14:00\u201315:30" in choir_text
    assert "Full" in choir_text and "Contact first" in choir_text
    assert f"Not confirmed since {month_year(CHOIR_VERIFIED)}" in choir_text
    assert focused(page).startswith("Singing for the Brain")
    assert page.get_by_role("button", name="Show more").count() == 0

    # Keyboard only: Tab from the top of the page into the filter controls, change them, Enter.
    page.reload()
    wait_settled(page)
    page.keyboard.press("Tab")
    assert focused(page) == "near"
    page.keyboard.press("Tab")
    assert focused(page) == "radius"
    page.keyboard.press("ArrowDown")  # 2 km → 5 km
    for expected in ("categories", "day", "free"):
        page.keyboard.press("Tab")
        assert focused(page) == expected
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert focused(page) == "Search"
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('localfeed-activities').getAttribute('free') === 'true'")
    wait_settled(page)
    assert names(page) == ["Mitcham Health Walk", "Wimbledon Men's Shed"]
    assert page.locator("localfeed-activities").get_attribute("radius") == "5"

    # Tab on through the results to "Print this list"; Enter opens the printable sheet.
    for _ in range(12):
        page.keyboard.press("Tab")
        if focused(page) == "Print this list":
            break
    assert focused(page) == "Print this list"
    with page.context.expect_page() as opened:
        page.keyboard.press("Enter")
    sheet = opened.value
    sheet.wait_for_load_state()
    assert "/embed/print?" in sheet.url and "radius=5" in sheet.url and "free=true" in sheet.url
    assert sheet.locator("h2").all_inner_texts() == ["Mitcham Health Walk", "Wimbledon Men's Shed"]


def test_widget_empty_state_widens_the_search_and_takes_the_site_theme(page, serve, tmp_path):
    _, aggregator = live_aggregator(serve, tmp_path)
    theme = (
        "localfeed-activities { --localfeed-accent: rgb(106, 27, 154); }"
        " localfeed-activities::part(name) { text-transform: uppercase; }"
    )
    open_widget(
        page, serve, aggregator, css=theme, near=HOME, radius="2", categories="mens-shed", layout="cards"
    )
    status = page.locator("localfeed-activities [role=status]")
    assert status.inner_text() == "Nothing within 2 km \u2014 try 5 km"
    assert names(page) == []
    widen = page.get_by_role("button", name="Try 5 km")
    widen.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('localfeed-activities').getAttribute('radius') === '5'")
    wait_settled(page)
    assert names(page) == ["WIMBLEDON MEN'S SHED"]  # styled through ::part(name)
    assert status.inner_text() == "1 activity"
    print_button = page.get_by_role("link", name="Print this list")
    assert print_button.evaluate("el => getComputedStyle(el).borderColor") == "rgb(106, 27, 154)"
    grid = page.locator("localfeed-activities ul")
    columns = grid.evaluate("el => getComputedStyle(el).gridTemplateColumns")
    assert len(columns.split()) >= 2  # cards: a grid of columns
    assert re.search(r"3\.\d km · \d+ min walk", page.locator("localfeed-activities li.item").inner_text())


SCHEDULES = [
    {"repeatFrequency": "P1W", "byDay": ["TH", "MO"], "startTime": "09:30", "endTime": "10:15"},
    {
        "repeatFrequency": "P1W",
        "byDay": ["MO", "TU", "WE", "TH", "FR"],
        "startTime": "12:00",
        "endTime": "13:00",
    },
    {
        "repeatFrequency": "P1W",
        "byDay": ["MO", "TU", "WE", "TH", "FR", "SA", "SU"],
        "startTime": "07:00",
        "endTime": "08:00",
        "endDate": "2027-03-03",
    },
    {"repeatFrequency": "P2W", "byDay": ["SA"], "startTime": "10:00", "endTime": "12:00"},
    {"repeatFrequency": "P1M", "byDay": ["WE"], "byMonthWeek": -1, "startTime": "18:00", "endTime": "20:00"},
]


def test_widget_words_schedules_as_the_schema_does(page, serve, tmp_path):
    """The widget's own copy of the schedule wording (it has no Python) matches schema.schedule."""
    _, aggregator = live_aggregator(serve, tmp_path)
    open_widget(page, serve, aggregator, near=HOME)
    entries = [{"startDate": "2026-01-01", "timezone": "Europe/London", **entry} for entry in SCHEDULES]
    worded = page.evaluate(
        "entries => { const el = document.querySelector('localfeed-activities');"
        " return entries.map(entry => el.describe(entry)); }",
        entries,
    )
    assert worded == [describe(entry) for entry in entries]


PRICES = [
    {"isFree": True},
    {"isFree": True, "notes": "Tea included"},
    {"amount": 0, "currency": "GBP"},
    {"amount": 3.5, "currency": "GBP"},
    {"amount": 1234, "currency": "GBP", "notes": "for the term"},
    {"isFree": False, "notes": "Pay what you can"},
]


def test_widget_words_prices_as_the_schema_does(page, serve, tmp_path):
    """A price with no amount shows its notes, never "Free"; the rest read as on the embed pages."""
    _, aggregator = live_aggregator(serve, tmp_path)
    open_widget(page, serve, aggregator, near=HOME)
    worded = page.evaluate(
        "prices => { const el = document.querySelector('localfeed-activities');"
        " return prices.map(price => el.cost(price)); }",
        PRICES,
    )
    assert worded == [describe_price(price) for price in PRICES]


def test_widget_error_state_offers_a_retry(page, serve, tmp_path):
    broken = Flask("broken")
    calls = []

    @broken.get("/api/activities")
    def failing():
        calls.append(1)
        message = "The aggregator's database is being upgraded."
        response = jsonify(error={"message": message, "parameter": None})
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response, 500

    broken_server = serve(broken)
    _, aggregator = live_aggregator(serve, tmp_path)
    script = f"{aggregator.url}/widgets/localfeed.js"
    site = serve(surgery_site(script, {"src": broken_server.url, "near": HOME}))
    page.goto(site.url)
    wait_settled(page)
    status = page.locator("localfeed-activities [role=status]")
    assert status.inner_text() == (
        "Sorry, the activities could not be loaded. The aggregator's database is being upgraded."
    )
    with page.expect_response(lambda response: "/api/activities" in response.url):
        page.get_by_role("button", name="Try again").click()
    wait_settled(page)
    assert len(calls) == 2
    assert page.get_by_role("button", name="Try again").is_visible()


def test_hostile_text_is_only_ever_text(page, serve, tmp_path):
    app, aggregator = live_aggregator(serve, tmp_path)
    make_hostile(app, "Mitcham Health Walk")
    open_widget(page, serve, aggregator, near=HOME, radius="2")
    assert f"Knit and Natter {HOSTILE}" in names(page)
    assert f"Bring a friend {HOSTILE}" in page.locator("localfeed-activities li.item").nth(1).inner_text()
    widget_images = "document.querySelector('localfeed-activities').shadowRoot.querySelectorAll('img').length"
    assert page.evaluate(widget_images) == 0
    page.goto(f"{aggregator.url}/embed?near=CR4+1AA&radius=2")
    assert f"Knit and Natter {HOSTILE}" in page.locator("h2").all_inner_texts()
    assert page.locator("img:not([src^='/impact/'])").count() == 0  # but the page's counting image
    assert page.title() != "pwned"


def test_embed_and_print_pages_pass_axe(page, serve, tmp_path):
    _, aggregator = live_aggregator(serve, tmp_path)
    page.goto(f"{aggregator.url}/embed?near=CR4+1AA&radius=5")
    assert page.locator("h2").count() == 4
    assert_accessible(page)
    page.goto(f"{aggregator.url}/embed?near=nowhere")  # the error page, with its form
    assert_accessible(page)
    page.goto(f"{aggregator.url}/embed/print?near=CR4+1AA&radius=5")
    assert_accessible(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.emulate_media(media="print")
    page.screenshot(path=ARTIFACTS / "print-sheet.png", full_page=True)
    page.goto(f"{aggregator.url}/embed/builder?near=CR4+1AA&categories=walking")
    page.wait_for_function(
        "document.querySelector('localfeed-activities').shadowRoot?.querySelector('li.item')"
    )
    assert_accessible(page)
