"""Where a UK postcode or a place is: the geocoding both apps share.

The aggregator answers "near here" with it, and the publisher warns an editor with it when
a postcode cannot be placed, so the two agree on what can be placed: the same settings
(``POSTCODE_CSV``, ``POSTCODES_API_URL``) build the same geocoders (:func:`from_config`).

A geocoder is anything with ``lookup(postcode) -> (lat, lon) | None`` (:class:`Geocoder`):

- :class:`CsvGeocoder`: a postcode file the operator provides, in the ONS Postcode Directory
  layout (``pcds``, ``lat``, ``long``) or the Code-Point Open layout (eastings and northings
  on the British National Grid, converted here). It also knows the middle of every postcode
  sector and district in the file (:meth:`CsvGeocoder.area`), and the places the file names
  when it has a column for them (:meth:`CsvGeocoder.places`);
- :class:`HttpGeocoder`: a postcodes.io-compatible service, reached through the guarded
  client like every other outbound request. Without one configured, no postcode leaves
  the machine.

A postcode nobody knows exactly is still placed, less precisely: at the middle of its sector
("CR4 2", from "CR4 2DG"), else of its district ("CR4"), from what the caller knows of that
area (:func:`locate_postcode`). Every answer (:class:`Located`) says how precise it is.
"""

from __future__ import annotations

import array
import csv
import itertools
import math
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from federation.fetch import FetchError, GuardedClient
from schema import normalise_postcode
from schema.postcode import DISTRICT, SECTOR, area_of, district_of, sector_of

__all__ = [
    "APPROXIMATE",
    "DISTRICT",
    "PLACE",
    "POINT",
    "POSTCODE",
    "SECTOR",
    "Centroids",
    "ChainGeocoder",
    "CsvGeocoder",
    "Geocoder",
    "GeocoderUnavailable",
    "HttpGeocoder",
    "Located",
    "NoGeocoder",
    "RememberingGeocoder",
    "area_of",
    "district_of",
    "files_of",
    "fold_place",
    "from_config",
    "locate_postcode",
    "osgb36_to_wgs84",
    "sector_of",
]

LatLon = tuple[float, float]

# How precisely a place is known, finest first. A sector is about 3,000 addresses, a district
# about 8 sectors; "place" is a town's listings' middle, "point" a latitude,longitude given.
# (SECTOR and DISTRICT are the postcode's own parts: schema.postcode.)
POSTCODE, PLACE, POINT = "postcode", "place", "point"
APPROXIMATE = frozenset({SECTOR, DISTRICT, PLACE})


class GeocoderUnavailable(Exception):
    """A geocoding service or file could not be used (down, slow, unreadable): not the user's mistake."""


_NOT_WORDS = re.compile(r"[^\w\s]+")


def fold_place(name: str) -> str:
    """A place name as it is matched: "Collier's  Wood" and "colliers wood" are the same place.

    Case, accents and punctuation do not matter ("St. Helier" is "st helier"); hyphens
    separate words ("Stoke-on-Trent" is "stoke on trent").
    """
    decomposed = unicodedata.normalize("NFKD", name.replace("-", " ").replace("'", "").replace("’", ""))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NOT_WORDS.sub(" ", plain).casefold().split())


@dataclass(frozen=True)
class Located:
    """Where a search is measured from, and how precisely that is known.

    ``name`` is what was found ("CR4 1AA", "CR4 2", "CR4", "Mitcham", "51.4,-0.15");
    ``locality`` the town its listings name, when one is known, for the label.
    """

    lat: float
    lon: float
    precision: str
    name: str
    locality: str | None = None

    @property
    def label(self) -> str:
        """"CR4 (Mitcham)": the name, with its town when that says more."""
        if self.locality and fold_place(self.locality) != fold_place(self.name):
            return f"{self.name} ({self.locality})"
        return self.name

    @property
    def approximate(self) -> bool:
        """Placed at the middle of an area, not at the postcode or point itself."""
        return self.precision in APPROXIMATE

    @property
    def position(self) -> LatLon:
        return self.lat, self.lon


def locate_postcode(
    postcode: str,
    exact: Callable[[str], LatLon | None],
    area: Callable[[str], LatLon | None],
) -> Located | None:
    """Where a normalised postcode is: exactly, else its sector's middle, else its district's.

    ``exact`` places a postcode, ``area`` the middle of a sector or district; each app
    says what it knows. None when neither knows anything of the postcode's district.
    """
    position = exact(postcode)
    if position is not None:
        return Located(*position, POSTCODE, postcode)
    for precision, code in ((SECTOR, sector_of(postcode)), (DISTRICT, district_of(postcode))):
        position = area(code)
        if position is not None:
            return Located(*position, precision, code)
    return None


class Centroids:
    """The middle of each postcode sector and district, from the postcodes placed in them.

    Each postcode counts once, however many listings share it, so one busy hall does not
    drag its district's middle towards itself.
    """

    def __init__(self, placed: Iterable[tuple[str, LatLon]] = ()) -> None:
        self._sums: dict[str, list[float]] = {}
        for postcode, position in placed:
            self.add(postcode, position)

    def add(self, postcode: str, position: LatLon) -> None:
        for code in (sector_of(postcode), district_of(postcode)):
            total = self._sums.setdefault(code, [0.0, 0.0, 0.0])
            total[0] += position[0]
            total[1] += position[1]
            total[2] += 1

    def get(self, code: str) -> LatLon | None:
        total = self._sums.get(code)
        return None if total is None else (total[0] / total[2], total[1] / total[2])


class Geocoder(Protocol):
    """Anything that can place a normalised postcode; None means "not known here"."""

    def lookup(self, postcode: str) -> LatLon | None: ...


class NoGeocoder:
    """Knows no postcodes: each app then relies on what its own listings teach it."""

    def lookup(self, postcode: str) -> LatLon | None:
        return None


# -- the operator's postcode file --------------------------------------------------------------


class CsvGeocoder:
    """Postcodes from a local CSV file, read once on first use and kept in memory, compactly.

    Two layouts are recognised by their first row:

    - ONS Postcode Directory (or any file with a header naming ``pcds``/``pcd``/``postcode``
      and ``lat``/``latitude`` and ``long``/``longitude``);
    - a header naming ``eastings``/``northings`` (or ONS ``oseast1m``/``osnrth1m``), or
      Code-Point Open's header-less rows (postcode, quality, eastings, northings, ...),
      converted from the British National Grid with :func:`osgb36_to_wgs84`.

    Rows without a position (ONS marks them with latitude 99.999999) and postcodes the ONS
    marks terminated (a ``doterm`` date) are skipped. A column named ``locality``, ``town``,
    ``place`` or ``post_town``, where the file has one, names each postcode's place.

    Memory is bounded by the file: the whole ONS directory (about 1.8 million live
    postcodes) takes some 45 MB here — 7 bytes of postcode and two 8-byte numbers each,
    searched by bisection — where a dictionary of the same would take ten times that. The
    sectors' and districts' middles (about 14,000) and the places are kept as dictionaries.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._loaded: _PostcodeFile | None = None
        self._lock = threading.Lock()

    def _file(self) -> _PostcodeFile:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._read()
        return self._loaded

    def lookup(self, postcode: str) -> LatLon | None:
        return self._file().lookup(postcode)

    def area(self, code: str) -> LatLon | None:
        """The middle of a postcode sector ("CR4 2") or district ("CR4") of the file's postcodes."""
        return self._file().areas.get(code)

    def places(self, folded: str) -> list[tuple[str, LatLon, str]]:
        """``(district, middle, spelling)`` of each district where the file has a place of this name."""
        return self._file().places.get(folded, [])

    def _read(self) -> _PostcodeFile:
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
            return _PostcodeFile(_positions(first, rows, self.path) if first else iter(()))


_KEY_BYTES = 7


def _key(postcode: str) -> bytes:
    """"CR4 1HT" → b"CR4 1HT", "E1 6AN" → b"E1  6AN": the ONS directory's own ``pcd`` form, so its
    rows (sorted by ``pcd``) arrive already in order."""
    outward, inward = postcode.split(" ")
    return (outward.ljust(4) + inward).encode("ascii")


class _PostcodeFile:
    """The file's postcodes as one sorted byte string and two arrays, with area middles and places."""

    def __init__(self, rows: Iterable[tuple[str, LatLon, str]]) -> None:
        keys, lats, lons = bytearray(), array.array("d"), array.array("d")
        areas = Centroids()
        named: dict[tuple[str, str], list[Any]] = {}
        ordered, previous = True, b""
        for postcode, (lat, lon), place in rows:
            key = _key(postcode)
            ordered = ordered and key > previous
            previous = key
            keys += key
            lats.append(lat)
            lons.append(lon)
            areas.add(postcode, (lat, lon))
            if place:
                total = named.setdefault((fold_place(place), district_of(postcode)), [0.0, 0.0, 0, place])
                total[0], total[1], total[2] = total[0] + lat, total[1] + lon, total[2] + 1
        if not ordered:  # the ONS directory comes sorted; anything else is sorted once, here
            count = len(lats)
            order = sorted(range(count), key=lambda i: keys[i * _KEY_BYTES : (i + 1) * _KEY_BYTES])
            keys = bytearray(b"".join(bytes(keys[i * _KEY_BYTES : (i + 1) * _KEY_BYTES]) for i in order))
            lats = array.array("d", (lats[i] for i in order))
            lons = array.array("d", (lons[i] for i in order))
        self.keys, self.lats, self.lons = bytes(keys), lats, lons
        self.areas = areas
        self.places: dict[str, list[tuple[str, LatLon, str]]] = {}
        for (folded, district), (lat_sum, lon_sum, count, spelling) in named.items():
            middle = (lat_sum / count, lon_sum / count)
            self.places.setdefault(folded, []).append((district, middle, spelling))

    def lookup(self, postcode: str) -> LatLon | None:
        wanted, low, high = _key(postcode), 0, len(self.lats)
        while low < high:  # bisection over the fixed-width keys
            middle = (low + high) // 2
            found = self.keys[middle * _KEY_BYTES : (middle + 1) * _KEY_BYTES]
            if found == wanted:
                return self.lats[middle], self.lons[middle]
            if found < wanted:
                low = middle + 1
            else:
                high = middle
        return None


_POSTCODE_COLUMNS = ("pcds", "pcd", "postcode")
_LAT_COLUMNS = ("lat", "latitude")
_LON_COLUMNS = ("long", "lon", "longitude")
_EAST_COLUMNS = ("eastings", "easting", "oseast1m")
_NORTH_COLUMNS = ("northings", "northing", "osnrth1m")
_PLACE_COLUMNS = ("locality", "town", "place", "post_town", "posttown")
_TERMINATED_COLUMNS = ("doterm",)


def _column(header: list[str], names: Iterable[str]) -> int | None:
    lowered = [name.strip().lower() for name in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _positions(first: list[str], rows: Iterable[list[str]], path: Path) -> Iterator[tuple[str, LatLon, str]]:
    code = _column(first, _POSTCODE_COLUMNS)
    lat, lon = _column(first, _LAT_COLUMNS), _column(first, _LON_COLUMNS)
    east, north = _column(first, _EAST_COLUMNS), _column(first, _NORTH_COLUMNS)
    place, terminated = _column(first, _PLACE_COLUMNS), _column(first, _TERMINATED_COLUMNS)
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
            if postcode is None or (terminated is not None and row[terminated].strip()):
                continue
            if lat is not None and lon is not None:
                position = float(row[lat]), float(row[lon])
                if abs(position[0]) > 90:  # ONS: 99.999999 = no grid reference
                    continue
            else:
                assert east is not None and north is not None  # else the file was refused above
                position = osgb36_to_wgs84(float(row[east]), float(row[north]))
            name = " ".join(row[place].split()) if place is not None else ""
        except (IndexError, ValueError):
            continue  # a short or blank row in an operator's file is skipped, not fatal
        yield postcode, position, name


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


class RememberingGeocoder:
    """Remembers another geocoder's answers, so each postcode is asked once (the publisher's).

    The aggregator remembers in its ``postcodes`` table; the publisher has no such table
    and keeps the last ``size`` answers in memory instead: enough for an editor saving the
    same activity again and again, or a CSV import naming one postcode on many rows, and
    bounded however many postcodes are typed. An answer "not known" is remembered too; a
    service that could not be asked is not, so it is asked again next time.
    """

    def __init__(self, geocoder: Geocoder, size: int = 4096) -> None:
        self.geocoder = geocoder
        self.size = size
        self._answers: OrderedDict[str, LatLon | None] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, postcode: str) -> LatLon | None:
        with self._lock:
            if postcode in self._answers:
                self._answers.move_to_end(postcode)
                return self._answers[postcode]
        answer = self.geocoder.lookup(postcode)
        with self._lock:
            self._answers[postcode] = answer
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)
        return answer


def files_of(geocoder: Geocoder) -> list[CsvGeocoder]:
    """The operator's postcode files among ``geocoder``'s: the ones that know areas and places."""
    if isinstance(geocoder, CsvGeocoder):
        return [geocoder]
    if isinstance(geocoder, ChainGeocoder):
        return [found for member in geocoder.geocoders for found in files_of(member)]
    if isinstance(geocoder, RememberingGeocoder):
        return files_of(geocoder.geocoder)
    return []


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
