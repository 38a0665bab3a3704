"""The aggregator's memory of where postcodes are: the ``postcodes`` table.

The geocoders themselves (the operator's postcode file, a postcodes.io-compatible
service, how a postcode falls back to its sector and district) are shared with the
publisher and live in :mod:`federation.geocoding`; they are named here too, as the
aggregator's code has always reached them. This module adds the table, consulted first
by :func:`locate` with the caller's connection:

- postcodes learned from items that carry both a postcode and a geo point;
- every answer the geocoders gave (the cache), so each postcode costs one outside lookup.
  Without a service configured no postcode leaves the machine at all.

Unknown postcodes are remembered for a day, so a typo typed again does not hammer the
service; rows of unknowns older than that are deleted as new ones are written, so the
table holds at most a day's worth of them however many are typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Float, String, Table, and_, bindparam, delete, select, update
from sqlalchemy.engine import Connection

from aggregator.store import chunks, metadata
from federation.db import UTCDateTime, write_if_free
from federation.geocoding import (
    ChainGeocoder,
    CsvGeocoder,
    Geocoder,
    GeocoderUnavailable,
    HttpGeocoder,
    NoGeocoder,
    from_config,
    osgb36_to_wgs84,
)

__all__ = [
    "ChainGeocoder",
    "CsvGeocoder",
    "Geocoder",
    "GeocoderUnavailable",
    "HttpGeocoder",
    "NoGeocoder",
    "from_config",
    "known",
    "known_many",
    "learn",
    "learn_many",
    "locate",
    "osgb36_to_wgs84",
    "postcodes",
]

LatLon = tuple[float, float]

# Where a row of the postcodes table came from: learned from an item, or a geocoder's answer.
LEARNED, LOOKED_UP, UNKNOWN = "item", "lookup", "unknown"
UNKNOWN_TTL = timedelta(days=1)

postcodes = Table(
    "postcodes",
    metadata,
    Column("postcode", String(8), primary_key=True),  # schema.normalise_postcode: "CR4 1HT"
    Column("lat", Float),  # null when the geocoders said they do not know it
    Column("lon", Float),
    Column("origin", String(8), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# -- the table: learned positions and the cache ----------------------------------------------


def _stored(conn: Connection, postcode: str) -> Any:
    return conn.execute(select(postcodes).where(postcodes.c.postcode == postcode)).first()


def _write(conn: Connection, postcode: str, position: LatLon | None, origin: str, now: datetime) -> None:
    values = {
        "lat": position[0] if position else None,
        "lon": position[1] if position else None,
        "origin": origin,
        "updated_at": now,
    }
    if _stored(conn, postcode) is None:
        conn.execute(postcodes.insert().values(postcode=postcode, **values))
    else:
        conn.execute(update(postcodes).where(postcodes.c.postcode == postcode).values(**values))


def _stored_many(conn: Connection, codes: Iterable[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for chunk in chunks(set(codes)):
        found.update(
            (row.postcode, row)
            for row in conn.execute(select(postcodes).where(postcodes.c.postcode.in_(chunk)))
        )
    return found


def known(conn: Connection, postcode: str) -> LatLon | None:
    """The table's position for a normalised postcode, without asking anyone else."""
    return known_many(conn, [postcode]).get(postcode)


def known_many(conn: Connection, codes: Iterable[str]) -> dict[str, LatLon]:
    """:func:`known` for many postcodes in one query (a harvest page's); unknown ones are left out."""
    return {
        code: (row.lat, row.lon) for code, row in _stored_many(conn, codes).items() if row.lat is not None
    }


def learn(conn: Connection, postcode: str, position: LatLon, now: datetime) -> bool:
    """Remember where an item says ``postcode`` is; True when the table changed.

    A position from the operator's file or the postcode service is the postcode's
    official centroid and stays; a learned one follows the latest item.
    """
    return postcode in learn_many(conn, {postcode: position}, now)


def learn_many(conn: Connection, positions: Mapping[str, LatLon], now: datetime) -> set[str]:
    """:func:`learn` for a harvest page's postcodes in a fixed number of statements; the ones changed."""
    stored = _stored_many(conn, positions)
    fresh: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for code, (lat, lon) in positions.items():
        row = stored.get(code)
        if row is not None and (row.origin == LOOKED_UP or (row.lat, row.lon) == (lat, lon)):
            continue
        values = {"b_postcode": code, "b_lat": lat, "b_lon": lon, "b_origin": LEARNED, "b_updated_at": now}
        (fresh if row is None else moved).append(values)
    if fresh:
        conn.execute(postcodes.insert().values({name: bindparam(f"b_{name}") for name in _COLUMNS}), fresh)
    if moved:
        conn.execute(
            update(postcodes)
            .where(postcodes.c.postcode == bindparam("b_postcode"))
            .values({name: bindparam(f"b_{name}") for name in _COLUMNS if name != "postcode"}),
            moved,
        )
    return {values["b_postcode"] for values in fresh + moved}


_COLUMNS = ("postcode", "lat", "lon", "origin", "updated_at")


def locate(conn: Connection, postcode: str, geocoder: Geocoder, now: datetime) -> LatLon | None:
    """Where ``postcode`` (normalised) is: the table first, then ``geocoder``, remembering its answer.

    For a harvest, which writes in ``conn`` anyway; a request uses :func:`locate_for_reader`.
    Raises :class:`GeocoderUnavailable` when the table does not know it and a service
    that might could not be asked.
    """
    position, asked = _look_up(conn, postcode, geocoder, now)
    if asked:
        remember(conn, postcode, position, now)
    return position


def locate_for_reader(conn: Connection, postcode: str, geocoder: Geocoder, now: datetime) -> LatLon | None:
    """:func:`locate` for a request: it never writes in ``conn``, so it never waits for a harvest.

    A new answer is remembered in a transaction of its own if the database is free at
    once (federation.db.write_if_free); if not, the next request for it asks again.
    """
    position, asked = _look_up(conn, postcode, geocoder, now)
    if asked:
        write_if_free(conn.engine, lambda own: remember(own, postcode, position, now))
    return position


def _look_up(
    conn: Connection, postcode: str, geocoder: Geocoder, now: datetime
) -> tuple[LatLon | None, bool]:
    """The position and whether ``geocoder`` was asked for it (its answer is then worth keeping)."""
    row = _stored(conn, postcode)
    if row is not None:
        if row.lat is not None:
            return (row.lat, row.lon), False
        if row.updated_at > now - UNKNOWN_TTL:
            return None, False
    if isinstance(geocoder, NoGeocoder):
        return None, False  # nobody was asked, so there is no answer worth remembering
    return geocoder.lookup(postcode), True


def remember(conn: Connection, postcode: str, position: LatLon | None, now: datetime) -> None:
    """Keep the geocoder's answer for ``postcode`` (None: not a postcode it knows, kept a day)."""
    if position is None:
        expired = and_(postcodes.c.origin == UNKNOWN, postcodes.c.updated_at <= now - UNKNOWN_TTL)
        conn.execute(delete(postcodes).where(expired))
    _write(conn, postcode, position, LOOKED_UP if position else UNKNOWN, now)
