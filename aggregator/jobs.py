"""Running jobs: on rq when ``REDIS_URL`` is set, in a background thread otherwise.

Job functions are plain importable functions taking plain arguments (they build their
own engine from the configuration mapping), so ``rq worker <RQ_QUEUE> --url $REDIS_URL``
runs exactly what the in-process path runs, and one machine needs nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import update

from aggregator import search_index
from aggregator.harvest import due_sources, engine_for, harvest_source
from aggregator.store import sources
from federation.clock import utcnow
from federation.queue import queue_for

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


def enqueue_harvest(source_id: int, config: Mapping[str, Any]) -> Any:
    """Queue a harvest of one source; ``config`` is ``settings.job_config(app)``, plain and picklable."""
    return enqueue(harvest_source, source_id, dict(config), config=config)


def enqueue_due(config: Mapping[str, Any]) -> list[int]:
    """Queue a harvest of every due source, and hold each back for a lease so it is queued once."""
    engine = engine_for(config["DATABASE_URL"])
    due = due_sources(engine)
    hold = utcnow() + timedelta(seconds=int(config.get("HARVEST_LEASE", 900)))
    for source_id in due:
        with engine.begin() as conn:
            conn.execute(update(sources).where(sources.c.id == source_id).values(next_attempt_at=hold))
        enqueue_harvest(source_id, config)
    return due


def roll_forward(config: Mapping[str, Any]) -> int:
    """Move on the stored next sessions that have begun, so queries have few to recompute."""
    with engine_for(config["DATABASE_URL"]).begin() as conn:
        return search_index.roll_forward(conn, utcnow())


def run_scheduler(config: Mapping[str, Any], stop: threading.Event) -> None:
    """Every ``SCHEDULER_TICK`` seconds, queue the due harvests and roll the index forward, until ``stop``."""
    tick = float(config.get("SCHEDULER_TICK", 15.0))
    while not stop.is_set():
        try:
            enqueue_due(config)
            roll_forward(config)
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
