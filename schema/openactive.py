"""The one mapping between an activity and its OpenActive form, both ways.

Feeds, pushes and Atom entries carry each activity as OpenActive Modelling Specification 2.0
JSON-LD, so that the national ecosystem of activity finders reads them as it reads any
booking system's; the contract's own shape (``activity.schema.json``) stays what editors,
the query API and the stores hold. :func:`to_openactive` writes the wire form and
:func:`from_openactive` reads it back, exactly: ``from_openactive(to_openactive(a)) == a``
for every activity, valid or not, so a quarantine reason names the same field whichever
side of the wire it is found on.

What OpenActive has a property for goes there (``eventSchedule`` of ``PartialSchedule``\\s,
typed ``organizer`` and ``location``, ``offers``, ``activity`` concepts, ``ageRange``,
``attendeeInstructions``, ...). What only Localfeed says (audiences, how to book, the
capacity status, when the organiser last confirmed it, ...) goes in ``lf:`` properties,
defined in ``context.jsonld``. An activity's own extension fields (``ext:colour``) travel
as they are. Defaults the contract leaves unsaid (status, attendance mode, time zone) are
written only when the activity says them, so nothing is added on the way.

Reading third parties' OpenActive (whose data no rule of ours shaped) is the aggregator's
adapter's work; the parts of it that are this mapping (days as schema.org URIs, say) are
here and it uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from schema.resources import SCHEMA_BASE_URL
from schema.schedule import except_starts
from schema.vocab import accessibility as accessibility_vocabulary
from schema.vocab import categories as category_vocabulary

OPENACTIVE_CONTEXT = "https://openactive.io/"
CONTEXT_URL = SCHEMA_BASE_URL + "context.jsonld"
CONTEXT = [OPENACTIVE_CONTEXT, CONTEXT_URL]
ACTIVITY_LIST = "https://openactive.io/activity-list"
CATEGORY_SCHEME = SCHEMA_BASE_URL + "vocab/categories.jsonld"  # schema.vocab.concept_scheme
ACCESSIBILITY_SCHEME = SCHEMA_BASE_URL + "vocab/accessibility.jsonld"

SCHEMA_ORG = "https://schema.org/"
DAYS = {
    "MO": "Monday",
    "TU": "Tuesday",
    "WE": "Wednesday",
    "TH": "Thursday",
    "FR": "Friday",
    "SA": "Saturday",
    "SU": "Sunday",
}
_DAY_CODES = {name.lower(): code for code, name in DAYS.items()}
_ATTENDANCE = {
    "in-person": "OfflineEventAttendanceMode",
    "online": "OnlineEventAttendanceMode",
    "mixed": "MixedEventAttendanceMode",
}
_STATUS = {"scheduled": "EventScheduled", "paused": "EventPostponed", "cancelled": "EventCancelled"}
# Localfeed's own properties on the wire, each defined in context.jsonld. An activity's extension
# field of one of these names would be read back as ours, so the names are Localfeed's alone.
LF_PROPERTIES = frozenset(
    {
        "lf:activityContext",
        "lf:audiences",
        "lf:booking",
        "lf:bookingMethod",
        "lf:bookingUrl",
        "lf:byMonthWeek",
        "lf:capacity",
        "lf:capacityStatus",
        "lf:capacityUpdatedAt",
        "lf:charityNumber",
        "lf:contact",
        "lf:contactEmail",
        "lf:contactName",
        "lf:contactTelephone",
        "lf:dateModified",
        "lf:languages",
        "lf:lastVerified",
        "lf:onlineUrl",
        "lf:price",
        "lf:remainingCapacity",
        "lf:sameAs",
    }
)


class NotLocalfeedForm(ValueError):
    """``from_openactive`` was given something that is not an activity in Localfeed's OpenActive form."""


def is_localfeed_form(data: Any) -> bool:
    """Whether ``data`` is an activity as :func:`to_openactive` writes it (its context names ours)."""
    if not isinstance(data, Mapping):
        return False
    context = data.get("@context")
    return context == CONTEXT_URL or (isinstance(context, list) and CONTEXT_URL in context)


def day_uri(code: str) -> str:
    """``TU`` → ``https://schema.org/Tuesday``."""
    return SCHEMA_ORG + DAYS[code] if code in DAYS else code


def day_code(value: Any) -> str | None:
    """``https://schema.org/Tuesday``, ``schema:Tuesday``, ``Tuesday`` or ``TU`` → ``TU``; None otherwise."""
    word = str(value).rsplit("/", 1)[-1].rsplit(":", 1)[-1].strip()
    return word.upper() if word.upper() in DAYS else _DAY_CODES.get(word.lower())


# -- activity → OpenActive ----------------------------------------------------------------------


def to_openactive(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The activity as an OpenActive SessionSeries or Event, with Localfeed's facts as ``lf:`` properties.

    Written for valid activities, it is total on any dict: what it does not know is carried
    as it is, so that an invalid activity reads back as the same invalid activity.
    """
    a = dict(activity)
    out: dict[str, Any] = {"@context": list(CONTEXT)}
    _move(a, out, "@context", "lf:activityContext")
    _move(a, out, "type", "@type")
    if "id" in a:
        out["@id"] = out["url"] = a.pop("id")
    _move(a, out, "name")
    _move(a, out, "description")
    if "categories" in a:
        out["activity"] = _concepts(a.pop("categories"))
    if isinstance(a.get("organizer"), Mapping):
        organizer = dict(a.pop("organizer"))
        _move(organizer, organizer, "charityNumber", "lf:charityNumber")
        out["organizer"] = {"@type": "Organization", "@id": _organizer_id(organizer, out), **organizer}
    if isinstance(a.get("location"), Mapping):
        out["location"] = _place(a.pop("location"), out)
    if "attendanceMode" in a:
        out["eventAttendanceMode"] = _uri(_ATTENDANCE, a.pop("attendanceMode"))
    _move(a, out, "onlineUrl", "lf:onlineUrl")
    if isinstance(a.get("schedule"), list):
        out["eventSchedule"] = [_partial_schedule(entry) for entry in a.pop("schedule")]
    _move(a, out, "startDate")
    _move(a, out, "endDate")
    length = _duration(out)
    if length:
        out["duration"] = length
    if isinstance(a.get("price"), Mapping):
        _offers(dict(a.pop("price")), out)
    if isinstance(a.get("ageRange"), Mapping):
        ages = a.pop("ageRange")
        out["ageRange"] = {
            "@type": "QuantitativeValue",
            **_renamed(ages, {"min": "minValue", "max": "maxValue"}),
        }
    _move(a, out, "audiences", "lf:audiences")
    if isinstance(a.get("capacity"), Mapping):
        capacity = dict(a.pop("capacity"))
        _move(capacity, out, "status", "lf:capacityStatus")
        # OpenActive reads spaces on an Event; a SessionSeries has them per session, which we do not list.
        _move(capacity, out, "remaining", _remaining_key(out))
        _move(capacity, out, "updatedAt", "lf:capacityUpdatedAt")
        if capacity:  # keys the contract does not know: kept for the reader to refuse
            out["lf:capacity"] = capacity
    if isinstance(a.get("booking"), Mapping):
        booking = dict(a.pop("booking"))
        _move(booking, out, "method", "lf:bookingMethod")
        _move(booking, out, "url", "lf:bookingUrl")
        if booking:
            out["lf:booking"] = booking
    if isinstance(a.get("contact"), Mapping):
        contact = dict(a.pop("contact"))
        for key in ("name", "email", "telephone"):
            _move(contact, out, key, "lf:contact" + key.capitalize())
        if contact:
            out["lf:contact"] = contact
    _move(a, out, "firstVisit", "attendeeInstructions")
    _move(a, out, "languages", "lf:languages")
    if "status" in a:
        out["eventStatus"] = _uri(_STATUS, a.pop("status"))
    _move(a, out, "lastVerified", "lf:lastVerified")
    _move(a, out, "dateModified", "lf:dateModified")
    _move(a, out, "sameAs", "lf:sameAs")
    out.update(a)  # extension fields (ext:colour), and whatever an invalid activity holds
    return out


def _move(source: dict[str, Any], target: dict[str, Any], key: str, as_key: str | None = None) -> None:
    if key in source:
        target[as_key or key] = source.pop(key)


def _renamed(values: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {names.get(key, key): value for key, value in values.items()}


def _uri(names: Mapping[str, str], value: Any) -> Any:
    return SCHEMA_ORG + names[value] if isinstance(value, str) and value in names else value


def _duration(event: Mapping[str, Any]) -> str | None:
    """An Event's length as an ISO 8601 duration (``PT1H30M``), which OpenActive asks for beside its dates."""
    try:
        seconds = int(
            (
                datetime.fromisoformat(event["endDate"]) - datetime.fromisoformat(event["startDate"])
            ).total_seconds()
        )
    except (KeyError, TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


def _organizer_id(organizer: Mapping[str, Any], out: Mapping[str, Any]) -> Any:
    """OpenActive names every Organization: by its website, else as a part of the activity's page."""
    return organizer.get("url") or f"{out.get('@id')}#organizer"


def _remaining_key(out: Mapping[str, Any]) -> str:
    return "remainingAttendeeCapacity" if out.get("@type") == "Event" else "lf:remainingCapacity"


def _concepts(categories: Any) -> Any:
    """Each category as an Activity List concept where one fits, else as a concept of our own scheme."""
    if not isinstance(categories, list):
        return categories
    vocabulary = category_vocabulary()
    concepts = []
    for category in categories:
        entry = vocabulary.get(category) if isinstance(category, str) else None
        if entry is None:
            concepts.append(category)  # not ours: carried for the reader to refuse
        elif entry.get("openactive"):
            concepts.append(
                {
                    "@type": "Concept",
                    "@id": entry["openactive"][0],
                    "prefLabel": entry["openactiveLabels"][0],
                    "inScheme": ACTIVITY_LIST,
                }
            )
        else:
            concepts.append(
                {
                    "@type": "Concept",
                    "@id": f"{CATEGORY_SCHEME}#{category}",
                    "prefLabel": entry["label"],
                    "inScheme": CATEGORY_SCHEME,
                }
            )
    return concepts


def _place(location: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    place = dict(location)
    features = place.pop("accessibility", [])
    if features != []:  # OpenActive asks for an empty list to be left out: it says nothing
        out["accessibilitySupport"] = _access_concepts(features)
    if isinstance(place.get("address"), Mapping):
        # Every postcode the contract takes is a UK one.
        place["address"] = {"@type": "PostalAddress", **place["address"], "addressCountry": "GB"}
    if isinstance(place.get("geo"), Mapping):
        place["geo"] = {"@type": "GeoCoordinates", **place["geo"]}
    return {"@type": "Place", **place}


def _access_concepts(features: Any) -> Any:
    if not isinstance(features, list):
        return features
    vocabulary = accessibility_vocabulary()
    return [
        {
            "@type": "Concept",
            "@id": f"{ACCESSIBILITY_SCHEME}#{feature}",
            "prefLabel": vocabulary[feature]["label"],
            "inScheme": ACCESSIBILITY_SCHEME,
        }
        if isinstance(feature, str) and feature in vocabulary
        else feature
        for feature in features
    ]


def _partial_schedule(entry: Any) -> Any:
    if not isinstance(entry, Mapping):
        return entry
    schedule = dict(entry)
    if isinstance(schedule.get("byDay"), list):
        schedule["byDay"] = [day_uri(day) if isinstance(day, str) else day for day in schedule["byDay"]]
    if "exceptDates" in schedule:
        schedule["exceptDate"] = _except_starts(entry)
        del schedule["exceptDates"]
    _move(schedule, schedule, "timezone", "scheduleTimezone")
    # "First Tuesday": schema.org has byMonthWeek, OpenActive 2.0 not yet, so it is ours on the wire.
    _move(schedule, schedule, "byMonthWeek", "lf:byMonthWeek")
    return {"@type": "PartialSchedule", **schedule}


def _except_starts(entry: Mapping[str, Any]) -> Any:
    """OpenActive names an excepted session by its start (a date-time); ours by its local date."""
    try:
        return [start.isoformat() for start in except_starts(entry)]
    except (TypeError, ValueError, KeyError, LookupError):
        return entry["exceptDates"]  # not dates, or no start time to place them at: carried as they are


def _offers(price: dict[str, Any], out: dict[str, Any]) -> None:
    """``offers`` and ``isAccessibleForFree`` as OpenActive reads prices, saying just what ``price`` says.

    The Offer's price is the amount, or 0 for a free activity that gives none; only a given
    currency is written (OpenActive needs one for a price above 0 only), so a free activity
    with no amount (an Offer at 0, no currency) reads back apart from one priced at £0.
    """
    offer: dict[str, Any] = {"@type": "Offer"}
    if "amount" in price:
        offer["price"] = price.pop("amount")
    elif price.get("isFree") is True:
        offer["price"] = 0
    _move(price, offer, "currency", "priceCurrency")
    _move(price, offer, "notes", "description")
    _move(price, out, "isFree", "isAccessibleForFree")
    if price:  # keys the contract does not know: kept for the reader to refuse
        offer["lf:price"] = price
    out["offers"] = [offer]


# -- OpenActive → activity ----------------------------------------------------------------------


def from_openactive(data: Mapping[str, Any]) -> dict[str, Any]:
    """The activity that :func:`to_openactive` wrote as ``data``.

    Raises NotLocalfeedForm when ``data`` is not in that form (another publisher's OpenActive,
    which the aggregator's adapter reads with its own rules). The result is not validated:
    the reader validates it like any activity.
    """
    if not is_localfeed_form(data):
        raise NotLocalfeedForm(
            f"This item's @context does not name Localfeed's ({CONTEXT_URL}), so it is not an activity "
            "in Localfeed's OpenActive form."
        )
    d = dict(data)
    d.pop("@context")
    a: dict[str, Any] = {}
    _move(d, a, "lf:activityContext", "@context")
    _move(d, a, "@id", "id")
    if d.get("url") == a.get("id"):
        del d["url"]
    _move(d, a, "@type", "type")
    _move(d, a, "name")
    _move(d, a, "description")
    if isinstance(d.get("organizer"), Mapping):
        organizer = _untyped(d.pop("organizer"))
        if organizer.get("@id") == _organizer_id(organizer, data):
            del organizer["@id"]
        _move(organizer, organizer, "lf:charityNumber", "charityNumber")
        a["organizer"] = organizer
    if "activity" in d:
        a["categories"] = _categories(d.pop("activity"))
    if isinstance(d.get("location"), Mapping):
        a["location"] = _location(d.pop("location"), d)
    if "eventAttendanceMode" in d:
        a["attendanceMode"] = _from_uri(_ATTENDANCE, d.pop("eventAttendanceMode"))
    _move(d, a, "lf:onlineUrl", "onlineUrl")
    if isinstance(d.get("eventSchedule"), list):
        a["schedule"] = [_schedule_entry(rule) for rule in d.pop("eventSchedule")]
    _move(d, a, "startDate")
    _move(d, a, "endDate")
    if "duration" in d and d["duration"] == _duration(data):
        del d["duration"]
    if isinstance(d.get("offers"), list) and len(d["offers"]) == 1 and isinstance(d["offers"][0], Mapping):
        a["price"] = _price(d.pop("offers")[0], d)
    if isinstance(d.get("ageRange"), Mapping):
        a["ageRange"] = _renamed(_untyped(d.pop("ageRange")), {"minValue": "min", "maxValue": "max"})
    _move(d, a, "lf:audiences", "audiences")
    capacity: dict[str, Any] = {}
    _move(d, capacity, "lf:capacityStatus", "status")
    _move(d, capacity, _remaining_key(data), "remaining")
    _move(d, capacity, "lf:capacityUpdatedAt", "updatedAt")
    if isinstance(d.get("lf:capacity"), Mapping):
        capacity.update(d.pop("lf:capacity"))
    if capacity:
        a["capacity"] = capacity
    booking: dict[str, Any] = {}
    _move(d, booking, "lf:bookingMethod", "method")
    _move(d, booking, "lf:bookingUrl", "url")
    if isinstance(d.get("lf:booking"), Mapping):
        booking.update(d.pop("lf:booking"))
    if booking:
        a["booking"] = booking
    contact: dict[str, Any] = {}
    for key in ("name", "email", "telephone"):
        _move(d, contact, "lf:contact" + key.capitalize(), key)
    if isinstance(d.get("lf:contact"), Mapping):
        contact.update(d.pop("lf:contact"))
    if contact:
        a["contact"] = contact
    _move(d, a, "attendeeInstructions", "firstVisit")
    _move(d, a, "lf:languages", "languages")
    if "eventStatus" in d:
        a["status"] = _from_uri(_STATUS, d.pop("eventStatus"))
    _move(d, a, "lf:lastVerified", "lastVerified")
    _move(d, a, "lf:dateModified", "dateModified")
    _move(d, a, "lf:sameAs", "sameAs")
    a.update(d)  # extension fields, and whatever else it held (which the reader's validation refuses)
    return a


def _untyped(thing: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in thing.items() if key != "@type"}


def _from_uri(names: Mapping[str, str], value: Any) -> Any:
    for ours, theirs in names.items():
        if value == SCHEMA_ORG + theirs:
            return ours
    return value


@cache
def _category_of_concept() -> dict[str, str]:
    """Activity List concept URI -> our category id: built once, not for every item a harvest reads."""
    return {
        uri: category
        for category, entry in category_vocabulary().items()
        for uri in entry.get("openactive", ())
    }


def _categories(concepts: Any) -> Any:
    if not isinstance(concepts, list):
        return concepts
    by_concept = _category_of_concept()
    categories: list[Any] = []
    for concept in concepts:
        uri = concept.get("@id") if isinstance(concept, Mapping) else None
        if not isinstance(uri, str):
            categories.append(concept)
        elif uri.startswith(CATEGORY_SCHEME + "#"):
            categories.append(uri.removeprefix(CATEGORY_SCHEME + "#"))
        elif uri in by_concept:
            categories.append(by_concept[uri])
        else:
            categories.append(uri)  # not a concept we write: kept for validation to name
    return categories


def _location(place: Mapping[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    location = _untyped(place)
    if isinstance(location.get("address"), Mapping):
        address = _untyped(location["address"])
        if address.get("addressCountry") == "GB":
            del address["addressCountry"]
        location["address"] = address
    if isinstance(location.get("geo"), Mapping):
        location["geo"] = _untyped(location["geo"])
    if "accessibilitySupport" in rest:
        features = rest.pop("accessibilitySupport")
        location["accessibility"] = (
            [_scheme_id(feature, ACCESSIBILITY_SCHEME) for feature in features]
            if isinstance(features, list)
            else features
        )
    return location


def _scheme_id(concept: Any, scheme: str) -> Any:
    uri = concept.get("@id") if isinstance(concept, Mapping) else None
    if isinstance(uri, str) and uri.startswith(scheme + "#"):
        return uri.removeprefix(scheme + "#")
    return concept


def _schedule_entry(rule: Any) -> Any:
    if not isinstance(rule, Mapping):
        return rule
    entry = _untyped(rule)
    if isinstance(entry.get("byDay"), list):
        entry["byDay"] = [day_code(day) or day for day in entry["byDay"]]
    if "exceptDate" in entry:
        starts = entry.pop("exceptDate")
        entry["exceptDates"] = (
            [start[:10] if isinstance(start, str) else start for start in starts]
            if isinstance(starts, list)
            else starts
        )
    _move(entry, entry, "scheduleTimezone", "timezone")
    _move(entry, entry, "lf:byMonthWeek", "byMonthWeek")
    return entry


def _price(offer: Mapping[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    price: dict[str, Any] = {}
    if "isAccessibleForFree" in rest:
        price["isFree"] = rest.pop("isAccessibleForFree")
    free_without_amount = (
        offer.get("price") == 0 and "priceCurrency" not in offer and price.get("isFree") is True
    )
    if "price" in offer and not free_without_amount:
        price["amount"] = offer["price"]
    if "priceCurrency" in offer:
        price["currency"] = offer["priceCurrency"]
    if "description" in offer:
        price["notes"] = offer["description"]
    if isinstance(offer.get("lf:price"), Mapping):
        price.update(offer["lf:price"])
    return price
