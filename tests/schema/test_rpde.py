"""The RPDE page codec and the feed-page contract."""

from __future__ import annotations

import orjson
import pytest

from schema import Problem, validate_page
from schema.rpde import DEFAULT_LICENSE, PageError, decode_page, deleted_item, encode_page, updated_item
from tests.factories import event_activity, weekly_activity

NEXT = "https://publisher.example/feeds/activities?afterChangeNumber=42"


def a_page(**overrides) -> dict:
    page = {
        "next": NEXT,
        "items": [updated_item(weekly_activity()["id"], 41, weekly_activity())],
        "license": DEFAULT_LICENSE,
    }
    page.update(overrides)
    return page


def test_a_page_round_trips_through_bytes():
    weekly, event = weekly_activity(), event_activity()
    items = [
        updated_item(weekly["id"], 40, weekly),
        updated_item(event["id"], 41, event),
        deleted_item("https://publisher.example/activities/gone", 42),
    ]
    body = encode_page(items, NEXT)
    assert isinstance(body, bytes)
    page = decode_page(body)
    assert page == {"next": NEXT, "items": items, "license": DEFAULT_LICENSE}
    assert [item["kind"] for item in page["items"]] == ["SessionSeries", "Event", "SessionSeries"]
    assert "data" not in page["items"][2]
    assert page["items"][0]["data"] == weekly


def test_items_have_the_rpde_shape():
    event = event_activity()
    assert updated_item(event["id"], 7, event) == {
        "state": "updated",
        "kind": "Event",
        "id": event["id"],
        "modified": 7,
        "data": event,
    }
    assert deleted_item("https://p.example/a/1", 8, kind="Event") == {
        "state": "deleted",
        "kind": "Event",
        "id": "https://p.example/a/1",
        "modified": 8,
    }


def test_the_last_page_is_empty_and_points_at_itself():
    body = encode_page([], NEXT, license="https://opendatacommons.org/licenses/odbl/")
    assert decode_page(body) == {
        "next": NEXT,
        "items": [],
        "license": "https://opendatacommons.org/licenses/odbl/",
    }


def test_a_body_that_is_not_json_is_explained():
    with pytest.raises(PageError) as caught:
        decode_page(b"<!DOCTYPE html><html><body>Our feeds</body></html>")
    message = str(caught.value)
    assert message.startswith("The feed page is not JSON (")
    assert "it starts '<!DOCTYPE html><html><body>Our feeds</bo'." in message
    assert "Check that the URL is the RPDE feed itself" in message
    assert isinstance(caught.value, ValueError)


def test_a_page_that_breaks_the_contract_lists_its_problems():
    page = a_page()
    del page["next"]
    page["items"][0]["modified"] = "41"
    with pytest.raises(PageError) as caught:
        decode_page(orjson.dumps(page))
    assert caught.value.problems == [
        Problem(
            "$.items[0].modified", "wrong-type", "Item change number should be a whole number, not text."
        ),
        Problem(
            "$.next",
            "required",
            "Next page URL is missing; add the absolute URL of the next page "
            "(the page's own URL on the last page).",
        ),
    ]
    assert str(caught.value) == (
        "The feed page is not a valid RPDE page: "
        "$.items[0].modified: wrong-type: Item change number should be a whole number, not text.; "
        "$.next: required: Next page URL is missing; add the absolute URL of the next page "
        "(the page's own URL on the last page).."
    )


def test_a_long_list_of_problems_is_shortened_in_the_message():
    page = a_page(items=[{"state": "gone"} for _ in range(3)])
    with pytest.raises(PageError, match=r"; and \d+ more\.$") as caught:
        decode_page(orjson.dumps(page))
    assert len(caught.value.problems) > 3


@pytest.mark.parametrize(
    ("item", "path", "code"),
    [
        (
            {"state": "updated", "kind": "SessionSeries", "id": "x", "modified": 1},
            "$.items[0].data",
            "required",
        ),
        (
            {"state": "deleted", "kind": "Event", "id": "x", "modified": 1, "data": {}},
            "$.items[0].data",
            "not-allowed",
        ),
        ({"state": "removed", "kind": "Event", "id": "x", "modified": 1}, "$.items[0].state", "not-allowed"),
        ({"state": "deleted", "kind": "Course", "id": "x", "modified": 1}, "$.items[0].kind", "not-allowed"),
        ({"state": "deleted", "kind": "Event", "id": "", "modified": 1}, "$.items[0].id", "required"),
        (
            {"state": "deleted", "kind": "Event", "id": "x", "modified": -1},
            "$.items[0].modified",
            "too-small",
        ),
        ({"state": "deleted", "kind": "Event", "modified": 1}, "$.items[0].id", "required"),
    ],
)
def test_each_item_rule_gives_one_problem(item, path, code):
    assert [(p.path, p.code) for p in validate_page(a_page(items=[item]))] == [(path, code)]


def test_page_rules():
    assert validate_page(a_page()) == []
    assert [(p.path, p.code) for p in validate_page(a_page(next="javascript:next()"))] == [
        ("$.next", "unsafe-url")
    ]
    assert [(p.path, p.code) for p in validate_page(a_page(items={}))] == [("$.items", "wrong-type")]
    too_many = [deleted_item(f"https://p.example/a/{n}", n) for n in range(501)]
    [problem] = validate_page(a_page(items=too_many))
    assert (problem.path, problem.code) == ("$.items", "too-many")
    assert problem.message == (
        "Items has 501 entries; at most 500 are allowed; "
        "publish at most that many items a page, and the rest on the next page."
    )
    assert validate_page([]) == [
        Problem("$", "wrong-type", "An RPDE page should be a JSON object, not a list.")
    ]


def test_item_data_is_left_for_the_reader_to_validate():
    """One bad activity must not cost the page: the aggregator quarantines it on its own."""
    bad_activity = weekly_activity(name=42)
    page = a_page(items=[updated_item(bad_activity["id"], 1, bad_activity)])
    assert validate_page(page) == []
    assert decode_page(orjson.dumps(page))["items"][0]["data"]["name"] == 42
