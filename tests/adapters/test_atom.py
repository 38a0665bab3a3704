"""Atom and RSS feeds: our publisher's Atom, schema.org JSON-LD in a blog's RSS, broken feeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import feedparser

from aggregator.adapters import atom, detect
from aggregator.adapters.mapping import VERIFIED_BY, minted_id
from federation.feeds.atom import Tombstone, render_atom
from federation.feeds.common import FeedInfo
from schema import validate_activity
from tests.factories import event_activity, weekly_activity

NOW = datetime(2026, 11, 20, tzinfo=UTC)

JSON_LD_EVENT = {
    "@context": "https://schema.org",
    "@type": "Event",
    "@id": "https://stmarks.example/events/carol-singing",
    "name": "Carol Singing Around the Tree",
    "description": "<p>Mince pies and <b>carols</b> for everyone.</p>",
    "startDate": "2026-12-19T15:00:00+00:00",
    "endDate": "2026-12-19T16:30:00+00:00",
    "location": {
        "@type": "Place",
        "name": "St Mark's Church",
        "address": {
            "@type": "PostalAddress",
            "streetAddress": "St Mark's Road",
            "addressLocality": "Mitcham",
            "postalCode": "CR4 2LF",
        },
    },
    "organizer": {"@type": "Organization", "name": "St Mark's Church", "url": "https://stmarks.example/"},
    "isAccessibleForFree": True,
}

RSS = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
<title>St Mark's news</title><link>https://stmarks.example/</link><description>News</description>
<item>
  <title>Carol singing</title><link>https://stmarks.example/news/carols</link>
  <guid>https://stmarks.example/news/carols</guid><pubDate>Tue, 10 Nov 2026 09:00:00 GMT</pubDate>
  <description><![CDATA[<p>Join us!</p>
    <script type="application/ld+json">{json.dumps(JSON_LD_EVENT)}</script>]]></description>
</item>
<item>
  <title>New roof appeal</title><link>https://stmarks.example/news/roof</link>
  <guid>https://stmarks.example/news/roof</guid>
  <description><![CDATA[<p>We have raised half of the money. <a href="https://stmarks.example/give">Give</a></p>]]></description>
</item>
</channel></rss>""".encode()


def test_a_publishers_atom_feed(site, fetch_for):
    """Our publisher's own Atom (activity JSON, Base64, as RFC 4287 wants) reads back unchanged."""
    info = FeedInfo(title="Mitcham", self_url=site.url + "/feeds/activities.atom", home_url=site.url + "/")
    body = render_atom(
        info, [weekly_activity(), event_activity()], [Tombstone("https://publisher.example/x", NOW)]
    )
    assert detect("application/atom+xml", body) == "atom"
    url = site.file("/feeds/activities.atom", body, "application/atom+xml")
    (page,) = atom.pages(fetch_for(url), url, None, now=NOW)
    assert page.snapshot and page.unmapped == []
    assert {change.id: change.data for change in page.changes} == {
        weekly_activity()["id"]: weekly_activity(),
        event_activity()["id"]: event_activity(),
    }
    assert site.requests == ["/feeds/activities.atom"]


def test_json_ld_events_in_rss_are_mapped_and_news_is_not(site, fetch_for):
    assert detect("application/rss+xml", RSS) == "atom" and detect("text/xml", RSS) == "atom"
    url = site.file("/news.rss", RSS, "application/rss+xml")
    (page,) = atom.pages(fetch_for(url), url, None, now=NOW)
    (change,) = page.changes
    activity = change.data
    assert validate_activity(activity) == []
    # The event's page is on another site than the feed: its id is namespaced under the feed (a feed
    # speaks only for its own site), and the page's URL is kept in sameAs to merge with its own copy.
    assert change.id == minted_id(url, "https://stmarks.example/events/carol-singing")
    assert activity["sameAs"] == ["https://stmarks.example/events/carol-singing"]
    assert activity["type"] == "Event" and activity["name"] == "Carol Singing Around the Tree"
    assert activity["description"] == "Mince pies and carols for everyone."  # text, not HTML
    assert (activity["startDate"], activity["endDate"]) == (
        "2026-12-19T15:00:00+00:00",
        "2026-12-19T16:30:00+00:00",
    )
    assert activity["location"]["address"]["postalCode"] == "CR4 2LF"
    assert activity["price"] == {"isFree": True}
    assert activity["categories"] == ["music-singing"]
    # The entry's date is when it was written, not when anyone checked the event.
    assert activity["dateModified"] == "2026-11-10T09:00:00+00:00"
    assert activity["lastVerified"] == "2026-11-10" and VERIFIED_BY not in activity
    (news,) = page.unmapped
    assert news.ref == "https://stmarks.example/news/roof"
    assert news.reason.startswith("Entry 'New roof appeal' is not an activity")
    # feedparser was given bytes: it fetched neither links nor anything else.
    assert site.requests == ["/news.rss"]


def test_a_broken_feed_is_reported_and_what_can_be_read_is_kept(site, fetch_for):
    broken = RSS.replace(b"</channel></rss>", b"<item><title>Half an item</title>")
    url = site.file("/broken.rss", broken, "application/rss+xml")
    (page,) = atom.pages(fetch_for(url), url, None, now=NOW)
    assert [c.id for c in page.changes] == [minted_id(url, "https://stmarks.example/events/carol-singing")]
    assert not page.snapshot  # an entry lost to the break must not count as removed
    feed_problem = next(u for u in page.unmapped if u.ref == url)
    assert (
        "is not well-formed" in feed_problem.reason and "we read the entries we could" in feed_problem.reason
    )

    unreadable = atom.read_feed(b"<html><body>Not found</body></html>", url, NOW)
    assert not unreadable.snapshot and unreadable.changes == []
    assert "is not an Atom or RSS feed" in unreadable.unmapped[0].reason
    cut_short = b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>x'
    truncated = atom.read_feed(cut_short, url, NOW)
    assert not truncated.snapshot and truncated.changes == []
    assert "no entries could be read" in truncated.unmapped[0].reason


def test_doctype_is_refused_before_parsing():
    bomb = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><feed xmlns="http://www.w3.org/2005/Atom"/>'
    page = atom.read_feed(bomb, "https://x.example/feed", NOW)
    assert not page.snapshot and page.changes == []
    assert "declares a DOCTYPE" in page.unmapped[0].reason


def _feed(entries: list[str], root: str = "feed") -> bytes:
    opening = '<feed xmlns="http://www.w3.org/2005/Atom">' if root == "feed" else "<rss><channel>"
    closing = "</feed>" if root == "feed" else "</channel></rss>"
    return ('<?xml version="1.0" encoding="utf-8"?>' + opening + "<title>Pollards Hill news</title>"
            + "\n".join(entries) + closing).encode()  # fmt: skip


def test_a_long_feed_is_parsed_in_batches_exactly_as_it_would_be_whole(monkeypatch):
    """Batches (so the time limit can stop a huge feed) lose nothing, and markup hidden in a
    comment or CDATA does not split an entry."""
    entries = [
        f"<entry><id>urn:e{n}</id><title>News {n}</title>"
        + ("<!-- </entry><entry> -->" if n % 7 == 0 else "")
        + (f"<summary><![CDATA[<entry>not one</entry> {n}]]></summary>" if n % 5 == 0 else "")
        + "</entry>"
        for n in range(23)
    ]
    items = [f"<item><guid>urn:i{n}</guid><title>Item {n}</title></item>" for n in range(11)]
    monkeypatch.setattr(atom, "PARSE_BATCH", 4)
    for body in (_feed(entries), _feed(items, root="rss")):
        whole = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
        batched = atom._parse(body)
        assert [(e.id, e.title, e.get("summary")) for e in batched.entries] == [
            (e.id, e.title, e.get("summary")) for e in whole.entries
        ]
        assert batched.feed.title == "Pollards Hill news" and not batched.bozo
    assert len(atom._entry_spans(_feed(entries))) == 23
    # Entries that nest or do not close: parsed whole, to fail as they always did.
    for broken in (_feed(["<entry><entry></entry></entry>"]), _feed(["<entry><id>x</id>"])):
        assert atom._entry_spans(broken) == []
