"""Operators' sessions end: a cookie copied before logout, or before a new password, is refused.

Real aggregator on loopback, real HTTP clients whose cookies are copied the way a thief
would (the raw ``session`` cookie), and the stored state checked after each refused post.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from flask import Flask

from aggregator.auth import create_operator
from aggregator.sources import add_source
from tests.aggregator.conftest import source_row

EMAIL, PASSWORD, NEW_PASSWORD = "ops@council.example", "correct horse battery", "a new horse, stapled"


def _csrf(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


Operated = tuple[Flask, Callable[..., httpx.Client], int]


@pytest.fixture
def operated(make_aggregator, serve, database_url) -> Iterator[Operated]:
    """An aggregator served on loopback with one operator and one source (trust 50), and a
    ``browser(cookie=None)`` maker: a client of the server, carrying ``cookie`` as its session."""
    app = make_aggregator(database_url)
    create_operator(app.extensions["engine"], EMAIL, PASSWORD)
    source_id = add_source(
        app.extensions["engine"], "https://walkers.example/feed", kind="localfeed", state="paused",
        config=app.config,
    )  # fmt: skip
    server = serve(app)
    clients: list[httpx.Client] = []

    def browser(cookie: str | None = None) -> httpx.Client:
        client = httpx.Client(base_url=server.url, timeout=10)
        if cookie is not None:
            client.cookies.set("session", cookie)
        clients.append(client)
        return client

    yield app, browser, source_id
    for client in clients:
        client.close()


def log_in(client: httpx.Client, password: str = PASSWORD) -> httpx.Response:
    token = _csrf(client.get("/operator/login").text)
    return client.post("/operator/login", data={"csrf_token": token, "email": EMAIL, "password": password})


def set_trust(client: httpx.Client, source_id: int, trust: int, token: str) -> httpx.Response:
    return client.post(
        f"/operator/sources/{source_id}/trust", data={"csrf_token": token, "trust": str(trust)}
    )


def is_refused(response: httpx.Response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/operator/login")


def test_a_session_cookie_copied_before_logout_is_refused_after_it(operated):
    app, browser, source_id = operated
    operator = browser()
    assert log_in(operator).status_code == 302
    token = _csrf(operator.get("/operator/sources").text)
    copied = operator.cookies["session"]

    # Before the logout the copy works, posts included: the refusal below is the logout's doing.
    thief = browser(copied)
    assert thief.get("/operator/sources").status_code == 200
    assert set_trust(thief, source_id, 60, token).status_code == 302
    assert source_row(app, source_id).trust == 60

    assert operator.post("/operator/logout", data={"csrf_token": token}).status_code == 302

    replayed = browser(copied)
    assert is_refused(replayed.get("/operator/sources"))
    assert is_refused(set_trust(replayed, source_id, 90, token))
    assert source_row(app, source_id).trust == 60  # nothing changed
    assert is_refused(replayed.get("/operator/subscriptions"))
    # The ended session is forgotten on public pages too: no operator menu is offered.
    home = replayed.get("/").text
    assert "Operator log-in" in home and "Log out" not in home

    # Logging in again gives a new session; the copied one stays refused.
    assert log_in(operator).status_code == 302
    assert operator.get("/operator/sources").status_code == 200
    assert is_refused(browser(copied).get("/operator/sources"))


def test_a_new_password_ends_the_other_sessions_and_keeps_this_one(operated):
    app, browser, source_id = operated
    laptop, phone = browser(), browser()
    assert log_in(laptop).status_code == 302
    assert log_in(phone).status_code == 302
    phone_token = _csrf(phone.get("/operator/sources").text)

    form = _csrf(laptop.get("/operator/password").text)
    wrong = laptop.post(
        "/operator/password",
        data={"csrf_token": form, "password": "not it", "new_password": NEW_PASSWORD,
              "confirm_password": NEW_PASSWORD},
    )  # fmt: skip
    assert wrong.status_code == 400 and "current password is not right" in wrong.text
    assert phone.get("/operator/sources").status_code == 200  # a failed attempt ends nothing

    changed = laptop.post(
        "/operator/password",
        data={"csrf_token": form, "password": PASSWORD, "new_password": NEW_PASSWORD,
              "confirm_password": NEW_PASSWORD},
    )  # fmt: skip
    assert changed.status_code == 302 and changed.headers["Location"] == "/operator/sources"

    # This session goes on (with a fresh cookie), and can still change things.
    page = laptop.get("/operator/sources")
    assert page.status_code == 200 and "Your password is changed" in page.text
    assert set_trust(laptop, source_id, 70, _csrf(page.text)).status_code == 302
    assert source_row(app, source_id).trust == 70

    # The other session is over: its post is refused and changes nothing (posted first, while
    # the phone still holds the old cookie: the refusal below clears it), then its pages are refused.
    assert is_refused(set_trust(phone, source_id, 10, phone_token))
    assert source_row(app, source_id).trust == 70
    assert is_refused(phone.get("/operator/sources"))

    assert log_in(browser(), PASSWORD).status_code == 401
    assert log_in(browser(), NEW_PASSWORD).status_code == 302
