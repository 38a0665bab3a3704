"""The controlled vocabularies: categories, access features and audiences.

The files under ``schema/vocab/`` are the one source of truth for the ids; the enums in
``activity.schema.json`` repeat them for third parties, and a test keeps the two equal.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from schema.resources import load

KINDS = ("categories", "accessibility", "audiences")


def _entries(kind: str) -> dict[str, dict[str, Any]]:
    if kind not in KINDS:
        raise ValueError(f"Unknown vocabulary {kind!r}; use one of {', '.join(KINDS)}.")
    return {
        item["id"]: {k: v for k, v in item.items() if k != "id"}
        for item in load(f"vocab/{kind}.json")["items"]
    }


def categories() -> dict[str, dict[str, Any]]:
    """Category id → {label, description, openactive?: [Activity List concept URIs]}, in display order."""
    return _entries("categories")


def accessibility() -> dict[str, dict[str, Any]]:
    """Access feature id → {label, description}, in display order."""
    return _entries("accessibility")


def audiences() -> dict[str, dict[str, Any]]:
    """Audience id → {label, description}, in display order."""
    return _entries("audiences")


def ids(kind: str) -> list[str]:
    """The ids of one vocabulary, in display order."""
    return list(_entries(kind))


def label(kind: str, id: str) -> str:
    """The English label of ``id`` in vocabulary ``kind``, e.g. ``label("categories", "walking")``.

    Raises KeyError for an id the vocabulary does not have (a valid activity never has one).
    """
    try:
        return _labels(kind)[id]
    except KeyError:
        raise KeyError(f"{id!r} is not in the {kind} vocabulary (schema/vocab/{kind}.json).") from None


@cache
def _labels(kind: str) -> dict[str, str]:
    return {id: entry["label"] for id, entry in _entries(kind).items()}


def concept_scheme(kind: str, scheme_url: str) -> dict[str, Any]:
    """Vocabulary ``kind`` as a SKOS concept scheme in OpenActive's layout, published at ``scheme_url``.

    The same layout as the OpenActive Activity List, so the ecosystem's tools read our
    concepts (lunch clubs, befriending, men's sheds, ...) as they read theirs. Each concept's
    id is ``<scheme_url>#<our id>``.
    """
    return {
        "@context": "https://openactive.io/",
        "id": scheme_url,
        "type": "ConceptScheme",
        "title": f"Localfeed {kind}",
        "description": load(f"vocab/{kind}.json")["$comment"],
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "concept": [
            {
                "id": f"{scheme_url}#{id}",
                "type": "Concept",
                "prefLabel": entry["label"],
                "definition": entry["description"],
            }
            for id, entry in _entries(kind).items()
        ],
    }
