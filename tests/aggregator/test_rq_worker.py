"""Harvests on a real rq worker (real Redis): killing it mid-harvest loses and repeats nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aggregator.jobs import enqueue_harvest
from aggregator.settings import job_config
from aggregator.store import copies
from tests.aggregator.conftest import follow, live, source_row
from tests.factories import weekly_activity

RQ = str(Path(sys.executable).with_name("rq"))
DEADLINE = 60.0


def _worker(queue: str, redis_url: str, log: Path, *extra: str) -> subprocess.Popen:
    """``rq worker`` as an operator runs it.

    SimpleWorker runs each job in the worker's own process, so killing the worker kills the job.
    """
    with log.open("ab") as output:
        return subprocess.Popen(
            [RQ, "worker", queue, "--url", redis_url, "--worker-class", "rq.SimpleWorker", *extra],
            cwd=Path(__file__).resolve().parents[2],
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _wait_for(condition, what: str, log: Path):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}; the worker said:\n{log.read_text()[-3000:]}")


def _copy_count(app) -> int:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(func.count()).select_from(copies)).scalar_one()


@pytest.mark.redis
def test_killing_the_worker_mid_harvest_ends_with_exactly_the_feed(
    make_feed, make_aggregator, redis_url, unique_name, tmp_path
):
    log = tmp_path / "worker.log"
    feed = make_feed(page_size=2)
    for n in range(20):
        feed.put(weekly_activity(id=f"https://walkers.example/{n}", name=f"Walk {n}"))
    feed.page_delay = 0.2
    # A short lease, so that the killed worker's hold on the source runs out quickly.
    app = make_aggregator(REDIS_URL=redis_url, RQ_QUEUE=unique_name, HARVEST_LEASE=2)
    source_id = follow(app, feed.feed_url)
    config = job_config(app)

    worker = _worker(unique_name, redis_url, log)
    try:
        enqueue_harvest(source_id, config)
        _wait_for(lambda: 4 <= _copy_count(app) < 20, "a few pages to be applied", log)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    partial = _copy_count(app)
    assert partial < 20
    assert source_row(app, source_id).cursor is not None

    # While no worker runs, the publisher changes things.
    feed.page_delay = 0
    feed.delete("https://walkers.example/0")
    feed.put(weekly_activity(id="https://walkers.example/5", name="Walk five, renamed"))
    feed.put(weekly_activity(id="https://walkers.example/new", name="A new walk"))

    def finished() -> bool:
        job = enqueue_harvest(source_id, config)
        burst = _worker(unique_name, redis_url, log, "--burst")
        burst.wait(timeout=DEADLINE)
        job.refresh()
        return job.get_status() == "finished" and job.return_value().status == "ok"

    _wait_for(finished, "a harvest that is not locked out by the killed one", log)
    shown = {item_id: row["data"] for item_id, row in live(app).items()}
    assert shown == feed.current()
    assert _copy_count(app) == len(feed.current())
