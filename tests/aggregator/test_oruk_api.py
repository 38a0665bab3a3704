"""The Open Referral UK API (``/oruk``) against the UK profile's own schemas, and each of its filters.

The profile's OpenAPI and compiled JSON Schemas (CC BY-SA 4.0) are read from ``../shared/specs/oruk``,
never copied here; without them these tests skip, and in CI they fail. Every endpoint's answers over
the demo network's sample data must validate with 0 errors; each filter is shown to keep an activity
it must include and to leave out one it must exclude, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import calendar
import json
import random
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from aggregator.oruk import service_id
from aggregator.oruk.filters import PARAMETERS
from demo.sample_data import sample_network
from schema import is_valid_activity
from schema.resources import SCHEMA_BASE_URL
from tests.conftest import need_service
from tests.factories import event_activity, weekly_activity
from tests.shared.test_renderers_total import store_merged

SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs" / "oruk"
BASE_URI = "https://specs.invalid/oruk/"
LONDON = ZoneInfo("Europe/London")
TODAY = date.today()


# -- the profile's schemas, resolved locally ----------------------------------------------------


def _is_uri(value: object) -> bool:
    """An absolute URI (jsonschema checks ``uri`` only with an optional package, so it is checked here)."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and (bool(parts.netloc) or parts.scheme in ("mailto", "tel", "urn"))


FORMATS = FormatChecker(Draft202012Validator.FORMAT_CHECKER.checkers)
FORMATS.checks("uri")(_is_uri)

# The HSDS paging envelope (the profile's lists use it; its OpenAPI leaves it to HSDS's ``Page``).
PAGE = {
    "type": "object",
    "required": [
        "total_items", "total_pages", "page_number", "size", "first_page", "last_page", "empty", "contents",
    ],
    "properties": {
        **{name: {"type": "integer", "minimum": 0} for name in ("total_items", "size")},
        **{name: {"type": "integer", "minimum": 1} for name in ("total_pages", "page_number")},
        **{name: {"type": "boolean"} for name in ("first_page", "last_page", "empty")},
        "contents": {"type": "array"},
    },
}  # fmt: skip
# HSDS's ``/`` answer: what the API is, and where its OpenAPI description is.
ABOUT = {
    "type": "object",
    "required": ["version", "profile", "openapi_url"],
    "properties": {
        "version": {"type": "string", "minLength": 1},
        "profile": {"type": "string", "format": "uri"},
        "openapi_url": {"type": "string", "format": "uri"},
        "description": {"type": "string"},
        "publisher": {"type": "object", "properties": {"website": {"type": "string", "format": "uri"}}},
    },
}


@pytest.fixture(scope="module")
def specs() -> Path:
    if not (SPECS / "service.json").is_file():
        need_service("The Open Referral UK profile's schemas", f"{SPECS} is missing", "put them at ../shared")
    return SPECS


@pytest.fixture(scope="module")
def registry(specs: Path) -> Registry:
    """Every schema file of the profile under one local base URI, so ``$ref`` between them resolves here."""
    resources = [
        (
            BASE_URI + path.name,
            Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT202012),
        )
        for path in specs.glob("*.json")
    ]
    return Registry().with_resources(resources)


def check(registry: Registry, schema: dict[str, Any], body: Any) -> list[str]:
    """Every error of ``body`` against ``schema`` (whose ``$ref``s name the profile's files), as text."""
    validator = Draft202012Validator({"$id": BASE_URI, **schema}, registry=registry, format_checker=FORMATS)
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(body)]


def listing(of: str) -> dict[str, Any]:
    """A page envelope whose contents are each one ``of`` (a profile file, with a fragment if need be)."""
    return {"allOf": [PAGE], "properties": {"contents": {"items": {"$ref": of}}}}


SERVICE = {"$ref": "service.json"}
TERM = "service_with_definitions.json#/definitions/taxonomy_term"


def test_the_profiles_schemas_check_what_they_say(registry):
    """Not vacuous: a term without a description, a bad UUID, an unknown status, a relative URL all fail."""
    good = {"id": str(uuid.uuid4()), "name": "x", "status": "active", "url": "https://x.example/"}
    assert check(registry, SERVICE, good) == []
    term = {"id": str(uuid.uuid4()), "name": "Walking"}
    assert check(
        registry, SERVICE, {**good, "attributes": [{"id": str(uuid.uuid4()), "taxonomy_term": term}]}
    )
    assert check(registry, SERVICE, {**good, "id": "not-a-uuid"})
    assert check(registry, SERVICE, {**good, "status": "open"})
    assert check(registry, SERVICE, {**good, "url": "/activities/walk"})
    assert check(registry, {"$ref": TERM}, term)
    assert check(registry, listing("service_list.json"), {"contents": []})


# -- the data -------------------------------------------------------------------------------------


def demo_activities() -> list[dict[str, Any]]:
    """The demo network's sample activities as a publisher stores them (with ids and dateModified)."""
    found = []
    for group in sample_network(groups=16, seed=18, today=TODAY):
        for n, activity in enumerate(group.activities):
            found.append(
                {
                    **activity,
                    "id": f"https://{group.slug}.example/activities/{n}",
                    "dateModified": f"{TODAY - timedelta(days=1)}T09:00:00+00:00",
                }
            )
    return found


HERE = (51.3982, -0.1545)  # CR4 1HT, where the walk meets
HERE_POSTCODE = "CR4 1HT"


def _away(km_north: float) -> dict[str, float]:
    return {"latitude": round(HERE[0] + km_north / 111.2, 5), "longitude": HERE[1]}


def _next(weekday: int, weeks_ahead: int = 1) -> date:
    return TODAY + timedelta(days=(weekday - TODAY.weekday()) % 7 + 7 * weeks_ahead)


def _weekly(day: str, start: str, end: str) -> dict[str, Any]:
    return {**weekly_activity()["schedule"][0], "byDay": [day], "startTime": start, "endTime": end}


def _walk_location(postcode: str, geo: dict[str, float]) -> dict[str, Any]:
    location = weekly_activity()["location"]
    return {**location, "address": {**location["address"], "postalCode": postcode}, "geo": geo}


def crafted() -> dict[str, dict[str, Any]]:
    """Activities that differ in one filtered fact at a time, by short name."""
    fresh = (TODAY - timedelta(days=10)).isoformat()
    lunch_day = _next(5)  # a Saturday
    starts = datetime.combine(lunch_day, time(12), LONDON)
    found = {
        "walk": weekly_activity(
            id="https://pub.example/activities/walk",
            name="Monday Walk",
            description="A gentle stroll round the common.",
            schedule=[_weekly("MO", "10:00", "11:00")],
            ageRange={"min": 18},
            audiences=["older-people"],
            lastVerified=fresh,
        ),
        "choir": weekly_activity(
            id="https://pub.example/activities/choir",
            name="Tuesday Youth Choir",
            description="Songs for young voices.",
            categories=["music-singing"],
            schedule=[_weekly("TU", "18:00", "20:00")],
            ageRange={"min": 8, "max": 16},
            audiences=[],
            location=_walk_location("CR4 2LF", _away(2.0)),
            lastVerified=fresh,
        ),
        "lunch": event_activity(
            id="https://pub.example/activities/lunch",
            startDate=starts.isoformat(),
            endDate=(starts + timedelta(hours=2)).isoformat(),
            location=_walk_location("CR4 3AA", _away(9.0)),
            lastVerified=fresh,
        ),
        # Monday mornings and Friday evenings: day and time are met by one schedule, or not at all.
        "club": weekly_activity(
            id="https://pub.example/activities/club",
            name="Two-Day Club",
            description="Cards and a chat.",
            categories=["games-hobbies"],
            schedule=[_weekly("MO", "09:00", "10:00"), _weekly("FR", "18:30", "20:30")],
            audiences=[],
            ageRange=None,
            location=_walk_location("CR4 4AA", _away(4.0)),
            lastVerified=fresh,
        ),
        "paused": weekly_activity(
            id="https://pub.example/activities/paused",
            name="Paused Pottery",
            description="Back after the repairs.",
            categories=["arts-crafts"],
            status="paused",
            audiences=[],
            lastVerified=fresh,
        ),
        # Never listed: no word from the organiser for over a year, and a lunch that has happened.
        "expired": weekly_activity(
            id="https://pub.example/activities/expired",
            name="Expired Bowls",
            lastVerified=(TODAY - timedelta(days=400)).isoformat(),
        ),
        "over": event_activity(
            id="https://pub.example/activities/over",
            name="Last Month's Lunch",
            startDate=datetime.combine(TODAY - timedelta(days=30), time(12), LONDON).isoformat(),
            endDate=datetime.combine(TODAY - timedelta(days=30), time(14), LONDON).isoformat(),
            lastVerified=fresh,
        ),
    }
    for activity in found.values():
        for key in [key for key, value in activity.items() if value is None]:
            del activity[key]
        assert is_valid_activity(activity), activity["name"]
    return found


@pytest.fixture
def crafted_client(make_aggregator, database_url, serve) -> Iterator[httpx.Client]:
    app = make_aggregator(database_url)
    store_merged(app, list(crafted().values()))
    with httpx.Client(base_url=serve(app).url + "/oruk", timeout=10) as client:
        yield client


@pytest.fixture
def demo_client(make_aggregator, serve) -> Iterator[httpx.Client]:
    app = make_aggregator()
    store_merged(app, demo_activities())
    with httpx.Client(base_url=serve(app).url + "/oruk", timeout=10) as client:
        yield client


# -- 0 errors over the demo data ------------------------------------------------------------------


def every_page(client: httpx.Client, path: str, **params: str) -> Iterator[dict[str, Any]]:
    """Each page of a list, checking the envelope's counts agree with each other as it goes."""
    number = 1
    while True:
        answer = client.get(path, params={**params, "page": str(number), "per_page": "7"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        body = answer.json()
        assert (body["page_number"], body["size"], body["first_page"]) == (
            number,
            len(body["contents"]),
            number == 1,
        )
        yield body
        if body["last_page"]:
            assert number == body["total_pages"]
            return
        number += 1


def test_every_endpoint_validates_against_the_profile_over_the_demo_data(demo_client, registry):
    errors: list[str] = []

    def validate(what: str, schema: dict[str, Any], body: Any) -> None:
        errors.extend(f"{what} {problem}" for problem in check(registry, schema, body))

    about = demo_client.get("/")
    validate("/", ABOUT, about.json())
    assert about.json()["version"] == "HSDS-UK-3.0"

    listed: list[dict[str, Any]] = []
    for body in every_page(demo_client, "/services"):
        validate("/services", listing("service_list.json"), body)
        listed += body["contents"]
    unexpired = (TODAY - timedelta(days=365)).isoformat()
    expected = {service_id(a["id"]) for a in demo_activities() if a["lastVerified"] >= unexpired}
    assert {s["id"] for s in listed} == expected and len(listed) == len(expected) > 20

    schedules = []
    for summary in listed:
        detail = demo_client.get(f"/services/{summary['id']}")
        assert detail.status_code == 200 and detail.headers["Access-Control-Allow-Origin"] == "*"
        validate(f"/services/{summary['id']}", SERVICE, detail.json())
        schedules += detail.json()["schedules"]
        terms = [attribute["taxonomy_term"] for attribute in detail.json()["attributes"]]
        assert terms and all(term["description"] for term in terms)

    places: list[dict[str, Any]] = []
    for body in every_page(demo_client, "/service_at_locations"):
        validate("/service_at_locations", listing("service_at_location_list.json"), body)
        places += body["contents"]
    assert {place["service_id"] for place in places} == expected
    postcode = demo_activities()[0]["location"]["address"]["postalCode"]
    for body in every_page(demo_client, "/service_at_locations", postcode=postcode, proximity="3000"):
        validate("/service_at_locations near", listing("service_at_location_list.json"), body)

    taxonomies = [body for body in every_page(demo_client, "/taxonomies")]
    for body in taxonomies:
        validate("/taxonomies", listing("service_with_definitions.json#/definitions/taxonomy"), body)
    for body in every_page(demo_client, "/taxonomy_terms"):
        validate("/taxonomy_terms", listing(TERM), body)
        known = {taxonomy["id"] for page in taxonomies for taxonomy in page["contents"]}
        assert {term["taxonomy_id"] for term in body["contents"]} <= known

    assert errors == []
    assert len(schedules) >= len(listed)
    for schedule in schedules:
        assert_first_real_session(schedule)


def assert_first_real_session(schedule: dict[str, Any]) -> None:
    """``dtstart`` is on the rule (its ``byday`` days) and no day from ``valid_from`` before it is."""
    first, dtstart = date.fromisoformat(schedule["valid_from"]), date.fromisoformat(schedule["dtstart"])
    if "byday" not in schedule:  # a one-off
        assert dtstart == first
        return
    assert on_rule(dtstart, schedule["byday"]), schedule
    assert first <= dtstart and not any(
        on_rule(first + timedelta(days=n), schedule["byday"]) for n in range((dtstart - first).days)
    ), schedule


def on_rule(day: date, byday: str) -> bool:
    """Whether ``day`` is one of RFC 5545 BYDAY's days (``TU``, ``1TU``, ``-1TU``), worked out afresh."""
    codes = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
    for part in byday.split(","):
        nth, code = part[:-2], part[-2:]
        if codes.index(code) != day.weekday():
            continue
        if not nth:
            return True
        last = calendar.monthrange(day.year, day.month)[1]
        if (int(nth) == -1 and day.day + 7 > last) or (int(nth) > 0 and (day.day - 1) // 7 + 1 == int(nth)):
            return True
    return False


# -- each filter: one it must include, one it must exclude ------------------------------------------


def term_id(kind: str, code: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SCHEMA_BASE_URL}vocab/{kind}.jsonld#{code}"))


def taxonomy_id(kind: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SCHEMA_BASE_URL}vocab/{kind}.jsonld"))


def names(client: httpx.Client, path: str = "/services", **params: str) -> list[str]:
    answer = client.get(path, params={**params, "per_page": "100"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    body = answer.json()
    assert body["total_items"] == len(body["contents"])
    return [item.get("service", item).get("name") for item in body["contents"]]


FILTERS = [
    # (parameters, names it must include, names it must exclude)
    ({}, {"Monday Walk", "Tuesday Youth Choir", "Winter Warmer Lunch", "Two-Day Club", "Paused Pottery"},
     {"Expired Bowls", "Last Month's Lunch"}),
    ({"search": "STROLL"}, {"Monday Walk"}, {"Tuesday Youth Choir", "Two-Day Club"}),
    ({"search": "young voices"}, {"Tuesday Youth Choir"}, {"Monday Walk"}),
    ({"taxonomy_term_id": term_id("categories", "walking")}, {"Monday Walk"}, {"Tuesday Youth Choir"}),
    ({"taxonomy_term_id": term_id("audiences", "older-people")}, {"Monday Walk"}, {"Two-Day Club"}),
    ({"taxonomy_id": taxonomy_id("audiences")}, {"Monday Walk"}, {"Tuesday Youth Choir", "Two-Day Club"}),
    ({"taxonomy_id": taxonomy_id("categories")}, {"Monday Walk", "Two-Day Club"}, {"Expired Bowls"}),
    ({"minimum_age": "10"}, {"Monday Walk"}, {"Tuesday Youth Choir", "Two-Day Club"}),
    ({"maximum_age": "16"}, {"Tuesday Youth Choir"}, {"Monday Walk", "Two-Day Club"}),
    ({"maximum_age": "15.5"}, set(), {"Tuesday Youth Choir"}),
    ({"day": "MO"}, {"Monday Walk", "Two-Day Club"}, {"Tuesday Youth Choir", "Winter Warmer Lunch"}),
    ({"day": "saturday"}, {"Winter Warmer Lunch"}, {"Monday Walk"}),
    ({"start_time": "17:00"}, {"Tuesday Youth Choir", "Two-Day Club"},
     {"Monday Walk", "Winter Warmer Lunch"}),
    ({"start_time": "10:00:00"}, {"Monday Walk", "Winter Warmer Lunch"}, set()),
    ({"start_time": "10:01"}, {"Winter Warmer Lunch"}, {"Monday Walk"}),
    ({"end_time": "11:00"}, {"Monday Walk", "Two-Day Club"}, {"Tuesday Youth Choir", "Winter Warmer Lunch"}),
    ({"end_time": "10:59"}, {"Two-Day Club"}, {"Monday Walk"}),
    ({"day": "FR", "start_time": "18:00"}, {"Two-Day Club"}, {"Monday Walk"}),
    ({"day": "MO", "start_time": "17:00"}, set(), {"Two-Day Club", "Monday Walk"}),
    ({"day": "TU", "end_time": "21:00", "minimum_age": "8"}, {"Tuesday Youth Choir"}, {"Monday Walk"}),
]  # fmt: skip


def stable_id(value: object) -> str:
    """A parameter's test id, the same in every xdist worker (a set's order is not)."""
    return str(sorted(value)) if isinstance(value, set | frozenset) else str(value)


@pytest.mark.parametrize(("params", "included", "excluded"), FILTERS, ids=stable_id)
def test_each_filter_includes_and_excludes(crafted_client, params, included, excluded):
    for path in ("/services", "/service_at_locations"):
        found = set(names(crafted_client, path, **params))
        assert included <= found, (path, params)
        assert not excluded & found, (path, params)


def test_a_postcode_orders_by_distance_and_proximity_leaves_out_what_is_further(crafted_client):
    everything = names(crafted_client, "/service_at_locations", postcode="cr41ht")
    # Nearest first: the walk and the pottery meet here, the choir 2 km off, the club 4 km, the lunch 9 km.
    assert everything[2:] == ["Tuesday Youth Choir", "Two-Day Club", "Winter Warmer Lunch"]
    assert set(everything[:2]) == {"Monday Walk", "Paused Pottery"}
    assert (
        names(crafted_client, "/service_at_locations", postcode=HERE_POSTCODE, proximity="2500")
        == everything[:3]
    )
    assert (
        names(crafted_client, "/service_at_locations", postcode=HERE_POSTCODE, proximity="1500")
        == everything[:2]
    )
    within = names(
        crafted_client, "/service_at_locations", postcode=HERE_POSTCODE, proximity="5000", day="FR"
    )
    assert within == ["Two-Day Club"]


def test_paging_and_what_a_list_says_of_each(crafted_client):
    first = crafted_client.get("/services", params={"per_page": "2"}).json()
    third = crafted_client.get("/services", params={"per_page": "2", "page": "3"}).json()
    beyond = crafted_client.get("/services", params={"per_page": "2", "page": "4"}).json()
    assert (first["total_items"], first["total_pages"], first["size"], first["last_page"]) == (5, 3, 2, False)
    assert (third["size"], third["first_page"], third["last_page"]) == (1, False, True)
    assert beyond["empty"] and beyond["contents"] == []
    seen = [s["name"] for page in (1, 2, 3) for s in crafted_client.get(
        "/services", params={"per_page": "2", "page": str(page)}).json()["contents"]]  # fmt: skip
    assert sorted(seen) == sorted(names(crafted_client)) and len(set(seen)) == 5
    statuses = {s["name"]: s["status"] for s in crafted_client.get("/services").json()["contents"]}
    assert statuses["Paused Pottery"] == "temporarily closed" and statuses["Monday Walk"] == "active"


def test_taxonomies_and_terms_describe_our_vocabularies(crafted_client):
    taxonomies = crafted_client.get("/taxonomies").json()["contents"]
    assert {t["id"] for t in taxonomies} == {taxonomy_id("categories"), taxonomy_id("audiences")}
    terms = crafted_client.get("/taxonomy_terms", params={"per_page": "500"}).json()
    walking = next(term for term in terms["contents"] if term["id"] == term_id("categories", "walking"))
    assert walking["description"].startswith("Health walks") and walking["taxonomy_id"] == taxonomy_id(
        "categories"
    )
    short = crafted_client.get("/taxonomy_terms", params={"per_page": "5", "page": "2"}).json()
    assert short["size"] == 5 and short["contents"] == terms["contents"][5:10]


# -- what a consumer gets wrong ------------------------------------------------------------------------

ELSEWHERE = "6f1c2a54-0b7e-4d3f-9a61-2c8e5b9d4f70"  # not ours; fixed, so xdist workers agree on ids
BAD = [
    ("/services", {"colour": "red", "size": "2"}, "colour", ["'colour'", "'size'", "search"]),
    ("/services", {"postcode": "CR4 1HT"}, "postcode", ["/oruk/services", "postcode"]),
    ("/", {"format": "json"}, "format", ["no parameters"]),
    ("/taxonomies", {"search": "walk"}, "search", ["page, per_page"]),
    ("/services", {"page": "0"}, "page", ["whole number"]),
    ("/taxonomy_terms", {"per_page": "ten"}, "per_page", ["whole number"]),
    ("/services", {"minimum_age": "old"}, "minimum_age", ["age in years"]),
    ("/services", {"maximum_age": "-1"}, "maximum_age", ["age in years"]),
    ("/services", {"start_time": "25:00"}, "start_time", ["24-hour clock"]),
    ("/services", {"end_time": "5pm"}, "end_time", ["24-hour clock"]),
    ("/services", {"day": "Funday"}, "day", ["day of the week"]),
    ("/services", {"taxonomy_term_id": "walking"}, "taxonomy_term_id", ["UUID", "/oruk/taxonomy_terms"]),
    ("/services", {"taxonomy_term_id": ELSEWHERE}, "taxonomy_term_id", [ELSEWHERE, "/oruk/taxonomy_terms"]),
    ("/services", {"taxonomy_id": ELSEWHERE}, "taxonomy_id", [ELSEWHERE, "/oruk/taxonomies"]),
    ("/service_at_locations", {"postcode": "not a postcode"}, "postcode", ["not a UK postcode"]),
    ("/service_at_locations", {"postcode": "ZE1 0AA"}, "postcode", ["ZE1 0AA"]),
    ("/service_at_locations", {"proximity": "1000"}, "proximity", ["postcode="]),
    ("/service_at_locations", {"postcode": "CR4 1HT", "proximity": "-5"}, "proximity", ["metres"]),
    ("/service_at_locations", {"postcode": "CR4 1HT", "proximity": "far"}, "proximity", ["metres"]),
]


@pytest.mark.parametrize(("path", "params", "parameter", "words"), BAD, ids=stable_id)
def test_unknown_or_malformed_parameters_are_a_400_that_names_them(
    crafted_client, path, params, parameter, words
):
    answer = crafted_client.get(path, params=params)
    assert answer.status_code == 400
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    error = answer.json()["error"]
    assert error["parameter"] == parameter
    assert all(word in error["message"] for word in words), error["message"]


def test_a_parameter_given_twice_is_a_400(crafted_client):
    answer = crafted_client.get("/services?day=MO&day=TU")
    assert answer.status_code == 400 and answer.json()["error"]["parameter"] == "day"


def test_every_answer_is_open_to_any_web_page(crafted_client):
    for path in ("/", "/services", "/taxonomies", "/taxonomy_terms", "/service_at_locations",
                 f"/services/{service_id('https://pub.example/activities/walk')}",
                 f"/services/{ELSEWHERE}", "/organizations"):  # fmt: skip
        answer = crafted_client.get(path)
        assert answer.headers["Access-Control-Allow-Origin"] == "*", path
    assert crafted_client.get(f"/services/{ELSEWHERE}").status_code == 404


def test_the_parameters_taken_are_the_ones_the_profile_lists(specs):
    profile = json.loads((specs / "openapi.json").read_text())
    for path, operations in profile["paths"].items():
        if operations is None:  # listed by the profile without operations (organizations)
            continue
        listed = {parameter["$ref"].rsplit("/", 1)[1] for parameter in operations["get"]["parameters"]}
        assert listed == set(PARAMETERS[path]), path


def test_a_service_and_its_schedules_as_the_detail_gives_them(crafted_client):
    club = crafted_client.get(f"/services/{service_id('https://pub.example/activities/club')}").json()
    monday, friday = club["schedules"]
    assert (monday["byday"], monday["opens_at"], friday["byday"], friday["closes_at"]) == (
        "MO",
        "09:00",
        "FR",
        "20:30",
    )
    for schedule in club["schedules"]:
        assert_first_real_session(schedule)  # the factory's startDate, a Tuesday, is neither day
    lunch = crafted_client.get(f"/services/{service_id('https://pub.example/activities/lunch')}").json()
    (once,) = lunch["schedules"]
    assert (once["dtstart"], once["opens_at"], once["closes_at"]) == (_next(5).isoformat(), "12:00", "14:00")
    walk = crafted_client.get(f"/services/{service_id('https://pub.example/activities/walk')}").json()
    kinds = {(a["link_type"], a["taxonomy_term"]["code"]) for a in walk["attributes"]}
    assert kinds == {("category", "walking"), ("audience", "older-people")}
    assert walk["minimum_age"] == 18 and "maximum_age" not in walk


def test_random_parameters_never_fail_the_server(crafted_client):
    """Whatever the values, an answer is a 200 or a 400 naming a parameter: never a 500."""
    rng = random.Random(18)
    values = ["", "0", "-1", "1e309", "nan", "10:00", "24:00", "MO", "sunday", "x" * 300, "%", "_", "\\", "'"]
    for _ in range(60):
        params = {name: rng.choice(values) for name in rng.sample(PARAMETERS["/service_at_locations"], 3)}
        answer = crafted_client.get("/service_at_locations", params=params)
        assert answer.status_code in (200, 400), (params, answer.text)
        if answer.status_code == 400:
            assert answer.json()["error"]["parameter"] in params
