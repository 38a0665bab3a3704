"""Editors' sessions end: a cookie copied before logout, or before a new password, is refused.

The publisher served on loopback; real HTTP clients whose raw ``session`` cookie is copied
the way a thief would; the stored activities and tokens checked after each refused post.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from publisher import editing
from publisher.store import Group, Store
from tests.factories import weekly_activity
from tests.publisher.conftest import store_of

PASSWORD, NEW_PASSWORD = "correct horse battery", "a new horse, stapled"
EDITOR, ADMIN = "walker@example.org", "admin@example.org"


def _csrf(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


@pytest.fixture
def browser(live_publisher) -> Iterator[Callable[..., httpx.Client]]:
    """``browser(cookie=None)``: a client of the served publisher, carrying ``cookie`` as its session."""
    clients: list[httpx.Client] = []

    def _browser(cookie: str | None = None) -> httpx.Client:
        client = httpx.Client(base_url=live_publisher.url, timeout=10)
        if cookie is not None:
            client.cookies.set("session", cookie)
        clients.append(client)
        return client

    yield _browser
    for client in clients:
        client.close()


@pytest.fixture
def walk(publisher_app, live_publisher) -> tuple[Store, str, Group]:
    """An editor and an administrator, and the editor's group's one activity (its slug)."""
    store = store_of(publisher_app)
    walkers = store.add_group("Mitcham Walkers")
    store.add_user(EDITOR, PASSWORD, "editor", walkers.id)
    store.add_user(ADMIN, PASSWORD, "admin")
    saved = editing.save_activity(store, walkers, weekly_activity(), base_url=live_publisher.url)
    assert saved.ok, saved.problems
    return store, saved.slug, walkers


def log_in(client: httpx.Client, email: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the CSRF token of the new session."""
    token = _csrf(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"csrf_token": token, "email": email, "password": password})
    assert response.status_code == 302, response.text
    return _csrf(client.get("/admin/").text)


def set_status(client: httpx.Client, slug: str, status: str, token: str) -> httpx.Response:
    return client.post(f"/admin/activities/{slug}/status", data={"csrf_token": token, "status": status})


def status_of(store: Store, slug: str) -> str:
    return store.get_activity(slug).live_data.get("status", "scheduled")


def is_refused(response: httpx.Response) -> bool:
    return response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_a_session_cookie_copied_before_logout_is_refused_after_it(walk, browser):
    store, slug, _walkers = walk
    editor = browser()
    token = log_in(editor, EDITOR)
    copied = editor.cookies["session"]

    # Before the logout the copy works, posts included: the refusal below is the logout's doing.
    thief = browser(copied)
    assert thief.get("/admin/").status_code == 200
    assert set_status(thief, slug, "paused", token).status_code == 302
    assert status_of(store, slug) == "paused"

    assert editor.post("/admin/logout", data={"csrf_token": token}).status_code == 302

    replayed = browser(copied)
    assert is_refused(set_status(replayed, slug, "cancelled", token))
    assert status_of(store, slug) == "paused"  # nothing changed
    assert is_refused(replayed.get("/admin/"))

    # Logging in again gives a new session; the copied one stays refused.
    token = log_in(editor, EDITOR)
    assert editor.get("/admin/").status_code == 200
    assert is_refused(browser(copied).get("/admin/"))


def test_a_new_password_ends_the_users_other_sessions(walk, browser):
    store, slug, walkers = walk
    admin, admin_elsewhere, editor = browser(), browser(), browser()
    admin_token = log_in(admin, ADMIN)
    elsewhere_token = log_in(admin_elsewhere, ADMIN)
    editor_token = log_in(editor, EDITOR)
    editor_id = next(user.id for user in store.list_users() if user.email == EDITOR)
    admin_id = next(user.id for user in store.list_users() if user.email == ADMIN)

    # An administrator sets the editor's password: the editor's session ends.
    set_editor = admin.post(
        f"/admin/editors/{editor_id}/password", data={"csrf_token": admin_token, "password": NEW_PASSWORD}
    )
    assert set_editor.status_code == 302
    assert is_refused(set_status(editor, slug, "cancelled", editor_token))
    assert status_of(store, slug) == "scheduled"
    assert is_refused(editor.get("/admin/"))
    log_in(browser(), EDITOR, NEW_PASSWORD)

    # The administrator sets their own: this session goes on, with a fresh cookie; the other ends.
    old_cookie = admin.cookies["session"]
    own = admin.post(
        f"/admin/editors/{admin_id}/password", data={"csrf_token": admin_token, "password": NEW_PASSWORD}
    )
    assert own.status_code == 302 and admin.cookies["session"] != old_cookie
    page = admin.get("/admin/tokens")
    assert page.status_code == 200 and "The new password is set." in page.text
    made = admin.post(
        "/admin/tokens", data={"csrf_token": _csrf(page.text), "group": walkers.id, "label": "site"}
    )
    assert made.status_code == 200 and len(store.list_tokens(walkers.id)) == 1

    refused = admin_elsewhere.post(
        "/admin/tokens", data={"csrf_token": elsewhere_token, "group": walkers.id, "label": "stolen"}
    )
    assert is_refused(refused)
    assert [token.label for token in store.list_tokens(walkers.id)] == ["site"]
    assert is_refused(browser(old_cookie).get("/admin/"))
