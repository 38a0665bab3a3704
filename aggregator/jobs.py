"""Running jobs: on rq when ``REDIS_URL`` is set, in a background thread otherwise.

Job functions are plain importable functions taking plain arguments (they build their
own engine from the configuration mapping), so ``localfeed-aggregator worker`` (rq's worker,
see ``aggregator.worker``) runs exactly what the in-process path runs, and one machine needs
nothing else. Harvests are queued at most one pending per source (``enqueue_harvest``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from rq import Callback, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import as_text
from sqlalchemy import update

from aggregator import housekeeping, search_index
from aggregator.harvest import HarvestResult, due_sources, engine_for, harvest_source
from aggregator.lease import give_back_abandoned, lease_seconds
from aggregator.store import sources
from federation.clock import utcnow
from federation.queue import queue_for, redis_for

log = logging.getLogger(__name__)

# In-process jobs share a small pool: harvests wait on the network, and a few at once
# keep one slow source from holding up the rest.
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="localfeed-job")


def enqueue(func: Callable[..., Any], *args: Any, config: Mapping[str, Any] | None = None) -> Any:
    """Run ``func(*args)`` as a job: an rq Job when Redis is configured, else a Future.

    ``config`` defaults to the current app's settings; jobs get it too, as their last
    argument is usually the job configuration.
    """
    config = config if config is not None else current_app.config
    if config.get("REDIS_URL"):
        queue = queue_for(config["REDIS_URL"], config.get("RQ_QUEUE", "localfeed"))
        return queue.enqueue(func, *args, job_timeout=int(config.get("JOB_TIMEOUT", 3600)))
    return _pool.submit(_logged, func, *args)


def _logged(func: Callable[..., Any], *args: Any) -> Any:
    try:
        return func(*args)
    except Exception:  # a background thread has no caller to raise to
        log.exception("in-process job %s failed", getattr(func, "__name__", func))
        raise


def enqueue_harvest(source_id: int, config: Mapping[str, Any], *, again_if_running: bool = True) -> Any:
    """Ask for a harvest of one source; there is never more than one pending per source.

    A push or a schedule tick only marks the source due: while a harvest of it is queued,
    nothing more is queued (that harvest has not read the feed yet, so it will see the
    change); while one runs, the source is marked to be harvested once more when it ends
    (it may have read the feed before the change), unless ``again_if_running`` is false.
    Returns the pending job: an rq Job with Redis, else a Future. ``config`` is
    ``settings.job_config(app)``, plain and picklable.
    """
    if config.get("REDIS_URL"):
        return _RedisHarvests(config).request(source_id, again_if_running)
    return _local_harvests.request(source_id, dict(config), again_if_running)


def pending_harvest(source_id: int, config: Mapping[str, Any]) -> Any | None:
    """The source's queued or running harvest (an rq Job, or a Future in-process), or None."""
    if config.get("REDIS_URL"):
        job = _RedisHarvests(config).pending_job(source_id)
        alive = job is not None and job.get_status(refresh=False) in _WAITING | {JobStatus.STARTED}
        return job if alive else None
    return _local_harvests.pending(source_id)


def enqueue_due(config: Mapping[str, Any]) -> list[int]:
    """Queue a harvest of every due source, and hold each back for a lease so it is queued once."""
    engine = engine_for(config["DATABASE_URL"])
    due = due_sources(engine)
    hold = utcnow() + timedelta(seconds=lease_seconds(config))
    for source_id in due:
        with engine.begin() as conn:
            conn.execute(update(sources).where(sources.c.id == source_id).values(next_attempt_at=hold))
        # A harvest running now records the source's next turn itself: no need for another.
        enqueue_harvest(source_id, config, again_if_running=False)
    return due


def harvest_now(source_id: int, config: Mapping[str, Any]) -> HarvestResult:
    """Harvest the source, waiting out another holder's lease (it lapses within ``HARVEST_LEASE``).

    A harvest of the source is already running only if it was started elsewhere (the
    command line, another web process without Redis) or was abandoned by a killed worker;
    either way this one was asked for after it began, so it must still run, not give up.
    """
    lease = lease_seconds(config)
    deadline = time.monotonic() + 2 * lease
    result = harvest_source(source_id, config)
    while result.status == "locked" and time.monotonic() < deadline:
        time.sleep(lease / 3)
        result = harvest_source(source_id, config)
    return result


# -- one pending harvest per source, on Redis ---------------------------------------------------

# rq statuses of a job that has not started: it will read the feed after any change made now.
_WAITING = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
# A job abandoned this many times in a row (its worker killed each time) is not queued again at
# once: the schedule tries the source again at its next turn, so one bad feed cannot crash-loop workers.
_ABANDON_LIMIT = 3


class _RedisHarvests:
    """Per source, in Redis: the id of its pending (queued or running) job, and an "again" mark.

    Every decision is made under a short per-source Redis lock, so pushes arriving at once in
    several web processes, the scheduler and a job ending never queue two jobs for one source.
    """

    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)
        self.redis = redis_for(config["REDIS_URL"])
        self.queue = queue_for(config["REDIS_URL"], config.get("RQ_QUEUE", "localfeed"))

    def _key(self, what: str, source_id: int) -> str:
        return f"{self.queue.name}:harvest-{what}:{source_id}"

    @contextmanager
    def _deciding(self, source_id: int) -> Iterator[None]:
        # A decision is a few Redis calls: a lock of a few seconds is plenty, and one left by a
        # killed process lapses before it can hold up the pushes and ticks that follow.
        with self.redis.lock(self._key("deciding", source_id), timeout=3, blocking_timeout=5):
            yield

    def pending_job(self, source_id: int) -> Job | None:
        """The source's queued or running job (or the last one, if its end went unrecorded)."""
        job_id = self.redis.get(self._key("pending", source_id))
        if job_id is None:
            return None
        try:
            return Job.fetch(as_text(job_id), connection=self.redis)
        except NoSuchJobError:  # expired from Redis long ago
            return None

    def request(self, source_id: int, again_if_running: bool) -> Job:
        with self._deciding(source_id):
            job = self.pending_job(source_id)
            status = job.get_status(refresh=False) if job is not None else None
            if job is not None and status in _WAITING and not self._lost_in_queue(job, status):
                return job
            if job is not None and status == JobStatus.STARTED:
                if again_if_running:
                    self.redis.set(self._key("again", source_id), 1)
                return job
            # None pending, or its job ended without saying so (failed, stopped, abandoned and cleaned up).
            return self._enqueue(source_id)

    def _lost_in_queue(self, job: Job, status: JobStatus | None) -> bool:
        """A "queued" job that is not in its queue: a worker took it and was killed before starting it."""
        return status == JobStatus.QUEUED and self.queue.get_job_position(job.id) is None

    def _enqueue(self, source_id: int, abandoned: int = 0) -> Job:
        """Queue a job and make it the pending one; call under ``_deciding``."""
        job = self.queue.enqueue(
            run_harvest,
            source_id,
            self.config,
            job_id=f"harvest-{source_id}-{uuid.uuid4().hex[:12]}",
            description=f"harvest of source {source_id}",
            job_timeout=int(self.config.get("JOB_TIMEOUT", 3600)),
            on_failure=Callback(harvest_job_failed),
            meta={"abandoned": abandoned},
        )
        # Kept no longer than a job may run (and then some): a record nothing ended cannot outlive it.
        expiry = int(self.config.get("JOB_TIMEOUT", 3600)) + 600
        self.redis.set(self._key("pending", source_id), job.id, ex=expiry)
        return job

    def started(self, source_id: int) -> None:
        """A job starts: it reads the feed after every change marked so far, so clear the mark."""
        self.redis.delete(self._key("again", source_id))

    def ended(self, source_id: int, job_id: str, *, abandoned: int = 0) -> None:
        """Job ``job_id`` ended: queue one more if marked (or if it was abandoned), else none is pending."""
        with self._deciding(source_id):
            pending = self.redis.get(self._key("pending", source_id))
            if pending is None or as_text(pending) != job_id:
                return  # already followed by another
            again = self.redis.getdel(self._key("again", source_id)) is not None
            if abandoned >= _ABANDON_LIMIT:
                log.warning(
                    "harvest jobs of source %s were abandoned %d times in a row (their worker died): "
                    "not queued again until its next turn",
                    source_id,
                    abandoned,
                )
                self.redis.delete(self._key("pending", source_id))
            elif again or abandoned:
                self._enqueue(source_id, abandoned=abandoned)
            else:
                self.redis.delete(self._key("pending", source_id))


def run_harvest(source_id: int, config: Mapping[str, Any]) -> HarvestResult:
    """The rq job that harvests a source, then queues one more if the source was marked meanwhile."""
    harvests = _RedisHarvests(config)
    job = get_current_job()
    harvests.started(source_id)
    try:
        return harvest_now(source_id, config)
    finally:
        if job is not None:
            harvests.ended(source_id, job.id)


def harvest_job_failed(job: Job, connection: Any, *exc_info: Any) -> None:
    """rq's failure callback: a harvest job died without ending (its worker killed, or it timed out).

    Run by the worker whose housekeeping found the job abandoned: the dead job's lease is
    given back at once and the source is queued again, since the job stopped mid-feed. A
    job that merely raised has ended normally (``run_harvest``), so this changes nothing.
    """
    source_id, config = job.args
    give_back_abandoned(engine_for(config["DATABASE_URL"]), source_id, config, owner=job.id)
    abandoned = int(job.meta.get("abandoned", 0)) + 1
    _RedisHarvests(config).ended(source_id, job.id, abandoned=abandoned)


# -- one pending harvest per source, in this process (no Redis) ---------------------------------


@dataclass
class _LocalPending:
    future: Future[HarvestResult] | None = None
    running: bool = False
    again: bool = False


class _LocalHarvests:
    """The same rule as :class:`_RedisHarvests`, for in-process jobs: per-source state under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, _LocalPending] = {}

    def request(
        self, source_id: int, config: dict[str, Any], again_if_running: bool
    ) -> Future[HarvestResult]:
        with self._lock:
            entry = self._pending.get(source_id)
            if entry is None:
                return self._submit(source_id, config)
            if entry.running and again_if_running:
                entry.again = True
            assert entry.future is not None  # set by _submit before the lock is let go
            return entry.future

    def pending(self, source_id: int) -> Future[HarvestResult] | None:
        with self._lock:
            entry = self._pending.get(source_id)
            return entry.future if entry is not None else None

    def _submit(self, source_id: int, config: dict[str, Any]) -> Future[HarvestResult]:
        """Queue a harvest and make it the pending one; call under the lock."""
        entry = self._pending[source_id] = _LocalPending()
        entry.future = _pool.submit(self._run, source_id, config, entry)
        return entry.future

    def _run(self, source_id: int, config: dict[str, Any], entry: _LocalPending) -> HarvestResult:
        with self._lock:
            entry.running = True
        try:
            return _logged(harvest_now, source_id, config)
        finally:
            with self._lock:
                if entry.again:
                    self._submit(source_id, config)
                else:
                    del self._pending[source_id]


_local_harvests = _LocalHarvests()


def roll_forward(config: Mapping[str, Any]) -> int:
    """Move on the stored next sessions that have begun, so queries have few to recompute."""
    with engine_for(config["DATABASE_URL"]).begin() as conn:
        return search_index.roll_forward(conn, utcnow())


def run_scheduler(config: Mapping[str, Any], stop: threading.Event) -> None:
    """Every ``SCHEDULER_TICK`` seconds, queue the due harvests and roll the index forward, until ``stop``.

    Without Redis it keeps house too (``aggregator.housekeeping``); with Redis the workers do.
    """
    tick = float(config.get("SCHEDULER_TICK", 15.0))
    while not stop.is_set():
        try:
            enqueue_due(config)
            roll_forward(config)
            if not config.get("REDIS_URL"):
                housekeeping.run_due(config)
        except Exception:  # the database may be briefly away; the next tick tries again
            log.exception("scheduler tick failed")
        stop.wait(tick)


def start_scheduler(config: Mapping[str, Any]) -> threading.Event:
    """Run the scheduler in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler, args=(config, stop), name="localfeed-scheduler", daemon=True
    )
    thread.start()
    return stop
