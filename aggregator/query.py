"""Answering "what's on near here": the query API's parameters, filters, order and pages.

:func:`search` returns exactly the body of ``GET /api/activities``; the embed pages call
it directly. Bad parameters raise :class:`QueryError` with a sentence a person can act
on and the parameter's name.

Order: visible listings that are fresh or ageing come first, then stale ones, those
whose every source has stopped answering and those no organiser confirmed (issue 7);
within each, nearest first (when ``near`` is given), then soonest next session, then the
merged id so that the order is total and a cursor can resume exactly after an item.
Expired, paused and cancelled listings, and those with no session to come, are left out.

The cursor is the sort key of the last item returned (keyset paging): a page costs the
same however deep it is, and an item added or removed between pages neither repeats nor
hides another.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    ColumnElement,
    Date,
    Float,
    Integer,
    Select,
    and_,
    any_,
    bindparam,
    case,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Connection

from aggregator import freshness, geocode, places
from aggregator import search_index as si
from aggregator.store import merge_keys, sources
from federation.geocoding import APPROXIMATE, POINT, Located
from schema import next_occurrences, normalise_postcode
from schema.vocab import ids as vocabulary_ids

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RADIUS_KM",
    "MAX_LIMIT",
    "MAX_RADIUS_KM",
    "PARAMETERS",
    "Query",
    "QueryError",
    "get",
    "parse",
    "search",
    "walking_minutes",
]

DEFAULT_RADIUS_KM = 5.0
MAX_RADIUS_KM = 50.0
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
WALKING_KMH = 4.8
# Streets are not straight lines: the walking route is taken as 1.3 times the straight distance.
ROUTE_FACTOR = 1.3
PARAMETERS = (
    "near", "radius", "category", "day", "time", "free", "age",
    "audience", "accessibility", "has_space", "q", "limit", "cursor",
)  # fmt: skip
DAY_NAMES = {
    "mo": "Monday", "tu": "Tuesday", "we": "Wednesday", "th": "Thursday",
    "fr": "Friday", "sa": "Saturday", "su": "Sunday",
}  # fmt: skip
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}
_LAT_LON = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*,\s*([-+]?\d+(?:\.\d+)?)\s*$")


class QueryError(ValueError):
    """A parameter a person got wrong: ``str()`` says what and how to fix it; ``parameter`` names it.

    ``choices`` are the places an ambiguous ``near`` may mean (``label`` and ``near`` each).
    """

    def __init__(
        self, message: str, parameter: str | None = None, choices: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.choices = choices or []


# -- reading the parameters ------------------------------------------------------------------


@dataclass
class Query:
    """The understood parameters; ``echo`` is what the response's ``query`` repeats back."""

    lat: float | None = None
    lon: float | None = None
    located: Located | None = None
    radius_km: float | None = None
    categories: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    free: bool = False
    age: int | None = None
    audiences: list[str] = field(default_factory=list)
    accessibility: list[str] = field(default_factory=list)
    has_space: bool = False
    words: list[str] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    echo: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What a cursor must agree with: everything that decides which items and in what order."""
        understood = {k: v for k, v in self.echo.items() if k not in ("limit", "cursor", "ignored")}
        return hashlib.sha256(orjson.dumps(understood, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@cache
def _vocabulary(kind: str) -> tuple[str, ...]:
    return tuple(vocabulary_ids(kind))


def _listed(params: Mapping[str, str], name: str, allowed: Sequence[str], what: str) -> list[str]:
    raw = params.get(name) or ""
    chosen = [part.strip().lower() for part in raw.split(",") if part.strip()]
    for value in chosen:
        if value not in allowed:
            close = difflib.get_close_matches(value, allowed, n=1)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise QueryError(
                f"We don't know the {what} '{value}'. {hint}Use one or more of: {', '.join(allowed)}.", name
            )
    return list(dict.fromkeys(chosen))


def _yes(params: Mapping[str, str], name: str) -> bool:
    raw = (params.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise QueryError(f"'{name}' must be true or false, not '{params[name]}'.", name)


def _number(params: Mapping[str, str], name: str, low: float, high: float, example: str) -> float | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise QueryError(f"'{name}' must be a number, like {name}={example}; got '{raw}'.", name) from None
    if not (low <= value <= high) or math.isnan(value):
        raise QueryError(f"'{name}' must be between {low:g} and {high:g}; got {raw}.", name)
    return value


def _whole(params: Mapping[str, str], name: str, low: int, high: int, example: str) -> int | None:
    value = _number(params, name, low, high, example)
    if value is not None and value != int(value):
        raise QueryError(f"'{name}' must be a whole number, like {name}={example}.", name)
    return None if value is None else int(value)


def _place(conn: Connection, near: str, geocoder: geocode.Geocoder, now: datetime) -> Located:
    pair = _LAT_LON.match(near)
    if pair:
        lat, lon = float(pair.group(1)), float(pair.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise QueryError(
                f"'{near}' is not a place on Earth: latitude goes from -90 to 90 and longitude "
                "from -180 to 180, like near=51.40,-0.15.",
                "near",
            )
        return Located(lat, lon, POINT, f"{lat:g},{lon:g}")
    try:
        return places.resolve(conn, near, geocoder, now)
    except places.PlaceNotFound as missing:
        raise QueryError(missing.message, "near") from None
    except places.AmbiguousPlace as ambiguous:
        choices = [{"label": choice.label, "near": choice.near} for choice in ambiguous.choices]
        raise QueryError(ambiguous.message, "near", choices) from None


def parse(conn: Connection, params: Mapping[str, str], geocoder: geocode.Geocoder, now: datetime) -> Query:
    """Read and check every parameter; QueryError names the first one that is wrong."""
    query = Query()
    echo = query.echo
    near = (params.get("near") or "").strip()
    radius = _number(params, "radius", 0.0, MAX_RADIUS_KM, "3")
    if near:
        query.located = _place(conn, near, geocoder, now)
        query.lat, query.lon = query.located.position
        if radius == 0:
            raise QueryError("'radius' must be more than 0 km, like radius=3.", "radius")
        query.radius_km = radius if radius is not None else DEFAULT_RADIUS_KM
    elif radius is not None:
        raise QueryError(
            "'radius' needs a place to measure from: add near=<postcode> or near=lat,lon.", "radius"
        )
    # A postcode is echoed as it is normally written ("cr41aa" → "CR4 1AA"), for headings.
    shown_near = (normalise_postcode(near) or near) if near else None
    echo.update(near=shown_near, lat=query.lat, lon=query.lon, radius_km=query.radius_km)
    if query.located is not None:
        # How precisely ``near`` was placed, and its name for a heading: "CR4 (Mitcham)".
        echo["located"] = {"precision": query.located.precision, "label": query.located.label}

    query.categories = _listed(params, "category", _vocabulary("categories"), "category")
    query.days = _listed(params, "day", tuple(DAY_NAMES), "day")
    query.times = _listed(params, "time", tuple(si.TIMES_OF_DAY), "time of day")
    query.audiences = _listed(params, "audience", _vocabulary("audiences"), "audience")
    query.accessibility = _listed(params, "accessibility", _vocabulary("accessibility"), "access feature")
    query.free = _yes(params, "free")
    query.has_space = _yes(params, "has_space")
    query.age = _whole(params, "age", 0, 120, "70")
    query.words = si.fold(params.get("q") or "").split()
    query.limit = _whole(params, "limit", 1, MAX_LIMIT, "20") or DEFAULT_LIMIT
    for name, value in (
        ("category", query.categories),
        ("day", query.days),
        ("time", query.times),
        ("audience", query.audiences),
        ("accessibility", query.accessibility),
        ("free", query.free or None),
        ("has_space", query.has_space or None),
        ("age", query.age),
        ("q", " ".join(query.words) or None),
    ):
        if value:
            echo[name] = value
    echo["limit"] = query.limit
    ignored = sorted(set(params) - set(PARAMETERS))
    if ignored:
        echo["ignored"] = ignored
    return query


# -- the filters -------------------------------------------------------------------------------


def like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern with ``escape="\\"``: its own % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Shape:
    """What decides the SQL of a search; every other part of it is a bound value (:func:`_values`).

    So a statement is built and compiled once per shape, not per request, and both databases
    reuse their prepared statements: a filter that is not given is switched off by its value
    (a day mask of 0, ``free`` false, ``age`` null), not left out, and a circle's squares are
    one bound list. What is left to vary is the number of ids a list filter is given, the
    number of words, a circle too wide to list its squares, and failing sources.
    """

    dialect: str
    near: bool = False
    runs: int = 0  # a wide circle: its squares as this many ranges; 0: as one bound list
    categories: int = 0
    audiences: int = 0
    accessibility: int = 0
    words: int = 0
    failing: bool = False
    # Rows written after the query's moment (a test's clock) are recomputed; see next_start_split.
    checks_next_from: bool = False


def _shape_and_values(
    conn: Connection, query: Query, now: datetime, thresholds: freshness.Thresholds, failing: Collection[int]
) -> tuple[Shape, dict[str, Any]]:
    """The shape of ``query``'s statements and the values they are run with."""
    values: dict[str, Any] = {
        "now": now,
        "expired_before": thresholds.expired_before(now),
        "stale_before": thresholds.stale_before(now),
        "capacity_known_since": thresholds.capacity_known_since(now),
        "days": sum(si.DAY_BITS[day] for day in query.days),
        "times": sum(si.TIMES_OF_DAY[t] for t in query.times),
        "free": query.free,
        "has_space": query.has_space,
        "age": query.age,
        "failing": sorted(failing),
    }
    for name, ids in (
        ("categories", query.categories),
        ("audiences", query.audiences),
        ("accessibility", query.accessibility),
    ):
        values.update({f"{name}_{n}": f"%|{value}|%" for n, value in enumerate(ids)})
    values.update({f"words_{n}": f"%{like_escaped(word)}%" for n, word in enumerate(query.words)})
    near = query.lat is not None and query.lon is not None and query.radius_km is not None
    runs = 0
    if near:
        assert query.lat is not None and query.lon is not None and query.radius_km is not None
        values.update(zip(("x0", "y0", "z0"), si.unit_vector(query.lat, query.lon), strict=True))
        circle = _circle(query.lat, query.lon, query.radius_km)
        values.update(circle)
        runs = sum(name.startswith("low_") for name in circle)
    shape = Shape(
        dialect=conn.dialect.name,
        near=near,
        runs=runs,
        categories=len(query.categories),
        audiences=len(query.audiences),
        accessibility=len(query.accessibility),
        words=len(query.words),
        failing=bool(failing),
        # Near a place the grid index holds next_from, so testing it costs nothing and needs no look.
        checks_next_from=near or si.written_after(conn, now),
    )
    return shape, values


def _circle(lat: float, lon: float, radius_km: float) -> dict[str, Any]:
    """The bound values of a circle: its squares (or, when too many to list, their runs) and chord² limit."""
    values: dict[str, Any] = {"chord_limit": si.chord_limit(radius_km)}
    ranges = si.cell_ranges(lat, lon, radius_km)
    if sum(high - low + 1 for low, high in ranges) > MAX_LISTED_SQUARES:
        for n, (low, high) in enumerate(ranges):
            values.update({f"low_{n}": low, f"high_{n}": high})
    else:
        values["squares"] = [square for low, high in ranges for square in range(low, high + 1)]
    return values


def _filters(shape: Shape) -> list[ColumnElement[bool]]:
    """The conditions on ``search_index`` rows, all values bound.

    In the order SQLite tests them: the cheap tests of the grid index's columns first, the
    distance (a dozen sums and products a row) after them, so a search for a day, a
    category and free activities works it out only for the few rows that meet those; and
    the words last, since they read the table row.
    """
    c = si.index.c
    days, times = bindparam("days", type_=Integer), bindparam("times", type_=Integer)
    free, has_space = bindparam("free", type_=Boolean), bindparam("has_space", type_=Boolean)
    age = bindparam("age", type_=Integer)
    where: list[ColumnElement[bool]] = [
        c.status == "scheduled",
        c.last_verified >= bindparam("expired_before", type_=Date),
    ]
    if shape.near:
        where.append(_in_squares(shape))
    where += [
        or_(days == 0, c.days.op("&")(days) != 0),
        or_(times == 0, c.times.op("&")(times) != 0),
        or_(~free, c.is_free.is_(True)),
        or_(
            age.is_(None),
            and_(or_(c.min_age.is_(None), c.min_age <= age), or_(c.max_age.is_(None), c.max_age >= age)),
        ),
        # Full or waiting-list on recent word is left out; an old or missing word is "unknown" and stays.
        or_(
            ~has_space,
            c.capacity_status.is_(None),
            c.capacity_status.not_in(("full", "waiting-list")),
            c.capacity_at.is_(None),
            c.capacity_at < bindparam("capacity_known_since"),
        ),
        *_has_any(c.categories, "categories", shape.categories),
        *_has_any(c.audiences, "audiences", shape.audiences),
        # Access needs are all needed, not any.
        *(c.accessibility.like(bindparam(f"accessibility_{n}")) for n in range(shape.accessibility)),
    ]
    if shape.near:
        where.append(chord2_from(_bound_point()) <= bindparam("chord_limit", type_=Float))
    where += [c.text.like(bindparam(f"words_{n}"), escape="\\") for n in range(shape.words)]
    return where


def _has_any(column: Any, name: str, count: int) -> list[ColumnElement[bool]]:
    """[``column`` lists any of the ``count`` ids bound as ``<name>_0``, ...], or [] for none."""
    return [or_(*(column.like(bindparam(f"{name}_{n}")) for n in range(count)))] if count else []


# More squares than this (a radius beyond about 25 km) are asked for as ranges instead.
MAX_LISTED_SQUARES = 4096


def in_squares(lat: float, lon: float, radius_km: float) -> ColumnElement[bool]:
    """Rows in the grid squares the circle touches.

    Asked for as ``cell IN (the squares)``, one index lookup per square, which both
    databases answer from the covering index alone (an OR of ranges would send
    PostgreSQL to the table for every row). Wide circles, with thousands of squares,
    are asked for as ranges. (A search binds its squares as one value instead:
    :func:`_in_squares`.)
    """
    cell = si.index.c.cell
    runs = si.cell_ranges(lat, lon, radius_km)
    if sum(high - low + 1 for low, high in runs) > MAX_LISTED_SQUARES:
        return or_(*(cell.between(low, high) for low, high in runs))
    return cell.in_([square for low, high in runs for square in range(low, high + 1)])


def _in_squares(shape: Shape) -> ColumnElement[bool]:
    """Rows in the bound squares: one list, so one statement whatever the place and radius.

    A list of a hundred squares spelled out as ``IN (?, ?, ...)`` is a new statement for
    every length, which SQLite prepares again and psycopg parses again; bound as one
    value it is the same statement every time: an array on PostgreSQL (``= ANY``, still an
    index-only scan of the squares), a JSON list on SQLite (``IN (SELECT value FROM
    json_each(?))``, still one index lookup per square).
    """
    cell = si.index.c.cell
    if shape.runs:
        return or_(*(cell.between(bindparam(f"low_{n}"), bindparam(f"high_{n}")) for n in range(shape.runs)))
    if shape.dialect == "postgresql":
        return cell == any_(bindparam("squares", type_=ARRAY(Integer)))
    listed = func.json_each(bindparam("squares", type_=JSON)).table_valued("value")
    return cell.in_(select(listed.c.value))


def _bound_point() -> tuple[ColumnElement[float], ...]:
    return tuple(bindparam(name, type_=Float) for name in ("x0", "y0", "z0"))


def chord2_from(point: Sequence[Any]) -> ColumnElement[float]:
    """The squared chord from the unit vector ``point`` (numbers or bound values) to each row."""
    x0, y0, z0 = point
    c = si.index.c
    return (c.x - x0) * (c.x - x0) + (c.y - y0) * (c.y - y0) + (c.z - z0) * (c.z - z0)


def chord2_of(query: Query) -> ColumnElement[float]:
    """The squared chord from ``query``'s point to each row, which orders by distance without trigonometry."""
    assert query.lat is not None and query.lon is not None
    return chord2_from(si.unit_vector(query.lat, query.lon))


def _split(shape: Shape) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return si.next_start_split(shape.dialect, near=shape.near, checks_next_from=shape.checks_next_from)


# -- ordering and pages --------------------------------------------------------------------------

# A sort key is (rank, chord², next start, merged id); chord² is 0 when there is no ``near``.
Key = tuple[int, float, datetime, str]
# The bound names of a cursor's key, in the key's order.
AFTER = ("after_rank", "after_chord2", "after_start", "after_id")


def _after(columns: Sequence[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows whose (columns) sort strictly after (values), spelled out so both databases agree."""
    alternatives = []
    for i, column in enumerate(columns):
        equal = [columns[j] == values[j] for j in range(i)]
        alternatives.append(and_(*equal, column > values[i]))
    return or_(*alternatives)


def _encode_cursor(query: Query, key: Key) -> str:
    rank, chord2, start, merged_id = key
    payload = orjson.dumps({"f": query.fingerprint(), "k": [rank, chord2, start.isoformat(), merged_id]})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _decode_cursor(query: Query, cursor: str) -> Key:
    problem = QueryError(
        "This cursor is not one we gave out for this search (the other parameters must stay the same "
        "between pages). Start again without 'cursor'.",
        "cursor",
    )
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        rank, chord2, start, merged_id = payload["k"]
        key = (int(rank), float(chord2), datetime.fromisoformat(start), str(merged_id))
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise problem from None
    if payload.get("f") != query.fingerprint() or key[2].tzinfo is None:
        raise problem
    return key


_FAILING_SOURCES = select(sources.c.id, sources.c.last_success_at).where(
    sources.c.failures > 0, sources.c.last_success_at < bindparam("reachable_since")
)


def _failing_sources(
    conn: Connection, now: datetime, thresholds: freshness.Thresholds
) -> dict[int, datetime]:
    """Sources failing since before SOURCE_UNREACHABLE_DAYS ago → when each last answered.

    Read once per query (there are few sources, and almost always none failing), so the
    ranking below needs no per-row subquery.
    """
    rows = conn.execute(_FAILING_SOURCES, {"reachable_since": thresholds.source_reachable_since(now)})
    return {row.id: row.last_success_at for row in rows}


def _first_rank(shape: Shape) -> ColumnElement[bool]:
    """Rank 0: confirmed by its organiser recently enough, listed by a source that still answers.

    Rank 1: the rest.
    """
    c = si.index.c
    first = and_(c.last_verified >= bindparam("stale_before", type_=Date), c.confirmed.is_(True))
    if shape.failing:
        link = si.index_sources.c
        failing = bindparam("failing", type_=Integer, expanding=True)
        unreachable = and_(
            c.merged_id.in_(select(link.merged_id).where(link.source_id.in_(failing))),
            c.merged_id.not_in(select(link.merged_id).where(link.source_id.not_in(failing))),
        )
        first = and_(first, ~unreachable)
    return first


# Rows past their stored next session sort first in a search near a place, so that all of them
# are read with the page; a limit this much above the page leaves room for them.
RECOMPUTE_ROOM = 16


@lru_cache(maxsize=512)
def _near_statement(shape: Shape, resumes: bool) -> Select[Any]:
    """One scan of the circle for a page near a place: each row's rank and distance in SQL.

    The rows it finds are sorted: those whose stored next session has passed
    (``recompute``) first, then the current ones in the page's order (rank, chord², next
    start, merged id), after the bound cursor when ``resumes``. Of the first ``scan`` of
    them, the first ``limit`` are returned, each with how many there were (``matching``),
    so a first page counts the search up to COUNT_CAP without a second scan or reading
    the rows beyond the page.
    """
    c = si.index.c
    current, passed = _split(shape)
    chord2 = chord2_from(_bound_point()).label("chord2")
    rank = case((_first_rank(shape), 0), else_=1).label("rank")
    if resumes:
        keys = [rank, chord2, c.next_start, c.merged_id]
        current = and_(current, _after(keys, [bindparam(name) for name in AFTER]))
    recompute = passed.label("recompute")
    scanned = (
        select(c.merged_id, c.next_start, chord2, rank, recompute)
        .where(*_filters(shape), or_(passed, current))
        .order_by(recompute.desc(), rank, chord2, c.next_start, c.merged_id)
        .limit(bindparam("scan"))
        .subquery()
    )
    s = scanned.c
    matching = func.count().over().label("matching")
    return (
        select(s.merged_id, s.next_start, s.chord2, s.rank, s.recompute, matching)
        .order_by(s.recompute.desc(), s.rank, s.chord2, s.next_start, s.merged_id)
        .limit(bindparam("limit"))
    )


# A search near a place that keeps most listings (no category, day, time, audience, access
# need or word: each of those keeps a seventh of them or fewer) first reads the circle this
# much narrower, a quarter of its squares: in a city that already holds a page and more than
# COUNT_CAP, and the rest of the circle cannot come before them.
INNER_SHARE = 0.5


def _near_page(
    conn: Connection, query: Query, shape: Shape, values: dict[str, Any], after: Key | None, now: datetime
) -> tuple[list[Key], int | None]:
    """The sort keys of the first ``query.limit + 1`` rows near a place after ``after``, and the count.

    The count is how many items the search finds on every page together (up to just past
    COUNT_CAP) for a first page; None for a later page, which is counted apart.

    A narrower circle answers when its page is full of first-rank rows (any row beyond it
    is farther, so sorts after them all) and, for a first page, it counts past COUNT_CAP.
    """
    assert query.lat is not None and query.lon is not None and query.radius_km is not None
    wanted = query.limit + 1
    keeps_most = not (query.categories or query.audiences or query.accessibility or query.words)
    if keeps_most and not (query.days or query.times) and not shape.runs:
        inner = {**values, **_circle(query.lat, query.lon, query.radius_km * INNER_SHARE)}
        page, counted = _scan(conn, shape, inner, after, wanted, now)
        if len(page) == wanted and page[-1][0] == 0 and (counted is None or counted > COUNT_CAP):
            return page, counted
    return _scan(conn, shape, values, after, wanted, now)


def _scan(
    conn: Connection, shape: Shape, values: dict[str, Any], after: Key | None, wanted: int, now: datetime
) -> tuple[list[Key], int | None]:
    """The sort keys of the first ``wanted`` rows in the bound circle after ``after``, from one scan.

    Also, for a first page, how many items the circle holds (up to just past COUNT_CAP).
    Rows past their stored next session are recomputed from their documents; should there
    be more of them than the limit leaves room for, or should some have no session to come
    and so leave the count short, the scan is run again with larger limits.
    """
    counts = after is None
    limit = wanted + RECOMPUTE_ROOM
    scan = COUNT_CAP + 1 if counts else limit
    statement = _near_statement(shape, after is not None)
    bound = {**values, **(dict(zip(AFTER, after, strict=True)) if after is not None else {})}
    while True:
        rows = conn.execute(statement, {**bound, "scan": max(scan, limit), "limit": limit}).all()
        current: list[Key] = [
            (row.rank, row.chord2, row.next_start, row.merged_id) for row in rows if not row.recompute
        ]
        passed = {row.merged_id: row for row in rows if row.recompute}
        recomputed = _recomputed(conn, passed, now, after)
        matching = rows[0].matching - (len(passed) - len(recomputed)) if rows else 0
        if len(rows) == limit and len(current) < wanted:
            limit *= 4  # more rows to recompute than the limit left room for
        elif counts and rows and rows[0].matching == max(scan, limit) and matching <= COUNT_CAP:
            scan *= 2  # rows with no session to come took counted places
        else:
            break
    page = sorted(current[:wanted] + recomputed)[:wanted]
    return page, matching if counts else None


_ACTIVITIES = select(si.documents.c.merged_id, si.documents.c.activity).where(
    si.documents.c.merged_id.in_(bindparam("ids", expanding=True))
)


def _recomputed(conn: Connection, passed: Mapping[str, Any], now: datetime, after: Key | None) -> list[Key]:
    """The keys of the rows ``passed`` (merged id → row) at their next session after ``now``, if any."""
    if not passed:
        return []
    found = []
    for merged_id, activity in conn.execute(_ACTIVITIES, {"ids": list(passed)}):
        upcoming = next_occurrences(activity, now, 1)
        if upcoming:
            row = passed[merged_id]
            key = (row.rank, row.chord2, upcoming[0].start.astimezone(UTC), merged_id)
            if after is None or key > after:
                found.append(key)
    return found


@lru_cache(maxsize=256)
def _walk_statements(shape: Shape, rank: int, resumes: bool) -> tuple[Select[Any], Select[Any]]:
    """A walk down the next_start index for one rank: (current rows in order, rows to recompute)."""
    c = si.index.c
    ranked = _first_rank(shape) if rank == 0 else ~_first_rank(shape)
    where = [*_filters(shape), ranked]
    is_current, has_passed = _split(shape)
    current = select(c.merged_id, c.next_start).where(*where, is_current)
    if resumes:
        current = current.where(
            _after([c.next_start, c.merged_id], [bindparam("after_start"), bindparam("after_id")])
        )
    recompute = (
        select(c.merged_id, si.documents.c.activity)
        .join(si.documents, si.documents.c.merged_id == c.merged_id)
        .where(*where, has_passed)
    )
    return current.order_by(c.next_start, c.merged_id).limit(bindparam("limit")), recompute


def _walk(
    conn: Connection,
    shape: Shape,
    values: dict[str, Any],
    rank: int,
    after: Key | None,
    wanted: int,
    now: datetime,
) -> list[Key]:
    """Everywhere: the sort keys of the first ``wanted`` rows of ``rank`` after ``after``, in order.

    Rows whose stored next session is current come from SQL in order, ``wanted`` at most,
    without reading a document; the few whose stored next session has passed are
    recomputed here from their documents and merged in.
    """
    ours = (rank, 0.0)
    if after is not None and after[:2] > ours:
        return []
    resumes = after is not None and after[:2] == ours
    current, recompute = _walk_statements(shape, rank, resumes)
    bound = {**values, "limit": wanted}
    if resumes:
        assert after is not None
        bound.update(after_start=after[2], after_id=after[3])
    found: list[Key] = [(rank, 0.0, row.next_start, row.merged_id) for row in conn.execute(current, bound)]
    for row in conn.execute(recompute, bound):
        upcoming = next_occurrences(row.activity, now, 1)
        if upcoming:
            key = (rank, 0.0, upcoming[0].start.astimezone(UTC), row.merged_id)
            if after is None or key > after:
                found.append(key)
    found.sort()
    return found[:wanted]


_DOCUMENTS = (
    select(
        si.index.c.merged_id,
        si.index.c.last_verified,
        si.index.c.placed,
        si.documents.c.activity,
        si.documents.c.provenance,
    )
    .join(si.documents, si.documents.c.merged_id == si.index.c.merged_id)
    .where(si.index.c.merged_id.in_(bindparam("ids", expanding=True)))
)


def _documents(conn: Connection, merged_ids: Sequence[str]) -> dict[str, Any]:
    """What the results show, for a page of merged ids: the activity, its provenance, lastVerified."""
    return {row.merged_id: row for row in conn.execute(_DOCUMENTS, {"ids": list(merged_ids)})}


# A search's total is counted up to this many; past it, "more than 500" says enough and a
# search in a dense city stays as cheap as one in a village.
COUNT_CAP = 500


def count_matching(
    conn: Connection, shape: Shape, values: Mapping[str, Any], now: datetime, cap: int = COUNT_CAP
) -> tuple[int, bool]:
    """How many items the search selects on every page together (at most ``cap``), and whether there are more.

    ``shape`` and ``values`` are the search's (:func:`_shape_and_values`). As the pages
    decide: a row whose stored next session is current counts (in SQL, reading no
    document); one whose stored session has passed counts only if it has another to come.
    A first page near a place counts as it reads (:func:`_near_page`); this is for the rest.
    """
    c = si.index.c
    where = _filters(shape)
    is_current, has_passed = _split(shape)
    counted = select(c.merged_id).where(*where, is_current).limit(cap + 1).subquery()
    total = conn.execute(select(func.count()).select_from(counted), values).scalar_one()
    if total <= cap:
        recompute = (
            select(si.documents.c.activity)
            .join(si.documents, si.documents.c.merged_id == c.merged_id)
            .where(*where, has_passed)
        )
        total += sum(1 for row in conn.execute(recompute, values) if next_occurrences(row.activity, now, 1))
    return min(total, cap), total > cap


def search(
    conn: Connection,
    params: Mapping[str, str],
    *,
    now: datetime,
    geocoder: geocode.Geocoder,
    thresholds: freshness.Thresholds | None = None,
) -> dict[str, Any]:
    """The body of ``GET /api/activities`` for ``params`` (the query string) at ``now``.

    Raises :class:`QueryError` for a parameter a person got wrong, and
    :class:`aggregator.geocode.GeocoderUnavailable` when a postcode service could not be asked.
    ``conn`` may be written to: postcodes looked up elsewhere are remembered.
    """
    thresholds = thresholds or freshness.Thresholds()
    now = now.astimezone(UTC)
    query = parse(conn, params, geocoder, now)
    after = _decode_cursor(query, params["cursor"]) if params.get("cursor") else None
    failing = _failing_sources(conn, now, thresholds)
    shape, values = _shape_and_values(conn, query, now, thresholds, failing)
    counted: int | None = None
    if shape.near:
        # Near a place: one scan of the circle computes each row's rank and the order sorts on it.
        page, counted = _near_page(conn, query, shape, values, after, now)
    else:
        # Everywhere: one walk down the next_start index per rank, stopping once the page is full.
        page = []
        for rank in (0, 1):
            page += _walk(conn, shape, values, rank, after, query.limit + 1 - len(page), now)
            if len(page) > query.limit:
                break
    more = len(page) > query.limit
    page = page[: query.limit]
    shown = _documents(conn, [key[3] for key in page])
    known = _sources_of(conn, [row.provenance for row in shown.values()])
    # Each statement reads the latest committed state (SQLite outside a write, PostgreSQL's
    # READ COMMITTED): an item removed since its key was read is left out of this page.
    items = [
        _item(shown[key[3]], now, thresholds, known, failing, key[1] if query.lat is not None else None)
        for key in page
        if key[3] in shown
    ]
    if query.located is not None and query.located.approximate:
        for item in items:  # measured from the middle of an area or town: no distance is exact
            item["distance_approximate"] = True
    # One page holding everything needs no count; otherwise the same filters are counted, capped.
    if after is None and not more:
        total, lower_bound = len(items), False
    elif counted is not None:
        total, lower_bound = min(counted, COUNT_CAP), counted > COUNT_CAP
    else:
        total, lower_bound = count_matching(conn, shape, values, now)
    return {
        "items": items,
        "next_cursor": _encode_cursor(query, page[-1]) if more else None,
        "total": total,
        "total_is_lower_bound": lower_bound,
        "query": query.echo,
    }


def get(
    conn: Connection, activity_id: str, *, now: datetime, thresholds: freshness.Thresholds | None = None
) -> dict[str, Any] | None:
    """One listing by the id of any of its copies (or a ``sameAs`` URI), expired ones too; None if unknown."""
    thresholds = thresholds or freshness.Thresholds()
    merged_id = conn.execute(
        select(merge_keys.c.merged_id).where(merge_keys.c.key == f"uri:{activity_id}").limit(1)
    ).scalar()
    if merged_id is None:
        return None
    row = _documents(conn, [str(merged_id)]).get(str(merged_id))
    if row is None:
        return None
    now = now.astimezone(UTC)
    known = _sources_of(conn, [row.provenance])
    return _item(row, now, thresholds, known, _failing_sources(conn, now, thresholds), None)


# -- one result ---------------------------------------------------------------------------------


def walking_minutes(distance: float) -> int:
    """Minutes on foot at 4.8 km/h along a route 1.3 times the straight-line distance."""
    return math.ceil(distance * ROUTE_FACTOR / WALKING_KMH * 60)


_SOURCES = select(sources.c.id, sources.c.name, sources.c.checked_by).where(
    sources.c.id.in_(bindparam("ids", expanding=True))
)


def _sources_of(conn: Connection, provenances: Sequence[Sequence[Mapping[str, Any]]]) -> dict[int, Any]:
    """Each source the provenances name: its ``name`` and who vouches for it (``checked_by``)."""
    wanted = {entry.get("source_id") for provenance in provenances for entry in provenance}
    wanted.discard(None)
    if not wanted:
        return {}
    return {row.id: row for row in conn.execute(_SOURCES, {"ids": list(wanted)})}


def vouched_by(provenance: Sequence[Mapping[str, Any]], known: Mapping[int, Any]) -> list[str]:
    """Who has checked the item's sources (an operator marking a source "checked by us"), once each."""
    names = (
        getattr(known.get(entry["source_id"]), "checked_by", None)
        for entry in provenance
        if "source_id" in entry
    )
    return list(dict.fromkeys(name for name in names if name))


def _unreachable_since(
    provenance: Sequence[Mapping[str, Any]], failing: Mapping[int, datetime]
) -> datetime | None:
    """When the item's sources last answered, if every one of them is failing (as the ranking says)."""
    listed = {entry["source_id"] for entry in provenance if entry.get("source_id") is not None}
    if not listed or not listed <= failing.keys():
        return None
    return max(failing[source_id] for source_id in listed)


def _item(
    row: Any,
    now: datetime,
    thresholds: freshness.Thresholds,
    known: Mapping[int, Any],
    failing: Mapping[int, datetime],
    chord2: float | None,
) -> dict[str, Any]:
    activity = dict(row.activity)
    capacity = freshness.current_capacity(activity, now, thresholds)
    if capacity is not None:
        activity["capacity"] = capacity
    distance = None if chord2 is None else si.distance_km(chord2)
    return {
        "activity": activity,
        "distance_km": None if distance is None else round(distance, 2),
        # Where the item is on the map: at its postcode ("postcode"), or only somewhere in its
        # postcode "sector" or "district"; null when it gives its own point (or has no place).
        "placed": row.placed,
        "distance_approximate": distance is not None and row.placed in APPROXIMATE,
        "walking_minutes": None if distance is None else walking_minutes(distance),
        "next_occurrences": [
            {"start": session.start.isoformat(), "end": session.end.isoformat()}
            for session in next_occurrences(activity, now, 3)
        ],
        "freshness": freshness.describe(
            row.last_verified,
            now,
            thresholds,
            _unreachable_since(row.provenance, failing),
            confirmed=freshness.confirmed_by_organiser(row.activity),
        ),
        "vouchedBy": vouched_by(row.provenance, known),
        "sources": [
            {
                "name": getattr(known.get(entry.get("source_id")), "name", None) or entry.get("source_url"),
                "url": entry.get("source_url"),
                "itemId": entry.get("item_id"),
                "id": entry.get("source_id"),  # its page for people: /sources/<id>
            }
            for entry in row.provenance
        ],
    }
