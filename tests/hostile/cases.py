"""The corpus: hostile sources, one :class:`Case` each, served by ``tests.hostile.server``.

Every case is a source an aggregator might be asked to follow: its kind (which adapter
reads it), the handlers that answer its URLs (anything at all on the raw socket), and
what an operator must be told: ``reason``, a pattern the source's recorded problem or its
quarantined items must match. ``reason=None`` marks a case whose right outcome is to be
read (or quietly skipped) without complaint, such as a rule with ``COUNT=300000000``,
which is allowed; it must still end within budget, in bounded memory, without a fault.

The harness (``tests.hostile.harness``) harvests each case in a fresh aggregator that
already holds a good source; ``test_hostile.py`` asserts on what it reports.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.factories import openactive_series
from tests.hostile import payloads as p
from tests.hostile.server import Handler, Wire

# Budgets the corpus runs under in `make test`: small, so every case is quick to bound.
TEST_BUDGET: dict[str, Any] = {
    "HARVEST_TIME_LIMIT": 2.0,
    "FETCH_TIMEOUT": 1.0,
    "FETCH_MAX_BYTES": 2_000_000,
    "HARVEST_MAX_PAGES": 50,
    "HARVEST_MAX_ITEMS": 5_000,
    "HARVEST_MAX_BYTES": 20_000_000,
}
# Special-address cases: loopback stands for "the internet" (the hostile server and the good
# source live there), every other special address is refused as it would be in production.
PUBLIC_ONLY: dict[str, Any] = {"ALLOW_PRIVATE_NETWORKS": False, "FETCH_PUBLIC_NETWORKS": "127.0.0.1/32"}

# What the operator must read, for each kind of attack (matched case-insensitively).
TIME = r"time limit|took longer|in time|seconds|too slow"
SIZE = r"larger than|too large|bytes"
REDIRECT = r"redirect"
ADDRESS = r"address|not allowed|scheme|refus|private|reserved|link-local|loopback"
BROKEN = (
    r"not a valid|not json|not an? |broken|could not|encod|decod|failed|invalid|closed|incomplete|corrupt"
    r"|compress|brotli"
)
ITEMS = r"more than [\d,]+ items|items in one harvest|too many items|at most [\d,]+ are allowed"
REQUESTS = r"more than [\d,]+ requests|requests in one harvest|pages|loop"
BUDGET = f"{TIME}|{ITEMS}|{REQUESTS}|{SIZE}"
ORIGIN = r"another site|origin|other site|same site|not on"
DOCTYPE = r"doctype|entit"
CONTROL = r"control character"
RULE = r"daily|too often|frequen|interval|every (second|minute|hour)|rule|schedule"
NESTED = r"deep|nest|not json|recursion"
FUTURE = r"future"
LONG = r"long|characters|too large|larger than|bytes|size"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # the adapter that reads it
    about: str  # the attack, in a few words
    routes: Mapping[str, Handler]  # paths under /<id>; a key ending in "/*" answers every path below it
    reason: str | None
    feed_path: str = "/feed"  # the source's URL under /<id>, or a full URL ("{server}" is filled in)
    config: Mapping[str, Any] = field(default_factory=dict)  # settings over TEST_BUDGET
    worst: bool = False  # among the costliest: bench/hostile.py runs these under the default budgets
    # Oversized or control-laden text that is stored cut to size and cleaned needs no reason.
    handled_if_stored: bool = False

    def feed_url(self, server_url: str) -> str:
        if "://" in self.feed_path:
            return self.feed_path.replace("{server}", server_url)
        return f"{server_url}/{self.id}{self.feed_path}"

    def matches(self, text: str) -> bool:
        return self.reason is None or re.search(self.reason, text, re.IGNORECASE) is not None


# -- handlers -------------------------------------------------------------------------------------


def static(
    body: bytes | Callable[[Wire], bytes], content_type: str = "application/json", **kw: Any
) -> Handler:
    def answer(wire: Wire) -> None:
        wire.respond(body(wire) if callable(body) else body, content_type, **kw)

    return answer


def encoded(
    body: Callable[[], bytes], coding: str, content_type: str = "application/json", chunked: bool = False
) -> Handler:
    """A body sent with ``Content-Encoding: coding`` (the bytes are already encoded)."""

    def answer(wire: Wire) -> None:
        data = body()
        if not chunked:
            wire.respond(data, content_type, headers=[("Content-Encoding", coding)])
            return
        fields = [
            ("Content-Type", content_type),
            ("Content-Encoding", coding),
            ("Transfer-Encoding", "chunked"),
        ]
        wire.send(wire.head(200, fields))
        for start in range(0, len(data), 16_384):
            piece = data[start : start + 16_384]
            wire.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        wire.send(b"0\r\n\r\n")

    return answer


def paged(
    page: Callable[[Wire, int], bytes], content_type: str = "application/json", delay: float = 0
) -> Handler:
    """Page ``n`` (from ``?page=n``, 1 when absent) as ``page(wire, n)`` builds it."""

    def answer(wire: Wire) -> None:
        if delay:
            wire.sleep(delay)
        wire.respond(page(wire, int(wire.query.get("page", 1))), content_type)

    return answer


def redirect_to(location: Callable[[Wire], str], status: int = 302, delay: float = 0) -> Handler:
    def answer(wire: Wire) -> None:
        if delay:
            wire.sleep(delay)
        wire.redirect(location(wire), status)

    return answer


def dribble(head: bytes | None, body: bytes, every: float, size: int = 1) -> Handler:
    """``head`` at once (or dribbled too when None), then ``body`` ``size`` bytes every ``every`` s."""

    def answer(wire: Wire) -> None:
        data = body if head is not None else wire.head(200, [("Content-Type", "application/json")]) + body
        if head is not None:
            wire.send(head)
        for start in range(0, len(data), size):
            wire.send(data[start : start + size])
            wire.sleep(every)

    return answer


def endless(head: bytes, chunk: bytes, every: float = 0, prefix: bytes = b"") -> Handler:
    """``head``, ``prefix``, then ``chunk`` again and again until the client hangs up."""

    def answer(wire: Wire) -> None:
        wire.send(head + prefix)
        while True:
            wire.send(chunk)
            if every:
                wire.sleep(every)

    return answer


def stall(before: Callable[[Wire], bytes] = lambda wire: b"") -> Handler:
    """Send ``before`` (maybe nothing), then say nothing more until the client gives up."""

    def answer(wire: Wire) -> None:
        wire.send(before(wire))
        while True:
            wire.sleep(1)

    return answer


def good_page(wire: Wire, count: int = 2) -> bytes:
    """A valid one-page feed of ``count`` items, ending where it started."""
    return p.rpde(p.rpde_items(wire.base, count), f"{wire.base}/feed")


def endless_pages(items_per_page: int = 1) -> Callable[[Wire, int], bytes]:
    """Every page holds new items and links to the next: there is no last page."""

    def page(wire: Wire, n: int) -> bytes:
        items = p.rpde_items(wire.base, items_per_page, start=n * items_per_page)
        return p.rpde(items, f"{wire.base}/feed?page={n + 1}")

    return page


CHUNKED_JSON = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# -- the corpus -----------------------------------------------------------------------------------


def _transport() -> Iterable[Case]:
    """Compression bombs, slow and endless answers, lying lengths: the guarded client's work."""
    bomb = functools.partial(p.gzip_bomb)
    yield Case(
        "gzip-bomb",
        "localfeed",
        "1 GB of zeros in 1 MB of gzip",
        {"/feed": encoded(bomb, "gzip")},
        SIZE,
        worst=True,
    )
    yield Case(
        "deflate-bomb",
        "localfeed",
        "1 GB of zeros as Content-Encoding: deflate",
        {"/feed": encoded(p.zlib_bomb, "deflate")},
        SIZE,
        worst=True,
    )
    yield Case(
        "gzip-gzip-bomb",
        "localfeed",
        "gzip of gzip: 1.7 KB that is 1 GB two layers down",
        {"/feed": encoded(lambda: p.gzip(p.gzip_bomb()), "gzip, gzip")},
        SIZE,
        worst=True,
    )
    yield Case(
        "deflate-gzip-bomb",
        "localfeed",
        "gzip inside deflate, 1 GB two layers down",
        {"/feed": encoded(lambda: p.zlib_deflate(p.gzip_bomb()), "gzip, deflate")},
        SIZE,
        worst=True,
    )
    yield Case(
        "gzip-bomb-chunked",
        "localfeed",
        "a gzip bomb in chunked transfer coding (no length at all)",
        {"/feed": encoded(bomb, "gzip", chunked=True)},
        SIZE,
        worst=True,
    )
    for kind, content_type, path in (
        ("ical", "text/calendar", "/feed"),
        ("atom", "application/atom+xml", "/feed"),
        ("openactive", "application/json", "/feed"),
        ("oruk", "application/json", "/services"),
    ):
        yield Case(
            f"gzip-bomb-{kind}",
            kind,
            f"a gzip bomb where a {kind} feed should be",
            {path: encoded(bomb, "gzip", content_type)},
            SIZE,
            feed_path=path,
            worst=True,
        )
    yield Case(
        "brotli-unknown",
        "localfeed",
        "Content-Encoding: br, which we cannot decode",
        {"/feed": encoded(lambda: b"\x8b\x02\x80hello\x03" * 100, "br")},
        BROKEN,
    )
    yield Case(
        "gzip-corrupt",
        "localfeed",
        "Content-Encoding: gzip over bytes that are not gzip",
        {"/feed": encoded(lambda: b"\x1f\x8b\x08" + b"garbage" * 1000, "gzip")},
        BROKEN,
    )
    yield Case(
        "headers-dribbled",
        "localfeed",
        "the status line and headers at one byte every 0.3 s",
        {"/feed": dribble(None, b'{"items": [], "next": "x"}', every=0.3)},
        TIME,
    )
    yield Case(
        "headers-never", "localfeed", "the connection accepted, then silence", {"/feed": stall()}, TIME
    )
    yield Case(
        "headers-endless",
        "localfeed",
        "header lines without end",
        {"/feed": endless(b"HTTP/1.1 200 OK\r\n", b"X-Padding: " + b"a" * 1000 + b"\r\n")},
        BROKEN + "|" + SIZE,
    )
    yield Case(
        "body-dribbled",
        "localfeed",
        "a 1 MB body at ten bytes every 0.1 s",
        {
            "/feed": dribble(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
                b" " * 1_000_000,
                every=0.1,
                size=10,
            )
        },
        TIME,
    )
    yield Case(
        "body-endless-fast",
        "localfeed",
        "a chunked body of spaces without end, as fast as it goes",
        {
            "/feed": endless(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                _chunk(b" " * 65_536),
            )
        },
        SIZE,
    )
    yield Case(
        "body-endless-no-length",
        "localfeed",
        "no length, no chunks, a body until the connection closes",
        {"/feed": endless(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", b"[" * 65_536)},
        SIZE,
    )
    yield Case(
        "body-endless-items",
        "localfeed",
        "an RPDE page whose items never end",
        {
            "/feed": endless(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
                b'{"state":"deleted","kind":"Event","id":"x","modified":1},' * 1000,
                prefix=b'{"next":"x","items":[',
            )
        },
        SIZE,
    )
    yield Case(
        "body-endless-slow",
        "localfeed",
        "a chunked body, 1 KB every 0.05 s, never ending",
        {
            "/feed": endless(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                _chunk(b" " * 1024),
                every=0.05,
            )
        },
        TIME,
    )
    yield Case(
        "length-longer",
        "localfeed",
        "Content-Length 100000, ten bytes, then the connection closes",
        {"/feed": static(b'{"items":[', headers=[("Content-Length", "100000")])},
        BROKEN,
    )
    yield Case(
        "length-longer-stall",
        "localfeed",
        "Content-Length 100000, ten bytes, then silence",
        {"/feed": stall(lambda wire: wire.head(200, [("Content-Length", "100000")]) + b'{"items":[')},
        TIME,
    )
    yield Case(
        "length-shorter",
        "localfeed",
        "Content-Length cuts a valid page short",
        {
            "/feed": lambda wire: wire.send(
                wire.head(200, [("Content-Type", "application/json"), ("Content-Length", "40")])
                + good_page(wire)
            )
        },
        BROKEN,
    )
    yield Case(
        "length-declared-huge",
        "localfeed",
        "Content-Length of ten gigabytes",
        {"/feed": stall(lambda wire: wire.head(200, [("Content-Length", str(10 * p.GIGABYTE))]))},
        SIZE,
    )
    yield Case(
        "length-negative",
        "localfeed",
        "Content-Length: -1",
        {"/feed": lambda wire: wire.send(wire.head(200, [("Content-Length", "-1")]) + good_page(wire))},
        BROKEN,
    )
    yield Case(
        "length-conflicting",
        "localfeed",
        "two Content-Length headers that disagree",
        {
            "/feed": lambda wire: wire.send(
                wire.head(200, [("Content-Length", "10"), ("Content-Length", "20000")]) + good_page(wire)
            )
        },
        BROKEN,
    )
    yield Case(
        "status-garbage",
        "localfeed",
        "an answer that is not HTTP at all",
        {"/feed": lambda wire: wire.send(b"SSH-2.0-OpenSSH_9.6\r\n" + bytes(range(256)) * 10)},
        BROKEN,
    )
    yield Case(
        "slow-pages",
        "localfeed",
        "every page takes a second and links to another",
        {"/feed": paged(endless_pages(), delay=1.0)},
        TIME,
    )


def _redirects() -> Iterable[Case]:
    yield Case(
        "redirect-loop",
        "localfeed",
        "the feed redirects to itself",
        {"/feed": redirect_to(lambda wire: f"{wire.base}/feed")},
        REDIRECT,
    )
    yield Case(
        "redirect-chain",
        "localfeed",
        "a chain of 30 redirects",
        {
            "/feed": redirect_to(lambda wire: f"{wire.base}/hop/1"),
            "/hop/*": redirect_to(lambda wire: f"{wire.base}/hop/{int(wire.path.rsplit('/', 1)[1]) + 1}"),
        },
        REDIRECT,
    )
    yield Case(
        "redirect-ping-pong",
        "localfeed",
        "two URLs redirecting to each other (301 and 308)",
        {
            "/feed": redirect_to(lambda wire: f"{wire.base}/other", 301),
            "/other": redirect_to(lambda wire: f"{wire.base}/feed", 308),
        },
        REDIRECT,
    )
    yield Case(
        "redirect-slow-chain",
        "localfeed",
        "redirects that each take 0.8 s",
        {
            "/feed": redirect_to(lambda wire: f"{wire.base}/hop/1", delay=0.8),
            "/hop/*": redirect_to(
                lambda wire: f"{wire.base}/hop/{int(wire.path.rsplit('/', 1)[1]) + 1}", delay=0.8
            ),
        },
        TIME + "|" + REDIRECT,
    )
    yield Case(
        "redirect-no-location",
        "localfeed",
        "a 302 with no Location",
        {"/feed": lambda wire: wire.send(wire.head(302, [("Content-Length", "0")]))},
        BROKEN + "|302",
    )
    yield Case(
        "redirect-file-scheme",
        "localfeed",
        "a redirect to file:///etc/passwd",
        {"/feed": redirect_to(lambda wire: "file:///etc/passwd")},
        ADDRESS,
    )
    yield Case(
        "redirect-ftp-scheme",
        "localfeed",
        "a redirect to an ftp:// URL",
        {"/feed": redirect_to(lambda wire: "ftp://127.0.0.1/feed")},
        ADDRESS,
    )
    yield Case(
        "redirect-next-page-off-site",
        "localfeed",
        "page 2 redirects to another origin (localhost)",
        {
            "/feed": paged(lambda wire, n: p.rpde(p.rpde_items(wire.base, 1), f"{wire.base}/page2")),
            "/page2": redirect_to(lambda wire: wire.base.replace("127.0.0.1", "localhost") + "/feed"),
        },
        ORIGIN,
    )
    # Special addresses, each reached by a redirect from an allowed one (loopback counts as public).
    special = {
        "metadata-ipv4": "http://169.254.169.254/latest/meta-data/",
        "6to4-metadata": "http://[2002:a9fe:a9fe::]/latest/meta-data/",
        "6to4-loopback": "http://[2002:7f00:2::]:{port}/feed",
        "6to4-relay-anycast": "http://192.88.99.1/feed",
        "mapped-loopback": "http://[::ffff:127.0.0.2]:{port}/feed",
        "mapped-metadata": "http://[::ffff:169.254.169.254]/",
        "nat64-metadata": "http://[64:ff9b::a9fe:a9fe]/",
        "teredo-metadata": "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
        "other-loopback": "http://127.0.0.2:{port}/feed",
        "private-10": "http://10.0.0.1/feed",
        "ipv6-loopback": "http://[::1]:{port}/feed",
        "unspecified": "http://0.0.0.0:{port}/feed",
        "decimal-metadata": "http://2852039166/",
    }
    for name, target in special.items():
        yield Case(
            f"to-{name}",
            "localfeed",
            f"a redirect to {target}",
            {"/feed": redirect_to(lambda wire, t=target: t.replace("{port}", wire.origin.rsplit(":", 1)[1]))},
            ADDRESS,
            config=PUBLIC_ONLY,
        )
    yield Case(
        "direct-6to4",
        "localfeed",
        "a source whose own address is 6to4 for 169.254.169.254",
        {},
        ADDRESS,
        feed_path="http://[2002:a9fe:a9fe::1]/feed",
        config=PUBLIC_ONLY,
    )


def _rpde() -> Iterable[Case]:
    """Our own RPDE, with every field of the envelope and the items the wrong shape."""

    def page_of(
        items: Callable[[Wire], Any], next_url: Callable[[Wire], Any] = lambda wire: f"{wire.base}/feed"
    ):
        return {"/feed": static(lambda wire: p.raw_page(items(wire), next_url(wire)))}

    def one(**fields: Any) -> Callable[[Wire], Any]:
        def items(wire: Wire) -> Any:
            item: dict[str, Any] = {
                "state": "updated",
                "kind": "SessionSeries",
                "id": f"{wire.base}/activities/1",
                "modified": 1,
                "data": p.activity(wire.base, 1),
            }
            item.update({k: v(wire) if callable(v) else v for k, v in fields.items()})
            return [item]

        return items

    wrong = {
        "items-object": (page_of(lambda wire: {"a": 1}), BROKEN),
        "items-null": (page_of(lambda wire: None), BROKEN),
        "items-string": (page_of(lambda wire: "items"), BROKEN),
        "next-number": (page_of(one(), lambda wire: 7), BROKEN),
        "next-null": (page_of(one(), lambda wire: None), BROKEN),
        "next-not-url": (page_of(one(), lambda wire: "javascript:alert(1)"), BROKEN + "|" + ADDRESS),
        "state-wrong": (page_of(one(state="gone")), BROKEN),
        "modified-dict": (page_of(one(modified={"n": 1})), BROKEN),
        "modified-huge": (page_of(one(modified=10**30)), BROKEN),
        "id-null": (page_of(one(id=None)), BROKEN),
        "id-object": (page_of(one(id={"x": 1})), BROKEN),
        "data-string": (page_of(one(data="a string")), BROKEN),
        "data-list": (page_of(one(data=[1, 2, 3])), BROKEN),
        "kind-list": (page_of(one(kind=["Event"])), BROKEN),
        "items-scalars": (page_of(lambda wire: [1, "x", None, True]), BROKEN),
        "provenance-string": (page_of(one(**{"localfeed:provenance": "everyone"})), r"provenance|" + BROKEN),
    }
    for name, (routes, reason) in wrong.items():
        yield Case(f"rpde-{name}", "localfeed", f"an RPDE page with {name.replace('-', ' ')}", routes, reason)
    for name, body in {
        "page-array": b"[]",
        "page-string": b'"hello"',
        "page-nan": b'{"items": [], "next": NaN}',
        "page-bad-utf8": b'{"items": [], "next": "\xff\xfe"}',
        "page-html": b"<!doctype html><html><body>Welcome</body></html>",
        "deep-envelope": p.nested_json(100_000).encode(),
        "deep-item-data": (
            '{"next":"x","items":[{"state":"updated","kind":"Event","id":"a","modified":1,"data":'
            + p.nested_object(50_000)
            + "}]}"
        ).encode(),
    }.items():
        yield Case(
            f"rpde-{name}",
            "localfeed",
            f"a page that is {name.replace('-', ' ')}",
            {"/feed": static(body)},
            BROKEN + "|" + NESTED,
        )
    yield Case(
        "rpde-deep-data-under-parser-limit",
        "localfeed",
        "item data nested 900 deep (orjson still parses it)",
        {
            "/feed": static(
                lambda wire: (
                    '{"next":"'
                    + wire.base
                    + '/feed","items":[{"state":"updated","kind":"Event","id":"'
                    + wire.base
                    + '/activities/1","modified":1,"data":{"extra":'
                    + p.nested_json(900)
                    + "}}]}"
                ).encode()
            )
        },
        BROKEN + "|" + NESTED + "|id",
    )
    yield Case(
        "rpde-next-loop",
        "localfeed",
        "page 1 links to page 2, which links back to page 1",
        {
            "/feed": paged(
                lambda wire, n: p.rpde(
                    p.rpde_items(wire.base, 1, start=n), f"{wire.base}/feed?page={2 if n == 1 else 1}"
                )
            )
        },
        REQUESTS,
    )
    yield Case(
        "rpde-endless-pages",
        "localfeed",
        "every page links to a new one",
        {"/feed": paged(endless_pages())},
        REQUESTS + "|" + TIME,
    )
    yield Case(
        "rpde-huge-page",
        "localfeed",
        "20,000 items on one page (1.5 MB of tombstones)",
        {
            "/feed": static(
                lambda wire: p.raw_page(
                    [
                        {"state": "deleted", "kind": "Event", "id": f"a{n}", "modified": n}
                        for n in range(20_000)
                    ],
                    f"{wire.base}/feed",
                )
            )
        },
        ITEMS,
    )
    yield Case(
        "rpde-next-off-site",
        "localfeed",
        "next links to another origin (localhost, same server)",
        {
            "/feed": static(
                lambda wire: p.rpde(
                    p.rpde_items(wire.base, 1), wire.base.replace("127.0.0.1", "localhost") + "/feed?page=2"
                )
            )
        },
        ORIGIN,
    )
    yield Case(
        "rpde-ids-on-good-origin",
        "localfeed",
        "items whose ids are the good source's, with other names",
        {
            "/feed": static(
                lambda wire: p.rpde(
                    [
                        p.wire_item(gid, 100 + n, p.activity("", 0, id=gid, name="Hijacked"))
                        for n, gid in enumerate(wire.good_ids)
                    ],
                    f"{wire.base}/feed",
                )
            )
        },
        ORIGIN,
    )
    yield Case(
        "rpde-non-monotonic",
        "localfeed",
        "an item's change number goes down on the next page",
        {
            "/feed": paged(
                lambda wire, n: p.rpde(
                    [
                        p.wire_item(
                            f"{wire.base}/activities/1",
                            10 if n == 1 else 3,
                            p.activity(wire.base, 1, name="Newer" if n == 1 else "Older"),
                        )
                    ]
                    if n <= 2
                    else [],
                    f"{wire.base}/feed?page={min(n + 1, 3)}",
                )
            )
        },
        None,
    )
    for name, text in {
        "bel": "Walk\x07ing club",
        "nul": "Walk\x00ing club",
        "nel": "Walk\x85ing club",
        "escape": "Walk\x1b[31ming club",
    }.items():
        yield Case(
            f"rpde-control-{name}",
            "localfeed",
            f"a name holding a {name.upper()} control character",
            {
                "/feed": static(
                    lambda wire, t=text: p.rpde(p.rpde_items(wire.base, 1, name=t), f"{wire.base}/feed")
                )
            },
            CONTROL,
            handled_if_stored=True,
        )
    yield Case(
        "rpde-control-description",
        "localfeed",
        "a description holding a vertical tab and a C1 control",
        {
            "/feed": static(
                lambda wire: p.rpde(
                    p.rpde_items(wire.base, 1, description="Line\x0bone\x9btwo"), f"{wire.base}/feed"
                )
            )
        },
        CONTROL,
        handled_if_stored=True,
    )
    yield Case(
        "rpde-name-1mb",
        "localfeed",
        "a 1 MB name",
        {
            "/feed": static(
                lambda wire: p.rpde(p.rpde_items(wire.base, 1, name="W" * 1_000_000), f"{wire.base}/feed")
            )
        },
        LONG,
        handled_if_stored=True,
    )
    yield Case(
        "rpde-many-fields",
        "localfeed",
        "an item with 50,000 unknown fields",
        {
            "/feed": static(
                lambda wire: p.rpde(
                    p.rpde_items(wire.base, 1, **{f"x{n}": n for n in range(50_000)}), f"{wire.base}/feed"
                )
            )
        },
        r"additional|not allowed|unknown|field|propert|" + LONG,
    )
    yield Case(
        "rpde-future-modified",
        "localfeed",
        "dateModified in the year 2999",
        {
            "/feed": static(
                lambda wire: p.rpde(
                    p.rpde_items(wire.base, 1, dateModified="2999-01-01T00:00:00+00:00"), f"{wire.base}/feed"
                )
            )
        },
        FUTURE,
    )


def _xml() -> Iterable[Case]:
    """Atom and RSS: DOCTYPEs and entities wherever they can hide, deep nesting, huge feeds."""

    def event(wire):
        return p.json_ld_entry(f"{wire.base}/e/1", orjson.dumps(p.json_ld_event(wire.base, 1)).decode())

    atom = "application/atom+xml"
    for name, body in {
        "billion-laughs": lambda wire: p.atom([event(wire)], prolog=p.BILLION_LAUGHS + "\n"),
        "external-entity": lambda wire: p.atom(
            [p.atom_entry("x", "&secret;")], prolog=p.EXTERNAL_ENTITY + "\n"
        ),
        "doctype-after-comment": lambda wire: p.atom(
            [event(wire)], prolog="<!--" + " " * 8_000 + "-->\n" + p.BILLION_LAUGHS + "\n"
        ),
        "doctype-after-pi": lambda wire: p.atom(
            [event(wire)], prolog='<?xml-stylesheet href="' + "a" * 5_000 + '"?>\n' + p.EXTERNAL_ENTITY + "\n"
        ),
        "doctype-lowercase-bom": lambda wire: (
            b"\xef\xbb\xbf" + p.atom([event(wire)], prolog="<!doctype feed>\n")
        ),
        "doctype-utf16": lambda wire: (
            p.atom([event(wire)], prolog=p.BILLION_LAUGHS + "\n")
            .replace(b'encoding="utf-8"', b'encoding="utf-16"')
            .decode()
            .encode("utf-16")
        ),
        "quadratic-blowup": lambda wire: p.atom(
            [p.atom_entry("x", "t", "&big;" * 5_000)],
            prolog=f'<!DOCTYPE feed [<!ENTITY big "{"x" * 50_000}">]>\n',
        ),
    }.items():
        yield Case(
            f"atom-{name}",
            "atom",
            f"Atom with {name.replace('-', ' ')}",
            {"/feed": static(body, atom)},
            DOCTYPE,
        )
    yield Case(
        "rss-billion-laughs",
        "atom",
        "RSS with the billion laughs",
        {
            "/feed": static(
                lambda wire: p.rss(["<item><title>&lol9;</title></item>"], prolog=p.BILLION_LAUGHS),
                "application/rss+xml",
            )
        },
        DOCTYPE,
    )
    yield Case(
        "atom-deep-xml",
        "atom",
        "an entry with 100,000 nested elements",
        {
            "/feed": static(
                lambda wire: p.atom(
                    [
                        '<entry><id>x</id><title>t</title><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
                        + "<span>" * 100_000
                        + "</span>" * 100_000
                        + "</div></content></entry>"
                    ]
                ),
                atom,
            )
        },
        r"not an activity|" + NESTED + "|" + BROKEN,
    )
    yield Case(
        "atom-deep-json-ld",
        "atom",
        "JSON-LD nested 100,000 deep in an entry",
        {"/feed": static(lambda wire: p.atom([p.json_ld_entry("x", p.nested_json(100_000))]), atom)},
        NESTED + r"|not an activity",
    )
    yield Case(
        "atom-deep-json-content",
        "atom",
        "activity JSON content nested 100,000 deep",
        {
            "/feed": static(
                lambda wire: p.atom([p.atom_entry("x", "t", p.nested_object(100_000), "application/json")]),
                atom,
            )
        },
        NESTED + r"|not an activity",
    )
    yield Case(
        "atom-20000-entries",
        "atom",
        "20,000 entries (news, not activities)",
        {
            "/feed": static(
                lambda wire: p.atom(p.atom_entry(f"n{n}", f"News {n}") for n in range(20_000)), atom
            )
        },
        ITEMS + "|" + TIME + "|not an activity",
        # feedparser reads a document in one step no budget can interrupt, so a long feed is
        # parsed a batch of entries at a time: the usual time limit holds.
        config={"FETCH_MAX_BYTES": 10_000_000},
        worst=True,
    )
    yield Case(
        "atom-6000-activities",
        "atom",
        "6,000 entries that each carry an activity",
        {
            "/feed": static(
                lambda wire: p.atom(
                    p.atom_activity_entry(p.activity(wire.base, n, description="x")) for n in range(6_000)
                ),
                atom,
            )
        },
        ITEMS + "|" + TIME + "|" + SIZE,
        config={"FETCH_MAX_BYTES": 10_000_000},
        worst=True,
    )
    yield Case(
        "atom-control-chars",
        "atom",
        "an activity whose name holds BEL",
        {
            "/feed": static(
                lambda wire: p.atom([p.atom_activity_entry(p.activity(wire.base, 1, name="Bell\x07walk"))]),
                atom,
            )
        },
        CONTROL + r"|not well-formed|" + BROKEN,
        handled_if_stored=True,
    )
    yield Case(
        "atom-json-ld-control-chars",
        "atom",
        "a JSON-LD Event whose name holds U+0085 and BEL",
        {
            "/feed": static(
                lambda wire: p.atom(
                    [
                        p.json_ld_entry(
                            "x",
                            orjson.dumps(p.json_ld_event(wire.base, 1, name="Carols\x85\\u0007")).decode(),
                        )
                    ]
                ),
                atom,
            )
        },
        CONTROL,
        handled_if_stored=True,
    )
    yield Case(
        "atom-title-1mb",
        "atom",
        "an entry with a 1 MB title and body",
        {"/feed": static(lambda wire: p.atom([p.atom_entry("x", "T" * 1_000_000, "B" * 1_000_000)]), atom)},
        LONG + r"|not an activity",
        handled_if_stored=True,
    )
    yield Case(
        "atom-future-event",
        "atom",
        "a JSON-LD Event modified in 2999",
        {
            "/feed": static(
                lambda wire: p.atom(
                    [
                        p.json_ld_entry(
                            "x",
                            orjson.dumps(
                                p.json_ld_event(wire.base, 1, dateModified="2999-01-01T00:00:00Z")
                            ).decode(),
                        )
                    ]
                ),
                atom,
            )
        },
        None,
    )
    yield Case(
        "atom-binary",
        "atom",
        "random bytes served as Atom",
        {"/feed": static(bytes(range(256)) * 100, atom)},
        r"not an atom|" + BROKEN,
    )


def _ical() -> Iterable[Case]:
    cal = "text/calendar"
    rules = {
        "secondly": ("FREQ=SECONDLY", RULE),
        "minutely": ("FREQ=MINUTELY", RULE),
        "hourly": ("FREQ=HOURLY;INTERVAL=1", RULE),
        "interval-0": ("FREQ=DAILY;INTERVAL=0", RULE),
        "weekly-interval-0": ("FREQ=WEEKLY;INTERVAL=0;BYDAY=MO", RULE),
        "by-second-daily": (
            "FREQ=DAILY;BYHOUR="
            + ",".join(map(str, range(24)))
            + ";BYMINUTE="
            + ",".join(map(str, range(60)))
            + ";BYSECOND="
            + ",".join(map(str, range(60))),
            RULE,
        ),
        "count-300-million": ("FREQ=DAILY;COUNT=300000000", None),
        "monthly-days-count-300-million": ("FREQ=MONTHLY;BYMONTHDAY=1,15;COUNT=300000000", None),
        "until-9999": ("FREQ=YEARLY;BYMONTH=1,4,7,10;BYMONTHDAY=2;UNTIL=99991231T000000Z", None),
        "daily-until-9999": ("FREQ=DAILY;UNTIL=99991231T000000Z", None),
        "secondly-count": ("FREQ=SECONDLY;COUNT=300000000", RULE),
    }
    for name, (rule, reason) in rules.items():
        yield Case(
            f"ical-{name}",
            "ical",
            f"RRULE:{rule[:60]}",
            {"/feed": static(lambda wire, r=rule: p.calendar([p.vevent("r1", rule=r)]), cal)},
            reason,
        )
    yield Case(
        "ical-10000-events",
        "ical",
        "10,000 one-off events",
        {"/feed": static(lambda wire: p.calendar(p.vevent(f"e{n}") for n in range(10_000)), cal)},
        ITEMS + "|" + TIME + "|" + SIZE,
        config={"FETCH_MAX_BYTES": 10_000_000},
        worst=True,
    )
    yield Case(
        "ical-exdate-flood",
        "ical",
        "a weekly series with 50,000 EXDATEs",
        {
            "/feed": static(
                lambda wire: p.calendar(
                    [
                        p.vevent(
                            "x",
                            rule="FREQ=WEEKLY;BYDAY=TU",
                            extra="EXDATE;TZID=Europe/London:"
                            + ",".join(f"{2027 + n // 365:04d}0101T100000" for n in range(50_000)),
                        )
                    ]
                ),
                cal,
            )
        },
        None,
    )
    yield Case(
        "ical-rdate-flood",
        "ical",
        "50,000 RDATEs",
        {
            "/feed": static(
                lambda wire: p.calendar(
                    [
                        p.vevent(
                            "x",
                            extra="RDATE;VALUE=DATE:"
                            + ",".join(f"{2027 + n // 300:04d}{1 + n % 12:02d}01" for n in range(50_000)),
                        )
                    ]
                ),
                cal,
            )
        },
        None,
    )
    yield Case(
        "ical-bad-dates",
        "ical",
        "DTSTART 2026-13-99T99:99:99",
        {"/feed": static(p.calendar([p.vevent("bad", start="20271399T999999")]), cal)},
        r"date|start|could not read|" + BROKEN,
    )
    yield Case(
        "ical-bad-until",
        "ical",
        "an UNTIL that is not a date",
        {"/feed": static(p.calendar([p.vevent("bad", rule="FREQ=WEEKLY;BYDAY=MO;UNTIL=tomorrow")]), cal)},
        r"date|rule|until|could not read|" + BROKEN,
    )
    yield Case(
        "ical-control-chars",
        "ical",
        "a SUMMARY holding BEL, NUL and U+0085",
        {"/feed": static(p.calendar([p.vevent("c", summary="Yoga\x07\x00\u0085class")]), cal)},
        CONTROL,
        handled_if_stored=True,
    )
    yield Case(
        "ical-summary-1mb",
        "ical",
        "a 1 MB SUMMARY",
        {"/feed": static(p.calendar([p.vevent("big", summary="Y" * 1_000_000)]), cal)},
        LONG,
        handled_if_stored=True,
    )
    yield Case(
        "ical-deep-components",
        "ical",
        "components nested 20,000 deep",
        {"/feed": static(p.calendar(["BEGIN:X-A\r\n" * 20_000 + "END:X-A\r\n" * 20_000]), cal)},
        None,
    )
    yield Case(
        "ical-xml-doctype",
        "ical",
        "an XML document with a DOCTYPE served as a calendar",
        {"/feed": static(lambda wire: p.atom([], prolog=p.BILLION_LAUGHS), cal)},
        r"not a calendar|" + BROKEN,
    )


def _openactive() -> Iterable[Case]:
    def feed(items: Callable[[Wire], list[Any]]) -> dict[str, Handler]:
        return {"/feed": static(lambda wire: p.raw_page(items(wire), f"{wire.base}/feed"))}

    def series_with(**schedule: Any) -> Callable[[Wire], list[Any]]:
        def items(wire: Wire) -> list[Any]:
            data = openactive_series(wire.base, "s")
            data["eventSchedule"][0].update(schedule)
            return [p.oa_item("s", 1, data)]

        return items

    yield Case(
        "oa-5000-sessions",
        "openactive",
        "one series and 5,000 sessions joined to it",
        {
            "/feed": static(
                lambda wire: p.raw_page(
                    [p.oa_item("s", 1, openactive_series(wire.base, "s"))]
                    + [
                        p.oa_item(
                            f"x{n}",
                            n + 2,
                            p.oa_session(
                                wire.base, n, "s", f"2027-{1 + n % 12:02d}-{1 + n % 28:02d}T11:00:00Z"
                            ),
                            "ScheduledSession",
                        )
                        for n in range(5_000)
                    ],
                    f"{wire.base}/feed",
                )
            )
        },
        None,  # joined in linear time: the harvest ends well within its budget, with the series stored
        config={"HARVEST_MAX_ITEMS": 10_000},
        worst=True,
    )
    yield Case(
        "oa-schedule-pt1m",
        "openactive",
        "a schedule repeating every minute",
        feed(series_with(repeatFrequency="PT1M")),
        RULE,
    )
    yield Case(
        "oa-schedule-p0d",
        "openactive",
        "a schedule repeating every zero days",
        feed(series_with(repeatFrequency="P0D")),
        RULE,
    )
    yield Case(
        "oa-schedule-pt1s-count",
        "openactive",
        "every second, 300 million times",
        feed(series_with(repeatFrequency="PT1S", repeatCount=300_000_000, byDay=[])),
        RULE,
    )
    yield Case(
        "oa-schedule-end-9999",
        "openactive",
        "a weekly schedule ending in 9999",
        feed(series_with(endDate="9999-12-31")),
        None,
    )
    yield Case(
        "oa-next-off-site",
        "openactive",
        "next links to another origin",
        {
            "/feed": static(
                lambda wire: p.raw_page(
                    [p.oa_item("s", 1, openactive_series(wire.base, "s"))],
                    wire.base.replace("127.0.0.1", "localhost") + "/x",
                )
            )
        },
        ORIGIN,
    )
    yield Case(
        "oa-next-loop",
        "openactive",
        "two pages that link to each other",
        {
            "/feed": paged(
                lambda wire, n: p.raw_page(
                    [p.oa_item(f"s{n}", n, openactive_series(wire.base, f"s{n}"))],
                    f"{wire.base}/feed?page={2 if n == 1 else 1}",
                )
            )
        },
        REQUESTS,
    )
    yield Case(
        "oa-deep-json-ld",
        "openactive",
        "item data nested 100,000 deep",
        {
            "/feed": static(
                (
                    '{"next":"x","items":[{"state":"updated","kind":"SessionSeries","id":"a","modified":1,'
                    '"data":' + p.nested_object(100_000) + "}]}"
                ).encode()
            )
        },
        NESTED + "|" + BROKEN,
    )
    yield Case(
        "oa-wrong-types",
        "openactive",
        "items whose every field has the wrong type",
        feed(
            lambda wire: [
                {"state": 7, "kind": ["x"], "id": None, "modified": {"a": 1}, "data": "a string"},
                {"state": "updated", "kind": "SessionSeries", "id": {"a": 1}, "modified": "x", "data": [1]},
                {
                    "state": "updated",
                    "kind": "SessionSeries",
                    "id": "y",
                    "modified": 1,
                    "data": {
                        "@type": ["SessionSeries"],
                        "name": {"en": "x"},
                        "eventSchedule": "weekly",
                        "location": "here",
                        "offers": {"price": "free"},
                    },
                },
                "not an item",
            ]
        ),
        BROKEN + r"|no data|not an activity|without an id|cannot|no ",
    )
    yield Case(
        "oa-epoch-huge",
        "openactive",
        "sessions starting at epoch 10^18 and in the year 275760",
        feed(
            lambda wire: [
                p.oa_item("s", 1, openactive_series(wire.base, "s")),
                p.oa_item(
                    "a", 2, p.oa_session(wire.base, "a", "s", "+275760-09-13T00:00:00Z"), "ScheduledSession"
                ),
                p.oa_item(
                    "b", 10**18, p.oa_session(wire.base, "b", "s", "2027-01-01T11:00:00Z"), "ScheduledSession"
                ),
            ]
        ),
        None,
    )


def _oruk() -> Iterable[Case]:
    services = "/services"

    def listing(
        contents: Callable[[Wire, int], list[Any]], total: Any, last: Any = None, delay: float = 0
    ) -> Handler:
        return paged(lambda wire, n: p.oruk_list(contents(wire, n), n, total, last), delay=delay)

    def detail(service: Callable[[Wire], dict[str, Any]]) -> Handler:
        return static(lambda wire: orjson.dumps(service(wire)))

    shed = lambda wire: p.oruk_service(wire.path.rsplit("/", 1)[1])  # noqa: E731
    yield Case(
        "oruk-endless-list",
        "oruk",
        "every list page holds new services; total_pages never says stop",
        {
            services: listing(lambda wire, n: [p.oruk_service(f"s{n}-{k}") for k in range(3)], None),
            services + "/*": detail(shed),
        },
        REQUESTS + "|" + TIME,
        feed_path=services,
    )
    yield Case(
        "oruk-total-pages-string",
        "oruk",
        "total_pages as the string '999999'",
        {
            services: listing(lambda wire, n: [p.oruk_service(f"s{n}")], "999999", last="no"),
            services + "/*": detail(shed),
        },
        REQUESTS + "|" + TIME,
        feed_path=services,
    )
    yield Case(
        "oruk-same-page-forever",
        "oruk",
        "every page number answers the same services, last_page false",
        {
            services: listing(lambda wire, n: [p.oruk_service("same")], 10**9, last=False),
            services + "/*": detail(shed),
        },
        REQUESTS + "|" + TIME,
        feed_path=services,
    )
    yield Case(
        "oruk-slow-details",
        "oruk",
        "each service's detail takes a second",
        {
            services: listing(lambda wire, n: [p.oruk_service(f"s{k}") for k in range(20)], 1),
            services + "/*": paged(lambda wire, n: orjson.dumps(shed(wire)), delay=1.0),
        },
        TIME,
        feed_path=services,
    )
    yield Case(
        "oruk-huge-schedules",
        "oruk",
        "a service with 100,000 schedules",
        {
            services: listing(lambda wire, n: [p.oruk_service("s1")], 1),
            services + "/*": detail(
                lambda wire: p.oruk_service(
                    "s1",
                    schedules=[
                        {
                            "id": f"r{k}",
                            "freq": "WEEKLY",
                            "byday": "MO",
                            "opens_at": "10:00",
                            "closes_at": "11:00",
                            "dtstart": f"{2027 + k % 50}-01-04",
                        }
                        for k in range(100_000)
                    ],
                )
            ),
        },
        None,
        feed_path=services,
    )
    for name, rule, reason in (
        ("count-300-million", {"freq": "WEEKLY", "byday": "TU", "count": 300_000_000}, None),
        ("secondly", {"freq": "SECONDLY", "interval": 1}, RULE + "|not one we can show"),
        ("interval-0", {"freq": "WEEKLY", "interval": 0, "byday": "TU"}, RULE + "|not one we can show"),
        ("until-9999", {"freq": "WEEKLY", "byday": "TU", "until": "9999-12-31"}, None),
    ):
        full_rule = {"id": "r", "opens_at": "10:00", "closes_at": "11:00", "dtstart": "2026-01-06", **rule}
        yield Case(
            f"oruk-schedule-{name}",
            "oruk",
            f"a schedule with {rule}",
            {
                services: listing(lambda wire, n: [p.oruk_service("s1")], 1),
                services + "/*": detail(lambda wire, r=full_rule: p.oruk_service("s1", schedules=[r])),
            },
            reason,
            feed_path=services,
        )
    yield Case(
        "oruk-contents-not-list",
        "oruk",
        "contents is an object",
        {services: static(orjson.dumps({"total_pages": 1, "contents": {"a": 1}}))},
        r"not an open referral|" + BROKEN,
        feed_path=services,
    )
    yield Case(
        "oruk-detail-bomb",
        "oruk",
        "a service's detail is a gzip bomb",
        {
            services: listing(lambda wire, n: [p.oruk_service("s1")], 1),
            services + "/*": encoded(p.gzip_bomb, "gzip"),
        },
        SIZE,
        feed_path=services,
        worst=True,
    )
    yield Case(
        "oruk-control-and-long-text",
        "oruk",
        "a service named with BEL and a 1 MB description",
        {
            services: listing(lambda wire, n: [p.oruk_service("s1")], 1),
            services + "/*": detail(
                lambda wire: p.oruk_service("s1", name="Shed\x07", description="D" * 1_000_000)
            ),
        },
        CONTROL + "|" + LONG,
        feed_path=services,
        handled_if_stored=True,
    )


@functools.cache
def corpus() -> tuple[Case, ...]:
    cases = (*_transport(), *_redirects(), *_rpde(), *_xml(), *_ical(), *_openactive(), *_oruk())
    ids = [case.id for case in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"case ids must be unique: {duplicates}"
    return cases


def by_id(case_id: str) -> Case:
    return next(case for case in corpus() if case.id == case_id)


def routes(cases: Iterable[Case]) -> dict[str, Handler]:
    """Every case's handlers under its own prefix, for one HostileServer."""
    return {f"/{case.id}{path}": handler for case in cases for path, handler in case.routes.items()}
