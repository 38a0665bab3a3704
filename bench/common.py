"""What every benchmark shares: result tables and files, loopback servers, databases, workers, timing.

Benchmarks measure the real parts (real HTTP on loopback, real Redis, real SQLite and
PostgreSQL files), so this module only starts and stops them; it never stands in for one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "cache"
BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


# -- results -----------------------------------------------------------------------------------


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, numbers right-aligned, ready to print."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]

    def line(values: Sequence[str], numeric: Sequence[bool]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        )

    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]
    out = [title, line(headers, numeric), "  ".join("-" * w for w in widths)]
    out += [line(row, numeric) for row in cells]
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def machine() -> dict[str, Any]:
    """The machine a figure came from: CPUs, model, memory, Python, and how busy it was."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        # Other work on the machine skews every figure: the 1, 5 and 15 minute load averages.
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
    with contextlib.suppress(OSError):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        if found := re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M):
            info["cpu"] = found.group(1).strip()
    with contextlib.suppress(OSError):
        if found := re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M):
            info["memory_gb"] = round(int(found.group(1)) / 1024**2, 1)
    return info


def write_results(name: str, results: Mapping[str, Any], directory: Path = RESULTS) -> Path:
    """Write ``<directory>/<name>.json`` (bench/results by default) with the machine and the time."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    document = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    document.update(results)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


def percentiles(samples: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (``{"p50": ..}``) plus the maximum; inputs and outputs in the same unit."""
    ordered = sorted(samples)
    result = {}
    for point in points:
        rank = max(1, -(-point * len(ordered) // 100))  # ceil without floats
        result[f"p{point}"] = ordered[rank - 1]
    result["max"] = ordered[-1]
    result["mean"] = statistics.fmean(ordered)
    return result


@contextlib.contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed:``; ``elapsed()``: seconds since the start, or the block's length."""
    start = time.perf_counter()
    end: float | None = None

    def elapsed() -> float:
        return (end if end is not None else time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        end = time.perf_counter()


# -- loopback servers ----------------------------------------------------------------------------


class CountingMiddleware:
    """Counts the requests a WSGI app answers, by status, so a benchmark can say how many were made."""

    def __init__(self, app: Callable[..., Any]):
        self.app = app
        self.by_status: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def statuses(self) -> dict[str, int]:
        """Requests by status, keyed by the status as text (as JSON has it)."""
        return {str(status): count for status, count in sorted(self.by_status.items())}

    def reset(self) -> None:
        with self._lock:
            self.by_status.clear()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def counting_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            with self._lock:
                code = int(status.split(" ", 1)[0])
                self.by_status[code] = self.by_status.get(code, 0) + 1
            return start_response(status, headers, exc_info)

        return self.app(environ, counting_start_response)


class LoopbackServer:
    """A WSGI app on a real threaded HTTP server on a free loopback port, in this process."""

    def __init__(self, app: Callable[..., Any]):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the report
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app_spec: str, env: Mapping[str, str], workers: int, log: Path) -> Iterator[str]:
    """Serve ``app_spec`` (like ``"aggregator:create_app()"``) with gunicorn on loopback; yields its URL."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                app_spec,
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until(lambda: _answers(httpx, url), f"gunicorn at {url}", log, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(httpx: Any, url: str) -> bool:
    try:
        return httpx.get(url + "/api/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until(
    ready: Callable[[], Any], what: str, log: Path, process: subprocess.Popen, limit: float = 60
) -> Any:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.returncode}; its log:\n{log.read_text()[-3000:]}"
            )
        if value := ready():
            return value
        time.sleep(0.1)
    raise RuntimeError(f"gave up waiting for {what} after {limit:.0f} s; its log:\n{log.read_text()[-3000:]}")


# -- databases and workers ----------------------------------------------------------------------


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not (so a benchmark can say what it left out)."""
    try:
        import psycopg

        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not available ({exc}); set BENCH_POSTGRES_URL"
    return None


def postgres_url_for(name: str) -> str:
    return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def create_postgres_database(name: str) -> str:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return postgres_url_for(name)


def drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


@contextlib.contextmanager
def fresh_postgres(prefix: str = "localfeed_bench") -> Iterator[str]:
    """A new, empty PostgreSQL database for one run, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = create_postgres_database(name)
    try:
        yield url
    finally:
        from aggregator.harvest import _engines  # harvest keeps one engine per database URL

        if (engine := _engines.pop(url, None)) is not None:
            engine.dispose()
        drop_postgres_database(name)


def redis_available() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} is not available ({exc}); set BENCH_REDIS_URL"
    return None


@contextlib.contextmanager
def rq_worker(queue: str, log: Path) -> Iterator[subprocess.Popen]:
    """One ``rq worker`` process on ``queue``, as an operator runs it (SimpleWorker: jobs run in it)."""
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(REDIS_URL)
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(BIN / "rq"), "worker", queue, "--url", REDIS_URL, "--worker-class", "rq.SimpleWorker"],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until(
            lambda: any(queue in w.queue_names() for w in Worker.all(connection=connection)),
            f"the rq worker on {queue}",
            log,
            process,
        )
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _forget_queue(connection, queue)


def _forget_queue(connection: Any, queue: str) -> None:
    """Remove this run's queue and its job records from Redis (and only those)."""
    for key in connection.scan_iter(match=f"*{queue}*", count=1000):
        connection.delete(key)
