"""The hub's work run as rq jobs on the real Redis server."""

from __future__ import annotations

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry

from federation.fetch import GuardedClient
from federation.websub import jobs, subscribe_request

from . import websub_world
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
