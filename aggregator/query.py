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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, case, literal, or_, select
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


def _has_any(column: Any, ids: list[str]) -> ColumnElement[bool]:
    return or_(*(column.like(f"%|{value}|%") for value in ids))


def _filters(query: Query, now: datetime, thresholds: freshness.Thresholds) -> list[ColumnElement[bool]]:
    c = si.index.c
    where: list[ColumnElement[bool]] = [
        c.status == "scheduled",
        c.last_verified >= thresholds.expired_before(now),
    ]
    if query.lat is not None and query.lon is not None and query.radius_km is not None:
        where.append(in_squares(query.lat, query.lon, query.radius_km))
        where.append(chord2_of(query) <= si.chord_limit(query.radius_km))
    if query.categories:
        where.append(_has_any(c.categories, query.categories))
    if query.audiences:
        where.append(_has_any(c.audiences, query.audiences))
    for feature in query.accessibility:  # access needs are all needed, not any
        where.append(c.accessibility.like(f"%|{feature}|%"))
    if query.days:
        where.append(c.days.op("&")(sum(si.DAY_BITS[day] for day in query.days)) != 0)
    if query.times:
        where.append(c.times.op("&")(sum(si.TIMES_OF_DAY[t] for t in query.times)) != 0)
    if query.free:
        where.append(c.is_free.is_(True))
    if query.age is not None:
        where.append(or_(c.min_age.is_(None), c.min_age <= query.age))
        where.append(or_(c.max_age.is_(None), c.max_age >= query.age))
    if query.has_space:
        # Full or waiting-list on recent word is left out; an old or missing word is "unknown" and stays.
        where.append(
            or_(
                c.capacity_status.is_(None),
                c.capacity_status.not_in(("full", "waiting-list")),
                c.capacity_at.is_(None),
                c.capacity_at < thresholds.capacity_known_since(now),
            )
        )
    for word in query.words:
        where.append(c.text.like(f"%{like_escaped(word)}%", escape="\\"))
    return where


# More squares than this (a radius beyond about 25 km) are asked for as ranges instead.
MAX_LISTED_SQUARES = 4096


def in_squares(lat: float, lon: float, radius_km: float) -> ColumnElement[bool]:
    """Rows in the grid squares the circle touches.

    Asked for as ``cell IN (the squares)``: one statement shape whatever the place and
    radius, so SQLAlchemy compiles it once, and one index lookup per square, which both
    databases answer from the covering index alone (an OR of ranges would send
    PostgreSQL to the table for every row). Wide circles, with thousands of squares,
    are asked for as ranges.
    """
    cell = si.index.c.cell
    runs = si.cell_ranges(lat, lon, radius_km)
    if sum(high - low + 1 for low, high in runs) > MAX_LISTED_SQUARES:
        return or_(*(cell.between(low, high) for low, high in runs))
    return cell.in_([square for low, high in runs for square in range(low, high + 1)])


def chord2_of(query: Query) -> ColumnElement[float]:
    """The squared chord from ``query``'s point to each row, which orders by distance without trigonometry."""
    assert query.lat is not None and query.lon is not None
    x0, y0, z0 = si.unit_vector(query.lat, query.lon)
    c = si.index.c
    return (c.x - x0) * (c.x - x0) + (c.y - y0) * (c.y - y0) + (c.z - z0) * (c.z - z0)


# -- ordering and pages --------------------------------------------------------------------------

# A sort key is (rank, chord², next start, merged id); chord² is 0 when there is no ``near``.
Key = tuple[int, float, datetime, str]


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


def _failing_sources(
    conn: Connection, now: datetime, thresholds: freshness.Thresholds
) -> dict[int, datetime]:
    """Sources failing since before SOURCE_UNREACHABLE_DAYS ago → when each last answered.

    Read once per query (there are few sources, and almost always none failing), so the
    ranking below needs no per-row subquery.
    """
    rows = conn.execute(
        select(sources.c.id, sources.c.last_success_at).where(
            sources.c.failures > 0, sources.c.last_success_at < thresholds.source_reachable_since(now)
        )
    )
    return {row.id: row.last_success_at for row in rows}


def _first_rank(
    now: datetime, thresholds: freshness.Thresholds, failing: Mapping[int, datetime]
) -> ColumnElement[bool]:
    """Rank 0: confirmed by its organiser recently enough, listed by a source that still answers.

    Rank 1: the rest.
    """
    c = si.index.c
    first = and_(c.last_verified >= thresholds.stale_before(now), c.confirmed.is_(True))
    if failing:
        link = si.index_sources.c
        unreachable = and_(
            c.merged_id.in_(select(link.merged_id).where(link.source_id.in_(failing))),
            c.merged_id.not_in(select(link.merged_id).where(link.source_id.not_in(failing))),
        )
        first = and_(first, ~unreachable)
    return first


def _candidates(
    conn: Connection,
    query: Query,
    where: list[ColumnElement[bool]],
    rank: int | ColumnElement[int],
    after: Key | None,
    wanted: int,
    now: datetime,
    split: tuple[ColumnElement[bool], ColumnElement[bool]],
) -> list[Key]:
    """The sort keys of the first ``wanted`` rows after ``after``, in order.

    ``rank`` is the rank of every row ``where`` selects, or the SQL that computes each
    row's, so that one scan serves both ranks.

    Rows whose stored next session is current come from SQL in order, ``wanted`` at most,
    without reading a document; the few whose stored next session has passed are
    recomputed here from their documents and merged in.
    """
    c = si.index.c
    near = query.lat is not None
    chord2 = (chord2_of(query) if near else literal(0.0)).label("chord2")
    ranked = (literal(rank) if isinstance(rank, int) else rank).label("rank")
    is_current, has_passed = split
    # Key positions decided in SQL: the rank when it is computed, chord² when there is ``near``
    # (without it every chord² is 0, and leaving it out lets the next_start index serve the order).
    decided = [0] * isinstance(rank, ColumnElement) + [1] * near + [2, 3]
    keys: list[ColumnElement[Any]] = [ranked, chord2, c.next_start, c.merged_id]
    order = [keys[i] for i in decided]
    fixed = [i for i in range(2) if i not in decided]
    # A rank computed in SQL is among the decided positions, so never in ``ours``.
    ours: tuple[float, ...] = tuple((rank if isinstance(rank, int) else 0, 0.0)[i] for i in fixed)
    if after is not None and tuple(after[i] for i in fixed) > ours:
        return []
    current = select(c.merged_id, c.next_start, chord2, ranked).where(*where, is_current)
    if after is not None and tuple(after[i] for i in fixed) == ours:
        current = current.where(_after(order, [after[i] for i in decided]))
    found = [
        (row.rank, row.chord2, row.next_start, row.merged_id)
        for row in conn.execute(current.order_by(*order).limit(wanted))
    ]
    recompute = (
        select(c.merged_id, chord2, ranked, si.documents.c.activity)
        .join(si.documents, si.documents.c.merged_id == c.merged_id)
        .where(*where, has_passed)
    )
    for row in conn.execute(recompute):
        upcoming = next_occurrences(row.activity, now, 1)
        if upcoming:
            key = (row.rank, row.chord2, upcoming[0].start.astimezone(UTC), row.merged_id)
            if after is None or key > after:
                found.append(key)
    found.sort()
    return found[:wanted]


def _documents(conn: Connection, merged_ids: Sequence[str]) -> dict[str, Any]:
    """What the results show, for a page of merged ids: the activity, its provenance, lastVerified."""
    c, d = si.index.c, si.documents.c
    rows = conn.execute(
        select(c.merged_id, c.last_verified, c.placed, d.activity, d.provenance)
        .join(si.documents, d.merged_id == c.merged_id)
        .where(c.merged_id.in_(merged_ids))
    )
    return {row.merged_id: row for row in rows}


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
    where = _filters(query, now, thresholds)
    failing = _failing_sources(conn, now, thresholds)
    split = si.next_start_split(conn, now, near=query.lat is not None)
    first = _first_rank(now, thresholds, failing)
    page: list[Key] = []
    if query.lat is not None:
        # Near a place: one scan of the circle computes each row's rank and the order sorts on it.
        rank: int | ColumnElement[int] = case((first, 0), else_=1)
        page = _candidates(conn, query, where, rank, after, query.limit + 1, now, split)
    else:
        # Everywhere: one walk down the next_start index per rank, stopping once the page is full.
        for rank, ranked in ((0, first), (1, ~first)):
            wanted = query.limit + 1 - len(page)
            page += _candidates(conn, query, [*where, ranked], rank, after, wanted, now, split)
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
    return {
        "items": items,
        "next_cursor": _encode_cursor(query, page[-1]) if more else None,
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


def _sources_of(conn: Connection, provenances: Sequence[Sequence[Mapping[str, Any]]]) -> dict[int, Any]:
    """Each source the provenances name: its ``name`` and who vouches for it (``checked_by``)."""
    wanted = {entry.get("source_id") for provenance in provenances for entry in provenance}
    wanted.discard(None)
    if not wanted:
        return {}
    columns = select(sources.c.id, sources.c.name, sources.c.checked_by)
    return {row.id: row for row in conn.execute(columns.where(sources.c.id.in_(wanted)))}


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
            }
            for entry in row.provenance
        ],
    }
