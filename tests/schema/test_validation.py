"""The activity contract: what it accepts, and the one clear problem each mistake gives."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from schema import Problem, is_valid_activity, normalise_postcode, validate_activity
from schema.validation import _activity_explainer, _json_path
from tests.factories import event_activity, weekly_activity
from tests.schema.conftest import example

Mutation = Callable[[dict[str, Any]], None]


def mutated(doc: dict[str, Any], change: Mutation) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def test_canonical_activities_are_valid():
    assert validate_activity(weekly_activity()) == []
    assert validate_activity(event_activity()) == []
    assert is_valid_activity(weekly_activity())
    assert is_valid_activity(event_activity())


def test_every_example_is_valid(example_activity):
    assert validate_activity(example_activity) == []
    assert is_valid_activity(example_activity)


def test_validation_leaves_the_document_as_it_was():
    doc = example("online")
    before = copy.deepcopy(doc)
    assert is_valid_activity(doc)
    doc_with_problem = mutated(doc, lambda d: d.pop("name"))
    validate_activity(doc_with_problem)
    assert doc == before  # no defaults (attendanceMode, status, timezone) filled in
    assert "status" not in doc_with_problem


# The mistakes from issue 2: each gives exactly one problem naming the field.
ISSUE_CASES = [
    pytest.param(
        lambda d: d["location"]["address"].update(postalCode="CR4 1A"),
        Problem(
            "$.location.address.postalCode",
            "postcode",
            "Postcode 'CR4 1A' is not a UK postcode, like 'CR4 1AA'.",
        ),
        id="bad-postcode",
    ),
    pytest.param(
        lambda d: d.pop("name"),
        Problem(
            "$.name",
            "required",
            "Name is missing; give the activity a short name, like 'Mitcham Health Walk'.",
        ),
        id="missing-name",
    ),
    pytest.param(
        lambda d: d["schedule"][0].update(startTime="10:00", endTime="09:30"),
        Problem(
            "$.schedule[0].endTime",
            "end-before-start",
            "End time 09:30 is before it starts at 10:00; set an end time after the start time, "
            "on the 24-hour clock (e.g. 14:00 for 2pm).",
        ),
        id="end-before-start",
    ),
    pytest.param(
        lambda d: d.update(description="Join us for a <b>gentle</b> walk."),
        Problem(
            "$.description",
            "html-not-allowed",
            "Description contains HTML ('<b>'); write plain text without tags — "
            "formatting and links in it are not shown.",
        ),
        id="html-description",
    ),
    pytest.param(
        lambda d: d.update(booking={"method": "book-ahead", "url": "javascript:alert(document.cookie)"}),
        Problem(
            "$.booking.url",
            "unsafe-url",
            "Booking link 'javascript:alert(document.cookie)' is not a web address; "
            "use a link starting with https:// (other kinds of link are not allowed).",
        ),
        id="javascript-booking-url",
    ),
    pytest.param(
        lambda d: d.update(categories=["walking", "knitting"]),
        Problem(
            "$.categories[1]",
            "unknown-category",
            "Category 'knitting' is not in Localfeed's list of categories; choose one from the list "
            "(all are listed at https://localfeed.org/schema/vocab/categories.json).",
        ),
        id="unknown-category",
    ),
]


@pytest.mark.parametrize(("change", "expected"), ISSUE_CASES)
def test_each_issue_mistake_gives_one_clear_problem(change: Mutation, expected: Problem):
    doc = mutated(weekly_activity(), change)
    assert validate_activity(doc) == [expected]
    assert not is_valid_activity(doc)


# Every other rule of the contract, with the path and code it reports and a phrase its message holds.
RULE_CASES = [
    ("weekly", lambda d: d.pop("id"), "$.id", "required", "Activity id is missing"),
    ("weekly", lambda d: d.update(id="/activities/x"), "$.id", "bad-url", "starting with https://"),
    ("weekly", lambda d: d.update(type="Course"), "$.type", "not-allowed", "'SessionSeries', 'Event'"),
    ("weekly", lambda d: d.update(name=""), "$.name", "required", "Name is empty"),
    (
        "weekly",
        lambda d: d.update(name="x" * 121),
        "$.name",
        "too-long",
        "121 characters long; shorten it to 120",
    ),
    (
        "weekly",
        lambda d: d.update(name=42),
        "$.name",
        "wrong-type",
        "Name should be text, not a whole number.",
    ),
    ("weekly", lambda d: d.update(description="a" * 2001), "$.description", "too-long", "to 2000 or fewer"),
    (
        "weekly",
        lambda d: d.update(firstVisit="Ring <a href=x>here</a>"),
        "$.firstVisit",
        "html-not-allowed",
        "'<a'",
    ),
    (
        "weekly",
        lambda d: d["organizer"].pop("name"),
        "$.organizer.name",
        "required",
        "Organiser name is missing",
    ),
    (
        "weekly",
        lambda d: d["organizer"].update(email="not an email"),
        "$.organizer.email",
        "bad-email",
        "like",
    ),
    (
        "weekly",
        lambda d: d["organizer"].update(url="ftp://x.example"),
        "$.organizer.url",
        "unsafe-url",
        "https://",
    ),
    ("weekly", lambda d: d.update(categories=[]), "$.categories", "required", "choose at least one category"),
    (
        "weekly",
        lambda d: d.update(categories=["walkng"]),
        "$.categories[0]",
        "unknown-category",
        "did you mean 'walking'?",
    ),
    (
        "weekly",
        lambda d: d.update(categories=["walking", "walking"]),
        "$.categories",
        "duplicate",
        "more than once",
    ),
    ("weekly", lambda d: d.pop("location"), "$.location", "required", "or set attendanceMode to 'online'"),
    (
        "weekly",
        lambda d: d["location"]["address"].pop("postalCode"),
        "$.location.address.postalCode",
        "required",
        "Postcode is missing",
    ),
    (
        "weekly",
        lambda d: d["location"]["geo"].update(latitude=91),
        "$.location.geo.latitude",
        "too-large",
        "90 or less",
    ),
    (
        "weekly",
        lambda d: d["location"].update(accessibility=["lift"]),
        "$.location.accessibility[0]",
        "unknown-accessibility",
        "vocab/accessibility.json",
    ),
    (
        "weekly",
        lambda d: d.update(audiences=["pensioners"]),
        "$.audiences[0]",
        "unknown-audience",
        "vocab/audiences.json",
    ),
    (
        "weekly",
        lambda d: d.update(attendanceMode="hybrid"),
        "$.attendanceMode",
        "not-allowed",
        "'in-person', 'online', 'mixed'",
    ),
    (
        "weekly",
        lambda d: d.update(attendanceMode="mixed"),
        "$.onlineUrl",
        "required",
        "Online joining link is missing",
    ),
    ("online", lambda d: d.pop("onlineUrl"), "$.onlineUrl", "required", "Online joining link is missing"),
    ("weekly", lambda d: d.pop("schedule"), "$.schedule", "required", "Schedule is missing"),
    (
        "weekly",
        lambda d: d["schedule"][0].update(endTime="11:00", startTime="11:00"),
        "$.schedule[0].endTime",
        "end-before-start",
        "the same time as it starts",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(startTime="9am"),
        "$.schedule[0].startTime",
        "bad-time",
        "'09:30'",
    ),
    ("weekly", lambda d: d["schedule"][0].update(byDay=["TUE"]), "$.schedule[0].byDay[0]", "bad-day", "'TU'"),
    (
        "weekly",
        lambda d: d["schedule"][0].update(byDay=[]),
        "$.schedule[0].byDay",
        "required",
        "Days are empty",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(repeatFrequency="P3W"),
        "$.schedule[0].repeatFrequency",
        "not-allowed",
        "'P1W', 'P2W', 'P1M'",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(byMonthWeek=1),
        "$.schedule[0].repeatFrequency",
        "month-week-needs-monthly",
        "use 'P1M'",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(repeatFrequency="P1M"),
        "$.schedule[0].byMonthWeek",
        "required",
        "1 to 4, or -1",
    ),
    (
        "first-tuesday",
        lambda d: d["schedule"][0].update(byMonthWeek=5),
        "$.schedule[0].byMonthWeek",
        "not-allowed",
        "1, 2, 3, 4, -1",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(startDate="2026-02-30"),
        "$.schedule[0].startDate",
        "bad-date",
        "YYYY-MM-DD",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(endDate="2025-12-31"),
        "$.schedule[0].endDate",
        "end-before-start",
        "before the first date 2026-01-06",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(exceptDates=["2026-01-13", "2026-01-13"]),
        "$.schedule[0].exceptDates",
        "duplicate",
        "'2026-01-13'",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(timezone="Europe/Mitcham"),
        "$.schedule[0].timezone",
        "bad-timezone",
        "'Europe/London'",
    ),
    (
        "weekly",
        lambda d: d["schedule"][0].update(every="week"),
        "$.schedule[0].every",
        "unknown-field",
        "schedule entry",
    ),
    ("event", lambda d: d.pop("endDate"), "$.endDate", "required", "a one-off event needs its end"),
    (
        "event",
        lambda d: d.update(startDate="2026-12-10 12:00"),
        "$.startDate",
        "bad-datetime",
        "with a UTC offset",
    ),
    (
        "event",
        lambda d: d.update(startDate="2026-12-10T12:00:00"),
        "$.startDate",
        "bad-datetime",
        "with a UTC offset",
    ),
    (
        "event",
        lambda d: d.update(endDate="2026-12-10T11:00:00+00:00"),
        "$.endDate",
        "end-before-start",
        "not after the start",
    ),
    ("weekly", lambda d: d.pop("price"), "$.price", "required", "Price is missing"),
    ("weekly", lambda d: d.update(price={"isFree": False}), "$.price.amount", "required", "amount in pounds"),
    ("event", lambda d: d["price"].update(currency="EUR"), "$.price.currency", "currency", "'GBP'"),
    ("event", lambda d: d["price"].update(amount=-2), "$.price.amount", "too-small", "0 or more"),
    (
        "weekly",
        lambda d: d.update(ageRange={"min": 65, "max": 18}),
        "$.ageRange.max",
        "age-range",
        "below the minimum age 65",
    ),
    ("weekly", lambda d: d.update(ageRange={"min": 2.5}), "$.ageRange.min", "wrong-type", "a whole number"),
    (
        "weekly",
        lambda d: d.update(capacity={"status": "busy"}),
        "$.capacity.status",
        "not-allowed",
        "'waiting-list'",
    ),
    (
        "weekly",
        lambda d: d.update(capacity={"status": "spaces", "remaining": -1}),
        "$.capacity.remaining",
        "too-small",
        "0 or more",
    ),
    (
        "weekly",
        lambda d: d.update(booking={"method": "walk-in"}),
        "$.booking.method",
        "not-allowed",
        "'drop-in'",
    ),
    (
        "weekly",
        lambda d: d.update(booking={"method": "book-ahead", "url": "www.example.org"}),
        "$.booking.url",
        "bad-url",
        "starting with https://",
    ),
    (
        "weekly",
        lambda d: d["contact"].update(telephone="ring the vicar"),
        "$.contact.telephone",
        "bad-telephone",
        "'020 8123 4567'",
    ),
    ("weekly", lambda d: d.update(languages=["English"]), "$.languages[0]", "bad-language", "'en'"),
    ("weekly", lambda d: d.update(status="closed"), "$.status", "not-allowed", "'paused'"),
    ("weekly", lambda d: d.pop("lastVerified"), "$.lastVerified", "required", "last confirmed these details"),
    ("weekly", lambda d: d.update(lastVerified="01/10/2026"), "$.lastVerified", "bad-date", "'2026-10-01'"),
    ("weekly", lambda d: d.pop("dateModified"), "$.dateModified", "required", "the publisher sets it"),
    (
        "weekly",
        lambda d: d.update(sameAs=["data:text/html,x"]),
        "$.sameAs[0]",
        "unsafe-url",
        "not a web address",
    ),
    (
        "weekly",
        lambda d: d.update(desciption="typo"),
        "$.desciption",
        "unknown-field",
        "did you mean 'description'?",
    ),
    ("weekly", lambda d: d.update(provenance=[]), "$.provenance", "unknown-field", "'ext:provenance'"),
]


@pytest.mark.parametrize(
    ("base", "change", "path", "code", "phrase"),
    RULE_CASES,
    ids=[f"{path}-{code}" for _, _, path, code, _ in RULE_CASES],
)
def test_each_rule_gives_one_problem_at_its_field(base, change, path, code, phrase):
    doc = mutated(example(base), change)
    problems = validate_activity(doc)
    assert [(p.path, p.code) for p in problems] == [(path, code)], problems
    assert phrase in problems[0].message
    assert not is_valid_activity(doc)


@pytest.mark.parametrize(
    "postcode", ["cr4 1ht", "CR41HT", " CR4  1HT ", "SW1A 1AA", "M1 1AE", "GIR 0AA", "W1A 0AX"]
)
def test_postcodes_are_checked_whatever_their_case_and_spacing(postcode):
    doc = weekly_activity()
    doc["location"]["address"]["postalCode"] = postcode
    assert validate_activity(doc) == []


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("cr41ht", "CR4 1HT"),
        (" CR4  1HT ", "CR4 1HT"),
        ("sw1a1aa", "SW1A 1AA"),
        ("m1 1ae", "M1 1AE"),
        ("CR4 1A", None),
    ],
)
def test_postcodes_have_one_normal_form(text, normal):
    assert normalise_postcode(text) == normal


@pytest.mark.parametrize("postcode", ["CR4", "1AA CR4", "CR4 1A", "CR4-1AA", "CR4 1AA X", "not known"])
def test_non_postcodes_are_refused(postcode):
    doc = weekly_activity()
    doc["location"]["address"]["postalCode"] = postcode
    assert [p.code for p in validate_activity(doc)] == ["postcode"]


@pytest.mark.parametrize(
    "text", ["Ages <5 welcome", "Tea & cake; 2 < 3 and 5 > 4", "Bring a friend :-<", "Under £5 (<£5)", ""]
)
def test_plain_text_with_angle_brackets_is_not_mistaken_for_html(text):
    assert validate_activity(weekly_activity(description=text)) == []


@pytest.mark.parametrize(
    "text", ["<p>Hello</p>", "Hi<br>there", "</div>", "<!-- hidden -->", "x <script>alert(1)</script>"]
)
def test_html_in_any_text_field_is_refused(text):
    for change in (
        lambda d: d.update(description=text),
        lambda d: d.update(name=text[:120]),
        lambda d: d["location"].update(name=text),
        lambda d: d["organizer"].update(name=text),
    ):
        assert [p.code for p in validate_activity(mutated(weekly_activity(), change))] == ["html-not-allowed"]


def test_extensions_with_a_namespace_and_a_json_ld_context_are_allowed():
    doc = weekly_activity(
        **{"@context": "https://localfeed.org/schema/context.jsonld", "ext:colour": "green"}
    )
    assert validate_activity(doc) == []


@pytest.mark.parametrize(
    ("price", "path", "code"),
    [
        ({}, "$.price.amount", "required"),
        ({"currency": "GBP"}, "$.price.amount", "required"),
        ({"notes": "Donations welcome"}, "$.price.amount", "required"),
        ({"isFree": False}, "$.price.amount", "required"),
        ({"isFree": "yes"}, "$.price.isFree", "wrong-type"),
        ({"isFree": None, "amount": 2, "currency": "GBP"}, "$.price.isFree", "wrong-type"),
        ({"amount": 2}, "$.price.currency", "required"),
        ({"amount": "2", "currency": "GBP"}, "$.price.amount", "wrong-type"),
        ({"amount": 2, "currency": "GBP", "discount": 1}, "$.price.discount", "unknown-field"),
    ],
)
def test_each_price_mistake_gives_one_problem(price, path, code):
    assert [(p.path, p.code) for p in validate_activity(weekly_activity(price=price))] == [(path, code)]


def test_price_may_be_free_an_amount_in_pounds_or_described_in_notes():
    for price in (
        {"isFree": True},
        {"isFree": True, "notes": "Tea and cake included"},
        {"amount": 0, "currency": "GBP"},
        {"isFree": False, "amount": 3, "currency": "GBP"},
        {"isFree": False, "notes": "Pay what you can"},
    ):
        assert validate_activity(weekly_activity(price=price)) == [], price
        assert is_valid_activity(weekly_activity(price=price)), price
    # Not free, with neither an amount nor a word on the cost, says nothing: the amount is asked for.
    for price in ({"isFree": False}, {"isFree": False, "notes": ""}):
        problems = validate_activity(weekly_activity(price=price))
        assert problems and not is_valid_activity(weekly_activity(price=price))


def test_several_mistakes_are_all_reported_in_document_order():
    doc = weekly_activity(name="", categories=["knitting"], lastVerified="yesterday")
    doc["schedule"][0]["endTime"] = "08:00"
    doc["location"]["address"]["postalCode"] = "XX"
    assert [p.path for p in validate_activity(doc)] == [
        "$.name",
        "$.categories[0]",
        "$.location.address.postalCode",
        "$.schedule[0].endTime",
        "$.lastVerified",
    ]


@pytest.mark.parametrize("doc", [None, [], "an activity", 3])
def test_a_document_that_is_not_an_object_gets_one_problem(doc):
    [problem] = validate_activity(doc)
    assert problem.path == "$"
    assert problem.code == "wrong-type"
    assert "should be a JSON object" in problem.message


def test_problem_converts_to_a_dict_and_a_line():
    problem = Problem("$.name", "required", "Name is missing.")
    assert problem.to_dict() == {"path": "$.name", "code": "required", "message": "Name is missing."}
    assert str(problem) == "$.name: required: Name is missing."


def test_compiled_and_reference_validators_agree():
    """The fast path must accept exactly what the explaining path finds no fault with."""
    explainer = _activity_explainer()
    docs = [example(path) for path in ("weekly", "event", "online", "first-tuesday", "with-except-dates")]
    docs += [mutated(example(base), change) for base, change, *_ in RULE_CASES]
    docs += [mutated(weekly_activity(), p.values[0]) for p in ISSUE_CASES]
    for doc in docs:
        schema_valid = explainer.problems(doc) == []
        assert is_valid_activity(doc) == (schema_valid and validate_activity(doc) == []), doc


def _field_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in children:
        found += _field_paths(value, (*prefix, key))
    return found


@pytest.mark.parametrize("name", ["first-tuesday", "event", "online"])
def test_any_field_made_wrong_is_named_and_both_paths_agree(name):
    """Every field of an example, replaced by a wrong value: the problems name that field,
    and the compiled fast path agrees with the full explanation."""
    base = example(name)
    for path in _field_paths(base):
        for wrong in (None, 7, "", "<i>x</i>", {}):
            doc = copy.deepcopy(base)
            target = doc
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = wrong
            problems = validate_activity(doc)
            assert is_valid_activity(doc) == (problems == []), (path, wrong, problems)
            field = _json_path(path)
            assert all(p.path.startswith(field) for p in problems), (path, wrong, problems)
            assert all(p.message.endswith((".", "?")) for p in problems)
