"""The JSON API over real HTTP: tokens, tenancy between groups, problems answered with paths."""

from __future__ import annotations

import httpx

from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import sqlite_only, store_of


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_acts_only_for_its_own_group(publisher_app, live_publisher, client: httpx.Client):
    store = store_of(publisher_app)
    walkers = store.add_group("Mitcham Walkers")
    lunch = store.add_group("St Mark's Lunch Club")
    _, walkers_token = store.create_token(walkers.id, "walkers' website")
    _, lunch_token = store.create_token(lunch.id, "lunch club")

    created = client.post("/api/activities", json=event_activity(), headers=_bearer(lunch_token))
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]
    assert created.headers["Location"].endswith(f"/api/activities/{slug}")
    # The id is minted by the publisher at this address, whatever the client sent.
    assert created.json()["activity"]["id"] == f"{live_publisher.url}/activities/{slug}"

    intruder = _bearer(walkers_token)
    assert client.get(f"/api/activities/{slug}", headers=intruder).status_code == 404
    changed = client.put(f"/api/activities/{slug}", json=event_activity(name="Hijacked"), headers=intruder)
    assert changed.status_code == 404
    assert client.delete(f"/api/activities/{slug}", headers=intruder).status_code == 404
    assert client.get("/api/activities", headers=intruder).json() == {"activities": []}
    # Absent and foreign look alike, so a token cannot probe other groups' slugs.
    missing = client.get("/api/activities/no-such-thing", headers=intruder)
    assert missing.status_code == 404
    assert client.get(f"/api/activities/{slug}", headers=intruder).json().keys() == missing.json().keys()

    owner = _bearer(lunch_token)
    stored = client.get(f"/api/activities/{slug}", headers=owner).json()["activity"]
    assert stored["name"] == "Winter Warmer Lunch"
    assert store.get_activity(slug).data["name"] == "Winter Warmer Lunch"


@sqlite_only
def test_edit_keeps_the_id_and_delete_leaves_a_tombstone(publisher_app, client: httpx.Client):
    store = store_of(publisher_app)
    group = store.add_group("Mitcham Walkers")
    _, token = store.create_token(group.id, "site")
    headers = _bearer(token)

    first = client.post("/api/activities", json=weekly_activity(), headers=headers).json()
    second = client.post("/api/activities", json=weekly_activity(), headers=headers).json()
    assert (first["slug"], second["slug"]) == ("mitcham-health-walk", "mitcham-health-walk-2")

    edited = client.put(
        f"/api/activities/{first['slug']}",
        json=weekly_activity(name="Mitcham Morning Walk", id="https://elsewhere.example/x"),
        headers=headers,
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["activity"]["id"] == first["activity"]["id"]
    assert edited.json()["activity"]["name"] == "Mitcham Morning Walk"

    assert client.delete(f"/api/activities/{first['slug']}", headers=headers).status_code == 204
    assert client.get(f"/api/activities/{first['slug']}", headers=headers).status_code == 410
    listed = client.get("/api/activities", headers=headers).json()["activities"]
    assert [item["slug"] for item in listed] == ["mitcham-health-walk-2"]
    tombstone = store.get_activity(first["slug"])
    assert tombstone.is_deleted and tombstone.data is None
    # A deleted activity's address is never reused by a new one.
    third = client.post("/api/activities", json=weekly_activity(), headers=headers).json()
    assert third["slug"] == "mitcham-health-walk-3"


@sqlite_only
def test_problems_are_answered_with_paths_and_nothing_is_written(publisher_app, client: httpx.Client):
    store = store_of(publisher_app)
    group = store.add_group("Mitcham Walkers")
    _, token = store.create_token(group.id, "site")
    doc = weekly_activity()
    doc["location"]["address"]["postalCode"] = "CR4 1A"
    del doc["price"]

    response = client.post("/api/activities", json=doc, headers=_bearer(token))
    assert response.status_code == 422
    problems = response.json()["problems"]
    paths = {problem["path"] for problem in problems}
    assert {"$.location.address.postalCode", "$.price"} <= paths
    assert all(set(problem) == {"path", "code", "message"} for problem in problems)
    assert any("CR4 1A" in problem["message"] for problem in problems)
    assert store.list_activities(include_deleted=True) == []
    assert store.last_change_number() == 0

    not_json = client.post(
        "/api/activities", content=b"name=walk", headers={**_bearer(token), "Content-Type": "text/plain"}
    )
    assert not_json.status_code == 400
    assert "JSON object" in not_json.json()["message"]


@sqlite_only
def test_missing_or_wrong_token_says_how_to_get_one(publisher_app, client: httpx.Client):
    store = store_of(publisher_app)
    group = store.add_group("Mitcham Walkers")
    _, token = store.create_token(group.id, "site")

    for headers in ({}, {"Authorization": "Basic abc"}, _bearer(token + "x")):
        response = client.post("/api/activities", json=weekly_activity(), headers=headers)
        assert response.status_code == 401
        assert "create-token" in response.json()["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert store.list_activities() == []
    # The API needs no CSRF token: machines authenticate with the bearer token alone.
    assert client.post("/api/activities", json=weekly_activity(), headers=_bearer(token)).status_code == 201
    assert store.list_tokens(group.id)[0].last_used_at is not None
