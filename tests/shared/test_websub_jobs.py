"""The hub's work run as rq jobs on the real Redis server."""

from __future__ import annotations

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from federation.fetch import GuardedClient
from federation.websub import jobs, subscribe_request

from . import websub_world
from .conftest import PUBLIC_HOST
from .websub_world import TOPIC, Clock, Subscriber, make_hub, topic_owner

FACTORY = "tests.shared.websub_world:current_hub"
SETTINGS: dict[str, str] = {}  # what an app's factory builds its hub from; this one needs none


@pytest.mark.redis
def test_rq_jobs_verify_deliver_and_schedule_their_own_retry(serve, tmp_path, redis_url, unique_name):
    clock = Clock()
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock)
    websub_world.current["hub"] = hub
    redis = Redis.from_url(redis_url)
    queue = Queue(unique_name, connection=redis)
    hub.on_wake(lambda: queue.enqueue(jobs.run_due, FACTORY, SETTINGS))
    subscriber = Subscriber(delivery_statuses=[500])
    callback = f"{serve(subscriber.app()).url}/callback/j1"
    subscriber.wanted.add(("j1", TOPIC, "subscribe"))
    try:
        with GuardedClient(allow_private=True) as client:
            answer = subscribe_request(client, f"{serve(topic_owner(hub)).url}/websub", TOPIC, callback)
        assert answer.status == 202 and len(queue) == 1  # the request woke the hub: one job queued
        SimpleWorker([queue], connection=redis).work(burst=True)
        assert len(subscriber.verifications) == 1

        with engine.begin() as conn:
            hub.publish(conn, TOPIC, b"pushed", "application/json")
        hub.wake()
        SimpleWorker([queue], connection=redis).work(burst=True)
        assert [d["body"] for d in subscriber.deliveries] == [b"pushed"]  # answered 500

        retry_at = hub.next_due()
        assert retry_at is not None and retry_at > clock.now
        scheduled = ScheduledJobRegistry(queue=queue)
        [job_id] = scheduled.get_job_ids()
        assert scheduled.get_scheduled_time(job_id).timestamp() == int(retry_at.timestamp())

        clock.now = retry_at
        queue.enqueue(jobs.run_due, FACTORY, SETTINGS)
        SimpleWorker([queue], connection=redis).work(burst=True)
        assert [d["body"] for d in subscriber.deliveries] == [b"pushed", b"pushed"]
        assert hub.next_due() is None
    finally:
        websub_world.current.clear()
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)
        queue.delete(delete_jobs=True)
        hub.close()


def test_a_factory_name_must_say_module_and_function():
    with pytest.raises(ValueError, match=r"package\.module:function"):
        jobs.hub_from("tests.shared.websub_world.current_hub", SETTINGS)


@pytest.fixture
def strict_hub(tmp_path, public_policy):
    """A hub whose guard admits only 127.0.0.2 (standing in for the internet), run by ``run_due``."""
    clock = Clock()
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock, policy=public_policy)
    websub_world.current["hub"] = hub
    yield hub, engine
    websub_world.current.clear()
    hub.close()
    engine.dispose()


def test_a_callback_the_guard_refuses_fails_verification_at_once(strict_hub, serve):
    hub, engine = strict_hub
    subscriber = Subscriber()
    callback = f"{serve(subscriber.app()).url}/callback/r1"  # on 127.0.0.1: the operator's own machine
    subscriber.wanted.add(("r1", TOPIC, "subscribe"))
    hub.accept_request({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callback})

    assert jobs.run_due(FACTORY, SETTINGS) == 1
    assert subscriber.verifications == []
    i = hub.intents
    with engine.connect() as conn:
        state, attempts, error = conn.execute(select(i.c.state, i.c.attempts, i.c.last_error)).one()
    assert (state, attempts) == ("failed", 1)  # not retried: the guard would refuse it again
    assert "127.0.0.1" in error and "loopback" in error
    assert hub.next_due() is None
    assert hub.subscribers() == []  # the never-verified listing is gone


def test_a_delivery_the_guard_refuses_fails_at_once_with_the_reason(strict_hub, serve):
    hub, engine = strict_hub
    subscriber = Subscriber()
    public = serve(subscriber.app(), host=PUBLIC_HOST)
    subscriber.wanted.add(("r2", TOPIC, "subscribe"))
    callback = f"{public.url}/callback/r2"
    hub.accept_request({"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": callback})
    jobs.run_due(FACTORY, SETTINGS)
    assert hub.subscribers()[0]["state"] == "active"  # verified where the guard allows
    s, d = hub.subscriptions, hub.deliveries
    # The subscriber's name now resolves somewhere the guard refuses: a 6to4 address
    # that carries 127.0.0.1.
    refused_callback = f"http://[2002:7f00:1::]:{public.port}/callback/r2"
    with engine.begin() as conn:
        conn.execute(s.update().values(callback=refused_callback))
        assert hub.publish(conn, TOPIC, b"pushed", "application/json") == 1

    assert jobs.run_due(FACTORY, SETTINGS) == 1
    assert subscriber.deliveries == []
    with engine.connect() as conn:
        state, attempts, error = conn.execute(select(d.c.state, d.c.attempts, d.c.last_error)).one()
        listed = conn.execute(select(s.c.state, s.c.last_delivery_error, s.c.failures)).one()
    assert (state, attempts) == ("failed", 1)
    assert "6to4" in error and "127.0.0.1" in error
    assert listed == ("active", error, 1)  # the subscription stays (§7) and shows why
    assert hub.next_due() is None  # no retry scheduled
