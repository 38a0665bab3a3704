"""The search index and the query: filters, distance order, freshness, paging, on SQLite and PostgreSQL.

Activities are indexed with ``search_index.reindex`` on a real database (no harvest), and
searched with ``query.search`` on a clock the test controls.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from aggregator import geocode, query, search_index
from aggregator.freshness import Thresholds
from aggregator.store import metadata
from federation.db import make_engine
from tests.factories import event_activity, weekly_activity

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday; the next Tuesday is the 24th
CENTRE = (51.4000, -0.1500)
CENTRE_POSTCODE = "CR4 1AA"
EARTH_KM = 6371.0088
NOBODY = geocode.NoGeocoder()


def moved(point: tuple[float, float], north_km: float = 0.0, east_km: float = 0.0) -> tuple[float, float]:
    """A point ``north_km`` north and ``east_km`` east of ``point`` (small distances)."""
    lat, lon = point
    return (
        lat + math.degrees(north_km / EARTH_KM),
        lon + math.degrees(east_km / (EARTH_KM * math.cos(math.radians(lat)))),
    )


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance by the textbook haversine formula: the test's independent yardstick."""
    (lat1, lon1), (lat2, lon2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(h))


def place(name: str, point: tuple[float, float] | None, postcode: str = "CR4 9ZZ", **extra: Any) -> dict:
    location: dict[str, Any] = {
        "name": f"{name} hall",
        "address": {"streetAddress": "1 High Street", "addressLocality": "Mitcham", "postalCode": postcode},
        **extra,
    }
    if point is not None:
        location["geo"] = {"latitude": point[0], "longitude": point[1]}
    return location


def on(day: str, start: str = "10:00", end: str = "11:00") -> list[dict[str, Any]]:
    entry = {**weekly_activity()["schedule"][0], "byDay": [day], "startTime": start, "endTime": end}
    return [entry]


def walk(name: str, point: tuple[float, float] | None = CENTRE, day: str = "TU", **overrides: Any) -> dict:
    """A weekly activity named ``name`` (its id ends in the name) at ``point``; None drops a field."""
    overrides.setdefault("location", place(name, point))
    overrides.setdefault("schedule", on(day))
    activity = weekly_activity(id=f"https://pub.example/activities/{name}", name=name, **overrides)
    return {key: value for key, value in activity.items() if value is not None}


def verified_days_ago(days: int) -> str:
    return (NOW.date() - timedelta(days=days)).isoformat()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A store on SQLite, then on PostgreSQL."""
    engine = make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:
    """A store on SQLite alone, for tests that never reach SQL that differs between databases."""
    engine = make_engine(f"sqlite:///{tmp_path / 'query.sqlite'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def put(engine: Engine, *activities: Mapping[str, Any], now: datetime = NOW - timedelta(days=1)) -> None:
    """Index each activity as the merge would, with its own id as the merged id."""
    with engine.begin() as conn:
        for activity in activities:
            provenance = [
                {"source_id": None, "source_url": "https://pub.example/feed", "item_id": activity["id"]}
            ]
            search_index.reindex(conn, activity["id"], activity, provenance, now=now)


def names(body: Mapping[str, Any]) -> list[str]:
    return [item["activity"]["name"] for item in body["items"]]


def find(conn: Connection, now: datetime = NOW, **params: str) -> dict[str, Any]:
    return query.search(conn, params, now=now, geocoder=NOBODY)


def everything(conn: Connection, now: datetime = NOW, **params: str) -> list[dict[str, Any]]:
    """Every result of a search, page by page, checking no page is larger than asked."""
    items, cursor = [], None
    while True:
        body = find(conn, now, **params, **({"cursor": cursor} if cursor else {}))
        assert len(body["items"]) <= int(params.get("limit", query.DEFAULT_LIMIT))
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


# -- the headline search -----------------------------------------------------------------------


def test_near_a_postcode_free_on_tuesdays_in_distance_order(engine):
    west = moved(CENTRE, east_km=-1.0)
    put(
        engine,
        # Teaches the index where CR4 1AA is; Saturday and paid, so not a result itself.
        walk(
            "anchor",
            CENTRE,
            day="SA",
            price={"amount": 2, "currency": "GBP"},
            location=place("anchor", CENTRE, postcode=CENTRE_POSTCODE),
        ),
        # Teaches CR4 2LF (1 km west) for "no-geo" below; Thursday, so not a result.
        walk("teacher", west, day="TH", location=place("teacher", west, postcode="CR4 2LF")),
        walk("near", moved(CENTRE, north_km=0.5)),
        walk("east", moved(CENTRE, east_km=1.5)),
        walk("outside", moved(CENTRE, north_km=-2.5)),
        walk("paid", moved(CENTRE, north_km=0.3), price={"amount": 3.5, "currency": "GBP"}),
        walk("wednesday", moved(CENTRE, north_km=0.8), day="WE"),
        walk("no-geo", None, location=place("no-geo", None, postcode="CR4 2LF")),
        walk("stale", moved(CENTRE, north_km=0.2), lastVerified=verified_days_ago(200)),
        walk("expired", moved(CENTRE, north_km=0.2), lastVerified=verified_days_ago(400)),
        walk("cancelled", moved(CENTRE, north_km=0.1), status="cancelled"),
        event_activity(
            id="https://pub.example/activities/event",
            name="event",
            location=place("event", moved(CENTRE, north_km=-1.2)),
            price={"isFree": True},
            startDate="2026-11-24T18:30:00+00:00",
            endDate="2026-11-24T20:00:00+00:00",
        ),
    )
    with engine.begin() as conn:
        body = find(conn, near="cr41aa", radius="2", free="true", day="tu")

    assert names(body) == ["near", "no-geo", "event", "east", "stale"]
    distances = [item["distance_km"] for item in body["items"]]
    assert distances == pytest.approx([0.5, 1.0, 1.2, 1.5, 0.2], abs=0.01)
    assert [item["walking_minutes"] for item in body["items"]] == [
        math.ceil(d * 1.3 / 4.8 * 60) for d in distances
    ]
    assert [item["freshness"]["state"] for item in body["items"]] == ["fresh"] * 4 + ["stale"]
    assert body["items"][-1]["freshness"]["note"] == "Not confirmed since May 2026"
    first = body["items"][0]
    assert first["next_occurrences"] == [
        {"start": "2026-11-24T10:00:00+00:00", "end": "2026-11-24T11:00:00+00:00"},
        {"start": "2026-12-01T10:00:00+00:00", "end": "2026-12-01T11:00:00+00:00"},
        {"start": "2026-12-08T10:00:00+00:00", "end": "2026-12-08T11:00:00+00:00"},
    ]
    assert first["sources"] == [
        {
            "name": "https://pub.example/feed",
            "url": "https://pub.example/feed",
            "itemId": "https://pub.example/activities/near",
            "id": None,
        }
    ]
    assert body["next_cursor"] is None
    assert body["query"] == {
        "near": "CR4 1AA",
        "lat": pytest.approx(CENTRE[0]),
        "lon": pytest.approx(CENTRE[1]),
        "radius_km": 2.0,
        "located": {"precision": "postcode", "label": "CR4 1AA (Mitcham)"},
        "day": ["tu"],
        "free": True,
        "limit": 20,
    }


def test_each_filter_narrows_the_results(engine):
    recent = (NOW - timedelta(days=2)).isoformat()
    month_ago = (NOW - timedelta(days=30)).isoformat()
    put(
        engine,
        walk(
            "walk-tue-morning",
            audiences=["older-people"],
            ageRange={"min": 60},
            capacity={"status": "full", "updatedAt": month_ago},
        ),
        walk(
            "lunch-wed-noon",
            day="WE",
            categories=["lunch-club"],
            schedule=on("WE", "12:30", "14:00"),
            price={"amount": 4, "currency": "GBP"},
            audiences=["older-people", "carers"],
            ageRange={},
            capacity={"status": "spaces", "updatedAt": recent},
        ),
        walk(
            "choir-thu-evening",
            categories=["music-singing"],
            schedule=on("TH", "19:00", "21:00"),
            audiences=[],
            ageRange={"min": 16, "max": 25},
            capacity={"status": "full", "updatedAt": recent},
            description="Sing your heart out: 100% fun, no auditions.",
            location=place("choir", CENTRE, accessibility=["hearing-loop", "step-free"]),
        ),
        walk(
            "toddlers-mon",
            day="MO",
            categories=["baby-toddler"],
            audiences=["parents-and-babies"],
            ageRange={"max": 4},
            capacity={"status": "waiting-list", "updatedAt": recent},
            location=place("toddlers", CENTRE, accessibility=["step-free"]),
        ),
        walk(
            "shed-fri-afternoon",
            categories=["mens-shed"],
            schedule=on("FR", "14:00", "16:00"),
            audiences=["men"],
            ageRange={},
            capacity=None,
        ),
    )
    with engine.connect() as conn:

        def only(**params: str) -> set[str]:
            return set(names(find(conn, **params, limit="100")))

        every = {
            "walk-tue-morning",
            "lunch-wed-noon",
            "choir-thu-evening",
            "toddlers-mon",
            "shed-fri-afternoon",
        }
        assert only() == every
        assert only(category="walking") == {"walk-tue-morning"}
        assert only(category="walking,lunch-club") == {"walk-tue-morning", "lunch-wed-noon"}
        assert only(day="we") == {"lunch-wed-noon"}
        assert only(day="mo,th") == {"toddlers-mon", "choir-thu-evening"}
        assert only(time="morning") == {"walk-tue-morning", "toddlers-mon"}
        assert only(time="afternoon") == {"lunch-wed-noon", "shed-fri-afternoon"}
        assert only(time="evening") == {"choir-thu-evening"}
        assert only(free="true") == every - {"lunch-wed-noon"}
        assert only(free="false") == every
        assert only(age="3") == {"lunch-wed-noon", "toddlers-mon", "shed-fri-afternoon"}
        assert only(age="70") == {"walk-tue-morning", "lunch-wed-noon", "shed-fri-afternoon"}
        assert only(audience="older-people") == {"walk-tue-morning", "lunch-wed-noon"}
        assert only(audience="carers,men") == {"lunch-wed-noon", "shed-fri-afternoon"}
        assert only(accessibility="step-free") == {"choir-thu-evening", "toddlers-mon"}
        assert only(accessibility="step-free,hearing-loop") == {"choir-thu-evening"}
        # Recent "full" and "waiting-list" go; a month-old "full" and no word at all stay, as unknown.
        assert only(has_space="true") == {"walk-tue-morning", "lunch-wed-noon", "shed-fri-afternoon"}
        assert only(q="HEART") == {"choir-thu-evening"}
        assert only(q="CAFE") == every - {"choir-thu-evening"}  # the others say "café"
        assert only(q="100%") == {"choir-thu-evening"}
        assert only(q="10_%") == set()  # LIKE wildcards are plain characters
        assert only(q="mitcham walkers") == every  # the organiser's name is searched too
        assert only(q="mitcham nowhere") == set()
        assert only(category="lunch-club", day="tu") == set()

        shown = {item["activity"]["name"]: item["activity"].get("capacity") for item in find(conn)["items"]}
        assert shown["walk-tue-morning"] == {"status": "unknown", "updatedAt": month_ago}
        assert shown["lunch-wed-noon"] == {"status": "spaces", "updatedAt": recent}


def test_without_near_results_follow_the_next_session_even_as_the_clock_moves(engine):
    put(
        engine,
        walk("monday", day="MO"),
        walk("tuesday", day="TU"),
        walk("saturday", day="SA"),
        event_activity(
            id="https://pub.example/activities/sunday-event",
            name="sunday-event",
            startDate="2026-11-22T12:00:00+00:00",
            endDate="2026-11-22T14:00:00+00:00",
        ),
        now=NOW,
    )
    with engine.begin() as conn:
        assert names(find(conn)) == ["saturday", "sunday-event", "monday", "tuesday"]
        # Sunday afternoon: Saturday's session has passed (its stored next session is out of date),
        # the one-off event is over.
        later = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
        assert names(find(conn, later)) == ["monday", "tuesday", "saturday"]
        assert names(find(conn, later, limit="1")) == ["monday"]
        assert [i["activity"]["name"] for i in everything(conn, later, limit="1")] == [
            "monday",
            "tuesday",
            "saturday",
        ]
        # Rolling the stored sessions forward changes nothing a query can see.
        assert search_index.roll_forward(conn, later) == 2
        assert names(find(conn, later)) == ["monday", "tuesday", "saturday"]
        # An index written "in the future" of the query's clock is not trusted either.
        earlier = NOW - timedelta(days=3)  # Tuesday 17th, 09:00
        assert names(find(conn, earlier)) == ["tuesday", "saturday", "sunday-event", "monday"]


def test_cursor_pages_give_every_item_once(engine):
    points = [moved(CENTRE, north_km=0.1 * (n % 7), east_km=0.1 * (n // 7)) for n in range(23)]
    # Pairs at the same spot, so distance ties are broken by the next session, then the id.
    activities = [walk(f"item-{n:02d}", point, day="MO" if n % 2 else "TU") for n, point in enumerate(points)]
    activities += [walk(f"twin-{n:02d}", points[n], day="WE") for n in range(0, 23, 5)]
    activities += [walk("stale-one", CENTRE, lastVerified=verified_days_ago(300))]
    put(engine, *activities)
    with engine.connect() as conn:
        for params in ({"near": "51.4,-0.15", "radius": "5"}, {}):
            whole = find(conn, **params, limit="100")["items"]
            assert len(whole) == len(activities)
            for size in ("1", "4", "7"):
                paged = everything(conn, **params, limit=size)
                assert [i["activity"]["id"] for i in paged] == [i["activity"]["id"] for i in whole]
        ordered = [i["activity"]["name"] for i in find(conn, near="51.4,-0.15", limit="100")["items"]]
        keys = [(i["freshness"]["state"] == "stale", i["distance_km"]) for i in whole]
        assert keys == sorted(keys) and ordered[-1] == "stale-one"
        # At one spot, the sooner next session first: Monday or Tuesday before Wednesday.
        assert all(ordered.index(f"item-{n:02d}") < ordered.index(f"twin-{n:02d}") for n in range(0, 23, 5))

        first = find(conn, near="51.4,-0.15", limit="3")
        with pytest.raises(query.QueryError) as error:
            find(conn, near="51.4,-0.15", limit="3", day="mo", cursor=first["next_cursor"])
        assert error.value.parameter == "cursor"
        with pytest.raises(query.QueryError):
            find(conn, cursor="not-a-cursor")


# -- geometry: cell edges, the 0° meridian ------------------------------------------------------


# A small circle is asked for as a list of squares, a wide one (over MAX_LISTED_SQUARES) as ranges.
@pytest.mark.parametrize("radius", [3.0, 40.0])
def test_radius_is_exact_across_cell_edges_and_the_meridian(engine, radius):
    centre = (51.45, 0.0)  # on a grid row boundary and on the column boundary at 0°
    squares = sum(high - low + 1 for low, high in search_index.cell_ranges(*centre, radius))
    assert (squares > query.MAX_LISTED_SQUARES) == (radius > 25)
    rng = random.Random(7)
    points = []
    for _ in range(160):
        bearing, km = rng.uniform(0, 2 * math.pi), rng.uniform(0, 1.5 * radius)
        points.append(moved(centre, north_km=km * math.cos(bearing), east_km=km * math.sin(bearing)))
    # Points right on the grid lines: the 0° meridian, and the 51.45° and 51.40° parallels.
    points += [(51.45, 0.0), (51.45, -1e-9), (51.45 - 1e-9, 1e-9), (51.40, 0.01), (51.43, -0.0000001)]
    put(engine, *(walk(f"p{n:03d}", point) for n, point in enumerate(points)))
    expected = sorted(
        (haversine_km(centre, p), f"p{n:03d}")
        for n, p in enumerate(points)
        if haversine_km(centre, p) <= radius
    )
    assert any(p[1] < 0 for p in points) and any(p[1] > 0 for p in points)
    with engine.connect() as conn:
        found = everything(conn, near="51.45,0", radius=str(radius), limit="50")
    assert [item["activity"]["name"] for item in found] == [name for _, name in expected]
    assert [item["distance_km"] for item in found] == [round(d, 2) for d, _ in expected]


@pytest.mark.parametrize(
    "centre", [(51.45, 0.0), (51.4999, -0.0001), (55.0, 179.99), (-33.9, -179.999), (89.99, 10.0), (0.0, 0.0)]
)
def test_cell_ranges_cover_every_point_in_the_circle(centre):
    rng = random.Random(11)
    for radius in (0.5, 5.0, 50.0):
        runs = search_index.cell_ranges(*centre, radius)
        for _ in range(400):
            bearing, km = rng.uniform(0, 2 * math.pi), radius * math.sqrt(rng.random())
            # Destination on the sphere (exact, any latitude), for points up to the edge of the circle.
            lat1, lon1, d = math.radians(centre[0]), math.radians(centre[1]), km / EARTH_KM
            lat2 = math.asin(math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(bearing))
            lon2 = lon1 + math.atan2(
                math.sin(bearing) * math.sin(d) * math.cos(lat1),
                math.cos(d) - math.sin(lat1) * math.sin(lat2),
            )
            point = (math.degrees(lat2), (math.degrees(lon2) + 540) % 360 - 180)
            cell = search_index.cell_of(*point)
            assert any(low <= cell <= high for low, high in runs), (centre, radius, point)
        assert search_index.distance_km(search_index.chord_limit(radius)) == pytest.approx(radius)


# -- freshness ---------------------------------------------------------------------------------


def test_freshness_orders_stale_last_and_hides_expired_but_keeps_it(engine):
    put(
        engine,
        walk("fresh-far", moved(CENTRE, north_km=3), lastVerified=verified_days_ago(10)),
        walk("ageing-mid", moved(CENTRE, north_km=2), lastVerified=verified_days_ago(120)),
        walk("stale-near", moved(CENTRE, north_km=1), lastVerified=verified_days_ago(200)),
        walk("expired-nearest", CENTRE, lastVerified=verified_days_ago(366)),
    )
    with engine.connect() as conn:
        body = find(conn, near="51.4,-0.15")
        assert names(body) == ["ageing-mid", "fresh-far", "stale-near"]
        assert [i["freshness"]["state"] for i in body["items"]] == ["ageing", "fresh", "stale"]
        assert [i["freshness"]["note"] for i in body["items"]] == [None, None, "Not confirmed since May 2026"]

        # 250 days on, the fresh one is stale and the rest expired.
        later = NOW + timedelta(days=250)
        body = find(conn, later, near="51.4,-0.15")
        assert names(body) == ["fresh-far"]
        assert body["items"][0]["freshness"]["state"] == "stale"

        # An operator with shorter thresholds sees more as stale, and hides sooner.
        strict = Thresholds(fresh_days=5, ageing_days=30, stale_days=150)
        body = query.search(conn, {"near": "51.4,-0.15"}, now=NOW, geocoder=NOBODY, thresholds=strict)
        assert names(body) == ["fresh-far", "ageing-mid"]
        assert [i["freshness"]["state"] for i in body["items"]] == ["ageing", "stale"]


# -- mistakes a person can make ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter", "says"),
    [
        ({"near": "ZZ1 1ZZ"}, "near", "We couldn't find ZZ1 1ZZ. Check the postcode, or try a nearby town."),
        ({"near": "Mitcham"}, "near", "We couldn't find “Mitcham”. Check the spelling, or type a postcode"),
        ({"near": "?!"}, "near", "We couldn't find “?!”. Type a postcode (like CR4 1AA) or a town."),
        ({"near": "91,0"}, "near", "is not a place on Earth"),
        ({"near": "51.4,-0.15", "radius": "80"}, "radius", "'radius' must be between 0 and 50; got 80."),
        ({"near": "51.4,-0.15", "radius": "far"}, "radius", "'radius' must be a number, like radius=3"),
        ({"radius": "3"}, "radius", "add near=<postcode>"),
        ({"category": "walkin"}, "category", "We don't know the category 'walkin'. Did you mean 'walking'?"),
        ({"day": "tuesday"}, "day", "We don't know the day 'tuesday'."),
        ({"time": "night"}, "time", "Use one or more of: morning, afternoon, evening."),
        ({"free": "maybe"}, "free", "'free' must be true or false"),
        ({"age": "3.5"}, "age", "whole number"),
        ({"limit": "500"}, "limit", "between 1 and 100"),
    ],
)
def test_mistakes_get_a_message_that_names_the_parameter(sqlite_engine, params, parameter, says):
    with sqlite_engine.begin() as conn, pytest.raises(query.QueryError) as error:
        find(conn, **params)
    assert error.value.parameter == parameter
    assert says in str(error.value)


def test_an_item_is_placed_when_its_postcode_is_learned_later(engine):
    put(engine, walk("waiting", None, location=place("waiting", None, postcode="SE1 7PB")))
    with engine.begin() as conn:
        with pytest.raises(query.QueryError):
            find(conn, near="SE1 7PB")
        assert names(find(conn, near="51.4,-0.15", radius="50")) == []
        assert names(find(conn)) == ["waiting"]  # without near it is listed all the same
    teacher_point = (51.4985, -0.1131)
    put(engine, walk("teacher", teacher_point, day="SU", location=place("teacher", teacher_point, "SE1 7PB")))
    with engine.begin() as conn:
        body = find(conn, near="SE1 7PB", radius="1")
    assert names(body) == ["teacher", "waiting"]  # same spot: Sunday the 22nd before Tuesday the 24th
    assert body["items"][0]["distance_km"] == 0.0


def test_gir_0aa_is_indexed_learned_and_searchable(engine):
    """The one postcode that breaks the usual shape is a postcode everywhere, as in the contract."""
    put(
        engine,
        walk("girobank", CENTRE, location=place("girobank", CENTRE, postcode="gir0aa")),
        walk("waiting", None, day="WE", location=place("waiting", None, postcode="GIR 0AA")),
    )
    with engine.begin() as conn:
        assert geocode.known(conn, "GIR 0AA") == pytest.approx(CENTRE)
        body = find(conn, near="gir 0aa", radius="1")
    assert names(body) == ["girobank", "waiting"]  # same spot: Tuesday before Wednesday
    assert body["query"]["near"] == "GIR 0AA"


def test_index_rows_follow_reindex_and_remove(engine):
    put(engine, walk("one"), walk("two"))
    put(engine, walk("one", moved(CENTRE, north_km=4)))
    with engine.begin() as conn:
        assert names(find(conn, near="51.4,-0.15", radius="1")) == ["two"]
        search_index.remove(conn, "https://pub.example/activities/two")
        assert names(find(conn, near="51.4,-0.15", radius="5")) == ["one"]


def test_rows_waiting_for_a_postcode_are_placed_by_the_geocoder_after_a_harvest(engine):
    put(
        engine,
        walk("by-the-palace", None, location=place("palace", None, postcode="SW1A 1AA")),
        walk("nowhere-known", None, location=place("nowhere", None, postcode="ZZ1 1ZZ")),
    )
    csv = geocode.CsvGeocoder(Path(__file__).parent / "data" / "postcodes_ons.csv")
    with engine.begin() as conn:
        assert names(find(conn, near="51.501,-0.1416", radius="1")) == []
        assert search_index.geocode_missing(conn, csv, NOW) == 1
        assert names(find(conn, near="51.501,-0.1416", radius="1")) == ["by-the-palace"]
        assert search_index.geocode_missing(conn, csv, NOW) == 0  # ZZ1 1ZZ is remembered as unknown


def test_an_item_removed_while_a_page_is_read_is_left_out(engine):
    """A deletion committed between reading a page's keys and its documents drops it, not the request."""
    put(engine, walk("stays"), walk("goes", day="WE"))
    removed = []

    def remove_first(conn, cursor, statement, parameters, context, executemany):
        if "search_documents.provenance" in statement and not removed:
            removed.append(True)
            with engine.begin() as other:  # another process's harvest, committing meanwhile
                search_index.remove(other, "https://pub.example/activities/goes")

    event.listen(engine, "before_cursor_execute", remove_first)
    try:
        with engine.connect() as conn:
            body = find(conn, near="51.4,-0.15")
    finally:
        event.remove(engine, "before_cursor_execute", remove_first)
    assert removed and names(body) == ["stays"]
