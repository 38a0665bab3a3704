"""Gunicorn settings for the aggregator's web process (``gunicorn -c python:aggregator.gunicorn_config``).

``localfeed-aggregator serve`` bounds glibc's arenas and starts the thread that hands freed
memory back (:mod:`aggregator.housekeeping`); under gunicorn nothing of ours runs before a
worker starts serving, so each worker does the same here, or a deployment behind gunicorn
keeps the memory growth that issue 24 measured.
"""

from __future__ import annotations

from typing import Any

from aggregator import housekeeping


def post_fork(server: Any, worker: Any) -> None:
    """Bound this worker's arenas before it starts any thread (gunicorn calls it in the new worker)."""
    housekeeping.bound_malloc_arenas()


def post_worker_init(worker: Any) -> None:
    """Hand freed memory back to the system each minute for as long as the worker runs."""
    housekeeping.keep_releasing_freed_memory()
