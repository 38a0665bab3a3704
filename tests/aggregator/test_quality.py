"""The quality report of a source, on a known data set harvested from a live feed, at a set time."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from aggregator.wording import plain_time
from tests.aggregator.conftest import follow, harvest
from tests.aggregator.test_refused_items import MACHINE_WORDS, shown_text
from tests.factories import event_activity, weekly_activity

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def verified(days_ago: int) -> str:
    return (NOW.date() - timedelta(days=days_ago)).isoformat()


def known_items(base: str) -> list[dict]:
    """Four accepted items whose every quality fact is known, and two the contract refuses.

    All are published at ``base``, the feed's own site, so only the contract refuses any.
    """
    complete = weekly_activity(base=base, lastVerified=verified(10))  # has everything
    # No geo, first visit, access or contact; books online.
    lunch = event_activity(base=base, lastVerified=verified(40))
    bare = weekly_activity(
        id=f"{base}/activities/bare-walk",
        name="Bare Walk",
        organizer={"name": "Quiet Walkers"},  # nobody to ask
        location={"name": "The Green", "address": {"streetAddress": "The Green", "addressLocality": "Mitcham",
                                                   "postalCode": "CR4 3AA"}},
        lastVerified=verified(100),
    )  # fmt: skip
    for field in ("description", "firstVisit", "contact"):
        del bare[field]
    from_directory = weekly_activity(
        id=f"{base}/activities/directory-walk",
        name="Directory Walk",
        lastVerified=verified(1),  # only the day a directory was read: not in the median
        **{"ext:verifiedBy": "harvest"},
    )
    no_name = weekly_activity(id=f"{base}/activities/bad-postcode")
    del no_name["name"]
    no_name["location"]["address"]["postalCode"] = "CR4 1A"
    bad_price = event_activity(id=f"{base}/activities/bad-price", categories=["nope"], price={})
    return [complete, lunch, bare, from_directory, no_name, bad_price]


def test_the_quality_report_counts_a_known_data_set(make_feed, make_aggregator, database_url):
    feed = make_feed(page_size=10)
    for item in known_items(feed.origin):
        feed.put(item)
    app = make_aggregator(database_url, CLOCK=lambda: NOW)
    source_id = follow(app, feed.feed_url)
    result = harvest(app, source_id)
    assert result.quarantined == 2
    client = app.test_client()

    report = client.get(f"/sources/{source_id}/quality.json").get_json()
    refused = report.pop("refused")  # each refusal with its messages, grouped by reason
    assert {group["code"] for group in refused} == {"required", "postcode", "unknown-category"}
    assert all(group["items"] and group["items"][0]["problems"][0]["message"] for group in refused)
    assert sum(group["count"] for group in refused if group["code"] == "required") == 2
    # Neither gives a map position nor a postcode known here: placed at their district's middle.
    rough = report.pop("placedApproximately")
    assert sorted(item["name"] for item in rough["items"]) == ["Bare Walk", event_activity()["name"]]
    assert all("distances are approximate" in item["message"] for item in rough["items"])
    assert report.pop("unplaced") == {"count": 0, "items": [], "more": 0}
    assert report == {
        "source": source_id,
        "checkedBy": None,
        "items": 4,
        "with": {
            "geo": {"count": 2, "share": 0.5},
            "description": {"count": 3, "share": 0.75},
            "firstVisit": {"count": 2, "share": 0.5},
            "accessibility": {"count": 2, "share": 0.5},
            "contact": {"count": 2, "share": 0.5},
            "booking": {"count": 4, "share": 1.0},
        },
        "refusedItems": 2,
        "problems": {"required": 2, "postcode": 1, "unknown-category": 1},
        "lastVerified": {"medianAgeDays": 40, "confirmedByOrganiser": 3, "notConfirmed": 1},
    }

    page = html.unescape(client.get(f"/sources/{source_id}").text)
    assert "Of the 4 accepted items, how many have…" in page
    assert '<th scope="row">first-visit information</th><td>2</td><td>50%</td>' in page
    assert "in the last 40 days (the median age)" in page
    assert "<li>An unknown category: 1</li>" in page and "<li>Something required is missing: 2</li>" in page
    assert "1 carry no date from their organiser" in page
    # Confirmation dates as people write them.
    assert f"between {plain_time(verified(100))} and {plain_time(verified(1))}." in page
    assert plain_time(verified(1)) == "19 Nov 2026"
    # Refused items by name, or as having none with their id; each problem's field in words.
    named = '<th scope="row">{}<br><small>' + feed.origin + "/activities/{}</small>"
    assert named.format("An item with no name", "bad-postcode") in page
    assert named.format(event_activity()["name"], "bad-price") in page
    assert "like 'CR4 1AA'. <small>(field: Postcode)</small>" in page
    assert "<small>(field: Category)</small>" in page
    shown = shown_text(page).replace(feed.origin, "")
    assert MACHINE_WORDS.findall(shown) == [] and "<code>" not in page, MACHINE_WORDS.findall(shown)

    # The clock moves on: the ages grow with it.
    app.config["CLOCK"] = lambda: NOW + timedelta(days=30)
    assert client.get(f"/sources/{source_id}/quality.json").get_json()["lastVerified"]["medianAgeDays"] == 70


def test_a_source_with_nothing_yet_and_a_request_nobody_approved(make_aggregator, tmp_path):
    app = make_aggregator(CLOCK=lambda: NOW)
    from aggregator.sources import add_source

    engine = app.extensions["engine"]
    approved = add_source(
        engine, "https://feed.example/", kind="localfeed", state="approved", config=app.config
    )
    pending = add_source(engine, "https://asking.example/", kind="localfeed", config=app.config)
    client = app.test_client()
    empty = client.get(f"/sources/{approved}/quality.json").get_json()
    assert empty["items"] == 0 and empty["with"]["geo"] == {"count": 0, "share": None}
    assert empty["lastVerified"] == {"medianAgeDays": None, "confirmedByOrganiser": 0, "notConfirmed": 0}
    assert "No accepted items yet." in client.get(f"/sources/{approved}").text
    assert client.get(f"/sources/{pending}/quality.json").status_code == 404  # the operator's business only
    assert client.get("/sources/999/quality.json").status_code == 404
