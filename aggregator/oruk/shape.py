"""An activity in the shapes of the Open Referral UK profile (HSDS 3.0 UK), and our taxonomies.

Pure functions of one activity: the routes (``aggregator.oruk``) read the store, these
say what each record holds. Every id is a UUID derived from a URI that never changes
(``uuid5``), so a service, its children and a taxonomy term keep their ids for ever, here
and on any other aggregator that serves the same activity.

Fields follow the profile's compiled schemas (https://github.com/OpenReferralUK/uk-profile,
schema/compiled/): ``service_list.json`` for a list's one-to-one fields, ``service.json``
for the fully nested service, ``service_at_location_list.json`` for a place it runs at.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from aggregator.freshness import confirmed_by_organiser
from federation.feeds.common import vocab_label
from schema import vocab
from schema.resources import SCHEMA_BASE_URL
from schema.schedule import LOCAL_ZONE, describe, series_start

_STATUS = {"scheduled": "active", "paused": "temporarily closed", "cancelled": "inactive"}
_FREQUENCY = {"P1W": ("WEEKLY", 1), "P2W": ("WEEKLY", 2), "P1M": ("MONTHLY", 1)}


def service_id(item_id: str) -> str:
    """The Open Referral id of the activity ``item_id``: a UUID that never changes."""
    return _uuid(item_id)


def _uuid(uri: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, uri))


# -- taxonomies: our vocabularies as SKOS concept schemes ------------------------------------


class Taxonomy(NamedTuple):
    """One of our vocabularies as an Open Referral taxonomy; ``kind`` names it in schema/vocab."""

    kind: str
    name: str
    description: str
    link_type: str  # what an attribute linking a service to one of its terms says the term describes
    attribute_kind: str  # names a service's attributes of this taxonomy in their ids (see _Children)

    @property
    def uri(self) -> str:
        """The vocabulary's SKOS concept scheme, where it is published with the schemas
        (``schema.vocab.concept_scheme``): the scheme the OpenActive form's concepts name.
        """
        return f"{SCHEMA_BASE_URL}vocab/{self.kind}.jsonld"

    @property
    def id(self) -> str:
        return _uuid(self.uri)

    def term_uri(self, code: str) -> str:
        return f"{self.uri}#{code}"

    def term_id(self, code: str) -> str:
        return _uuid(self.term_uri(code))


TAXONOMIES = (
    Taxonomy(
        "categories",
        "Localfeed activity categories",
        "What kind of activity it is: walking, lunch clubs, befriending, men's sheds and the rest.",
        "category",
        "attribute",  # the categories were the first, and their attributes keep the ids they had
    ),
    Taxonomy(
        "audiences",
        "Localfeed audiences",
        "Who an activity is especially for. An activity with none is open to everyone.",
        "audience",
        "attribute/audiences",
    ),
)


def taxonomy(scheme: Taxonomy) -> dict[str, Any]:
    """The ``taxonomy`` record of one of our vocabularies."""
    return {
        "id": scheme.id,
        "name": scheme.name,
        "description": scheme.description,
        "uri": scheme.uri,
    }


def taxonomy_term(scheme: Taxonomy, code: str) -> dict[str, Any]:
    """The ``taxonomy_term`` record of the vocabulary id ``code``.

    An id the vocabulary no longer has (stored before it changed) is its own name and
    description, since the profile requires both.
    """
    label = vocab_label(scheme.kind, code)
    entry = _entries(scheme.kind).get(code) or {}
    return {
        "id": scheme.term_id(code),
        "name": label,
        "term": label,
        "code": code,
        "description": entry.get("description") or label,
        "taxonomy": scheme.name,
        "taxonomy_id": scheme.id,
        "term_uri": scheme.term_uri(code),
    }


def _entries(kind: str) -> dict[str, dict[str, Any]]:
    return vocab.categories() if kind == "categories" else vocab.audiences()


def every_term() -> Iterator[tuple[Taxonomy, str]]:
    """(taxonomy, vocabulary id) for every term of every taxonomy, in display order."""
    for scheme in TAXONOMIES:
        for code in vocab.ids(scheme.kind):
            yield scheme, code


# -- services -------------------------------------------------------------------------------


def summary(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The one-to-one fields of a service, as ``/services`` lists them."""
    sid = service_id(activity["id"])
    contact = activity.get("contact") or {}
    organizer = activity["organizer"]
    organization: dict[str, Any] = {
        "id": _uuid(f"{organizer.get('url', '')}#{organizer['name']}"),
        "name": organizer["name"],
        "description": f"Organiser of {activity['name']}",
    }
    if organizer.get("url"):
        organization["website"] = organizer["url"]
    if organizer.get("email"):
        organization["email"] = organizer["email"]
    found: dict[str, Any] = {
        "id": sid,
        "organization_id": organization["id"],
        "name": activity["name"],
        "description": activity.get("description", ""),
        "url": activity["id"],
        "status": _STATUS.get(activity.get("status", "scheduled"), "active"),
        "last_modified": activity["dateModified"],
        "organization": organization,
    }
    email = contact.get("email") or organizer.get("email")
    if email:
        found["email"] = email
    ages = activity.get("ageRange") or {}
    if "min" in ages:
        found["minimum_age"] = ages["min"]
    if "max" in ages:
        found["maximum_age"] = ages["max"]
    if confirmed_by_organiser(activity):  # only a date the organiser confirmed counts as assured
        found["assured_date"] = activity["lastVerified"]
    return found


class _Children:
    """Ids of a service's child records, derived from the activity's id and the child's place."""

    def __init__(self, activity: Mapping[str, Any]) -> None:
        self.page = activity["id"]

    def __call__(self, kind: str, index: int = 0) -> str:
        return _uuid(f"{self.page}#{kind}/{index}")


def service_at_location(activity: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where the activity runs, as a ``service_at_location`` with its fully nested location.

    None for an activity with neither a place nor an online link (the contract allows none).
    """
    child, sid = _Children(activity), service_id(activity["id"])
    location = activity.get("location")
    if location:
        address = location.get("address") or {}
        place: dict[str, Any] = {
            "id": child("location"),
            "location_type": "physical",
            "name": location["name"],
            "addresses": [
                {
                    "id": child("address"),
                    "location_id": child("location"),
                    "address_1": address.get("streetAddress", ""),
                    "city": address.get("addressLocality", ""),
                    "state_province": "",
                    "postal_code": address.get("postalCode", ""),
                    "country": "GB",
                    "address_type": "physical",
                }
            ],
            "accessibility": [
                {"id": child("accessibility", i), "description": vocab_label("accessibility", feature)}
                for i, feature in enumerate(location.get("accessibility", []))
                if feature in vocab.accessibility()
            ],
        }
        if location.get("geo"):
            place["latitude"] = location["geo"]["latitude"]
            place["longitude"] = location["geo"]["longitude"]
    elif activity.get("onlineUrl"):
        place = {"id": child("location"), "location_type": "virtual", "url": activity["onlineUrl"]}
    else:
        return None
    return {
        "id": child("service_at_location"),
        "service_id": sid,
        "location_id": place["id"],
        "location": place,
    }


_LISTED_LOCATION = ("id", "location_type", "name", "latitude", "longitude")


def service_at_location_summary(activity: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``service_at_location`` as ``/service_at_locations`` lists it: one-to-one fields only."""
    found = service_at_location(activity)
    if found is None:
        return None
    place = found["location"]
    found["location"] = {key: place[key] for key in _LISTED_LOCATION if key in place}
    found["service"] = summary(activity)
    return found


def full_service(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The fully nested service for ``/services/{id}``."""
    found = summary(activity)
    child, sid, page = _Children(activity), found["id"], activity["id"]
    found["schedules"] = [
        {"id": child("schedule", i), "service_id": sid, "url": page, **fields}
        for i, fields in enumerate(schedules(activity))
    ]
    place = service_at_location(activity)
    if place is not None:
        found["service_at_locations"] = [place]
    price = activity.get("price") or {}
    cost = {"id": child("cost"), "service_id": sid, "url": page}
    if price.get("isFree") or "amount" in price:
        cost.update(currency="GBP", amount=0 if price.get("isFree") else price["amount"])
    if price.get("notes"):  # where there is no amount, the only word on the cost
        cost["amount_description"] = price["notes"]
    found["cost_options"] = [cost]
    contact = activity.get("contact") or {}
    if contact:
        person: dict[str, Any] = {"id": child("contact"), "service_id": sid, "url": page}
        person.update({key: contact[key] for key in ("name", "email") if contact.get(key)})
        if contact.get("telephone"):
            person["phones"] = [{"id": child("phone"), "number": contact["telephone"]}]
        found["contacts"] = [person]
    found["languages"] = [
        {"id": child("language", i), "service_id": sid, "url": page, "code": code}
        for i, code in enumerate(activity.get("languages", []))
    ]
    found["attributes"] = [
        {
            "id": child(scheme.attribute_kind, i),
            "link_id": sid,
            "link_type": scheme.link_type,
            "taxonomy_term_id": scheme.term_id(code),
            "taxonomy_term": taxonomy_term(scheme, code),
        }
        for scheme in TAXONOMIES
        for i, code in enumerate(activity.get(scheme.kind) or ())
    ]
    return found


def schedules(activity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """HSDS schedules (RRULE parts) for a SessionSeries; one dated opening for an Event.

    ``dtstart`` is the first real session (schema.schedule's expansion), not the
    ``startDate`` a publisher typed, which need not fall on one of the ``byday`` days.
    """
    if activity["type"] == "Event":
        zone = LOCAL_ZONE
        start = datetime.fromisoformat(activity["startDate"]).astimezone(zone)
        end = datetime.fromisoformat(activity["endDate"]).astimezone(zone)
        return [
            {
                "valid_from": start.date().isoformat(),
                "valid_to": end.date().isoformat(),
                "dtstart": start.date().isoformat(),
                "opens_at": f"{start:%H:%M}",
                "closes_at": f"{end:%H:%M}",
            }
        ]
    found = []
    for entry in activity.get("schedule") or ():
        frequency, interval = _FREQUENCY[entry["repeatFrequency"]]
        week = entry.get("byMonthWeek")
        fields: dict[str, Any] = {
            "freq": frequency,
            "interval": interval,
            "byday": ",".join(f"{week}{day}" if week else day for day in entry["byDay"]),
            "opens_at": entry["startTime"],
            "closes_at": entry["endTime"],
            "dtstart": series_start(entry).start.date().isoformat(),
            "valid_from": entry["startDate"],
            "description": describe(entry),
        }
        if entry.get("endDate"):
            fields["valid_to"] = fields["until"] = entry["endDate"]
        if entry.get("exceptDates"):
            fields["notes"] = "Not on " + ", ".join(entry["exceptDates"])
        found.append(fields)
    return found
