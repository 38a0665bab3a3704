"""Listings harvested without a map position: found near their district, or named on the source's
page and quality report when nothing can place them. Real publisher, real aggregator, loopback."""

from __future__ import annotations

import re
from html import unescape

import publisher
from publisher import editing
from publisher.extensions import get_store
from publisher.hub import stop_worker as stop_publisher_worker
from tests.aggregator.conftest import follow, harvest
from tests.factories import weekly_activity
from tests.publisher.test_admin import PASSWORD, log_in
from tests.publisher.test_placement_warning import lunch

MITCHAM_POINTS = {"CR4 1HT": (51.3982, -0.1545), "CR4 4AA": (51.3940, -0.1700)}


def test_a_volunteers_new_activity_with_an_unknown_postcode_is_found_at_its_district(
    serve, make_aggregator, tmp_path, request
):
    app = publisher.create_app({
        "INSTANCE_PATH": str(tmp_path / "publisher"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'publisher.sqlite'}",
        "SECRET_KEY": "test-secret",
        "ALLOW_PRIVATE_NETWORKS": True,
        "RATELIMIT_ENABLED": False,
    })  # fmt: skip
    request.node.addfinalizer(lambda: stop_publisher_worker(app))
    site = serve(app)
    app.config["PUBLIC_URL"] = site.url  # ids are minted at the address the aggregator follows
    with app.app_context():
        store = get_store()
    group = store.add_group("Mitcham Walkers")
    store.add_user("walker@example.org", PASSWORD, "editor", group.id)
    # Two listings sent with their map points (through the API, say): the district is known from them.
    for number, (postcode, (lat, lon)) in enumerate(MITCHAM_POINTS.items()):
        walk = weekly_activity(name=f"Walk {number}")
        walk["location"]["address"]["postalCode"] = postcode
        walk["location"]["geo"] = {"latitude": lat, "longitude": lon}
        assert editing.save_activity(store, group, walk, base_url=site.url).ok
    # The volunteer adds a lunch through the form: a postcode no listing or setting knows.
    client = app.test_client()
    token = log_in(client, "walker@example.org")
    assert client.post("/admin/activities/new", data=lunch(token, "CR4 9ZZ")).status_code == 302

    aggregator = make_aggregator()
    source_id = follow(aggregator, f"{site.url}/feeds/activities")
    assert harvest(aggregator, source_id).status == "ok"
    api = aggregator.test_client()
    body = api.get("/api/activities?near=CR4+9ZZ&radius=3").get_json()
    assert body["query"]["located"] == {"precision": "district", "label": "CR4 (Mitcham)"}
    found = {item["activity"]["name"]: item for item in body["items"]}
    assert set(found) == {"Walk 0", "Walk 1", "Winter Warmer Lunch"}
    assert found["Winter Warmer Lunch"]["placed"] == "district"
    assert found["Winter Warmer Lunch"]["distance_approximate"] is True
    # From a point nearby, too: it is on the map, at its district's middle.
    near_point = api.get("/api/activities?near=51.3961,-0.1622&radius=1").get_json()
    assert "Winter Warmer Lunch" in [item["activity"]["name"] for item in near_point["items"]]
    # The source's quality report says it is only roughly placed, by name.
    report = api.get(f"/sources/{source_id}/quality.json").get_json()
    assert [item["name"] for item in report["placedApproximately"]["items"]] == ["Winter Warmer Lunch"]


def test_the_source_page_names_a_listing_nothing_can_place(make_feed, make_aggregator):
    feed = make_feed(page_size=10)
    placed = weekly_activity(base=feed.origin, id=feed.activity_id("placed"), name="Placed Walk")
    lost = weekly_activity(base=feed.origin, id=feed.activity_id("lost"), name="Lost Lunch Club")
    del lost["location"]["geo"]
    lost["location"]["address"]["postalCode"] = "ZZ9 9ZZ"
    for item in (placed, lost):
        feed.put(item)
    app = make_aggregator()
    source_id = follow(app, feed.feed_url)
    assert harvest(app, source_id).status == "ok"
    client = app.test_client()

    report = client.get(f"/sources/{source_id}/quality.json").get_json()
    assert report["unplaced"]["count"] == 1
    (item,) = report["unplaced"]["items"]
    assert (item["name"], item["postcode"]) == ("Lost Lunch Club", "ZZ9 9ZZ")
    assert "We don't know where ZZ9 9ZZ is, nor anything in its district ZZ9." in item["message"]
    page = " ".join(re.sub(r"<[^>]+>", " ", unescape(client.get(f"/sources/{source_id}").text)).split())
    assert "Not on the map (1)" in page
    assert "Lost Lunch Club (ZZ9 9ZZ): We don't know where ZZ9 9ZZ is" in page
    # Still listed without a place: a search that is not near anywhere shows it.
    names = [i["activity"]["name"] for i in client.get("/api/activities").get_json()["items"]]
    assert "Lost Lunch Club" in names
