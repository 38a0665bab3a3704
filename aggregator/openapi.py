"""The OpenAPI 3.1 description of the query API, built from the same constants the code uses.

Limits, defaults and the vocabularies' ids come from ``aggregator.query`` and
``schema/vocab``, so the document cannot drift from what the API accepts.
"""

from __future__ import annotations

from typing import Any

from aggregator import query
from aggregator.search_index import TIMES_OF_DAY
from schema.vocab import ids as vocabulary_ids

_ERROR = {"$ref": "#/components/responses/Error"}


def _json_of(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _comma_list(name: str, description: str, values: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description + " Comma-separated.",
        "schema": {"type": "array", "items": {"enum": values}, "uniqueItems": True},
        "style": "form",
        "explode": False,
    }


def _parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": "near",
            "in": "query",
            "description": "Where to search from: a UK postcode (`CR4 1AA`), a postcode sector (`CR4 2`) "
            "or district (`CR4`), a town the listings name (`Mitcham`, any case), or "
            "`latitude,longitude` (`51.40,-0.15`). A postcode not known exactly is placed at the "
            "middle of its sector, else of its district, and `query.located` says which. Without "
            "`near`, results are ordered by their next session only and `distance_km` is null. A "
            "place that cannot be found is a 400 that says so; a town name used in places far "
            "apart is a 400 whose `error.choices` list them, each with the `near` that searches it.",
            "schema": {"type": "string", "examples": ["CR4 1HT", "CR4", "Mitcham", "51.3982,-0.1545"]},
        },
        {
            "name": "radius",
            "in": "query",
            "description": f"Kilometres from `near` (straight line). Default {query.DEFAULT_RADIUS_KM:g}, "
            f"at most {query.MAX_RADIUS_KM:g}. Needs `near`.",
            "schema": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": query.MAX_RADIUS_KM,
                "default": query.DEFAULT_RADIUS_KM,
            },
        },
        _comma_list("category", "Any of these categories.", vocabulary_ids("categories")),
        _comma_list("day", "Takes place on any of these days.", list(query.DAY_NAMES)),
        _comma_list(
            "time",
            "Starts in any of these parts of the day: morning (before 12:00), afternoon "
            "(12:00-17:00), evening (from 17:00), local time.",
            list(TIMES_OF_DAY),
        ),
        {
            "name": "free",
            "in": "query",
            "description": "`true`: only activities that cost nothing. `false` (default): no filter.",
            "schema": {"type": "boolean", "default": False},
        },
        {
            "name": "age",
            "in": "query",
            "description": "Only activities whose age range includes this age (no range: open to all ages).",
            "schema": {"type": "integer", "minimum": 0, "maximum": 120},
        },
        _comma_list("audience", "Especially for any of these groups of people.", vocabulary_ids("audiences")),
        _comma_list("accessibility", "Has all of these access features.", vocabulary_ids("accessibility")),
        {
            "name": "has_space",
            "in": "query",
            "description": "`true`: leave out activities that said in the last CAPACITY_MAX_AGE_DAYS days "
            "(14 by default) that they are full or have a waiting list. Activities that never said, or "
            "said longer ago, are kept and shown with capacity `unknown`.",
            "schema": {"type": "boolean", "default": False},
        },
        {
            "name": "q",
            "in": "query",
            "description": "Words that must all appear in the name, organiser, place or description.",
            "schema": {"type": "string"},
        },
        {
            "name": "limit",
            "in": "query",
            "description": f"Results per page, default {query.DEFAULT_LIMIT}, at most {query.MAX_LIMIT}.",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": query.MAX_LIMIT,
                "default": query.DEFAULT_LIMIT,
            },
        },
        {
            "name": "cursor",
            "in": "query",
            "description": "The `next_cursor` of the previous page, with every other parameter unchanged.",
            "schema": {"type": "string"},
        },
    ]


_ITEM = {
    "type": "object",
    "required": [
        "activity",
        "distance_km",
        "walking_minutes",
        "next_occurrences",
        "freshness",
        "vouchedBy",
        "sources",
    ],
    "properties": {
        "activity": {
            "type": "object",
            "description": "The activity as its most trusted, most recently verified source publishes it "
            "(https://localfeed.org/schema/activity.schema.json). A capacity older than "
            "CAPACITY_MAX_AGE_DAYS is shown as `unknown`.",
        },
        "distance_km": {
            "type": ["number", "null"],
            "description": "Straight-line (great-circle) distance from `near`; null without `near`.",
        },
        "distance_approximate": {
            "type": "boolean",
            "description": "True when `distance_km` is measured from or to the middle of an area rather "
            "than a point: the item is placed only at its postcode sector or district (`placed`), or "
            "`near` was located only to a sector, district or town (`query.located`).",
        },
        "placed": {
            "type": ["string", "null"],
            "enum": ["postcode", "sector", "district", None],
            "description": "How the item was put on the map when it gives no point of its own: at its "
            "postcode, or only at the middle of its postcode sector or district (its exact postcode "
            "is unknown here). Null when it gives its own point, or has no place at all.",
        },
        "walking_minutes": {
            "type": ["integer", "null"],
            "description": f"Minutes on foot at {query.WALKING_KMH:g} km/h along a route taken as "
            f"{query.ROUTE_FACTOR:g} times the straight-line distance (streets are not straight), "
            "rounded up; null without `near`.",
        },
        "next_occurrences": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "required": ["start", "end"],
                "properties": {
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
                },
            },
        },
        "freshness": {
            "type": "object",
            "required": ["state", "lastVerified", "note", "confirmedByOrganiser"],
            "description": "How recently the organiser confirmed the listing. Stale listings come after "
            "fresh and ageing ones; expired ones are left out of searches.",
            "properties": {
                "state": {"enum": ["fresh", "ageing", "stale", "expired"]},
                "lastVerified": {"type": "string", "format": "date"},
                "note": {"type": ["string", "null"], "examples": ["Not confirmed since June 2026"]},
                "confirmedByOrganiser": {
                    "type": "boolean",
                    "description": "False when the source gave no date, so `lastVerified` is only the "
                    "day it was harvested: the listing is then stale at best, noted "
                    "“Not confirmed by the organiser”.",
                },
            },
        },
        "vouchedBy": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Who has checked the listing in person: the names an aggregator operator gave "
            'to sources they check ("checked by us", e.g. a CVS that visits groups). Empty when nobody.',
            "examples": [["Merton CVS"]],
        },
        "sources": {
            "type": "array",
            "description": "Every feed this activity was found in (provenance).",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "url": {"type": "string", "format": "uri"},
                    "itemId": {"type": "string"},
                    "id": {
                        "type": ["integer", "null"],
                        "description": "This aggregator's number for the source: a person reads about "
                        "it at `/sources/{id}` (who publishes it, how recently it answered).",
                    },
                },
            },
        },
    },
}


def document(server_url: str) -> dict[str, Any]:
    """The OpenAPI document, with ``server_url`` as the server."""
    cached = {"description": "Answers may be cached for a minute; send If-None-Match to get a 304."}
    headers = {
        "ETag": {"schema": {"type": "string"}, **cached},
        "Access-Control-Allow-Origin": {"schema": {"const": "*"}, "description": "Any website may call it."},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Localfeed aggregator query API",
            "version": "1.0.0",
            "description": "What's on near here: community activities merged from the feeds this "
            "aggregator follows. No personal data; booking happens on the activity's own site.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": server_url}],
        "paths": {
            "/api/activities": {
                "get": {
                    "operationId": "searchActivities",
                    "summary": "Search activities",
                    "description": "Ordered by freshness band (fresh and ageing before stale), then distance "
                    "from `near`, then the next session. Paged with `cursor`.",
                    "parameters": _parameters(),
                    "responses": {
                        "200": {
                            "description": "One page of results.",
                            "headers": headers,
                            "content": _json_of("Page"),
                        },
                        "304": {"description": "Not modified since the ETag sent in If-None-Match."},
                        "400": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            "/api/activities/{id}": {
                "get": {
                    "operationId": "getActivity",
                    "summary": "One activity by its id",
                    "description": "The id of any copy (or a sameAs URI), URL-encoded. Expired listings "
                    "are returned too, with their freshness.",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The activity.",
                            "headers": headers,
                            "content": _json_of("Item"),
                        },
                        "304": {"description": "Not modified since the ETag sent in If-None-Match."},
                        "404": _ERROR,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Item": _ITEM,
                "Page": {
                    "type": "object",
                    "required": ["items", "next_cursor", "total", "total_is_lower_bound", "query"],
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                        "next_cursor": {
                            "type": ["string", "null"],
                            "description": "Pass as `cursor` for the next page; null on the last page.",
                        },
                        "total": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": query.COUNT_CAP,
                            "description": "How many activities the search finds on all its pages together "
                            f'("Showing 10 of 38"), counted up to {query.COUNT_CAP}.',
                        },
                        "total_is_lower_bound": {
                            "type": "boolean",
                            "description": f"True when there are more than {query.COUNT_CAP}: `total` "
                            f'is then {query.COUNT_CAP} ("more than {query.COUNT_CAP}").',
                        },
                        "query": {
                            "type": "object",
                            "description": "The parameters as understood: `lat`/`lon` of `near`, "
                            "`radius_km`, the filters, and `ignored` parameter names.",
                            "properties": {
                                "located": {
                                    "type": "object",
                                    "description": "With `near`: how precisely it was placed and its "
                                    "name for a heading (\"Showing activities near CR4 (Mitcham)\").",
                                    "required": ["precision", "label"],
                                    "properties": {
                                        "precision": {
                                            "enum": ["postcode", "sector", "district", "place", "point"],
                                        },
                                        "label": {"type": "string", "examples": ["CR4 (Mitcham)"]},
                                    },
                                }
                            },
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "parameter"],
                            "properties": {
                                "message": {"type": "string"},
                                "parameter": {"type": ["string", "null"]},
                                "choices": {
                                    "type": "array",
                                    "description": "For a town name used in places far apart: each "
                                    "place, and the `near` that searches it.",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "label": {"type": "string"},
                                            "near": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        }
                    },
                },
            },
            "responses": {
                "Error": {
                    "description": "What was wrong and how to fix it.",
                    "content": _json_of("Error"),
                }
            },
        },
    }
