"""Shared fixtures: real servers on loopback, real PostgreSQL and Redis, a real Chromium.

A test that needs an absent service skips with a message on a developer's machine
and fails in CI (``CI`` set), so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium")
# Headless and quiet: no sandbox (containers), no GPU, no calls home mid-test.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]  # WCAG 2.2 A and AA


def need_service(name: str, reason: str, fix: str = "start it, or set the TEST_* URL for it") -> None:
    """Skip (outside CI) or fail (in CI) because ``name`` is not available; ``fix`` says what to do."""
    message = f"{name} is not available ({reason}); {fix}"
    if os.environ.get("CI"):
        pytest.fail(message + " — CI must run every test")
    pytest.skip(message)


class LiveServer:
    """A WSGI app served by a real threaded HTTP server on a loopback port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self._server = make_server(host, port, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator:
    """``serve(app, port=0, host="127.0.0.1")`` starts ``app`` on a loopback port; returns the LiveServer."""
    servers: list[LiveServer] = []

    def _serve(app, port: int = 0, host: str = "127.0.0.1") -> LiveServer:
        server = LiveServer(app, host=host, port=port).start()
        servers.append(server)
        return server

    yield _serve
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # pragma: no cover - depends on the machine
        need_service("PostgreSQL", str(exc))
    name = f"localfeed_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Runs the test once on a SQLite file and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def redis_url() -> str:
    """The Redis server's URL; tests keep to their own keys (see ``unique_name``)."""
    try:
        import redis

        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # pragma: no cover - depends on the machine
        need_service("Redis", str(exc))
    return REDIS_TEST_URL


@pytest.fixture
def unique_name() -> str:
    """A name no other test (or parallel test process) uses: for rq queues and Redis keys."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    """A headless Chromium driven by Playwright's sync API, one per test process.

    Under pytest-xdist each worker process has its own session, hence its own browser.
    Tests open their own context (``chromium.new_context(...)``) and close it.
    """
    if not Path(CHROMIUM).exists():
        need_service("Chromium", f"{CHROMIUM} not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - depends on the machine
        need_service("Playwright", str(exc))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def open_tab(chromium, viewport: dict[str, int], *, script: bool = True, clipboard: bool = False) -> Iterator:
    """A fresh tab of ``viewport``'s size, closed afterwards; with JavaScript on, a JavaScript
    error raised on it fails the test."""
    context = chromium.new_context(viewport=viewport, java_script_enabled=script, locale="en-GB")
    if clipboard:
        context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture
def page(chromium) -> Iterator:
    """A fresh tab at a laptop's width, JavaScript on."""
    with open_tab(chromium, {"width": 900, "height": 900}) as tab:
        yield tab


def assert_accessible(page) -> None:
    """axe-core finds nothing against WCAG 2.2 A/AA in what ``page`` shows (it needs JavaScript on)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}})
    assert results.violations_count == 0, results.generate_report()


# Screenshots kept as test artefacts (git-ignored; CI keeps the folder): the README's pictures come from here.
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# A phone held upright (an iPhone 12 to 15's CSS pixels): the size the everyday-use tests are held to.
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(chromium) -> Iterator:
    """A phone-sized page with JavaScript switched off: the editors' and readers' pages must not need it."""
    with open_tab(chromium, PHONE, script=False) as tab:
        yield tab


@pytest.fixture
def scripted_phone(chromium) -> Iterator:
    """A phone-sized page with JavaScript on, as most phones have it, and the clipboard allowed."""
    with open_tab(chromium, PHONE, clipboard=True) as tab:
        yield tab


def assert_accessible_without_script(chromium, page) -> None:
    """axe-core on what ``page`` shows, checked in a scripted copy (axe needs JavaScript to run)."""
    context = chromium.new_context(viewport=PHONE, locale="en-GB")
    checked = context.new_page()
    checked.goto(page.url)  # the same address, so the page's stylesheet loads as it did
    checked.set_content(page.content())
    try:
        assert_accessible(checked)
    finally:
        context.close()


def assert_no_sideways_scroll(page) -> None:
    """Nothing on ``page`` is wider than its window (WCAG 1.4.10 reflow: phones and 200% zoom)."""
    # A click that navigates can return before the new document exists: measure the page loaded.
    page.wait_for_load_state("load")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at {page.viewport_size}"
