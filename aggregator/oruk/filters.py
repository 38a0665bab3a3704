"""The parameters of the ORUK endpoints, and the SQL that answers the list endpoints' filters.

Every filter the UK profile lists is asked of the search index (``aggregator.search_index``),
the table the query API reads, so a list costs what a search costs:

- ``search``: each word in the index's folded text (name, organiser, place, description);
- ``taxonomy_term_id`` / ``taxonomy_id``: the index's ``|id|`` lists of categories or audiences;
- ``minimum_age`` / ``maximum_age``: its age columns, as the profile words them: a minimum
  age of at least, a maximum age of at most, the value (a service stating none does not match);
- ``day``: its weekday bits;
- ``start_time`` / ``end_time``: its part-of-day bits narrow the rows in SQL; the exact times
  are then checked on the schedules of the rows left (the index holds no clock times), each
  schedule on its own, so ``day=MO&start_time=17:00`` means a Monday session from 17:00;
- ``postcode`` / ``proximity`` (metres): the index's grid squares and unit vectors, as the
  query API's ``near``/``radius``, nearest first.

A parameter the endpoint does not take, or a value it cannot read, is a :class:`BadRequest`
naming it: a consumer's typo must not quietly return everything.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlalchemy.engine import Connection
from werkzeug.datastructures import MultiDict

from aggregator import freshness, geocode, query
from aggregator import search_index as si
from aggregator.oruk.shape import TAXONOMIES, Taxonomy
from schema import normalise_postcode
from schema.schedule import LOCAL_ZONE, WEEKDAYS
from schema.vocab import ids as vocabulary_ids

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
MAX_PROXIMITY_METRES = query.MAX_RADIUS_KM * 1000

PAGING = ("page", "per_page")
SERVICE_FILTERS = (
    "search", "taxonomy_term_id", "taxonomy_id", "minimum_age", "maximum_age",
    "start_time", "end_time", "day",
)  # fmt: skip
# What each endpoint takes: the parameters the UK profile's OpenAPI lists for it.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "/": (),
    "/services": (*PAGING, *SERVICE_FILTERS),
    "/services/{id}": (),
    "/service_at_locations": (*PAGING, *SERVICE_FILTERS, "postcode", "proximity"),
    "/taxonomies": PAGING,
    "/taxonomy_terms": PAGING,
}
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")
_NOON, _FIVE = time(12), time(17)  # where search_index.time_of_day divides the day


class BadRequest(Exception):
    """A request an ORUK endpoint cannot answer: the status, a message to act on, the parameter."""

    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.parameter = status, message, parameter


def check_names(endpoint: str, args: MultiDict[str, str]) -> None:
    """Refuse parameters ``endpoint`` does not take, naming them all, and any given twice."""
    allowed = PARAMETERS[endpoint]
    unknown = [name for name in dict.fromkeys(args) if name not in allowed]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        takes = f"it takes only {', '.join(allowed)}" if allowed else "it takes no parameters"
        raise BadRequest(
            400,
            f"/oruk{endpoint.replace('/{id}', '/<id>')} does not know the parameter"
            f"{'s' if len(unknown) > 1 else ''} {names}: {takes}. Remove or correct "
            f"{'them' if len(unknown) > 1 else 'it'}.",
            unknown[0],
        )
    for name in allowed:
        if len(args.getlist(name)) > 1:
            raise BadRequest(400, f"'{name}' is given more than once; give it once.", name)


def paging(args: Mapping[str, str]) -> tuple[int, int]:
    """``page`` (from 1) and ``per_page`` (at most MAX_PER_PAGE: more is served as that many)."""
    page = _whole_number(args, "page", 1)
    return page, min(_whole_number(args, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)


def _whole_number(args: Mapping[str, str], name: str, default: int) -> int:
    raw = args.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest(
            400, f"{name}={raw!r} is not a whole number from 1; use e.g. {name}={default}.", name
        )
    return int(raw)


@dataclass
class Filters:
    """The list filters as read from a request; None (or empty) where not given."""

    words: list[str] = field(default_factory=list)
    term: tuple[Taxonomy, str] | None = None
    scheme: Taxonomy | None = None
    minimum_age: float | None = None
    maximum_age: float | None = None
    start_time: time | None = None
    end_time: time | None = None
    day: int | None = None  # 0 = Monday
    near: tuple[float, float] | None = None
    proximity_km: float | None = None

    @property
    def needs_schedules(self) -> bool:
        """True when the rows SQL selects must still have their schedules checked (clock times)."""
        return self.start_time is not None or self.end_time is not None


def read(args: Mapping[str, str]) -> Filters:
    """The service filters in ``args`` (``postcode`` and ``proximity`` are :func:`read_place`'s)."""
    found = Filters(words=si.fold(args.get("search") or "").split())
    if args.get("taxonomy_term_id"):
        found.term = _term(args["taxonomy_term_id"])
    if args.get("taxonomy_id"):
        found.scheme = _scheme(args["taxonomy_id"])
    found.minimum_age = _age(args, "minimum_age")
    found.maximum_age = _age(args, "maximum_age")
    found.start_time = _clock_time(args, "start_time", "09:30")
    found.end_time = _clock_time(args, "end_time", "17:00")
    if args.get("day"):
        found.day = _day(args["day"])
    return found


def _uuid_of(raw: str, name: str, listed_at: str) -> str:
    try:
        return str(uuid.UUID(raw.strip()))
    except ValueError:
        raise BadRequest(
            400, f"{name}={raw!r} is not an id (a UUID); the ids are listed at /oruk/{listed_at}.", name
        ) from None


def _term(raw: str) -> tuple[Taxonomy, str]:
    wanted = _uuid_of(raw, "taxonomy_term_id", "taxonomy_terms")
    for scheme in TAXONOMIES:
        for code in vocabulary_ids(scheme.kind):
            if scheme.term_id(code) == wanted:
                return scheme, code
    raise BadRequest(
        400,
        f"No taxonomy term here has the id {wanted}; the terms are listed at /oruk/taxonomy_terms.",
        "taxonomy_term_id",
    )


def _scheme(raw: str) -> Taxonomy:
    wanted = _uuid_of(raw, "taxonomy_id", "taxonomies")
    for scheme in TAXONOMIES:
        if scheme.id == wanted:
            return scheme
    raise BadRequest(
        400,
        f"No taxonomy here has the id {wanted}; the taxonomies are listed at /oruk/taxonomies.",
        "taxonomy_id",
    )


def _age(args: Mapping[str, str], name: str) -> float | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 150:  # also refuses nan and inf
        raise BadRequest(400, f"{name}={raw!r} is not an age in years; use a number, like {name}=18.", name)
    return value


def _clock_time(args: Mapping[str, str], name: str, example: str) -> time | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    if not _CLOCK.match(raw):
        raise BadRequest(
            400,
            f"{name}={raw!r} is not a time on the 24-hour clock; give hours and minutes: {name}={example}.",
            name,
        )
    return time.fromisoformat(raw)


def _day(raw: str) -> int:
    wanted = raw.strip().lower()
    for number, (code, name) in enumerate(zip(WEEKDAYS, _DAY_NAMES, strict=True)):
        if wanted in (code.lower(), name):
            return number
    raise BadRequest(
        400,
        f"day={raw!r} is not a day of the week; use a name or its two letters, like day=Monday or day=MO.",
        "day",
    )


def read_place(
    conn: Connection, args: Mapping[str, str], geocoder: geocode.Geocoder, now: datetime
) -> Filters:
    """:func:`read`, with ``postcode`` placed by the aggregator's geocoder and ``proximity`` in metres."""
    found = read(args)
    raw, proximity = (args.get("postcode") or "").strip(), (args.get("proximity") or "").strip()
    if proximity:
        if not raw:
            raise BadRequest(
                400, "'proximity' needs a place to measure from: add postcode=<a UK postcode>.", "proximity"
            )
        try:
            metres = float(proximity)
        except ValueError:
            metres = -1.0
        if not 0 < metres <= MAX_PROXIMITY_METRES:
            raise BadRequest(
                400,
                f"proximity={proximity!r} is not a distance we search: give metres, more than 0 and at most "
                f"{MAX_PROXIMITY_METRES:g}, like proximity=2000.",
                "proximity",
            )
        found.proximity_km = metres / 1000
    if raw:
        postcode = normalise_postcode(raw)
        if postcode is None:
            raise BadRequest(400, f"postcode={raw!r} is not a UK postcode, like 'CR4 1AA'.", "postcode")
        try:
            found.near = geocode.locate_for_reader(conn, postcode, geocoder, now)
        except geocode.GeocoderUnavailable:
            raise BadRequest(
                503, "We can't look up postcodes just now. Try again in a few minutes.", "postcode"
            ) from None
        if found.near is None:
            raise BadRequest(400, f"We don't know where the postcode '{postcode}' is. Check it.", "postcode")
    return found


# -- in SQL ------------------------------------------------------------------------------------


def where(filters: Filters, now: datetime, thresholds: freshness.Thresholds) -> list[ColumnElement[bool]]:
    """The conditions on ``search_index`` rows: what is shown at all, then each filter given.

    Shown: what the query API would show, apart from status: expired listings (no word from
    the organiser for too long) and activities with no session to come are left out, while a
    paused or cancelled one is listed with its Open Referral status.
    """
    c = si.index.c
    conditions: list[ColumnElement[bool]] = [
        c.last_verified >= thresholds.expired_before(now),
        or_(c.status != "scheduled", c.next_start.is_not(None)),
    ]
    for word in filters.words:
        conditions.append(c.text.like(f"%{query.like_escaped(word)}%", escape="\\"))
    if filters.term is not None:
        scheme, code = filters.term
        conditions.append(c[scheme.kind].like(f"%|{code}|%"))
    if filters.scheme is not None:
        conditions.append(c[filters.scheme.kind] != "||")
    if filters.minimum_age is not None:
        conditions.append(c.min_age >= filters.minimum_age)  # NULL >= x is not true: none stated
    if filters.maximum_age is not None:
        conditions.append(c.max_age <= filters.maximum_age)
    if filters.day is not None:
        conditions.append(c.days.op("&")(si.DAY_BITS[WEEKDAYS[filters.day].lower()]) != 0)
    parts = _parts_of_day(filters)
    if parts != sum(si.TIMES_OF_DAY.values()):
        conditions.append(c.times.op("&")(parts) != 0)
    if filters.near is not None:
        conditions.append(c.cell.is_not(None))
        if filters.proximity_km is not None:
            lat, lon = filters.near
            conditions.append(query.in_squares(lat, lon, filters.proximity_km))
            conditions.append(distance(filters) <= si.chord_limit(filters.proximity_km))
    return conditions


def _parts_of_day(filters: Filters) -> int:
    """The parts of the day (search_index.TIMES_OF_DAY bits) a session meeting the times can start in.

    A session starting at or after ``start_time`` cannot start in the morning when that is
    noon or later; one ending by ``end_time`` started before it (the contract has every
    session end after it starts), so not in the evening when that is five or earlier.
    """
    bits = si.TIMES_OF_DAY
    parts = sum(bits.values())
    if filters.start_time is not None:
        if filters.start_time >= _NOON:
            parts &= ~bits["morning"]
        if filters.start_time >= _FIVE:
            parts &= ~bits["afternoon"]
    if filters.end_time is not None:
        if filters.end_time <= _FIVE:
            parts &= ~bits["evening"]
        if filters.end_time <= _NOON:
            parts &= ~bits["afternoon"]
    return parts


def distance(filters: Filters) -> ColumnElement[float]:
    """The squared chord from the postcode to each row: it orders rows as their distance does."""
    assert filters.near is not None
    lat, lon = filters.near
    return query.chord2_of(query.Query(lat=lat, lon=lon))


# -- on the rows left ------------------------------------------------------------------------------


# The fields of an activity that say when it takes place: all that meets_schedules reads.
WHEN = ("type", "startDate", "endDate", "schedule")


def meets_schedules(activity: Mapping[str, Any], filters: Filters) -> bool:
    """True when one way the activity takes place meets ``day``, ``start_time`` and ``end_time`` together."""
    return any(
        (filters.day is None or weekday == filters.day)
        and (filters.start_time is None or opens >= filters.start_time)
        and (filters.end_time is None or closes <= filters.end_time)
        for weekday, opens, closes in _sessions(activity)
    )


def _sessions(activity: Mapping[str, Any]) -> Iterator[tuple[int, time, time]]:
    """(weekday, local opening time, local closing time) of each way the activity takes place."""
    if activity.get("type") == "Event":
        zone = LOCAL_ZONE
        start = datetime.fromisoformat(activity["startDate"]).astimezone(zone)
        end = datetime.fromisoformat(activity["endDate"]).astimezone(zone)
        yield start.weekday(), start.time(), end.time()
        return
    for entry in activity.get("schedule") or ():
        opens, closes = time.fromisoformat(entry["startTime"]), time.fromisoformat(entry["endTime"])
        for day in entry.get("byDay") or ():
            yield WEEKDAYS.index(day), opens, closes
