"""Merging copies of one activity from several sources, with provenance, authority, trust and deletions."""

from __future__ import annotations

from sqlalchemy import update

from aggregator.adapters.mapping import VERIFIED_BY, VERIFIED_BY_HARVEST
from aggregator.sources import remove_source, set_trust
from aggregator.store import sources
from tests.aggregator.conftest import follow, harvest, live
from tests.factories import weekly_activity


def test_relayed_copies_rank_by_trust_then_date_and_the_publishers_own_copy_wins(
    make_feed, make_aggregator, database_url
):
    """Two aggregators relay one group's walk: one item, its copies ranked by trust, then by date.

    The group's own feed is the authority for the id it minted (aggregator.authority): once
    followed, its copy wins over every relayed one, whatever their trust or dates.
    """
    group, county, borough = make_feed(), make_feed(), make_feed()
    walk_id = group.activity_id("health-walk")
    county.relay(weekly_activity(id=walk_id, lastVerified="2026-10-01"), group.feed_url)
    borough_copy = weekly_activity(
        id=walk_id, name="Mitcham Health Walk (via CVS)", lastVerified="2026-11-01"
    )
    borough.relay(borough_copy, group.feed_url)
    app = make_aggregator(database_url)
    county_source = follow(app, county.feed_url, trust=80)
    borough_source = follow(app, borough.feed_url, trust=40)
    with app.extensions["engine"].begin() as conn:  # the operator marks both as aggregators
        conn.execute(
            update(sources)
            .where(sources.c.id.in_([county_source, borough_source]))
            .values(is_aggregator=True)
        )
    harvest(app, county_source)
    harvest(app, borough_source)

    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk"  # more trusted, though verified earlier
    assert sorted((p["source_id"], p["source_url"]) for p in item["provenance"]) == [
        (county_source, group.feed_url),
        (borough_source, group.feed_url),
    ]

    # Trust decides; with equal trust the most recently verified copy wins.
    set_trust(app.extensions["engine"], borough_source, 80)
    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk (via CVS)"
    # Unless that date is only the day an adapter read the walk: no organiser confirmed it.
    borough.relay({**borough_copy, VERIFIED_BY: VERIFIED_BY_HARVEST}, group.feed_url)
    harvest(app, borough_source)
    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk"

    # The group's own copy wins, though its source is the least trusted and verified earliest.
    group.put(weekly_activity(id=walk_id, name="Mitcham Health Walk (its own)", lastVerified="2026-09-01"))
    group_source = follow(app, group.feed_url, trust=10)
    harvest(app, group_source)
    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk (its own)"
    assert {p["source_id"] for p in item["provenance"]} == {group_source, county_source, borough_source}

    # A deletion at one source removes only its copy.
    group.delete(walk_id)
    harvest(app, group_source)
    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk"
    county.delete(walk_id)
    harvest(app, county_source)
    [item] = live(app).values()
    assert item["data"]["name"] == "Mitcham Health Walk (via CVS)"
    assert [p["source_id"] for p in item["provenance"]] == [borough_source]

    borough.delete(walk_id)
    harvest(app, borough_source)
    assert live(app) == {}
    page = app.test_client().get("/feeds/activities").json
    assert [(i["id"], i["state"]) for i in page["items"]] == [(walk_id, "deleted")]


def test_copies_merge_by_same_as_and_by_a_careful_match(make_feed, make_aggregator):
    group, umbrella = make_feed(), make_feed()
    walk_id, umbrella_walk_id = group.activity_id("health-walk"), umbrella.activity_id("mitcham-health-walk")
    group.put(weekly_activity(id=walk_id))
    # The umbrella body's copy has its own id but says it is the same as the group's.
    umbrella.put(weekly_activity(id=umbrella_walk_id, sameAs=[walk_id]))
    # This one says nothing, but name (up to case and punctuation), postcode and schedule match.
    umbrella.put(
        weekly_activity(
            id=umbrella.activity_id("lunch"),
            name="ST MARK'S  lunch club",
            location={
                "name": "Hall",
                "address": {"streetAddress": "Road", "addressLocality": "Mitcham", "postalCode": "cr4 2lf"},
            },
        )
    )
    group.put(
        weekly_activity(
            id=group.activity_id("lunch"),
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
            id=group.activity_id("lunch-friday"),
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
    walk = items[walk_id]
    assert walk["data"]["sameAs"] == [umbrella_walk_id]
    assert sorted(p["item_id"] for p in walk["provenance"]) == sorted([walk_id, umbrella_walk_id])
    lunch = next(i for i in items.values() if "lunch" in i["item_id"] and "friday" not in i["item_id"])
    assert len(lunch["provenance"]) == 2


def test_look_alikes_in_one_feed_stay_apart_and_removing_a_source_drops_its_items(make_feed, make_aggregator):
    feed = make_feed()
    feed.put(weekly_activity(id=feed.activity_id("1")))
    feed.put(weekly_activity(id=feed.activity_id("2")))
    other = make_feed()
    other.put(weekly_activity(id=other.activity_id("3")))
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


def test_a_same_as_bridges_items_placed_earlier_on_the_same_page(make_feed, make_aggregator):
    """Copies placed earlier on a page follow their item when a later copy shows it is one with another."""
    feed = make_feed()
    first, second, listing = (feed.activity_id(slug) for slug in ("walk", "park-walk", "walk-listing"))
    feed.put(weekly_activity(id=first, name="Morning walk"))
    feed.put(weekly_activity(id=second, name="Walk in the park"))
    feed.put(weekly_activity(id=listing, name="Walks", sameAs=[first, second]))
    app = make_aggregator()
    harvest(app, follow(app, feed.feed_url))

    [item] = live(app).values()
    assert sorted(p["item_id"] for p in item["provenance"]) == sorted([first, second, listing])
