"""An editor is told, on saving, when an activity's postcode cannot be placed on a map by this
publisher's own geocoding settings (the aggregator's choices): the form and the CSV import."""

from __future__ import annotations

import io
from pathlib import Path

from publisher import editing, importer
from tests.factories import weekly_activity
from tests.publisher.conftest import store_of
from tests.publisher.test_admin import PASSWORD, log_in

ONSPD = Path(__file__).parents[1] / "aggregator" / "data" / "onspd_sample.csv"
UNPLACEABLE = "We couldn't place the postcode CR4 9ZZ on the map"


def lunch(token: str, postcode: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "name": "Winter Warmer Lunch",
        "description": "A hot two-course lunch and a chat.",
        "categories": "lunch-club",
        "venue": "St Mark's Church Hall",
        "street": "St Mark's Road",
        "town": "Mitcham",
        "postcode": postcode,
        "frequency": "once",
        "start_time": "12:00",
        "end_time": "14:00",
        "first_date": "2026-12-10",
        "cost": "free",
        "booking": "drop-in",
        "space": "spaces",
    }


def test_saving_a_postcode_nothing_here_can_place_warns_the_editor(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'warn.sqlite'}")
    store = store_of(app)
    group = store.add_group("St Mark's Lunch Club")
    store.add_user("cook@example.org", PASSWORD, "editor", group.id)
    client = app.test_client()
    token = log_in(client, "cook@example.org")

    saved = client.post("/admin/activities/new", data=lunch(token, "cr4 9zz"), follow_redirects=True)
    assert saved.status_code == 200
    page = saved.text.replace("&#34;", '"').replace("&#39;", "'")
    assert "It is in your public feed now." in page  # saved all the same
    assert UNPLACEABLE in page
    assert "Check the postcode is right" in page
    assert len(store.list_activities()) == 1

    # Once one of the group's own listings gives a point in CR4, the district can be placed.
    walk = weekly_activity(name="Mitcham Health Walk")
    walk["location"]["address"]["postalCode"] = "CR4 1HT"
    walk["location"]["geo"] = {"latitude": 51.3982, "longitude": -0.1545}
    assert editing.save_activity(store, group, walk, base_url="http://localhost").ok
    again = client.post("/admin/activities/new", data=lunch(token, "CR4 9ZZ"), follow_redirects=True)
    assert "It is in your public feed now." in again.text and UNPLACEABLE not in again.text


def test_the_operators_file_places_what_it_lists_and_the_import_report_warns(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'file.sqlite'}", POSTCODE_CSV=str(ONSPD))
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    store.add_user("walker@example.org", PASSWORD, "editor", group.id)
    client = app.test_client()
    token = log_in(client, "walker@example.org")

    known = client.post("/admin/activities/new", data=lunch(token, "CR4 2DG"), follow_redirects=True)
    assert "It is in your public feed now." in known.text and "couldn't place" not in known.text

    # The template's rows, one moved to a postcode in a district the file does not have.
    sheet = importer.template_csv().replace("Mitcham Walkers,", ",").replace("CR4 2LF", "ZZ9 9ZZ")
    checked = client.post(
        "/admin/import",
        data={"csrf_token": token, "file": (io.BytesIO(sheet.encode()), "activities.csv")},
        content_type="multipart/form-data",
    )
    text = checked.text.replace("&#34;", '"').replace("&#39;", "'")
    assert "2 row(s) are ready to import" in text  # a warning, not a problem: the row is fine
    assert "Line 3: We couldn't place the postcode ZZ9 9ZZ on the map" in text
    assert "Line 2:" not in text  # CR4 1HT is in the file
