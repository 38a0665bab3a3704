"""The subscriber's side of WebSub: discovery, (un)subscribing, verification and delivery checks.

These are the pieces a subscribing app composes with its own storage and routes:
:func:`discover` finds the hub and topic of a fetched feed, :func:`subscribe_request` asks
the hub, :func:`check_verification` answers the hub's GET, :func:`verify_delivery` checks a
pushed body, :func:`renew_due` says when to ask again.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin

from ..fetch import Fetched, GuardedClient
from .signing import verify

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

# The answer to a verification GET: a media type no browser renders as a page, and
# nosniff, so an echoed challenge cannot become reflected script (WebSub §9).
CHALLENGE_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}

_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_LINK_PARAM = re.compile(r";\s*([\w*-]+)\s*=\s*(\"[^\"]*\"|[^\s;,]+)")
_MARKUP_TYPES = ("xml", "html")


@dataclass(frozen=True)
class Discovery:
    """What a topic advertises: its hub and its canonical (``rel="self"``) URL, if found."""

    hub: str | None
    self_url: str | None


def discover(fetched: Fetched) -> Discovery:
    """Find the hub and self URLs of a fetched topic: Link headers first, then links in the document.

    Relative URLs are resolved against the final URL of the fetch.
    """
    from_headers = _links_from_headers(fetched.headers.get_list("link"), fetched.url)
    if from_headers.get("hub"):
        return Discovery(from_headers["hub"], from_headers.get("self"))
    if any(kind in fetched.content_type for kind in _MARKUP_TYPES):
        in_document = _links_from_markup(fetched.text, fetched.url)
        if in_document.get("hub"):
            return Discovery(in_document["hub"], in_document.get("self") or from_headers.get("self"))
    return Discovery(None, from_headers.get("self"))


def _links_from_headers(values: list[str], base: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        for target, params in _LINK_VALUE.findall(value):
            for name, raw in _LINK_PARAM.findall(params):
                if name.lower() == "rel":
                    for rel in raw.strip('"').lower().split():
                        found.setdefault(rel, urljoin(base, target.strip()))
    return found


class _LinkCollector(HTMLParser):
    """Collects ``<link rel=… href=…>`` (and ``<atom:link>``) of the document's head.

    Stops at ``<body>``, ``<entry>`` or ``<item>``: links further in belong to entries, or
    to content anyone may have posted, so they must not choose our hub (WebSub §9).
    """

    _STOP = {"body", "entry", "item"}

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.found: dict[str, str] = {}
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if tag in self._STOP:
            self.done = True
            return
        if tag not in ("link", "atom:link"):
            return
        attributes = {name: value or "" for name, value in attrs}
        href = attributes.get("href", "").strip()
        if href:
            for rel in attributes.get("rel", "").lower().split():
                self.found.setdefault(rel, urljoin(self.base, href))

    handle_startendtag = handle_starttag


def _links_from_markup(text: str, base: str) -> dict[str, str]:
    # HTMLParser reads Atom, RSS and HTML alike without resolving entities or DTDs,
    # so no XML parser ever sees a stranger's document here.
    collector = _LinkCollector(base)
    collector.feed(text)
    return collector.found


def subscribe_request(
    client: GuardedClient,
    hub: str,
    topic: str,
    callback: str,
    secret: str | None = None,
    lease_seconds: int | None = None,
    mode: str = "subscribe",
) -> Fetched:
    """Ask ``hub`` to (un)subscribe ``callback`` to ``topic``; returns the hub's answer.

    A hub that accepts answers ``202`` and then verifies with a GET to the callback; any
    other status is a refusal whose body explains it. Redirects (307/308 to another hub)
    are followed by the client.
    """
    if mode not in ("subscribe", "unsubscribe"):
        raise ValueError(f"mode must be 'subscribe' or 'unsubscribe', not {mode!r}.")
    form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": callback}
    if secret:
        form["hub.secret"] = secret
    if lease_seconds is not None:
        form["hub.lease_seconds"] = str(lease_seconds)
    return client.post(
        hub, urlencode(form).encode("utf-8"), {"Content-Type": "application/x-www-form-urlencoded"}
    )


def new_secret() -> str:
    """A random ``hub.secret`` (43 characters, well under the 200-byte limit)."""
    return secrets.token_urlsafe(32)


def new_callback_token() -> str:
    """An unguessable token to put in a per-subscription callback URL (a capability URL)."""
    return secrets.token_urlsafe(32)


def check_verification(args: Mapping[str, str], expected: Callable[[str, str], bool]) -> str | None:
    """The challenge to echo for a hub's verification GET, or None to answer 404.

    ``expected(topic, mode)`` says whether this subscriber asked for that action; a
    verification it did not ask for must be refused (WebSub §5.3.1). Answer the challenge
    with :data:`CHALLENGE_HEADERS`.
    """
    mode = args.get("hub.mode", "")
    topic = args.get("hub.topic", "")
    challenge = args.get("hub.challenge", "")
    if mode not in ("subscribe", "unsubscribe") or not topic or not challenge:
        return None
    if mode == "subscribe" and granted_lease(args) is None:
        return None  # the hub must state the lease it grants
    return challenge if expected(topic, mode) else None


def granted_lease(args: Mapping[str, str]) -> int | None:
    """The ``hub.lease_seconds`` a verification GET grants, or None if absent or malformed."""
    raw = args.get("hub.lease_seconds", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def verify_delivery(secret: bytes | str, body: bytes, headers: Mapping[str, str] | Headers) -> bool:
    """Whether a pushed ``body`` carries a valid ``X-Hub-Signature`` for ``secret``.

    Pass the raw request bytes, before any parsing. The spec asks a subscriber to answer
    2xx even to a bad delivery and ignore it locally, so a forger learns nothing.
    """
    return verify(secret, body, headers.get("X-Hub-Signature"))


def renew_due(expires_at: datetime | None, now: datetime, margin: timedelta = timedelta(days=1)) -> bool:
    """Whether a subscription expiring at ``expires_at`` should be renewed now.

    Renewing ``margin`` early keeps the push flowing without a gap; None (never verified,
    or unknown) is always due.
    """
    if expires_at is None:
        return True
    return now >= expires_at - margin
