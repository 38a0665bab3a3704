"""Harvests on a real worker (``localfeed-aggregator worker``, real Redis) killed with ``kill -9``.

Killing it mid-harvest loses and repeats nothing; a worker restarted under its fixed name
starts, fails the job its earlier self abandoned, and the source is harvested again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select

from aggregator.jobs import enqueue_harvest
from aggregator.settings import job_config
from aggregator.store import copies
from tests.aggregator.conftest import follow, live, source_row
from tests.aggregator.feedserver import FeedServer
from tests.factories import weekly_activity

AGGREGATOR = str(Path(sys.executable).with_name("localfeed-aggregator"))
DEADLINE = 60.0


def start_worker(app: Flask, log: Path, *extra: str) -> subprocess.Popen:
    """``localfeed-aggregator worker`` as an operator runs it, on ``app``'s database, Redis and queue.

    ``--in-process`` runs each job in the worker's own process, so killing the worker kills the job.
    """
    env = {
        **os.environ,
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "RQ_QUEUE": app.config["RQ_QUEUE"],
        "SECRET_KEY": "test",
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [AGGREGATOR, "worker", "--in-process", "--without-scheduler", *extra],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
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


def _pending_job(app: Flask, source_id: int) -> Job:
    """The source's one pending harvest job (asking for a harvest queues none while it is there)."""
    return enqueue_harvest(source_id, job_config(app))


@pytest.fixture
def slow_source(make_feed, make_aggregator, redis_url, unique_name) -> tuple[FeedServer, Flask, int]:
    """(feed, app, source id): 20 walks on slow pages of 2, followed by an aggregator on Redis.

    The aggregator keeps the default lease (a minute): a dead job's lease is given back, not waited out.
    """
    feed = make_feed(page_size=2)
    for n in range(20):  # ids on the feed's own origin: the source is the authority for them
        feed.put(weekly_activity(id=f"{feed.base_url}/walks/{n}", name=f"Walk {n}"))
    feed.page_delay = 0.2
    app = make_aggregator(REDIS_URL=redis_url, RQ_QUEUE=unique_name)
    return feed, app, follow(app, feed.feed_url)


def _edit_while_no_worker_runs(feed: FeedServer) -> None:
    feed.page_delay = 0
    feed.delete(f"{feed.base_url}/walks/0")
    feed.put(weekly_activity(id=f"{feed.base_url}/walks/5", name="Walk five, renamed"))
    feed.put(weekly_activity(id=f"{feed.base_url}/walks/new", name="A new walk"))


def _kill_mid_harvest(app: Flask, source_id: int, worker: subprocess.Popen, log: Path) -> Job:
    """Queue a harvest, kill -9 the worker once a few pages are in; the job it abandoned."""
    try:
        job = enqueue_harvest(source_id, job_config(app))
        _wait_for(lambda: 4 <= _copy_count(app) < 20, "a few pages to be applied", log)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert _copy_count(app) < 20
    assert source_row(app, source_id).cursor is not None
    job.refresh()
    assert job.get_status() == JobStatus.STARTED  # as rq leaves it: nobody will ever finish it
    return job


def _shown(app: Flask) -> dict[str, Any]:
    return {item_id: row["data"] for item_id, row in live(app).items()}


@pytest.mark.redis
def test_killing_the_worker_mid_harvest_ends_with_exactly_the_feed(slow_source, tmp_path):
    log = tmp_path / "worker.log"
    feed, app, source_id = slow_source
    abandoned = _kill_mid_harvest(app, source_id, start_worker(app, log), log)
    assert _pending_job(app, source_id).id == abandoned.id  # still blocks new harvests of the source

    _edit_while_no_worker_runs(feed)
    # Another worker (any name): its housekeeping finds the job's worker dead, fails the job,
    # and so queues the source again; in burst mode it runs that harvest and exits.
    burst = start_worker(app, log, "--burst")
    assert burst.wait(timeout=DEADLINE) == 0, log.read_text()[-3000:]
    abandoned.refresh()
    assert abandoned.get_status() == JobStatus.FAILED
    assert _shown(app) == feed.current()
    assert _copy_count(app) == len(feed.current())


@pytest.mark.redis
def test_a_worker_killed_mid_job_restarts_under_its_name_and_the_source_is_harvested_again(
    slow_source, redis_url, unique_name, tmp_path
):
    log = tmp_path / "worker.log"
    feed, app, source_id = slow_source
    name = f"{unique_name}-worker-1"
    abandoned = _kill_mid_harvest(app, source_id, start_worker(app, log, "--name", name), log)
    _edit_while_no_worker_runs(feed)

    restarted = start_worker(app, log, "--name", name)
    try:
        registry = StartedJobRegistry(unique_name, connection=Redis.from_url(redis_url))
        _wait_for(
            lambda: abandoned.id not in registry.get_job_ids(cleanup=False), "the job to leave 'started'", log
        )
        _wait_for(lambda: _shown(app) == feed.current(), "the source to be harvested again", log)
        assert restarted.poll() is None, "the worker was refused its name:\n" + log.read_text()[-3000:]
        abandoned.refresh()
        assert abandoned.get_status() == JobStatus.FAILED
        # Asked again, the source gets a new harvest (not the dead job), which the worker runs.
        again = _pending_job(app, source_id)
        assert again.id != abandoned.id
        _wait_for(lambda: again.get_status(refresh=True) == JobStatus.FINISHED, "the new harvest", log)
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)
    assert "There exists an active worker" not in log.read_text()
