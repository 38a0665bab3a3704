"""A source's public page and quality report say which of its items were refused, and why, by reason.

Quarantine rows are written straight into the store (as a harvest would) for two sources,
with reason codes of the contract, of the aggregator's own checks, and one no list knows.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert

from aggregator.quality import REFUSED_SHOWN_PER_REASON
from aggregator.sources import add_source
from aggregator.store import quarantine
from federation.clock import utcnow
from tests.conftest import assert_accessible

FOREIGN = "This feed is on a.example but lists an activity of b.example; list only your own activities."
FUTURE = "dateModified 2031-01-01T00:00:00Z is more than a day in the future; give the real date."
MISSING_NAME = "Name is missing; give the activity a short name."
NEW_KIND = "Something no label knows about yet."
UNREADABLE = "The event has no start date, so it cannot be listed."


# What a page must not show its reader: reason codes, harvest statuses, JSON paths, ISO dates and times.
MACHINE_WORDS = re.compile(
    r"unmapped|not-modified|unknown-category|foreign-origin|future-date|brand-new-check|\$[.:\[]"
    r"|\d{4}-\d\d-\d\d"
)
PLAIN_TIME = r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d"  # 7 Dec 2026, 13:38


def shown_text(page: str) -> str:
    """What a reader sees of ``page``: its text, without its head, scripts, tags or what tags hold (links)."""
    return html.unescape(re.sub(r"<head>.*?</head>|<script.*?</script>|<[^>]+>", " ", page, flags=re.S))


def problem(code: str, message: str, path: str = "$") -> dict[str, str]:
    return {"path": path, "code": code, "message": message}


def refuse(
    app: Flask, source_id: int, ref: str, problems: list[dict[str, str]], name: str | None = None
) -> None:
    data: dict[str, Any] | None = {"name": name} if name else None
    with app.extensions["engine"].begin() as conn:
        conn.execute(
            insert(quarantine).values(
                source_id=source_id, item_ref=ref, problems=problems, data=data,
                first_seen=utcnow(), last_seen=utcnow(),
            )
        )  # fmt: skip


def followed(app: Flask, url: str) -> int:
    return add_source(app.extensions["engine"], url, kind="localfeed", state="approved", config=app.config)


UNMAPPED = REFUSED_SHOWN_PER_REASON + 2  # more than the page lists for one reason


@pytest.fixture
def refusing(make_aggregator, database_url) -> tuple[Flask, int]:
    """An aggregator whose source on a.example had items refused for many reasons, beside another source."""
    app = make_aggregator(database_url)
    source_id = followed(app, "https://a.example/feed")
    other_id = followed(app, "https://c.example/feed")
    refuse(app, source_id, "https://b.example/activities/1", [problem("foreign-origin", FOREIGN, "$.id")],
           name="Borrowed Walk")  # fmt: skip
    refuse(
        app, source_id, "https://a.example/activities/2",
        [problem("future-date", FUTURE, "$.dateModified"), problem("required", MISSING_NAME, "$.name")],
    )  # fmt: skip
    refuse(app, source_id, "https://a.example/activities/3", [problem("brand-new-check", NEW_KIND)])
    for number in range(UNMAPPED):
        refuse(app, source_id, f"event-{number:02d}", [problem("unmapped", UNREADABLE)])
    refuse(app, other_id, "https://c.example/activities/9", [problem("control-character", "OTHER SOURCE'S")])
    return app, source_id


def test_the_source_page_lists_refused_items_by_reason(refusing):
    app, source_id = refusing
    page = html.unescape(app.test_client().get(f"/sources/{source_id}").text)

    # Each reason in words, with how many items; the most common first.
    assert f">Could not be read as an activity: {UNMAPPED} refused items</h3>" in page
    assert page.index("Could not be read as an activity:") < page.index("An activity of another site:")
    assert ">An activity of another site: 1 refused item</h3>" in page
    assert ">A date in the future: 1 refused item</h3>" in page
    # A code no list knows yet is said in its own words.
    assert ">Brand new check: 1 refused item</h3>" in page

    # Each item by its name, or as having none, its ref beside it; the plain message, with the field in words.
    assert '<th scope="row">Borrowed Walk<br><small>https://b.example/activities/1</small>' in page
    assert '<th scope="row">An item with no name<br><small>https://a.example/activities/2</small>' in page
    assert '<th scope="row">An item with no name<br><small>event-00</small>' in page
    assert re.search(rf"<small>last seen on {PLAIN_TIME}</small>", page)
    for text in (FOREIGN, FUTURE, MISSING_NAME, NEW_KIND, UNREADABLE):
        assert text in page, text
    assert f"{FOREIGN} <small>(field: Activity id)</small>" in page
    assert f"{FUTURE} <small>(field: Date modified)</small>" in page
    assert f"{MISSING_NAME} <small>(field: Name)</small>" in page
    assert f"{NEW_KIND}</li>" in page  # about the whole item: no field to name
    # An item refused for two reasons is under each, with that reason's message only.
    future_starts = page.index(">A date in the future: 1 refused")
    future = page[future_starts : page.index(">Something required is missing: 1 refused")]
    assert FUTURE in future and MISSING_NAME not in future
    machine_words = MACHINE_WORDS.findall(shown_text(page).replace(FUTURE, ""))  # the message quotes a date
    assert machine_words == [] and "<code>" not in page, machine_words

    # One reason shows so many items, and counts the rest.
    assert "event-19" in page and "event-20" not in page
    assert "And 2 more items refused for this reason" in page

    # Nothing of the other source.
    assert "OTHER SOURCE" not in page and "c.example/activities" not in page
    assert "control-character" not in page


def test_the_json_and_the_quality_report_carry_the_same_reasons(refusing):
    app, source_id = refusing
    client = app.test_client()

    refused = client.get(f"/sources/{source_id}.json").get_json()["refused"]
    assert [(r["code"], r["count"], len(r["items"]), r["more"]) for r in refused] == [
        ("unmapped", UNMAPPED, REFUSED_SHOWN_PER_REASON, 2),
        ("brand-new-check", 1, 1, 0),
        ("foreign-origin", 1, 1, 0),
        ("future-date", 1, 1, 0),
        ("required", 1, 1, 0),
    ]
    foreign = refused[2]
    assert foreign["label"] == "An activity of another site"
    assert foreign["items"][0]["item"] == "https://b.example/activities/1"
    assert foreign["items"][0]["name"] == "Borrowed Walk"
    assert foreign["items"][0]["problems"] == [{"path": "$.id", "message": FOREIGN}]
    assert refused[1]["label"] == "Brand new check"

    report = client.get(f"/sources/{source_id}/quality.json").get_json()
    assert report["refusedItems"] == UNMAPPED + 3
    assert report["problems"] == {
        "unmapped": UNMAPPED, "brand-new-check": 1, "foreign-origin": 1, "future-date": 1, "required": 1,
    }  # fmt: skip
    quality = html.unescape(client.get(f"/sources/{source_id}").text)
    quality = quality[quality.index('id="quality-heading"') : quality.index('id="refused-heading"')]
    assert "<li>An activity of another site: 1</li>" in quality
    assert "<li>Brand new check: 1</li>" in quality
    assert "<li>Could not be read as an activity: 22</li>" in quality
    assert MACHINE_WORDS.findall(shown_text(quality)) == [] and "<code>" not in quality
    assert "control-character" not in quality


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_refused_items_page_is_accessible(refusing, serve, chromium):
    app, source_id = refusing
    server = serve(app)
    context = chromium.new_context(locale="en-GB")
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{server.url}/sources/{source_id}")
        assert page.get_by_role("heading", level=3).count() == 5
        assert_accessible(page)
    finally:
        context.close()
