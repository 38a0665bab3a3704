"""A small Localfeed network of real processes to crash: the fault suite's and the convergence benchmark's.

One publisher (its own WebSub hub delivering pushes from its thread), and an aggregator
as an operator deploys it with Redis: the web process, an ``rq worker`` and the
scheduler, each a real process in its own process group. The aggregator follows the
publisher as an approved source and is subscribed to its hub, so edits arrive by push,
with polling behind. Any of the web process, the worker and the publisher can be killed
with SIGKILL and started again with the same command, which is what a supervisor does.

Everything is started and wired through what ``make demo`` uses (``demo.network``): the
publisher is seeded through its own write path, the operator adds the source through the
aggregator's pages, edits go through the publisher's JSON API. Nothing of ours is mocked.

The aggregator's database is the one under test (SQLite file or PostgreSQL); the
publisher keeps a SQLite file, as a small group's publisher does.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import create_engine, select, text

from aggregator.adapters import PROVENANCE_KEY  # what the aggregator adds to the items it republishes
from aggregator.freshness import Thresholds, is_expired
from aggregator.harvest import engine_for
from aggregator.store import sources
from demo.network import (
    Aggregator,
    Network,
    Publisher,
    Service,
    add_sources,
    answers,
    forget_queue,
    free_port,
    fresh_state_dir,
    publisher_app,
    publisher_settings,
    seed,
    subscribed,
    tool,
    wait_until,
)
from demo.sample_data import sample_activity, sample_network
from federation.clock import utcnow
from publisher.extensions import STORE_KEY
from schema.openactive import from_openactive

VICTIMS = ("aggregator", "rq-worker", "publisher")  # the processes a crash may take
CONVERGENCE_BUDGET = 10.0  # seconds from the last restart to exact convergence (DESIGN.md, Budgets)
FEED_PATH = "/feeds/activities"


@dataclass
class FaultSettings:
    """What differs from the demo: short timers, so a crash heals within the 10 s budget."""

    # The safety net for lost pushes: a poll every few seconds (an operator's default is 900).
    harvest_interval: int = 3
    hub_retry_base: float = 0.5  # the publisher's hub retries a failed delivery after ~0.5, 1, 2 s…
    initial_activities: int = 20
    fixed_worker_name: bool = True  # ``rq worker --name``, as a supervisor restarts it under


class FaultNetwork:
    """Start, crash, restart and compare the publisher and the aggregator; :meth:`stop` ends it all.

    ``public_url`` is where the publisher's hub reaches the aggregator (its ``PUBLIC_URL``);
    by default the aggregator itself, or a fault-injecting proxy in front of it.
    """

    def __init__(
        self,
        state_dir: Path,
        database_url: str,
        redis_url: str,
        queue: str,
        settings: FaultSettings | None = None,
        echo: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.settings = settings or FaultSettings()
        self.state_dir = fresh_state_dir(state_dir)
        self.network = Network(self.state_dir, echo)
        self.database_url = database_url
        self.redis_url = redis_url
        groups = sample_network(
            groups=1, activities_per_group=(self.settings.initial_activities,) * 2, seed=17
        )
        self.publisher = Publisher(
            "faults", "Faults Walkers", free_port(), self.state_dir / "publisher", groups
        )
        self.aggregator = Aggregator(
            free_port(),
            self.state_dir / "aggregator",
            queue=queue,
            redis_url=redis_url,
            operator={"email": "operator@faults.example", "password": "localfeed-faults"},
        )
        self.public_url = self.aggregator.url
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.token = ""
        self.slugs: list[str] = []
        self.source_id = 0

    # -- starting -------------------------------------------------------------------------------

    def aggregator_env(self) -> dict[str, str]:
        return {
            **self.aggregator.settings(),
            "DATABASE_URL": self.database_url,
            "DATABASE_AUTO_UPGRADE": "1",
            "PUBLIC_URL": self.public_url,
            "HARVEST_INTERVAL": str(self.settings.harvest_interval),
            "HUB_RETRY_BASE_SECONDS": str(self.settings.hub_retry_base),
        }

    def publisher_env(self) -> dict[str, str]:
        return {
            **publisher_settings(self.publisher),
            "RATELIMIT_ENABLED": "0",  # the test walks the feed many times a second
            "HUB_POLL_SECONDS": "0.5",
            "HUB_RETRY_BASE_SECONDS": str(self.settings.hub_retry_base),
        }

    def start(self, public_url: str | None = None) -> FaultNetwork:
        """Seed and start everything, follow the publisher, and wait until its hub has verified us."""
        self.public_url = (public_url or self.aggregator.url).rstrip("/")
        self.publisher.state_dir.mkdir(parents=True)
        self.aggregator.state_dir.mkdir(parents=True)
        seed(self.publisher, publisher_app(self.publisher).extensions[STORE_KEY])
        group = self.publisher.accounts["groups"][0]
        self.token, self.slugs = group["token"], list(group["activities"])

        cli = tool("localfeed-aggregator")
        env = self.aggregator_env()
        operator = self.aggregator.operator
        self.network.finish(
            self.network.start(
                "create-operator",
                [cli, "create-operator", operator["email"], "--password", operator["password"]],
                env,
            )
        )
        port = str(self.publisher.port)
        self._run(
            "publisher",
            [tool("localfeed-publisher"), "serve", "--host", "127.0.0.1", "--port", port],
            self.publisher_env(),
        )
        self._run(
            "aggregator", [cli, "serve", "--host", "127.0.0.1", "--port", str(self.aggregator.port)], env
        )
        # The operator's worker command (rq with the aggregator's housekeeping: it fails the jobs a
        # killed worker left "started", and restarts under its old fixed name). --in-process runs
        # jobs in the worker's own process, so killing the worker kills the harvest it was running.
        worker = [cli, "worker", self.aggregator.queue, "--in-process"]
        if self.settings.fixed_worker_name:
            worker += ["--name", f"{self.aggregator.queue}-worker"]
        self._run("rq-worker", worker, env)
        self._run("scheduler", [cli, "schedule"], env)

        wait_until(f"the publisher at {self.publisher.url}", answers(self.publisher.url + "/"), self.network)
        wait_until(
            f"the aggregator at {self.aggregator.url}", answers(self.aggregator.url + "/"), self.network
        )
        add_sources(self.aggregator, [self.publisher])
        self.source_id = self.aggregator.sources[self.publisher.key]
        wait_until(
            "the aggregator's WebSub subscription to the publisher",
            subscribed(self.publisher, self.public_url + "/"),
            self.network,
        )
        return self

    def _run(self, name: str, command: list[str], env: Mapping[str, str]) -> Service:
        self.commands[name] = (command, dict(env))
        return self.network.start(name, command, env)

    def service(self, name: str) -> Service:
        return next(service for service in self.network.services if service.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL the process group of ``name``: no clean-up, no goodbye, as a power cut."""
        service = self.service(name)
        with contextlib.suppress(ProcessLookupError):  # it had already died (its log says why)
            os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait()
        self.network.services.remove(service)

    def restart(self, name: str) -> float:
        """Start ``name`` again with its command and settings; returns the monotonic time it was started."""
        command, env = self.commands[name]
        started = time.monotonic()
        self.network.start(name, command, env)
        return started

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Both web processes answer again (after restarts)."""
        wait_until(
            f"the publisher at {self.publisher.url}", answers(self.publisher.url + "/"), self.network, timeout
        )
        wait_until(
            f"the aggregator at {self.aggregator.url}",
            answers(self.aggregator.url + "/"),
            self.network,
            timeout,
        )

    def stop(self) -> None:
        self.network.stop()
        forget_queue(self.redis_url, self.aggregator.queue)
        # Left behind otherwise: the aggregator's per-source keys (pending harvests, their locks),
        # the worker's registration (a killed namesake's may remain) and rq's intermediate queue.
        redis = Redis.from_url(self.redis_url)
        queue = self.aggregator.queue
        patterns = (f"{queue}:*", f"rq:worker:{queue}-worker*", f"rq:queue:{queue}:*")
        ours = [key for pattern in patterns for key in redis.scan_iter(match=pattern)]
        if ours:
            redis.delete(*ours)

    def log_tails(self, lines: int = 25) -> str:
        """The end of every process's log, for a failure's report, less the lines of GET requests
        (mostly the comparison's own feed walks)."""
        tails = []
        for log in sorted((self.state_dir / "logs").glob("*.log")):
            kept = [line for line in log.read_text(errors="replace").splitlines() if '"GET /' not in line]
            tails.append(f"--- {log.name} ---\n" + "\n".join(kept[-lines:]))
        return "\n".join(tails)

    # -- the two sides --------------------------------------------------------------------------

    def published(self) -> dict[str, Any]:
        """The publisher's live items (id -> OpenActive data), by walking its RPDE feed."""
        return walk_rpde(self.publisher.url)

    def aggregated(self) -> dict[str, Any]:
        """The aggregator's merged items as it republishes them, less the provenance it adds."""
        items = walk_rpde(self.aggregator.url)
        return {item_id: _without_provenance(data) for item_id, data in items.items()}

    def difference(self) -> Difference:
        return Difference.of(self.published(), self.aggregated())

    def why_not_yet(self) -> str:
        """What may hold convergence back, for a report: the source's harvest state at the aggregator,
        and the pushes the publisher's hub has yet to deliver (a claimed one may be a dead sender's).
        """
        now = utcnow()
        with engine_for(self.database_url).connect() as conn:
            source = conn.execute(select(sources).where(sources.c.id == self.source_id)).mappings().one()
        wanted = ("last_status", "failures", "next_attempt_at", "lease_owner", "lease_until", "cursor")
        state = {key: _relative(source[key], now) for key in wanted if key in source}
        with create_engine(self.publisher.database_url).connect() as conn:
            pending = conn.execute(
                text(
                    "SELECT attempts, next_attempt_at, claimed_until FROM websub_deliveries "
                    "WHERE state = 'pending' ORDER BY id"
                )
            ).all()
        waiting = [
            f"attempts {row.attempts}, next {_relative(row.next_attempt_at, now)}, "
            f"claimed until {_relative(row.claimed_until, now)}"
            for row in pending
        ]
        redis = Redis.from_url(self.redis_url)
        keys = {
            key.decode(): _describe_key(redis, key)
            for key in redis.scan_iter(match=f"{self.aggregator.queue}:*")
        }
        return (
            f"aggregator's source: {state}; its Redis keys: {keys or 'none'}; "
            f"publisher's undelivered pushes: {waiting or 'none'}"
        )

    def converge(self, since: float, budget: float = CONVERGENCE_BUDGET) -> tuple[float | None, Difference]:
        """Compare until both sides are equal or ``budget`` seconds from ``since`` (monotonic) have passed.

        Returns the seconds from ``since`` to equality (None if never) and the last difference.
        """
        while True:
            try:
                difference = self.difference()
            except httpx.HTTPError as error:  # a web process still starting
                difference = Difference(unreachable=f"{type(error).__name__}: {error}")
            now = time.monotonic()
            if difference.empty:
                return now - since, difference
            if now - since > budget:
                return None, difference
            time.sleep(0.1)


def walk_rpde(base_url: str, timeout: float = 5.0) -> dict[str, Any]:
    """Every live item of the RPDE feed at ``base_url``: id -> data, the last change of each id winning.

    ``next`` links are followed on ``base_url`` itself (an aggregator behind a proxy names the proxy).
    """
    items: dict[str, Any] = {}
    url = base_url + FEED_PATH
    with httpx.Client(timeout=timeout) as client:
        while True:
            response = client.get(url)
            response.raise_for_status()
            page = response.json()
            for item in page["items"]:
                if item["state"] == "deleted":
                    items.pop(item["id"], None)
                else:
                    items[item["id"]] = item["data"]
            if not page["items"]:
                return items
            url = base_url + FEED_PATH + "?" + urlsplit(page["next"]).query


def _describe_key(redis: Redis, key: bytes) -> str:
    """A Redis key's life left, and when it names an rq job (a pending harvest), that job's status."""
    ttl = redis.ttl(key)
    described = f"expires in {ttl} s" if ttl >= 0 else "no expiry"
    if redis.type(key) == b"string":
        raw = redis.get(key)
        value = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
        with contextlib.suppress(NoSuchJobError):
            job = Job.fetch(value, connection=redis)
            described += f", job {value} is {job.get_status()} (worker {job.worker_name or 'none'})"
    return described


def _relative(value: Any, now: datetime) -> Any:
    """A stored time as seconds from ``now`` (SQLite gives naive UTC, PostgreSQL aware), else as is."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return f"{(aware - now).total_seconds():+.1f} s"
    return value


def _without_provenance(data: Any) -> Any:
    return (
        {key: value for key, value in data.items() if key != PROVENANCE_KEY}
        if isinstance(data, dict)
        else data
    )


@dataclass
class Difference:
    """How the aggregator's merged set differs from the publisher's feed: ids missing, extra, differing."""

    missing: list[str] = field(default_factory=list)  # live at the publisher, absent at the aggregator
    extra: list[str] = field(
        default_factory=list
    )  # shown by the aggregator, deleted or unknown at the publisher
    differing: dict[str, list[str]] = field(default_factory=dict)  # id -> the fields whose values differ
    unreachable: str = ""

    @classmethod
    def of(cls, published: Mapping[str, Any], aggregated: Mapping[str, Any]) -> Difference:
        """``published`` (the publishers' live items) against ``aggregated``; a listing the
        aggregator's freshness rule has expired is one it rightly publishes as gone."""
        thresholds, now = Thresholds(), utcnow()  # the networks here run with the default thresholds
        published = {
            item_id: data
            for item_id, data in published.items()
            if not is_expired(from_openactive(data), now, thresholds)
        }
        differing = {}
        for item_id in sorted(published.keys() & aggregated.keys()):
            mine, theirs = published[item_id], aggregated[item_id]
            if mine != theirs:
                keys = sorted(set(mine) | set(theirs))
                differing[item_id] = [key for key in keys if mine.get(key) != theirs.get(key)]
        return cls(
            missing=sorted(published.keys() - aggregated.keys()),
            extra=sorted(aggregated.keys() - published.keys()),
            differing=differing,
        )

    @property
    def empty(self) -> bool:
        return not (self.missing or self.extra or self.differing or self.unreachable)

    def __str__(self) -> str:
        if self.unreachable:
            return f"could not read both feeds: {self.unreachable}"
        lines = [f"{len(self.missing)} missing, {len(self.extra)} extra, {len(self.differing)} differing"]
        lines += [
            f"  missing (live at the publisher, not at the aggregator): {item}" for item in self.missing
        ]
        lines += [
            f"  extra (shown by the aggregator, not live at the publisher): {item}" for item in self.extra
        ]
        lines += [f"  differing in {', '.join(keys)}: {item}" for item, keys in self.differing.items()]
        return "\n".join(lines)


class Editor:
    """Creates, updates and deletes the group's activities through the publisher's JSON API.

    A request that fails because the publisher is down (or was killed while answering) is
    counted and skipped: the publisher's feed, not this list, is what the aggregator must match.
    """

    def __init__(self, network: FaultNetwork, rng: random.Random) -> None:
        self.network = network
        self.rng = rng
        self.slugs = list(network.slugs)
        self.client = httpx.Client(
            base_url=network.publisher.url, timeout=5, headers={"Authorization": f"Bearer {network.token}"}
        )
        self.done = {"create": 0, "update": 0, "delete": 0}
        self.failed = 0

    def activity(self) -> dict[str, Any]:
        organizer = self.network.publisher.groups[0].name
        doc = sample_activity(self.rng, organizer=organizer, today=date.today(), kind=0)
        doc["name"] = f"{doc['name']} #{self.rng.randrange(10**6)}"
        return doc

    def edit(self) -> None:
        """One random edit: mostly updates, some creates and deletes, never fewer than a few activities."""
        roll = self.rng.random()
        try:
            if roll < 0.25 or len(self.slugs) < 5:
                answer = self.client.post("/api/activities", json=self.activity())
                if answer.status_code == 201:
                    self.slugs.append(answer.json()["slug"])
                    self.done["create"] += 1
            elif roll < 0.4:
                slug = self.slugs.pop(self.rng.randrange(len(self.slugs)))
                answer = self.client.delete(f"/api/activities/{slug}")
                self.done["delete"] += answer.status_code == 204
            else:
                slug = self.rng.choice(self.slugs)
                answer = self.client.put(f"/api/activities/{slug}", json=self.activity())
                self.done["update"] += answer.status_code == 200
            if answer.status_code >= 300:
                self.failed += 1
        except httpx.HTTPError:
            self.failed += 1

    @property
    def total(self) -> int:
        return sum(self.done.values())

    def close(self) -> None:
        self.client.close()


@dataclass
class Kill:
    victim: str
    at: float  # monotonic
    restarted_at: float


class Chaos(threading.Thread):
    """Kills a random victim at random moments, ``kills`` times, each restarted after a short random pause."""

    def __init__(
        self,
        network: FaultNetwork,
        rng: random.Random,
        kills: int,
        gap: tuple[float, float] = (0.5, 2.0),
        pause: tuple[float, float] = (0.1, 1.0),
        victims: tuple[str, ...] = VICTIMS,
    ) -> None:
        super().__init__(name="chaos", daemon=True)
        self.network, self.rng, self.kills_wanted = network, rng, kills
        self.gap, self.pause, self.victims = gap, pause, victims
        self.kills: list[Kill] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for _ in range(self.kills_wanted):
                time.sleep(self.rng.uniform(*self.gap))
                victim = self.rng.choice(self.victims)
                at = time.monotonic()
                self.network.kill(victim)
                time.sleep(self.rng.uniform(*self.pause))
                self.kills.append(Kill(victim, at, self.network.restart(victim)))
        except BaseException as error:  # reported by the caller, which owns the network
            self.error = error

    @property
    def last_restart(self) -> float:
        return max(kill.restarted_at for kill in self.kills)

    def summary(self) -> str:
        by_victim = {victim: sum(kill.victim == victim for kill in self.kills) for victim in self.victims}
        return ", ".join(f"{victim} ×{count}" for victim, count in by_victim.items())


def burst_with_chaos(
    network: FaultNetwork, kills: int, seed: int, edit_pause: float = 0.03
) -> tuple[Editor, Chaos]:
    """Edit continuously while ``kills`` random crashes happen; returns once the last victim is restarted."""
    rng = random.Random(seed)
    editor = Editor(network, random.Random(rng.random()))
    chaos = Chaos(network, random.Random(rng.random()), kills)
    chaos.start()
    try:
        while chaos.is_alive():
            editor.edit()
            time.sleep(edit_pause)
    finally:
        chaos.join()
        editor.close()
    if chaos.error is not None:
        raise chaos.error
    return editor, chaos


def unique_queue(prefix: str = "faults") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"
