"""The WebSub hub over real HTTP on loopback: each MUST of the Recommendation it implements."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import MetaData, create_engine, select

from federation.fetch import GuardedClient
from federation.websub import HubWorker, subscribe_request, verify_delivery
from federation.websub.hub import LeasePolicy, RetryPolicy, define_tables

from .websub_world import HUB_URL, OTHER_TOPIC, TOPIC, Clock, Subscriber, make_hub, topic_owner

DAY = 86_400


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client():
    with GuardedClient(allow_private=True) as client:
        yield client


@pytest.fixture
def world(serve, tmp_path, clock, client):
    """A hub on SQLite served on loopback and a subscriber app; tests that need PostgreSQL build their own."""
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock)
    yield World(hub, engine, serve(topic_owner(hub)).url, Subscriber(), serve, client)
    hub.close()
    engine.dispose()


@pytest.fixture
def world_on_both(serve, database_url, clock, client):
    """Like ``world``, once on SQLite and once on PostgreSQL."""
    hub, engine = make_hub(database_url, clock)
    yield World(hub, engine, serve(topic_owner(hub)).url, Subscriber(), serve, client)
    hub.close()
    engine.dispose()


class World:
    def __init__(self, hub, engine, hub_base, subscriber, serve, client):
        self.hub, self.engine, self.subscriber, self.client = hub, engine, subscriber, client
        self.hub_endpoint = f"{hub_base}/websub"
        self.subscriber_base = serve(subscriber.app()).url

    def callback(self, token: str) -> str:
        return f"{self.subscriber_base}/callback/{token}"

    def subscribe(self, token: str, topic: str = TOPIC, mode: str = "subscribe", **options):
        self.subscriber.wanted.add((token, topic, mode))
        return subscribe_request(
            self.client, self.hub_endpoint, topic, self.callback(token), mode=mode, **options
        )

    def post_form(self, form: dict[str, str]):
        body = urlencode(form).encode()
        return self.client.post(
            self.hub_endpoint, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )

    def subscription(self, token: str, topic: str = TOPIC):
        s = self.hub.subscriptions
        with self.engine.connect() as conn:
            return (
                conn.execute(select(s).where(s.c.topic == topic, s.c.callback == self.callback(token)))
                .mappings()
                .first()
            )

    def publish(self, body: bytes, topic: str = TOPIC, content_type: str = "application/json") -> int:
        with self.engine.begin() as conn:
            return self.hub.publish(conn, topic, body, content_type)


def test_subscription_is_accepted_then_verified_with_a_fresh_challenge(world, clock):
    answer = world.subscribe("a1", secret="s3cret", lease_seconds=2 * DAY)
    assert answer.status == 202
    # Verification is asynchronous: nothing is active, and nothing was asked, yet.
    assert world.subscription("a1")["state"] == "pending"
    assert world.subscriber.verifications == []
    assert world.publish(b"{}") == 0

    assert world.hub.run_pending() == 1
    [asked] = world.subscriber.verifications
    assert asked["hub.mode"] == "subscribe" and asked["hub.topic"] == TOPIC
    assert asked["hub.lease_seconds"] == str(2 * DAY)
    assert len(asked["hub.challenge"]) >= 32
    active = world.subscription("a1")
    assert active["state"] == "active" and active["secret"] == "s3cret"
    assert (active["expires_at"] - clock.now).total_seconds() == 2 * DAY
    assert world.hub.run_pending() == 0  # each request is verified once

    # Renewal re-verifies with a new challenge and extends the lease from the new verification.
    clock.advance(days=1)
    assert world.subscribe("a1", secret="s3cret", lease_seconds=2 * DAY).status == 202
    world.hub.run_pending()
    first, second = world.subscriber.verifications
    assert first["hub.challenge"] != second["hub.challenge"]
    assert (world.subscription("a1")["expires_at"] - clock.now).total_seconds() == 2 * DAY


def test_callback_query_string_is_preserved_and_unknown_parameters_ignored(world):
    world.subscriber.wanted.add(("q1", TOPIC, "subscribe"))
    answer = world.post_form(
        {
            "hub.mode": "subscribe",
            "hub.topic": TOPIC,
            "hub.callback": world.callback("q1") + "?list=7",
            "hub.verify": "sync",
            "hub.future_extension": "yes",
            "utm_source": "x",
        }
    )
    assert answer.status == 202
    world.hub.run_pending()
    [asked] = world.subscriber.verifications
    assert asked["list"] == "7" and asked["hub.mode"] == "subscribe"
    assert world.subscription("q1", TOPIC) is None  # the callback's own URL includes the query
    s = world.hub.subscriptions
    with world.engine.connect() as conn:
        assert conn.execute(select(s.c.state).where(s.c.callback.endswith("?list=7"))).scalar() == "active"


def test_a_wrong_echo_or_a_refusal_subscribes_nobody(world):
    world.subscriber.verify_answer = "wrong"
    world.subscribe("w1")
    world.hub.run_pending()
    assert world.subscription("w1") is None
    intents = world.hub.intents
    with world.engine.connect() as conn:
        failure = conn.execute(select(intents.c.state, intents.c.last_error)).one()
    assert failure.state == "failed" and "hub.challenge" in failure.last_error

    world.subscriber.verify_answer = "echo"
    world.subscriber.wanted.clear()  # the subscriber never asked: it answers 404
    world.post_form({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": world.callback("w2")})
    world.hub.run_pending()
    assert world.subscription("w2") is None
    assert world.publish(b"{}") == 0


def test_resubscribing_replaces_the_state_only_once_verified(world_on_both):
    world = world_on_both
    world.subscribe("r1", secret="old-secret", lease_seconds=3 * DAY)
    world.hub.run_pending()
    before = world.subscription("r1")

    world.subscribe("r1", secret="new-secret", lease_seconds=5 * DAY)
    assert world.subscription("r1")["secret"] == "old-secret"  # accepted, not yet verified
    world.subscriber.verify_answer = "refuse"
    world.hub.run_pending()
    assert world.subscription("r1") == before  # verification failed: state unchanged

    world.subscriber.verify_answer = "echo"
    world.subscribe("r1", secret="new-secret", lease_seconds=5 * DAY)
    world.hub.run_pending()
    after = world.subscription("r1")
    assert after["id"] == before["id"]
    assert (after["secret"], after["lease_seconds"]) == ("new-secret", 5 * DAY)


def test_request_errors_are_refused_with_a_reason(world):
    base = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": world.callback("e1")}
    unknown_topic = world.post_form(base | {"hub.topic": "http://elsewhere.test/feed"})
    assert unknown_topic.status == 404
    assert "does not publish http://elsewhere.test/feed" in unknown_topic.text and TOPIC in unknown_topic.text

    too_long = world.post_form(base | {"hub.secret": "x" * 200})
    assert too_long.status == 400 and "under 200 bytes" in too_long.text
    # Bytes, not characters: 100 two-byte characters are 200 bytes.
    assert world.post_form(base | {"hub.secret": "é" * 100}).status == 400
    assert world.post_form(base | {"hub.secret": "x" * 199}).status == 202

    assert world.post_form(base | {"hub.mode": "publish"}).status == 400
    assert world.post_form(base | {"hub.callback": "ftp://x.test/cb"}).status == 400
    assert world.post_form(base | {"hub.lease_seconds": "ten days"}).status == 400
    as_json = world.client.post(world.hub_endpoint, b"{}", {"Content-Type": "application/json"})
    assert as_json.status == 415 and "x-www-form-urlencoded" in as_json.text
    missing = world.post_form({"hub.mode": "subscribe", "hub.topic": TOPIC})
    assert missing.status == 400 and "hub.callback is missing" in missing.text


@pytest.mark.parametrize(
    ("requested", "granted"),
    [(None, 10 * DAY), (60, 3600), (2 * DAY, 2 * DAY), (10**9, 30 * DAY)],
)
def test_lease_is_honoured_within_bounds(world, requested, granted):
    world.subscribe("l1", lease_seconds=requested)
    world.hub.run_pending()
    [asked] = world.subscriber.verifications
    assert asked["hub.lease_seconds"] == str(granted)
    assert world.subscription("l1")["lease_seconds"] == granted


def test_lease_bounds_are_configurable(serve, tmp_path, clock, client):
    hub, engine = make_hub(
        f"sqlite:///{tmp_path / 'hub.sqlite'}",
        clock,
        lease=LeasePolicy(default=7200, minimum=600, maximum=9000),
    )
    world = World(hub, engine, serve(topic_owner(hub)).url, Subscriber(), serve, client)
    world.subscribe("c1")
    world.subscribe("c2", lease_seconds=100_000)
    hub.run_pending()
    assert [v["hub.lease_seconds"] for v in world.subscriber.verifications] == ["7200", "9000"]


def test_unsubscribe_is_verified_the_same_way(world):
    world.subscribe("u1")
    world.hub.run_pending()
    answer = world.subscribe("u1", mode="unsubscribe")
    assert answer.status == 202
    assert world.publish(b"still subscribed") == 1  # not removed until verified
    world.hub.run_pending()
    unsubscribing = world.subscriber.verifications[-1]
    assert unsubscribing["hub.mode"] == "unsubscribe" and "hub.challenge" in unsubscribing
    assert world.subscription("u1") is None
    assert world.hub.deliver_due() == 0  # its queued delivery went with it
    assert world.subscriber.deliveries == []


def test_fat_ping_carries_the_body_topic_type_links_and_signature(serve, database_url, clock, client):
    hub, engine = make_hub(database_url, clock)
    world = World(hub, engine, serve(topic_owner(hub)).url, Subscriber(), serve, client)
    world.subscribe("f1", secret="shared-secret")
    world.subscribe("f2")  # no secret: no signature
    world.subscribe("f3", topic=OTHER_TOPIC, secret="other")
    hub.run_pending()

    body = b'{"items":[{"state":"updated","kind":"SessionSeries","id":"x","modified":7}],"next":"n"}'
    with engine.begin() as conn:
        assert hub.publish(conn, TOPIC, body, "application/vnd.openactive.rpde+json; charset=utf-8") == 2
    with engine.connect() as conn, conn.begin():  # a rolled-back change pushes nothing
        hub.publish(conn, TOPIC, b"never", "application/json")
        conn.rollback()
    assert hub.deliver_due() == 2

    by_token = {d["token"]: d for d in world.subscriber.deliveries}
    assert set(by_token) == {"f1", "f2"}
    signed, unsigned = by_token["f1"], by_token["f2"]
    assert signed["body"] == body == unsigned["body"]
    assert signed["headers"]["Content-Type"] == "application/vnd.openactive.rpde+json; charset=utf-8"
    assert signed["headers"]["Link"] == f'<{HUB_URL}>; rel="hub", <{TOPIC}>; rel="self"'
    assert signed["headers"]["X-Hub-Signature"].startswith("sha256=")
    assert verify_delivery("shared-secret", body, signed["headers"])
    assert not verify_delivery("shared-secret", body + b" ", signed["headers"])
    assert "X-Hub-Signature" not in unsigned["headers"]
    assert hub.subscribers()[0]["last_delivery_status"] == 204
    assert hub.deliver_due() == 0  # delivered once


def test_a_failing_subscriber_gets_the_delivery_later_and_keeps_its_subscription(world_on_both, clock):
    world = world_on_both
    world.subscribe("b1")
    world.hub.run_pending()
    world.subscriber.delivery_statuses = [500, 503]
    world.publish(b"change 1")

    assert world.hub.deliver_due() == 1
    assert world.hub.deliver_due() == 0  # backing off, not hammering
    listed = world.subscription("b1")
    assert (listed["state"], listed["failures"], listed["last_delivery_status"]) == ("active", 1, 500)

    clock.advance(seconds=RetryPolicy().base)  # the first retry waits half to all of the base
    assert world.hub.deliver_due() == 1  # 503 this time
    clock.advance(seconds=2 * RetryPolicy().base)
    assert world.hub.deliver_due() == 1
    statuses = [d["body"] for d in world.subscriber.deliveries]
    assert statuses == [b"change 1"] * 3
    assert world.subscription("b1")["failures"] == 0
    d = world.hub.deliveries
    with world.engine.connect() as conn:
        assert conn.execute(select(d.c.state, d.c.attempts)).one() == ("delivered", 3)


def test_giving_up_on_a_notification_keeps_the_subscription(serve, tmp_path, clock, client):
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock, retry=RetryPolicy(max_attempts=2))
    world = World(hub, engine, serve(topic_owner(hub)).url, Subscriber(), serve, client)
    world.subscribe("g1")
    hub.run_pending()
    world.subscriber.delivery_statuses = [500, 500]
    world.publish(b"lost")
    hub.deliver_due()
    clock.advance(hours=1)
    hub.deliver_due()
    clock.advance(hours=1)
    assert hub.deliver_due() == 0
    assert world.subscription("g1")["state"] == "active"
    world.publish(b"next")  # the next change is tried again (§7)
    hub.deliver_due()
    assert world.subscriber.deliveries[-1]["body"] == b"next"


def test_410_gone_ends_the_subscription(world):
    world.subscribe("g410")
    world.hub.run_pending()
    world.subscriber.delivery_statuses = [410]
    world.publish(b"one")
    world.hub.deliver_due()
    assert world.subscription("g410") is None
    assert world.publish(b"two") == 0


def test_an_expired_lease_stops_deliveries(world, clock):
    world.subscribe("x1", lease_seconds=3600)
    world.hub.run_pending()
    world.publish(b"queued before expiry")
    clock.advance(seconds=3601)
    assert world.hub.deliver_due() == 1
    assert world.subscriber.deliveries == []
    d = world.hub.deliveries
    with world.engine.connect() as conn:
        assert conn.execute(select(d.c.state)).scalar() == "expired"
    assert world.publish(b"after expiry") == 0


def test_a_restarted_hub_delivers_what_was_queued(serve, database_url, clock, client):
    hub, engine = make_hub(database_url, clock)
    world = World(hub, engine, serve(topic_owner(hub)).url, Subscriber(), serve, client)
    world.subscribe("p1", secret="k")
    hub.run_pending()
    world.publish(b"written just before the crash")
    hub.close()
    engine.dispose()

    # A new process: new metadata, new engine, new hub, same database.
    restarted, _ = make_hub(database_url, clock)
    assert restarted.deliver_due() == 1
    [received] = world.subscriber.deliveries
    assert received["body"] == b"written just before the crash"
    assert verify_delivery("k", received["body"], received["headers"])
    restarted.close()


def test_the_worker_thread_delivers_when_woken(world):
    worker = HubWorker(world.hub, interval=30.0).start()  # only a wake can make it act in time
    try:
        world.subscribe("t1")  # the blueprint wakes the worker to verify
        for _ in range(100):
            if world.subscription("t1")["state"] == "active":
                break
            time.sleep(0.05)
        world.publish(b"pushed")
        world.hub.wake()
        assert world.subscriber.delivered.wait(10), "the worker did not deliver after wake()"
    finally:
        worker.stop()
    assert world.subscriber.deliveries[0]["body"] == b"pushed"


def test_tables_can_share_one_metadata_with_an_app():
    metadata = MetaData()
    clock = Clock()
    from federation.websub import Hub

    first = Hub(metadata, engine=lambda: None, topics=set, hub_url=HUB_URL, client=GuardedClient, now=clock)
    second = Hub(metadata, engine=lambda: None, topics=set, hub_url=HUB_URL, client=GuardedClient, now=clock)
    assert first.subscriptions is second.subscriptions
    assert {"websub_subscriptions", "websub_intents", "websub_deliveries"} <= set(metadata.tables)


def test_hubs_built_in_parallel_threads_share_whole_tables():
    """Hubs built in threads at once, each with its own database, define their tables on one
    metadata and create them; none may see another's table half made (a few rounds in a
    hundred did before the lock)."""
    failures: list[BaseException] = []

    def build(metadata: MetaData, start: threading.Barrier) -> None:
        try:
            start.wait()
            define_tables(metadata)
            metadata.create_all(create_engine("sqlite://"))
        except Exception as error:
            failures.append(error)

    for _ in range(150):
        metadata, start = MetaData(), threading.Barrier(6)
        threads = [threading.Thread(target=build, args=(metadata, start)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not failures, f"{len(failures)} builds failed, first: {failures[0]!r}"


def test_redirecting_callbacks_fail_verification_and_delivery(world):
    moved = f"{world.subscriber_base}/moved/m1"
    world.subscriber.wanted.add(("m1", TOPIC, "subscribe"))
    assert world.post_form({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": moved}).status == 202
    world.hub.run_pending()
    assert world.subscriber.verifications == []  # the redirect was not followed
    intents = world.hub.intents
    with world.engine.connect() as conn:
        assert "HTTP 307" in conn.execute(select(intents.c.last_error)).scalar()

    world.subscribe("m2")  # verified on its real callback, then it starts redirecting deliveries
    world.hub.run_pending()
    s = world.hub.subscriptions
    with world.engine.begin() as conn:
        conn.execute(s.update().where(s.c.callback == world.callback("m2")).values(callback=moved))
    world.publish(b"x")
    world.hub.deliver_due()
    assert world.subscriber.deliveries == []
    assert world.hub.subscribers()[0]["last_delivery_status"] == 307


def test_finished_rows_are_pruned_after_a_week(world, clock):
    world.subscribe("k1")
    world.hub.run_pending()
    world.publish(b"x")
    world.hub.deliver_due()
    assert world.hub.prune() == 0  # recent: kept for the operator to see
    clock.advance(days=8)
    assert world.publish(b"y") == 1  # queued, pending: never pruned
    assert world.hub.prune() == 2  # one delivery, one verification
    assert world.subscription("k1")["state"] == "active"


def test_lease_bounds_must_be_consistent():
    with pytest.raises(ValueError, match="minimum <= default <= maximum"):
        LeasePolicy(default=60, minimum=3600)
