"""One postcode normal form, whichever door an activity comes in by: the form, a CSV, the JSON API.

Also the day a new activity counts as verified: the app's clock, not the real date.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from publisher.importer import import_csv, template_csv
from tests.factories import weekly_activity
from tests.publisher.conftest import store_of
from tests.publisher.test_admin import PASSWORD, log_in

TYPED = ["cr41aa", " CR4  1aa ", "CR41AA"]
CLOCK_TIME = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _postcodes(store) -> set[str]:
    return {a.data["location"]["address"]["postalCode"] for a in store.list_activities()}


def test_the_editors_form_stores_the_normal_form_and_verifies_on_the_apps_day(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'form.sqlite'}", CLOCK=lambda: CLOCK_TIME)
    store = store_of(app)
    group = store.add_group("St Mark's Lunch Club")
    store.add_user("cook@example.org", PASSWORD, "editor", group.id)
    client = app.test_client()
    token = log_in(client, "cook@example.org")
    for n, typed in enumerate(TYPED):
        lunch = {
            "csrf_token": token,
            "name": f"Winter Warmer Lunch {n}",
            "categories": ["lunch-club"],
            "venue": "St Mark's Church Hall",
            "street": "St Mark's Road",
            "town": "Mitcham",
            "postcode": typed,
            "frequency": "once",
            "start_time": "12:00",
            "end_time": "14:00",
            "first_date": "2026-12-10",
            "cost": "free",
            "booking": "drop-in",
        }
        saved = client.post("/admin/activities/new", data=lunch)
        assert saved.status_code == 302, saved.text

    assert _postcodes(store) == {"CR4 1AA"}
    assert {a.data["lastVerified"] for a in store.list_activities()} == {"2026-03-02"}
    [first, *_] = store.list_activities()
    assert 'value="CR4 1AA"' in client.get(f"/admin/activities/{first.slug}/edit").text


def test_a_csv_import_stores_the_normal_form_and_a_respelling_changes_nothing(publisher_app):
    store = store_of(publisher_app)
    walkers = store.add_group("Mitcham Walkers")
    typed = template_csv().replace("CR4 1HT", "cr41ht")
    assert import_csv(store, walkers, typed, dry_run=False, base_url="https://activities.example.org").ok
    walk = next(a for a in store.list_activities() if a.data["name"] == "Mitcham Health Walk")
    assert walk.data["location"]["address"]["postalCode"] == "CR4 1HT"

    again = import_csv(
        store,
        walkers,
        template_csv().replace("CR4 1HT", " CR4  1ht "),
        dry_run=False,
        base_url="https://x.example",
    )
    assert again.summary() == "Imported 2 activities: 2 unchanged."


def test_the_json_api_stores_the_normal_form_on_create_and_on_replace(publisher_app, client: httpx.Client):
    store = store_of(publisher_app)
    _, token = store.create_token(store.add_group("Mitcham Walkers").id, "site")
    headers = {"Authorization": f"Bearer {token}"}
    slugs = []
    for typed in TYPED:
        doc = weekly_activity()
        doc["location"]["address"]["postalCode"] = typed
        created = client.post("/api/activities", json=doc, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["activity"]["location"]["address"]["postalCode"] == "CR4 1AA"
        slugs.append(created.json()["slug"])
    assert _postcodes(store) == {"CR4 1AA"}

    doc = weekly_activity()
    doc["location"]["address"]["postalCode"] = "gir0aa"
    assert client.put(f"/api/activities/{slugs[0]}", json=doc, headers=headers).status_code == 200
    assert store.get_activity(slugs[0]).data["location"]["address"]["postalCode"] == "GIR 0AA"
