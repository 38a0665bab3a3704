"""Operators log in and manage sources; the public asks to be included and sees whom we follow."""

from __future__ import annotations

import re

import pytest

from aggregator.auth import create_operator
from tests.aggregator.conftest import live, source_row
from tests.aggregator.finding import search_ended
from tests.factories import weekly_activity

EMAIL, PASSWORD = "ops@council.example", "correct horse battery"


def _csrf(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


def _post(client, path: str, form_page: str, **data):
    token = _csrf(client.get(form_page).text)
    return client.post(path, data={"csrf_token": token, **data})


def _logged_in(app):
    create_operator(app.extensions["engine"], EMAIL, PASSWORD)
    client = app.test_client()
    response = _post(client, "/operator/login", "/operator/login", email=EMAIL, password=PASSWORD)
    assert response.status_code == 302
    return client


def test_operator_log_in_is_checked_csrf_protected_and_rate_limited(make_aggregator):
    app = make_aggregator()
    create_operator(app.extensions["engine"], EMAIL, PASSWORD)
    with pytest.raises(ValueError, match="already exists"):
        create_operator(app.extensions["engine"], EMAIL, "another long one")
    client = app.test_client()

    assert client.get("/operator/sources").headers["Location"].startswith("/operator/login")
    # Without the form's CSRF token the right password is not enough.
    assert client.post("/operator/login", data={"email": EMAIL, "password": PASSWORD}).status_code == 400
    wrong = _post(client, "/operator/login", "/operator/login", email=EMAIL, password="nope")
    assert wrong.status_code == 401 and "do not match" in wrong.text
    right = _post(
        client, "/operator/login?next=/operator/sources", "/operator/login", email=EMAIL, password=PASSWORD
    )
    assert right.headers["Location"] == "/operator/sources"
    assert client.get("/operator/sources").status_code == 200

    stranger = app.test_client()
    token = _csrf(stranger.get("/operator/login").text)
    statuses = [
        stranger.post(
            "/operator/login", data={"csrf_token": token, "email": EMAIL, "password": "guess"}
        ).status_code
        for _ in range(11)
    ]
    assert statuses[:8] == [401] * 8 and statuses[-1] == 429


def test_operator_adds_a_home_page_approves_pauses_and_removes(make_feed, make_aggregator):
    feed = make_feed()
    feed.put(weekly_activity(id="https://walkers.example/1"))
    app = make_aggregator(PUBLIC_URL="https://agg.example")
    client = _logged_in(app)

    # The publisher's home page is given; its JSON-LD Dataset leads to the feed.
    added = _post(client, "/operator/sources", "/operator/sources", url=f"{feed.base_url}/", trust="60")
    assert added.status_code == 302
    row = search_ended(app, 1)  # the feed is found by a job
    assert (row.feed_url, row.kind, row.name, row.state, row.trust) == (
        feed.feed_url,
        "localfeed",
        "Test Publisher",
        "pending",
        60,
    )
    assert client.get("/sources.json").json["sources"] == []  # pending: not followed yet
    assert live(app) == {}

    _post(client, "/operator/sources/1/approve", "/operator/sources")
    listed = client.get("/sources.json").json["sources"]
    assert [(s["name"], s["feed_url"], s["kind"]) for s in listed] == [
        ("Test Publisher", feed.feed_url, "localfeed")
    ]
    assert listed[0]["page"] == "https://agg.example/sources/1"
    assert source_row(app, 1).state == "approved"

    # A page that only has <link rel="alternate"> works too; a page with neither says so.
    _post(client, "/operator/sources", "/operator/sources", url=f"{feed.base_url}/linked")
    assert "already followed as source 1" in search_ended(app, 2).last_error["cause"]
    _post(client, "/operator/sources", "/operator/sources", url=f"{feed.base_url}/status/200")
    assert "neither a feed we can read" in search_ended(app, 3).last_error["cause"]
    assert "No feed was found." in client.get("/sources/3").text

    _post(client, "/operator/sources/1/pause", "/operator/sources")
    assert source_row(app, 1).state == "paused"
    _post(client, "/operator/sources/1/trust", "/operator/sources", trust="101")
    assert "out of range" in client.get("/operator/sources").text
    _post(client, "/operator/sources/1/remove", "/operator/sources")
    assert client.get("/sources/1").status_code == 404


def test_asking_to_be_included_queues_a_request_and_fetches_nothing(make_feed, make_aggregator):
    feed = make_feed()
    app = make_aggregator()
    public = app.test_client()
    refused = _post(public, "/join", "/join", url="not a url", contact="nobody")
    assert refused.status_code == 400
    assert "starting with https://" in refused.text and "email address" in refused.text

    done = _post(
        public,
        "/join",
        "/join",
        name="Mitcham Walkers",
        url=f"{feed.base_url}/",
        contact="sec@walkers.example",
    )
    assert done.status_code == 200 and "waiting for an operator" in done.text
    assert feed.requests == []  # nothing fetched for an anonymous visitor
    row = source_row(app, 1)
    assert (row.state, row.requested_by) == ("pending", "sec@walkers.example")
    assert public.get("/sources/1").status_code == 404  # a request stays private

    operator = _logged_in(app)
    page = operator.get("/operator/sources").text
    assert "Requested by sec@walkers.example" in page
    _post(operator, "/operator/sources/1/approve", "/operator/sources")
    row = search_ended(app, 1)
    assert (row.state, row.feed_url) == ("approved", feed.feed_url)  # discovered on approval, by a job
    assert public.get("/sources/1").status_code == 200
