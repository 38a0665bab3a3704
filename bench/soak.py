"""Steady operation (soak): the demo network under a steady mixed load, sampled every minute.

The network is ``make demo``'s (``demo.network``: an umbrella publisher, two groups' own
publishers, an aggregator with its rq worker and scheduler on Redis), started in its own
process group under a temporary folder. For ``--minutes`` it is given a steady load:

- writes through the publishers' JSON API (``--writes``/s: mostly updates, some creates
  and deletes, so tombstones pile up as they do for real);
- reads of the aggregator (``--reads``/s): searches near a place with filters, item
  details, embed pages, RPDE pages; and once a minute a walk of every feed;
- a propagation probe every few seconds: an edit timed until the query API shows it.

Every ``--sample`` seconds it records each process's memory (RSS from /proc), each
database's size on disk (WAL included) and rows of the tables that grow with changes,
Redis's memory, the queues' lengths, and that minute's read latency and propagation.
At the end it reports slopes (MB per hour, least squares over the last two thirds of the
run), read latency over the run, the stalls (reads over 500 ms), errors, and compares the
aggregator's republished feed with the publishers' feeds: they must be equal, exactly.

Housekeeping runs on a short cycle here (``--housekeeping``, ``--retention``) so that a
half-hour run shows storage levelling off; the settings are passed to every process the
way an operator would set them, as environment variables.

Run: ``.venv/bin/python bench/soak.py [--minutes 30]`` (``make soak``). Prints a table and
writes ``bench/results/soak.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REDIS_URL, RESULTS, ROOT, percentiles, redis_available, table, write_results
from bench.faultnet import Difference, _without_provenance, walk_rpde
from demo.sample_data import BOROUGH_CENTRE, KINDS, sample_activity

STALL_SECONDS = 0.5  # a read slower than this is a stall (DESIGN.md: none under steady load)
TARGET_SLOPE_MB_PER_HOUR = 10.0
TARGET_P99_SECONDS = 0.1
START_TIMEOUT = 240.0  # seconds for the demo network to come up (seeding, first harvest)
PROBE_EVERY = 5.0  # seconds between propagation probes
PROBE_TIMEOUT = 30.0
CONVERGE_TIMEOUT = 150.0  # seconds for the aggregator to equal the publishers once the load stops
DAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")

# The tables whose rows grow with changes rather than with live items, per database file.
GROWING = {
    "publisher": {
        "live activities": "SELECT count(*) FROM activities WHERE state = 'updated'",
        "deleted activities": "SELECT count(*) FROM activities WHERE state = 'deleted'",
        "outbox": "SELECT count(*) FROM outbox",
        "websub_deliveries": "SELECT count(*) FROM websub_deliveries",
        "pending deliveries": "SELECT count(*) FROM websub_deliveries WHERE state = 'pending'",
    },
    "aggregator": {
        "live activities": "SELECT count(*) FROM merged WHERE state = 'updated'",
        "deleted activities": "SELECT count(*) FROM merged WHERE state = 'deleted'",
        "tombstones": "SELECT count(*) FROM tombstones",
        "websub_deliveries": "SELECT count(*) FROM websub_deliveries",
        "pending deliveries": "SELECT count(*) FROM websub_deliveries WHERE state = 'pending'",
    },
}


# -- the network ---------------------------------------------------------------------------------


@dataclass
class Network:
    """The running demo network, as its ``network.json`` describes it."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    info: dict[str, Any]

    @property
    def aggregator_url(self) -> str:
        url: str = self.info["aggregator"]["url"]
        return url

    def processes(self) -> dict[str, int]:
        """The long-running processes by name (the one-off ones have exited)."""
        return {p["name"]: p["pid"] for p in self.info["processes"] if _rss_mb(p["pid"]) is not None}

    def databases(self) -> dict[str, Path]:
        """Each SQLite database by the name of the process that owns it."""
        found = {"aggregator": self.state_dir / "aggregator" / "aggregator.sqlite"}
        for publisher in self.info["publishers"]:
            found[f"publisher-{publisher['key']}"] = self.state_dir / publisher["key"] / "publisher.sqlite"
        return found


@contextlib.contextmanager
def demo_network(folder: Path, settings: Mapping[str, str], log: Path) -> Iterator[Network]:
    """``make demo`` in its own process group under ``folder``, with ``settings`` in its environment."""
    state_dir = folder / "demo"
    env = {**os.environ, **settings, "LOCALFEED_DEMO_NO_BROWSER": "1", "REDIS_URL": REDIS_URL}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "demo", "--state-dir", str(state_dir), "--no-browser"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        described = state_dir / "network.json"
        deadline = time.monotonic() + START_TIMEOUT
        while not described.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the demo network did not start; its output:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Network(process, state_dir, json.loads(described.read_text()))
    finally:
        # The demo stops its own processes, each group in order, on SIGINT (Ctrl-C).
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- load ------------------------------------------------------------------------------------------


@dataclass
class Read:
    at: float  # seconds since the load started
    kind: str
    seconds: float
    status: int  # 0: no answer


@dataclass
class Group:
    """One group's editor: its publisher, API token and live activities (slug -> id)."""

    publisher_url: str
    name: str
    token: str
    live: dict[str, str] = field(default_factory=dict)


class Load:
    """Writers, readers and propagation probes against the network, until :meth:`stop`."""

    def __init__(self, network: Network, writes: float, reads: float, seed: int = 1) -> None:
        self.network = network
        self.writes, self.reads = writes, reads
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.stopping = threading.Event()
        self.read_log: list[Read] = []
        self.propagation: list[tuple[float, float | None]] = []  # (at, seconds or None if never)
        self.write_counts = {"create": 0, "update": 0, "delete": 0}
        self.write_errors: list[str] = []
        self.read_errors: list[str] = []
        self.groups = [
            Group(publisher["url"], group["name"], group["token"])
            for publisher in network.info["publishers"]
            for group in publisher["groups"]
        ]
        self.threads: list[threading.Thread] = []

    def now(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> None:
        with httpx.Client(timeout=10) as client:
            for group in self.groups:
                listed = client.get(group.publisher_url + "/api/activities", headers=_bearer(group.token))
                listed.raise_for_status()
                group.live = {a["slug"]: a["activity"]["id"] for a in listed.json()["activities"]}
        reader_threads = max(2, round(self.reads / 4))
        targets: list[tuple[Callable[[int, int], None], int]] = [
            (self._writer, 0),
            (self._prober, 0),
            (self._walker, 0),
        ]
        targets += [(self._reader, n) for n in range(reader_threads)]
        self.threads = [
            threading.Thread(target=target, args=(n, reader_threads), daemon=True) for target, n in targets
        ]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=PROBE_TIMEOUT + 5)

    # -- writes

    def _writer(self, _n: int, _of: int) -> None:
        rng = random.Random(self.rng.random())
        with httpx.Client(timeout=10) as client:
            for _ in self._paced(self.writes, rng):
                group = rng.choice(self.groups)
                roll = rng.random()
                if roll < 0.08 or len(group.live) < 2:
                    self._create(client, group, rng)
                elif roll < 0.16:
                    self._delete(client, group, rng)
                else:
                    self._update(client, group, rng.choice(sorted(group.live)), rng)

    def _doc(self, group: Group, rng: random.Random, **changes: Any) -> dict[str, Any]:
        """A new version of an activity, confirmed today: the sample's date may be long past, and
        the aggregator republishes a listing unconfirmed for STALE_DAYS as deleted (expired)."""
        doc = sample_activity(rng, organizer=group.name, today=date.today())
        name = f"{doc['name']} {rng.randrange(10**6)}"[:120]
        return {**doc, "name": name, "lastVerified": date.today().isoformat(), **changes}

    def _create(self, client: httpx.Client, group: Group, rng: random.Random) -> None:
        answer = self._write(client, "POST", group, "/api/activities", self._doc(group, rng), 201)
        if answer is not None:
            with self.lock:
                group.live[answer.json()["slug"]] = answer.json()["activity"]["id"]
                self.write_counts["create"] += 1

    def _delete(self, client: httpx.Client, group: Group, rng: random.Random) -> None:
        with self.lock:
            slug = rng.choice(sorted(group.live))
            group.live.pop(slug)
        if self._write(client, "DELETE", group, f"/api/activities/{slug}", None, 204) is not None:
            with self.lock:
                self.write_counts["delete"] += 1

    def _update(
        self, client: httpx.Client, group: Group, slug: str, rng: random.Random, **changes: Any
    ) -> str | None:
        """Replace the activity; returns its id, or None if the publisher refused."""
        answer = self._write(
            client, "PUT", group, f"/api/activities/{slug}", self._doc(group, rng, **changes), 200
        )
        if answer is None:
            return None
        with self.lock:
            self.write_counts["update"] += 1
        item_id: str = answer.json()["activity"]["id"]
        return item_id

    def _write(
        self, client: httpx.Client, method: str, group: Group, path: str, doc: Any, expected: int
    ) -> httpx.Response | None:
        try:
            answer = client.request(
                method, group.publisher_url + path, json=doc, headers=_bearer(group.token)
            )
        except httpx.HTTPError as error:
            self.write_errors.append(f"{method} {path}: {type(error).__name__}: {error}")
            return None
        if answer.status_code != expected:
            self.write_errors.append(f"{method} {path}: HTTP {answer.status_code} {answer.text[:200]}")
            return None
        return answer

    # -- propagation

    def _prober(self, _n: int, _of: int) -> None:
        rng = random.Random(self.rng.random())
        number = 0
        with httpx.Client(timeout=10) as client:
            for _ in self._paced(1 / PROBE_EVERY, rng):
                number += 1
                group = rng.choice(self.groups)
                with self.lock:
                    slug = rng.choice(sorted(group.live)) if group.live else None
                if slug is None:
                    continue
                marker = f"Soak probe {number}."
                at = self.now()
                started = time.perf_counter()
                item_id = self._update(client, group, slug, rng, description=marker)
                if item_id is None:
                    continue
                self.propagation.append((at, self._seen(client, item_id, marker, started)))

    def _seen(self, client: httpx.Client, item_id: str, marker: str, started: float) -> float | None:
        url = f"{self.network.aggregator_url}/api/activities/{quote(item_id, safe='')}"
        while time.perf_counter() - started < PROBE_TIMEOUT:
            with contextlib.suppress(httpx.HTTPError):
                answer = client.get(url)
                if answer.status_code == 200 and answer.json()["activity"].get("description") == marker:
                    return time.perf_counter() - started
                if answer.status_code == 404 and time.perf_counter() - started > 5:
                    return None  # deleted meanwhile by the writer
            time.sleep(0.02)
        return None

    # -- reads

    def _reader(self, n: int, of: int) -> None:
        rng = random.Random(self.rng.random() + n)
        base = self.network.aggregator_url
        with httpx.Client(timeout=30) as client:
            for _ in self._paced(self.reads / of, rng):
                kind, path = self._read_path(rng)
                started = time.perf_counter()
                try:
                    status = client.get(base + path).status_code
                except httpx.HTTPError as error:
                    status = 0
                    self.read_errors.append(f"GET {path}: {type(error).__name__}: {error}")
                elapsed = time.perf_counter() - started
                if status >= 500 or (status >= 400 and kind != "detail"):
                    self.read_errors.append(f"GET {path}: HTTP {status}")
                self.read_log.append(Read(self.now() - elapsed, kind, elapsed, status))

    def _read_path(self, rng: random.Random) -> tuple[str, str]:
        roll = rng.random()
        lat = BOROUGH_CENTRE[0] + rng.uniform(-0.03, 0.03)
        lon = BOROUGH_CENTRE[1] + rng.uniform(-0.05, 0.05)
        near = rng.choice([f"{lat:.4f},{lon:.4f}", "CR4 4DQ"])
        if roll < 0.6:
            params = {"near": near, "radius": str(rng.choice([1, 2, 3, 5, 10]))}
            if rng.random() < 0.4:
                params["category"] = rng.choice(KINDS)[0]
            if rng.random() < 0.3:
                params["day"] = rng.choice(DAYS)
            if rng.random() < 0.2:
                params["free"] = "true"
            if rng.random() < 0.1:
                params["q"] = rng.choice(["walk", "lunch", "art", "coffee", "garden"])
            if rng.random() < 0.2:
                params.pop("near")
                params.pop("radius")
            return "search", "/api/activities?" + "&".join(f"{k}={quote(v)}" for k, v in params.items())
        if roll < 0.75:
            with self.lock:
                group = rng.choice(self.groups)
                item_id = rng.choice(sorted(group.live.values())) if group.live else "missing"
            return "detail", "/api/activities/" + quote(item_id, safe="")
        if roll < 0.9:
            return "embed", f"/embed?near={quote(near)}&radius=3&limit=8"
        return "feed", f"/feeds/activities?afterChangeNumber={rng.randrange(0, 2000)}"

    def _walker(self, _n: int, _of: int) -> None:
        """Once a minute, walk every feed from its start, as a follower that starts afresh does."""
        rng = random.Random(self.rng.random())
        for _ in self._paced(1 / 60, rng):
            for url in [self.network.aggregator_url, *(p["url"] for p in self.network.info["publishers"])]:
                started = time.perf_counter()
                try:
                    walk_rpde(url, timeout=30)
                except httpx.HTTPError as error:
                    self.read_errors.append(f"walking {url}: {type(error).__name__}: {error}")
                self.read_log.append(Read(self.now(), "walk", time.perf_counter() - started, 200))

    def _paced(self, per_second: float, rng: random.Random) -> Iterator[None]:
        """Yields ``per_second`` times a second on average (Poisson arrivals) until stopped."""
        while not self.stopping.wait(rng.expovariate(per_second)):
            yield None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- sampling -----------------------------------------------------------------------------------


def _rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _cpu_seconds(pid: int) -> float | None:
    """User and system CPU time the process has used (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _on_disk_mb(path: Path) -> float:
    """The database's bytes on disk with its write-ahead log, in MB."""
    total = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return total / 1024**2


def _rows(path: Path, role: str) -> dict[str, int]:
    counts = {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
        for name, sql in GROWING[role].items():
            counts[name] = db.execute(sql).fetchone()[0]
    return counts


def _redis(queue: str | None) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    found = {"redis_used_mb": client.info("memory")["used_memory"] / 1024**2}
    if queue:
        found["rq_queued"] = client.llen(f"rq:queue:{queue}")
    return found


def sample(network: Network, load: Load, since: float) -> dict[str, Any]:
    """One row of the soak: memory, storage, queues, and the reads and probes since ``since``."""
    now = load.now()
    row: dict[str, Any] = {"minute": round(now / 60, 2)}
    running = network.processes()
    row["rss_mb"] = {name: _rss_mb(pid) for name, pid in running.items()}
    # CPU seconds each process has used, and how busy the (possibly shared) machine was: a
    # stall with the machine's load far above its cores is contention, not the network's doing.
    row["cpu_s"] = {name: _cpu_seconds(pid) for name, pid in running.items()}
    row["load_average"] = [round(load, 2) for load in os.getloadavg()]
    row["db_mb"], row["rows"] = {}, {}
    for name, path in network.databases().items():
        row["db_mb"][name] = round(_on_disk_mb(path), 3)
        row["rows"][name] = _rows(path, "aggregator" if name == "aggregator" else "publisher")
    row.update(_redis(network.info["aggregator"]["queue"]))
    reads = [r.seconds for r in load.read_log if since <= r.at < now and r.kind != "walk"]
    row["reads"] = len(reads)
    row["read_ms"] = {k: v * 1000 for k, v in percentiles(reads).items()} if reads else {}
    probes = [s for at, s in load.propagation if since <= at < now and s is not None]
    row["propagation_s"] = percentiles(probes) if probes else {}
    return row


# -- figures ------------------------------------------------------------------------------------


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (minute, value) points, per hour; None with fewer than two."""
    if len(points) < 2:
        return None
    xs, ys = [x / 60 for x, _ in points], [y for _, y in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def slopes(samples: Sequence[Mapping[str, Any]], key: str) -> dict[str, float | None]:
    """MB per hour of each series under ``key`` over the last two thirds of the run (after warm-up)."""
    if not samples:
        return {}
    end = samples[-1]["minute"]
    tail = [s for s in samples if s["minute"] >= end / 3]
    names = sorted({name for s in tail for name in s[key]})
    return {
        name: slope_per_hour([(s["minute"], s[key][name]) for s in tail if s[key].get(name) is not None])
        for name in names
    }


def converge(network: Network, timeout: float) -> tuple[float | None, Difference]:
    """Seconds until the aggregator's feed equals the union of the publishers' (None if never)."""
    started = time.monotonic()
    while True:
        try:
            published: dict[str, Any] = {}
            for publisher in network.info["publishers"]:
                published.update(walk_rpde(publisher["url"], timeout=30))
            aggregated = {k: _without_provenance(v) for k, v in walk_rpde(network.aggregator_url, 30).items()}
            difference = Difference.of(published, aggregated)
        except httpx.HTTPError as error:
            difference = Difference(unreachable=f"{type(error).__name__}: {error}")
        if difference.empty:
            return time.monotonic() - started, difference
        if time.monotonic() - started > timeout:
            return None, difference
        time.sleep(1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        "HOUSEKEEPING_SECONDS": str(args.housekeeping),
        "DELIVERED_KEEP_SECONDS": str(args.retention),
    }
    folder = tempfile.mkdtemp(prefix="localfeed-soak-")
    try:
        log = Path(folder) / "demo.log"
        with demo_network(Path(folder), settings, log) as network:
            load = Load(network, args.writes, args.reads)
            load.start()
            samples: list[dict[str, Any]] = []
            since = 0.0
            end = args.minutes * 60
            try:
                while load.now() < end:
                    time.sleep(max(0.0, min(args.sample, end - load.now())))
                    row = sample(network, load, since)
                    since = load.now()
                    samples.append(row)
                    print(_progress(row), flush=True)
            finally:
                load.stop()
            converged, difference = converge(network, CONVERGE_TIMEOUT)
            final = sample(network, load, since)
            stopped_at = network.processes()
    finally:
        if args.keep:
            print(f"the network's folder is kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return summary(args, load, samples, final, converged, difference, sorted(stopped_at))


def _progress(row: Mapping[str, Any]) -> str:
    memory = ", ".join(f"{name} {mb:.0f}" for name, mb in row["rss_mb"].items() if mb is not None)
    p99, most = row["read_ms"].get("p99"), row["read_ms"].get("max")
    return (
        f"minute {row['minute']:6.1f}: RSS MB {memory}; reads {row['reads']}, "
        f"p99 {p99 if p99 is None else round(p99, 1)} ms, max {most if most is None else round(most)} ms; "
        f"aggregator DB {row['db_mb']['aggregator']:.2f} MB; load {row['load_average'][0]}"
    )


def summary(
    args: argparse.Namespace,
    load: Load,
    samples: list[dict[str, Any]],
    final: dict[str, Any],
    converged: float | None,
    difference: Difference,
    processes: list[str],
) -> dict[str, Any]:
    reads = [r for r in load.read_log if r.kind != "walk"]
    latency = percentiles([r.seconds for r in reads]) if reads else {}
    by_kind = {
        kind: percentiles([r.seconds for r in reads if r.kind == kind])
        for kind in sorted({r.kind for r in reads})
    }
    stalls = [r for r in reads if r.seconds > STALL_SECONDS]
    probes = [s for _, s in load.propagation if s is not None]
    memory = slopes(samples, "rss_mb")
    watched = [name for name in memory if name == "aggregator" or name == "rq-worker"]
    return {
        "minutes": args.minutes,
        "load": {
            "writes_per_second": args.writes,
            "reads_per_second": args.reads,
            "writes": load.write_counts,
            "reads": len(reads),
            "walks": sum(r.kind == "walk" for r in load.read_log),
        },
        "housekeeping": {"every_s": args.housekeeping, "delivered_kept_s": args.retention},
        "memory_slope_mb_per_hour": memory,
        "database_slope_mb_per_hour": slopes(samples, "db_mb"),
        "read_s": latency,
        "read_s_by_kind": by_kind,
        "stalls": [{"at_s": round(r.at, 1), "kind": r.kind, "s": round(r.seconds, 3)} for r in stalls],
        "propagation_s": percentiles(probes) if probes else {},
        "propagation_missed": sum(s is None for _, s in load.propagation),
        "errors": {"writes": load.write_errors[:50], "reads": load.read_errors[:50]},
        "error_count": len(load.write_errors) + len(load.read_errors),
        "converged_after_s": converged,
        "difference": str(difference) if not difference.empty else "",
        "final": final,
        "processes_at_end": processes,
        "samples": samples,
        "targets": {
            "memory_slope_mb_per_hour": TARGET_SLOPE_MB_PER_HOUR,
            "read_p99_s": TARGET_P99_SECONDS,
            "stall_s": STALL_SECONDS,
            "met": bool(latency)
            and all((memory.get(name) or 0) < TARGET_SLOPE_MB_PER_HOUR for name in watched)
            and latency["p99"] < TARGET_P99_SECONDS
            and not stalls,
        },
    }


def report(results: Mapping[str, Any]) -> str:
    final = results["final"]
    memory_rows = [
        (name, final["rss_mb"].get(name), slope)
        for name, slope in results["memory_slope_mb_per_hour"].items()
    ]
    db_rows = [
        (
            name,
            final["db_mb"][name],
            results["database_slope_mb_per_hour"].get(name),
            *(
                final["rows"][name].get(k)
                for k in ("live activities", "deleted activities", "websub_deliveries")
            ),
        )
        for name in final["db_mb"]
    ]
    latency = results["read_s"]
    lines = [
        table(
            f"Memory over {results['minutes']:g} minutes (slope over the last two thirds)",
            ["process", "RSS MB at end", "MB/h"],
            memory_rows,
        ),
        "",
        table(
            "Databases (SQLite file + WAL)",
            ["database", "MB at end", "MB/h", "live", "deleted", "deliveries"],
            db_rows,
        ),
        "",
        table(
            "Reads of the aggregator (ms)",
            ["kind", "p50", "p95", "p99", "max"],
            [
                (kind, *(v[p] * 1000 for p in ("p50", "p95", "p99", "max")))
                for kind, v in [("all", latency), *results["read_s_by_kind"].items()]
                if v
            ],
        ),
        "",
        f"stalls over {STALL_SECONDS * 1000:.0f} ms: {len(results['stalls'])}; "
        f"errors: {results['error_count']}; "
        f"propagation p95 {results['propagation_s'].get('p95', float('nan')):.3f} s "
        f"({results['propagation_missed']} probes not seen)",
        (
            f"final state: exact, {results['converged_after_s']:.1f} s after the load stopped"
            if results["converged_after_s"] is not None
            else f"final state: NOT exact after {CONVERGE_TIMEOUT:.0f} s: {results['difference']}"
        ),
        f"targets met: {results['targets']['met']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples (default 60)")
    parser.add_argument("--writes", type=float, default=2.0, help="writes a second (default 2)")
    parser.add_argument("--reads", type=float, default=20.0, help="reads a second (default 20)")
    parser.add_argument(
        "--housekeeping", type=int, default=60, help="seconds between housekeeping passes (default 60)"
    )
    parser.add_argument(
        "--retention",
        type=int,
        default=300,
        help="seconds delivered pushes and relayed outbox rows are kept (default 300)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the network's folder (logs, databases)")
    parser.add_argument("--name", default="soak", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)
    if why := redis_available():
        raise SystemExit(f"The soak runs the demo network with its rq worker on Redis: {why}.")
    results = run(args)
    path = write_results(args.name, results, args.results)
    print(report(results))
    print(f"written to {path}")
    return results


if __name__ == "__main__":
    main()
