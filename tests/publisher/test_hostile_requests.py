"""What one editor's token can send the JSON API: every hostile body is a 4xx that says where, never a 500.

Sent over real HTTP to a publisher on SQLite and on PostgreSQL (where a lone surrogate or a
whole number past 64 bits used to fail only at the database's write). Bodies are written
by hand, as bytes, since a JSON library would refuse to write most of them. Afterwards
every page and feed of the publisher still answers 200.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from publisher.api import MAX_BODY_BYTES
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import store_of

PUBLIC_PAGES = ("/", "/feeds/activities", "/feeds/activities.atom", "/feeds/activities.ics")


def assert_every_page_answers(client: httpx.Client, slugs: list[str]) -> None:
    """The publisher's home page, its three feeds and each activity's page all answer 200."""
    for path in (*PUBLIC_PAGES, *(f"/activities/{slug}" for slug in slugs)):
        answer = client.get(path)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:300]}"


def _walk(**changes: str) -> bytes:
    """The weekly walk as JSON bytes, each text in ``changes`` replaced by the raw JSON it maps to."""
    text = json.dumps(weekly_activity(capacity={"status": "spaces", "remaining": "REMAINING"}))
    for stand_in, raw in changes.items():
        text = text.replace(stand_in, raw)
    return text.encode()


def _nested(levels: int, opening: str, closing: str, inner: str = "1") -> str:
    return opening * levels + inner + closing * levels


# (what it is, the body, the status, where the answer must point: a text in the message, or a problem's path)
UNREADABLE = [
    ("lone high surrogate in the name", _walk(**{'"Mitcham Health Walk"': r'"Walk \ud800"'}), "column"),
    ("lone low surrogate in the description", _walk(**{'"A gentle': r'"\udfff A gentle'}), "column"),
    ("half an emoji in the venue", _walk(**{'"Mitcham Common,': r'"\ud83d Mitcham Common,'}), "column"),
    ("NaN as a number", _walk(**{'"REMAINING"': "NaN"}), "NaN or Infinity"),
    ("Infinity as a number", _walk(**{'"REMAINING"': "Infinity"}), "NaN or Infinity"),
    ("-Infinity as a number", _walk(**{'"REMAINING"': "-Infinity"}), "NaN or Infinity"),
    ("an exponent past a double", _walk(**{'"REMAINING"': "1e400"}), "too large"),
    ("lists nested 100,000 deep", _nested(100_000, "[", "]").encode(), "nested over 1,000 levels"),
    (
        "objects nested 100,000 deep in a field",
        _walk(**{'"REMAINING"': _nested(100_000, '{"a":', "}")}),
        "nested over 1,000 levels",
    ),
    ("a byte that is not UTF-8", _walk().replace(b"Health", b"Health \xff"), "not UTF-8"),
]  # fmt: skip

REFUSED_BY_THE_CONTRACT = [
    ("spaces left of 1e30", _walk(**{'"REMAINING"': "1e30"}), "$.capacity.remaining"),
    ("a 31-digit whole number", _walk(**{'"REMAINING"': "1" + "0" * 30}), "$.capacity.remaining"),
    ("a minimum age of 10**22", _walk(**{'"min": 18': '"min": 10000000000000000000000'}), "$.ageRange.min"),
    ("nested 50 deep in an extension field", _walk(**{'"REMAINING"': "1", '"status": "scheduled"': (
        '"status": "scheduled", "x-extra": ' + _nested(50, "[", "]")
    )}), "$['x-extra']"),
    ("5,000 categories", json.dumps(weekly_activity(categories=["walking"] * 5_000)).encode(),
     "$.categories"),
    ("2,000 dates off", json.dumps(weekly_activity(schedule=[{
        **weekly_activity()["schedule"][0],
        "exceptDates": [f"{2026 + i // 365}-{(i // 28) % 12 + 1:02d}-{i % 28 + 1:02d}" for i in range(2_000)],
    }])).encode(), "$.schedule[0].exceptDates"),
    ("an event in the year 0001", json.dumps(event_activity(
        startDate="0001-01-01T10:00:00+00:00", endDate="0001-01-01T12:00:00+00:00"
    )).encode(), "$.startDate"),
    ("an event in the year 9999", json.dumps(event_activity(
        startDate="9999-12-31T10:00:00+00:00", endDate="9999-12-31T12:00:00+00:00"
    )).encode(), "$.startDate"),
    ("a start on day 0000-01-01", json.dumps(event_activity(startDate="0000-01-01T10:00:00+00:00")).encode(),
     "$.startDate"),
]  # fmt: skip


@pytest.fixture
def api(publisher_app, client: httpx.Client) -> Iterator[tuple[httpx.Client, dict[str, str], str]]:
    """(client, headers with a group's real token, the slug of one good activity the group holds)."""
    store = store_of(publisher_app)
    group = store.add_group("Mitcham Walkers")
    _, token = store.create_token(group.id, "the group's website")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    created = client.post("/api/activities", content=json.dumps(weekly_activity()), headers=headers)
    assert created.status_code == 201, created.text
    yield client, headers, created.json()["slug"]


def test_every_hostile_body_is_refused_with_where_and_the_publisher_keeps_serving(publisher_app, api):
    client, headers, slug = api
    store = store_of(publisher_app)
    changes_before = store.last_change_number()
    for about, body, where in UNREADABLE:
        for method, path in (("POST", "/api/activities"), ("PUT", f"/api/activities/{slug}")):
            answer = client.request(method, path, content=body, headers=headers)
            assert answer.status_code == 400, f"{about} ({method}): {answer.status_code} {answer.text[:300]}"
            message = answer.json()["message"]
            assert "at line 1, column" in message and where in message, f"{about}: {message}"
            assert answer.json()["column"] >= 1

    for about, body, path in REFUSED_BY_THE_CONTRACT:
        answer = client.post("/api/activities", content=body, headers=headers)
        assert answer.status_code == 422, f"{about}: {answer.status_code} {answer.text[:300]}"
        problems = answer.json()["problems"]
        assert path in [problem["path"] for problem in problems], f"{about}: {problems}"
        assert all(problem["message"] for problem in problems)

    assert store.last_change_number() == changes_before  # nothing was written
    assert_every_page_answers(client, [slug])
    listed = client.get("/api/activities", headers=headers)
    assert listed.status_code == 200 and len(listed.json()["activities"]) == 1


def test_a_body_too_long_is_refused_before_it_is_read_whole(api):
    client, headers, _slug = api
    padding = " " * MAX_BODY_BYTES  # valid JSON whitespace: only its length is wrong
    body = _walk(**{'"REMAINING"': f"{padding}3"})

    declared = client.post("/api/activities", content=body, headers=headers)
    assert declared.status_code == 413
    assert f"over {MAX_BODY_BYTES:,} bytes" in declared.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked, as a stream
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    streamed = client.post("/api/activities", content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text[:300]
    assert f"over {MAX_BODY_BYTES:,} bytes" in streamed.json()["message"]

    # Just under the limit, the same body is read and saved.
    fitting = _walk(**{'"REMAINING"': f"{padding[: MAX_BODY_BYTES - len(body) + len(padding)]}3"})
    assert len(fitting) == MAX_BODY_BYTES
    saved = client.post("/api/activities", content=fitting, headers=headers)
    assert saved.status_code == 201, saved.text[:300]
    assert saved.json()["activity"]["capacity"] == {"status": "spaces", "remaining": 3}
