"""Validating activities and RPDE pages against the contract.

Two paths share one source of truth, the JSON Schema files:

* the fast path (``is_valid_activity``) runs the schema compiled into one Python
  predicate (``schema.compiled``), plus the few rules a schema cannot say: the whole
  document's limits (``schema.limits``: nesting, size, sound numbers, clean text) and rules
  across fields (an end after its start, a real time zone). Most documents an aggregator
  sees are valid, so this is the path that must be cheap.
* the explaining path (``validate_activity``) runs only when the fast path says no: the
  jsonschema reference validator finds the errors, and each is turned into one
  ``Problem`` a volunteer can act on, naming the field, what is wrong and what to do. Its
  work is bounded whatever it is given: a document too deep or too large, or with a list
  over its maximum, gets that one problem at once, and no document gets more than
  ``MAX_PROBLEMS``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from itertools import chain, islice
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from schema.compiled import Predicate, compile_predicate
from schema.limits import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    MAX_ACTIVITY_BYTES,
    MAX_ACTIVITY_DEPTH,
    MAX_SAFE_INTEGER,
    deeper_than,
    json_size,
    unsound_numbers,
    within_limits,
)
from schema.resources import SCHEMA_BASE_URL, shared
from schema.text import ForbiddenCharacter, escaped, forbidden_characters

ACTIVITY_SCHEMA = "activity.schema.json"
PAGE_SCHEMA = "feed-page.schema.json"
# A person fixes a document from the top; a hundred problems are more than enough to start
# on, and explaining every one of thousands would let one document cost seconds.
MAX_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in a document: where (a JSON path), what kind (a stable code), and what to do."""

    path: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.code}: {self.message}"


# -- formats: the same checks for both validators ------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


# Formats constrain strings only; other types are the "type" keyword's business.


def _is_date(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_date_time(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    return True


def _is_email(value: Any) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))


def _is_uri(value: Any) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


FORMATS: dict[str, Callable[[Any], bool]] = {
    "date": _is_date,
    "date-time": _is_date_time,
    "email": _is_email,
    "uri": _is_uri,
}


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name)(check)
    return checker


# -- the compiled fast path ------------------------------------------------------------------


@cache
def _compiled(name: str) -> Predicate:
    return compile_predicate(shared(name), FORMATS)


@cache
def _explainer(name: str) -> Draft202012Validator:
    return Draft202012Validator(shared(name), format_checker=_format_checker())


def matches_schema(name: str, doc: Any) -> bool:
    """Whether ``doc`` is valid against the schema file ``name`` (compiled; no extra rules)."""
    return _compiled(name)(doc)


# -- rules a schema cannot say ---------------------------------------------------------------


def _clock(value: Any) -> str | None:
    return value if isinstance(value, str) and _TIME.match(value) else None


# Rules across fields compare only dates the contract accepts (in form and in its years):
# a date outside the window has its own problem, and an end before it would be noise.


def _day(value: Any) -> date | None:
    if not (isinstance(value, str) and _is_date(value)):
        return None
    day = date.fromisoformat(value)
    return day if EARLIEST_YEAR <= day.year <= LATEST_YEAR else None


def _instant(value: Any) -> datetime | None:
    if not (isinstance(value, str) and _is_date_time(value)):
        return None
    instant = datetime.fromisoformat(value.upper())
    return instant if EARLIEST_YEAR <= instant.year <= LATEST_YEAR else None


@lru_cache(maxsize=256)
def _known_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True


def _entry_rules(entry: Any, at: str) -> Iterator[Problem]:
    if not isinstance(entry, dict):
        return
    start, end = _clock(entry.get("startTime")), _clock(entry.get("endTime"))
    if start and end and end <= start:
        when = "the same time as it starts" if end == start else f"before it starts at {start}"
        yield Problem(
            f"{at}.endTime",
            "end-before-start",
            f"End time {end} is {when}; set an end time after the start time, "
            "on the 24-hour clock (e.g. 14:00 for 2pm).",
        )
    first, last = _day(entry.get("startDate")), _day(entry.get("endDate"))
    if first and last and last < first:
        yield Problem(
            f"{at}.endDate",
            "end-before-start",
            f"Last date {last} is before the first date {first}; correct one of them.",
        )
    zone = entry.get("timezone")
    if isinstance(zone, str) and not _known_timezone(zone):
        yield Problem(
            f"{at}.timezone",
            "bad-timezone",
            f"Time zone '{zone}' is not a known time zone; use a name like 'Europe/London'.",
        )


def _activity_rules(doc: Any) -> Iterator[Problem]:
    """Rules across fields, checked wherever the fields themselves are well-formed."""
    if not isinstance(doc, dict):
        return
    schedule = doc.get("schedule")
    if isinstance(schedule, list):
        for index, entry in enumerate(schedule):
            yield from _entry_rules(entry, f"$.schedule[{index}]")
    start, end = _instant(doc.get("startDate")), _instant(doc.get("endDate"))
    if start and end and end <= start:
        yield Problem(
            "$.endDate",
            "end-before-start",
            f"End {doc['endDate']} is not after the start {doc['startDate']}; set the end after the start.",
        )
    ages = doc.get("ageRange")
    if isinstance(ages, dict):
        low, high = ages.get("min"), ages.get("max")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            yield Problem(
                "$.ageRange.max",
                "age-range",
                f"Maximum age {high} is below the minimum age {low}; swap them or correct one.",
            )


# -- the whole document's limits (schema.limits), explained ---------------------------------

# More top-level fields than the contract has are extensions gone wild, not long text.
_FIELDS_IN_FULL_ACTIVITY = len(shared(ACTIVITY_SCHEMA)["properties"])


def outsized(doc: Any) -> Problem | None:
    """The one problem with a document nested too deep or too large to be worth looking inside, or None.

    Checked before anything else reads the document, so its cost is bounded whatever was
    sent; the harvest checks it first too. It names the field to shorten or flatten.
    """
    if deeper_than(doc):
        at = _first_field_where(doc, lambda value: deeper_than(value, MAX_ACTIVITY_DEPTH - 1))
        label = _field_label(at)
        return Problem(
            _json_path(at),
            "too-deep",
            f"{label} nests lists and objects more than {MAX_ACTIVITY_DEPTH} levels deep, "
            "where an activity needs four or five; flatten it, or remove it.",
        )
    size = json_size(doc)
    if size <= MAX_ACTIVITY_BYTES:
        return None
    sizes = {key: json_size(value) for key, value in doc.items()} if isinstance(doc, dict) else {}
    largest = max(sizes, key=sizes.__getitem__, default=None)
    if largest is not None and sizes[largest] * 2 >= size:
        fix = f"most of it is {_field_label([escaped(str(largest))])} ({sizes[largest]:,} bytes): shorten it."
    elif len(sizes) > _FIELDS_IN_FULL_ACTIVITY:
        fix = f"it has {len(sizes):,} fields: remove those it does not need."
    else:
        fix = "shorten its longest texts and lists."
    return Problem(
        "$",
        "too-large",
        f"The activity is {size:,} bytes long as JSON; at most {MAX_ACTIVITY_BYTES:,} are allowed "
        f"(a full activity takes a few thousand); {fix}",
    )


def _first_field_where(doc: Any, breaks: Callable[[Any], bool]) -> list[Any]:
    """The path of the first top-level field whose value ``breaks`` a limit (the document's, if none)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if breaks(value):
                return [escaped(key) if isinstance(key, str) else key]
    return []


def _field_label(parts: list[Any]) -> str:
    return _activity_explainer().label(_field_key(parts), parts) if parts else "The activity"


def _number_problem(parts: tuple[str | int, ...], value: Any) -> Problem:
    path = _json_path(parts)
    label = _field_label(list(parts))
    if isinstance(value, float):  # NaN or an infinity: JSON has no such number
        return Problem(
            path,
            "not-a-number",
            f"{label} is {_shown(value)}, which is not a number feeds, databases and calendars can hold; "
            "write the number itself, in digits.",
        )
    return Problem(
        path,
        "number-too-large",
        f"{label} is {_shown(value)}, a whole number larger than other sites can read exactly "
        f"(at most {MAX_SAFE_INTEGER:,} either side of zero); write a smaller number.",
    )


def _text_problems(doc: Any) -> Iterator[Problem]:
    return map(_forbidden_character_problem, forbidden_characters(doc))


def _forbidden_character_problem(found: ForbiddenCharacter) -> Problem:
    """Where the character is, which one, and what to do: the field's label when the contract names it."""
    parts = list(found.parts)
    if found.in_key:
        # The path shows the name with the character escaped, so the path itself stays plain text.
        path = _json_path([*parts[:-1], escaped(str(parts[-1]))])
        where = f"The field name '{escaped(str(parts[-1]))}'"
    else:
        path = _json_path(parts)
        where = _activity_explainer().label(_field_key(parts), parts)
    after = f', after "{found.before}"' if found.before else ", at the start"
    if found.is_control:
        return Problem(
            path,
            "control-character",
            f"{where} contains a control character ({found.code_point}) at position {found.position}{after}; "
            "remove it: it is invisible, and feed readers and calendars cannot show it.",
        )
    return Problem(
        path,
        "not-a-character",
        f"{where} contains {found.code_point} at position {found.position}{after}, which is not a character "
        "any text may hold; remove it: it usually comes from text cut in the middle of an emoji.",
    )


# -- explaining errors -----------------------------------------------------------------------

_ACTIVITY_LABELS = {
    "": "The activity",
    "id": "Activity id",
    "type": "Type",
    "name": "Name",
    "description": "Description",
    "organizer": "Organiser",
    "organizer.name": "Organiser name",
    "organizer.url": "Organiser website",
    "organizer.email": "Organiser email",
    "organizer.telephone": "Organiser telephone",
    "organizer.charityNumber": "Charity number",
    "categories": "Categories",
    "categories[]": "Category",
    "location": "Location",
    "location.name": "Venue name",
    "location.address": "Address",
    "location.address.streetAddress": "Street address",
    "location.address.addressLocality": "Town",
    "location.address.addressRegion": "County or region",
    "location.address.postalCode": "Postcode",
    "location.geo": "Map position",
    "location.geo.latitude": "Latitude",
    "location.geo.longitude": "Longitude",
    "location.accessibility": "Access features",
    "location.accessibility[]": "Access feature",
    "attendanceMode": "Attendance mode",
    "onlineUrl": "Online joining link",
    "schedule": "Schedule",
    "schedule[]": "Schedule entry",
    "schedule[].repeatFrequency": "Repeat frequency",
    "schedule[].byDay": "Days",
    "schedule[].byDay[]": "Day",
    "schedule[].byMonthWeek": "Week of the month",
    "schedule[].startTime": "Start time",
    "schedule[].endTime": "End time",
    "schedule[].startDate": "First date",
    "schedule[].endDate": "Last date",
    "schedule[].exceptDates": "Dates off",
    "schedule[].exceptDates[]": "Date off",
    "schedule[].timezone": "Time zone",
    "startDate": "Start",
    "endDate": "End",
    "price": "Price",
    "price.isFree": "Free",
    "price.amount": "Price amount",
    "price.currency": "Currency",
    "price.notes": "Price notes",
    "ageRange": "Age range",
    "ageRange.min": "Minimum age",
    "ageRange.max": "Maximum age",
    "audiences": "Audiences",
    "audiences[]": "Audience",
    "capacity": "Capacity",
    "capacity.status": "Capacity status",
    "capacity.remaining": "Spaces left",
    "capacity.updatedAt": "Capacity update time",
    "booking": "Booking",
    "booking.method": "Booking method",
    "booking.url": "Booking link",
    "contact": "Contact",
    "contact.name": "Contact name",
    "contact.email": "Contact email",
    "contact.telephone": "Contact telephone",
    "firstVisit": "First visit",
    "languages": "Languages",
    "languages[]": "Language",
    "status": "Status",
    "lastVerified": "Last verified date",
    "dateModified": "Date modified",
    "sameAs": "Same-as links",
    "sameAs[]": "Same-as link",
}

_PAGE_LABELS = {
    "": "The page",
    "items": "Items",
    "items[]": "Item",
    "items[].state": "Item state",
    "items[].kind": "Item kind",
    "items[].id": "Item id",
    "items[].modified": "Item change number",
    "items[].data": "Item data",
    "next": "Next page URL",
    "license": "Licence",
}

# What to do about a missing field, where "add it" is not enough to act on.
_MISSING = {
    "id": "add the absolute http(s) URL of the activity's page, minted by the publisher",
    "type": "set it to 'SessionSeries' for a repeating activity or 'Event' for a one-off",
    "name": "give the activity a short name, like 'Mitcham Health Walk'",
    "organizer": "add the organiser, at least its name",
    "organizer.name": "add the name of the group that runs the activity",
    "categories": "choose at least one category, like 'walking'",
    "location": "add the venue name and address, or set attendanceMode to 'online'",
    "location.address": "add the street address, town and postcode",
    "onlineUrl": "add the https:// link people use to join online",
    "schedule": "say when it happens, like every Tuesday from 10:00 to 11:00, from a first date",
    "schedule[].repeatFrequency": "set it to 'P1W' (weekly), 'P2W' (every other week) or 'P1M' (monthly)",
    "schedule[].byDay": "list the day or days, like ['TU']",
    "schedule[].byMonthWeek": "a monthly schedule needs the week of the month: 1 to 4, or -1 for the last",
    "schedule[].startTime": "add the start time on the 24-hour clock, like '10:00'",
    "schedule[].endTime": "add the end time on the 24-hour clock, like '11:30'",
    "schedule[].startDate": "add the date of the first session, like '2026-01-06'",
    "startDate": "a one-off event needs its start, like '2026-12-10T12:00:00+00:00'",
    "endDate": "a one-off event needs its end, like '2026-12-10T14:00:00+00:00'",
    "price": "add {\"isFree\": true}, or an amount in pounds with currency 'GBP'",
    "price.amount": (
        "give the amount in pounds (0 or more) with currency 'GBP', or set isFree to true; "
        "where there is no one amount, say how the cost works in notes"
    ),
    "price.currency": "set it to 'GBP'",
    "booking": "say how to join: 'drop-in', 'book-ahead', 'referral' or 'contact-first'",
    "booking.method": "set it to 'drop-in', 'book-ahead', 'referral' or 'contact-first'",
    "capacity.status": "set it to 'spaces', 'waiting-list', 'full' or 'unknown'",
    "lastVerified": "add the date the organiser last confirmed these details, like '2026-10-01'",
    "dateModified": "the publisher sets it: the date and time of the last change, with its UTC offset",
    "items": "a page lists its items, possibly none: []",
    "next": "add the absolute URL of the next page (the page's own URL on the last page)",
    "license": "add the URL of the data licence, like 'https://creativecommons.org/licenses/by/4.0/'",
    "items[].data": "an updated item carries the activity as 'data'",
}

_VOCAB_CODES = {
    "categories[]": ("unknown-category", "categories"),
    "location.accessibility[]": ("unknown-accessibility", "accessibility"),
    "audiences[]": ("unknown-audience", "audiences"),
}

_PATTERN_KINDS = {
    "httpUrl": "url",
    "postcode": "postcode",
    "time": "time",
    "telephone": "telephone",
    "language": "language",
    "noHtml": "html",
    "yearWindow": "year",
}

# What to do about a list over its maximum, where "remove some" is not enough to act on.
_FEWER = {
    "categories": "keep the few that describe it best",
    "schedule": (
        "one entry can list several days (byDay) at the same times, so merge entries like that, "
        "or publish the sessions as separate activities"
    ),
    "schedule[].byDay": "list each day once",
    "schedule[].exceptDates": (
        "list only the dates still to come; for a long break, end this entry with an endDate "
        "and add a new entry from the date it starts again"
    ),
    "audiences": "keep those it is especially for, or list none if it is for everyone",
    "items": "publish at most that many items a page, and the rest on the next page",
}

_EXAMPLES = {
    "time": "on the 24-hour clock as HH:MM, like '09:30'",
    "telephone": "a telephone number, like '020 8123 4567'",
    "language": "a BCP 47 language code, like 'en', 'cy' or 'pl'",
}

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}

# When one field has several errors, the most basic one explains it; the rest are noise.
_PRIORITY = {"type": 0, "required": 1, "const": 2, "enum": 2, "pattern": 3, "format": 4}


_PLURAL_LABELS = frozenset(
    {"Categories", "Access features", "Days", "Dates off", "Audiences", "Languages", "Same-as links", "Items"}
)


def _is(label: str) -> str:
    """The verb that agrees with a field's label ("Categories are empty", "Name is empty")."""
    return "are" if label in _PLURAL_LABELS else "is"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


def _json_path(parts: Iterable[Any]) -> str:
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out.append(f".{part}")
        else:
            out.append(f"[{_quote(part)}]")
    return "".join(out)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _field_key(parts: Iterable[Any]) -> str:
    key = ""
    for part in parts:
        key += "[]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _shown(value: Any, limit: int = 60) -> str:
    """A value as a person would write it in the document: text quoted, numbers as they are."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return _quote(text) if isinstance(value, str) else text


class _Explainer:
    """Turns jsonschema errors for one schema into Problems a person can act on."""

    def __init__(self, schema_name: str, labels: Mapping[str, str]):
        self.schema_name = schema_name
        self.labels = labels
        defs = shared(schema_name).get("$defs", {})
        self.pattern_kinds = {
            defs[name]["pattern"]: kind for name, kind in _PATTERN_KINDS.items() if name in defs
        }

    def problems(self, doc: Any, most: int = MAX_PROBLEMS) -> list[Problem]:
        """The problems with ``doc``, one a field (the most basic), for at most ``most`` fields.

        jsonschema finds errors lazily, so stopping at ``most`` also stops its work.
        """
        best: dict[str, tuple[int, Problem]] = {}
        for error in _explainer(self.schema_name).iter_errors(doc):
            rank = _PRIORITY.get(str(error.validator), 5)
            for problem in self._explain(error):  # one error can be many problems (unknown fields)
                if problem.path not in best or rank < best[problem.path][0]:
                    best[problem.path] = (rank, problem)
                if len(best) >= most:
                    return [problem for _, problem in best.values()]
        return [problem for _, problem in best.values()]

    def over_long_lists(self, doc: Any) -> Iterator[Problem]:
        """Each list in ``doc`` longer than the schema allows, without looking inside it.

        Said before anything else is explained: explaining each entry of a list far too
        long would take longer than reading it, and the person first has to shorten it.
        """
        yield from self._over_long(_list_limits(self.schema_name), doc, [])

    def _over_long(self, limits: Mapping[str, Any], value: Any, parts: list[Any]) -> Iterator[Problem]:
        if isinstance(value, list):
            most = limits.get("maxItems")
            if most is not None and len(value) > most:
                key = _field_key(parts)
                message = _too_many(key, self.label(key, parts), len(value), most)
                yield Problem(_json_path(parts), "too-many", message)
                return
            if "items" in limits:
                for index, item in enumerate(value):
                    yield from self._over_long(limits["items"], item, [*parts, index])
        elif isinstance(value, dict):
            for name, inner in limits.get("properties", {}).items():
                if name in value:
                    yield from self._over_long(inner, value[name], [*parts, name])

    def in_field_order(self, problems: Iterable[Problem]) -> list[Problem]:
        """Problems in the order of the fields in the contract (the order a form shows them)."""
        rank = {key: index for index, key in enumerate(self.labels)}

        def position(problem: Problem) -> list[tuple[int, int | str]]:
            key, out = "", list[tuple[int, int | str]]()
            for token in _PATH_TOKEN.finditer(problem.path):
                name, index, quoted = token.groups()
                if index is not None:
                    key += "[]"
                    out.append((int(index), ""))
                    continue
                name = name if name is not None else quoted
                key = f"{key}.{name}" if key else name
                out.append((rank.get(key, len(rank)), name))
            return out

        return sorted(problems, key=position)

    def label(self, key: str, parts: list[Any]) -> str:
        if key in self.labels:
            return self.labels[key]
        # A field the contract does not name (an extension's): by its name, not a list index.
        name = next((part for part in reversed(parts) if isinstance(part, str)), None)
        return f"Field '{name}'" if name is not None else "The document"

    def _explain(self, error: ValidationError) -> Iterator[Problem]:
        parts = list(error.absolute_path)
        key = _field_key(parts)
        keyword = error.validator
        value: Any = error.instance  # the stubs allow Unset; the validator's errors always carry these
        rule: Any = error.validator_value
        if key in ("price", "price.isFree") and "else" in error.absolute_schema_path:
            # Neither free nor an amount: the amount is what is missing, unless isFree is
            # not true or false at all, which its own type error explains.
            price_at = parts if key == "price" else parts[:-1]
            if key == "price" or isinstance(value, bool):
                yield self._missing([*price_at, "amount"])
            return
        if keyword == "required":
            present = value if isinstance(value, dict) else {}
            for name in rule:
                if name not in present:
                    yield self._missing([*parts, name])
            return
        if keyword == "additionalProperties":
            yield from self._unknown_fields(error, parts)
            return
        label = self.label(key, parts)
        path = _json_path(parts)
        code, message = self._describe(error, key, label, value)
        yield Problem(path, code, message)

    def _missing(self, parts: list[Any]) -> Problem:
        key = _field_key(parts)
        hint = _MISSING.get(key, "add it")
        label = self.label(key, parts)
        return Problem(_json_path(parts), "required", f"{label} {_is(label)} missing; {hint}.")

    def _unknown_fields(self, error: ValidationError, parts: list[Any]) -> Iterator[Problem]:
        schema: Any = error.schema  # the stubs allow bool or Unset; additionalProperties is in an object
        instance: Any = error.instance
        known = list(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        owner = self.label(_field_key(parts), parts).lower() if parts else "an activity"
        for name in instance:
            if name in known or any(p.search(name) for p in patterns):
                continue
            close = difflib.get_close_matches(name, known, n=1)
            fix = f"did you mean '{close[0]}'?" if close else "remove it or check the spelling."
            if not parts and self.schema_name == ACTIVITY_SCHEMA and not close:
                fix = "remove it, or name an extension with a prefix, like 'ext:" + name + "'."
            yield Problem(
                _json_path([*parts, name]),
                "unknown-field",
                f"'{name}' is not a field of {owner}; {fix}",
            )

    def _describe(self, error: ValidationError, key: str, label: str, value: Any) -> tuple[str, str]:
        keyword = error.validator
        rule: Any = error.validator_value  # the stubs allow Unset; the validator's errors always carry it
        if keyword == "type":
            expected = rule
            wanted = " or ".join(
                _TYPE_WORDS.get(t, t) for t in ([expected] if isinstance(expected, str) else expected)
            )
            return "wrong-type", f"{label} should be {wanted}, not {_json_type(value)}."
        if keyword == "enum":
            return self._not_in_list(key, label, value, rule)
        if keyword == "const":
            return self._const(key, label, value, error.validator_value)
        if keyword == "pattern":
            return self._pattern(rule, label, value)
        if keyword == "format":
            return self._format(rule, label, value)
        if keyword == "maxLength":
            limit = error.validator_value
            return "too-long", f"{label} is {len(value)} characters long; shorten it to {limit} or fewer."
        if keyword == "minLength":
            return "required", f"{label} {_is(label)} empty; {_MISSING.get(key, 'fill it in')}."
        if keyword == "minItems":
            if error.validator_value == 1:
                return "required", f"{label} {_is(label)} empty; {_MISSING.get(key, 'add at least one')}."
            return "too-few", f"{label} needs at least {error.validator_value} entries."
        if keyword == "maxItems":
            return "too-many", _too_many(key, label, len(value), rule)
        if keyword == "uniqueItems":
            repeated = next((v for i, v in enumerate(value) if v in value[:i]), None)
            return "duplicate", f"{label} lists {_shown(repeated)} more than once; list each only once."
        if keyword == "minimum":
            return "too-small", f"{label} is {_shown(value)}; it must be {rule:,} or more."
        if keyword == "maximum":
            return "too-large", f"{label} is {_shown(value)}; it must be {rule:,} or less."
        if keyword == "not":
            if key == "items[].data":
                return "not-allowed", (
                    "Item data is not allowed on a deleted item; remove it "
                    "(a deleted item carries only state, kind, id and modified)."
                )
            return "not-allowed", f"{label} is not allowed here; remove it."
        return "invalid", f"{label} is not valid: {error.message}."

    def _not_in_list(self, key: str, label: str, value: Any, allowed: list[Any]) -> tuple[str, str]:
        shown = ", ".join(_shown(v) for v in allowed)
        if key in _VOCAB_CODES:
            code, vocab = _VOCAB_CODES[key]
            close = difflib.get_close_matches(str(value), [str(v) for v in allowed], n=1)
            fix = f"did you mean '{close[0]}'?" if close else "choose one from the list"
            return code, (
                f"{label} {_shown(value)} is not in Localfeed's list of {vocab}; {fix} "
                f"(all are listed at {SCHEMA_BASE_URL}vocab/{vocab}.json)."
            )
        if key.endswith("byDay[]"):
            return "bad-day", f"{label} {_shown(value)} is not a day; use two letters: {shown}."
        return "not-allowed", f"{label} {_shown(value)} is not allowed; use one of {shown}."

    def _const(self, key: str, label: str, value: Any, expected: Any) -> tuple[str, str]:
        if key == "price.currency":
            return (
                "currency",
                f"Currency {_shown(value)} is not accepted; prices are in pounds, so use 'GBP'.",
            )
        if key == "schedule[].repeatFrequency":
            return "month-week-needs-monthly", (
                f"Repeat frequency {_shown(value)} cannot have a week of the month; "
                "use 'P1M' for a monthly session like 'first Tuesday', or remove byMonthWeek."
            )
        return "not-allowed", f"{label} {_shown(value)} is not allowed; use {_shown(expected)}."

    def _pattern(self, pattern: str, label: str, value: str) -> tuple[str, str]:
        kind = self.pattern_kinds.get(pattern)
        if kind == "postcode":
            return "postcode", f"Postcode {_shown(value)} is not a UK postcode, like 'CR4 1AA'."
        if kind == "html":
            tag = re.search(r"<[A-Za-z/!?][^>\s]{0,20}>?", value)
            return "html-not-allowed", (
                f"{label} contains HTML ({_shown(tag.group(0) if tag else '<')}); "
                "write plain text without tags — formatting and links in it are not shown."
            )
        if kind == "url":
            scheme = re.match(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):", value)
            if scheme and scheme.group(1).lower() not in ("http", "https"):
                return "unsafe-url", (
                    f"{label} {_shown(value)} is not a web address; "
                    "use a link starting with https:// (other kinds of link are not allowed)."
                )
            return "bad-url", (
                f"{label} {_shown(value)} is not a full web address; "
                "write the whole link, starting with https://, like 'https://example.org/page'."
            )
        if kind == "year":
            return "year-out-of-range", (
                f"{label} {_shown(value)} is in the year {value[:4]}; dates must lie between "
                f"{EARLIEST_YEAR} and {LATEST_YEAR}, so check the year (the first four digits)."
            )
        if kind in _EXAMPLES:
            return f"bad-{kind}", f"{label} {_shown(value)} is not valid; write {_EXAMPLES[kind]}."
        return "bad-format", f"{label} {_shown(value)} is not in the expected form."

    @staticmethod
    def _format(name: str, label: str, value: Any) -> tuple[str, str]:
        if name == "date":
            return (
                "bad-date",
                f"{label} {_shown(value)} is not a date; write it as YYYY-MM-DD, like '2026-10-01'.",
            )
        if name == "date-time":
            return "bad-datetime", (
                f"{label} {_shown(value)} is not a date and time with a UTC offset; "
                "write it like '2026-12-10T12:00:00+00:00'."
            )
        if name == "email":
            return "bad-email", f"{label} {_shown(value)} is not an email address, like 'hello@example.org'."
        return "bad-url", f"{label} {_shown(value)} is not a full web address, like 'https://example.org/'."


def _too_many(key: str, label: str, count: int, most: int) -> str:
    fix = _FEWER.get(key, "remove the ones that matter least")
    return f"{label} has {count:,} entries; at most {most:,} are allowed; {fix}."


@cache
def _list_limits(name: str) -> dict[str, Any]:
    """Where the schema file ``name`` limits the length of a list: a tree of {"maxItems",
    "properties": {name: tree}, "items": tree}, holding only the branches that lead to a limit."""
    root = shared(name)

    def referenced(node: Any) -> Iterator[Mapping[str, Any]]:
        while isinstance(node, dict):
            yield node
            ref = node.get("$ref", "")
            node = root["$defs"].get(ref.removeprefix("#/$defs/")) if ref.startswith("#/$defs/") else None

    def tree(node: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for part in referenced(node):
            if "maxItems" in part:
                found["maxItems"] = part["maxItems"]
            for field, inner in part.get("properties", {}).items():
                if below := tree(inner):
                    found.setdefault("properties", {})[field] = below
            if below := tree(part.get("items")):
                found["items"] = below
        return found

    return tree(root)


@cache
def _activity_explainer() -> _Explainer:
    return _Explainer(ACTIVITY_SCHEMA, _ACTIVITY_LABELS)


@cache
def _page_explainer() -> _Explainer:
    return _Explainer(PAGE_SCHEMA, _PAGE_LABELS)


# -- public API --------------------------------------------------------------------------------


def is_valid_activity(doc: Any) -> bool:
    """Whether ``doc`` satisfies the whole contract: the fast path for the usual valid case."""
    return (
        within_limits(doc)  # first: it bounds the depth, which the size's measure needs
        and json_size(doc) <= MAX_ACTIVITY_BYTES
        and matches_schema(ACTIVITY_SCHEMA, doc)
        and next(_activity_rules(doc), None) is None
    )


def validate_activity(doc: Any) -> list[Problem]:
    """Every problem with ``doc`` as an activity, in document order; empty when it is valid.

    Each mistake gives one problem at the field it concerns, so a list of problems can be
    shown next to the form fields or in a source's health page as it is.
    """
    if is_valid_activity(doc):
        return []
    if not isinstance(doc, dict):
        return [Problem("$", "wrong-type", f"An activity should be a JSON object, not {_json_type(doc)}.")]
    explainer = _activity_explainer()
    too_big = outsized(doc)
    if too_big is not None:
        return [too_big]
    too_many = list(explainer.over_long_lists(doc))
    if too_many:
        return too_many
    numbers = [_number_problem(*found) for found in islice(unsound_numbers(doc), MAX_PROBLEMS)]
    # NaN or an infinity is the problem with its field, whatever the schema says of it
    # ("should be a whole number" would be no help); where the schema names a bound, that wins.
    found = {p.path: p for p in numbers if p.code == "not-a-number"}
    for problem in explainer.problems(doc):
        found.setdefault(problem.path, problem)
    for problem in chain(numbers, _text_problems(doc), _activity_rules(doc)):
        if len(found) >= MAX_PROBLEMS:
            break
        found.setdefault(problem.path, problem)
    return explainer.in_field_order(found.values())


def field_name(path: str) -> str:
    """The field of an activity that a problem's ``path`` points at, in the words its messages use.

    "$.location.address.postalCode" is "Postcode", "$.schedule[0].startTime" is "Start time"
    and "$" is "The activity": for pages that show a problem to someone who never reads JSON.
    """
    parts: list[Any] = []
    for token in _PATH_TOKEN.finditer(path):
        name, index, quoted = token.groups()
        parts.append(int(index) if index is not None else name if name is not None else quoted)
    return _field_label(parts)


def validate_page(doc: Any) -> list[Problem]:
    """Every problem with ``doc`` as an RPDE page; item ``data`` is checked separately."""
    if matches_schema(PAGE_SCHEMA, doc):
        return []
    if not isinstance(doc, dict):
        return [Problem("$", "wrong-type", f"An RPDE page should be a JSON object, not {_json_type(doc)}.")]
    explainer = _page_explainer()
    too_many = list(explainer.over_long_lists(doc))
    return too_many or explainer.in_field_order(explainer.problems(doc))
