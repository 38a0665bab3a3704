"""Merging copies of one activity from several sources, with provenance, trust and deletions."""

from __future__ import annotations

from aggregator.sources import remove_source, set_trust
from tests.aggregator.conftest import follow, harvest, live
from tests.factories import weekly_activity

GROUP = "https://walkers.example/activities/health-walk"
UMBRELLA = "https://cvs.example/activities/mitcham-health-walk"


def test_copies_merge_by_id_and_the_most_trusted_wins(make_feed, make_aggregator, database_url):
    group, umbrella = make_feed(), make_feed()
    group.put(weekly_activity(id=GROUP, lastVerified="2026-10-01"))
    umbrella.put(weekly_activity(id=GROUP, name="Mitcham Health Walk (via CVS)", lastVerified="2026-11-01"))
    app = make_aggregator(database_url)
    group_source = follow(app, group.feed_url, trust=80)
    umbrella_source = follow(app, umbrella.feed_url, trust=40)
    harvest(app, group_source)
    harvest(app, umbrella_source)

    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk"  # more trusted, though verified earlier
    assert {p["source_id"] for p in item["provenance"]} == {group_source, umbrella_source}

    # Trust decides; with equal trust the most recently verified copy wins.
    set_trust(app.extensions["engine"], umbrella_source, 80)
    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk (via CVS)"

    # A deletion at one source removes only its copy.
    umbrella.delete(GROUP)
    harvest(app, umbrella_source)
    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk"
    assert [p["source_id"] for p in item["provenance"]] == [group_source]

    group.delete(GROUP)
    harvest(app, group_source)
    assert live(app) == {}
    page = app.test_client().get("/feeds/activities").json
    assert [(i["id"], i["state"]) for i in page["items"]] == [(GROUP, "deleted")]


def test_copies_merge_by_same_as_and_by_a_careful_match(make_feed, make_aggregator):
    group, umbrella = make_feed(), make_feed()
    group.put(weekly_activity(id=GROUP))
    # The umbrella body's copy has its own id but says it is the same as the group's.
    umbrella.put(weekly_activity(id=UMBRELLA, sameAs=[GROUP]))
    # This one says nothing, but name (up to case and punctuation), postcode and schedule match.
    umbrella.put(
        weekly_activity(
            id="https://cvs.example/activities/lunch",
            name="ST MARK'S  lunch club",
            location={
                "name": "Hall",
                "address": {"streetAddress": "Road", "addressLocality": "Mitcham", "postalCode": "cr4 2lf"},
            },
        )
    )
    group.put(
        weekly_activity(
            id="https://walkers.example/activities/lunch",
            name="St Marks Lunch Club",
            location={
                "name": "St Mark's Hall",
                "address": {"streetAddress": "Road", "addressLocality": "Mitcham", "postalCode": "CR4 2LF"},
            },
        )
    )
    # Same name and postcode but another day: a different activity.
    group.put(
        weekly_activity(
            id="https://walkers.example/activities/lunch-friday",
            name="St Marks Lunch Club",
            location={
                "name": "St Mark's Hall",
                "address": {"streetAddress": "Road", "addressLocality": "Mitcham", "postalCode": "CR4 2LF"},
            },
            schedule=[{**weekly_activity()["schedule"][0], "byDay": ["FR"]}],
        )
    )
    app = make_aggregator()
    for feed in (group, umbrella):
        harvest(app, follow(app, feed.feed_url))

    items = live(app)
    assert len(items) == 3
    walk = items[GROUP]
    assert walk["data"]["sameAs"] == [UMBRELLA]
    assert sorted(p["item_id"] for p in walk["provenance"]) == sorted([GROUP, UMBRELLA])
    lunch = next(i for i in items.values() if "lunch" in i["item_id"] and "friday" not in i["item_id"])
    assert len(lunch["provenance"]) == 2


def test_look_alikes_in_one_feed_stay_apart_and_removing_a_source_drops_its_items(make_feed, make_aggregator):
    feed = make_feed()
    feed.put(weekly_activity(id="https://a.example/1"))
    feed.put(weekly_activity(id="https://a.example/2"))
    other = make_feed()
    other.put(weekly_activity(id="https://b.example/3"))
    app = make_aggregator()
    first, second = follow(app, feed.feed_url), follow(app, other.feed_url)
    harvest(app, first)
    harvest(app, second)
    items = live(app)
    # The two look-alikes from one feed stay two; the third source's copy joins one of them.
    assert len(items) == 2
    assert sorted(len(i["provenance"]) for i in items.values()) == [1, 2]

    remove_source(app.extensions["engine"], first)
    [item] = live(app).values()
    assert [p["source_id"] for p in item["provenance"]] == [second]
