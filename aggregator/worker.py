"""The aggregator's rq worker: rq's own, plus housekeeping that recovers from killed workers.

A worker killed with ``kill -9`` leaves two things behind in Redis. Its job stays "started"
(rq only gives up on it once its heartbeat's time-to-live runs out, which for a worker
running jobs in its own process is the job's whole timeout), so that source's harvests
wait behind a job nobody runs. And its registration stays until its own time-to-live runs
out, so a worker restarted under the same fixed ``--name`` is refused ("There exists an
active worker named ... already").

It is also where the aggregator keeps house with Redis (``aggregator.housekeeping``): its
maintenance runs a pass when none has run for ``HOUSEKEEPING_SECONDS`` in any worker.

This worker therefore, at start and every ``maintenance_interval`` seconds:

- forgets a registration under its own name whose process is gone (same host, dead pid,
  or the pid it now has itself, as after a container restart) or whose heartbeat is long
  stale, and then starts;
- fails the jobs of its queues that are "started" by a worker that is gone (its own name
  from before a restart, a worker no longer registered, or a dead process on this host),
  through rq's own abandoned-job path: the job's failure callback runs
  (``aggregator.jobs.harvest_job_failed`` gives back the dead harvest's lease and queues
  the source again) and the job moves to the failed registry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from rq import SimpleWorker, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import as_text, now, parse_composite_key, utcparse
from rq.worker.base import BaseWorker

from aggregator import housekeeping

# rq's default of 420 s keeps a dead worker's registration (and an idle worker's wait for a job,
# between housekeeping rounds) for 7 minutes; a minute is plenty for a heartbeat.
WORKER_TTL = 60
HOUSEKEEPING_INTERVAL = 60


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class Housekeeping(BaseWorker):
    """The housekeeping, mixed into rq's worker classes below.

    ``store_config`` is the aggregator's job configuration (``settings.job_config``), for
    the store's housekeeping; without it the worker keeps only Redis's house.
    """

    store_config: Mapping[str, Any] | None = None

    def register_birth(self) -> None:
        forget_dead_namesake(self)
        super().register_birth()

    def clean_registries(self) -> None:
        """rq's maintenance (at start, then every ``maintenance_interval``), abandoned jobs first."""
        fail_abandoned_jobs(self)
        super().clean_registries()
        if self.store_config is not None:
            try:
                housekeeping.run_due(self.store_config)
            except Exception:  # the database may be briefly away: the next round tries again
                self.log.exception("Worker %s: the store's housekeeping failed", self.name)


class HousekeepingWorker(Housekeeping, Worker):
    """Runs each job in a child process, as ``rq worker`` does by default."""


class HousekeepingSimpleWorker(Housekeeping, SimpleWorker):
    """Runs each job in the worker's own process (killing the worker kills its job)."""


def forget_dead_namesake(worker: BaseWorker) -> bool:
    """Remove the registration of an earlier worker of the same name that is gone; True if removed."""
    data = {as_text(k): as_text(v) for k, v in worker.connection.hgetall(worker.key).items()}
    if not data or "death" in data:
        return False  # nothing there, or rq lets a dead one's name be taken anyway
    if data.get("hostname") == worker.hostname:
        pid = int(data.get("pid") or 0)
        gone = pid == os.getpid() or not pid_alive(pid)
    else:
        # On another machine we cannot look at the process; a worker that is not busy beats at
        # least every worker_ttl seconds, so a much older heartbeat is a dead worker's.
        beat = data.get("last_heartbeat")
        stale_before = now() - timedelta(seconds=worker.worker_ttl + 60)
        gone = data.get("state") != "busy" and beat is not None and utcparse(beat) < stale_before
    if not gone:
        return False
    worker.log.warning(
        "Worker %s: an earlier worker of this name (pid %s on %s) is gone; removing its registration",
        worker.name,
        data.get("pid"),
        data.get("hostname"),
    )
    earlier = type(worker).find_by_key(worker.key, connection=worker.connection)
    if earlier is not None:
        earlier.register_death()
    return True


def fail_abandoned_jobs(worker: BaseWorker) -> list[str]:
    """Fail the started jobs of ``worker``'s queues whose worker is gone; their ids."""
    abandoned: list[str] = []
    current = worker.get_current_job_id()
    for queue in worker.queues:
        registry = StartedJobRegistry(queue.name, connection=worker.connection, serializer=queue.serializer)
        expired: dict[str, int] = {}
        entries = cast(list[bytes], worker.connection.zrange(registry.key, 0, -1))
        for entry in entries:
            job_id, _execution = parse_composite_key(as_text(entry))
            if job_id == current:
                continue
            try:
                job = Job.fetch(job_id, connection=worker.connection, serializer=queue.serializer)
            except NoSuchJobError:
                continue
            if _runner_gone(worker, job.worker_name):
                expired[as_text(entry)] = 1  # a score in the past: rq's cleanup takes it as abandoned
                abandoned.append(job_id)
        if expired:
            worker.log.warning(
                "Worker %s: jobs abandoned by a dead worker: %s", worker.name, ", ".join(expired)
            )
            worker.connection.zadd(registry.key, expired, xx=True)
            registry.cleanup(exception_handlers=worker._exc_handlers)
    return abandoned


def _runner_gone(worker: BaseWorker, name: str | None) -> bool:
    if not name:
        return False  # being handed to a worker right now
    if name == worker.name:
        return True  # this worker, before it was restarted: it runs nothing yet
    key = worker.redis_worker_namespace_prefix + name
    data = {as_text(k): as_text(v) for k, v in worker.connection.hgetall(key).items()}
    if not data or "death" in data:
        return True
    return data.get("hostname") == worker.hostname and not pid_alive(int(data.get("pid") or 0))
