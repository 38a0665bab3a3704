"""Open Referral UK / HSDS 3.0 directories: the standard's examples and a small UK directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flask import Response, request

from aggregator.adapters import detect, oruk
from aggregator.adapters.mapping import VERIFIED_BY
from schema import validate_activity
from tests.adapters.directory import CARERS, CLOSED, SHED, Directory

SERVICE_ID = "ac148810-d857-441c-9679-408f346de14b"


@pytest.mark.parametrize("variant", ["oruk-uk-profile", "hsds-3.0"])
def test_the_standards_examples(site, fetch_for, samples, variant):
    """Both published examples: read page by page, detail by detail; their placeholder data is reported."""
    listing = (samples / "openreferral" / f"{variant}_service_list.json").read_bytes()
    full = (samples / "openreferral" / f"{variant}_service_full.json").read_bytes()
    assert detect("application/json", listing) == "oruk"
    empty = {
        "total_items": 1,
        "total_pages": 10,
        "page_number": 2,
        "size": 0,
        "first_page": False,
        "last_page": True,
        "empty": True,
        "contents": [],
    }

    def services():
        # The example claims 10 pages of 1; its second page is where this directory ends.
        return Response(listing, content_type="application/json") if request.args["page"] == "1" else empty

    url = site.handler("/api/services", services)
    site.file(f"/api/services/{SERVICE_ID}", full, "application/json")
    now = datetime(2026, 11, 20, 9, tzinfo=UTC)
    (page,) = oruk.pages(fetch_for(url), url, None, now=now)

    assert site.requests == [
        "/api/services?page=1&per_page=100",
        f"/api/services/{SERVICE_ID}",
        "/api/services?page=2&per_page=100",
    ]
    assert page.snapshot and page.changes == []
    (problem,) = page.unmapped
    assert problem.ref == f"service {SERVICE_ID}"
    extra = (
        "bymonthday 2,3,4"
        if variant == "oruk-uk-profile"
        else "bymonthday 2,3,4, byweekno 41,42, byyearday 2,3,4"
    )
    names = "bymonthday" if variant == "oruk-uk-profile" else "bymonthday and byweekno and byyearday"
    assert problem.reason == (
        "Service 'Community Counselling': location 'MyCity Civic Center' postcode 'ABC 1234' is not a UK "
        "postcode and latitude 100 is out of range; no location we can show; its schedule (WEEKLY, byday "
        f"'TH,FR', {extra}) is not one we can show: it also limits the days by {names}, which a weekly "
        "pattern cannot say"
    )
    assert json.loads(page.cursor) == {
        "since": "2026-11-20T09:00:00+00:00",
        "full_at": "2026-11-20T09:00:00+00:00",
    }


def test_what_the_examples_would_give_with_a_uk_address(samples):
    """The rest of the core example maps: fees, ages, contacts, the quoted phone number."""
    service = json.loads((samples / "openreferral" / "hsds-3.0_service_full.json").read_bytes())
    place = service["service_at_locations"][0]["location"]
    place.update(latitude=51.5, longitude=-0.1)
    place["addresses"][0]["postal_code"] = "CR4 1AA"
    for schedule in service["schedules"]:
        for extra in ("bymonthday", "byweekno", "byyearday"):
            schedule.pop(extra)
    candidate = oruk.map_service(
        service, "https://dir.example/services/1", datetime(2026, 11, 20, tzinfo=UTC)
    )
    activity = candidate.activity
    assert candidate.problems == ["its schedule ended on 2005-01-01"]
    assert activity["schedule"] == [
        {
            "repeatFrequency": "P1W",
            "byDay": ["TH", "FR"],
            "startTime": "10:00",
            "endTime": "18:00",
            "startDate": "2005-01-01",
            "endDate": "2005-01-01",
            "timezone": "Europe/London",  # not the example's "timezone": 3
        }
    ]
    assert activity["location"]["name"] == "MyCity Civic Center"
    assert activity["location"]["address"] == {
        "streetAddress": "1-30 Main Street, MyVillage",
        "addressLocality": "MyCity",
        "postalCode": "CR4 1AA",
        "addressRegion": "MyState",  # the example's state_province
    }
    assert activity["location"]["accessibility"] == ["hearing-loop", "wheelchair-accessible"]
    assert activity["price"] == {
        "amount": 35,
        "currency": "GBP",
        "notes": "Under 18s and Over 60s: per 1 hour session",
    }
    assert activity["ageRange"] == {"min": 12, "max": 100}
    assert activity["contact"] == {
        "name": "Ann Persona",
        "email": "email@example.com",
        "telephone": "+44 1234 234567",
    }
    assert activity["booking"] == {"method": "referral", "url": "http://example.com/counselling"}
    assert activity["categories"] == ["mental-health"]
    assert activity["languages"] == ["ur"]
    assert activity["lastVerified"] == "2005-01-01"  # assured_date
    assert activity["dateModified"] == "2023-03-15T10:30:45+00:00"


def test_a_directory_harvested_then_followed_by_what_changed(site, fetch_for):
    directory = Directory(site, [SHED, CARERS, CLOSED])
    url = directory.url
    first = datetime(2026, 11, 20, 9, tzinfo=UTC)
    (page,) = oruk.pages(fetch_for(url), url, None, now=first)
    assert page.snapshot and page.unmapped == []
    assert site.requests == [
        "/directory/services?page=1&per_page=100",
        "/directory/services/shed",
        "/directory/services/carers",
        "/directory/services?page=2&per_page=100",
        "/directory/services/lunch",
    ]
    found = {change.id: change.data for change in page.changes}
    assert found[url + "/lunch"] is None  # defunct: removed
    shed, carers = found[url + "/shed"], found[url + "/carers"]
    for activity in (shed, carers):
        assert validate_activity(activity) == []
    assert shed["name"] == "Mitcham Men's Shed"
    assert shed["schedule"] == [
        {
            "repeatFrequency": "P1W",
            "byDay": ["TU", "TH"],
            "startTime": "10:00",
            "endTime": "13:00",
            "startDate": "2026-01-06",
            "timezone": "Europe/London",
        }
    ]
    assert shed["location"]["address"] == {
        "streetAddress": "1 London Road",
        "addressLocality": "Mitcham",
        "postalCode": "CR4 2AA",
    }
    assert shed["location"]["geo"] == {"latitude": 51.4034, "longitude": -0.1661}
    assert shed["location"]["accessibility"] == ["step-free", "accessible-toilet"]
    assert shed["price"] == {"isFree": True}
    assert shed["booking"] == {"method": "drop-in", "url": "https://mitcham.example/shed"}
    assert shed["contact"] == {"name": "Shed keeper", "telephone": "020 8123 0000"}
    assert shed["categories"] == ["mens-shed"]
    assert shed["lastVerified"] == "2026-10-01" and VERIFIED_BY not in shed
    assert carers["schedule"][0] | {"startDate": None} == {
        "repeatFrequency": "P1M",
        "byDay": ["WE"],
        "byMonthWeek": 1,
        "startTime": "10:30",
        "endTime": "12:00",
        "startDate": None,
        "timezone": "Europe/London",
    }
    assert carers["schedule"][0]["startDate"] == "2026-02-04"
    assert carers["price"] == {"amount": 2.5, "currency": "GBP", "notes": "Pay what you can"}
    assert carers["categories"] == ["social-club", "parents-carers"]
    # No assured_date: today's date, marked as not confirmed by the organiser.
    assert carers["lastVerified"] == "2026-11-20" and carers[VERIFIED_BY] == "harvest"

    # An hour later only the changed service is asked for, and it is not the whole set.
    directory.services["carers"].update(last_modified="2026-11-20T09:30:00Z", name="Carers' Coffee Club")
    site.requests.clear()
    (page,) = oruk.pages(fetch_for(url), url, page.cursor, now=first + timedelta(hours=1))
    assert not page.snapshot
    assert site.requests == [
        "/directory/services?page=1&per_page=100&modified_after=2026-11-20T09%3A00%3A00%2B00%3A00",
        "/directory/services/carers",
    ]
    assert [change.data["name"] for change in page.changes] == ["Carers' Coffee Club"]

    # A server that ignores modified_after costs list pages, but no unchanged service is read again.
    directory.honours_modified_after = False
    directory.services["shed"].update(last_modified="2026-11-20T10:15:00Z")
    site.requests.clear()
    (page,) = oruk.pages(fetch_for(url), url, page.cursor, now=first + timedelta(hours=2))
    assert [r for r in site.requests if "?" not in r] == ["/directory/services/shed"]

    # A service listed but gone from its own address has been withdrawn.
    directory.services["shed"].update(last_modified="2026-11-20T11:15:00Z")
    site.handler("/directory/services/shed", lambda: ("gone", 410))
    (page,) = oruk.pages(fetch_for(url), url, page.cursor, now=first + timedelta(hours=3))
    assert [(change.id, change.data) for change in page.changes] == [(url + "/shed", None)]

    # Once a day the whole directory is read again, so removals are seen.
    (page,) = oruk.pages(fetch_for(url), url, page.cursor, now=first + timedelta(days=1))
    assert page.snapshot


def test_a_url_that_is_not_a_directory_removes_nothing(site, fetch_for):
    url = site.file("/nothing", b'{"hello": "world"}', "application/json")
    (page,) = oruk.pages(fetch_for(url), url, None)
    assert not page.snapshot and page.changes == []
    assert "is not an Open Referral page" in page.unmapped[0].reason


@pytest.mark.parametrize(
    ("fees", "price"),
    [
        ("Free", {"isFree": True}),
        ("Free of charge.", {"isFree": True}),
        ("£2 a session, free for carers", {"isFree": False, "notes": "£2 a session, free for carers"}),
        ("Donations welcome", {"isFree": False, "notes": "Donations welcome"}),
        (None, {"isFree": False, "notes": "Price not given; check with the organiser"}),
    ],
)
def test_a_cost_in_words_is_kept_and_no_cost_is_never_called_free(site, fetch_for, fees, price):
    """Without an amount the directory's words are the price; with no word at all it is unknown, not free."""
    service = {key: value for key, value in SHED.items() if key != "cost_options"}
    if fees is not None:
        service["fees_description"] = fees
    directory = Directory(site, [service])
    (page,) = oruk.pages(
        fetch_for(directory.url), directory.url, None, now=datetime(2026, 11, 20, tzinfo=UTC)
    )
    (change,) = page.changes
    assert change.data["price"] == price and page.unmapped == []
    assert validate_activity(change.data) == []
