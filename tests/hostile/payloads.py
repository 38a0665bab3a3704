"""Bytes a hostile source sends: compression bombs, nested JSON, feeds in every format.

Built at test time (and cached per process) rather than stored: a gigabyte of zeros
compresses to a megabyte, and a checked-in bomb is a trap for the next person who
opens the folder.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any
from xml.sax.saxutils import escape

import orjson

from schema.rpde import encode_page
from tests.factories import event_activity, weekly_activity, wire_item

GIGABYTE = 1 << 30
_MEGABYTE_OF_ZEROS = bytes(1 << 20)


@functools.cache
def deflate_bomb(size: int = GIGABYTE) -> bytes:
    """Raw deflate of ``size`` zero bytes (a multiple of 1 MB), in about 1/1000 of that.

    Each megabyte is compressed once and ended with a full flush, which resets the
    compressor: the same compressed block then stands for every further megabyte, so a
    gigabyte costs a fraction of a second to build instead of several seconds.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(_MEGABYTE_OF_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * (size >> 20) + compressor.flush()


@functools.cache
def gzip_bomb(size: int = GIGABYTE) -> bytes:
    """A gzip stream of ``size`` zero bytes, with a true CRC and length."""
    crc = 0
    for _ in range(size >> 20):
        crc = zlib.crc32(_MEGABYTE_OF_ZEROS, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + deflate_bomb(size) + struct.pack("<II", crc, size & 0xFFFFFFFF)


@functools.cache
def zlib_bomb(size: int = GIGABYTE) -> bytes:
    """HTTP's ``deflate`` coding (a zlib stream) of ``size`` zero bytes."""
    adler = 1
    for _ in range(size >> 20):
        adler = zlib.adler32(_MEGABYTE_OF_ZEROS, adler)
    return b"\x78\xda" + deflate_bomb(size) + struct.pack(">I", adler)


def gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def zlib_deflate(data: bytes) -> bytes:
    return zlib.compress(data, 9)


def nested_json(depth: int, opener: str = "[", closer: str = "]") -> str:
    """``[[[...]]]`` (or ``{"a":{...}}``) ``depth`` levels deep, as text."""
    return opener * depth + closer * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# -- our own RPDE ---------------------------------------------------------------------------------


def activity(base: str, n: int | str, **overrides: Any) -> dict[str, Any]:
    """A valid weekly activity whose id is on ``base``'s origin."""
    return weekly_activity(**{"id": f"{base}/activities/{n}", "name": f"Hostile walk {n}", **overrides})


def one_off(base: str, n: int | str, **overrides: Any) -> dict[str, Any]:
    return event_activity(**{"id": f"{base}/activities/{n}", "name": f"Hostile lunch {n}", **overrides})


def rpde(items: Iterable[Mapping[str, Any]], next_url: str) -> bytes:
    return encode_page(items, next_url)


def rpde_items(base: str, count: int, start: int = 1, **overrides: Any) -> list[dict[str, Any]]:
    return [
        wire_item(f"{base}/activities/{n}", n, activity(base, n, **overrides))
        for n in range(start, start + count)
    ]


def raw_page(items: Any, next_url: Any) -> bytes:
    """A page with whatever types the caller gives (wrong ones included)."""
    return orjson.dumps({"next": next_url, "items": items, "license": "https://example.org/licence"})


# -- XML ------------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">' for n in range(1, 10))
    + "]>"
)
EXTERNAL_ENTITY = '<!DOCTYPE feed [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'


def atom(entries: Iterable[str], *, prolog: str = "", title: str = "Hostile feed") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + prolog
        + '<feed xmlns="http://www.w3.org/2005/Atom">'
        + f"<title>{title}</title><id>urn:hostile</id><updated>2026-11-01T00:00:00Z</updated>"
        + "".join(entries)
        + "</feed>"
    ).encode()


def atom_entry(ref: str, title: str = "An entry", content: str = "", content_type: str = "html") -> str:
    return (
        f"<entry><id>{escape(ref)}</id><title>{escape(title)}</title>"
        "<updated>2026-11-01T00:00:00Z</updated>"
        f'<content type="{content_type}">{escape(content)}</content></entry>'
    )


def atom_activity_entry(data: Mapping[str, Any]) -> str:
    """An entry carrying our activity JSON, as a Localfeed publisher's Atom does."""
    return atom_entry(
        str(data["id"]), str(data.get("name", "")), orjson.dumps(data).decode(), "application/json"
    )


def json_ld_event(base: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "@context": "https://schema.org",
        "@type": "Event",
        "@id": f"{base}/events/{n}",
        "name": f"Carol singing {n}",
        "startDate": "2026-12-19T15:00:00+00:00",
        "endDate": "2026-12-19T16:30:00+00:00",
        "location": {
            "@type": "Place",
            "name": "St Mark's Church",
            "address": {"@type": "PostalAddress", "streetAddress": "St Mark's Road", "postalCode": "CR4 2LF"},
        },
        "organizer": {"@type": "Organization", "name": "St Mark's Church"},
        "isAccessibleForFree": True,
        **extra,
    }


def json_ld_entry(ref: str, script: str) -> str:
    return atom_entry(ref, "An event", f'<p>Come!</p><script type="application/ld+json">{script}</script>')


def rss(items: Iterable[str], *, prolog: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + prolog
        + '<rss version="2.0"><channel><title>Hostile</title><link>https://x.example/</link>'
        + "<description>x</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


# -- iCalendar ------------------------------------------------------------------------------------


def vevent(
    uid: str, *, rule: str = "", start: str = "20270601T100000", extra: str = "", summary: str = ""
) -> str:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20261101T000000Z",
        f"DTSTART;TZID=Europe/London:{start}",
        f"DTEND;TZID=Europe/London:{start[:9]}{int(start[9:11]) + 1:02d}{start[11:]}"
        if len(start) > 9
        else "",
        f"SUMMARY:{summary or 'Chair yoga ' + uid}",
        "LOCATION:Pollards Hill Community Centre\\, South Lodge Avenue\\, Mitcham CR4 1LT",
        "DESCRIPTION:Gentle yoga on chairs. Free.",
        f"RRULE:{rule}" if rule else "",
        extra,
        "END:VEVENT",
    ]
    return "\r\n".join(line for line in lines if line)


def calendar(events: Iterable[str]) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Hostile//EN\r\nX-WR-CALNAME:Hostile centre\r\n"
        + "\r\n".join(events)
        + "\r\nEND:VCALENDAR\r\n"
    ).encode()


# -- OpenActive -----------------------------------------------------------------------------------


def oa_session(base: str, identifier: str | int, series: str, start: str) -> dict[str, Any]:
    return {
        "@type": "ScheduledSession",
        "@id": f"{base}/sessions/{identifier}",
        "superEvent": f"{base}/series/{series}",
        "startDate": start,
        "endDate": start.replace("T11", "T12"),
        "remainingAttendeeCapacity": 5,
        "eventStatus": "https://schema.org/EventScheduled",
    }


def oa_item(identifier: str | int, modified: int, data: Any, kind: str = "SessionSeries") -> dict[str, Any]:
    return {"state": "updated", "kind": kind, "id": identifier, "modified": modified, "data": data}


# -- Open Referral UK -----------------------------------------------------------------------------


def oruk_service(identifier: str, **fields: Any) -> dict[str, Any]:
    from tests.adapters.directory import SHED

    service = orjson.loads(orjson.dumps(SHED))
    service.update({"id": identifier, "name": f"Men's Shed {identifier}", **fields})
    return dict(service)


def oruk_list(contents: list[Any], number: int, total_pages: Any, last_page: Any = None) -> bytes:
    envelope: dict[str, Any] = {
        "total_items": len(contents),
        "total_pages": total_pages,
        "page_number": number,
        "size": len(contents),
        "first_page": number == 1,
        "empty": not contents,
        "contents": contents,
    }
    if last_page is not None:
        envelope["last_page"] = last_page
    return orjson.dumps(envelope)
