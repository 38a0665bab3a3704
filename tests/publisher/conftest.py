"""Publisher fixtures: apps on a real database, served over loopback, with groups and tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from flask import Flask

from publisher import create_app
from publisher.extensions import get_store
from publisher.hub import stop_worker
from publisher.store import Store


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


VOLUNTEER_EMAIL = "volunteer@mitcham-walkers.example"
VOLUNTEER_PASSWORD = "walk-on-tuesdays"


@dataclass
class Site:
    """A served publisher and its store."""

    url: str
    store: Store


@pytest.fixture
def site(make_publisher, tmp_path, serve) -> Site:
    """A publisher on SQLite with one group, which has no contact details of its own, and its volunteer."""
    app = make_publisher(f"sqlite:///{tmp_path / 'site.sqlite'}")
    store = store_of(app)
    walkers = store.add_group("Mitcham Walkers")
    store.add_user(VOLUNTEER_EMAIL, VOLUNTEER_PASSWORD, "editor", walkers.id)
    return Site(serve(app).url, store)


def log_in(page, url: str, email: str = VOLUNTEER_EMAIL, password: str = VOLUNTEER_PASSWORD) -> None:
    """Log in to the publisher at ``url`` through its form, as a volunteer does."""
    page.goto(f"{url}/admin/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def fill_essentials(page, name: str = "Mitcham Health Walk", postcode: str = "CR4 1HT") -> None:
    """Only what the first screens ask: no first date, nothing under "More about this activity"."""
    page.get_by_label("Name of the activity").fill(name)
    page.get_by_label("What kind of activity is it?").select_option(label="Walking")
    page.get_by_label("Name of the place").fill("Mitcham Common, Windmill Road car park")
    page.get_by_label("Street").fill("Windmill Road")
    page.get_by_label("Town").fill("Mitcham")
    page.get_by_label("Postcode").fill(postcode)
    page.get_by_label("How often").select_option(label="Every week")
    page.get_by_label("Tuesday").check()
    page.get_by_label("Start time").fill("10:00")
    page.get_by_label("End time").fill("11:00")
    page.get_by_label("Free", exact=True).check()
    page.get_by_label("Just turn up").check()
    page.get_by_label("Contact email").fill("walks@mitcham-walkers.example")
