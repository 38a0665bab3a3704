"""One pending harvest per source: a burst of 1,000 pushes never piles up harvest jobs (issue 17).

Each genuine delivery is content plus a hint to walk the feed; the hint must mark the
source due, not queue another job while one is queued or running. 1,000 deliveries,
signed with the subscription's own secret as the publisher's hub signs them, arrive
from a few threads at once while the rq queue is sampled.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from aggregator.harvest import engine_for
from aggregator.subscriptions import CALLBACK_PATH, push_subscriptions
from bench.faultnet import FEED_PATH, FaultNetwork
from federation.websub.signing import sign
from schema.rpde import encode_page

pytestmark = [pytest.mark.faults, pytest.mark.redis]

PUSHES = 1_000
SENDERS = 8


class HarvestJobs:
    """Counts the source's harvest jobs waiting on the rq queue and running on a worker, by sampling."""

    def __init__(self, network: FaultNetwork) -> None:
        connection = Redis.from_url(network.redis_url)
        self.queue = Queue(network.aggregator.queue, connection=connection)
        self.started = StartedJobRegistry(queue=self.queue)
        self.source_id = network.source_id
        self.most = Counter[str]()
        self.stop = threading.Event()

    def _ours(self, jobs: Sequence[Job | None]) -> int:
        return sum(
            1
            for job in jobs
            if job is not None
            and "harvest" in (job.func_name or "")
            and job.args
            and job.args[0] == self.source_id
        )

    def sample(self) -> None:
        queued = self._ours(self.queue.get_jobs())
        running = self._ours(Job.fetch_many(self.started.get_job_ids(), connection=self.queue.connection))
        for what, count in (("queued", queued), ("queued or running", queued + running)):
            self.most[what] = max(self.most[what], count)

    def watch(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.02)


def _subscription(network: FaultNetwork) -> tuple[str, str]:
    with engine_for(network.database_url).connect() as conn:
        row = conn.execute(
            select(push_subscriptions.c.token, push_subscriptions.c.secret).where(
                push_subscriptions.c.source_id == network.source_id
            )
        ).one()
    return row.token, row.secret


def test_a_burst_of_1000_pushes_keeps_at_most_one_pending_harvest_per_source(fault_network):
    network = fault_network().start()
    token, secret = _subscription(network)
    items = httpx.get(network.publisher.url + FEED_PATH).json()["items"]
    rng = random.Random(1000)
    bodies = [encode_page([rng.choice(items)], network.publisher.url + FEED_PATH) for _ in range(PUSHES)]
    callback = network.aggregator.url + CALLBACK_PATH + token
    jobs = HarvestJobs(network)
    watcher = threading.Thread(target=jobs.watch, daemon=True)
    answers = Counter[int]()

    client = httpx.Client(timeout=30)  # shared by the sender threads, as httpx allows

    def push(body: bytes) -> None:
        headers = {"Content-Type": "application/json", "X-Hub-Signature": sign(secret, body)}
        answers[client.post(callback, content=body, headers=headers).status_code] += 1

    watcher.start()
    try:
        with ThreadPoolExecutor(SENDERS) as senders:
            list(senders.map(push, bodies))
    finally:
        client.close()
        jobs.stop.set()
        watcher.join()
    jobs.sample()

    assert answers == {202: PUSHES}, f"the aggregator answered the deliveries with {dict(answers)}"
    # Pending means waiting in the queue: a follow-up queued as a running harvest ends is allowed.
    assert jobs.most["queued"] <= 1, (
        f"Up to {jobs.most['queued']} harvest jobs of one source were waiting in the queue at once during "
        f"{PUSHES} pushes; the issue asks for at most one pending per source."
    )
    assert jobs.most["queued or running"] >= 1, (
        "no harvest was asked for: pushes are hints to walk the feed too"
    )
