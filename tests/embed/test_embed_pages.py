"""The server-rendered embeds against a live aggregator: /embed, /embed/print, /embed/builder."""

from __future__ import annotations

import json
import re
from html import unescape

import httpx
import pytest

from tests.embed.live import (
    CHOIR_VERIFIED,
    HOME,
    HOSTILE,
    LUNCH_START,
    WALK_VERIFIED,
    aggregator_app,
    live_aggregator,
    make_hostile,
    month_year,
    next_walk,
    short_day,
)
from tests.publisher.test_activity_page_jsonld import vocabulary


def names(html: str) -> list[str]:
    return [unescape(name) for name in re.findall(r"<h2>(.*?)</h2>", html)]


@pytest.fixture
def live(serve, tmp_path):
    return live_aggregator(serve, tmp_path)


def test_embed_lists_nearest_first_in_plain_english_and_frames_anywhere(live):
    _, server = live
    response = httpx.get(f"{server.url}/embed", params={"near": HOME, "radius": "2", "aff": "gp-surgery"})
    assert response.status_code == 200
    assert "x-frame-options" not in response.headers
    assert response.headers["content-security-policy"] == "frame-ancestors *"
    html = unescape(response.text)
    assert names(response.text) == ["Winter Warmer Lunch", "Mitcham Health Walk", "Singing for the Brain"]
    # The walk: schedule, distance, cost, space, access in words, booking, freshness, who vouches.
    assert f"Every Tuesday, 10:00\u201311:00 · next: {short_day(next_walk())}" in html
    assert re.search(r"0\.9 km · 1\d min walk", html)
    assert "Free" in html and "Spaces available" in html and "Just turn up" in html
    assert "Access: Step-free access, Accessible toilet" in html
    assert f"Last checked {month_year(WALK_VERIFIED)}" in html
    assert "Listed by Mitcham CVS" in " ".join(re.sub(r"<[^>]+>", "", html).split())
    # The lunch: priced, waiting list, Eventbrite booking carrying the site's affiliate code.
    assert f"{short_day(LUNCH_START)}, 12:00\u201314:00" in html
    assert "£3.50 (Pay what you can)" in html and "Waiting list" in html
    eventbrite = "https://www.eventbrite.co.uk/e/winter-warmer-lunch-tickets-123456789"
    # Followed through the counting redirect (aggregator.impact), which ends at the same place.
    booking = re.search(r'href="([^"]+)"[^>]*>Book on Eventbrite</a>', html).group(1)
    assert httpx.get(server.url + booking).headers["location"] == f"{eventbrite}?aff=gp-surgery"
    assert ">Book on Eventbrite</a>" in html
    # The choir: first Thursday monthly, full, contact first, stale with its note.
    assert "First Thursday of the month, 14:00\u201315:30" in html
    assert "Full" in html and "Contact first" in html
    assert f"Not confirmed since {month_year(CHOIR_VERIFIED)}" in html
    # Search engines get an Event per next occurrence.
    blocks = re.findall(r'<script type="application/ld\+json">(.*?)</script>', response.text, re.S)
    events = [event for block in blocks for event in json.loads(block)]
    assert {event["name"] for event in events} >= {"Mitcham Health Walk", "Winter Warmer Lunch"}
    assert all(event["@type"] == "Event" and event["startDate"] for event in events)
    # The same schema.org events as the publisher's pages (federation.feeds.schemaorg), typed throughout.
    assert [problem for event in events for problem in vocabulary().problems(event)] == []
    assert all(event["location"]["@type"] == "Place" and event["offers"] for event in events)


def test_embed_pages_through_results_and_keeps_the_form(live):
    _, server = live
    first = httpx.get(f"{server.url}/embed", params={"near": HOME, "radius": "5", "limit": "2"})
    assert names(first.text) == ["Winter Warmer Lunch", "Mitcham Health Walk"]
    next_url = unescape(re.search(r'<a class="button" href="([^"]+)">Next page</a>', first.text).group(1))
    second = httpx.get(f"{server.url}{next_url}")
    # The stale choir comes after the fresh listings, however near it is.
    assert names(second.text) == ["Wimbledon Men's Shed", "Singing for the Brain"]
    assert 'name="limit" value="2"' in second.text  # the form keeps the page size


def test_embed_explains_a_bad_search_and_offers_the_form_again(live):
    _, server = live
    response = httpx.get(f"{server.url}/embed", params={"near": "not a postcode", "radius": "2"})
    assert response.status_code == 400
    assert "Sorry, we could not search for that." in response.text
    assert "not a postcode" in unescape(response.text)
    assert '<form class="filters"' in response.text and 'value="not a postcode"' in response.text

    tuesdays = httpx.get(f"{server.url}/embed", params={"near": HOME, "radius": "5", "day": "tu"})
    assert {"Mitcham Health Walk", "Wimbledon Men's Shed"} <= set(names(tuesdays.text))
    assert "Singing for the Brain" not in names(tuesdays.text)  # first Thursdays only
    assert '<option value="tu" selected>Tuesday</option>' in tuesdays.text

    nothing = httpx.get(f"{server.url}/embed", params={"near": HOME, "radius": "2", "category": "mens-shed"})
    assert nothing.status_code == 200
    assert "Nothing found within 2 km." in nothing.text


def test_text_from_feeds_is_escaped(live):
    app, server = live
    make_hostile(app, "Mitcham Health Walk")
    for path in ("/embed", "/embed/print"):
        response = httpx.get(f"{server.url}{path}", params={"near": HOME, "radius": "2"})
        assert "<img src=x" not in response.text, path  # (the page's own counting image is no feed text)
        assert "&lt;img src=x onerror=" in response.text, path
    assert HOSTILE not in response.text


def test_print_sheet_writes_everything_out(live):
    _, server = live
    # As many as the list it was printed from showed (its ``limit``), not 38 pages of everything.
    limited = httpx.get(f"{server.url}/embed/print", params={"near": HOME, "radius": "5", "limit": "2"})
    assert names(limited.text) == ["Winter Warmer Lunch", "Mitcham Health Walk"]
    response = httpx.get(f"{server.url}/embed/print", params={"near": HOME, "radius": "5"})
    assert response.status_code == 200
    html = unescape(response.text)
    assert names(response.text) == [
        "Winter Warmer Lunch",
        "Mitcham Health Walk",
        "Wimbledon Men's Shed",
        "Singing for the Brain",
    ]
    assert f"Activities within 5 km of {HOME}" in html
    assert "Mitcham Common, Windmill Road car park, Windmill Road, Mitcham, CR4 1HT" in html
    walk = next_walk()
    assert f"{walk:%A} {walk.day} {walk:%B %Y}, 10:00\u201311:00" in html  # next dates, in full
    assert "Book ahead: https://www.eventbrite.co.uk/e/winter-warmer-lunch-tickets-123456789" in html
    assert "Walk leader, 020 8123 4567, hello@mitcham-walkers.example" in html
    assert "Meet by the café at 9:50." in html
    assert "@media print" in html


def test_builder_makes_a_snippet_without_javascript(serve, tmp_path):
    server = serve(aggregator_app(tmp_path))
    blank = httpx.get(f"{server.url}/embed/builder")
    assert blank.status_code == 200 and '<form method="get"' in blank.text

    response = httpx.get(
        f"{server.url}/embed/builder",
        params=[
            ("near", HOME),
            ("radius", "3"),
            ("categories", "walking"),
            ("categories", "lunch-club"),
            ("free", "true"),
            ("controls", "1"),
            ("heading", 'Near us "today"</textarea><b>'),
            ("aff", "surgery"),
        ],
    )
    textarea = re.search(r'<textarea id="snippet"[^>]*>(.*?)</textarea>', response.text, re.S)
    snippet = unescape(textarea.group(1))
    assert f'<script type="module" src="{server.url}/widgets/localfeed.js"></script>' in snippet
    assert f'<localfeed-activities src="{server.url}" near="{HOME}" radius="3"' in snippet
    assert 'categories="walking,lunch-club" free="true"' in snippet
    assert 'heading="Near us &#34;today&#34;&lt;/textarea&gt;&lt;b&gt;" aff="surgery" controls>' in snippet
    embed_link = f"{server.url}/embed?near=CR4+1AA&amp;radius=3&amp;category=walking,lunch-club"
    assert f'<a href="{embed_link}' in snippet
    # The checked boxes stay checked, and the preview is the widget itself from a versioned URL.
    assert 'value="lunch-club" checked' in response.text
    assert re.search(r'<script type="module" src="/widgets/localfeed.js\?v=[0-9a-f]{16}">', response.text)
    assert "<b>" not in response.text
