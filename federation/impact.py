"""Impact counts both apps share: the report format, small-number suppression, and fetching reports.

An aggregator counts, per activity, per day (Europe/London), per embedding website and per
kind of event, how often a listing was shown, opened, printed, put on a shortlist, or had
its booking link or contact followed (``aggregator.impact``). Nothing about the person
looking is kept: a count is all there is. It serves those counts for each publisher's origin
as a report; publishers, and aggregators relaying other aggregators' counts, fetch reports
with :func:`fetch_report`.

Suppression, and why totals cannot undo it: a day's count below :data:`THRESHOLD` is
published as "fewer than 5" (``count`` null), never as its number. Every total (a month, a
year, all websites, all aggregators) is the sum of *published* day cells only, so a
suppressed cell adds nothing and the total is marked a lower bound. A total is therefore a
function of the published cells alone: subtracting published cells from it can only ever
give back zero for the suppressed ones, never their real value. Only days that are over are
published, so comparing two reports of the same day cannot show a single event arriving.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, Table, delete, insert

from federation.fetch import FetchError, GuardedClient
from federation.origins import origin_of

FORMAT = "localfeed-impact/1"
REPORT_PATH = "/impact/report"  # where an aggregator serves its reports
# What is counted, in the order people read them.
KINDS = ("shown", "opened", "booking", "contact", "printed", "shortlisted")
KIND_WORDS = {
    "shown": "Views",
    "opened": "Details opened",
    "booking": "Booking link followed",
    "contact": "Contact followed",
    "printed": "Printed",
    "shortlisted": "Put on a shortlist",
}
THRESHOLD = 5  # a day's count below this is published only as "fewer than 5"
FEWER_THAN = f"fewer than {THRESHOLD}"
NO_SITE = ""  # the browser named no website (or the aggregator's own pages, opened directly)
MAX_CELLS = 200_000  # day cells one report may hold: a bound on what we read from others


class ImpactError(Exception):
    """A report could not be had or read; the message names the aggregator and what to do."""


def web_origin(url: Any) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (default port left out), or None.

    Only the origin of an embedding page is ever kept: its path could name a person's
    search or a patient's page.
    """
    found = origin_of(url)
    return found.url if found is not None else None


def published(count: int) -> int | None:
    """A day's count as it may be published: itself, or None ("fewer than 5")."""
    return count if count >= THRESHOLD else None


@dataclass(frozen=True)
class Total:
    """A sum of published day cells; ``lower_bound`` when a suppressed cell is in it."""

    count: int = 0
    lower_bound: bool = False

    def __add__(self, other: Total) -> Total:
        return Total(self.count + other.count, self.lower_bound or other.lower_bound)

    @classmethod
    def of(cls, cell: Mapping[str, Any]) -> Total:
        count = cell.get("count")
        return cls(0, True) if count is None else cls(int(count), False)

    @property
    def words(self) -> str:
        """ "37", "at least 37", or "fewer than 5 a day" when every day in it was suppressed."""
        if not self.lower_bound:
            return str(self.count)
        return f"at least {self.count}" if self.count else f"{FEWER_THAN} a day"


def day_cell(activity: str, day: date, site: str, kind: str, count: int) -> dict[str, Any]:
    """One published day cell of a report."""
    return {
        "activity": activity,
        "day": day.isoformat(),
        "site": site,
        "kind": kind,
        "count": published(count),
    }


def monthly(days: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Month totals per activity, website and kind, summed from published day cells only."""
    totals: dict[tuple[str, str, str, str], Total] = {}
    for cell in days:
        key = (cell["activity"], cell["day"][:7], cell["site"], cell["kind"])
        totals[key] = totals.get(key, Total()) + Total.of(cell)
    return [
        {"activity": a, "month": m, "site": s, "kind": k, "count": t.count, "lowerBound": t.lower_bound}
        for (a, m, s, k), t in sorted(totals.items())
    ]


def section(counted_by: str, generated: datetime, days: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One aggregator's counts in a report: its published day cells and the month totals made from them."""
    return {
        "countedBy": counted_by,
        "generated": generated.isoformat(),
        "days": list(days),
        "months": monthly(days),
    }


def report(
    origin: str, through: date, sections: Iterable[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """The whole report for a publisher's ``origin``: this aggregator's section first, then relayed ones."""
    return {
        "format": FORMAT,
        "origin": origin,
        "threshold": THRESHOLD,
        "generated": now.isoformat(),
        "through": through.isoformat(),  # the last day counted: only days that are over are published
        "counts": list(sections),
    }


def read_sections(body: Any, origin: str) -> list[dict[str, Any]]:
    """The sections of a fetched report, checked: day cells only for ``origin``'s activities, re-suppressed.

    A report is another node's claim. Cells that do not fit the format are dropped; a count
    below the threshold is treated as suppressed whatever the sender did, so nothing we
    show or re-serve can be smaller than the rule allows.
    """
    if not isinstance(body, dict) or body.get("format") != FORMAT or not isinstance(body.get("counts"), list):
        raise ImpactError(f"the answer is not a Localfeed impact report ({FORMAT})")
    sections = []
    cells = 0
    for given in body["counts"]:
        if not isinstance(given, dict):
            continue
        counted_by = web_origin(given.get("countedBy"))
        try:
            generated = datetime.fromisoformat(str(given.get("generated")))
        except ValueError:
            continue
        if counted_by is None or generated.tzinfo is None or not isinstance(given.get("days"), list):
            continue
        days = []
        for cell in given["days"]:
            checked = _checked_cell(cell, origin)
            if checked is not None:
                days.append(checked)
        cells += len(days)
        if cells > MAX_CELLS:
            raise ImpactError(f"the report holds more than {MAX_CELLS} day counts")
        sections.append(section(counted_by, generated, days))
    return sections


def _checked_cell(cell: Any, origin: str) -> dict[str, Any] | None:
    if not isinstance(cell, dict) or cell.get("kind") not in KINDS:
        return None
    activity, site, count = cell.get("activity"), cell.get("site"), cell.get("count")
    if web_origin(activity) != origin or not isinstance(site, str) or (site and web_origin(site) != site):
        return None
    try:
        day = date.fromisoformat(str(cell.get("day")))
    except ValueError:
        return None
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        return None
    return day_cell(str(activity), day, site, cell["kind"], count or 0)


def keep_section(
    conn: Connection, table: Table, origin: str, section: Mapping[str, Any], now: datetime, **more: Any
) -> None:
    """Hold ``section`` (one counting aggregator's published cells for ``origin``) in ``table``,
    in place of the one held before: a table keyed by (counted_by, origin), as both apps keep them."""
    counted_by = section["countedBy"]
    conn.execute(delete(table).where(table.c.counted_by == counted_by, table.c.origin == origin))
    conn.execute(
        insert(table).values(
            counted_by=counted_by,
            origin=origin,
            generated=section["generated"],
            fetched_at=now,
            days=section["days"],
            **more,
        )
    )


def latest(sections: Iterable[Mapping[str, Any]], *, leave_out: str | None = None) -> list[Mapping[str, Any]]:
    """One section per counting aggregator, its newest: the same counts reached by two paths count once."""
    newest: dict[str, Mapping[str, Any]] = {}
    for given in sections:
        counted_by = given["countedBy"]
        if counted_by == leave_out:
            continue
        held = newest.get(counted_by)
        if held is None or given["generated"] > held["generated"]:
            newest[counted_by] = given
    return [newest[key] for key in sorted(newest)]


def report_url(aggregator: str, origin: str) -> str:
    """Where ``aggregator`` (its base URL) serves the report for ``origin``."""
    return f"{aggregator.rstrip('/')}{REPORT_PATH}?{urlencode({'origin': origin})}"


def fetch_report(client: GuardedClient, aggregator: str, origin: str) -> list[dict[str, Any]]:
    """The checked sections of ``aggregator``'s report for ``origin``, through the guarded client."""
    url = report_url(aggregator, origin)
    try:
        fetched = client.get(url, headers={"Accept": "application/json"})
    except FetchError as error:
        raise ImpactError(f"{aggregator} could not be reached for its counts: {error}") from None
    if fetched.status == 404:
        raise ImpactError(f"{aggregator} does not serve impact counts (no {REPORT_PATH} there)")
    if fetched.status != 200:
        raise ImpactError(
            f"{aggregator} answered {fetched.status} when asked for its counts; it is asked again later"
        )
    try:
        body = fetched.json()
    except ValueError:
        raise ImpactError(f"{aggregator} sent counts that are not JSON") from None
    try:
        return read_sections(body, origin)
    except ImpactError as error:
        raise ImpactError(f"{aggregator}: {error}") from None
