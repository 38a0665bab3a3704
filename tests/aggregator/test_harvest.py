"""Harvesting a source over real HTTP into a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from aggregator import search_index
from aggregator.harvest import due_sources
from aggregator.store import copies, quarantine, sources
from federation.clock import utcnow
from tests.aggregator.conftest import follow, harvest, live, source_row
from tests.aggregator.feedserver import FeedServer
from tests.factories import event_activity, weekly_activity


def walk(feed: FeedServer, n: int, **overrides):
    """Walk number ``n``, published by ``feed`` under its own site."""
    return weekly_activity(**{"id": feed.activity_id(f"walk-{n}"), "name": f"Walk number {n}", **overrides})


def test_harvest_follows_edits_deletions_and_additions(make_feed, make_aggregator, database_url):
    feed = make_feed(page_size=2)
    for n in range(5):
        feed.put(walk(feed, n))
    broken = walk(
        feed, 9, location={"name": "Hall", "address": {"streetAddress": "1 Road", "postalCode": "CR4 1A"}}
    )
    feed.put(broken)
    app = make_aggregator(database_url)
    source_id = follow(app, feed.feed_url)

    result = harvest(app, source_id)
    assert result.status == "ok"
    assert result.pages == 4  # three pages of two items, then the empty last page
    shown = live(app)
    assert set(shown) == {feed.activity_id(f"walk-{n}") for n in range(5)}
    assert shown[feed.activity_id("walk-0")]["provenance"] == [
        {
            "source_id": source_id,
            "source_url": feed.feed_url,
            "item_id": feed.activity_id("walk-0"),
            "via": [],
        }
    ]

    # The invalid item is refused with its reason, on the public source page too.
    with app.extensions["engine"].connect() as conn:
        refused = conn.execute(select(quarantine)).one()
    assert refused.item_ref == feed.activity_id("walk-9")
    assert any("CR4 1A" in p["message"] for p in refused.problems)
    page = app.test_client().get(f"/sources/{source_id}")
    assert page.status_code == 200
    assert "Walk number 9" in page.text and "CR4 1A" in page.text
    health = app.test_client().get(f"/sources/{source_id}.json").json
    assert health["counts"] == {"items": 5, "shown": 5, "quarantined": 1}
    assert health["problems"][0]["reasons"][0]["path"].startswith("$.location")
    assert health["last_status"] == "ok" and health["last_error"] is None

    # Nothing new: one conditional request answered 304, nothing applied.
    feed.requests.clear()
    again = harvest(app, source_id)
    assert again.status == "not-modified"
    assert [status for _path, status in feed.requests] == [304]

    # Edit, delete, add, and fix the broken one: all show after the next harvest.
    feed.put(walk(feed, 1, name="Walk number one, renamed"))
    feed.delete(feed.activity_id("walk-2"))
    feed.put(event_activity(id=feed.activity_id("lunch")))
    fixed = walk(feed, 9)
    feed.put(fixed)
    result = harvest(app, source_id)
    assert result.status == "ok"
    shown = live(app)
    assert set(shown) == {feed.activity_id(f"walk-{n}") for n in (0, 1, 3, 4, 9)} | {
        feed.activity_id("lunch")
    }
    assert shown[feed.activity_id("walk-1")]["data"]["name"] == "Walk number one, renamed"
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(quarantine)).all() == []
        assert conn.execute(select(copies.c.item_id).where(copies.c.source_id == source_id)).scalars().all()

    # The republished feed carries the deletion as a tombstone.
    client = app.test_client()
    url = "/feeds/activities"
    states = {}
    while True:
        page = client.get(url).json
        for item in page["items"]:
            states[item["id"]] = item["state"]
        if not page["items"]:
            break
        url = page["next"].removeprefix("http://localhost")
    assert states[feed.activity_id("walk-2")] == "deleted"
    assert states[feed.activity_id("walk-1")] == "updated"
    assert sum(1 for s in states.values() if s == "updated") == 6


def test_invalid_new_version_hides_the_old_one_until_fixed(make_feed, make_aggregator):
    feed = make_feed()
    feed.put(walk(feed, 1))
    app = make_aggregator()
    source_id = follow(app, feed.feed_url)
    harvest(app, source_id)
    assert feed.activity_id("walk-1") in live(app)

    feed.put(walk(feed, 1, price={"amount": -3, "currency": "GBP"}))
    assert harvest(app, source_id).quarantined == 1
    assert live(app) == {}
    feed.put(walk(feed, 1))
    harvest(app, source_id)
    assert feed.activity_id("walk-1") in live(app)


def test_a_crashed_page_is_applied_once_on_resume(make_feed, make_aggregator):
    """The cursor moves with each page: rewinding it by hand re-applies nothing twice."""
    feed = make_feed(page_size=2)
    for n in range(4):
        feed.put(walk(feed, n))
    app = make_aggregator()
    source_id = follow(app, feed.feed_url)
    harvest(app, source_id)
    first = live(app)
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(sources).where(sources.c.id == source_id).values(cursor=None, etag=None))
    harvest(app, source_id)
    assert {k: v["change_number"] for k, v in live(app).items()} == {
        k: v["change_number"] for k, v in first.items()
    }
    assert source_row(app, source_id).cursor.endswith("afterChangeNumber=4")


def test_the_merged_set_is_republished_as_rpde_atom_and_ical(make_feed, make_aggregator):
    feed = make_feed()
    feed.put(walk(feed, 1))
    feed.put(event_activity(id=feed.activity_id("lunch")))
    app = make_aggregator(PUBLIC_URL="https://agg.example")
    client = app.test_client()
    # Empty, the first page is also the last: it names itself, for readers to poll.
    assert client.get("/feeds/activities").json["next"] == "https://agg.example/feeds/activities"
    source_id = follow(app, feed.feed_url)
    harvest(app, source_id)

    first = client.get("/feeds/activities")
    assert first.headers["Cache-Control"] == "public, max-age=3600"  # it has items: not the last page
    assert (
        client.get("/feeds/activities", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    )
    page = first.json
    assert page["next"] == "https://agg.example/feeds/activities?afterChangeNumber=" + str(
        page["items"][-1]["modified"]
    )
    walk_item = next(i for i in page["items"] if i["id"] == feed.activity_id("walk-1"))
    assert walk_item["localfeed:provenance"] == [
        {"source_url": feed.feed_url, "item_id": feed.activity_id("walk-1"), "via": ["https://agg.example"]}
    ]
    assert client.get(page["next"].removeprefix("https://agg.example")).json["items"] == []
    refused = client.get("/feeds/activities?afterChangeNumber=x")
    assert refused.status_code == 400 and "afterChangeNumber='x'" in refused.json["message"]
    assert client.get(f"/feeds/activities?afterChangeNumber={2**64}").status_code == 400

    atom = client.get("/feeds/activities.atom")
    assert atom.mimetype == "application/atom+xml" and b"Walk number 1" in atom.data
    ics = client.get("/feeds/activities.ics")
    assert ics.mimetype == "text/calendar" and b"Winter Warmer Lunch" in ics.data
    assert b"RRULE:FREQ=WEEKLY" in ics.data


def test_a_long_feed_is_walked_in_turns(make_feed, make_aggregator):
    feed = make_feed(page_size=2)
    for n in range(5):
        feed.put(walk(feed, n))
    app = make_aggregator(HARVEST_PAGE_LIMIT=2)
    source_id = follow(app, feed.feed_url)
    first = harvest(app, source_id)
    assert (first.status, first.pages, len(live(app))) == ("more", 2, 4)
    # Pages 1 and 2, and page 3 only to learn there is more (read while page 2 was written).
    assert len(feed.requests) == 3
    assert source_row(app, source_id).etag is None  # page 3 was not applied: nothing to ask "changed?" of
    assert due_sources(app.extensions["engine"]) == [source_id]  # straight back in the queue
    second = harvest(app, source_id)
    assert (second.status, len(live(app))) == ("ok", 5)
    assert due_sources(app.extensions["engine"]) == []


def test_one_harvest_per_source_at_a_time(make_feed, make_aggregator):
    """Without Redis, a lease on the source's row keeps a second harvest out until it expires."""
    feed = make_feed()
    feed.put(walk(feed, 1))
    app = make_aggregator()
    source_id = follow(app, feed.feed_url)
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        held = {"lease_owner": "another-worker", "lease_until": utcnow() + timedelta(minutes=5)}
        conn.execute(update(sources).where(sources.c.id == source_id).values(**held))
    assert harvest(app, source_id).status == "locked"
    assert feed.requests == [] and live(app) == {}

    with engine.begin() as conn:  # that worker died: its lease runs out
        conn.execute(
            update(sources)
            .where(sources.c.id == source_id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    assert harvest(app, source_id).status == "ok"
    row = source_row(app, source_id)
    assert (row.lease_owner, row.lease_until) == (None, None)  # given back
    assert list(live(app)) == [feed.activity_id("walk-1")]


def test_items_without_geo_are_placed_by_postcode_during_and_after_the_harvest(
    make_feed, make_aggregator, database_url, tmp_path
):
    postcodes = tmp_path / "postcodes.csv"
    postcodes.write_text("pcds,lat,long\nSE1 7PB,51.4985,-0.1131\n")
    feed = make_feed(page_size=10)
    place = {"name": "Hall", "address": {"streetAddress": "1 Road", "addressLocality": "Mitcham"}}
    # The first walk teaches CR4 1HT (it has geo); the second relies on that, on the same page.
    feed.put(walk(feed, 1))
    feed.put(walk(feed, 2, location={**place, "address": {**place["address"], "postalCode": "CR4 1HT"}}))
    # Nobody on the feed knows SE1 7PB: the operator's postcode file is asked after the harvest.
    feed.put(walk(feed, 3, location={**place, "address": {**place["address"], "postalCode": "SE1 7PB"}}))
    app = make_aggregator(database_url, POSTCODE_CSV=str(postcodes))
    source_id = follow(app, feed.feed_url)
    assert harvest(app, source_id).status == "ok"

    ids = {row["id"]: row["item_id"] for row in live(app).values()}
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(search_index.index)).all()
    placed = {ids[int(row.merged_id)]: (row.lat, row.lon, row.own_geo) for row in rows}
    assert placed == {
        feed.activity_id("walk-1"): (51.3982, -0.1545, True),
        feed.activity_id("walk-2"): (51.3982, -0.1545, False),
        feed.activity_id("walk-3"): (51.4985, -0.1131, False),
    }


def test_a_postcode_is_stored_in_its_normal_form_however_the_source_spelt_it(
    make_feed, make_aggregator, database_url
):
    feed = make_feed()
    for n, typed in enumerate(["cr41ht", " CR4  1ht ", "gir0aa", "CR4 1A"]):
        address = {"streetAddress": "1 Road", "addressLocality": "Mitcham", "postalCode": typed}
        feed.put(walk(feed, n, location={"name": "Hall", "address": address}))
    app = make_aggregator(database_url)
    source_id = follow(app, feed.feed_url)
    assert harvest(app, source_id).status == "ok"

    def postcode(activity):
        return activity["location"]["address"]["postalCode"]

    shown = {item_id: postcode(item["data"]) for item_id, item in live(app).items()}
    assert shown == {
        feed.activity_id("walk-0"): "CR4 1HT",
        feed.activity_id("walk-1"): "CR4 1HT",
        feed.activity_id("walk-2"): "GIR 0AA",
    }
    with app.extensions["engine"].connect() as conn:
        stored = conn.execute(select(copies.c.data).where(copies.c.source_id == source_id)).scalars().all()
        refused = conn.execute(select(quarantine)).one()
    assert sorted(map(postcode, stored)) == ["CR4 1HT", "CR4 1HT", "GIR 0AA"]
    # What is not a postcode is left as sent, so the reason names what the publisher typed.
    assert refused.item_ref == feed.activity_id("walk-3")
    assert any("CR4 1A" in problem["message"] for problem in refused.problems)
