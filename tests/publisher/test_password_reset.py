"""A volunteer who forgot their password sets a new one through an emailed link, on a phone.

The publisher is served on loopback with no SMTP server, so the email lands in the outbox
table (publisher.mail), where the test reads the link as the volunteer would read it.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from publisher import mail
from tests.conftest import assert_accessible_without_script
from tests.publisher.conftest import store_of

EMAIL, OLD, NEW = "volunteer@mitcham-walkers.example", "walk-on-tuesdays", "walk-on-wednesdays"


@pytest.fixture
def volunteer(publisher_app, live_publisher):
    store = store_of(publisher_app)
    walkers = store.add_group("Mitcham Walkers")
    store.add_user(EMAIL, OLD, "editor", walkers.id)
    return store


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _emailed_link(store) -> str:
    (kept,) = mail.outbox(store.engine)
    assert kept.recipients == EMAIL and "new password" in kept.subject
    return re.search(r"https?://\S+/admin/reset/\S+", kept.body).group(0)


def _ask_for_link(client: httpx.Client, email: str) -> httpx.Response:
    token = _csrf(client.get("/admin/forgot").text)
    return client.post("/admin/forgot", data={"csrf_token": token, "email": email})


def _set_password(client: httpx.Client, link: str, password: str, again: str | None = None) -> httpx.Response:
    form = client.get(link)
    assert form.status_code == 200, form.text
    data = {"csrf_token": _csrf(form.text), "password": password, "password_again": again or password}
    return client.post(link, data=data)


def test_reset_link_sets_a_new_password_once(volunteer, live_publisher):
    with httpx.Client(base_url=live_publisher.url, timeout=10) as client:
        assert "we have sent it a link" in _ask_for_link(client, EMAIL.upper()).text
        link = _emailed_link(volunteer)
        assert link.startswith(live_publisher.url)

        mismatch = _set_password(client, link, NEW, "something else")
        assert mismatch.status_code == 400 and "not the same" in mismatch.text
        assert volunteer.authenticate(EMAIL, OLD) is not None  # nothing changed yet

        done = _set_password(client, link, NEW)
        assert done.status_code == 302 and done.headers["location"].endswith("/admin/login")
        assert volunteer.authenticate(EMAIL, NEW) is not None
        assert volunteer.authenticate(EMAIL, OLD) is None

        again = client.get(link)
        assert again.status_code == 400 and "already been used" in again.text


def test_an_unknown_address_gets_the_same_answer_and_no_email(volunteer, live_publisher):
    with httpx.Client(base_url=live_publisher.url, timeout=10) as client:
        known = _ask_for_link(client, EMAIL)
        unknown = _ask_for_link(client, "nobody@example.org")
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace(EMAIL, "X") == unknown.text.replace("nobody@example.org", "X")
    assert len(mail.outbox(volunteer.engine)) == 1


class _AnHourAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 61 * 60


def test_an_expired_or_cut_short_link_says_what_to_do(publisher_app, volunteer, live_publisher):
    user = volunteer.get_user_by_email(EMAIL)
    secret = publisher_app.config["SECRET_KEY"]
    old = URLSafeTimedSerializer(secret, salt="localfeed-password-reset", signer=_AnHourAgo)
    token = old.dumps({"user": user.id, "seal": "whatever"})
    with httpx.Client(base_url=live_publisher.url, timeout=10) as client:
        expired = client.get(f"/admin/reset/{token}")
        cut = client.get(f"/admin/reset/{token[:-4]}")
    assert expired.status_code == 400 and "expired" in expired.text and "60 minutes" in expired.text
    assert cut.status_code == 400 and "cut short" in cut.text
    assert volunteer.authenticate(EMAIL, OLD) is not None


@pytest.mark.browser
def test_volunteer_resets_a_forgotten_password_on_a_phone(volunteer, live_publisher, chromium, phone):
    page = phone
    page.goto(f"{live_publisher.url}/admin/login")
    page.get_by_role("link", name="Forgotten your password?").click()
    assert_accessible_without_script(chromium, page)
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_role("button", name="Email me a link").click()
    assert "we have sent it a link" in page.locator("main").inner_text()

    page.goto(_emailed_link(volunteer))
    assert_accessible_without_script(chromium, page)
    page.get_by_label("New password for").fill(NEW)
    page.get_by_label("The new password again").fill(NEW)
    page.get_by_role("button", name="Set my new password").click()
    assert "Your new password is set" in page.locator("main").inner_text()

    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password").fill(NEW)
    page.get_by_role("button", name="Log in").click()
    assert page.url.endswith("/admin/")
