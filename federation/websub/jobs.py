"""The hub's work as plain functions, for rq (or cron, or a CLI).

An rq job must be importable by name and take picklable arguments, so a job names the
app's function that builds its :class:`~federation.websub.hub.Hub` from plain settings
(``"package.module:function"``) and carries those settings, instead of the hub; that
function should return the same hub on every call with the same settings::

    hub.on_wake(lambda: queue.enqueue(federation.websub.jobs.run_due, "aggregator.hub:hub_for", settings))

When it runs under rq, :func:`run_due` schedules itself again for the next retry that falls
due (``enqueue_at``: run the worker with ``--with-scheduler``), so a failed delivery is
retried without waiting for the next change. A callback the guarded client refuses (its
address or scheme) is not retried: the guard would refuse it again, so the hub fails that
verification or delivery at once and records the guard's reason.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from .hub import Hub


def hub_from(factory: str, settings: Mapping[str, Any]) -> Hub:
    """The hub the ``"module:function"`` factory builds from ``settings``."""
    module_name, sep, attribute = factory.partition(":")
    if not sep:
        raise ValueError(f"Hub factory {factory!r} must look like 'package.module:function'.")
    make: Callable[[Mapping[str, Any]], Hub] = getattr(importlib.import_module(module_name), attribute)
    return make(settings)


# How long one job keeps making delivery passes: a thousand subscribers are eight passes, and
# leaving each of the later ones to rq's scheduler would add its polling interval to every pass.
DELIVERY_JOB_SECONDS = 30.0


def run_due(factory: str, settings: Mapping[str, Any]) -> int:
    """Verify due subscription requests and send due deliveries; returns how many were tried."""
    hub = hub_from(factory, settings)
    hub.prune()
    tried = hub.run_pending()
    stop_at = time.monotonic() + DELIVERY_JOB_SECONDS
    while True:
        handled = hub.deliver_due()
        tried += handled
        if not handled or time.monotonic() >= stop_at:
            break
    _schedule_next(hub, factory, settings)
    return tried


def _schedule_next(hub: Hub, factory: str, settings: Mapping[str, Any]) -> None:
    from rq import Queue, get_current_job

    job = get_current_job()
    when = hub.next_due()
    if job is None or when is None:
        return
    # One scheduled job per queue, factory and instant, however many passes ask for it
    # (job ids are shared by every app on the Redis server).
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{job.origin}-{factory}")
    job_id = f"websub-due-{name}-{int(when.timestamp())}"
    # On the job's own queue and connection: the retry runs where this job did.
    Queue(job.origin, connection=job.connection).enqueue_at(when, run_due, factory, settings, job_id=job_id)
