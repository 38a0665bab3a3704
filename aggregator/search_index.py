"""The search index: one row per merged activity, shaped for the query API.

The merge keeps it current inside its own transaction (:func:`reindex_many`, :func:`remove_many`),
so a query never sees a merged item without its row or the other way round.

Why a radius query stays fast at a million rows, on SQLite and PostgreSQL alike
-------------------------------------------------------------------------------
There is no spatial extension to lean on, so each row carries ``cell``: the number of
the 0.01° by 0.01° grid square its point falls in (about 1.1 km by 0.7 km in Britain),
numbered row-major: ``row * COLUMNS + column``. The squares a circle can touch form,
in each grid row, one run of consecutive numbers (:func:`cell_ranges`: one run per grid
row, each as wide as the circle is in that row; 10 runs, about 130 squares, for the
default 5 km in Britain), so a radius query asks the B-tree for those squares only
(``aggregator.query`` lists them, or gives the runs as ranges for a wide circle), never
the whole table. Small squares matter where listings are dense: the squares of a 5 km
circle cover about 100 km², against the 230 km² of the 0.05° squares this index had
before. Column numbers run from -180° eastward, so
the 0° meridian through London is an ordinary boundary between two columns; only the
180° meridian needs its run split in two.

The exact test then needs no trigonometry in SQL (SQLite has none by default): each row
also stores its point as a unit vector ``(x, y, z)``. The squared straight-line (chord)
distance between two unit vectors is plain arithmetic, and it grows strictly with the
great-circle distance (chord = 2·sin(d / 2R)), so ``chord² <= limit`` is the exact
haversine test and ``ORDER BY chord²`` is the exact distance order.

The ``cell`` index (``ix_search_index_near``) also carries the unit vector, ``next_start``,
the columns the rank and the filters read (all but the free text of ``q``) and the merged
id, so a query's distance test, filters, rank and order are decided inside the index: a
dense circle's thousands of entries cost no table row each. Its rows stay small, because
the documents a result shows live in their own table (``search_documents``) and are read
for one page only.

Placing an item without its own map position
--------------------------------------------
An item that gives no geo point is placed by its postcode: exactly when the postcodes
table knows it (``placed`` = "postcode"), else at the middle of its postcode sector or
district as far as the aggregator knows them (``placed`` = "sector" or "district": the
operator's postcode file, else the postcodes of the other listings indexed there), so
a near query still finds it, its distance marked approximate. ``district`` (the outward
code) is indexed for that, and ``place`` (the folded ``addressLocality``) answers a search
by town name. Rows that stay without a place are the source pages' "cannot be placed".

Next occurrence
---------------
``next_start`` is the first session after the moment the row was written
(``next_from``). It stays exact for any later query time until that session starts;
rows past it are recomputed at query time (``aggregator.query``, :func:`next_start_split`),
and :func:`roll_forward` rewrites them in batches so there are few to recompute.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Date,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from aggregator import geocode
from aggregator.freshness import capacity_stated_at, confirmed_by_organiser
from aggregator.store import chunks, merged, metadata
from federation.clock import utcnow
from federation.db import UTCDateTime, lock_schema
from federation.geocoding import (
    DISTRICT,
    POSTCODE,
    SECTOR,
    Centroids,
    district_of,
    files_of,
    fold_place,
    locate_postcode,
)
from schema import next_occurrences, normalise_postcode
from schema.price import is_free
from schema.schedule import LOCAL_ZONE, WEEKDAYS

__all__ = [
    "CELL_DEGREES",
    "EARTH_RADIUS_KM",
    "TIMES_OF_DAY",
    "cell_of",
    "cell_ranges",
    "chord_limit",
    "distance_km",
    "documents",
    "index",
    "index_sources",
    "next_start_split",
    "rebuild",
    "reindex",
    "reindex_many",
    "remove",
    "remove_many",
    "roll_forward",
    "unit_vector",
    "written_after",
]

log = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088
CELL_DEGREES = 0.01
COLUMNS = round(360 / CELL_DEGREES)
ROWS = round(180 / CELL_DEGREES)

# Bit flags, so "any of these days" is one ``days & mask != 0`` on both databases.
DAY_BITS = {day.lower(): 1 << n for n, day in enumerate(WEEKDAYS)}
TIMES_OF_DAY = {"morning": 1, "afternoon": 2, "evening": 4}

index = Table(
    "search_index",
    metadata,
    Column("merged_id", Text, primary_key=True),  # the merged item's key in the store, as text
    Column("lat", Float),
    Column("lon", Float),
    Column("x", Float),
    Column("y", Float),
    Column("z", Float),
    Column("cell", Integer),
    Column("own_geo", Boolean, nullable=False),  # False: placed by its postcode
    Column("postcode", String(8)),  # normalised, e.g. "CR4 1HT"
    Column("days", Integer, nullable=False),  # DAY_BITS
    Column("times", Integer, nullable=False),  # TIMES_OF_DAY
    Column("is_free", Boolean, nullable=False),
    Column("min_age", Integer),
    Column("max_age", Integer),
    # "|walking|lunch-club|": LIKE '%|walking|%' finds one id, and ids never contain | % or _.
    Column("categories", Text, nullable=False),
    Column("audiences", Text, nullable=False),
    Column("accessibility", Text, nullable=False),
    Column("capacity_status", String(16)),
    Column("capacity_at", UTCDateTime),
    Column("last_verified", Date, nullable=False),
    Column("confirmed", Boolean, nullable=False),  # False: lastVerified is only our harvest date
    Column("status", String(16), nullable=False),
    Column("text", Text, nullable=False),  # name, organiser, place, description, folded: for ``q``
    Column("next_start", UTCDateTime),  # null: no session after next_from
    Column("next_from", UTCDateTime, nullable=False),
    # Added by revision 0007, so last (an upgraded table has them last too).
    Column("district", String(4)),  # the postcode's outward code, "CR4": areas are placed by it
    Column("placed", String(8)),  # placed by its postcode: "postcode", "sector" or "district"; else null
    Column("place", Text),  # fold_place(addressLocality), "colliers wood": near=<town> finds it
)

# The documents a result shows, kept apart so that index rows stay small: a radius query
# reads thousands of index rows and only a page of documents.
documents = Table(
    "search_documents",
    metadata,
    Column("merged_id", Text, primary_key=True),
    Column("activity", JSON, nullable=False),
    Column("provenance", JSON, nullable=False),
)
# Which sources list each row's activity, so a query can tell when all of them have gone quiet.
index_sources = Table(
    "search_index_sources",
    metadata,
    Column("merged_id", Text, primary_key=True),
    Column("source_id", Integer, primary_key=True),
)
Index("ix_search_index_sources_source_id", index_sources.c.source_id)
# Covering: a radius query (``aggregator.query``) is answered from this index alone — the
# grid ranges, the distance test, the order, the rank and every filter but ``q`` — so the
# thousands of entries a dense town puts in a circle cost no table row each.
NEAR_COLUMNS = (
    "cell", "x", "y", "z", "next_start", "status", "last_verified", "confirmed",
    "days", "times", "is_free", "min_age", "max_age", "capacity_status", "capacity_at",
    "categories", "audiences", "accessibility", "next_from", "merged_id",
)  # fmt: skip
Index("ix_search_index_near", *(index.c[name] for name in NEAR_COLUMNS))
Index("ix_search_index_next_start", index.c.next_start)
Index("ix_search_index_next_from", index.c.next_from)
Index("ix_search_index_postcode", index.c.postcode)
Index("ix_search_index_district", index.c.district, index.c.place)
Index("ix_search_index_place", index.c.place)


# -- geometry ----------------------------------------------------------------------------------


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    """The point on the unit sphere, for chord distances in plain SQL arithmetic."""
    phi, lam = math.radians(lat), math.radians(lon)
    return math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)


def chord_limit(radius_km: float) -> float:
    """The squared chord length of a great-circle distance of ``radius_km``."""
    return (2 * math.sin(min(radius_km / EARTH_RADIUS_KM, math.pi) / 2)) ** 2


def distance_km(chord2: float) -> float:
    """The great-circle distance whose squared chord is ``chord2`` (the haversine distance)."""
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(max(chord2, 0.0)) / 2))


def _grid_row(lat: float) -> int:
    return min(ROWS - 1, max(0, math.floor((lat + 90) / CELL_DEGREES)))


def _grid_column(lon: float) -> int:
    return math.floor((lon + 180) / CELL_DEGREES) % COLUMNS


def cell_of(lat: float, lon: float) -> int:
    """The grid square number of a point."""
    return _grid_row(lat) * COLUMNS + _grid_column(lon)


def cell_ranges(lat: float, lon: float, radius_km: float) -> list[tuple[int, int]]:
    """Inclusive runs of square numbers that together cover every point within ``radius_km``.

    One run per grid row (two where it crosses 180°), each as wide as the circle is within
    that row's band of latitude, so the runs follow the circle rather than its bounding
    box. The latitude span is exact (r / R radians); a circle reaching a pole takes
    whole rows.
    """
    angle = min(radius_km / EARTH_RADIUS_KM, math.pi)
    dlat = math.degrees(angle)
    low, high = _grid_row(lat - dlat), _grid_row(lat + dlat)
    if lat + dlat >= 90 or lat - dlat <= -90:
        return [(row * COLUMNS, row * COLUMNS + COLUMNS - 1) for row in range(low, high + 1)]
    runs = []
    for row in range(low, high + 1):
        south = max(row * CELL_DEGREES - 90, lat - dlat)
        north = min((row + 1) * CELL_DEGREES - 90, lat + dlat)
        dlon = _half_width(lat, angle, south, north) + _MARGIN_DEGREES
        first = math.floor((lon - dlon + 180) / CELL_DEGREES)
        last = math.floor((lon + dlon + 180) / CELL_DEGREES)
        if last - first + 1 >= COLUMNS:
            spans = [(0, COLUMNS - 1)]
        elif first < 0:  # across 180°: the run wraps to the east end of the row
            spans = [(first + COLUMNS, COLUMNS - 1), (0, last)]
        elif last >= COLUMNS:
            spans = [(first, COLUMNS - 1), (0, last - COLUMNS)]
        else:
            spans = [(first, last)]
        runs += [(row * COLUMNS + a, row * COLUMNS + b) for a, b in spans]
    return runs


# Rounding in the trigonometry below must never leave out a point on the circle's edge.
_MARGIN_DEGREES = 1e-7


def _half_width(lat: float, angle: float, south: float, north: float) -> float:
    """Degrees of longitude either side of ``lat`` that the circle reaches between two latitudes.

    On the circle, cos Δλ = (cos r − sin φ sin φ0) / (cos φ cos φ0); Δλ is largest at
    φ = asin(sin φ0 / cos r), so within the band it is largest at the latitude of the
    band nearest that one. 180 when the circle wraps the whole way round.
    """
    centre = math.radians(lat)
    widest = math.asin(max(-1.0, min(1.0, math.sin(centre) / math.cos(angle))))
    phi = min(max(widest, math.radians(south)), math.radians(north))
    denominator = math.cos(phi) * math.cos(centre)
    if denominator <= 1e-12:
        return 180.0
    cosine = (math.cos(angle) - math.sin(phi) * math.sin(centre)) / denominator
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def _placed(position: tuple[float, float] | None) -> dict[str, Any]:
    """The geo columns of a row at ``position`` (all null when it has none)."""
    if position is None:
        return {"lat": None, "lon": None, "x": None, "y": None, "z": None, "cell": None}
    lat, lon = position
    x, y, z = unit_vector(lat, lon)
    return {"lat": lat, "lon": lon, "x": x, "y": y, "z": z, "cell": cell_of(lat, lon)}


# -- what a row says about an activity ---------------------------------------------------------


def _local_starts(activity: Mapping[str, Any]) -> Iterable[tuple[int, time]]:
    """(weekday number, local start time) of each way the activity takes place."""
    if activity.get("type") == "Event":
        start = _in_zone(datetime.fromisoformat(activity["startDate"]), LOCAL_ZONE)
        if start is not None:
            yield start.weekday(), start.time()
        return
    for entry in activity.get("schedule") or ():
        starts_at = time.fromisoformat(entry["startTime"])
        for day in entry.get("byDay") or ():
            yield WEEKDAYS.index(day), starts_at


def _in_zone(when: datetime, zone: tzinfo) -> datetime | None:
    """``when`` in ``zone``, or None for an instant at the ends of the calendar with no place there."""
    try:
        return when.astimezone(zone)
    except (OverflowError, ValueError):
        return None


def time_of_day(start: time) -> str:
    """Morning before noon, afternoon until five, evening from five."""
    if start.hour < 12:
        return "morning"
    if start.hour < 17:
        return "afternoon"
    return "evening"


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _strip_accents(run: re.Match[str]) -> str:
    decomposed = unicodedata.normalize("NFKD", run.group())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold(text: str) -> str:
    """Text as ``q`` matches it: case and accents do not matter ("Café" finds "cafe").

    Only the non-ASCII runs are decomposed: ASCII has nothing to take apart, and a
    harvest folds every description it indexes.
    """
    return _NON_ASCII.sub(_strip_accents, text).casefold()


def _bars(ids: Iterable[str]) -> str:
    return "|" + "|".join(ids) + "|"


def _row(
    activity: Mapping[str, Any],
    postcode: str | None,
    position: tuple[float, float] | None,
    own_geo: bool,
    now: datetime,
):
    location = activity.get("location") or {}
    price = activity.get("price") or {}
    ages = activity.get("ageRange") or {}
    capacity = activity.get("capacity") or {}
    starts = list(_local_starts(activity))
    upcoming = next_occurrences(activity, now, 1)
    stated = _capacity_stated_at(activity)
    text = " ".join(
        part
        for part in (
            activity.get("name"),
            (activity.get("organizer") or {}).get("name"),
            location.get("name"),
            (location.get("address") or {}).get("addressLocality"),
            activity.get("description"),
        )
        if part
    )
    locality = (location.get("address") or {}).get("addressLocality")
    return {
        **_placed(position),
        "own_geo": own_geo,
        "postcode": postcode,
        "district": district_of(postcode) if postcode else None,
        "placed": POSTCODE if position is not None and not own_geo else None,
        "place": (fold_place(locality) or None) if isinstance(locality, str) else None,
        "days": sum({1 << day for day, _ in starts}),
        "times": sum({TIMES_OF_DAY[time_of_day(start)] for _, start in starts}),
        "is_free": is_free(price),
        "min_age": ages.get("min"),
        "max_age": ages.get("max"),
        "categories": _bars(activity.get("categories") or ()),
        "audiences": _bars(activity.get("audiences") or ()),
        "accessibility": _bars(location.get("accessibility") or ()),
        "capacity_status": capacity.get("status"),
        "capacity_at": _in_zone(stated, UTC) if stated else None,
        "last_verified": date.fromisoformat(activity["lastVerified"]),
        "confirmed": confirmed_by_organiser(activity),
        "status": activity.get("status") or "scheduled",
        "text": fold(text),
        "next_start": upcoming[0].start.astimezone(UTC) if upcoming else None,
        "next_from": now,
    }


def _capacity_stated_at(activity: Mapping[str, Any]) -> datetime | None:
    stated = capacity_stated_at(activity)
    return stated if stated is not None and stated.tzinfo is not None else None


def _postcode(activity: Mapping[str, Any]) -> str | None:
    raw = (((activity.get("location") or {}).get("address") or {}).get("postalCode")) or ""
    return normalise_postcode(raw)


def _own_position(activity: Mapping[str, Any]) -> tuple[float, float] | None:
    geo = (activity.get("location") or {}).get("geo") or {}
    if geo.get("latitude") is None or geo.get("longitude") is None:
        return None
    return float(geo["latitude"]), float(geo["longitude"])


# -- keeping it current -------------------------------------------------------------------------


def reindex(
    conn: Connection,
    merged_id: int | str,
    activity: Mapping[str, Any],
    provenance: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> None:
    """Write (or rewrite) the row of one merged activity, in the caller's transaction."""
    reindex_many(conn, [(merged_id, activity, provenance)], now=now)


def reindex_many(
    conn: Connection,
    items: Iterable[tuple[int | str, Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    *,
    now: datetime | None = None,
    unindexed: Collection[int | str] = (),
) -> None:
    """Write (or rewrite) the rows of many merged activities ``(merged_id, activity, provenance)``.

    A harvest page's worth costs a fixed number of statements, not a few per item, since
    the merge calls this inside every page's transaction. ``unindexed`` are merged ids
    known to have no rows yet (made in this transaction), so none are looked for to replace.

    An item without geo is placed at its postcode if the postcodes table knows it (no
    network call here: this runs inside a harvest transaction). An item with both a
    postcode and geo teaches the table that postcode (the latest such item's word
    counts), and places every row that was waiting for it.
    """
    now = now or utcnow()
    latest = {str(merged_id): (activity, provenance) for merged_id, activity, provenance in items}
    if not latest:
        return
    located = {key: (_postcode(activity), _own_position(activity)) for key, (activity, _) in latest.items()}
    taught = {postcode: position for postcode, position in located.values() if postcode and position}
    learned = geocode.learn_many(conn, taught, now)
    _place_postcodes(conn, {postcode: (POSTCODE, taught[postcode]) for postcode in learned})
    waiting = {postcode for postcode, position in located.values() if postcode and position is None}
    positions = geocode.known_many(conn, waiting)

    rows, docs, listed = [], [], []
    for key, (activity, provenance) in latest.items():
        postcode, position = located[key]
        own_geo = position is not None
        if position is None and postcode is not None:
            position = positions.get(postcode)
        rows.append({"merged_id": key, **_row(activity, postcode, position, own_geo, now)})
        docs.append({"merged_id": key, "activity": dict(activity), "provenance": list(provenance)})
        source_ids = {entry["source_id"] for entry in provenance if entry.get("source_id") is not None}
        listed += [{"merged_id": key, "source_id": source_id} for source_id in sorted(source_ids)]
    remove_many(conn, latest.keys() - {str(merged_id) for merged_id in unindexed})
    conn.execute(insert(index), rows)
    conn.execute(insert(documents), docs)
    if listed:
        conn.execute(insert(index_sources), listed)
    unplaced = {row["postcode"] for row in rows if row["cell"] is None and row["postcode"]}
    if unplaced:  # no file or service here (a harvest's transaction): the other listings' areas
        areas = area_centroids(conn, {district_of(postcode) for postcode in unplaced})
        placements = {postcode: _in_area(postcode, areas.get) for postcode in unplaced}
        _place_postcodes(conn, {code: found for code, found in placements.items() if found is not None})


def remove(conn: Connection, merged_id: int | str) -> None:
    """Drop the row of a merged activity that no source lists any more."""
    remove_many(conn, [merged_id])


def remove_many(conn: Connection, merged_ids: Iterable[int | str]) -> None:
    """Drop the rows of merged activities, a few statements for any number of them."""
    for chunk in chunks(str(merged_id) for merged_id in merged_ids):
        for table in (index_sources, documents, index):
            conn.execute(delete(table).where(table.c.merged_id.in_(chunk)))


def place_postcode(
    conn: Connection, postcode: str, position: tuple[float, float] | None, placed: str = POSTCODE
) -> None:
    """Put the rows that rely on ``postcode`` for their place at ``position``.

    ``placed`` says how precisely: at the postcode itself, or only at its sector or district.
    """
    conn.execute(
        update(index)
        .where(index.c.postcode == postcode, index.c.own_geo.is_(False))
        .values(**_placed(position), placed=placed if position is not None else None)
    )


def waiting_for(conn: Connection, postcode: str) -> bool:
    """Whether a row relying on ``postcode`` for its place is not yet placed at it exactly."""
    waiting = (
        select(index.c.merged_id)
        .where(index.c.postcode == postcode, index.c.own_geo.is_(False))
        .where(or_(index.c.placed.is_(None), index.c.placed != POSTCODE))
        .limit(1)
    )
    return conn.execute(waiting).first() is not None


def area_centroids(conn: Connection, districts: Iterable[str]) -> Centroids:
    """The middles of the sectors and districts ``districts`` cover, from the rows placed exactly there.

    Each postcode counts once (at the average of its rows), and rows placed only at an
    area do not count, so an area's middle never feeds on itself.
    """
    c = index.c
    found = Centroids()
    for chunk in chunks(set(districts)):
        rows = conn.execute(
            select(c.postcode, func.avg(c.lat), func.avg(c.lon))
            .where(c.district.in_(chunk), c.cell.is_not(None), or_(c.placed.is_(None), c.placed == POSTCODE))
            .group_by(c.postcode)
        )
        for postcode, lat, lon in rows:
            found.add(postcode, (float(lat), float(lon)))
    return found


def area_position(
    conn: Connection, code: str, geocoder: geocode.Geocoder, known: Centroids | None = None
) -> tuple[float, float] | None:
    """The middle of a sector ("CR4 2") or district ("CR4"): the operator's file first, then the rows'.

    The file knows every postcode of the area; the listings only some, so theirs is the
    fallback (``known``, when the caller has read them already). Nothing here leaves the machine.
    """
    for postcode_file in files_of(geocoder):
        found = postcode_file.area(code)
        if found is not None:
            return found
    return (known or area_centroids(conn, [district_of(code)])).get(code)


def _in_area(
    postcode: str, area: Callable[[str], tuple[float, float] | None]
) -> tuple[str, tuple[float, float]] | None:
    """``(SECTOR or DISTRICT, its middle)`` for a postcode not known exactly, the sector first."""
    found = locate_postcode(postcode, lambda _postcode: None, area)
    return None if found is None else (found.precision, found.position)


def _place_postcodes(conn: Connection, positions: Mapping[str, tuple[str, tuple[float, float]]]) -> None:
    """:func:`place_postcode` for many (postcode → (precision, position)), where some row waits.

    A first harvest learns a postcode with nearly every item and finds no row waiting.
    """
    waiting: set[str] = set()
    for chunk in chunks(positions):
        waiting.update(
            conn.execute(
                select(index.c.postcode)
                .where(index.c.postcode.in_(chunk), index.c.own_geo.is_(False))
                .distinct()
            ).scalars()
        )
    if waiting:
        conn.execute(
            update(index)
            .where(index.c.postcode == bindparam("b_postcode"), index.c.own_geo.is_(False))
            .values({name: bindparam(f"b_{name}") for name in [*_placed(None), "placed"]}),
            [
                {
                    "b_postcode": postcode,
                    "b_placed": positions[postcode][0],
                    **{f"b_{k}": v for k, v in _placed(positions[postcode][1]).items()},
                }
                for postcode in sorted(waiting)
            ],
        )


def geocode_missing(conn: Connection, geocoder: geocode.Geocoder, now: datetime, limit: int = 500) -> int:
    """Place rows without a position, or placed only at an area, by asking ``geocoder``.

    Returns how many postcodes were placed more precisely than before. Rows with no place
    come first; then rows placed at a sector or district are placed again, exactly if the
    geocoder now knows their postcode, else at the area's middle as it now stands (the
    operator's file, else the listings placed there). Meant for after a harvest, outside its
    page transactions, since it may call a service (which the table asks once per postcode).
    """
    c = index.c
    waiting = list(
        conn.execute(
            select(c.postcode)
            .where(c.cell.is_(None), c.postcode.is_not(None), c.own_geo.is_(False))
            .group_by(c.postcode)
            .limit(limit)
        ).scalars()
    )
    # Where each is now, so that one whose area's middle has not moved is not written again.
    approximate = {
        postcode: (placed, (lat, lon))
        for postcode, placed, lat, lon in conn.execute(
            select(c.postcode, c.placed, func.min(c.lat), func.min(c.lon))
            .where(c.placed.in_((SECTOR, DISTRICT)))
            .group_by(c.postcode, c.placed)
            .limit(max(limit - len(waiting), 0))
        )
    }
    # Each district's middles are read once for the run, not once per postcode.
    known = area_centroids(conn, {district_of(postcode) for postcode in [*waiting, *approximate]})
    better, asking = 0, geocoder
    for postcode in [*waiting, *approximate]:
        try:
            position = geocode.locate(conn, postcode, asking, now)
        except geocode.GeocoderUnavailable as failure:
            # Not asked again in this run (each try may take seconds), nor an answer remembered;
            # the table and the areas still place rows.
            log.warning("postcodes placed by area only until the next harvest: %s", failure)
            asking = geocode.NoGeocoder()
            position = geocode.locate(conn, postcode, asking, now)
        if position is not None:
            place_postcode(conn, postcode, position)
            better += 1
            continue
        found = _in_area(postcode, lambda code: area_position(conn, code, geocoder, known))
        if found is not None and found != approximate.get(postcode):
            place_postcode(conn, postcode, found[1], found[0])
            better += postcode not in approximate
    return better


def roll_forward(conn: Connection, now: datetime, limit: int = 1000) -> int:
    """Recompute ``next_start`` for up to ``limit`` rows whose next session has begun; returns how many.

    Queries are right without it (they recompute such rows themselves); running it every
    few minutes keeps that work small.
    """
    due = conn.execute(
        select(index.c.merged_id, documents.c.activity)
        .join(documents, documents.c.merged_id == index.c.merged_id)
        .where(index.c.next_start < now)
        .order_by(index.c.next_start)
        .limit(limit)
    ).all()
    for merged_id, activity in due:
        upcoming = next_occurrences(activity, now, 1)
        conn.execute(
            update(index)
            .where(index.c.merged_id == merged_id)
            .values(next_start=upcoming[0].start.astimezone(UTC) if upcoming else None, next_from=now)
        )
    return len(due)


REBUILD_BATCH = 1000


def rebuild(engine: Engine, on_batch: Callable[[int], None] = lambda written: None) -> int:
    """Drop the search index and build it again from the merged items; returns the rows written.

    The index is derived from the merged items, so nothing is lost: this is how a database
    made by an earlier version takes up a change to the index's columns, indexes or grid
    (``CELL_DEGREES``). It is one transaction, so the API answers from the old index (or
    waits, on PostgreSQL) until the new one is whole. ``on_batch`` is told each batch's size.
    """
    now = utcnow()
    tables = (index_sources, documents, index)
    written = 0
    with engine.begin() as conn:
        lock_schema(conn)
        for table in tables:
            table.drop(conn, checkfirst=True)
        for table in tables:
            table.create(conn)  # with its indexes, as this version defines them
        after = 0
        while rows := conn.execute(
            select(merged.c.id, merged.c.data, merged.c.provenance)
            .where(merged.c.state == "updated", merged.c.id > after)
            .order_by(merged.c.id)
            .limit(REBUILD_BATCH)
        ).all():
            reindex_many(conn, [(row.id, row.data, row.provenance) for row in rows], now=now)
            written += len(rows)
            after = rows[-1].id
            on_batch(len(rows))
    return written


def written_after(conn: Connection, now: datetime) -> bool:
    """Whether any row's next session was worked out after ``now`` (a test's clock, or clock skew)."""
    newest = conn.execute(select(func.max(index.c.next_from))).scalar()
    return newest is not None and newest > now


def next_start_split(
    dialect: str, *, near: bool, checks_next_from: bool
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Conditions for (rows whose stored ``next_start`` is right at the bound ``now``, rows to recompute).

    A stored next session is right until it starts, provided it was computed before
    ``now``. Rows written after ``now`` happen only under a test's clock (or clock skew):
    ``checks_next_from`` tests for them. A search near a place always does, since the grid
    index holds ``next_from``; a search everywhere does only when :func:`written_after`
    says there are any, so its conditions leave the planner free to walk the
    ``next_start`` index.

    ``near``: the query filters by grid cells. SQLite's planner may then still prefer the
    ``next_start`` (or ``next_from``) index — a walk over most of the table — so the
    columns are written with a unary plus, SQLite's documented way to keep one term off an
    index.
    """
    c = index.c
    next_start: ColumnElement[Any] = c.next_start
    next_from: ColumnElement[Any] = c.next_from
    if near and dialect == "sqlite":
        next_start = literal_column(f"+{index.name}.next_start", type_=c.next_start.type)
        next_from = literal_column(f"+{index.name}.next_from", type_=c.next_from.type)
    now = bindparam("now", type_=c.next_start.type)
    if checks_next_from:
        return and_(next_from <= now, next_start > now), or_(next_from > now, next_start <= now)
    return next_start > now, next_start <= now
