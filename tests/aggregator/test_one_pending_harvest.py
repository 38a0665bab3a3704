"""One pending harvest per source: pushes and ticks mark a source due, and never pile up jobs.

While a harvest is queued, asking again queues nothing (it has not read the feed yet); while
one runs, the source is harvested once more afterwards, since the change may have come after
the running harvest read the feed. On rq (real Redis, a real worker) and in-process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, Response, request
from rq import Queue
from rq.registry import FinishedJobRegistry

from aggregator.jobs import enqueue_due, enqueue_harvest, pending_harvest
from aggregator.settings import job_config
from federation.queue import queue_for, redis_for
from tests.aggregator.conftest import follow, live
from tests.aggregator.feedserver import FeedServer
from tests.aggregator.test_rq_worker import start_worker
from tests.factories import weekly_activity

DEADLINE = 60.0
PUSHES = 1_000


class HeldFeed(FeedServer):
    """A feed whose later pages (those asked for after a cursor) can be held back.

    While ``hold`` is clear, a harvest has read the feed's first page and waits for the next:
    it is running, and has read the feed before whatever changes now.
    """

    def __init__(self) -> None:
        super().__init__(page_size=1)
        self.hold = threading.Event()
        self.hold.set()
        self.held = threading.Event()  # set once a harvest waits at the hold

        @self.app.after_request
        def hold_later_pages(response: Response) -> Response:
            if "afterChangeNumber" in request.args and not self.hold.is_set():
                self.held.set()
                self.hold.wait(timeout=DEADLINE)
            return response

    def walk(self, name: str) -> None:
        self.put(weekly_activity(id=f"{self.base_url}/walks/1", name=name))


@pytest.fixture
def held_feed(serve) -> Iterator[HeldFeed]:
    feed = HeldFeed()
    feed.base_url = serve(feed.app).url
    yield feed
    feed.hold.set()  # let any harvest still waiting go before the server stops


def wait_for(condition: Callable[[], Any], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def queued_harvests(queue: Queue, source_id: int) -> int:
    """Harvest jobs of the source waiting in the queue (the app's hub queues jobs there too)."""
    return sum(job_id.startswith(f"harvest-{source_id}-") for job_id in queue.get_job_ids())


def held_harvest(feed: HeldFeed, source_id: int, config: dict[str, Any], name: str) -> Any:
    """Put the walk as ``name`` and start a harvest; its job, once it waits at the hold."""
    feed.walk(name)
    feed.hold.clear()
    running = enqueue_harvest(source_id, config)
    wait_for(feed.held.is_set, "the harvest to read the feed's first page")
    return running


def shown_name(app: Flask) -> str | None:
    items = live(app)
    return next(iter(items.values()))["data"]["name"] if items else None


@pytest.mark.redis
def test_a_burst_of_pushes_queues_one_job(held_feed, make_aggregator, redis_url, unique_name):
    app = make_aggregator(REDIS_URL=redis_url, RQ_QUEUE=unique_name)  # no worker runs
    source_id = follow(app, held_feed.feed_url)
    config = job_config(app)
    queue = queue_for(redis_url, unique_name)

    ids = {enqueue_harvest(source_id, config).id for _ in range(PUSHES)}
    assert len(ids) == 1
    assert queued_harvests(queue, source_id) == 1
    other = follow(app, f"{held_feed.base_url}/feed?other")  # another source has its own
    assert enqueue_harvest(other, config).id not in ids
    assert queued_harvests(queue, other) == 1


@pytest.fixture(params=["in-process", "rq"])
def aggregator_with_worker(request, make_aggregator, tmp_path) -> Iterator[Flask]:
    """An aggregator whose harvests run in its own process, or on ``localfeed-aggregator worker``."""
    if request.param == "in-process":
        yield make_aggregator(FETCH_TIMEOUT=DEADLINE)
        return
    redis_url, queue = request.getfixturevalue("redis_url"), request.getfixturevalue("unique_name")
    app = make_aggregator(REDIS_URL=redis_url, RQ_QUEUE=queue, FETCH_TIMEOUT=DEADLINE)
    log = tmp_path / "worker.log"
    worker = start_worker(app, log)
    yield app
    worker.terminate()
    worker.wait(timeout=30)


def test_a_push_after_the_running_harvest_read_the_feed_is_harvested_once_more(
    held_feed, aggregator_with_worker
):
    app = aggregator_with_worker
    source_id = follow(app, held_feed.feed_url)
    config = job_config(app)
    running = held_harvest(held_feed, source_id, config, "Walk, first version")

    held_feed.walk("Walk, changed after the harvest read the feed")
    pushed = enqueue_harvest(source_id, config)  # the push that comes with the change
    assert pushed is running or getattr(pushed, "id", None) == getattr(running, "id", "")  # none queued
    held_feed.hold.set()
    # The running harvest ends at the cursor it had read to; only a second one sees the change.
    wait_for(lambda: shown_name(app) == "Walk, changed after the harvest read the feed", "the change")


@pytest.mark.redis
def test_pushes_during_a_harvest_end_in_one_more_harvest_with_the_last_change(
    held_feed, make_aggregator, redis_url, unique_name, tmp_path
):
    # A harvest held at the feed for the whole burst must not give up on it first.
    app = make_aggregator(REDIS_URL=redis_url, RQ_QUEUE=unique_name, FETCH_TIMEOUT=DEADLINE)
    source_id = follow(app, held_feed.feed_url)
    config = job_config(app)
    queue = queue_for(redis_url, unique_name)
    worker = start_worker(app, tmp_path / "worker.log")
    try:
        running = held_harvest(held_feed, source_id, config, "Walk, version 0")
        for n in range(1, PUSHES + 1):
            if n % 100 == 0:
                held_feed.walk(f"Walk, version {n}")
            assert enqueue_harvest(source_id, config).id == running.id
            assert queued_harvests(queue, source_id) == 0  # nothing waits behind the running harvest
        held_feed.hold.set()
        wait_for(lambda: shown_name(app) == f"Walk, version {PUSHES}", "the last push's change")
        finished = FinishedJobRegistry(unique_name, connection=redis_for(redis_url))

        def harvests() -> list[str]:
            return [job_id for job_id in finished.get_job_ids() if job_id.startswith(f"harvest-{source_id}-")]

        wait_for(lambda: pending_harvest(source_id, config) is None, "no harvest pending")
        # rq files a job as finished just after the job itself has ended (and cleared its record).
        wait_for(lambda: len(harvests()) >= 2, "the second harvest to be filed as finished")
        assert len(harvests()) == 2  # the running harvest, and one more
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_the_schedule_does_not_ask_a_running_harvest_for_another(held_feed, make_aggregator):
    """A harvest records the source's next turn when it ends: a tick meanwhile adds nothing."""
    app = make_aggregator(FETCH_TIMEOUT=DEADLINE)
    source_id = follow(app, held_feed.feed_url)
    config = job_config(app)
    running = held_harvest(held_feed, source_id, config, "Walk")
    assert enqueue_due(config) == [source_id]  # due: it has never finished a harvest
    held_feed.hold.set()
    assert running.result(timeout=DEADLINE).status == "ok"
    assert pending_harvest(source_id, config) is None  # none queued after it
    assert enqueue_due(config) == []  # and the source's next turn is HARVEST_INTERVAL away
