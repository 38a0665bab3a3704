"""Short, renewed harvest leases, on SQLite, PostgreSQL and Redis.

A running harvest keeps its source however long it takes; a killed one lets go within a
lease; a harvest whose lease was taken over stops before writing another page.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select, update

from aggregator.harvest import harvest_source
from aggregator.lease import LeaseLost, SourceLease, held
from aggregator.settings import job_config
from aggregator.store import counter, sources
from federation.db import next_change_numbers
from tests.aggregator.conftest import follow, live
from tests.factories import weekly_activity

LEASE = 0.6  # seconds: renewed every 0.2 s
DEADLINE = 30.0


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def leased(request, make_feed, make_aggregator, tmp_path) -> tuple[Any, int, dict[str, Any]]:
    """(engine, source id, job config) with a short lease: a DB-row lease on each database, or Redis's."""
    settings: dict[str, Any] = {"HARVEST_LEASE": LEASE}
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_url")
    else:
        database_url = f"sqlite:///{tmp_path / 'leases.sqlite'}"
    if request.param == "redis":
        settings |= {
            "REDIS_URL": request.getfixturevalue("redis_url"),
            "RQ_QUEUE": request.getfixturevalue("unique_name"),
        }
    app = make_aggregator(database_url, **settings)
    source_id = follow(app, make_feed().feed_url)
    return app.extensions["engine"], source_id, job_config(app)


def wait_for(condition, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def take_over(engine, source_id: int, config: dict[str, Any]) -> None:
    """What a second harvest does once it finds the lease lapsed: the source is now another owner's."""
    if config.get("REDIS_URL"):
        redis.Redis.from_url(config["REDIS_URL"]).set(
            f"{config['RQ_QUEUE']}:harvest-lock:{source_id}", "other"
        )
    else:
        with engine.begin() as conn:
            conn.execute(update(sources).where(sources.c.id == source_id).values(lease_owner="other"))


def test_a_running_harvest_keeps_its_source_past_its_lease_and_lets_go_at_the_end(leased):
    engine, source_id, config = leased
    lease = SourceLease(engine, source_id, config)
    with held(lease) as got:
        assert got
        time.sleep(5 * LEASE)  # five lease lengths with no page written: only the heartbeat renews it
        assert not SourceLease(engine, source_id, config).acquire()
        assert not lease.lost
        heartbeat = lease._heartbeat
    assert heartbeat is not None and not heartbeat.is_alive()  # stops with the harvest
    second = SourceLease(engine, source_id, config)
    assert second.acquire()  # given back at once, not left to lapse
    second.release()


def test_a_lease_taken_over_is_lost_and_its_next_page_is_refused(leased):
    engine, source_id, config = leased
    lease = SourceLease(engine, source_id, config)
    assert lease.acquire()
    try:
        take_over(engine, source_id, config)
        wait_for(lambda: lease.lost, "the heartbeat to notice the lease is someone else's")
        with pytest.raises(LeaseLost, match="taken over by another harvest"), engine.begin() as conn:
            next_change_numbers(conn, counter)  # as a page's transaction starts
            lease.renew(conn)
    finally:
        lease.release()
    if not config.get("REDIS_URL"):  # letting go leaves the new owner's lease alone
        with engine.connect() as conn:
            owner = conn.execute(select(sources.c.lease_owner).where(sources.c.id == source_id)).scalar()
        assert owner == "other"
    else:
        assert (
            redis.Redis.from_url(config["REDIS_URL"]).get(f"{config['RQ_QUEUE']}:harvest-lock:{source_id}")
            == b"other"
        )


def test_a_page_applied_after_a_takeover_is_rolled_back_even_before_the_heartbeat_notices(
    make_feed, make_aggregator, database_url
):
    """On the DB lease, the renewal is part of the page's transaction: it is the fence."""
    app = make_aggregator(database_url, HARVEST_LEASE=600)  # the heartbeat will not beat in this test
    engine, source_id = app.extensions["engine"], follow(app, make_feed().feed_url)
    lease = SourceLease(engine, source_id, job_config(app))
    assert lease.acquire()
    try:
        take_over(engine, source_id, job_config(app))
        with pytest.raises(LeaseLost), engine.begin() as conn:
            next_change_numbers(conn, counter)
            conn.execute(
                update(sources).where(sources.c.id == source_id).values(cursor="written by a stale page")
            )
            lease.renew(conn)
        assert lease.lost
    finally:
        lease.release()
    with engine.connect() as conn:
        assert conn.execute(select(sources.c.cursor).where(sources.c.id == source_id)).scalar() is None


def test_on_sqlite_the_heartbeat_waits_for_a_long_page_transaction_without_deadlock(
    make_feed, make_aggregator
):
    app = make_aggregator(HARVEST_LEASE=LEASE)  # SQLite: one writer at a time
    engine, source_id = app.extensions["engine"], follow(app, make_feed().feed_url)
    lease = SourceLease(engine, source_id, job_config(app))
    with held(lease):
        with engine.begin() as conn:  # a page's transaction holding the write lock for several beats
            next_change_numbers(conn, counter)
            time.sleep(4 * LEASE)
            lease.renew(conn)
        time.sleep(3 * LEASE)  # the heartbeat, let through, goes on renewing
        assert not lease.lost
        assert not SourceLease(engine, source_id, job_config(app)).acquire()


def test_a_harvest_slower_than_its_lease_is_not_joined_by_a_second_one(
    make_feed, make_aggregator, database_url
):
    feed = make_feed(page_size=1)
    for n in range(6):
        # Ids on the feed's own origin: the source is the authority for them.
        feed.put(weekly_activity(id=f"{feed.base_url}/walks/{n}", name=f"Walk {n}"))
    feed.page_delay = 4 * LEASE / 6  # about four lease lengths in all
    app = make_aggregator(database_url, HARVEST_LEASE=LEASE)
    source_id = follow(app, feed.feed_url)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(harvest_source(source_id, job_config(app))))
    first.start()
    time.sleep(2.5 * LEASE)
    second = harvest_source(source_id, job_config(app))
    first.join(timeout=DEADLINE)
    assert second.status == "locked"
    assert [result.status for result in results] == ["ok"]
    assert sorted(live(app)) == sorted(feed.current())


HOLDER = """
import sys, time
from aggregator.harvest import engine_for
from aggregator.lease import SourceLease
database_url, redis_url, queue, seconds, source_id = sys.argv[1:]
config = {"REDIS_URL": redis_url, "RQ_QUEUE": queue, "HARVEST_LEASE": float(seconds)}
lease = SourceLease(engine_for(database_url), int(source_id), config)
assert lease.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_harvests_lease_lapses_within_a_lease(leased):
    engine, source_id, config = leased
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            str(engine.url.render_as_string(hide_password=False)),
            config.get("REDIS_URL", ""),
            config["RQ_QUEUE"],
            str(LEASE),
            str(source_id),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        time.sleep(4 * LEASE)
        assert not SourceLease(engine, source_id, config).acquire()  # alive: renewed
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        killed_at = time.monotonic()
        after = SourceLease(engine, source_id, config)
        wait_for(after.acquire, "the killed holder's lease to lapse")
        after.release()
        assert time.monotonic() - killed_at < LEASE + 10  # lapsed with the lease, not held for long
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
