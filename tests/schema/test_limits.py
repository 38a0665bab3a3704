"""One rule for what a stored activity can hold (issue 23): every bound refused with a located
message a person can act on, every boundary value accepted, and hostile documents refused
with bounded work, whichever door they come through."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from schema import (
    MAX_ACTIVITY_BYTES,
    MAX_ACTIVITY_DEPTH,
    Problem,
    is_valid_activity,
    outsized,
    validate_activity,
    vocab,
)
from schema.limits import EARLIEST_YEAR, LATEST_YEAR, MAX_SAFE_INTEGER, json_size
from schema.resources import shared
from tests.factories import event_activity, weekly_activity

Change = Callable[[dict[str, Any]], None]


def changed(doc: dict[str, Any], change: Change) -> dict[str, Any]:
    change(doc)
    return doc


def only_problem(doc: dict[str, Any]) -> Problem:
    """The one problem with ``doc``, which the fast path must refuse too."""
    assert not is_valid_activity(doc)
    (problem,) = validate_activity(doc)
    return problem


def accepted(doc: dict[str, Any]) -> None:
    assert validate_activity(doc) == []
    assert is_valid_activity(doc)


# -- numbers: the schema's bounds, each side of each edge -----------------------------------


def _set(*path: str | int) -> Callable[[Any], Change]:
    """A change setting the field at ``path`` (creating the objects on the way) to a value."""

    def to(value: Any) -> Change:
        def change(doc: dict[str, Any]) -> None:
            node = doc
            for part in path[:-1]:
                node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
            node[path[-1]] = value

        return change

    return to


def _event_price(value: Any) -> Change:
    return lambda doc: doc.update(price={"amount": value, "currency": "GBP"})


# (field, its path, a change setting it, lowest allowed, highest allowed, a fix the message gives)
NUMBERS = [
    ("capacity", "$.capacity.remaining", _set("capacity", "remaining"), 0, 100_000, "100,000 or less"),
    ("price", "$.price.amount", _event_price, 0, 10_000, "10,000 or less"),
    ("min-age", "$.ageRange.min", _set("ageRange", "min"), 0, 120, "120 or less"),
    ("max-age", "$.ageRange.max", _set("ageRange", "max"), 0, 120, "120 or less"),
    ("latitude", "$.location.geo.latitude", _set("location", "geo", "latitude"), -90, 90, "90 or less"),
    ("longitude", "$.location.geo.longitude", _set("location", "geo", "longitude"), -180, 180, "180 or less"),
]


def _numbered(change: Change) -> dict[str, Any]:
    doc = weekly_activity(capacity={"status": "spaces"})
    doc["ageRange"] = {}
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("field", "path", "setter", "low", "high", "fix"), NUMBERS, ids=[n[0] for n in NUMBERS]
)
def test_numbers_at_their_bounds_are_accepted_and_past_them_refused_with_the_bound(
    field, path, setter, low, high, fix
):
    accepted(_numbered(setter(low)))
    accepted(_numbered(setter(high)))
    above = only_problem(_numbered(setter(high + 1)))
    assert (above.path, above.code) == (path, "too-large")
    assert f"it must be {fix}." in above.message
    below = only_problem(_numbered(setter(low - 1)))
    assert (below.path, below.code) == (path, "too-small")


# Python's json reads NaN and the infinities, so an API body can hold them: written as JSON here.
NOT_NUMBERS = ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("written", NOT_NUMBERS)
@pytest.mark.parametrize(
    ("field", "path", "setter", "low", "high", "fix"), NUMBERS, ids=[n[0] for n in NUMBERS]
)
def test_nan_and_the_infinities_are_refused_in_every_number_field(
    written, field, path, setter, low, high, fix
):
    value = json.loads(written)
    problem = only_problem(_numbered(setter(value)))
    assert (problem.path, problem.code) == (path, "not-a-number")
    assert f"is {written}, which is not a number" in problem.message
    assert problem.message.endswith("write the number itself, in digits.")


@pytest.mark.parametrize("written", NOT_NUMBERS)
def test_nan_and_the_infinities_are_refused_anywhere_extensions_included(written):
    body = f'{{"ext:survey": {{"scores": [1, 2.5, {written}]}}}}'
    doc = weekly_activity(**json.loads(body))
    problem = only_problem(doc)
    assert (problem.path, problem.code) == ("$['ext:survey'].scores[2]", "not-a-number")
    assert problem.message.startswith(f"Field 'scores' is {written},")


def test_a_huge_exponent_is_refused_by_the_fields_bound():
    doc = weekly_activity(**json.loads('{"capacity": {"status": "spaces", "remaining": 1e30}}'))
    assert only_problem(doc) == Problem(
        "$.capacity.remaining", "too-large", "Spaces left is 1e+30; it must be 100,000 or less."
    )


def test_whole_numbers_anywhere_stay_within_what_every_json_reader_holds_exactly():
    accepted(weekly_activity(**{"ext:count": MAX_SAFE_INTEGER, "ext:debt": -MAX_SAFE_INTEGER}))
    for number in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 10**30):
        problem = only_problem(weekly_activity(**{"ext:count": number}))
        assert (problem.path, problem.code) == ("$['ext:count']", "number-too-large")
        assert "write a smaller number" in problem.message


# -- dates: the years 1900 to 2100, in every place a date appears ----------------------------


def _event_dates(start: str, end: str) -> dict[str, Any]:
    return event_activity(startDate=start, endDate=end)


def _entry(**fields: Any) -> dict[str, Any]:
    doc = weekly_activity()
    doc["schedule"][0].update(fields)
    return doc


def _first_session(day: str) -> dict[str, Any]:
    return _entry(startDate=day)


def _last_session(day: str) -> dict[str, Any]:
    return _entry(startDate="1900-01-01", endDate=day)


# (where, its path, an activity with the date-time or date ``day`` there)
DATE_TIMES: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
    ("start", "$.startDate", lambda t: _event_dates(t, "2100-12-31T23:59:59+00:00")),
    ("end", "$.endDate", lambda t: _event_dates("1900-01-01T00:00:00+00:00", t)),
    ("modified", "$.dateModified", lambda t: weekly_activity(dateModified=t)),
    (
        "capacity-update",
        "$.capacity.updatedAt",
        lambda t: weekly_activity(capacity={"status": "full", "updatedAt": t}),
    ),
]
DATES: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
    ("first-session", "$.schedule[0].startDate", _first_session),
    ("last-session", "$.schedule[0].endDate", _last_session),
    ("date-off", "$.schedule[0].exceptDates[0]", lambda d: _entry(exceptDates=[d])),
    ("last-verified", "$.lastVerified", lambda d: weekly_activity(lastVerified=d)),
]
EVERY_DATE = [
    (where, path, lambda year, at=at: at(f"{year}-01-01T12:00:00+00:00")) for where, path, at in DATE_TIMES
]
EVERY_DATE += [(where, path, lambda year, at=at: at(f"{year}-01-01")) for where, path, at in DATES]


@pytest.mark.parametrize(("where", "path", "at_year"), EVERY_DATE, ids=[d[0] for d in EVERY_DATE])
def test_every_date_lies_between_1900_and_2100(where, path, at_year):
    accepted(at_year("1900"))
    accepted(at_year("2100"))
    for year in ("0001", "1899", "2101", "9999"):
        problem = only_problem(at_year(year))
        assert (problem.path, problem.code) == (path, "year-out-of-range")
        assert (
            f"is in the year {year}; dates must lie between 1900 and 2100, so check the year"
            in problem.message
        )


def test_the_last_moments_of_the_window_are_inside_it():
    accepted(_event_dates("2100-12-31T22:00:00-05:00", "2100-12-31T23:59:59-05:00"))
    accepted(_entry(startDate="2100-12-31", exceptDates=["2100-12-31"]))


def test_a_value_that_is_no_date_at_all_is_told_its_form_not_its_year():
    problem = only_problem(weekly_activity(lastVerified="yesterday"))
    assert (problem.path, problem.code) == ("$.lastVerified", "bad-date")
    problem = only_problem(weekly_activity(lastVerified="20260-01-01"))
    assert (problem.path, problem.code) == ("$.lastVerified", "bad-date")


def test_the_schemas_year_pattern_and_the_messages_years_are_the_same_years():
    # Third parties validate with the schema file alone: it must say what the messages say.
    date_schema = {"$defs": shared("activity.schema.json")["$defs"], "$ref": "#/$defs/date"}
    checker = Draft202012Validator(date_schema)
    assert checker.is_valid(f"{EARLIEST_YEAR}-01-01") and checker.is_valid(f"{LATEST_YEAR}-12-31")
    assert not checker.is_valid(f"{EARLIEST_YEAR - 1}-12-31")
    assert not checker.is_valid(f"{LATEST_YEAR + 1}-01-01")


# -- lists: each at its maximum accepted, one more refused with what to do --------------------


def _categories(count: int) -> dict[str, Any]:
    return weekly_activity(categories=vocab.ids("categories")[:count])


def _audiences(count: int) -> dict[str, Any]:
    return weekly_activity(audiences=vocab.ids("audiences")[:count])


def _accessibility(count: int) -> dict[str, Any]:
    features = vocab.ids("accessibility")
    doc = weekly_activity()
    doc["location"]["accessibility"] = [features[n % len(features)] for n in range(count)]
    return doc


def _languages(count: int) -> dict[str, Any]:
    return weekly_activity(languages=[f"en-x{n}" for n in range(count)])


def _same_as(count: int) -> dict[str, Any]:
    return weekly_activity(sameAs=[f"https://other{n}.example/walk" for n in range(count)])


def _schedule(count: int) -> dict[str, Any]:
    doc = weekly_activity()
    doc["schedule"] = doc["schedule"] * count
    return doc


def _days(count: int) -> dict[str, Any]:
    days = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
    return _entry(byDay=[days[n % 7] for n in range(count)])


def _dates_off(count: int) -> dict[str, Any]:
    first = date(2026, 1, 6)
    return _entry(exceptDates=[(first + timedelta(days=n)).isoformat() for n in range(count)])


# (list, its path, an activity with ``count`` entries in it, its maximum, a phrase of the fix)
LISTS = [
    ("categories", "$.categories", _categories, 10, "keep the few that describe it best"),
    ("audiences", "$.audiences", _audiences, 10, "or list none if it is for everyone"),
    ("accessibility", "$.location.accessibility", _accessibility, 20, "remove the ones that matter least"),
    ("languages", "$.languages", _languages, 20, "remove the ones that matter least"),
    ("same-as", "$.sameAs", _same_as, 20, "remove the ones that matter least"),
    ("schedule", "$.schedule", _schedule, 50, "one entry can list several days (byDay)"),
    ("days", "$.schedule[0].byDay", _days, 7, "list each day once"),
    ("dates-off", "$.schedule[0].exceptDates", _dates_off, 366, "list only the dates still to come"),
]


@pytest.mark.parametrize(("name", "path", "with_entries", "most", "fix"), LISTS, ids=[n[0] for n in LISTS])
def test_each_list_at_its_maximum_is_accepted_and_longer_is_refused_with_what_to_do(
    name, path, with_entries, most, fix
):
    if name != "accessibility":  # the vocabulary has fewer features than the room left for it
        accepted(with_entries(most))
    problem = only_problem(with_entries(most + 1))
    assert (problem.path, problem.code) == (path, "too-many")
    assert f" has {most + 1:,} entries; at most {most:,} are allowed; " in problem.message
    assert fix in problem.message


def test_every_accessibility_feature_fits_with_room_for_the_vocabulary_to_grow():
    accepted(_accessibility(len(vocab.ids("accessibility"))))


def test_every_list_in_the_schema_has_a_maximum():
    def lists(node: Any, at: str) -> list[str]:
        if isinstance(node, dict):
            found = [at] if node.get("type") == "array" and "maxItems" not in node else []
            return found + [name for key, value in node.items() for name in lists(value, f"{at}/{key}")]
        return []

    assert lists(shared("activity.schema.json"), "#") == []


# -- text: every string the schema describes has a maximum length ----------------------------


def _postcode(text: str) -> dict[str, Any]:
    doc = weekly_activity()
    doc["location"]["address"]["postalCode"] = text
    return doc


# (field, its path, an activity with ``text`` there, a longest value allowed, one character longer)
TEXTS = [
    ("postcode", "$.location.address.postalCode", _postcode, " CR4 1HT".ljust(16), " CR4 1HT".ljust(17)),
    ("language", "$.languages[0]", lambda t: weekly_activity(languages=[t]),
     "en-abcdefgh-abcdefgh-abcdefgh-abcde", "en-abcdefgh-abcdefgh-abcdefgh-abcdef"),
    # The longest real zone name is far shorter than the limit (and a made-up one is no zone).
    ("time-zone", "$.schedule[0].timezone", lambda t: _entry(timezone=t), "America/Argentina/ComodRivadavia",
     "Europe/" + "L" * 58),
    ("date-time", "$.dateModified", lambda t: weekly_activity(dateModified=t),
     "2026-10-01T09:00:00." + "1" * 14 + "+01:00", "2026-10-01T09:00:00." + "1" * 15 + "+01:00"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "path", "with_text", "longest", "too_long"), TEXTS, ids=[t[0] for t in TEXTS]
)
def test_text_without_a_natural_length_has_a_maximum(field, path, with_text, longest, too_long):
    assert len(longest) == len(too_long) - 1 or field == "time-zone"
    accepted(with_text(longest))
    problem = only_problem(with_text(too_long))
    assert (problem.path, problem.code) == (path, "too-long")
    assert (
        f"is {len(too_long)} characters long; shorten it to {len(too_long) - 1} or fewer." in problem.message
    )


def test_every_string_in_the_schema_has_a_bounded_length():
    """A maximum length, a pattern of bounded length, an enum or a format of fixed length."""
    schema = shared("activity.schema.json")
    defs = schema["$defs"]

    def bounded(node: dict[str, Any]) -> bool:
        if "maxLength" in node or "enum" in node or "const" in node or node.get("format") == "date":
            return True
        return "$ref" in node and bounded(defs[node["$ref"].removeprefix("#/$defs/")])

    def strings(node: Any, at: str) -> list[str]:
        if not isinstance(node, dict):
            return []
        found = [at] if node.get("type") == "string" and not bounded(node) else []
        return found + [name for key, value in node.items() for name in strings(value, f"{at}/{key}")]

    unbounded = strings(schema, "#")
    # Bounded by their patterns: a telephone number at most 26 characters, a charity number 20, a time 5.
    assert unbounded == ["#/$defs/time", "#/$defs/organizer/properties/charityNumber"]


# -- the whole activity: depth and size -------------------------------------------------------


def _nested(levels: int) -> Any:
    """A value whose deepest part lies ``levels`` below it."""
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_up_to_the_limit_is_accepted_and_deeper_is_refused_at_its_field():
    accepted(weekly_activity(**{"ext:tree": _nested(MAX_ACTIVITY_DEPTH - 1)}))
    problem = only_problem(weekly_activity(**{"ext:tree": _nested(MAX_ACTIVITY_DEPTH)}))
    assert problem == Problem(
        "$['ext:tree']",
        "too-deep",
        "Field 'ext:tree' nests lists and objects more than 20 levels deep, "
        "where an activity needs four or five; flatten it, or remove it.",
    )


def test_nesting_100000_deep_is_refused_without_exhausting_the_stack():
    # Python's json cannot even read it (the publisher's API bounds the depth as it parses); a
    # document built in Python, or by another parser, must still get a problem, not a RecursionError.
    for field in ("ext:deep", "name", "location", "categories"):
        problem = only_problem(weekly_activity(**{field: _nested(100_000)}))
        assert (problem.path, problem.code) == (f"$['{field}']" if ":" in field else f"$.{field}", "too-deep")


def _of_size(size: int) -> dict[str, Any]:
    doc = weekly_activity(**{"ext:notes": ""})
    doc["ext:notes"] = "x" * (size - json_size(doc))
    assert json_size(doc) == size
    return doc


def test_an_activity_of_the_maximum_size_is_accepted_and_a_byte_more_is_refused_with_both_sizes():
    accepted(_of_size(MAX_ACTIVITY_BYTES))
    problem = only_problem(_of_size(MAX_ACTIVITY_BYTES + 1))
    assert (problem.path, problem.code) == ("$", "too-large")
    assert problem.message.startswith(
        "The activity is 100,001 bytes long as JSON; at most 100,000 are allowed "
        "(a full activity takes a few thousand); most of it is Field 'ext:notes' ("
    )
    assert problem.message.endswith(" bytes): shorten it.")


def test_the_size_counts_bytes_not_characters():
    doc = _of_size(MAX_ACTIVITY_BYTES - 10_000)
    doc["ext:notes"] = "é" * (len(doc["ext:notes"]) // 2 + 5_001)  # two bytes each in UTF-8
    assert only_problem(doc).code == "too-large"


def test_outsized_is_the_harvests_first_check_and_names_nothing_on_a_fine_activity():
    assert outsized(weekly_activity()) is None
    assert outsized(weekly_activity(description="x" * 200_000)) == only_problem(
        weekly_activity(description="x" * 200_000)
    )


# -- the hostile inputs of issue 23: each refused with one problem, and bounded work ---------


def _many_schedule_entries() -> dict[str, Any]:
    return _schedule(10_000)  # about 1.3 MB: refused by its size


def _many_empty_schedule_entries() -> dict[str, Any]:
    return weekly_activity(schedule=[{}] * 10_000)  # 30 KB, each entry missing five fields


def _many_dates_off() -> dict[str, Any]:
    return _dates_off(100_000)


def _dates_off_within_the_size() -> dict[str, Any]:
    return _entry(exceptDates=["2026-13-01"] * 7_000)  # 7,000 bad dates: not each explained


_AT_NAN = (
    '{"location": {"name": "Hall", "address": {"streetAddress": "1 Road", "addressLocality": "Town", '
    '"postalCode": "CR4 1HT"}, "geo": {"latitude": NaN, "longitude": 0}}}'
)
HOSTILE = [
    ("nan", lambda: weekly_activity(**json.loads(_AT_NAN)), "$.location.geo.latitude", "not-a-number"),
    ("infinity", lambda: event_activity(**json.loads('{"price": {"amount": Infinity, "currency": "GBP"}}')),
     "$.price.amount", "not-a-number"),
    ("minus-infinity", lambda: weekly_activity(**json.loads('{"ageRange": {"min": -Infinity}}')),
     "$.ageRange.min", "not-a-number"),
    ("1e30", lambda: weekly_activity(capacity={"status": "spaces", "remaining": 1e30}),
     "$.capacity.remaining", "too-large"),
    ("year-0001", lambda: event_activity(startDate="0001-01-01T00:00:00+00:00"),
     "$.startDate", "year-out-of-range"),
    ("year-9999", lambda: _entry(endDate="9999-12-31"), "$.schedule[0].endDate", "year-out-of-range"),
    ("100000-dates-off", _many_dates_off, "$", "too-large"),
    ("7000-bad-dates-off", _dates_off_within_the_size, "$.schedule[0].exceptDates", "too-many"),
    ("10000-schedule-entries", _many_schedule_entries, "$", "too-large"),
    ("10000-empty-schedule-entries", _many_empty_schedule_entries, "$.schedule", "too-many"),
    ("3mb-description", lambda: weekly_activity(description="x" * 3_000_000), "$", "too-large"),
    ("lone-surrogate", lambda: weekly_activity(**json.loads('{"name": "\\ud800 walk"}')),
     "$.name", "not-a-character"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "path", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_each_hostile_input_is_refused_with_one_located_problem(name, make, path, code):
    problem = only_problem(make())
    assert (problem.path, problem.code) == (path, code)


@pytest.mark.parametrize(
    "make",
    [_many_schedule_entries, _many_empty_schedule_entries, _dates_off_within_the_size],
    ids=lambda make: make.__name__.strip("_"),  # the same on every xdist worker, unlike str(function)
)
def test_explaining_a_hostile_activity_takes_little_memory_beyond_the_document(make):
    doc = make()
    validate_activity(doc)  # warm the compiled and explaining validators
    tracemalloc.start()
    try:
        validate_activity(doc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Explaining each of 10,000 entries would take tens of MB; a bounded refusal takes well under 4.
    assert peak < 4_000_000, f"validating took {peak:,} bytes"


def test_a_document_with_thousands_of_mistakes_gets_at_most_a_hundred_problems():
    doc = weekly_activity(**{f"field{n}": n for n in range(5_000)})
    problems = validate_activity(doc)
    assert len(problems) == 100
    assert {problem.code for problem in problems} == {"unknown-field"}


# -- what passes can be stored: every accepted activity writes and reads back as JSON ---------


def test_activities_at_every_boundary_write_as_strict_json_and_read_back_the_same():
    boundaries = [_of_size(MAX_ACTIVITY_BYTES), _dates_off(366), _schedule(50)]
    boundaries += [
        _numbered(setter(value)) for _, _, setter, low, high, _ in NUMBERS for value in (low, high)
    ]
    boundaries += [
        weekly_activity(**{"ext:tree": _nested(MAX_ACTIVITY_DEPTH - 1), "ext:n": -MAX_SAFE_INTEGER})
    ]
    for doc in boundaries:
        assert is_valid_activity(doc)
        assert orjson.loads(orjson.dumps(doc)) == doc  # as the databases store it
        assert json.loads(json.dumps(doc, allow_nan=False)) == doc
