"""Publisher fixtures: apps on a real database, served over loopback, with groups and tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from flask import Flask

from publisher import create_app
from publisher.extensions import get_store
from publisher.hub import stop_worker
from publisher.store import Store
from tests.conftest import assert_accessible


@pytest.fixture
def make_publisher(tmp_path, request) -> Callable[..., Flask]:
    """``make_publisher(database_url=None, **config)``: a publisher app in its own instance folder.

    Each app's WebSub worker thread (if it started one) is stopped when the test ends,
    before any fixture's teardown, so none polls a database that is gone.
    """

    def _make(database_url: str | None = None, **config: Any) -> Flask:
        settings = {
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test-secret",
            "PUBLISHER_NAME": "Mitcham Community Activities",
            "ALLOW_PRIVATE_NETWORKS": True,
            "RATELIMIT_ENABLED": False,
            **config,
        }
        if database_url:
            settings["DATABASE_URL"] = database_url
        app = create_app(settings)

        def stop() -> None:
            stop_worker(app)
            store_of(app).engine.dispose()

        request.node.addfinalizer(stop)
        return app

    return _make


@pytest.fixture
def publisher_app(make_publisher, database_url) -> Flask:
    """A publisher on SQLite and, in a second run, on PostgreSQL."""
    return make_publisher(database_url)


def store_of(app: Flask) -> Store:
    with app.app_context():
        return get_store()


@pytest.fixture
def live_publisher(publisher_app, serve):
    """The publisher served on a loopback port (PUBLIC_URL unset: ids follow the request's address)."""
    return serve(publisher_app)


@pytest.fixture
def client(live_publisher):
    with httpx.Client(base_url=live_publisher.url, timeout=10) as http:
        yield http


# For tests whose SQL is already covered on PostgreSQL elsewhere: run them on SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(chromium) -> Iterator:
    """A phone-sized page with JavaScript switched off: the editors' UI must not need it."""
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


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
