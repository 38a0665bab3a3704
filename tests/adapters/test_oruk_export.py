"""Feeds of every kind added by URL, detected, harvested, and served back as Open Referral UK."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from aggregator import create_app
from aggregator.harvest import harvest_source
from aggregator.oruk import service_id
from aggregator.settings import job_config
from aggregator.sources import add_source
from aggregator.store import quarantine, sources
from federation.feeds.atom import render_atom
from federation.feeds.common import FeedInfo
from federation.feeds.ical import render_ical
from tests.adapters.conftest import FIXTURES
from tests.adapters.directory import SHED, Directory
from tests.factories import event_activity, weekly_activity

SCHEMAS = json.loads((FIXTURES / "oruk_schemas.json").read_text())


def validator(name: str) -> Draft202012Validator:
    schema = {**SCHEMAS, "$ref": f"#/$defs/{name}"}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_schemas_check_what_they_say():
    """The fixture is not vacuous: ids must be UUIDs and required fields present."""
    assert "uuid" in Draft202012Validator.FORMAT_CHECKER.checkers
    good = {"id": str(uuid.uuid4()), "name": "x", "status": "active", "url": "https://x.example/"}
    assert list(validator("service").iter_errors(good)) == []
    assert list(validator("service").iter_errors({**good, "id": "not-a-uuid"}))
    assert list(validator("service").iter_errors({**good, "status": "open"}))
    missing_url = {**good, "schedules": [{"id": str(uuid.uuid4())}]}
    assert list(validator("service").iter_errors(missing_url))


def _openactive_feed(site):
    series = {
        "@context": "https://openactive.io/",
        "@type": "SessionSeries",
        "@id": "https://leisure.example/series/wf",
        "name": "Walking Football",
        "organizer": {"@type": "Organization", "name": "Mitcham Leisure"},
        "activity": [{"@type": "Concept", "prefLabel": "Walking Football"}],
        "location": {
            "@type": "Place",
            "name": "Canons Leisure Centre",
            "address": {
                "streetAddress": "Madeira Road",
                "addressLocality": "Mitcham",
                "postalCode": "CR4 4HD",
            },
        },
        "eventSchedule": [
            {
                "@type": "PartialSchedule",
                "repeatFrequency": "P1W",
                "byDay": ["https://schema.org/Wednesday"],
                "startTime": "11:00",
                "endTime": "12:00",
                "startDate": "2026-11-04",
            }
        ],
        "offers": [{"@type": "Offer", "price": 2.5, "priceCurrency": "GBP"}],
    }
    url = site.url + "/openactive/session-series"
    site.handler(
        "/openactive/session-series",
        lambda: {
            "items": [
                {"state": "updated", "kind": "SessionSeries", "id": "wf", "modified": 7, "data": series}
            ],
            "next": url,
            "license": "https://creativecommons.org/licenses/by/4.0/",
        },
    )
    return url


def test_feeds_of_every_kind_harvested_and_served_as_open_referral(site, database_url):
    # The listings' fixed confirmation dates stay unexpired on this clock, whenever the test runs.
    clock = lambda: datetime(2026, 11, 20, 9, tzinfo=UTC)  # noqa: E731
    settings = {
        "DATABASE_URL": database_url,
        "ALLOW_PRIVATE_NETWORKS": True,
        "SECRET_KEY": "test",
        "CLOCK": clock,
    }
    app = create_app(settings)
    engine, config = app.extensions["engine"], job_config(app)
    info = FeedInfo(title="Mitcham Walkers", self_url=site.url + "/walks.ics", home_url=site.url + "/")
    # The site's own calendar and Atom feed, of activities it published (their ids are on the site).
    calendar = render_ical(info, [weekly_activity(base=site.url)])
    # The lunch is always ahead: one that has happened is no longer listed.
    lunch_day = date.today() + timedelta(days=30)
    lunch_at = datetime.combine(lunch_day, time(12), ZoneInfo("Europe/London"))
    lunch = event_activity(
        base=site.url, startDate=lunch_at.isoformat(), endDate=(lunch_at + timedelta(hours=2)).isoformat()
    )
    atom = render_atom(info, [lunch])
    feeds = {
        site.file("/walks.ics", calendar, "text/calendar"): "ical",
        site.file("/lunches.atom", atom, "application/atom+xml"): "atom",
        _openactive_feed(site): "openactive",
        Directory(site, [SHED]).url: "oruk",
    }
    # A calendar event with no postcode is listed on its source's page with the reason.
    broken = calendar.replace(b"CR4 1HT", b"Mitcham")
    feeds[site.file("/broken.ics", broken, "text/calendar")] = "ical"

    for url, kind in feeds.items():
        source = add_source(engine, url, state="approved", config=config)  # the kind is detected
        with engine.connect() as conn:
            assert conn.execute(select(sources.c.kind).where(sources.c.id == source)).scalar_one() == kind
        result = harvest_source(source, config)
        assert result.status == "ok", result.message
    with engine.connect() as conn:
        (problem,) = conn.execute(select(quarantine.c.problems)).scalars()
    assert (
        problem[0]["message"]
        == "Event 'Mitcham Health Walk': its LOCATION 'Mitcham Common, Windmill Road car park, "
        "Windmill Road, Mitcham, Mitcham' has no UK postcode"
    )

    web = app.test_client()
    first = web.get("/oruk/services?per_page=3")
    assert first.status_code == 200
    listing = first.get_json()
    assert list(validator("page").iter_errors(listing)) == []
    assert (listing["total_items"], listing["total_pages"], listing["size"]) == (4, 2, 3)
    assert listing["first_page"] and not listing["last_page"]
    second = web.get("/oruk/services?per_page=3&page=2").get_json()
    assert list(validator("page").iter_errors(second)) == []
    assert second["size"] == 1 and second["last_page"]

    services = {}
    for summary in listing["contents"] + second["contents"]:
        detail = web.get(f"/oruk/services/{summary['id']}")
        assert detail.status_code == 200
        services[summary["name"]] = detail.get_json()
        assert list(validator("service").iter_errors(services[summary["name"]])) == [], summary["name"]
    assert set(services) == {
        "Mitcham Health Walk",
        "Winter Warmer Lunch",
        "Walking Football",
        "Mitcham Men's Shed",
    }

    shed = services["Mitcham Men's Shed"]
    assert shed["id"] == service_id(Directory(site, []).url + "/shed")  # stable: derived from the activity id
    assert [
        (s["freq"], s["interval"], s["byday"], s["opens_at"], s["closes_at"]) for s in shed["schedules"]
    ] == [("WEEKLY", 1, "TU,TH", "10:00", "13:00")]
    (place,) = shed["service_at_locations"]
    assert place["location"]["addresses"][0]["postal_code"] == "CR4 2AA"
    assert (place["location"]["latitude"], place["location"]["longitude"]) == (51.4034, -0.1661)
    assert shed["cost_options"][0]["amount"] == 0
    assert shed["contacts"][0]["phones"][0]["number"] == "020 8123 0000"
    assert shed["assured_date"] == "2026-10-01"
    lunch = services["Winter Warmer Lunch"]
    assert lunch["cost_options"][0]["amount"] == 3.5
    assert (
        lunch["schedules"][0]["valid_from"] == lunch_day.isoformat()
        and lunch["schedules"][0]["opens_at"] == "12:00"
    )
    walking_football = services["Walking Football"]
    assert walking_football["schedules"][0]["byday"] == "WE"
    assert "assured_date" not in walking_football  # not confirmed by the organiser: no date to vouch for

    missing = web.get(f"/oruk/services/{uuid.uuid4()}")
    assert missing.status_code == 404 and "/oruk/services" in missing.get_json()["error"]["message"]
    bad = web.get("/oruk/services?page=0")
    assert bad.status_code == 400 and bad.get_json()["error"]["parameter"] == "page"


@pytest.mark.parametrize("per_page", ["0", "ten"])
def test_bad_paging_is_explained(per_page, tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.sqlite'}", "SECRET_KEY": "test"})
    answer = app.test_client().get(f"/oruk/services?per_page={per_page}")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["message"].startswith(
        f"per_page='{per_page}' is not a whole number from 1"
    )
