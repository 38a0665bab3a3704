"""Near any UK postcode or town with no settings: sectors, districts, towns, ambiguous names, and
the operator's ONS Postcode Directory winning over what the listings teach, on SQLite and PostgreSQL.

Listings are indexed with ``search_index.reindex`` on a real database (as the merge does), and
searched with ``query.search``, the body of ``GET /api/activities``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from aggregator import geocode, query, search_index
from aggregator.store import metadata
from federation.db import make_engine
from federation.geocoding import CsvGeocoder, RememberingGeocoder, fold_place
from tests.aggregator.test_geocode import postcodes_io  # noqa: F401  (a fixture: the fake postcodes.io)
from tests.aggregator.test_query import NOW, haversine_km, moved, names, place, put, walk

NOBODY = geocode.NoGeocoder()
MITCHAM = (51.4030, -0.1680)
# Listings that give both postcode and map position: what the aggregator learns its areas from.
TAUGHT = {
    "CR4 1HT": moved(MITCHAM, north_km=-0.6, east_km=0.8),
    "CR4 2LF": moved(MITCHAM, north_km=0.3, east_km=-0.9),
    "CR4 2NB": moved(MITCHAM, north_km=0.5, east_km=-1.1),
    "CR4 4AA": moved(MITCHAM, north_km=-1.0, east_km=-0.2),
}
MORDEN = moved(MITCHAM, east_km=-1.9)
FAR = moved(MITCHAM, north_km=12)  # Finsbury Park, say: out of every radius here
# A small file in the ONS Postcode Directory's layout (the columns an operator's copy has).
ONSPD = Path(__file__).parent / "data" / "onspd_sample.csv"


def mean(points: list[tuple[float, float]]) -> tuple[float, float]:
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def mitcham(engine: Engine) -> None:
    """Four Mitcham listings with their own points, a Morden one, and Colliers Wood's."""
    put(
        engine,
        *(
            walk(f"walk-{code[-3:]}", point, location=place(code, point, postcode=code))
            for code, point in TAUGHT.items()
        ),
    )
    morden = place("morden", MORDEN, "SM4 5DX")
    morden["address"]["addressLocality"] = "Morden"
    wood = moved(MITCHAM, north_km=1.7, east_km=-0.8)
    wood_place = place("wood", wood, "SW19 2BY")
    wood_place["address"]["addressLocality"] = "Colliers Wood"
    put(engine, walk("morden-shed", MORDEN, location=morden), walk("wood-choir", wood, location=wood_place))


def test_a_postcode_no_listing_has_is_placed_at_its_district_and_finds_its_activities(engine):
    mitcham(engine)
    with engine.begin() as conn:
        body = query.search(conn, {"near": "cr4 9zz", "radius": "3"}, now=NOW, geocoder=NOBODY)
    middle = mean(list(TAUGHT.values()))
    assert body["query"]["located"] == {"precision": "district", "label": "CR4 (Mitcham)"}
    assert body["query"]["lat"] == pytest.approx(middle[0])
    assert body["query"]["lon"] == pytest.approx(middle[1])
    distances = [item["distance_km"] for item in body["items"]]
    assert distances == sorted(distances) and len(distances) == 6  # nearest first, Morden and the wood too
    assert body["items"][0]["distance_km"] == pytest.approx(
        min(haversine_km(middle, point) for point in TAUGHT.values()), abs=0.01
    )
    # Measured from the middle of a district: every distance is approximate, and says so.
    assert all(item["distance_approximate"] for item in body["items"])
    assert all(item["placed"] is None for item in body["items"])  # each gives its own point


def test_a_postcode_in_a_known_sector_is_placed_at_the_sector(engine):
    mitcham(engine)
    with engine.begin() as conn:
        body = query.search(conn, {"near": "CR4 2DG", "radius": "1"}, now=NOW, geocoder=NOBODY)
        whole_district = query.search(conn, {"near": "CR4", "radius": "1"}, now=NOW, geocoder=NOBODY)
    sector = mean([TAUGHT["CR4 2LF"], TAUGHT["CR4 2NB"]])
    assert body["query"]["located"] == {"precision": "sector", "label": "CR4 2 (Mitcham)"}
    assert body["query"]["lat"] == pytest.approx(sector[0])
    assert names(body)[:2] == ["walk-2LF", "walk-2NB"] or names(body)[:2] == ["walk-2NB", "walk-2LF"]
    # A district typed on its own is a search near its middle.
    assert whole_district["query"]["located"] == {"precision": "district", "label": "CR4 (Mitcham)"}


def test_a_town_by_name_in_any_case(engine):
    mitcham(engine)
    with engine.begin() as conn:
        for typed in ("Mitcham", "mitcham", "  MITCHAM "):
            body = query.search(conn, {"near": typed, "radius": "2"}, now=NOW, geocoder=NOBODY)
            assert body["query"]["located"] == {"precision": "place", "label": "Mitcham"}
            assert body["query"]["lat"] == pytest.approx(mean(list(TAUGHT.values()))[0])
            assert set(names(body)) >= {f"walk-{code[-3:]}" for code in TAUGHT}
        wood = query.search(conn, {"near": "colliers wood", "radius": "1"}, now=NOW, geocoder=NOBODY)
        assert wood["query"]["located"] == {"precision": "place", "label": "Colliers Wood"}
        assert names(wood)[0] == "wood-choir"
        assert wood["items"][0]["distance_km"] == 0.0
        with pytest.raises(query.QueryError) as typo:
            query.search(conn, {"near": "Mitchm"}, now=NOW, geocoder=NOBODY)
    assert str(typo.value) == (
        "We couldn't find “Mitchm”. Did you mean Mitcham? "
        "Check the spelling, or type a postcode (like CR4 1AA)."
    )
    assert fold_place("Collier's  Wood") == fold_place("colliers-wood".replace("-", " ")) == "colliers wood"


def test_a_name_used_in_two_places_lists_the_choices(engine):
    newport_wales, newport_wight = (51.5842, -2.9977), (50.7007, -1.2923)
    put(
        engine,
        *(
            walk(name, point, location=dict(place(name, point, postcode), address={
                "streetAddress": "1 High Street", "addressLocality": "Newport", "postalCode": postcode}))
            for name, point, postcode in (
                ("wales-walk", newport_wales, "NP20 1AA"),
                ("wales-choir", moved(newport_wales, east_km=1), "NP20 2BB"),
                ("wight-walk", newport_wight, "PO30 1AA"),
            )
        ),
    )  # fmt: skip
    with engine.begin() as conn:
        with pytest.raises(query.QueryError) as ambiguous:
            query.search(conn, {"near": "newport"}, now=NOW, geocoder=NOBODY)
        assert ambiguous.value.parameter == "near"
        assert ambiguous.value.choices == [
            {"label": "Newport (NP20)", "near": "NP20"},  # two listings there: first
            {"label": "Newport (PO30)", "near": "PO30"},
        ]
        assert str(ambiguous.value) == (
            "There is more than one Newport: Newport (NP20) or Newport (PO30). "
            "Choose one, or type a postcode."
        )
        chosen = query.search(conn, {"near": "PO30", "radius": "1"}, now=NOW, geocoder=NOBODY)
    assert names(chosen) == ["wight-walk"]
    assert chosen["query"]["located"]["label"] == "PO30 (Newport)"


def test_an_unknown_district_gets_a_plain_message(engine):
    mitcham(engine)
    with engine.begin() as conn:
        for near, message in (
            ("ZZ9 9ZZ", "We couldn't find ZZ9 9ZZ. Check the postcode, or try a nearby town."),
            ("zz9", "We couldn't find the postcode area ZZ9. Check the postcode, or try a nearby town."),
        ):
            with pytest.raises(query.QueryError) as error:
                query.search(conn, {"near": near}, now=NOW, geocoder=NOBODY)
            assert (str(error.value), error.value.parameter) == (message, "near")


def test_a_listing_whose_exact_postcode_is_unknown_is_found_at_its_district(engine):
    mitcham(engine)
    put(engine, walk("new-lunch", None, day="WE", location=place("new-lunch", None, postcode="CR4 3ZZ")))
    with engine.begin() as conn:
        body = query.search(conn, {"near": "51.4030,-0.1680", "radius": "2"}, now=NOW, geocoder=NOBODY)
        (lunch,) = [item for item in body["items"] if item["activity"]["name"] == "new-lunch"]
        middle = mean(list(TAUGHT.values()))
        assert lunch["placed"] == "district"
        assert lunch["distance_approximate"] is True
        assert lunch["distance_km"] == pytest.approx(haversine_km(MITCHAM, middle), abs=0.01)
        exact = [item for item in body["items"] if item["activity"]["name"] == "walk-1HT"]
        assert exact[0]["distance_approximate"] is False  # a point given, measured from a point
    # When a listing with a point teaches CR4 3ZZ, the waiting one moves there, exactly.
    taught = moved(MITCHAM, north_km=-1.5)
    put(engine, walk("teacher", taught, location=place("teacher", taught, postcode="CR4 3ZZ")))
    with engine.begin() as conn:
        body = query.search(conn, {"near": "CR4 3ZZ", "radius": "0.1"}, now=NOW, geocoder=NOBODY)
    assert sorted(names(body)) == ["new-lunch", "teacher"]
    placed = {item["activity"]["name"]: item["placed"] for item in body["items"]}
    assert placed["new-lunch"] == "postcode"
    assert body["query"]["located"]["precision"] == "postcode"


def test_with_the_ons_postcode_directory_exact_postcodes_win_over_district_middles(engine):
    mitcham(engine)
    put(engine, walk("waiting", None, day="WE", location=place("waiting", None, postcode="CR4 2DG")))
    directory = CsvGeocoder(ONSPD)
    with engine.begin() as conn:
        # Without the file: the sector's middle, from the listings.
        before = query.search(conn, {"near": "CR4 2DG"}, now=NOW, geocoder=NOBODY)
        assert before["query"]["located"]["precision"] == "sector"
        # With it: the directory's own point for the postcode.
        body = query.search(conn, {"near": "CR4 2DG", "radius": "1"}, now=NOW, geocoder=directory)
        assert body["query"]["located"] == {"precision": "postcode", "label": "CR4 2DG (Mitcham)"}
        assert (body["query"]["lat"], body["query"]["lon"]) == (51.4067, -0.1761)
        assert body["items"][0]["activity"]["name"] == "waiting"  # placed at the same point now
        assert body["items"][0]["placed"] == "postcode"
        assert body["items"][0]["distance_km"] == 0.0
        # A postcode the file lacks: the file's sector middle, not the listings'.
        sector = query.search(conn, {"near": "CR4 1ZZ"}, now=NOW, geocoder=directory)
        assert sector["query"]["located"]["precision"] == "sector"
        assert sector["query"]["lat"] == pytest.approx((51.3982 + 51.4000) / 2)
        # Terminated postcodes (doterm set) are not placed exactly.
        assert directory.lookup("CR4 1XX") is None
    # After a harvest, rows placed only at an area are placed again from the file.
    put(engine, walk("rough", None, day="TH", location=place("rough", None, postcode="CR4 1HU")))
    with engine.begin() as conn:
        assert search_index.geocode_missing(conn, directory, NOW) == 1
        rough = query.search(conn, {"near": "CR4 1HU", "radius": "0.1"}, now=NOW, geocoder=directory)
    assert names(rough) == ["rough"] and rough["items"][0]["placed"] == "postcode"


def test_a_postcode_service_that_is_down_leaves_the_search_at_the_district(engine, postcodes_io):  # noqa: F811
    fake, service = postcodes_io
    mitcham(engine)
    fake.broken = True
    with engine.begin() as conn:
        body = query.search(conn, {"near": "CR4 9ZZ"}, now=NOW, geocoder=service)
        assert body["query"]["located"]["precision"] == "district"
        with pytest.raises(geocode.GeocoderUnavailable):  # nothing here knows SE1: say "try later"
            query.search(conn, {"near": "SE1 7PB"}, now=NOW, geocoder=service)
    fake.broken = False
    fake.known["CR4 9ZZ"] = MITCHAM
    with engine.begin() as conn:  # nothing was remembered of the failure: asked again, once
        body = query.search(conn, {"near": "CR4 9ZZ"}, now=NOW, geocoder=service)
        query.search(conn, {"near": "CR4 9ZZ"}, now=NOW, geocoder=service)
    assert body["query"]["located"]["precision"] == "postcode"
    assert fake.asked == ["CR4 9ZZ", "SE1 7PB", "CR4 9ZZ"]


def test_a_postcode_file_naming_places_finds_towns_no_listing_names(engine, tmp_path):
    mitcham(engine)
    named = tmp_path / "named.csv"
    named.write_text(
        "pcds,lat,long,locality\n"
        "SM4 6AA,51.3950,-0.2000,Lower Morden\nSM4 6AB,51.3960,-0.2010,Lower Morden\n"
        "CR4 2DG,51.4067,-0.1761,Mitcham\n"
    )
    with engine.begin() as conn:
        body = query.search(conn, {"near": "lower morden"}, now=NOW, geocoder=CsvGeocoder(named))
    assert body["query"]["located"] == {"precision": "place", "label": "Lower Morden"}
    assert (body["query"]["lat"], body["query"]["lon"]) == (pytest.approx(51.3955), pytest.approx(-0.2005))
    assert names(body)[0] == "morden-shed"  # the nearest listing, about 1 km away


def test_remembered_answers_are_bounded(postcodes_io):  # noqa: F811
    fake, service = postcodes_io
    remembering = RememberingGeocoder(service, size=2)
    for postcode in ("SW1A 1AA", "ZZ1 1ZZ", "SW1A 1AA", "ZZ2 2ZZ", "ZZ1 1ZZ"):
        remembering.lookup(postcode)
    # Each asked once while remembered; the oldest forgotten once a third came along.
    assert fake.asked == ["SW1A 1AA", "ZZ1 1ZZ", "ZZ2 2ZZ", "ZZ1 1ZZ"]
    assert len(remembering._answers) == 2
