"""The text rule: no control characters, lone surrogates or noncharacters in any string of an activity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schema import Problem, is_valid_activity, validate_activity
from schema.text import has_forbidden_character, without_forbidden_characters
from tests.factories import event_activity, weekly_activity

# Every character the rule refuses, by its range's edges, and each kind once.
REFUSED = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x0e", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]
NOT_CHARACTERS = ["\ud800", "\udfff", "\ufffe", "\uffff"]
# Text may have lines and tabs, and any real character, however far from ASCII.
ALLOWED = ["\t", "\n", "\r\n", " ", "\xa0", "é", "£", "\u2013", "\u2028", "\ufffd", "😀", "\U0010fffd"]


@pytest.mark.parametrize("character", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
def test_a_control_character_in_a_name_is_refused_with_its_place_and_a_fix(character):
    doc = event_activity()
    doc["organizer"]["name"] = f"St Mark's{character} Lunch Club"

    assert not is_valid_activity(doc)
    assert validate_activity(doc) == [
        Problem(
            "$.organizer.name",
            "control-character",
            f"Organiser name contains a control character (U+{ord(character):04X}) at position 10, "
            'after "St Mark\'s"; remove it: it is invisible, and feed readers and calendars cannot show it.',
        )
    ]


@pytest.mark.parametrize("character", NOT_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_lone_surrogate_or_noncharacter_is_refused_as_not_a_character(character):
    doc = weekly_activity(name=f"{character}Walk")

    (problem,) = validate_activity(doc)
    assert problem.path == "$.name"
    assert problem.code == "not-a-character"
    assert f"U+{ord(character):04X} at position 1, at the start" in problem.message
    assert not is_valid_activity(doc)


@pytest.mark.parametrize("text", ALLOWED, ids=repr)
def test_tabs_line_breaks_and_every_real_character_are_allowed(text):
    doc = weekly_activity(description=f"Bring water.{text}Wear good shoes.")
    assert validate_activity(doc) == []
    assert is_valid_activity(doc)


# Strings the contract describes nowhere: deep in an extension, in a list, and in a key.
def _in_extension_list(doc: dict[str, Any]) -> None:
    doc["ext:notes"] = {"lines": ["fine", "not\x07fine"]}


def _in_extension_key(doc: dict[str, Any]) -> None:
    doc["ext:col\x1bour"] = "green"


def _in_venue_name(doc: dict[str, Any]) -> None:
    doc["location"]["name"] = "Mitcham Common\x00"


def _in_contact_name(doc: dict[str, Any]) -> None:
    doc["contact"]["name"] = "Walk\x85leader"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (_in_extension_list, "$['ext:notes'].lines[1]"),
        (_in_extension_key, "$['ext:col\\\\u001bour']"),
        (_in_venue_name, "$.location.name"),
        (_in_contact_name, "$.contact.name"),
    ],
    ids=["extension-list", "key", "venue-name", "contact-name"],
)
def test_every_string_anywhere_is_checked_keys_included(change, path):
    doc = weekly_activity()
    change(doc)

    problems = [problem for problem in validate_activity(doc) if problem.code == "control-character"]
    assert [problem.path for problem in problems] == [path]
    assert not is_valid_activity(doc)


def test_a_key_is_named_with_the_character_written_out_so_the_message_stays_readable():
    doc = weekly_activity(**{"ext:col\x1bour": "green"})
    (problem,) = validate_activity(doc)
    expected = "The field name 'ext:col\\u001bour' contains a control character (U+001B)"
    assert problem.message.startswith(expected)
    assert not has_forbidden_character(problem.message)


def test_each_string_with_the_character_gives_its_own_problem_in_field_order():
    doc = weekly_activity(name="Walk\x07", description="Gentle\x07 walk")
    doc["organizer"]["name"] = "\x07Walkers"
    assert [(p.path, p.code) for p in validate_activity(doc)] == [
        ("$.name", "control-character"),
        ("$.description", "control-character"),
        ("$.organizer.name", "control-character"),
    ]


def test_a_field_with_a_worse_mistake_reports_that_one_and_others_still_report_theirs():
    # One problem a field: a link with a C1 character is not a link (the pattern says so first).
    link = weekly_activity(sameAs=["https://other.example/\x85walk"])
    assert [(p.path, p.code) for p in validate_activity(link)] == [("$.sameAs[0]", "bad-url")]
    doc = weekly_activity(name="x" * 130 + "\x07", description="Gentle\x07 walk")
    problems = {problem.path: problem.code for problem in validate_activity(doc)}
    assert problems == {"$.name": "too-long", "$.description": "control-character"}


def test_json_escapes_are_what_a_feed_sends_and_are_caught_after_parsing():
    body = '{"name": "Walk\\u0007", "description": "half \\ud83d of an emoji"}'
    doc = weekly_activity(**json.loads(body))
    assert {(p.path, p.code) for p in validate_activity(doc)} == {
        ("$.name", "control-character"),
        ("$.description", "not-a-character"),
    }


def test_the_fast_and_the_explaining_path_agree_on_every_refused_character():
    for character in REFUSED + NOT_CHARACTERS:
        doc = weekly_activity()
        doc["location"]["address"]["streetAddress"] = f"Windmill{character} Road"
        assert not is_valid_activity(doc)
        assert [p.path for p in validate_activity(doc)] == ["$.location.address.streetAddress"]


def test_removal_keeps_everything_else():
    text = "Tea\x07 and\tcake\r\n£3 \x85😀\ufffe\ud800"
    assert without_forbidden_characters(text) == "Tea and\tcake\r\n£3 😀"
    clean = "Nothing to remove"
    assert without_forbidden_characters(clean) is clean
