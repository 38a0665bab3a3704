"""The hub's work as plain functions, for rq (or cron, or a CLI).

An rq job must be importable by name and take picklable arguments, so a job names the
app's function that returns its :class:`~federation.websub.hub.Hub` (``"package.module:function"``)
instead of carrying the hub; that function should return the same hub on every call::

    hub.on_wake(lambda: queue.enqueue(federation.websub.jobs.run_due, "aggregator.push:current_hub"))

When it runs under rq, :func:`run_due` schedules itself again for the next retry that falls
due (``enqueue_at``: run the worker with ``--with-scheduler``), so a failed delivery is
retried without waiting for the next change.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from .hub import Hub


def hub_from(factory: str) -> Hub:
    """The hub returned by the ``"module:function"`` factory."""
    module_name, sep, attribute = factory.partition(":")
    if not sep:
        raise ValueError(f"Hub factory {factory!r} must look like 'package.module:function'.")
    make: Callable[[], Hub] = getattr(importlib.import_module(module_name), attribute)
    return make()


def run_due(factory: str) -> int:
    """Verify due subscription requests and send due deliveries; returns how many were tried."""
    hub = hub_from(factory)
    hub.prune()
    tried = hub.run_pending() + hub.deliver_due()
    _schedule_next(hub, factory)
    return tried


def _schedule_next(hub: Hub, factory: str) -> None:
    from rq import Queue, get_current_job

    job = get_current_job()
    when = hub.next_due()
    if job is None or when is None:
        return
    # One scheduled job per factory and instant, however many passes ask for it.
    job_id = f"websub-due-{re.sub(r'[^A-Za-z0-9_]', '_', factory)}-{int(when.timestamp())}"
    Queue(job.origin, connection=job.connection).enqueue_at(when, run_due, factory, job_id=job_id)
