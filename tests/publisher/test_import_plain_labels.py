"""The CSV import in the template's words: labels accepted and named in messages, values listed on a page.

An umbrella body's spreadsheet says "Gardening and nature" and "Pay what you can", as the
template does; every request goes over real HTTP to a served publisher, as a logged-in
administrator, and what is imported is read back from the publisher's RPDE feed.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from publisher.importer import COLUMNS, TEMPLATE_ROWS
from schema.openactive import from_openactive
from schema.price import donation_of, pay_what_you_can
from tests.publisher.conftest import sqlite_only, store_of
from tests.publisher.test_admin import PASSWORD, log_in

pytestmark = sqlite_only


@pytest.fixture
def admin(publisher_app, serve) -> Iterator[tuple[httpx.Client, str]]:
    """(an HTTP client logged in as an administrator of the served publisher, its CSRF token)."""
    store = store_of(publisher_app)
    store.add_group("Mitcham Walkers")
    store.add_user("admin@example.org", PASSWORD, "admin")
    with httpx.Client(base_url=serve(publisher_app).url, timeout=30) as client:
        yield client, log_in(client, "admin@example.org")


def _sheet(*changes: dict[str, str], leave_out: str = "") -> bytes:
    """The template's first row, once for each of ``changes`` applied to it, as a CSV file
    (without the column ``leave_out``)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[c for c in COLUMNS if c != leave_out], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(TEMPLATE_ROWS[0] | change for change in changes)
    return out.getvalue().encode()


def _upload(client: httpx.Client, token: str, data: bytes) -> str:
    return client.post(
        "/admin/import", data={"csrf_token": token}, files={"file": ("activities.csv", data, "text/csv")}
    ).text


def _import(client: httpx.Client, token: str, data: bytes) -> str:
    confirm = {"csrf_token": token, "csv_text": data.decode(), "confirm": "all"}
    return client.post("/admin/import", data=confirm).text


def _feed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """The activities in the publisher's RPDE feed, by name, read back from OpenActive's shape."""
    items = client.get("/feeds/activities").json()["items"]
    activities = (from_openactive(item["data"]) for item in items if item["state"] == "updated")
    return {activity["name"]: activity for activity in activities}


def test_labels_in_any_case_are_imported_as_the_ids_behind_them(admin):
    client, token = admin
    sheet = _sheet(
        {
            "Categories": "gardening AND nature; Walking; mens-shed",
            "Who it is for": "OLDER PEOPLE; carers",
            "Access": "Step-free access; hearing loop",
            "Booking": "book ahead",
            "Space": "full, with a waiting list",
        }
    )
    checked = _upload(client, token, sheet)
    assert "1 row(s) are ready to import (1 new)" in checked, checked

    assert "Imported 1 activity" in _import(client, token, sheet)
    walk = _feed(client)["Mitcham Health Walk"]
    assert walk["categories"] == ["gardening-nature", "walking", "mens-shed"]
    assert walk["audiences"] == ["older-people", "carers"]
    assert walk["location"]["accessibility"] == ["step-free", "hearing-loop"]
    assert walk["booking"]["method"] == "book-ahead"
    assert walk["capacity"]["status"] == "waiting-list"


def test_messages_name_labels_and_link_to_the_list_not_to_json(admin):
    client, token = admin
    report = _upload(
        client,
        token,
        _sheet(
            {
                "Categories": "Gardenin",
                "Who it is for": "Oldr people",
                "Access": "hearing lop",
                "Booking": "whenever",
                "Cost": "a fiver",
            }
        ),
    )
    text = html.unescape(report)
    assert "'Gardenin' is not one of the categories we know; did you mean 'Gardening and nature'?" in text
    assert "'Oldr people' is not one of the audiences we know; did you mean 'Older people'?" in text
    assert "'hearing lop' is not one of the access features we know; did you mean 'Hearing loop'?" in text
    assert "'whenever' is not one we know; use one of: Just turn up; Book ahead;" in text
    assert "'a fiver' is not a cost we can read; write Free, an amount like 3.50, or Pay what you can" in text
    for machine_word in ("gardening-nature", "older-people", "hearing-loop", "book-ahead", ".json"):
        assert machine_word not in text
    for anchor in ("categories", "who-it-is-for", "access", "booking", "cost"):
        assert f'href="/admin/import/values#{anchor}"' in report
    assert report.count("/admin/import/values#") == 5  # one link a problem, none elsewhere


def test_the_values_page_lists_every_label_and_the_import_page_links_to_it(admin):
    client, _token = admin
    assert 'href="/admin/import/values"' in client.get("/admin/import").text

    anonymous = httpx.get(client.base_url.join("/admin/import/values"))  # to read before signing in, too
    assert anonymous.status_code == 200
    page = html.unescape(anonymous.text)
    for label in (
        "Gardening and nature",
        "Men's sheds",
        "Older people",
        "Step-free access",
        "Every other week",
        "Tuesday",
        "Just turn up",
        "Full, with a waiting list",
        "Pay what you can (suggested £3)",
    ):
        assert f">{label}</" in page
    for anchor in ("categories", "how-often", "day", "cost", "who-it-is-for", "access", "booking", "space"):
        assert f'id="{anchor}"' in page
    assert "gardening-nature" not in page and "mens-shed" not in page


def test_donation_costs_import_as_pay_what_you_can_with_their_suggestion(admin):
    client, token = admin
    costs = {
        "Pay what you can": None,
        "donation": None,
        "pay what you can (suggested £3)": 3.0,
        "suggested donation £2.50": 2.5,
    }
    sheet = _sheet(*({"Activity name": f"Walk: {cost}", "Cost": cost} for cost in costs))
    assert "4 row(s) are ready to import (4 new)" in _upload(client, token, sheet)
    assert "Imported 4 activities" in _import(client, token, sheet)

    feed = _feed(client)
    for cost, suggested in costs.items():
        price = feed[f"Walk: {cost}"]["price"]
        assert price == pay_what_you_can(suggested)
        assert donation_of(price) == (True, suggested)

    # The same sheet with an amount instead: the donation's words go, as the new cost replaces them.
    priced = _sheet(*({"Activity name": f"Walk: {cost}", "Cost": "£2"} for cost in costs))
    assert "Imported 4 activities: 4 updated" in _import(client, token, priced)
    prices = {name: data["price"] for name, data in _feed(client).items()}
    assert prices == {f"Walk: {cost}": {"currency": "GBP", "amount": 2.0} for cost in costs}


def test_a_donation_with_cost_notes_too_is_refused_with_what_to_do(admin):
    client, token = admin
    report = html.unescape(
        _upload(client, token, _sheet({"Cost": "Donation £3", "Cost notes": "Includes cake"}))
    )
    assert (
        "Cost notes cannot go with Pay what you can: the listing says pay what you can, and the suggested "
        "donation if there is one. Leave Cost notes empty, and say what the money pays for in the "
        "Description."
    ) in report


def test_a_donation_replaces_the_cost_notes_of_the_cost_it_replaces(admin):
    client, token = admin
    assert "Imported 1 activity" in _import(
        client, token, _sheet({"Cost": "£2", "Cost notes": "Includes cake"})
    )
    assert _feed(client)["Mitcham Health Walk"]["price"] == {
        "currency": "GBP",
        "amount": 2.0,
        "notes": "Includes cake",
    }

    # A later sheet without the Cost notes column: the stored notes do not stop the donation.
    without_notes = _sheet({"Cost": "Pay what you can (suggested £3)"}, leave_out="Cost notes")
    assert "Imported 1 activity: 1 updated" in _import(client, token, without_notes)
    assert _feed(client)["Mitcham Health Walk"]["price"] == pay_what_you_can(3.0)
