"""The aggregator's housekeeping: storage in proportion to the live activities, not to past changes.

What grows with every change, and when it goes:

- **Deleted merged items**, the republished feed's tombstones: kept ``TOMBSTONE_DAYS`` (30,
  as RPDE promises: a follower that reads at least monthly sees every deletion), then
  deleted, with the unused "homes" of copies that joined another item (change number 0).
  Deleting rows never breaks a follower's cursor: pages are "change number after N",
  whatever numbers are left. A row a copy still points to is kept.
- **The ``tombstones`` table**, each source's deletions by change marker, which the harvest
  uses to refuse a late replay of an older change (the monotonic rule). Kept as long,
  then deleted: by then nothing can carry an older change of that item any more. A
  retried push gives up within a day (``federation.websub.hub.RetryPolicy``); a feed lists
  each item once, at its latest change, so a walk from any cursor, even from the start,
  shows the deletion or, once the publisher has purged its own tombstone (after at least
  the same 30 days), nothing at all; an upstream aggregator keeps the same rule. A
  publisher that later lists the id again does so with a newer change, which must win.
- **The hub's finished deliveries**: delivered ones after ``DELIVERED_KEEP_SECONDS`` (an
  hour), failed ones after a week (:class:`federation.websub.hub.Retention`).
- **SQLite's write-ahead log and free pages** (:func:`federation.db.compact`).

The long-running processes' memory is kept level too (:func:`bound_malloc_arenas`,
:func:`keep_releasing_freed_memory`).

It runs every ``HOUSEKEEPING_SECONDS``: in the rq worker's maintenance (``aggregator.worker``)
with Redis, in the scheduler's thread without, and on demand as ``localfeed-aggregator
housekeeping``. Passes in several processes are harmless: each deletes what is due.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, exists, select

from aggregator.feeds import TOMBSTONE_DAYS
from aggregator.freshness import Thresholds, publish_expiries
from aggregator.harvest import engine_for
from aggregator.store import chunks, copies, counter, merge_keys, merged, tombstones
from federation.clock import utcnow
from federation.db import compact, next_change_numbers
from federation.queue import redis_for
from federation.relay import housekeeping_settings

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt() parameter number, as in <malloc.h>

# Without Redis, when each database was last kept (one entry per database this process serves).
_last_pass: dict[str, float] = {}
_last_pass_lock = threading.Lock()


def run(engine: Engine, config: Mapping[str, Any]) -> dict[str, Any]:
    """One pass: purge what is past its retention, then compact the database; what it did."""
    from aggregator.hub import hub_for  # the hub mounts on the app; imported only when it is kept

    cutoff = utcnow() - timedelta(days=TOMBSTONE_DAYS)
    report: dict[str, Any] = {"deleted_items": 0, "tombstones": 0}
    with engine.begin() as conn:
        # Queue behind the harvests first (the counter row), as every writer of merged items does,
        # so a harvest never attaches a copy to a row this pass is deleting.
        next_change_numbers(conn, counter)
        unused = select(merged.c.id).where(
            merged.c.state == "deleted",
            merged.c.modified_at < cutoff,
            ~exists().where(copies.c.merged_id == merged.c.id),
        )
        for chunk in chunks(conn.execute(unused).scalars()):
            conn.execute(delete(merge_keys).where(merge_keys.c.merged_id.in_(chunk)))
            report["deleted_items"] += conn.execute(delete(merged).where(merged.c.id.in_(chunk))).rowcount
        forgotten = delete(tombstones).where(tombstones.c.buried_at < cutoff)
        report["tombstones"] = conn.execute(forgotten).rowcount
    report["expired"] = publish_expiries(engine, utcnow(), Thresholds.from_config(config))  # feeds say so
    report["deliveries"] = hub_for(config).prune()
    report["database"] = compact(engine)
    log.info("housekeeping: %s", report)
    return report


def run_due(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`run` if no process has kept this database for ``HOUSEKEEPING_SECONDS``; else None.

    With Redis the processes agree through a key that expires after the interval; without,
    there is one process (the web process's scheduler thread) and it keeps its own time.
    """
    interval = int(housekeeping_settings(config)["HOUSEKEEPING_SECONDS"])
    url = config["DATABASE_URL"]
    if config.get("REDIS_URL"):
        key = f"{config.get('RQ_QUEUE', 'localfeed')}:housekeeping"
        if not redis_for(config["REDIS_URL"]).set(key, 1, nx=True, ex=interval):
            return None
    else:
        with _last_pass_lock:
            if time.monotonic() - _last_pass.get(url, -interval) < interval:
                return None
            _last_pass[url] = time.monotonic()
    return run(engine_for(url), config)


def bound_malloc_arenas(arenas: int = 2) -> bool:
    """Cap this process's glibc malloc arenas, as ``MALLOC_ARENA_MAX`` does; True if it was capped.

    The web process's memory grew by some 200 MB an hour under a steady load while its Python
    heap stayed flat (issue 24). The threaded server runs each request in a new thread, and
    glibc gives threads arenas of their own, up to eight per core, each keeping the high-water
    mark of what the requests that ran in it allocated, in fragments it rarely returns. With
    two arenas the same load held level (docs/performance.md), and allocation is no slower
    for it: the GIL lets one thread allocate at a time anyway. The rq worker reads each
    source's pages in a thread of its own (``aggregator.read_ahead``), so it is capped too.

    An operator's own ``MALLOC_ARENA_MAX`` stands, and where the C library is not glibc
    (musl, macOS) there are no per-thread arenas to cap. Call it before threads start.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, arenas))


# Seconds between passes of :func:`release_freed_memory` in the web process: a pass takes a
# few milliseconds (3 ms for a 100 MB heap with 50 MB free in pieces), and a minute keeps what
# a burst of requests freed from lingering.
RELEASE_SECONDS = 60.0


def release_freed_memory() -> bool:
    """Hand the memory freed inside glibc's malloc heaps back to the system; True if any was.

    glibc gives memory back by itself only from the top of a heap; what requests free in the
    middle of one stays resident, reused only by allocations that fit it, so the web
    process's resident size creeps up with the fragments of past requests while the
    memory in use stays level (issue 24; docs/performance.md has the figures). ``malloc_trim``
    returns every whole free page of every heap. False where the C library is not glibc.
    """
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


def keep_releasing_freed_memory(interval: float = RELEASE_SECONDS) -> threading.Thread:
    """Run :func:`release_freed_memory` every ``interval`` seconds, in a daemon thread, for ever."""

    def loop() -> None:
        while True:
            time.sleep(interval)
            release_freed_memory()

    thread = threading.Thread(target=loop, name="localfeed-release-memory", daemon=True)
    thread.start()
    return thread


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (whose mallopt and malloc_trim these call), else None."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None
