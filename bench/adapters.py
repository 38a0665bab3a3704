"""Adapters against large and hostile documents: mapping time grows with the document, not its square.

Each adapter maps a document of N and of 5N items in the same run; the ratio of their
times should be near 5 (linear), where a quadratic join or a per-item re-parse of the
whole document gives near 25. The mapping is timed alone (no HTTP, no store), so the
figures are the adapters' own.

Run: .venv/bin/python bench/adapters.py [--scale 1]
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson

from aggregator.adapters import atom, ical, openactive
from aggregator.adapters.base import Page
from bench.common import table, write_results
from federation.fetch import Fetched

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)


def calendar(events: int) -> bytes:
    """One-off events, weekly series and a rule expanded to its next occurrences, in equal parts."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//adapters//EN"]
    rules = ("", "RRULE:FREQ=WEEKLY;COUNT=300000000", "RRULE:FREQ=DAILY;INTERVAL=3")
    for n in range(events):
        day = f"202612{n % 28 + 1:02d}"
        lines += ["BEGIN:VEVENT", f"UID:e{n}@bench", "DTSTAMP:20261101T000000Z"]
        lines += [f"DTSTART;TZID=Europe/London:{day}T100000", f"DTEND;TZID=Europe/London:{day}T110000"]
        lines += [f"SUMMARY:Walk {n}", "LOCATION:Hall, 1 Road, Mitcham, CR4 2LF"]
        lines += [rules[n % 3]] if rules[n % 3] else []
        lines.append("END:VEVENT")
    return "\r\n".join([*lines, "END:VCALENDAR"]).encode()


def feed(entries: int) -> bytes:
    parts = ['<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>b</title><id>urn:b</id>']
    parts += [
        f"<entry><title>Post {n}</title><id>urn:e:{n}</id><summary>News {n}</summary></entry>"
        for n in range(entries)
    ]
    return "".join([*parts, "</feed>"]).encode()


def sessions_page(sessions: int) -> list[dict[str, Any]]:
    """An RPDE page of one series and ``sessions`` sessions that join it."""
    series = {
        "@type": "SessionSeries",
        "@id": "https://b.example/series/1",
        "name": "Walking Football",
        "organizer": {"name": "Leisure"},
        "location": {"name": "Centre", "address": {"postalCode": "CR4 4HD"}},
    }
    items = [{"state": "updated", "kind": "SessionSeries", "id": "1", "modified": 1, "data": series}]
    for n in range(sessions):
        day = date.fromordinal(date(2026, 1, 7).toordinal() + 7 * n).isoformat()
        session = {
            "@type": "ScheduledSession",
            "@id": f"https://b.example/s/{n}",
            "superEvent": series["@id"],
            "startDate": f"{day}T11:00:00Z",
            "endDate": f"{day}T12:00:00Z",
        }
        items.append({"state": "updated", "kind": "ScheduledSession", "id": f"s{n}", "data": session})
    return items


def _rpde(items: list[dict[str, Any]]) -> Page:
    body = orjson.dumps({"items": items, "next": "https://b.example/rpde"})
    page = Fetched("https://b.example/rpde", 200, httpx.Headers({"content-type": "application/json"}), body)
    fetched = iter([page])
    return next(openactive.pages(lambda url: next(fetched, None), "https://b.example/rpde", None, now=NOW))


def _seconds(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every document's size")
    args = parser.parse_args(argv)
    cases = {
        "iCal events": (2000, lambda n: ical.read_calendar(calendar(n), "https://b.example/c.ics", NOW)),
        "Atom entries": (4000, lambda n: atom.read_feed(feed(n), "https://b.example/f.atom", NOW)),
        "OpenActive sessions on one series": (1000, lambda n: _rpde(sessions_page(n))),
    }
    rows, results = [], {}
    for name, (size, work) in cases.items():
        small = int(size * args.scale)
        times = [_seconds(functools.partial(work, n)) for n in (small, small * 5)]
        rows.append(
            [name, small, round(times[0], 2), small * 5, round(times[1], 2), round(times[1] / times[0], 1)]
        )
        results[name] = {"sizes": [small, small * 5], "seconds": times}
    print(
        table(
            "Mapping time against size (5x the items should take about 5x)",
            ["document", "n", "s", "5n", "s", "ratio"],
            rows,
        )
    )
    print(f"\nresults: {write_results('adapters', results)}")
    return results


if __name__ == "__main__":
    main()
