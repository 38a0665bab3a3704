"""Both apps start cleanly when several worker processes start at once on a new database."""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path
from typing import Any

import pytest

import aggregator
import publisher

WORKERS = 6
APPS = {"aggregator": aggregator.create_app, "publisher": publisher.create_app}


def _start_worker(app_name: str, settings: dict[str, Any], start: Any) -> None:
    start.wait(30)
    try:
        APPS[app_name](settings)
    except BaseException:  # the test reads why; the process still exits non-zero
        instance = Path(settings["INSTANCE_PATH"])
        instance.mkdir(parents=True, exist_ok=True)
        (instance / "failed.txt").write_text(traceback.format_exc())
        raise


@pytest.mark.parametrize("app_name", APPS)
def test_workers_starting_together_on_a_new_database_all_start(app_name, database_url, tmp_path):
    """Each gunicorn worker process builds its own app and creates the missing tables and
    first rows; none may fail because another made them first (gunicorn stops when a worker
    cannot boot)."""
    # Like gunicorn's workers, forked from one parent; but from a fork server, which has no threads.
    # Forking the test process itself copies whatever its other tests left running (a browser's
    # driver connection, job pools, hub threads) with their locks held: a child could hang on one,
    # and keep the browser driver's pipe open so that the test process hung at its end too.
    processes = multiprocessing.get_context("forkserver")
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
    exit_codes = [worker.exitcode for worker in workers]
    for worker in workers:
        if worker.is_alive():  # hung: say so below, but leave nothing running behind the test
            worker.kill()
    failures = [path.read_text() for path in sorted(tmp_path.glob("worker-*/failed.txt"))]
    assert exit_codes == [0] * WORKERS, "\n".join(failures)
