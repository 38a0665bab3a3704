"""Every renderer is safe on its own: no stored text can make a feed or a page fail or break out.

The contract now refuses control characters, but items stored before that rule (or written
by a path that skipped it) must still render, at the publisher and at every aggregator
that harvested them. These tests write such text straight into each app's store, past the
contract, and read every rendering over real HTTP: Atom, iCalendar, RPDE, HTML pages and
the JSON-LD inside them.
"""

from __future__ import annotations

import copy
import json
import re
from html import unescape
from typing import Any

import feedparser
import httpx
import icalendar
import pytest
from lxml import etree
from sqlalchemy import func, insert, select

from aggregator import search_index
from aggregator.store import merged
from federation.feeds import FeedInfo, render_atom, render_ical
from federation.feeds.common import renderable
from publisher import editing
from schema.text import FORBIDDEN_CHARACTER
from tests.embed.live import HOME, aggregator_app
from tests.embed.live import activities as live_activities
from tests.factories import BASE, event_activity, weekly_activity
from tests.publisher.conftest import make_publisher, store_of  # noqa: F401 (a fixture used here)

# A name as an editor's paste, a broken export or an old feed might have left it in a store.
STORED_NAME = "Knit\x07 and\x1b Natter\x85\ufffe"
SHOWN_NAME = "Knit and Natter"
# Text that would end a script block or open a comment if a page printed it raw.
BREAKOUT = "Bring a friend </script><script>document.title='pwned'</script><!-- and\x00 tea"
INFO = FeedInfo(title="Feed\x07 title", self_url="https://a.example/f.atom", home_url="https://a.example/")
JSON_LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


def stored_hostile(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with forbidden characters in many of its strings, nested ones and a key included."""
    doc = copy.deepcopy(doc)
    doc["name"] = STORED_NAME
    doc["description"] = BREAKOUT
    doc["organizer"]["name"] = "Mitcham\x07 Walkers"
    doc["organizer"]["url"] = "https://walkers.example/\x07"
    doc["location"]["name"] = "Windmill\x0b Road"
    doc["location"]["address"]["addressLocality"] = "Mitcham\x7f"
    doc["categories"] = ["walking", "walk\x07ing", "a-category-no-longer-listed"]
    doc["ext:note\x07"] = ["fine", "not\x08 fine"]
    doc["booking"] = {"method": "book-ahead", "url": "javascript:alert('booked')"}
    return doc


def _no_forbidden_characters(text: str) -> None:
    found = FORBIDDEN_CHARACTER.search(text)
    context = text[found.start() - 40 :][:80] if found else ""
    assert found is None, f"U+{ord(found.group()):04X} at {found.start()} in {context!r}"


def _check_atom(body: bytes, name: str) -> None:
    """The Atom document is well-formed XML and a feed reader finds the entry under its shown name."""
    root = etree.fromstring(body)  # raises on anything XML 1.0 cannot carry
    titles = root.findall("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}title")
    assert name in [title.text for title in titles]
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert name in [entry.title for entry in parsed.entries]
    _no_forbidden_characters(body.decode("utf-8"))


def _check_ical(body: bytes, name: str) -> None:
    calendar = icalendar.Calendar.from_ical(body)
    assert name in [str(event["SUMMARY"]) for event in calendar.walk("VEVENT")]
    _no_forbidden_characters(body.decode("utf-8"))


def _json_ld_blocks(html: str) -> list[Any]:
    """Each JSON-LD block of a page, parsed: a block cut short by a breakout would not parse."""
    return [json.loads(block) for block in JSON_LD.findall(html)]


@pytest.mark.parametrize("make", [weekly_activity, event_activity], ids=["series", "event"])
def test_atom_and_ical_renderers_drop_what_they_cannot_carry(make):
    doc = stored_hostile(make())

    atom = render_atom(INFO, [doc])
    _check_atom(atom, SHOWN_NAME)
    assert etree.fromstring(atom).findtext("{http://www.w3.org/2005/Atom}title") == "Feed title"
    feed = feedparser.parse(atom)
    assert feed.entries[0].author == "Mitcham Walkers"
    assert {tag.term for tag in feed.entries[0].tags} == {"walking", "a-category-no-longer-listed"}

    ical = render_ical(INFO, [doc])
    _check_ical(ical, SHOWN_NAME)
    (event,) = icalendar.Calendar.from_ical(ical).walk("VEVENT")
    assert "Bring a friend </script>" in str(event["DESCRIPTION"])


def test_a_clean_document_is_rendered_as_it_is_not_copied():
    doc = weekly_activity()
    assert renderable(doc) is doc
    cleaned = renderable(stored_hostile(doc))
    assert cleaned["name"] == SHOWN_NAME and "ext:note" in cleaned
    _no_forbidden_characters(json.dumps(cleaned, ensure_ascii=False))


def test_ical_text_is_escaped_folded_and_reads_back_the_same():
    description = "Tea, cake; and a\\backslash\r\nNew line – café 😀 " + "long " * 30
    doc = weekly_activity(description=description, name="A, B; C\\D")
    body = render_ical(INFO, [doc])

    assert all(len(line) <= 75 for line in body.split(b"\r\n")), "a line longer than RFC 5545 allows"
    (event,) = icalendar.Calendar.from_ical(body).walk("VEVENT")
    assert str(event["SUMMARY"]) == "A, B; C\\D"
    assert str(event["DESCRIPTION"]).endswith(description.replace("\r\n", "\n"))
    assert str(event["RRULE"].to_ical().decode()) == "FREQ=WEEKLY;BYDAY=TU"
    assert event["DTSTART"].params["TZID"] == "Europe/London"


def served_publisher(make: Any, serve: Any, tmp_path: Any) -> tuple[Any, Any, Any]:
    """A publisher (made by the ``make_publisher`` fixture) served on loopback, its store, and a group."""
    app = make(f"sqlite:///{tmp_path / 'publisher.sqlite'}")
    server = serve(app)
    store = store_of(app)
    return server, store, store.add_group("Mitcham Walkers", url="https://walkers.example/")


def test_publisher_serves_every_rendering_of_text_stored_past_the_contract(
    make_publisher,  # noqa: F811 (the fixture, imported above)
    serve,
    tmp_path,
):
    server, store, group = served_publisher(make_publisher, serve, tmp_path)
    saved = editing.save_activity(store, group, weekly_activity(), base_url=server.url)
    assert saved.slug is not None and not saved.problems
    store.replace_activity(saved.slug, stored_hostile(saved.activity), group_id=group.id)

    with httpx.Client(base_url=server.url, timeout=10) as client:
        atom, ical = client.get("/feeds/activities.atom"), client.get("/feeds/activities.ics")
        rpde, home = client.get("/feeds/activities"), client.get("/")
        page = client.get(f"/activities/{saved.slug}")

    assert [r.status_code for r in (atom, ical, rpde, home, page)] == [200] * 5
    _check_atom(atom.content, SHOWN_NAME)
    _check_ical(ical.content, SHOWN_NAME)
    assert rpde.json()["items"][0]["data"]["name"] == STORED_NAME  # the data as stored: JSON carries it
    for html in (home.text, page.text):
        _no_forbidden_characters(html)
        assert SHOWN_NAME in unescape(html)
    (activity_ld,) = [block for block in _json_ld_blocks(page.text) if "organizer" in block]
    assert activity_ld["name"] == SHOWN_NAME
    assert activity_ld["description"] == BREAKOUT.replace("\x00", "")
    assert "document.title='pwned'</script>" not in page.text
    assert 'href="javascript:' not in page.text  # a stored link that is not http(s) is never clickable


def store_merged(
    app: Any, activities: list[dict[str, Any]], source_id: int | None = None, *, indexed: bool = True
) -> None:
    """Write ``activities`` into the merged set (and its search index when ``indexed``) as stores hold them.

    ``source_id``, when given, is the source their provenance names (so that its page counts them).
    """
    with app.extensions["engine"].begin() as conn:
        last = conn.execute(select(func.coalesce(func.max(merged.c.change_number), 0))).scalar_one()
        for number, activity in enumerate(activities, start=last + 1):
            source: dict[str, Any] = {"source_url": f"{BASE}/feeds/activities", "item_id": activity["id"]}
            if source_id is not None:
                source["source_id"] = source_id
            provenance = [source]
            row = {"item_id": activity["id"], "kind": activity["type"], "data": activity}
            inserted = conn.execute(insert(merged).values(**row, provenance=provenance, change_number=number))
            merged_id = inserted.inserted_primary_key[0]
            if indexed:
                search_index.reindex(conn, merged_id, activity, provenance)


def test_aggregator_serves_every_rendering_of_text_stored_past_the_contract(serve, tmp_path):
    app = aggregator_app(tmp_path)
    walk, *others = live_activities()[1:] + live_activities()[:1]
    store_merged(app, [stored_hostile(walk), *others])
    server = serve(app)

    with httpx.Client(base_url=server.url, timeout=10) as client:
        atom, ical = client.get("/feeds/activities.atom"), client.get("/feeds/activities.ics")
        rpde, home = client.get("/feeds/activities"), client.get("/")
        embed = client.get("/embed", params={"near": HOME, "radius": "5"})
        printed = client.get("/embed/print", params={"near": HOME, "radius": "5"})
        api = client.get("/api/activities", params={"near": HOME, "radius": "5"})

    assert [r.status_code for r in (atom, ical, rpde, home, embed, printed, api)] == [200] * 7
    _check_atom(atom.content, SHOWN_NAME)
    _check_ical(ical.content, SHOWN_NAME)
    for html in (embed.text, printed.text, home.text):
        _no_forbidden_characters(html)
        _json_ld_blocks(html)
    assert SHOWN_NAME in unescape(embed.text)
    assert "document.title='pwned'</script>" not in embed.text
    events = [event for block in _json_ld_blocks(embed.text) for event in block]
    assert SHOWN_NAME in [event["name"] for event in events]
    # JSON carries the text as stored: a JSON reader can hold any character.
    assert STORED_NAME in [item["activity"]["name"] for item in api.json()["items"]]
