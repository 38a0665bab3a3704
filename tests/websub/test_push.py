"""WebSub between a real publisher and a real aggregator over loopback HTTP.

The publisher's feed is refused (503) by a gate whenever a test must show that a change
arrived by push alone; the aggregator's callbacks fail on demand to show retries.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import func, select, update

from aggregator.auth import create_operator
from aggregator.settings import job_config
from aggregator.store import sources
from aggregator.subscriptions import push_subscriptions, renew_subscriptions, subscribe_source
from federation.fetch import GuardedClient
from federation.websub import discover, sign, subscribe_request
from publisher.hub import HUB_KEY
from publisher.store import outbox
from schema.rpde import encode_page
from tests.factories import weekly_activity, wire_item
from tests.shared.websub_world import Subscriber
from tests.websub.conftest import wait_for


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _created(world, name: str) -> dict:
    answer = world.api("POST", "/activities", json=weekly_activity(name=name))
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_edit_reaches_the_query_api_by_push_alone(make_world, database_url):
    world = make_world(publisher_config={"DATABASE_URL": database_url})
    subscription = world.subscription()
    assert subscription.hub_url == world.publisher_url + "/websub"
    assert subscription.topic == world.feed_url
    assert len(subscription.token) >= 40 and len(subscription.secret) >= 40
    world.publisher_gate.block_feed = True  # from here on, polling the feed gets 503
    before = len(world.publisher_gate.seen)

    created = _created(world, "Pushed Walk")
    slug, activity_id = created["slug"], created["activity"]["id"]
    assert wait_for(lambda: world.found("Pushed Walk"), what="the new activity in the query API")
    detail = world.http.get(world.aggregator_url + "/api/activities/" + activity_id.replace("/", "%2F"))
    assert detail.status_code == 200 and detail.json()["activity"]["id"] == activity_id

    changed = weekly_activity(name="Pushed Walk", description="Now starting at the bandstand.")
    assert world.api("PUT", f"/activities/{slug}", json=changed).status_code == 200
    wait_for(
        lambda: [
            a for a in world.found("Pushed Walk") if a["description"] == "Now starting at the bandstand."
        ],
        what="the edit in the query API",
    )
    assert world.api("DELETE", f"/activities/{slug}").status_code == 204
    wait_for(lambda: not world.found("Pushed Walk"), what="the deletion in the query API")
    # A delivery is counted just after its change is applied, so the query can show it first.
    wait_for(lambda: world.subscription().deliveries == 3, what="the third delivery to be counted")

    seen = world.publisher_gate.seen[before:]
    feed_polls = [status for method, path, status in seen if method == "GET" and path == "/feeds/activities"]
    assert set(feed_polls) <= {503}  # any follow-up harvest was refused: push did it all
    assert world.subscription().ignored == 0
    # The publisher's outbox is relayed; its subscriber list shows a healthy subscription.
    assert world.store.outbox_backlog() == 0
    (listed,) = world.publisher.extensions[HUB_KEY].hub.subscribers()
    assert listed["state"] == "active" and listed["signed"] and listed["last_delivery_status"] == 202


def test_unsigned_and_badly_signed_deliveries_change_nothing(make_world):
    world = make_world()
    row = world.subscription()
    callback = f"{world.aggregator_url}/websub/callback/{row.token}"
    forged = weekly_activity(id=world.publisher_url + "/activities/forged", name="Forged Walk")
    body = encode_page([wire_item(forged["id"], 999, forged)], world.feed_url)
    json = {"Content-Type": "application/json"}

    unsigned = world.http.post(callback, content=body, headers=json)
    wrong_key = world.http.post(
        callback, content=body, headers=json | {"X-Hub-Signature": sign("guess", body)}
    )
    # Signed for other bytes: the signature is checked on the raw body as received.
    tampered = world.http.post(
        callback, content=body + b" ", headers=json | {"X-Hub-Signature": sign(row.secret, body)}
    )
    assert {unsigned.status_code, wrong_key.status_code, tampered.status_code} == {202}
    assert world.found("Forged Walk") == []
    assert world.subscription().ignored == 3 and world.subscription().deliveries == 0

    genuine = world.http.post(
        callback, content=body, headers=json | {"X-Hub-Signature": sign(row.secret, body)}
    )
    assert genuine.status_code == 202
    assert world.found("Forged Walk")  # the same bytes, correctly signed, are applied

    # Only what we asked for is ever confirmed: the subscription is active and no request of
    # ours is pending, so even a check naming its own topic (with a new lease, or a denial)
    # is answered 404 and changes nothing.
    before = world.subscription()
    verify = {
        "hub.mode": "subscribe",
        "hub.topic": world.feed_url,
        "hub.challenge": "c1",
        "hub.lease_seconds": "600",
    }
    assert (
        world.http.get(f"{world.aggregator_url}/websub/callback/not-a-token", params=verify).status_code
        == 404
    )
    other_topic = verify | {"hub.topic": world.feed_url + ".atom"}
    assert world.http.get(callback, params=other_topic).status_code == 404
    assert world.http.get(callback, params=verify | {"hub.mode": "unsubscribe"}).status_code == 404
    unasked = world.http.get(callback, params=verify)
    assert unasked.status_code == 404 and "c1" not in unasked.text
    denied = {"hub.mode": "denied", "hub.topic": world.feed_url, "hub.reason": "unsubscribed by the test"}
    assert world.http.get(callback, params=denied).status_code == 404
    assert world.subscription() == before
    assert (before.state, before.pending) == ("active", None)
    assert (
        world.http.post(f"{world.aggregator_url}/websub/callback/not-a-token", content=body).status_code
        == 410
    )


def test_an_expired_lease_stops_deliveries(make_world):
    world = make_world(
        publisher_config={"HUB_LEASE_MIN_SECONDS": 1}, aggregator_config={"WEBSUB_LEASE_SECONDS": 1}
    )
    row = world.subscription()
    assert row.lease_seconds == 1
    hub = world.publisher.extensions[HUB_KEY].hub
    time.sleep(1.2)  # let the one-second lease run out

    _created(world, "Unseen Walk")
    wait_for(lambda: world.store.outbox_backlog() == 0, what="the outbox relay")
    with world.publisher.extensions[HUB_KEY].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(hub.deliveries)).scalar() == 0
        assert conn.execute(select(outbox.c.delivered_at)).scalar() is not None
    assert world.subscription().deliveries == 0
    assert world.found("Unseen Walk") == []


def test_a_subscriber_that_fails_receives_the_change_later(make_world):
    world = make_world(publisher_config={"HUB_RETRY_BASE_SECONDS": 0.2})
    world.publisher_gate.block_feed = True
    world.aggregator_gate.fail_callbacks = 2

    _created(world, "Retried Walk")
    wait_for(lambda: world.found("Retried Walk"), what="the retried delivery")
    callbacks = [
        s for m, p, s in world.aggregator_gate.seen if m == "POST" and p.startswith("/websub/callback/")
    ]
    assert callbacks == [500, 500, 0]
    hub = world.publisher.extensions[HUB_KEY].hub
    # The subscriber applies the change before the hub hears back and clears the failures.
    (listed,) = wait_for(lambda: [s for s in hub.subscribers() if s["failures"] == 0], what="the success")
    assert listed["state"] == "active"


def test_a_recreated_publisher_delivers_what_the_old_one_did_not(make_world, make_publisher_app, serve):
    world = make_world()
    world.publisher.extensions["publisher.hub_worker"].stop()
    world.publisher_server.stop()
    # A publisher on the same database with no worker takes the change but cannot push it,
    # as if it had crashed right after the commit.
    stalled = make_publisher_app(PUBLIC_URL=world.publisher_url, HUB_WORKER=False)
    answer = world.http.post(
        serve(stalled).url + "/api/activities",
        json=weekly_activity(name="Survivor Walk"),
        headers={"Authorization": f"Bearer {world.token}"},
    )
    assert answer.status_code == 201
    assert world.store.outbox_backlog() == 1 and world.found("Survivor Walk") == []

    # A new app on the same database, not even serving HTTP (so nothing can poll it), delivers.
    restarted = make_publisher_app(PUBLIC_URL=world.publisher_url)
    wait_for(lambda: world.found("Survivor Walk"), what="the change pushed by the restarted publisher")
    assert world.subscription().deliveries == 1
    restarted.extensions["publisher.hub_worker"].stop()


def test_the_aggregator_pushes_its_merged_feed_to_its_own_subscribers(make_world, serve, database_url):
    """A county aggregator following this one gets each merged change, signed, with provenance."""
    world = make_world(aggregator_config={"DATABASE_URL": database_url})
    topic = world.aggregator_url + "/feeds/activities"
    with GuardedClient(allow_private=True) as client:
        found = discover(client.get(topic))
        assert (found.hub, found.self_url) == (world.aggregator_url + "/websub", topic)
        atom = client.get(topic + ".atom")
        assert f'href="{world.aggregator_url}/websub"' in atom.text  # the in-document hub link
        follower = Subscriber()
        follower.wanted.add(("county", topic, "subscribe"))
        callback = serve(follower.app()).url + "/callback/county"
        assert subscribe_request(client, found.hub, topic, callback, secret="county-secret").status == 202
    wait_for(lambda: follower.verifications, what="the aggregator's hub to verify the follower")

    activity_id = _created(world, "Relayed Walk")["activity"]["id"]
    assert follower.delivered.wait(15), "the aggregator never pushed the merged change"
    (delivery,) = follower.deliveries
    assert delivery["headers"]["X-Hub-Signature"] == sign("county-secret", delivery["body"])
    assert f'<{topic}>; rel="self"' in delivery["headers"]["Link"]
    (item,) = orjson.loads(delivery["body"])["items"]
    assert item["id"] == activity_id and item["data"]["name"] == "Relayed Walk"
    assert item["localfeed:provenance"] == [
        {"source_url": world.feed_url, "item_id": activity_id, "via": [world.aggregator_url]}
    ]


def test_operators_see_subscribers_and_subscriptions(make_world):
    world = make_world()
    world.store.add_user("admin@example.org", "long enough password", "admin")
    publisher_admin = world.publisher.test_client()
    token = _csrf(publisher_admin.get("/admin/login").text)
    form = {"email": "admin@example.org", "password": "long enough password", "csrf_token": token}
    assert publisher_admin.post("/admin/login", data=form).status_code == 302
    page = publisher_admin.get("/admin/subscribers")
    assert page.status_code == 200
    assert world.feed_url in page.text and "active" in page.text and world.aggregator_url in page.text
    assert world.publisher.test_client().get("/admin/subscribers").status_code == 302  # log in first

    create_operator(world.aggregator.extensions["engine"], "ops@council.example", "correct horse battery")
    operator = world.aggregator.test_client()
    token = _csrf(operator.get("/operator/login").text)
    form = {"email": "ops@council.example", "password": "correct horse battery", "csrf_token": token}
    assert operator.post("/operator/login", data=form).status_code == 302
    page = operator.get("/operator/subscriptions")
    assert page.status_code == 200
    assert world.publisher_url + "/websub" in page.text and "active" in page.text
    assert world.subscription().token not in page.text  # the capability URL stays secret


def test_approving_a_source_subscribes_to_its_hub(make_world):
    world = make_world(subscribe=False)
    engine = world.aggregator.extensions["engine"]
    with engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == world.source_id).values(state="pending"))
    create_operator(engine, "ops@council.example", "correct horse battery")
    operator = world.aggregator.test_client()
    token = _csrf(operator.get("/operator/login").text)
    form = {"email": "ops@council.example", "password": "correct horse battery", "csrf_token": token}
    assert operator.post("/operator/login", data=form).status_code == 302
    token = _csrf(operator.get("/operator/sources").text)
    approved = operator.post(f"/operator/sources/{world.source_id}/approve", data={"csrf_token": token})
    assert approved.status_code == 302
    wait_for(lambda: world.subscription() and world.subscription().state == "active", what="the subscription")
    assert world.subscription().topic == world.feed_url


def test_with_redis_the_publisher_pushes_through_rq_jobs(make_world, redis_url, unique_name):
    from redis import Redis
    from rq import Queue, SimpleWorker

    world = make_world(publisher_config={"REDIS_URL": redis_url, "HUB_QUEUE": unique_name}, subscribe=False)
    assert "publisher.hub_worker" not in world.publisher.extensions  # rq does the work, not a thread
    connection = Redis.from_url(redis_url)
    queue = Queue(unique_name, connection=connection)
    try:
        assert (
            subscribe_source(world.source_id, job_config(world.aggregator), world.aggregator_url)
            == "requested"
        )
        assert queue.count == 1 and world.subscription().state == "requested"
        SimpleWorker([queue], connection=connection).work(burst=True)
        assert world.subscription().state == "active"

        _created(world, "Queued Walk")
        assert world.found("Queued Walk") == [] and queue.count == 1  # nothing moves until a worker runs
        SimpleWorker([queue], connection=connection).work(burst=True)
        assert world.found("Queued Walk") and world.store.outbox_backlog() == 0
    finally:
        queue.delete(delete_jobs=True)


def test_leases_are_renewed_before_they_end_and_unapproved_sources_unsubscribed(make_world):
    world = make_world()
    first = world.subscription()
    hub = world.publisher.extensions[HUB_KEY].hub
    config = job_config(world.aggregator)
    assert first.lease_seconds == 10 * 86_400  # the hub's default, as none was asked for
    assert renew_subscriptions(config) == []  # ten days left: not due yet

    # Nine days and 23 hours later, on both sides: the lease ends within the hour.
    soon = datetime.now(UTC) + timedelta(minutes=59)
    aggregator_engine = world.aggregator.extensions["engine"]
    with aggregator_engine.begin() as conn:
        conn.execute(update(push_subscriptions).values(expires_at=soon))
    with world.store.engine.begin() as conn:
        conn.execute(update(hub.subscriptions).values(expires_at=soon))
    assert renew_subscriptions(config) == [world.source_id]
    wait_for(lambda: world.subscription().verified_at != first.verified_at, what="the renewal's verification")
    renewed = world.subscription()
    assert (renewed.token, renewed.secret, renewed.state) == (first.token, first.secret, "active")
    # The subscriber records the renewal as it answers the hub's check; the hub, just after.
    extended = datetime.now(UTC) + timedelta(days=9)
    wait_for(
        lambda: [listed["expires_at"] > extended for listed in hub.subscribers()] == [True],
        what="the hub to extend the lease",
    )

    with aggregator_engine.begin() as conn:
        conn.execute(update(sources).where(sources.c.id == world.source_id).values(state="paused"))
    renew_subscriptions(config)
    wait_for(lambda: world.subscription().state == "ended", what="the hub to confirm the unsubscription")
    # The subscriber records the end as it answers the hub's check; the hub drops it just after.
    wait_for(lambda: hub.subscribers() == [], what="the hub to drop the subscription")


def test_with_redis_the_aggregator_delivers_through_rq_jobs(make_world, serve, redis_url, unique_name):
    from redis import Redis
    from rq import Queue, SimpleWorker

    world = make_world(aggregator_config={"REDIS_URL": redis_url, "RQ_QUEUE": unique_name})
    connection = Redis.from_url(redis_url)
    queue = Queue(unique_name, connection=connection)

    def run_jobs() -> None:
        SimpleWorker([queue], connection=connection).work(burst=True)

    try:
        topic = world.aggregator_url + "/feeds/activities"
        follower = Subscriber()
        follower.wanted.add(("county", topic, "subscribe"))
        callback = serve(follower.app()).url + "/callback/county"
        with GuardedClient(allow_private=True) as client:
            assert subscribe_request(client, world.aggregator_url + "/websub", topic, callback).status == 202
        assert follower.verifications == [] and queue.count == 1  # verification waits for a worker
        run_jobs()
        assert len(follower.verifications) == 1

        _created(world, "County Walk")
        wait_for(lambda: run_jobs() or follower.deliveries, what="the aggregator's rq delivery")
        (item,) = orjson.loads(follower.deliveries[0]["body"])["items"]
        assert item["data"]["name"] == "County Walk"
    finally:
        queue.delete(delete_jobs=True)
