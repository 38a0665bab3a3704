"""Where a search's ``near`` is: a postcode, a postcode sector or district, or a town.

Every well-formed UK postcode gets an answer without any setting: exactly where the
postcodes table, the operator's file or the postcode service knows it, else the middle of
its sector, else of its district, as far as the aggregator knows those areas
(:func:`federation.geocoding.locate_postcode`). A town ("Mitcham", "colliers wood") is
found among the localities the listings name (and the operator's file, where it names
places): the middle of the listings there. A name used in places far apart ("Newport")
is ambiguous, and the answer lists the choices, each as a postcode district to search.

Each answer (:class:`federation.geocoding.Located`) says how precisely it is known, and its
label names the town too ("CR4 (Mitcham)"), so a page can say what it is showing.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from aggregator import geocode
from aggregator import search_index as si
from federation.db import write_if_free
from federation.geocoding import (
    PLACE,
    POSTCODE,
    Located,
    area_of,
    district_of,
    files_of,
    fold_place,
    locate_postcode,
)
from schema import normalise_postcode

__all__ = ["PLACE_SPREAD_KM", "AmbiguousPlace", "Choice", "PlaceNotFound", "resolve"]

# Listings of one name further apart than this are taken to be in different places of that name.
PLACE_SPREAD_KM = 15.0
# Listings of a district read to name its town ("CR4 (Mitcham)"): the most common of these.
TOWN_SAMPLE = 200
_EXAMPLE = "Check the postcode, or try a nearby town."


class PlaceNotFound(LookupError):
    """Nothing known answers to ``near``: ``message`` says so, and what to try instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Choice:
    """One of the places an ambiguous name may mean: its label and the ``near`` that searches it."""

    label: str
    near: str


@dataclass
class AmbiguousPlace(LookupError):
    """A place name used in more than one place; ``choices`` are the places, the most listed first."""

    message: str
    choices: list[Choice] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


def resolve(conn: Connection, near: str, geocoder: geocode.Geocoder, now: datetime) -> Located:
    """Where ``near`` (anything but latitude,longitude) is, and how precisely.

    Raises :class:`PlaceNotFound` or :class:`AmbiguousPlace`, and
    :class:`aggregator.geocode.GeocoderUnavailable` when a postcode service could not be
    asked and nothing else here knows the postcode's area (when something does, the search
    goes ahead from the area). A postcode placed by the geocoder is remembered, and the
    rows waiting for it placed.
    """
    postcode = normalise_postcode(near)
    if postcode is not None:
        failures: list[geocode.GeocoderUnavailable] = []

        def exact(code: str) -> tuple[float, float] | None:
            try:
                return geocode.locate_for_reader(conn, code, geocoder, now)
            except geocode.GeocoderUnavailable as failure:
                failures.append(failure)
                return None

        located = locate_postcode(postcode, exact, lambda code: si.area_position(conn, code, geocoder))
        if located is None and failures:
            raise failures[0]
        if located is None:
            raise PlaceNotFound(f"We couldn't find {postcode}. {_EXAMPLE}")
        if located.precision == POSTCODE and si.waiting_for(conn, postcode):
            # Kept only if the database is free at once: a search never waits for a harvest.
            exactly = located.position
            write_if_free(conn.engine, lambda own: si.place_postcode(own, postcode, exactly))
        return _with_town(conn, located)
    area = area_of(near)
    if area is not None:
        precision, code = area
        position = si.area_position(conn, code, geocoder)
        if position is None:
            raise PlaceNotFound(f"We couldn't find the postcode area {code}. {_EXAMPLE}")
        return _with_town(conn, Located(*position, precision, code))
    return _town(conn, near, geocoder)


def _with_town(conn: Connection, located: Located) -> Located:
    """``located`` with the town most of its district's listings name, for its label."""
    c = si.index.c
    # A sample is enough to name the town, and keeps a district of thousands of listings cheap
    # (read from the (district, place) index alone).
    named = Counter(
        conn.execute(
            select(c.place)
            .where(c.district == district_of(located.name), c.place.is_not(None))
            .limit(TOWN_SAMPLE)
        ).scalars()
    )
    if not named:
        return located
    town = min(named, key=lambda place: (-named[place], place))
    return Located(located.lat, located.lon, located.precision, located.name, _spelling(conn, town))


def _spelling(conn: Connection, folded: str) -> str:
    """The town as a listing spells it ("Colliers Wood"), for a name matched folded ("colliers wood")."""
    activity = conn.execute(
        select(si.documents.c.activity)
        .join(si.index, si.index.c.merged_id == si.documents.c.merged_id)
        .where(si.index.c.place == folded)
        .limit(1)
    ).scalar()
    address = ((activity or {}).get("location") or {}).get("address") or {}
    spelled = address.get("addressLocality")
    return " ".join(spelled.split()) if isinstance(spelled, str) and spelled.strip() else folded.title()


@dataclass
class _Cluster:
    """Listings of one name close together: one place. Districts by how many listings name it there."""

    lat: float = 0.0
    lon: float = 0.0
    weight: float = 0.0
    districts: dict[str | None, float] = field(default_factory=dict)

    def add(self, district: str | None, lat: float, lon: float, weight: float) -> None:
        self.lat = (self.lat * self.weight + lat * weight) / (self.weight + weight)
        self.lon = (self.lon * self.weight + lon * weight) / (self.weight + weight)
        self.weight += weight
        self.districts[district] = self.districts.get(district, 0.0) + weight

    @property
    def main_district(self) -> str | None:
        return max(self.districts, key=lambda d: (self.districts[d], d is not None, d or ""))


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    (x1, y1, z1), (x2, y2, z2) = si.unit_vector(*a), si.unit_vector(*b)
    return si.distance_km((x1 - x2) ** 2 + (y1 - y2) ** 2 + (z1 - z2) ** 2)


def _town(conn: Connection, near: str, geocoder: geocode.Geocoder) -> Located:
    folded = fold_place(near)
    if not folded:
        raise PlaceNotFound(f"We couldn't find “{near}”. Type a postcode (like CR4 1AA) or a town.")
    c = si.index.c
    areas: list[tuple[str | None, float, float, float]] = [
        (district, float(lat), float(lon), float(count))
        for district, lat, lon, count in conn.execute(
            select(c.district, func.avg(c.lat), func.avg(c.lon), func.count())
            .where(c.place == folded, c.cell.is_not(None))
            .group_by(c.district)
        )
    ]
    spelling = _spelling(conn, folded) if areas else None
    listed = {district for district, *_ in areas}
    for postcode_file in files_of(geocoder):
        for file_district, (lat, lon), spelled in postcode_file.places(folded):
            spelling = spelling or spelled
            if file_district not in listed:
                areas.append((file_district, lat, lon, 1.0))
    if not areas or spelling is None:
        raise PlaceNotFound(_unknown_town(conn, near, folded))
    clusters: list[_Cluster] = []
    for district, lat, lon, weight in sorted(areas, key=lambda area: (-area[3], area[0] or "")):
        home = next((cl for cl in clusters if _km((cl.lat, cl.lon), (lat, lon)) <= PLACE_SPREAD_KM), None)
        if home is None:
            home = _Cluster()
            clusters.append(home)
        home.add(district, lat, lon, weight)
    if len(clusters) == 1:
        return Located(clusters[0].lat, clusters[0].lon, PLACE, spelling)
    choices = [_choice(spelling, cluster) for cluster in clusters]
    listed_choices = " or ".join(choice.label for choice in choices)
    raise AmbiguousPlace(
        f"There is more than one {spelling}: {listed_choices}. Choose one, or type a postcode.", choices
    )


def _choice(spelling: str, cluster: _Cluster) -> Choice:
    district = cluster.main_district
    if district is None:
        point = f"{cluster.lat:.4f},{cluster.lon:.4f}"
        return Choice(f"{spelling} (near {point})", point)
    return Choice(f"{spelling} ({district})", district)


# Town names offered as "did you mean" are read from this many of the index's distinct places.
MAX_SUGGESTION_PLACES = 5000


def _unknown_town(conn: Connection, near: str, folded: str) -> str:
    """"We couldn't find “Mitchm”. Did you mean Mitcham? ..." — a close name the listings use, if any."""
    known = conn.execute(
        select(si.index.c.place).where(si.index.c.place.is_not(None)).distinct().limit(MAX_SUGGESTION_PLACES)
    ).scalars()
    close = difflib.get_close_matches(folded, list(known), n=1, cutoff=0.75)
    hint = f" Did you mean {_spelling(conn, close[0])}?" if close else ""
    return f"We couldn't find “{near.strip()}”.{hint} Check the spelling, or type a postcode (like CR4 1AA)."
