"""Trust between nodes: a followed source speaks only for itself (issue 15).

Real feeds on loopback: publishers whose ids are on their own site, hostile sources that
list or push other publishers' ids, aggregators that relay. Every test looks at what is
shown (the merged listing), what each source holds (its copies) and what it was told
(its refused items), not only at HTTP statuses.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from flask import Flask
from sqlalchemy import select, update

from aggregator.sources import set_relays
from aggregator.store import quarantine, sources
from aggregator.subscriptions import push_subscriptions
from federation.websub import sign
from schema.rpde import encode_page
from tests.aggregator.conftest import copies_of, follow, harvest, live, subscribed
from tests.aggregator.feedserver import FeedServer
from tests.factories import weekly_activity, wire_item

FUTURE = "2099-01-01T09:00:00+00:00"


def own(feed: FeedServer, slug: str, **overrides: Any) -> dict[str, Any]:
    """An activity minted by ``feed``'s publisher: its id is on the feed's own site."""
    return weekly_activity(**{"id": feed.activity_id(slug), "name": slug, **overrides})


def refused(app: Flask, source_id: int) -> dict[str, list[dict[str, str]]]:
    """The source's refused items: item ref -> problems."""
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(quarantine).where(quarantine.c.source_id == source_id))
        return {row.item_ref: row.problems for row in rows}


def codes(problems: list[dict[str, str]]) -> set[str]:
    return {problem["code"] for problem in problems}


def mark_aggregator(app: Flask, source_id: int, relays: bool = True) -> None:
    """The operator declares the source an aggregator (or no longer one), as the sources page does."""
    set_relays(app.extensions["engine"], source_id, relays)


@pytest.mark.parametrize("hostile_trust", [50, 90])
def test_a_spoofed_id_is_refused_at_equal_and_higher_trust_even_with_a_future_date(
    make_feed, make_aggregator, hostile_trust
):
    publisher, hostile = make_feed(), make_feed()
    real = own(publisher, "real-walk", name="Real Walk")
    publisher.put(real)
    app = make_aggregator()
    publisher_id = follow(app, publisher.feed_url, trust=50)
    assert harvest(app, publisher_id).status == "ok"

    hostile.put({**real, "name": "HIJACKED", "dateModified": FUTURE, "lastVerified": "2099-01-01"})
    invented = own(publisher, "invented", name="HIJACKED invention")
    hostile.put(invented)
    hostile.put(own(hostile, "their-own-walk", name="Their Own Walk"))
    hostile_id = follow(app, hostile.feed_url, trust=hostile_trust)
    result = harvest(app, hostile_id)

    assert result.status == "ok" and result.quarantined == 2
    shown = live(app)
    assert shown[real["id"]]["data"]["name"] == "Real Walk"
    assert [entry["source_id"] for entry in shown[real["id"]]["provenance"]] == [publisher_id]
    assert invented["id"] not in shown  # an id invented on another's site is never shown
    assert shown[f"{hostile.base_url}/activities/their-own-walk"]["data"]["name"] == "Their Own Walk"
    assert copies_of(app, real["id"]) == {publisher_id: real}
    assert copies_of(app, invented["id"]) == {}
    problems = refused(app, hostile_id)
    assert set(problems) == {real["id"], invented["id"]}
    assert "foreign-origin" in codes(problems[real["id"]])
    message = next(p["message"] for p in problems[invented["id"]] if p["code"] == "foreign-origin")
    hostile_site, publisher_site = hostile.base_url.split("//")[1], publisher.base_url.split("//")[1]
    assert f"this feed is on {hostile_site} but lists an activity of {publisher_site}" in message
    # The publisher whose id was used, and the hostile source's operator, can both read why.
    page = app.test_client().get(f"/sources/{hostile_id}")
    assert page.status_code == 200 and "lists an activity of" in page.text


def test_a_date_more_than_a_day_ahead_is_refused_and_never_wins(make_feed, make_aggregator):
    publisher = make_feed()
    walk = own(publisher, "walk", name="As checked")
    publisher.put(walk)
    app = make_aggregator()
    source_id = follow(app, publisher.feed_url)
    harvest(app, source_id)

    publisher.put({**walk, "name": "From the future", "lastVerified": "2099-06-01"})
    assert harvest(app, source_id).quarantined == 1
    assert "future-date" in codes(refused(app, source_id)[walk["id"]])
    # The source no longer vouches for the old version, and the future one is not believed.
    assert walk["id"] not in live(app)

    publisher.put({**walk, "name": "Corrected"})
    harvest(app, source_id)
    assert live(app)[walk["id"]]["data"]["name"] == "Corrected"
    assert refused(app, source_id) == {}


def test_a_signed_push_of_another_publishers_ids_changes_nothing_of_theirs(make_feed, make_aggregator, serve):
    publisher, hostile = make_feed(), make_feed()
    real = own(publisher, "real-walk", name="Real Walk")
    publisher.put(real)
    app = make_aggregator()
    aggregator_url = serve(app).url
    publisher_id = follow(app, publisher.feed_url)
    harvest(app, publisher_id)
    hostile_id = follow(app, hostile.feed_url)
    row = subscribed(app, hostile_id, hostile.feed_url)

    invented = own(publisher, "invented", name="Invented by push")
    body = encode_page(
        [
            wire_item(real["id"], 10, {**real, "name": "HIJACKED"}),
            wire_item(invented["id"], 11, invented),
        ],
        hostile.feed_url + "?afterChangeNumber=11",
    )
    answer = httpx.post(
        f"{aggregator_url}/websub/callback/{row.token}",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature": sign(row.secret, body)},
    )
    assert answer.status_code == 202  # correctly signed: received and judged, item by item

    shown = live(app)
    assert shown[real["id"]]["data"]["name"] == "Real Walk"
    assert invented["id"] not in shown
    assert copies_of(app, real["id"]) == {publisher_id: real}
    assert copies_of(app, invented["id"]) == {}
    problems = refused(app, hostile_id)
    assert {"foreign-origin"} <= codes(problems[real["id"]]) and "foreign-origin" in codes(
        problems[invented["id"]]
    )


def test_a_next_link_to_another_site_ends_the_harvest_and_keeps_what_was_read(
    make_feed, make_aggregator, serve
):
    elsewhere = make_feed()
    elsewhere.put(own(elsewhere, "elsewhere-walk", name="Stored under the wrong source"))
    app = Flask("leading-away")
    first: dict[str, Any] = {}

    @app.get("/feed")
    def feed() -> Any:
        page = encode_page([wire_item(first["id"], 1, first)], elsewhere.feed_url)
        return app.response_class(page, mimetype="application/json")

    leading_away = serve(app).url
    first.update(weekly_activity(id=f"{leading_away}/activities/first-walk", name="First Walk"))
    aggregator = make_aggregator()
    source_id = follow(aggregator, f"{leading_away}/feed")
    result = harvest(aggregator, source_id)

    assert result.status == "error" and result.pages == 1
    shown = live(aggregator)
    assert set(shown) == {first["id"]}  # what the page held is kept
    assert elsewhere.requests == []  # the other site was never asked
    with aggregator.extensions["engine"].connect() as conn:
        stored = conn.execute(select(sources).where(sources.c.id == source_id)).one()
    assert "not on the feed's own site" in stored.last_error["cause"]
    assert elsewhere.feed_url in stored.last_error["cause"]
    assert stored.cursor is None  # the cursor stays home: the next harvest starts from the feed again


def test_a_relayed_copy_counts_until_the_authority_arrives_and_never_beats_it(make_feed, make_aggregator):
    publisher, relay = make_feed(), make_feed()
    real = own(publisher, "walk", name="The publisher's word")
    publisher.put(real)
    relay.relay({**real, "name": "Relayed word", "lastVerified": "2026-12-01"}, publisher.feed_url)
    unnamed = own(publisher, "unnamed", name="Relayed without naming its origin")
    relay.put(unnamed)
    relay.extra_item_fields[unnamed["id"]] = {
        "localfeed:provenance": [{"source_url": relay.feed_url, "item_id": unnamed["id"], "via": ["x"]}]
    }
    app = make_aggregator()
    relay_id = follow(app, relay.feed_url, trust=90)

    # Not declared an aggregator, and no /sources.json on its site: its relays are refused.
    harvest(app, relay_id)
    assert real["id"] not in live(app)
    assert "foreign-origin" in codes(refused(app, relay_id)[real["id"]])

    mark_aggregator(app, relay_id)  # its feed is read again from the start, judged by the new rule
    harvest(app, relay_id)
    assert live(app)[real["id"]]["data"]["name"] == "Relayed word"  # no authoritative copy yet: shown
    assert unnamed["id"] not in live(app)
    assert "foreign-origin" in codes(refused(app, relay_id)[unnamed["id"]])

    publisher_id = follow(app, publisher.feed_url, trust=10)
    harvest(app, publisher_id)
    shown = live(app)[real["id"]]
    assert shown["data"]["name"] == "The publisher's word"  # the authority wins over higher trust
    assert {entry["source_id"] for entry in shown["provenance"]} == {relay_id, publisher_id}

    # A relayed copy arriving after the authoritative one, newer and more trusted, does not win.
    relay.put({**real, "name": "Relayed again, later", "lastVerified": "2026-12-06"})
    harvest(app, relay_id)
    assert copies_of(app, real["id"])[relay_id]["name"] == "Relayed again, later"
    assert live(app)[real["id"]]["data"]["name"] == "The publisher's word"

    # No longer an aggregator: its relayed copies go, and are refused when read again.
    mark_aggregator(app, relay_id, relays=False)
    assert relay_id not in copies_of(app, real["id"])
    harvest(app, relay_id)
    assert relay_id not in copies_of(app, real["id"])
    assert "foreign-origin" in codes(refused(app, relay_id)[real["id"]])


def test_an_aggregator_is_recognised_by_its_sources_list(make_feed, make_aggregator):
    publisher, relay = make_feed(), make_feed()

    @relay.app.get("/sources.json")
    def listing() -> Any:
        return {"aggregator": "Next-door aggregator", "sources": [{"feed_url": publisher.feed_url}]}

    real = own(publisher, "walk", name="Relayed by a known aggregator")
    relay.relay(real, publisher.feed_url)
    app = make_aggregator()
    relay_id = follow(app, relay.feed_url)
    harvest(app, relay_id)

    assert live(app)[real["id"]]["data"]["name"] == "Relayed by a known aggregator"
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(sources.c.is_aggregator).where(sources.c.id == relay_id)).scalar()


def test_verification_gets_change_a_subscription_only_in_answer_to_a_pending_request(
    make_feed, make_aggregator
):
    feed = make_feed()
    app = make_aggregator()
    source_id = follow(app, feed.feed_url)
    row = subscribed(app, source_id, feed.feed_url)
    client = app.test_client()
    callback = f"/websub/callback/{row.token}"
    topic = {"hub.topic": feed.feed_url}

    def stored() -> Any:
        with app.extensions["engine"].connect() as conn:
            found = conn.execute(
                select(push_subscriptions).where(push_subscriptions.c.source_id == source_id)
            ).one()
        return found.state, found.lease_seconds, found.expires_at, found.pending

    before = stored()
    for forged in (
        {"hub.mode": "denied", "hub.reason": "forged"},
        {"hub.mode": "subscribe", "hub.challenge": "c", "hub.lease_seconds": "999999"},
        {"hub.mode": "unsubscribe", "hub.challenge": "c"},
    ):
        assert client.get(callback, query_string=topic | forged).status_code == 404
        assert stored() == before

    # Once we ask, the hub's answer is believed, once.
    with app.extensions["engine"].begin() as conn:
        conn.execute(
            update(push_subscriptions)
            .where(push_subscriptions.c.source_id == source_id)
            .values(pending="subscribe")
        )
    grant = topic | {"hub.mode": "subscribe", "hub.challenge": "c2", "hub.lease_seconds": "3600"}
    answer = client.get(callback, query_string=grant)
    assert answer.status_code == 200 and answer.text == "c2"
    assert stored()[0:2] == ("active", 3600) and stored()[3] is None
    replayed = topic | {"hub.mode": "subscribe", "hub.challenge": "c3", "hub.lease_seconds": "5"}
    assert client.get(callback, query_string=replayed).status_code == 404
    assert stored()[1] == 3600


def test_a_push_without_content_length_is_cut_off_at_the_limit(make_feed, make_aggregator, serve):
    feed = make_feed()
    app = make_aggregator(FETCH_MAX_BYTES=50_000)
    aggregator_url = serve(app).url
    source_id = follow(app, feed.feed_url)
    row = subscribed(app, source_id, feed.feed_url)

    def endless() -> Any:
        yield b'{"items": ['
        for _ in range(10_000):
            yield orjson.dumps({"padding": "x" * 100}) + b","

    answer = httpx.post(
        f"{aggregator_url}/websub/callback/{row.token}",
        content=endless(),  # a generator: sent chunked, with no Content-Length
        headers={"Content-Type": "application/json", "X-Hub-Signature": "sha256=00"},
    )
    assert answer.status_code == 413
    with app.extensions["engine"].connect() as conn:
        after = conn.execute(
            select(push_subscriptions.c.deliveries, push_subscriptions.c.ignored).where(
                push_subscriptions.c.source_id == source_id
            )
        ).one()
    assert tuple(after) == (0, 0)  # refused before anything was read as a delivery
