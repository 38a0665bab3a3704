"""The one mapping between an activity and its OpenActive form: nothing is lost either way.

Property-style: every example activity, and variations of each over the shapes the contract
allows (every price form, status, attendance mode, capacity, except dates, extensions), must
come back equal after ``to_openactive`` → JSON → ``from_openactive``. The variations are
enumerated rather than drawn at random: the shapes are few, and every run tries all of them.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest

from schema import validate_activity
from schema.openactive import (
    CATEGORY_SCHEME,
    CONTEXT,
    LF_PROPERTIES,
    NotLocalfeedForm,
    from_openactive,
    to_openactive,
)
from schema.resources import load
from schema.vocab import categories, concept_scheme
from tests.schema.conftest import EXAMPLE_FILES, example

PRICES = [
    {"isFree": True},
    {"isFree": True, "notes": "Donations welcome"},
    {"isFree": False, "notes": "Pay what you can"},
    {"amount": 3.5, "currency": "GBP"},
    {"amount": 2, "currency": "GBP", "notes": "Carers free"},
    {"amount": 0, "currency": "GBP"},
    {"isFree": True, "amount": 0, "currency": "GBP"},
    {"isFree": False, "amount": 4, "currency": "GBP"},
]
CAPACITIES = [
    None,
    {"status": "full"},
    {"status": "spaces", "remaining": 4, "updatedAt": "2026-11-01T09:00:00+00:00"},
]
EXTRAS: list[dict[str, Any]] = [
    {},
    {"status": "cancelled", "attendanceMode": "mixed", "onlineUrl": "https://meet.example/x"},
    {"status": "paused", "ext:colour": "green", "@context": "https://localfeed.org/schema/context.jsonld"},
    {"sameAs": ["https://other.example/a"], "languages": ["en", "cy"], "audiences": ["carers", "men"]},
]


def round_trip(activity: dict[str, Any]) -> dict[str, Any]:
    wire = json.loads(json.dumps(to_openactive(activity)))  # through JSON, as on the wire
    return from_openactive(wire)


def variations(activity: dict[str, Any]):
    for price, capacity, extra in itertools.product(PRICES, CAPACITIES, EXTRAS):
        varied = copy.deepcopy(activity)
        varied["price"] = price
        varied.pop("capacity", None)
        if capacity is not None:
            varied["capacity"] = capacity
        varied.update(extra)
        if "location" not in varied:  # an online-only example stays online only
            varied["attendanceMode"] = "online"
        if varied.get("attendanceMode") in ("online", "mixed") and "onlineUrl" not in varied:
            varied["onlineUrl"] = "https://meet.example/y"
        for entry in varied.get("schedule", []):
            entry["exceptDates"] = ["2026-03-29", "2026-10-25"]  # the days the clocks change
        yield varied


def test_every_example_round_trips(example_activity):
    assert round_trip(example_activity) == example_activity


@pytest.mark.parametrize("name", [path.stem for path in EXAMPLE_FILES])
def test_every_variation_of_every_example_round_trips(name):
    tried = 0
    for activity in variations(example(name)):
        assert validate_activity(activity) == [], activity  # only valid activities are promised
        assert round_trip(activity) == activity
        tried += 1
    assert tried == len(PRICES) * len(CAPACITIES) * len(EXTRAS)


def test_every_category_round_trips_and_each_concept_names_one_category():
    activity = example("weekly")
    for category in categories():
        activity["categories"] = [category, "befriending"] if category != "befriending" else [category]
        assert round_trip(activity) == activity
    concepts = [uri for entry in categories().values() for uri in entry.get("openactive", ())]
    assert len(concepts) == len(set(concepts))


def test_an_invalid_activity_reads_back_as_the_same_invalid_activity():
    activity = example("weekly")
    activity["organizer"] = "Mitcham Walkers"  # not an object
    activity["price"] = {"amount": "three"}
    activity["categories"] = ["walking", "knitting"]
    activity["location"]["address"]["postalCode"] = "CR4 1A"
    assert round_trip(activity) == activity


def test_the_wire_form_is_openactive():
    wire = to_openactive(example("with-except-dates"))
    assert wire["@context"] == CONTEXT and wire["@type"] == "SessionSeries"
    assert wire["@id"] == wire["url"] == example("with-except-dates")["id"]
    (rule,) = wire["eventSchedule"]
    assert rule["@type"] == "PartialSchedule"
    assert all(day.startswith("https://schema.org/") for day in rule["byDay"])
    assert all("T" in start for start in rule["exceptDate"])  # the excepted sessions' starts
    assert wire["organizer"]["@type"] == "Organization"
    assert wire["location"]["@type"] == "Place"
    assert wire["location"]["address"]["@type"] == "PostalAddress"
    assert wire["offers"][0]["@type"] == "Offer"
    assert all(concept["@type"] == "Concept" and concept["inScheme"] for concept in wire["activity"])
    free = to_openactive(example("weekly"))
    assert free["offers"][0]["price"] == 0 and free["isAccessibleForFree"] is True


def test_categories_without_an_activity_list_concept_are_concepts_of_our_scheme():
    activity = example("weekly")
    activity["categories"] = ["walking", "lunch-club"]
    walking, lunch = to_openactive(activity)["activity"]
    assert walking["inScheme"] == "https://openactive.io/activity-list"
    assert walking["prefLabel"] == "Walking"
    assert lunch == {
        "@type": "Concept",
        "@id": f"{CATEGORY_SCHEME}#lunch-club",
        "prefLabel": categories()["lunch-club"]["label"],
        "inScheme": CATEGORY_SCHEME,
    }
    scheme = concept_scheme("categories", CATEGORY_SCHEME)
    assert {"id": lunch["@id"], "type": "Concept", "prefLabel": lunch["prefLabel"]}.items() <= next(
        concept for concept in scheme["concept"] if concept["id"] == lunch["@id"]
    ).items()


def test_every_extension_property_is_defined_in_the_context():
    document = load("context.jsonld")
    defined = {term for term in document["@context"] if term.startswith("lf:")}
    described = {entry["@id"] for entry in document["@graph"]}
    assert LF_PROPERTIES == defined == described
    for example_file in EXAMPLE_FILES:
        wire = to_openactive(example(example_file.stem))
        used = {key for key in wire if key.startswith("lf:")}
        assert used <= LF_PROPERTIES


def test_another_publishers_openactive_is_not_read_as_ours():
    with pytest.raises(NotLocalfeedForm, match="context"):
        from_openactive({"@context": "https://openactive.io/", "@type": "SessionSeries", "name": "Yoga"})


def test_no_access_features_is_left_out_as_openactive_asks():
    activity = example("weekly")
    activity["location"]["accessibility"] = []
    wire = to_openactive(activity)
    assert "accessibilitySupport" not in wire
    assert "accessibility" not in from_openactive(wire)["location"]
