"""Atom and RSS feeds: entries that carry an activity, as our JSON or as schema.org JSON-LD.

Websites and other Localfeed publishers offer Atom; an entry is followed when it holds
our activity in its OpenActive form (content of type ``application/json``) or a schema.org ``Event`` in a
``<script type="application/ld+json">`` inside its HTML. Everything else in the feed
(news posts, notices) is reported as "not an activity", so an operator can see why a
feed they added shows nothing.

The bytes come through the harvest's guarded ``fetch``; feedparser only parses them
(given bytes, it never fetches). XML that declares a DOCTYPE is refused before any
parser sees it, which shuts out entity-expansion and external-entity tricks. Each entry is
read on its own: whatever one holds (JSON-LD nested ten thousand deep, dates past year
9999), it becomes a reason naming the entry, and the rest of the feed is still read.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser

from aggregator import budget
from aggregator.adapters import mapping as m
from aggregator.adapters import openactive
from aggregator.adapters.base import Change, Fetch, Page, Unmapped
from federation.clock import utcnow
from schema.openactive import from_openactive, is_localfeed_form
from schema.text import http_url

KIND = "atom"

MAX_XML_BYTES = 5_000_000
_XML_TYPES = {"application/atom+xml", "application/rss+xml", "application/rdf+xml"}
# A DOCTYPE after any number of processing instructions and comments, whatever their length;
# possessive, so a prolog of many of them is read once, never backtracked.
_DOCTYPE = re.compile(r"^\ufeff?\s*+(?:<\?.*?\?>\s*+|<!--.*?-->\s*+)*+<!DOCTYPE", re.IGNORECASE | re.DOTALL)
_JSON_LD = re.compile(
    r"<script[^>]*type\s*=\s*[\"']application/ld\+json[\"'][^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL
)
# Byte-order marks and the patterns of "<" of the encodings where markup is not ASCII bytes.
_WIDE_ENCODINGS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)


def sniff(content_type: str, body: bytes) -> bool:
    """An Atom or RSS media type, or XML whose root is ``<feed>``, ``<rss>`` or ``<rdf:RDF>``."""
    if content_type in _XML_TYPES:
        return True
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<") and any(root in head for root in (b"<feed", b"<rss", b"<rdf:rdf"))


def pages(fetch: Fetch, url: str, cursor: str | None, *, now: datetime | None = None) -> Iterator[Page]:
    """One snapshot page of the feed's activity entries."""
    fetched = fetch(url)
    if fetched is not None:
        yield read_feed(fetched.content, url, now or utcnow())


def read_feed(body: bytes, feed_url: str, now: datetime) -> Page:
    """The page for a feed's bytes; a feed we refuse or cannot read at all is not a snapshot."""
    if len(body) > MAX_XML_BYTES:
        return Page(
            [],
            [
                Unmapped(
                    feed_url,
                    (
                        f"The feed at {feed_url} is {len(body):,} bytes, over our "
                        f"{MAX_XML_BYTES:,}-byte limit for XML; "
                        "ask the publisher to shorten it (e.g. only current activities)."
                    ),
                )
            ],
        )
    if _declares_doctype(body):
        return Page(
            [],
            [
                Unmapped(
                    feed_url,
                    (
                        f"The feed at {feed_url} declares a DOCTYPE, which we refuse for safety; "
                        "ask the publisher to remove the <!DOCTYPE ...> line (Atom and RSS need none)."
                    ),
                )
            ],
        )
    try:
        parsed = _parse(body)
    except m.SOURCE_ERRORS as exc:
        return Page(
            [],
            [
                Unmapped(
                    feed_url,
                    f"The feed at {feed_url} could not be read ({m.source_error(exc)}); "
                    "ask the publisher to check it with a feed validator.",
                )
            ],
        )
    if not parsed.get("version") and not parsed.entries:
        return Page(
            [],
            [
                Unmapped(
                    feed_url,
                    (
                        f"{feed_url} is not an Atom or RSS feed; check the address, "
                        "or ask the site for its feed's address."
                    ),
                )
            ],
        )
    page = Page([], [], snapshot=True)
    if parsed.get("bozo"):
        problem = Unmapped(
            feed_url,
            (
                f"The feed at {feed_url} is not well-formed ({parsed.get('bozo_exception')}); "
                + ("we read the entries we could. " if parsed.entries else "no entries could be read. ")
                + "Ask the publisher to check it with a feed validator."
            ),
        )
        if not parsed.entries:
            return Page([], [problem])
        # Entries lost to the break must not be taken as removed: keep what we have, add what we read.
        page.snapshot = False
        page.unmapped.append(problem)
    for number, entry in enumerate(parsed.entries, start=1):
        budget.spend(items=1)
        ref = _entry_ref(entry, number)
        page.add(m.guarded(ref, f"Entry {ref}", lambda: entry_result(entry, feed_url, now)))  # noqa: B023
    return page


# Entries parsed at a time. feedparser reads a document in one call that nothing can stop
# (some 0.4 ms an entry here), so a long feed is parsed a batch of entries at a time, each
# batch inside the feed's own opening and closing, with the harvest's clock checked between.
PARSE_BATCH = 500
# What finding the entries must see: comments and CDATA (which may hold any text), and where
# an Atom entry or an RSS item starts or ends.
_ENTRY_MARKUP = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<(/?)(entry|item)(?=[\s>/])", re.DOTALL)


def _parse(body: bytes) -> Any:
    """feedparser's reading of ``body``, a batch of entries at a time (:data:`PARSE_BATCH`)."""
    spans = _entry_spans(body)
    if len(spans) <= PARSE_BATCH:
        return feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    head, tail = body[: spans[0][0]], body[spans[-1][1] :]
    parsed: Any = None
    for start in range(0, len(spans), PARSE_BATCH):
        budget.spend()
        batch = spans[start : start + PARSE_BATCH]
        part = feedparser.parse(
            head + body[batch[0][0] : batch[-1][1]] + tail, sanitize_html=False, resolve_relative_uris=False
        )
        if parsed is None:
            parsed = part
            continue
        parsed.entries.extend(part.entries)
        if part.get("bozo") and not parsed.get("bozo"):
            parsed["bozo"], parsed["bozo_exception"] = part["bozo"], part.get("bozo_exception")
    return parsed


def _entry_spans(body: bytes) -> list[tuple[int, int]]:
    """Where each top-level entry (or item) of ``body`` starts and ends; none unless they
    nest and close cleanly in an ASCII-compatible encoding (anything else is parsed whole)."""
    if any(body.startswith(bom) for bom, _ in _WIDE_ENCODINGS):
        return []
    spans: list[tuple[int, int]] = []
    opened: int | None = None
    for found in _ENTRY_MARKUP.finditer(body):
        if found.group(2) is None:  # a comment or CDATA: nothing inside it counts
            continue
        if not found.group(1):
            if opened is not None:
                return []
            opened = found.start()
            continue
        end = body.find(b">", found.end())
        if opened is None or end < 0:
            return []
        spans.append((opened, end + 1))
        opened = None
    return [] if opened is not None else spans


def _declares_doctype(body: bytes) -> bool:
    """Whether the document's prolog declares a DOCTYPE, in any byte encoding XML allows."""
    for bom, encoding in _WIDE_ENCODINGS:
        if body.startswith(bom):
            return bool(_DOCTYPE.match(body.decode(encoding, errors="replace").lstrip("\ufeff")))
    # ASCII-compatible encodings spell markup the same in Latin-1, whatever the text holds.
    return bool(_DOCTYPE.match(body.decode("latin-1")))


def _entry_ref(entry: Any, number: int) -> str:
    """How the feed names an entry (its id or link), or its position when it gives neither."""
    own = entry.get("id") or entry.get("link")
    return m.text(own, 300) if isinstance(own, str) and own.strip() else f"number {number}"


def entry_result(entry: Any, feed_url: str, now: datetime) -> Change | Unmapped:
    """The activity an entry carries, or why it carries none."""
    title = m.text(entry.get("title"), m.SHORT_TEXT)
    ref = str(entry.get("id") or entry.get("link") or title)
    bodies = [c for c in entry.get("content") or [] if c.get("value")]
    if entry.get("summary"):
        bodies.append(
            {"type": (entry.get("summary_detail") or {}).get("type", "text/html"), "value": entry.summary}
        )
    changed = _updated(entry)
    for content in bodies:
        for thing in _things(content):
            if not isinstance(thing, dict):
                continue
            if is_localfeed_form(thing):  # a Localfeed feed's entry: its activity, exactly
                activity = from_openactive(thing)
                label = f"Entry '{title or ref}'"
                return m.Candidate(str(activity.get("id")), label, activity, ref=ref).result()
            if openactive.thing_type(thing) in openactive.EVENT_TYPES:
                own = http_url(thing.get("@id")) or http_url(thing.get("url")) or http_url(entry.get("link"))
                candidate = openactive.map_opportunity(
                    thing,
                    m.item_id_for(feed_url, own, ref),
                    now,
                    changed=changed,
                    default_category="social-club",
                )
                candidate.ref = ref
                return candidate.result()
    return Unmapped(
        ref,
        (
            f"Entry '{title or ref}' is not an activity: it carries neither Localfeed activity JSON "
            "(content type application/json) nor a schema.org Event in JSON-LD."
        ),
    )


def _things(content: dict[str, Any]) -> list[Any]:
    """The JSON objects in one content element: the whole of a JSON body, or each JSON-LD script in HTML."""
    kind, value = str(content.get("type") or ""), str(content.get("value") or "")
    blocks = [value] if "json" in kind else _JSON_LD.findall(value)
    things: list[Any] = []
    for block in blocks:
        try:
            found = json.loads(block)
        except ValueError:
            continue
        if isinstance(found, dict) and isinstance(found.get("@graph"), list):
            things += found["@graph"]
        else:
            things += found if isinstance(found, list) else [found]
    return things


def _updated(entry: Any) -> datetime | None:
    moment = entry.get("updated_parsed") or entry.get("published_parsed")
    return datetime.fromtimestamp(calendar.timegm(moment), UTC) if moment else None
