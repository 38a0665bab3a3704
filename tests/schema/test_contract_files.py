"""The contract's files: well-formed schemas, one source of truth for vocabularies, a complete context."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schema import vocab
from schema.resources import load

CATEGORIES_OTHERS_USE = [
    "walking",
    "running",
    "cycling",
    "swimming",
    "dance",
    "yoga-pilates",
    "exercise-class",
    "chair-exercise",
    "sport",
    "arts-crafts",
    "music-singing",
    "drama-writing",
    "gardening-nature",
    "lunch-club",
    "social-club",
    "befriending",
    "baby-toddler",
    "parents-carers",
    "peer-support",
    "mental-health",
    "learning",
    "digital-skills",
    "volunteering",
    "faith-culture",
    "advice",
    "mens-shed",
    "cooking-food",
    "games-hobbies",
    "reading-book-club",
    "heritage-history",
]
ACCESSIBILITY_OTHERS_USE = [
    "step-free",
    "wheelchair-accessible",
    "accessible-toilet",
    "hearing-loop",
    "parking",
    "blue-badge-parking",
    "public-transport",
    "quiet-space",
    "seating",
    "large-print",
    "bsl",
    "dementia-friendly",
    "assistance-dogs",
    "changing-places",
]
AUDIENCES_OTHERS_USE = [
    "older-people",
    "carers",
    "parents-and-babies",
    "men",
    "women",
    "young-people",
    "families",
    "people-living-with-dementia",
    "people-with-learning-disabilities",
    "people-with-long-term-conditions",
    "lgbtq",
    "veterans",
    "refugees-and-asylum-seekers",
    "neurodivergent-people",
    "adults",
]


@pytest.mark.parametrize("name", ["activity.schema.json", "feed-page.schema.json"])
def test_schemas_are_valid_2020_12_schemas_with_localfeed_ids(name):
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://localfeed.org/schema/{name}"


@pytest.mark.parametrize(
    ("kind", "schema_def", "ids_others_use"),
    [
        ("categories", "category", CATEGORIES_OTHERS_USE),
        ("accessibility", "accessibilityFeature", ACCESSIBILITY_OTHERS_USE),
        ("audiences", "audience", AUDIENCES_OTHERS_USE),
    ],
)
def test_vocabulary_files_and_schema_enums_agree(kind, schema_def, ids_others_use):
    ids = vocab.ids(kind)
    assert load("activity.schema.json")["$defs"][schema_def]["enum"] == ids
    assert set(ids_others_use) <= set(ids)
    assert len(ids) == len(set(ids))
    for id, entry in getattr(vocab, kind)().items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", id)
        assert entry["label"] and entry["label"][0].isupper()
        assert entry["description"].endswith(".")
        assert vocab.label(kind, id) == entry["label"]


def test_categories_map_to_openactive_activity_list_concepts_where_one_fits():
    categories = vocab.categories()
    assert categories["walking"]["openactive"] == [
        "https://openactive.io/activity-list#95092977-5a20-4d6e-b312-8fddabe71544"
    ]
    assert "openactive" not in categories["lunch-club"]
    for entry in categories.values():
        for uri in entry.get("openactive", []):
            assert re.fullmatch(
                r"https://openactive\.io/activity-list#[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", uri
            )


def test_vocabularies_are_ordered_and_safe_to_change():
    first = vocab.categories()
    assert list(first)[:3] == ["walking", "running", "cycling"]
    first["walking"]["label"] = "Changed"
    del first["running"]
    assert vocab.categories()["walking"]["label"] == "Walking"
    assert "running" in vocab.categories()
    assert vocab.label("accessibility", "bsl") == "British Sign Language"
    assert vocab.label("audiences", "older-people") == "Older people"


def test_unknown_vocabulary_ids_and_kinds_are_explained():
    with pytest.raises(KeyError, match="'knitting' is not in the categories vocabulary"):
        vocab.label("categories", "knitting")
    with pytest.raises(ValueError, match="Unknown vocabulary 'colours'"):
        vocab.label("colours", "red")


def _property_names(node: Any) -> set[str]:
    if isinstance(node, list):
        return {name for item in node for name in _property_names(item)}
    if not isinstance(node, dict):
        return set()
    names = set(node.get("properties", {})) if isinstance(node.get("properties"), dict) else set()
    return names | {name for value in node.values() for name in _property_names(value)}


def _terms(context: Any) -> set[str]:
    if not isinstance(context, dict):
        return set()
    terms = {term for term in context if not term.startswith("@")}
    for definition in context.values():
        if isinstance(definition, dict):
            terms |= _terms(definition.get("@context"))
    return terms


def test_the_json_ld_context_maps_every_field_of_the_activity():
    context = load("context.jsonld")["@context"]
    fields = _property_names(load("activity.schema.json")) - {"@context"}
    assert fields - _terms(context) == set()
    assert context["name"] == "schema:name"
    assert context["schedule"]["@id"] == "schema:eventSchedule"
