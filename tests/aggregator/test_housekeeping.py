"""Housekeeping (issue 24): the aggregator's storage follows its live items, not every change it saw.

Deletions are kept the 30 days RPDE promises and then purged, with the tombstones the
monotonic rule reads; followers' cursors, the rule itself within those days and a later
comeback of a purged id all keep working.
"""

from __future__ import annotations

import platform
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from aggregator import housekeeping
from aggregator.feeds import TOMBSTONE_DAYS
from aggregator.settings import job_config
from aggregator.store import merged, tombstones
from aggregator.worker import HousekeepingSimpleWorker
from federation.clock import utcnow
from tests.aggregator.conftest import follow, harvest, live, subscribed
from tests.aggregator.test_monotonic import _push
from tests.factories import weekly_activity, wire_item


def _age(app: Flask, item_id: str, days: float) -> None:
    """Date the item's deletion, and the source's tombstone of it, ``days`` ago."""
    then = utcnow() - timedelta(days=days)
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(merged).where(merged.c.item_id == item_id).values(modified_at=then))
        conn.execute(update(tombstones).where(tombstones.c.item_id == item_id).values(buried_at=then))


def _held(app: Flask) -> tuple[dict[str, str], set[str]]:
    """The merged rows (id -> state) and the ids with a tombstone."""
    with app.extensions["engine"].connect() as conn:
        rows = dict(conn.execute(select(merged.c.item_id, merged.c.state)).all())
        buried = set(conn.execute(select(tombstones.c.item_id)).scalars())
    return rows, buried


def _page(app: Flask, after: int) -> list[tuple[str, str, int]]:
    answer = app.test_client().get(f"/feeds/activities?afterChangeNumber={after}")
    assert answer.status_code == 200
    return [(item["id"], item["state"], item["modified"]) for item in answer.get_json()["items"]]


def test_deletions_older_than_the_promise_are_purged_and_nothing_else(
    make_feed, make_aggregator, serve, database_url
):
    feed = make_feed(page_size=10)
    old, recent, kept = (weekly_activity(id=feed.activity_id(n), name=n) for n in ("old", "recent", "kept"))
    for activity in (old, recent, kept):
        feed.put(activity)
    app = make_aggregator(database_url, HUB_WORKER=False)
    source_id = follow(app, feed.feed_url)
    harvest(app, source_id)
    feed.delete(old["id"])
    feed.delete(recent["id"])
    harvest(app, source_id)
    _age(app, old["id"], TOMBSTONE_DAYS + 1)
    _age(app, recent["id"], TOMBSTONE_DAYS - 1)
    everything = _page(app, 0)
    purged_at = next(number for item_id, _, number in everything if item_id == old["id"])

    report = housekeeping.run(app.extensions["engine"], job_config(app))

    assert (report["deleted_items"], report["tombstones"]) == (1, 1)
    rows, buried = _held(app)
    assert rows == {recent["id"]: "deleted", kept["id"]: "updated"}
    assert buried == {recent["id"]}
    # The republished feed pages as before, from the start and from any cursor, even the purged
    # change's: only the purged deletion is gone from it.
    assert _page(app, 0) == [item for item in everything if item[0] != old["id"]]
    assert _page(app, purged_at) == [item for item in everything if item[2] > purged_at]
    assert _page(app, purged_at - 1) == [item for item in everything if item[2] > purged_at]
    # A second pass finds nothing more to do.
    again = housekeeping.run(app.extensions["engine"], job_config(app))
    assert (again["deleted_items"], again["tombstones"]) == (0, 0)

    # Within the promise the tombstone still refuses a late push of an older change; an id
    # whose tombstone has gone comes back when its publisher lists it again, with a newer change.
    feed.put({**old, "name": "old, listed again"})
    harvest(app, source_id)
    row = subscribed(app, source_id, feed.feed_url)
    late = wire_item(recent["id"], 1, {**recent, "name": "recent, an old version"})
    _push(serve(app).url, row, [late], feed.feed_url + "?afterChangeNumber=1")
    shown = live(app)
    assert recent["id"] not in shown
    assert shown[old["id"]]["data"]["name"] == "old, listed again"


def test_without_redis_a_pass_runs_once_per_interval(make_aggregator, tmp_path):
    app = make_aggregator(
        f"sqlite:///{tmp_path / 'kept.sqlite'}", HUB_WORKER=False, HOUSEKEEPING_SECONDS=3600
    )
    config = job_config(app)
    first = housekeeping.run_due(config)
    assert first is not None and first["database"]["log_reset"] == 1
    assert housekeeping.run_due(config) is None  # the next is due in an hour


@pytest.mark.redis
def test_with_redis_the_workers_keep_house_once_per_interval(
    make_feed, make_aggregator, redis_url, unique_name, tmp_path
):
    from rq import Queue

    from federation.queue import redis_for

    feed = make_feed()
    gone = weekly_activity(id=feed.activity_id("gone"))
    feed.put(gone)
    app = make_aggregator(
        f"sqlite:///{tmp_path / 'worked.sqlite'}", HUB_WORKER=False, REDIS_URL=redis_url, RQ_QUEUE=unique_name
    )
    source_id = follow(app, feed.feed_url)
    harvest(app, source_id)
    feed.delete(gone["id"])
    harvest(app, source_id)
    _age(app, gone["id"], TOMBSTONE_DAYS + 1)
    connection = redis_for(redis_url)
    workers = [
        HousekeepingSimpleWorker([Queue(unique_name, connection=connection)], connection=connection)
        for _ in range(2)
    ]
    try:
        for worker in workers:
            worker.store_config = job_config(app)
        workers[0].clean_registries()
        assert _held(app) == ({}, set())
        feed.put({**gone, "name": "back"})
        harvest(app, source_id)
        feed.delete(gone["id"])
        harvest(app, source_id)
        _age(app, gone["id"], TOMBSTONE_DAYS + 1)
        workers[1].clean_registries()  # within the hour another worker's pass: nothing done
        assert _held(app) == ({gone["id"]: "deleted"}, {gone["id"]})
    finally:
        connection.delete(f"{unique_name}:housekeeping")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_memory_freed_in_the_middle_of_the_heap_is_handed_back():
    """What a burst of requests freed between blocks still in use goes back to the system."""
    # 64 KB blocks come from the heap (below glibc's mmap threshold); freeing every other one
    # leaves whole free pages between blocks still held, which glibc alone would keep.
    blocks = [bytearray(64 * 1024) for _ in range(400)]
    del blocks[::2]
    assert housekeeping.release_freed_memory()
    released = housekeeping.keep_releasing_freed_memory(interval=0.01)
    assert released.daemon and released.is_alive()
