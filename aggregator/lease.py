"""One harvest at a time per source: a short lease that the running harvest keeps alive.

A harvest holds its source by a lease of ``HARVEST_LEASE`` seconds (a minute by default):
a Redis lock when Redis is configured, else the ``sources`` row's ``lease_owner`` and
``lease_until``. While the harvest runs, a heartbeat thread renews it every third of that,
however long a page takes, so a job killed mid-harvest (``kill -9``, a lost machine) lets go
of its source within a minute and the next harvest resumes from the stored cursor.

If a renewal finds the lease taken by another owner (it lapsed while this process was
stalled, say), :attr:`SourceLease.lost` turns true and :meth:`SourceLease.renew`, called
inside each page's transaction, raises :class:`LeaseLost`, so that page is rolled back and
the harvest stops applying pages: two harvests never write one source's pages at once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from redis.exceptions import LockError
from redis.lock import Lock
from rq import get_current_job
from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine

from aggregator.store import sources
from federation.clock import utcnow
from federation.queue import redis_for

log = logging.getLogger(__name__)

# Deletes a Redis lock only if it still holds the given owner's token.
_GIVE_BACK = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
)


class LeaseLost(RuntimeError):
    """Another harvest holds the source now: this one must stop applying pages."""

    def __init__(self, source_id: int):
        super().__init__(
            f"Source {source_id}'s harvest lease was taken over by another harvest (this one stalled longer "
            "than HARVEST_LEASE); this harvest stopped, and the other one carries on from the stored cursor."
        )
        self.source_id = source_id


def current_owner() -> str:
    """Who a new lease is held for: the rq job's id inside a job, else a fresh random token.

    Holding it under the job's id lets a worker's housekeeping give back the lease of a job
    it finds abandoned (:func:`give_back_abandoned`) instead of waiting for it to lapse.
    """
    job = get_current_job()
    return job.id if job is not None else uuid.uuid4().hex


def lease_seconds(config: Mapping[str, Any]) -> float:
    """Seconds a harvest's lease lasts unless renewed (``HARVEST_LEASE``, at least 0.3)."""
    return max(0.3, float(config.get("HARVEST_LEASE", 60)))


def _redis_lock_name(config: Mapping[str, Any], source_id: int) -> str:
    return f"{config.get('RQ_QUEUE', 'localfeed')}:harvest-lock:{source_id}"


class SourceLease:
    """Holds a source for one harvest: a Redis lock when ``REDIS_URL`` is set, else a DB-row lease.

    ``acquire`` starts the heartbeat and ``release`` stops it; use :func:`held`.
    """

    def __init__(self, engine: Engine, source_id: int, config: Mapping[str, Any], owner: str | None = None):
        self.engine = engine
        self.source_id = source_id
        self.seconds = lease_seconds(config)
        self.owner = owner or current_owner()
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._lock: Lock | None = None
        if config.get("REDIS_URL"):
            # Not thread-local: the heartbeat thread renews the token the job's thread acquired.
            self._lock = redis_for(config["REDIS_URL"]).lock(
                _redis_lock_name(config, source_id), timeout=self.seconds, blocking=False, thread_local=False
            )

    @property
    def lost(self) -> bool:
        """True once a renewal found the lease held by someone else; the harvest must stop."""
        return self._lost.is_set()

    def acquire(self) -> bool:
        """Take the source if nobody holds it (or the holder's lease has lapsed), and start the heartbeat."""
        if self._lock is not None:
            got = bool(self._lock.acquire(blocking=False, token=self.owner))
        else:
            now = utcnow()
            with self.engine.begin() as conn:
                taken = conn.execute(
                    update(sources)
                    .where(sources.c.id == self.source_id)
                    .where((sources.c.lease_until.is_(None)) | (sources.c.lease_until < now))
                    .values(lease_owner=self.owner, lease_until=now + timedelta(seconds=self.seconds))
                )
                got = taken.rowcount == 1
        if got:
            self._heartbeat = threading.Thread(
                target=self._beat, name=f"lease-heartbeat-{self.source_id}", daemon=True
            )
            self._heartbeat.start()
        return got

    def renew(self, conn: Connection) -> None:
        """Extend the lease, or raise :class:`LeaseLost`; call it inside each page's transaction.

        For the DB lease the extension is part of that transaction, so a page commits only
        while its harvest still holds the source.
        """
        if self.lost:
            raise LeaseLost(self.source_id)
        held_still = self._extend_redis() if self._lock is not None else self._extend_row(conn)
        if not held_still:
            self._lost.set()
            raise LeaseLost(self.source_id)

    def release(self) -> None:
        """Stop the heartbeat and give the source back (if it is still ours)."""
        self._stop.set()
        if self._heartbeat is not None:
            # A heartbeat waiting on SQLite's write lock may take a while; it renews nothing
            # once the lease is given back (every renewal is conditional on the owner).
            self._heartbeat.join(timeout=5)
        self._give_back()

    # -- the heartbeat ------------------------------------------------------------------------

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if self._lock is not None:
                    held_still = self._extend_redis()
                else:
                    # Its own short transaction, never the page's: on SQLite it waits for the
                    # page's write lock like any other writer, and holds nothing the page needs.
                    with self.engine.begin() as conn:
                        held_still = self._extend_row(conn)
            except Exception as exc:  # the database or Redis briefly away: the next beat tries again
                log.warning("could not renew the harvest lease of source %s: %s", self.source_id, exc)
                continue
            if not held_still:
                if not self._stop.is_set():
                    self._lost.set()
                    log.warning("the harvest lease of source %s was taken over; stopping", self.source_id)
                return

    def _extend_redis(self) -> bool:
        assert self._lock is not None
        try:
            self._lock.reacquire()
        except LockError:  # not ours any more (LockNotOwnedError), or lapsed and gone
            return False
        return True

    def _extend_row(self, conn: Connection) -> bool:
        extended = conn.execute(
            update(sources)
            .where(sources.c.id == self.source_id, sources.c.lease_owner == self.owner)
            .values(lease_until=utcnow() + timedelta(seconds=self.seconds))
        )
        return extended.rowcount == 1

    def _give_back(self) -> None:
        if self._lock is not None:
            self._lock.redis.eval(_GIVE_BACK, 1, self._lock.name, self.owner)
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.id == self.source_id, sources.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
            )


def give_back_abandoned(engine: Engine, source_id: int, config: Mapping[str, Any], owner: str) -> None:
    """Free the lease ``owner`` (an abandoned job's id) holds on the source, if it still holds it.

    The heartbeat of a killed job has stopped, so its lease would lapse within
    ``HARVEST_LEASE`` anyway; giving it back at once lets the next harvest start now.
    """
    SourceLease(engine, source_id, config, owner=owner)._give_back()


@contextmanager
def held(lease: SourceLease) -> Iterator[bool]:
    """``with held(lease) as got:`` holds the source for the block if ``got``, renewed in the background."""
    got = lease.acquire()
    try:
        yield got
    finally:
        if got:
            lease.release()
