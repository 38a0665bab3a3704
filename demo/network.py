"""``make demo``: a whole Localfeed network on this machine, seeded, wired and ready to click.

It starts, on loopback ports, an umbrella body's publisher hosting a dozen small groups,
two groups' own publishers, an aggregator following all three (with an rq worker when
Redis answers), and a made-up GP surgery's website that embeds the aggregator's widget.

The demo is an operator of the network, not a part of it: it seeds each publisher
through the publisher's own write path (``publisher.editing.save_activity``) before
serving it, and drives the aggregator only through its command line and HTTP, as a
council's operator would. Every process runs in its own process group with its state
under one directory (``.demo/``, wiped at each start), which ``network.json`` there
describes, so scripts and tests can drive the running network. Ctrl-C stops it all.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
from flask import Flask, render_template
from werkzeug.serving import make_server

from demo.sample_data import BOROUGH_CENTRE, SampleGroup, sample_network
from publisher import create_app
from publisher.editing import save_activity
from publisher.extensions import STORE_KEY
from publisher.hub import HUB_KEY
from publisher.store import Store

DEMO_PASSWORD = "localfeed-demo"  # one password for every demo account; long enough for both apps
MARKER = ".localfeed-demo"  # only a directory holding this is ever wiped
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 30.0  # seconds for a server to answer, or a harvest to finish
SUBSCRIBE_TIMEOUT = 10.0  # seconds to wait for the aggregator's WebSub subscriptions
STOP_TIMEOUT = 10.0  # seconds a process has to exit after SIGTERM before it is killed

# The made-up surgery whose website embeds the widget, near the middle of the sample borough.
SURGERY = {
    "name": "Ravensbury Lane Surgery",
    "street": "41 Ravensbury Lane",
    "locality": "Mitcham",
    "postcode": "CR4 4DQ",
    "telephone": "020 8555 0142",
}
UMBRELLA_NAME = "Wandle Valley Community Network"
AGGREGATOR_NAME = "What's on in Mitcham and Morden"
UMBRELLA_GROUPS = 12
SELF_HOSTED_GROUPS = 2


@dataclass
class Publisher:
    """One publisher of the demo: its place on disk and on the network, and what it holds."""

    key: str
    name: str
    port: int
    state_dir: Path
    groups: list[SampleGroup]
    accounts: dict[str, Any] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.state_dir / 'publisher.sqlite'}"


@dataclass
class Service:
    """A child process in its own process group, with its output in a log file."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def exited(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class DemoError(click.ClickException):
    """A step of the demo failed: the message says which, why, and where to look."""


class TimedOut(DemoError):
    """Something the demo waits for did not happen in time (every process is still running)."""


class Network:
    """Starts the demo's processes, remembers them, and stops them all."""

    def __init__(self, state_dir: Path, echo: Callable[[str], None]) -> None:
        self.state_dir = state_dir
        self.echo = echo
        self.services: list[Service] = []
        self.page_server: Any = None
        self.redis_queue: tuple[str, str] | None = None  # (url, name) of the rq queue to remove at the end

    def start(self, name: str, command: list[str], env: Mapping[str, str]) -> Service:
        log_path = self.state_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # A new session: Ctrl-C reaches only the demo, which then stops each group in order.
            process = subprocess.Popen(
                command,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, process, log_path)
        self.services.append(service)
        self._record_pids()
        return service

    def finish(self, service: Service) -> None:
        """Wait for a one-off command started with :meth:`start`; a DemoError if it failed."""
        try:
            status = service.process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            status = None
        if status != 0:
            raise DemoError(
                f"The {service.name} command failed (exit {status}). "
                f"Its log ({service.log_path}) ends:\n{service.log_tail()}"
            )
        self.services.remove(service)
        self._record_pids()

    def _record_pids(self) -> None:
        pids = {service.name: service.process.pid for service in self.services}
        (self.state_dir / "pids.json").write_text(json.dumps(pids, indent=1) + "\n")

    def check_running(self) -> None:
        for service in self.services:
            status = service.exited()
            if status is not None:
                raise DemoError(
                    f"The {service.name} process stopped (exit {status}). "
                    f"Its log ({service.log_path}) ends:\n{service.log_tail()}"
                )

    def stop(self) -> None:
        """SIGTERM every process group (newest first), wait, then SIGKILL whatever is left."""
        if self.page_server is not None:
            self.page_server.shutdown()
            self.page_server.server_close()
            self.page_server = None
        for service in reversed(self.services):
            _signal_group(service.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for service in reversed(self.services):
            try:
                service.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"  {service.name} did not stop in {STOP_TIMEOUT:.0f} s; killing it")
            # Its process group may hold children (an rq work horse) even after it exits.
            _signal_group(service.process, signal.SIGKILL)
            service.process.wait()
        self.services.clear()
        self._record_pids()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


# -- ports, directories, services -------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on now (the child binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_state_dir(path: Path) -> Path:
    """Empty ``path`` for a new run, refusing to wipe a directory the demo did not make."""
    path = path.resolve()
    if path.exists() and any(path.iterdir()) and not (path / MARKER).exists():
        raise DemoError(
            f"{path} is not empty and was not made by the demo, so it is left alone. "
            "Choose another --state-dir, or empty it yourself."
        )
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / MARKER).write_text("Made by `make demo`; wiped at each start.\n")
    return path


def redis_answers(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (RedisError, OSError, ValueError):
        return False


def forget_queue(redis_url: str, queue: str) -> None:
    """Remove the demo's rq queue and its registries: each run has its own queue, never reused."""
    from redis import Redis

    redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    redis.srem("rq:queues", f"rq:queue:{queue}")
    stale = list(redis.scan_iter(match=f"rq:*:{queue}"))
    if stale:
        redis.delete(*stale)


def tool(name: str) -> str:
    """A command installed beside this Python (the virtualenv's ``bin``), else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise DemoError(f"The command {name!r} is not installed; run `make demo` (it installs everything).")
    return found


def wait_until(what: str, check: Callable[[], Any], network: Network, timeout: float = START_TIMEOUT) -> Any:
    """Call ``check`` until it returns something true; fail with ``what`` if time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        network.check_running()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimedOut(
                f"Timed out after {timeout:.0f} s waiting for {what}. Logs: {network.state_dir}/logs"
            )
        time.sleep(0.2)


def answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


# -- the publishers ---------------------------------------------------------------------------


def plan_publishers(state_dir: Path, ports: Iterator[int]) -> list[Publisher]:
    """An umbrella body with a dozen groups, and two groups that publish for themselves."""
    groups = sample_network(groups=UMBRELLA_GROUPS + SELF_HOSTED_GROUPS, activities_per_group=(2, 4))
    umbrella = Publisher(
        "umbrella", UMBRELLA_NAME, next(ports), state_dir / "umbrella", groups[:UMBRELLA_GROUPS]
    )
    own = [
        Publisher(group.slug, group.name, next(ports), state_dir / group.slug, [group])
        for group in groups[UMBRELLA_GROUPS:]
    ]
    return [umbrella, *own]


def publisher_settings(publisher: Publisher) -> dict[str, str]:
    """The publisher's environment: its own database and address, pushing by its in-process hub."""
    return {
        "DATABASE_URL": publisher.database_url,
        "INSTANCE_PATH": str(publisher.state_dir),
        "PUBLIC_URL": publisher.url,
        "PUBLISHER_NAME": publisher.name,
        "PUBLISHER_REGION": "London",  # every demo group is in Merton
        "SECRET_KEY": publisher.secret_key,
        "ALLOW_PRIVATE_NETWORKS": "1",
        "REDIS_URL": "",  # the hub's thread delivers pushes; no second worker to run
        "HUB_POLL_SECONDS": "1",
        "HUB_RETRY_BASE_SECONDS": "2",
    }


def publisher_app(publisher: Publisher) -> Flask:
    """The publisher's app in this process: for seeding and for reading its hub's subscribers."""
    return create_app({**publisher_settings(publisher), "ALLOW_PRIVATE_NETWORKS": True, "HUB_WORKER": False})


def seed(publisher: Publisher, store: Store) -> None:
    """Accounts, tokens and activities, written the way editors' writes are."""
    admin = f"admin@{publisher.key}.example"
    publisher.accounts = {"admin": {"email": admin, "password": DEMO_PASSWORD}, "groups": []}
    groups = []
    for sample in publisher.groups:
        contact = sample.activities[0].get("contact", {})
        groups.append(
            store.add_group(
                sample.name, sample.slug, email=contact.get("email"), telephone=contact.get("telephone")
            )
        )
    # Password hashing is most of the seeding time, and hashlib lets threads share the cores.
    accounts = [(admin, "admin", None)] + [(f"editor@{g.slug}.example", "editor", g.id) for g in groups]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(lambda account: store.add_user(account[0], DEMO_PASSWORD, *account[1:]), accounts))
    for sample, group in zip(publisher.groups, groups, strict=True):
        editor = f"editor@{sample.slug}.example"
        _token, token = store.create_token(group.id, "demo")
        slugs = []
        for activity in sample.activities:
            result = save_activity(store, group, activity, base_url=publisher.url)
            if not result.ok:
                problems = "; ".join(f"{p.path}: {p.message}" for p in result.problems)
                raise DemoError(f"The sample activity {activity['name']!r} was refused: {problems}")
            slugs.append(result.slug)
        publisher.accounts["groups"].append(
            {
                "slug": sample.slug,
                "name": sample.name,
                "editor": {"email": editor, "password": DEMO_PASSWORD},
                "token": token,
                "activities": slugs,
            }
        )


def subscribed(publisher: Publisher, callback_prefix: str) -> Callable[[], bool]:
    """Whether the aggregator holds an active subscription to this publisher's RPDE feed."""
    hub = publisher_app(publisher).extensions[HUB_KEY].hub

    def check() -> bool:
        return any(
            s["state"] == "active" and s["callback"].startswith(callback_prefix) for s in hub.subscribers()
        )

    return check


# -- the aggregator ---------------------------------------------------------------------------


@dataclass
class Aggregator:
    port: int
    state_dir: Path
    queue: str
    redis_url: str  # "" when jobs run in the web process
    operator: dict[str, str] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)  # publisher key -> source id
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        """The aggregator's environment, shared by its web, worker and scheduler processes."""
        return {
            "DATABASE_URL": f"sqlite:///{self.state_dir / 'aggregator.sqlite'}",
            "PUBLIC_URL": self.url,
            "SECRET_KEY": self.secret_key,
            "AGGREGATOR_NAME": AGGREGATOR_NAME,
            "ALLOW_PRIVATE_NETWORKS": "1",
            "REDIS_URL": self.redis_url,
            "RQ_QUEUE": self.queue,
            "POSTCODE_CSV": str(self.state_dir / "postcodes.csv"),
            "SCHEDULER_TICK": "1",
            "HARVEST_INTERVAL": "60",  # WebSub brings changes at once; polling is the safety net
            "WEBSUB_RENEW_SECONDS": "2",  # new sources are subscribed to within seconds
            "HUB_RETRY_BASE_SECONDS": "2",
            "RATELIMIT_ENABLED": "0",  # the demo's own checks come from one address
        }


def write_postcodes(aggregator: Aggregator) -> None:
    """The operator's postcode file (ONS layout): the surgery's postcode, so the widget can say "near"."""
    lat, lon = BOROUGH_CENTRE
    (aggregator.state_dir / "postcodes.csv").write_text(f"pcds,lat,long\n{SURGERY['postcode']},{lat},{lon}\n")


@contextmanager
def operator_client(aggregator: Aggregator) -> Iterator[httpx.Client]:
    """An HTTP session logged in as the operator, through the log-in form like a person."""
    with httpx.Client(base_url=aggregator.url, timeout=START_TIMEOUT, follow_redirects=True) as client:
        page = client.get("/operator/login")
        response = client.post(
            "/operator/login",
            data={"csrf_token": _csrf_token(page.text), **aggregator.operator},
        )
        if response.status_code != 200 or "/operator/login" in str(response.url):
            raise DemoError(f"Could not log in to the aggregator as {aggregator.operator['email']}.")
        yield client


def _csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    if not found:
        raise DemoError("The aggregator's form has no CSRF token; is it the Localfeed aggregator?")
    return found.group(1)


def add_sources(aggregator: Aggregator, publishers: list[Publisher]) -> None:
    """Add each publisher's home page as an approved source (its feed is discovered)."""
    with operator_client(aggregator) as client:
        for publisher in publishers:
            token = _csrf_token(client.get("/operator/sources").text)
            trust = "70" if publisher.key == "umbrella" else "80"  # a group's own feed knows best
            form = {"csrf_token": token, "url": publisher.url + "/", "name": publisher.name, "trust": trust}
            client.post("/operator/sources", data={**form, "approve": "1"}).raise_for_status()
        # Each feed is found by a job; a source is listed publicly once it is found and approved.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            listed = client.get("/sources.json").json()["sources"]
            by_url = {source["url"].rstrip("/"): source["id"] for source in listed}
            missing = [publisher.url for publisher in publishers if publisher.url not in by_url]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise DemoError(
                    f"The aggregator did not add {', '.join(missing)} as a source; "
                    f"see {aggregator.url}/operator/sources and {aggregator.state_dir.parent}/logs."
                )
            time.sleep(0.2)
    for publisher in publishers:
        aggregator.sources[publisher.key] = by_url[publisher.url]


def harvested(aggregator: Aggregator, publishers: list[Publisher]) -> Callable[[], bool]:
    """Whether every source has been harvested with all of its publisher's activities."""

    def check() -> bool:
        for publisher in publishers:
            expected = sum(len(group.activities) for group in publisher.groups)
            health = httpx.get(f"{aggregator.url}/sources/{aggregator.sources[publisher.key]}.json").json()
            if health["counts"]["items"] < expected:
                return False
        return True

    return check


# -- the surgery's website --------------------------------------------------------------------


def surgery_site(aggregator_url: str) -> Flask:
    """The made-up GP surgery's home page, embedding the aggregator's widget."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))  # templates from demo/templates

    @app.get("/")
    def home() -> str:
        return render_template("surgery.html", surgery=SURGERY, aggregator=aggregator_url)

    return app


def serve_in_thread(app: Flask, port: int) -> Any:
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="demo-page", daemon=True).start()
    return server


# -- the command ------------------------------------------------------------------------------


def _ports(base: int | None) -> Iterator[int]:
    """Consecutive ports from ``base``, or free ones."""
    offset = 0
    while True:
        yield base + offset if base else free_port()
        offset += 1


def _can_open_browser() -> bool:
    graphical = (
        sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    return bool(graphical and sys.stdout.isatty())


def _stop_signals(handler: Any) -> None:
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _interrupt(_signum: int, _frame: Any) -> None:
    """Ctrl-C or SIGTERM: stop the demo, once.

    Later signals are ignored from here on: a second Ctrl-C, or a supervisor signalling the
    whole process group twice, must not cut the clean-up short and leave orphans behind
    (the clean-up is bounded by STOP_TIMEOUT anyway).
    """
    _stop_signals(signal.SIG_IGN)
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--state-dir",
    default=".demo",
    show_default=True,
    envvar="LOCALFEED_DEMO_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where every process keeps its data and logs; wiped at each start. [env LOCALFEED_DEMO_DIR]",
)
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65530),
    default=None,
    envvar="LOCALFEED_DEMO_PORT",
    help="Use fixed ports from this one: umbrella publisher, two group publishers, aggregator, "
    "surgery page. Default: free ports. [env LOCALFEED_DEMO_PORT]",
)
@click.option(
    "--redis-url",
    default=DEFAULT_REDIS_URL,
    show_default=True,
    envvar="REDIS_URL",
    help="Run harvests on an rq worker if Redis answers here; otherwise in the aggregator's process.",
)
@click.option(
    "--no-redis", is_flag=True, help="Run harvests in the aggregator's process even if Redis answers."
)
@click.option(
    "--no-browser",
    is_flag=True,
    envvar="LOCALFEED_DEMO_NO_BROWSER",
    help="Do not open the surgery page in a web browser. [env LOCALFEED_DEMO_NO_BROWSER]",
)
def main(state_dir: Path, port_base: int | None, redis_url: str, no_redis: bool, no_browser: bool) -> None:
    """Start a demo Localfeed network on this machine; Ctrl-C stops it."""
    state_dir = fresh_state_dir(state_dir)
    network = Network(state_dir, lambda line: click.echo(line, err=True))
    _stop_signals(_interrupt)
    try:
        info = _start(network, state_dir, _ports(port_base), "" if no_redis else redis_url)
        _announce(info)
        if not no_browser and _can_open_browser():
            webbrowser.open(info["demo_page"])
        while True:
            network.check_running()
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\nStopping the demo network…")
    finally:
        _stop_signals(signal.SIG_IGN)
        network.stop()
        if network.redis_queue:
            forget_queue(*network.redis_queue)
    click.echo("Stopped. Its data stays in " + str(state_dir) + " until the next `make demo`.")


def _start(network: Network, state_dir: Path, ports: Iterator[int], redis_url: str) -> dict[str, Any]:
    say = click.echo
    publishers = plan_publishers(state_dir, ports)
    with_redis = bool(redis_url) and redis_answers(redis_url)
    aggregator = Aggregator(
        next(ports),
        state_dir / "aggregator",
        queue=f"localfeed-demo-{secrets.token_hex(4)}",
        redis_url=redis_url if with_redis else "",
        operator={"email": "operator@aggregator.example", "password": DEMO_PASSWORD},
    )
    page_port = next(ports)

    aggregator.state_dir.mkdir()
    write_postcodes(aggregator)
    settings = aggregator.settings()
    cli = tool("localfeed-aggregator")
    # The operator's account is made while the publishers are seeded: both take seconds.
    create_operator = network.start(
        "create-operator",
        [cli, "create-operator", aggregator.operator["email"], "--password", DEMO_PASSWORD],
        settings,
    )

    say(f"Seeding {len(publishers)} publishers with sample groups, editors, API tokens and activities…")
    for publisher in publishers:
        publisher.state_dir.mkdir(parents=True)
    # The apps are built one at a time: CPython 3.11 can fail when threads compile code at once
    # ("AST constructor recursion depth mismatch"), as building apps in six threads once did.
    stores = [publisher_app(publisher).extensions[STORE_KEY] for publisher in publishers]
    with ThreadPoolExecutor(max_workers=len(publishers)) as pool:
        list(pool.map(seed, publishers, stores))
    for publisher in publishers:
        count = sum(len(group.activities) for group in publisher.groups)
        say(f"  {publisher.name}: {len(publisher.groups)} group(s), {count} activities, at {publisher.url}")

    say("Starting the publishers…")
    for publisher in publishers:
        command = [tool("localfeed-publisher"), "serve", "--host", "127.0.0.1", "--port", str(publisher.port)]
        network.start(f"publisher-{publisher.key}", command, publisher_settings(publisher))

    network.finish(create_operator)
    say(
        f"Starting the aggregator at {aggregator.url}"
        + (f", with an rq worker on {redis_url}…" if with_redis else "…")
    )
    network.start(
        "aggregator", [cli, "serve", "--host", "127.0.0.1", "--port", str(aggregator.port)], settings
    )
    if with_redis:
        network.redis_queue = (redis_url, aggregator.queue)
        # --in-process runs jobs in the worker's own process: no fork and re-import per job,
        # so the demo's many small jobs take milliseconds, not seconds.
        network.start("rq-worker", [cli, "worker", aggregator.queue, "--in-process"], settings)
        network.start("scheduler", [cli, "schedule"], settings)
    else:
        why = f"no Redis answers at {redis_url}" if redis_url else "--no-redis"
        say(f"  Harvests run in the aggregator's own process ({why}).")

    for publisher in publishers:
        wait_until(f"the publisher at {publisher.url}", answers(publisher.url + "/"), network)
    wait_until(f"the aggregator at {aggregator.url}", answers(aggregator.url + "/"), network)

    say("Adding the three publishers to the aggregator as approved sources…")
    add_sources(aggregator, publishers)
    wait_until("the first harvest of every source", harvested(aggregator, publishers), network)
    say("  First harvest done.")

    websub = _wait_for_subscriptions(network, aggregator, publishers)
    network.page_server = serve_in_thread(surgery_site(aggregator.url), page_port)
    info = _describe(network, publishers, aggregator, f"http://127.0.0.1:{page_port}/", websub)
    (state_dir / "network.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def _wait_for_subscriptions(network: Network, aggregator: Aggregator, publishers: list[Publisher]) -> bool:
    """Whether the aggregator subscribed to every publisher's hub in time (else it relies on polling)."""
    try:
        for publisher in publishers:
            wait_until(
                f"the aggregator to subscribe to {publisher.name} by WebSub",
                subscribed(publisher, aggregator.url + "/"),
                network,
                timeout=SUBSCRIBE_TIMEOUT,
            )
    except TimedOut as late:
        click.echo(f"  {late.message}\n  Edits arrive when the aggregator next polls (every 60 s).")
        return False
    click.echo("  Subscribed to every publisher by WebSub: edits arrive within seconds.")
    return True


def _describe(
    network: Network, publishers: list[Publisher], aggregator: Aggregator, demo_page: str, websub: bool
) -> dict[str, Any]:
    """What ``network.json`` says: enough for a script to drive every part of the running network."""
    return {
        "state_dir": str(network.state_dir),
        "demo_page": demo_page,
        "publishers": [
            {
                "key": publisher.key,
                "name": publisher.name,
                "url": publisher.url,
                "role": "umbrella" if publisher.key == "umbrella" else "group",
                "login": publisher.url + "/admin/login",
                **publisher.accounts,
            }
            for publisher in publishers
        ],
        "aggregator": {
            "url": aggregator.url,
            "operator": aggregator.operator,
            "sources_page": aggregator.url + "/operator/sources",
            "embed_builder": aggregator.url + "/embed/builder",
            "sources": aggregator.sources,
            "redis_url": aggregator.redis_url,
            "queue": aggregator.queue if aggregator.redis_url else None,
        },
        "websub": websub,
        "processes": [
            {"name": service.name, "pid": service.process.pid, "log": str(service.log_path)}
            for service in network.services
        ],
    }


def _announce(info: dict[str, Any]) -> None:
    umbrella = info["publishers"][0]
    group = umbrella["groups"][0]
    aggregator = info["aggregator"]
    click.echo(
        f"""
The demo network is running.

  Surgery website with the widget:  {info["demo_page"]}
  Editor log-in ({group["name"]}):  {umbrella["login"]}
      email {group["editor"]["email"]}   password {group["editor"]["password"]}
      (umbrella administrator: {umbrella["admin"]["email"]}, same password)
  Aggregator's sources page:        {aggregator["sources_page"]}
      operator {aggregator["operator"]["email"]}   password {aggregator["operator"]["password"]}
  Embed builder:                    {aggregator["embed_builder"]}

Everything else (every account and API token): {info["state_dir"]}/network.json
Edit an activity as the editor, then reload the surgery page. Press Ctrl-C to stop.
"""
    )

