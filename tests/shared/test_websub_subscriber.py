"""Signatures, discovery and the subscriber's checks."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from flask import Flask, Response

from federation.fetch import Fetched, GuardedClient
from federation.websub import (
    Discovery,
    check_verification,
    discover,
    new_callback_token,
    new_secret,
    renew_due,
    sign,
    verify,
)
from federation.websub.subscriber import granted_lease, verify_delivery

BODY = b'{"items":[],"next":"https://example.org/feed?afterChangeNumber=3"}'


def test_signature_round_trip_and_every_recognised_algorithm():
    header = sign("secret", BODY)
    assert header == "sha256=" + hmac.new(b"secret", BODY, hashlib.sha256).hexdigest()
    assert verify("secret", BODY, header) and verify(b"secret", BODY, header)
    for method in ("sha1", "sha384", "sha512"):
        theirs = f"{method}={hmac.new(b'secret', BODY, getattr(hashlib, method)).hexdigest()}"
        assert verify("secret", BODY, theirs)
    assert verify("secret", BODY, header.upper().replace("SHA256", "sha256"))  # hex case does not matter


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256",
        "sha256=",
        "md5=" + hashlib.md5(BODY).hexdigest(),
        "sha256=nothex",
        sign("other secret", BODY),
        sign("secret", BODY + b"tampered"),
    ],
)
def test_unsigned_and_badly_signed_bodies_are_rejected(header):
    assert not verify("secret", BODY, header)
    assert not verify_delivery("secret", BODY, {"X-Hub-Signature": header} if header is not None else {})


def test_an_empty_secret_verifies_nothing():
    assert not verify("", BODY, sign("x", BODY))


def fetched(body: str, content_type: str, links: tuple[str, ...] = ()) -> Fetched:
    headers = httpx.Headers([("content-type", content_type)] + [("link", link) for link in links])
    return Fetched("https://pub.example/feeds/a", 200, headers, body.encode())


def test_discovery_from_link_headers_wins_and_resolves_relative_urls():
    found = discover(
        fetched(
            '<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="https://wrong.example/"/></feed>',
            "application/atom+xml",
            ('</websub>; rel="hub", <https://pub.example/feeds/activities>; rel="self"',),
        )
    )
    assert found.hub == "https://pub.example/websub"
    assert found.self_url == "https://pub.example/feeds/activities"
    # one header per link, rel listing several values
    links = ('<https://h.example/>; rel="hub alternate"', "</a>; rel=self")
    split = discover(fetched("{}", "application/json", links))
    assert (split.hub, split.self_url) == ("https://h.example/", "https://pub.example/a")


def test_discovery_from_atom_rss_and_html_documents():
    atom = """<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
      <link rel="self" href="https://pub.example/feeds/activities.atom"/>
      <link rel="hub" href="/websub"/>
      <entry><link rel="hub" href="https://evil.example/"/></entry></feed>"""
    assert discover(fetched(atom, "application/atom+xml")) == Discovery(
        "https://pub.example/websub", "https://pub.example/feeds/activities.atom"
    )
    rss = """<rss xmlns:atom="http://www.w3.org/2005/Atom"><channel>
      <atom:link rel="hub" href="https://hub.example/"/><atom:link rel="self" href="https://pub.example/rss"/>
      <item><atom:link rel="hub" href="https://evil.example/"/></item></channel></rss>"""
    found = discover(fetched(rss, "application/rss+xml"))
    assert (found.hub, found.self_url) == ("https://hub.example/", "https://pub.example/rss")
    html = """<!doctype html><html><head><link rel="stylesheet" href="/s.css">
      <link rel="hub" href="https://hub.example/"><link rel="self" href="/feeds/activities"></head>
      <body><link rel="hub" href="https://evil.example/"></body></html>"""
    found = discover(fetched(html, "text/html; charset=utf-8"))
    assert (found.hub, found.self_url) == ("https://hub.example/", "https://pub.example/feeds/activities")
    body_only = "<html><body><link rel='hub' href='https://evil.example/'></body></html>"
    assert discover(fetched(body_only, "text/html")).hub is None
    assert discover(fetched('{"hub": "x"}', "application/json")) == Discovery(None, None)


def test_discover_on_a_real_fetch(serve):
    app = Flask(__name__)

    @app.get("/feed")
    def feed():
        return Response("{}", mimetype="application/json", headers={"Link": '</websub>; rel="hub"'})

    site = serve(app)
    with GuardedClient(allow_private=True) as client:
        found = discover(client.get(f"{site.url}/feed"))
    assert found.hub == f"{site.url}/websub"
    assert found.self_url is None  # the caller decides what to do without a self link


def test_check_verification_answers_only_what_was_asked():
    asked = {("https://pub.example/feed", "subscribe")}

    def expected(topic, mode):
        return (topic, mode) in asked

    good = {
        "hub.mode": "subscribe",
        "hub.topic": "https://pub.example/feed",
        "hub.challenge": "c-1",
        "hub.lease_seconds": "864000",
    }
    assert check_verification(good, expected) == "c-1"
    assert granted_lease(good) == 864000
    assert check_verification(good | {"hub.topic": "https://pub.example/other"}, expected) is None
    assert check_verification(good | {"hub.mode": "unsubscribe"}, expected) is None
    assert check_verification({k: v for k, v in good.items() if k != "hub.challenge"}, expected) is None
    assert check_verification({k: v for k, v in good.items() if k != "hub.lease_seconds"}, expected) is None
    assert check_verification(good | {"hub.mode": "denied"}, expected) is None


def test_secrets_and_tokens_are_unguessable_and_fit_the_limits():
    secrets_made = {new_secret() for _ in range(100)}
    tokens = {new_callback_token() for _ in range(100)}
    assert len(secrets_made) == len(tokens) == 100
    assert all(32 <= len(s.encode()) < 200 for s in secrets_made)
    assert all(t.replace("-", "").replace("_", "").isalnum() for t in tokens)  # URL-safe


def test_renewal_is_due_within_the_margin():
    expires = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert not renew_due(expires, expires - timedelta(days=2))
    assert renew_due(expires, expires - timedelta(hours=23))
    assert renew_due(expires, expires - timedelta(hours=5), margin=timedelta(hours=6))
    assert not renew_due(expires, expires - timedelta(hours=7), margin=timedelta(hours=6))
    assert renew_due(None, expires)
