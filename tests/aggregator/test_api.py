"""The query API through the real aggregator app: harvested items, headers, errors, OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from openapi_spec_validator import validate

from aggregator import query
from tests.aggregator.conftest import follow, harvest, source_row
from tests.aggregator.feedserver import FeedServer
from tests.aggregator.test_geocode import FakePostcodesIo
from tests.aggregator.test_query import CENTRE, moved, place, put, verified_days_ago, walk
from tests.factories import event_activity

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class Clock:
    """The app's CLOCK: a time the test sets."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def published(feed: FeedServer, activity: dict) -> dict:
    """``activity`` as ``feed``'s publisher lists it: its id (ending in its name) on the feed's own site."""
    return {**activity, "id": feed.activity_id(activity["name"])}


def detail_path(activity_id: str) -> str:
    return "/api/activities/" + quote(activity_id, safe="")


def test_search_detail_cache_headers_and_errors(make_feed, make_aggregator, database_url):
    feed = make_feed()
    anchor = published(feed, walk("anchor", CENTRE, location=place("anchor", CENTRE, postcode="CR4 1AA")))
    feed.put(anchor)
    # Different days, so that without ``near`` the order is by next session alone.
    feed.put(published(feed, walk("one-km", moved(CENTRE, north_km=1.0), day="WE")))
    feed.put(published(feed, walk("far", moved(CENTRE, north_km=9.0), day="TH")))
    feed.put(
        published(feed, walk("expired", moved(CENTRE, north_km=0.5), lastVerified=verified_days_ago(400)))
    )
    clock = Clock(NOW)
    app = make_aggregator(database_url, CLOCK=clock)
    source = follow(app, feed.feed_url)
    harvest(app, source)
    client = app.test_client()

    response = client.get("/api/activities?near=CR4+1AA&radius=2")
    assert response.status_code == 200
    body = response.get_json()
    assert [item["activity"]["name"] for item in body["items"]] == ["anchor", "one-km"]
    assert body["items"][1]["distance_km"] == pytest.approx(1.0, abs=0.01)
    assert body["items"][0]["sources"] == [
        {"name": feed.feed_url, "url": feed.feed_url, "itemId": anchor["id"], "id": source}
    ]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "public, max-age=60"
    etag = response.headers["ETag"]

    preflight = client.options("/api/activities", headers={"Origin": "https://gp.example"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "If-None-Match" in preflight.headers["Access-Control-Allow-Headers"]
    again = client.get("/api/activities?near=CR4+1AA&radius=2", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["Access-Control-Allow-Origin"] == "*"
    clock.now = NOW + timedelta(days=7)  # the next sessions move on, so the answer changes
    moved_on = client.get("/api/activities?near=CR4+1AA&radius=2", headers={"If-None-Match": etag})
    assert moved_on.status_code == 200 and moved_on.headers["ETag"] != etag

    # Paging through the API gives the same items as one page.
    first = client.get("/api/activities?limit=2").get_json()
    second = client.get(f"/api/activities?limit=2&cursor={first['next_cursor']}").get_json()
    assert second["next_cursor"] is None
    assert [i["activity"]["name"] for i in first["items"] + second["items"]] == ["anchor", "one-km", "far"]

    # One activity by its id, URL-encoded; expired ones are kept and say so.
    one = client.get(detail_path(anchor["id"]))
    assert one.status_code == 200 and one.headers["Access-Control-Allow-Origin"] == "*"
    assert one.get_json()["activity"]["id"] == anchor["id"]
    assert one.get_json()["distance_km"] is None
    assert (
        client.get(detail_path(anchor["id"]), headers={"If-None-Match": one.headers["ETag"]}).status_code
        == 304
    )
    expired = client.get(detail_path(feed.activity_id("expired"))).get_json()
    assert expired["freshness"]["state"] == "expired"
    assert expired["freshness"]["note"] == "Not confirmed since October 2025"

    missing = client.get(detail_path(feed.activity_id("nothing")))
    assert missing.status_code == 404
    assert missing.get_json()["error"]["parameter"] == "id"
    assert feed.activity_id("nothing") in missing.get_json()["error"]["message"]

    unknown = client.get("/api/activities?near=ZZ1+1ZZ")
    assert unknown.status_code == 400
    assert unknown.headers["Access-Control-Allow-Origin"] == "*"
    assert unknown.get_json() == {
        "error": {
            "message": "We couldn't find ZZ1 1ZZ. Check the postcode, or try a nearby town.",
            "parameter": "near",
        }
    }
    assert client.get("/api/activities?category=walkin").get_json()["error"]["parameter"] == "category"


def test_total_counts_every_page_of_the_same_search(make_feed, make_aggregator, database_url):
    """The total ("Showing 2 of 5") is the whole search's, whichever page is asked for."""
    feed = make_feed(page_size=10)
    feed.put(published(feed, walk("anchor", CENTRE, location=place("anchor", CENTRE, postcode="CR4 1AA"))))
    for km in (0.3, 0.6, 0.9):
        feed.put(published(feed, walk(f"walk-{km}", moved(CENTRE, north_km=km))))
    feed.put(published(feed, walk("far", moved(CENTRE, north_km=9.0))))
    feed.put(published(feed, walk("expired", CENTRE, lastVerified=verified_days_ago(400))))
    lunch = {"startDate": "2026-11-23T12:00:00+00:00", "endDate": "2026-11-23T14:00:00+00:00"}
    feed.put(published(feed, {**event_activity(name="lunch", location=place("lunch", CENTRE)), **lunch}))
    clock = Clock(NOW)
    app = make_aggregator(database_url, CLOCK=clock)
    harvest(app, follow(app, feed.feed_url))
    client = app.test_client()

    def totals(url: str) -> tuple[int, bool, str | None]:
        body = client.get(url).get_json()
        return body["total"], body["total_is_lower_bound"], body["next_cursor"]

    near = "/api/activities?near=CR4+1AA&radius=2"
    total, lower_bound, cursor = totals(f"{near}&limit=2")
    assert (total, lower_bound) == (5, False) and cursor  # anchor, three walks, the lunch; not far or expired
    assert totals(f"{near}&limit=2&cursor={cursor}")[:2] == (5, False)
    assert totals(f"{near}&limit=20") == (5, False, None)  # all on one page
    assert totals("/api/activities?limit=1")[:2] == (6, False)  # everywhere: "far" too
    assert totals(f"{near}&limit=2&day=we")[:2] == (0, False)

    # A week on, every stored next session has passed: each is worked out again, and the lunch is over.
    clock.now = NOW + timedelta(days=7)
    assert totals(f"{near}&limit=2")[:2] == (4, False)
    assert totals(f"{near}&limit=20")[:2] == (4, False)


def test_a_total_past_the_cap_is_said_as_more_than(make_aggregator):
    app = make_aggregator(CLOCK=Clock(NOW))
    many = query.COUNT_CAP + 1
    put(app.extensions["engine"], *(walk(f"walk-{n}", moved(CENTRE, north_km=n / many)) for n in range(many)))
    body = app.test_client().get("/api/activities?near=51.4,-0.15&radius=2&limit=5").get_json()
    assert len(body["items"]) == 5
    assert (body["total"], body["total_is_lower_bound"]) == (query.COUNT_CAP, True)
    narrower = app.test_client().get("/api/activities?near=51.4,-0.15&radius=0.25&limit=5").get_json()
    within = len([n for n in range(many) if n / many < 0.25])
    assert (narrower["total"], narrower["total_is_lower_bound"]) == (within, False)


def test_postcodes_from_a_service_and_a_clear_503_when_it_fails(make_aggregator, serve):
    fake = FakePostcodesIo({"SW1A 1AA": (51.501009, -0.141588)})
    app = make_aggregator(POSTCODES_API_URL=serve(fake.app).url, CLOCK=Clock(NOW))
    client = app.test_client()

    body = client.get("/api/activities?near=sw1a1aa").get_json()
    assert (body["query"]["lat"], body["query"]["lon"]) == (51.501009, -0.141588)
    client.get("/api/activities?near=SW1A+1AA")
    assert fake.asked == ["SW1A 1AA"]  # remembered in the store

    fake.broken = True
    failed = client.get("/api/activities?near=SE1+7PB")
    assert failed.status_code == 503
    assert failed.get_json()["error"] == {
        "message": "We can't look up postcodes just now. Try again in a few minutes, or type a nearby town.",
        "parameter": "near",
    }


def test_the_openapi_document_is_valid_and_describes_every_parameter(make_aggregator):
    client = make_aggregator().test_client()
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    document = response.get_json()
    validate(document)  # raises on anything OpenAPI 3.1 does not allow
    assert document["openapi"] == "3.1.0"
    search = document["paths"]["/api/activities"]["get"]
    assert [p["name"] for p in search["parameters"]] == list(query.PARAMETERS)
    assert set(search["responses"]) == {"200", "304", "400", "503"}
    assert (
        "4.8 km/h"
        in document["components"]["schemas"]["Item"]["properties"]["walking_minutes"]["description"]
    )
    assert (
        "1.3 times"
        in document["components"]["schemas"]["Item"]["properties"]["walking_minutes"]["description"]
    )
    detail = document["paths"]["/api/activities/{id}"]["get"]
    assert set(detail["responses"]) == {"200", "304", "404"}
    assert document["servers"] == [{"url": "http://localhost"}]


def test_items_of_a_source_that_stopped_answering_turn_stale(make_feed, make_aggregator, serve, database_url):
    quiet_feed = FeedServer()
    quiet_server = serve(quiet_feed.app)
    quiet_feed.base_url = quiet_server.url
    lively_feed = make_feed()
    # The harvest stamps its sources with the real time, so this test's clock starts there.
    started = datetime.now(UTC)
    today = started.date().isoformat()
    quiet_feed.put(published(quiet_feed, walk("quiet-near", CENTRE, lastVerified=today)))
    lively_feed.put(
        published(lively_feed, walk("lively-far", moved(CENTRE, north_km=2.0), lastVerified=today))
    )
    clock = Clock(started)
    app = make_aggregator(database_url, CLOCK=clock)
    quiet, lively = follow(app, quiet_feed.feed_url), follow(app, lively_feed.feed_url)
    harvest(app, quiet)
    harvest(app, lively)
    client = app.test_client()

    def search() -> list[tuple[str, str, str | None]]:
        body = client.get("/api/activities?near=51.4,-0.15&radius=5").get_json()
        return [
            (i["activity"]["name"], i["freshness"]["state"], i["freshness"]["note"]) for i in body["items"]
        ]

    assert search() == [("quiet-near", "fresh", None), ("lively-far", "fresh", None)]
    quiet_server.stop()
    harvest(app, quiet)  # fails: nothing listens there any more
    last_answer = source_row(app, quiet).last_success_at
    assert source_row(app, quiet).failures == 1

    clock.now = started + timedelta(days=13)  # failing, but not for long enough
    assert search() == [("quiet-near", "fresh", None), ("lively-far", "fresh", None)]
    clock.now = started + timedelta(days=15)
    since = f"{last_answer.day} {last_answer:%B %Y}"
    assert search() == [
        ("lively-far", "fresh", None),
        ("quiet-near", "stale", f"Its source has not answered since {since}"),
    ]


def test_too_many_requests_get_a_json_429(make_aggregator):
    client = make_aggregator(API_RATE_LIMIT="2 per minute", CLOCK=Clock(NOW)).test_client()
    assert [client.get("/api/activities").status_code for _ in range(2)] == [200, 200]
    refused = client.get("/api/activities")
    assert refused.status_code == 429
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    assert "Wait a minute and try again" in refused.get_json()["error"]["message"]


def test_behind_a_proxy_each_visitor_has_their_own_limit(make_aggregator):
    """With TRUSTED_PROXIES=1 the address the proxy appends names the visitor; their own claim does not."""

    def visit(app, visitor: str, claimed: str | None = None) -> int:
        forwarded = f"{claimed}, {visitor}" if claimed else visitor  # the proxy appends what it saw
        headers = {"X-Forwarded-For": forwarded}
        return (
            app.test_client()
            .get("/api/activities", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
            .status_code
        )

    behind = make_aggregator(API_RATE_LIMIT="2 per minute", CLOCK=Clock(NOW), TRUSTED_PROXIES=1)
    assert [visit(behind, "203.0.113.5") for _ in range(3)] == [200, 200, 429]
    assert visit(behind, "203.0.113.6") == 200
    assert visit(behind, "203.0.113.5", claimed="198.51.100.9") == 429

    # Without it the headers are ignored: every request comes from the proxy's one address.
    direct = make_aggregator(API_RATE_LIMIT="2 per minute", CLOCK=Clock(NOW))
    visitors = ("203.0.113.5", "203.0.113.6", "203.0.113.7")
    assert [visit(direct, visitor) for visitor in visitors] == [200, 200, 429]

    with pytest.raises(ValueError, match="number of reverse proxies"):
        make_aggregator(TRUSTED_PROXIES=-1)
