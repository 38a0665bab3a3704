"""Turning a UK postcode into a latitude and longitude.

A geocoder is anything with ``lookup(postcode) -> (lat, lon) | None`` (:class:`Geocoder`).
Three kinds, tried in this order by :func:`from_config`:

- the ``postcodes`` table: postcodes learned from items that carry both a postcode and
  a geo point, and every answer the other geocoders gave (the cache). It is consulted
  by :func:`locate` with the caller's connection, so it needs no geocoder object;
- :class:`CsvGeocoder`: a postcode file the operator provides (``POSTCODE_CSV``), in the
  ONS Postcode Directory layout (``pcds``, ``lat``, ``long``) or the Code-Point Open
  layout (eastings and northings on the British National Grid, converted here);
- :class:`HttpGeocoder`: a postcodes.io-compatible service (``POSTCODES_API_URL``),
  reached through the guarded client like every other outbound request.

Lookups that reach a file or the network are remembered in the table, so each postcode
costs one outside lookup; unknown postcodes are remembered for a day, so a typo typed
again does not hammer the service.
"""

from __future__ import annotations

import csv
import itertools
import math
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from sqlalchemy import Column, Float, String, Table, bindparam, select, update
from sqlalchemy.engine import Connection

from aggregator.store import chunks, metadata
from federation.db import UTCDateTime
from federation.fetch import FetchError, GuardedClient
from schema import normalise_postcode

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

class Geocoder(Protocol):
    """Anything that can place a normalised postcode; None means "not known here"."""

    def lookup(self, postcode: str) -> LatLon | None: ...


class GeocoderUnavailable(Exception):
    """A geocoding service could not be asked (down, slow, refused): not the user's mistake."""


class NoGeocoder:
    """Knows no postcodes: the aggregator then relies on the learned table alone."""

    def lookup(self, postcode: str) -> LatLon | None:
        return None


# -- the operator's postcode file --------------------------------------------------------------


class CsvGeocoder:
    """Postcodes from a local CSV file, read once on first use and kept in memory.

    Two layouts are recognised by their first row:

    - ONS Postcode Directory (or any file with a header naming ``pcds``/``pcd``/``postcode``
      and ``lat``/``latitude`` and ``long``/``longitude``);
    - a header naming ``eastings``/``northings`` (or ONS ``oseast1m``/``osnrth1m``), or
      Code-Point Open's header-less rows (postcode, quality, eastings, northings, ...),
      converted from the British National Grid with :func:`osgb36_to_wgs84`.

    Rows without a position (ONS marks them with latitude 99.999999) are skipped.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._table: dict[str, LatLon] | None = None
        self._lock = threading.Lock()

    def lookup(self, postcode: str) -> LatLon | None:
        if self._table is None:
            with self._lock:
                if self._table is None:
                    self._table = self._read()
        return self._table.get(postcode)

    def _read(self) -> dict[str, LatLon]:
        try:
            handle = self.path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise GeocoderUnavailable(
                f"The postcode file {self.path} (POSTCODE_CSV) cannot be read: {exc.strerror}. "
                "Check the path and its permissions."
            ) from None
        with handle:
            rows = csv.reader(handle)
            first = next(rows, None)
            if first is None:
                return {}
            return dict(_positions(first, rows, self.path))


_POSTCODE_COLUMNS = ("pcds", "pcd", "postcode")
_LAT_COLUMNS = ("lat", "latitude")
_LON_COLUMNS = ("long", "lon", "longitude")
_EAST_COLUMNS = ("eastings", "easting", "oseast1m")
_NORTH_COLUMNS = ("northings", "northing", "osnrth1m")


def _column(header: list[str], names: Iterable[str]) -> int | None:
    lowered = [name.strip().lower() for name in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _positions(first: list[str], rows: Iterable[list[str]], path: Path) -> Iterable[tuple[str, LatLon]]:
    code = _column(first, _POSTCODE_COLUMNS)
    lat, lon = _column(first, _LAT_COLUMNS), _column(first, _LON_COLUMNS)
    east, north = _column(first, _EAST_COLUMNS), _column(first, _NORTH_COLUMNS)
    if code is None:
        if normalise_postcode(first[0]) is None:
            raise GeocoderUnavailable(
                f"The postcode file {path} (POSTCODE_CSV) has no column named pcds or postcode, "
                "and is not Code-Point Open data. Use the ONS Postcode Directory or Code-Point Open layout."
            )
        code, east, north, lat, lon = 0, 2, 3, None, None  # Code-Point Open: no header
        rows = itertools.chain([first], rows)
    elif (lat is None or lon is None) and (east is None or north is None):
        raise GeocoderUnavailable(
            f"The postcode file {path} (POSTCODE_CSV) has a postcode column but no lat/long "
            "or eastings/northings columns. Use the ONS Postcode Directory or Code-Point Open layout."
        )
    for row in rows:
        try:
            postcode = normalise_postcode(row[code])
            if postcode is None:
                continue
            if lat is not None and lon is not None:
                position = float(row[lat]), float(row[lon])
                if abs(position[0]) > 90:  # ONS: 99.999999 = no grid reference
                    continue
            else:
                assert east is not None and north is not None  # else the file was refused above
                position = osgb36_to_wgs84(float(row[east]), float(row[north]))
        except (IndexError, ValueError):
            continue  # a short or blank row in an operator's file is skipped, not fatal
        yield postcode, position


def osgb36_to_wgs84(easting: float, northing: float) -> LatLon:
    """British National Grid eastings/northings (OSGB36) → WGS84 latitude and longitude.

    The Ordnance Survey's method ("A guide to coordinate systems in Great Britain"):
    inverse Transverse Mercator on the Airy 1830 ellipsoid, then a Helmert transformation
    to WGS84, good to about 5 m — far finer than a postcode.
    """
    a, b = 6377563.396, 6356256.909  # Airy 1830
    f0 = 0.9996012717
    lat0, lon0 = math.radians(49), math.radians(-2)
    n0, e0 = -100000.0, 400000.0
    e2 = 1 - (b * b) / (a * a)
    n = (a - b) / (a + b)

    lat, meridional = lat0, 0.0
    while True:
        lat = (northing - n0 - meridional) / (a * f0) + lat
        d, s = lat - lat0, lat + lat0
        meridional = (
            b
            * f0
            * (
                (1 + n + 1.25 * n**2 + 1.25 * n**3) * d
                - (3 * n + 3 * n**2 + 21 / 8 * n**3) * math.sin(d) * math.cos(s)
                + (15 / 8 * n**2 + 15 / 8 * n**3) * math.sin(2 * d) * math.cos(2 * s)
                - 35 / 24 * n**3 * math.sin(3 * d) * math.cos(3 * s)
            )
        )
        if abs(northing - n0 - meridional) < 1e-5:
            break

    sin_lat, cos_lat, tan_lat = math.sin(lat), math.cos(lat), math.tan(lat)
    nu = a * f0 / math.sqrt(1 - e2 * sin_lat**2)
    rho = a * f0 * (1 - e2) / (1 - e2 * sin_lat**2) ** 1.5
    eta2 = nu / rho - 1
    sec = 1 / cos_lat
    t2, t4, t6 = tan_lat**2, tan_lat**4, tan_lat**6
    vii = tan_lat / (2 * rho * nu)
    viii = tan_lat / (24 * rho * nu**3) * (5 + 3 * t2 + eta2 - 9 * t2 * eta2)
    ix = tan_lat / (720 * rho * nu**5) * (61 + 90 * t2 + 45 * t4)
    x = sec / nu
    xi = sec / (6 * nu**3) * (nu / rho + 2 * t2)
    xii = sec / (120 * nu**5) * (5 + 28 * t2 + 24 * t4)
    xiia = sec / (5040 * nu**7) * (61 + 662 * t2 + 1320 * t4 + 720 * t6)
    de = easting - e0
    lat_osgb = lat - vii * de**2 + viii * de**4 - ix * de**6
    lon_osgb = lon0 + x * de - xi * de**3 + xii * de**5 - xiia * de**7

    # To Cartesian on Airy 1830, Helmert to WGS84, back to latitude/longitude on GRS80.
    nu_airy = a / math.sqrt(1 - e2 * math.sin(lat_osgb) ** 2)
    px = nu_airy * math.cos(lat_osgb) * math.cos(lon_osgb)
    py = nu_airy * math.cos(lat_osgb) * math.sin(lon_osgb)
    pz = (1 - e2) * nu_airy * math.sin(lat_osgb)
    tx, ty, tz, scale = 446.448, -125.157, 542.060, -20.4894e-6
    rx, ry, rz = (math.radians(arcsec / 3600) for arcsec in (0.1502, 0.2470, 0.8421))
    wx = tx + (1 + scale) * px - rz * py + ry * pz
    wy = ty + rz * px + (1 + scale) * py - rx * pz
    wz = tz - ry * px + rx * py + (1 + scale) * pz

    a84, b84 = 6378137.0, 6356752.3141
    e2_84 = 1 - (b84 * b84) / (a84 * a84)
    p = math.hypot(wx, wy)
    lat84 = math.atan2(wz, p * (1 - e2_84))
    for _ in range(10):
        nu84 = a84 / math.sqrt(1 - e2_84 * math.sin(lat84) ** 2)
        lat84 = math.atan2(wz + e2_84 * nu84 * math.sin(lat84), p)
    return math.degrees(lat84), math.degrees(math.atan2(wy, wx))


# -- a postcodes.io-compatible service -------------------------------------------------------


class HttpGeocoder:
    """``GET {base}/postcodes/{postcode}`` → ``result.latitude``/``result.longitude`` (postcodes.io).

    A 404 means the service does not know the postcode; anything else that is not a
    position (a failure, a 5xx, a body of the wrong shape) raises :class:`GeocoderUnavailable`,
    so the caller can say "try again later" rather than "no such postcode".
    """

    def __init__(self, base_url: str, client: GuardedClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client

    def lookup(self, postcode: str) -> LatLon | None:
        url = f"{self.base_url}/postcodes/{quote(postcode, safe='')}"
        try:
            response = self.client.get(url, headers={"Accept": "application/json"})
        except FetchError as exc:
            raise GeocoderUnavailable(f"The postcode service is not answering: {exc}") from None
        if response.status == 404:
            return None
        try:
            if response.status != 200:
                raise ValueError(f"status {response.status}")
            result = response.json()["result"]
            position = float(result["latitude"]), float(result["longitude"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GeocoderUnavailable(
                f"The postcode service at {self.base_url} gave an answer we cannot read ({exc}). "
                "Check POSTCODES_API_URL points at a postcodes.io-compatible service."
            ) from None
        return position


class ChainGeocoder:
    """Asks each geocoder in turn; the first that knows the postcode answers."""

    def __init__(self, geocoders: Iterable[Geocoder]) -> None:
        self.geocoders = list(geocoders)

    def lookup(self, postcode: str) -> LatLon | None:
        for geocoder in self.geocoders:
            found = geocoder.lookup(postcode)
            if found is not None:
                return found
        return None


def from_config(config: Mapping[str, Any]) -> Geocoder:
    """The geocoders the settings name (POSTCODE_CSV, then POSTCODES_API_URL), in that order."""
    chain: list[Geocoder] = []
    if config.get("POSTCODE_CSV"):
        chain.append(CsvGeocoder(config["POSTCODE_CSV"]))
    if config.get("POSTCODES_API_URL"):
        client = GuardedClient(
            allow_private=bool(config.get("ALLOW_PRIVATE_NETWORKS")),
            connect_timeout=3.0,
            read_timeout=5.0,
            total_timeout=8.0,
            max_bytes=100_000,
        )
        chain.append(HttpGeocoder(config["POSTCODES_API_URL"], client))
    return ChainGeocoder(chain) if chain else NoGeocoder()


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

    Raises :class:`GeocoderUnavailable` when the table does not know it and a service
    that might could not be asked.
    """
    row = _stored(conn, postcode)
    if row is not None:
        if row.lat is not None:
            return row.lat, row.lon
        if row.updated_at > now - UNKNOWN_TTL:
            return None
    if isinstance(geocoder, NoGeocoder):
        return None  # nobody was asked, so there is no answer worth remembering
    position = geocoder.lookup(postcode)
    _write(conn, postcode, position, LOOKED_UP if position else UNKNOWN, now)
    return position
