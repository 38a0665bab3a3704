"""Both apps start cleanly when several worker processes start at once on a new database."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

import aggregator
import publisher

WORKERS = 6
APPS = {"aggregator": aggregator.create_app, "publisher": publisher.create_app}


def _start_worker(app_name: str, settings: dict[str, Any], start: Any) -> None:
    start.wait(30)
    APPS[app_name](settings)  # a failure exits the process non-zero, its traceback on stderr


@pytest.mark.parametrize("app_name", APPS)
def test_workers_starting_together_on_a_new_database_all_start(app_name, database_url, tmp_path):
    """Each gunicorn worker process builds its own app and creates the missing tables and
    first rows; none may fail because another made them first (gunicorn stops when a worker
    cannot boot)."""
    processes = multiprocessing.get_context("fork")  # like gunicorn's workers, forked from one parent
    start = processes.Barrier(WORKERS)
    workers = [
        processes.Process(
            target=_start_worker,
            args=(
                app_name,
                {
                    "DATABASE_URL": database_url,
                    "INSTANCE_PATH": str(tmp_path / f"worker-{number}"),
                    "SECRET_KEY": "test",
                    "HUB_WORKER": False,
                },
                start,
            ),
        )
        for number in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * WORKERS
