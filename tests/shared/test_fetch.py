"""The guarded HTTP client against real servers on loopback."""

from __future__ import annotations

import time

import pytest
from flask import Flask, Response, redirect, request

from federation.fetch import (
    AddressPolicy,
    BlockedAddress,
    FetchError,
    FetchTimeout,
    GuardedClient,
    TooLarge,
    TooManyRedirects,
)


def outside_world() -> Flask:
    """A small site with the behaviours a hostile or broken source may have."""
    app = Flask(__name__)

    @app.get("/feed")
    def feed():
        return {"items": [], "echo_auth": request.headers.get("Authorization")}

    @app.get("/missing")
    def missing():
        return "gone fishing", 404

    @app.get("/hop/<int:left>")
    def hop(left: int):
        return redirect(f"/hop/{left - 1}" if left else "/feed")

    @app.route("/to", methods=["GET", "POST"])
    def to():
        return redirect(request.args["url"], code=int(request.args.get("code", 302)))

    @app.route("/echo", methods=["GET", "POST"])
    def echo():
        return {
            "method": request.method,
            "body": request.get_data(as_text=True),
            "auth": request.headers.get("Authorization"),
        }

    @app.get("/big")
    def big():
        return Response(b"x" * 5000, mimetype="text/plain")

    @app.get("/big-streamed")
    def big_streamed():
        # A generator has no Content-Length: the limit must hold while reading.
        return Response((b"x" * 1000 for _ in range(5)), mimetype="text/plain")

    @app.get("/trickle")
    def trickle():
        def drip():
            for _ in range(40):
                time.sleep(0.1)
                yield b"."

        return Response(drip(), mimetype="text/plain")

    return app


def test_private_address_refused_with_the_fix_named_and_allowed_when_allowed(serve):
    site = serve(outside_world())
    with GuardedClient() as client, pytest.raises(BlockedAddress) as refused:
        client.get(f"{site.url}/feed")
    assert refused.value.url == f"{site.url}/feed"
    assert "127.0.0.1" in refused.value.reason and "loopback" in refused.value.reason
    assert "ALLOW_PRIVATE_NETWORKS" in str(refused.value)

    with GuardedClient(allow_private=True) as client:
        fetched = client.get(f"{site.url}/feed")
        assert fetched.status == 200
        assert fetched.content_type == "application/json"
        assert fetched.json()["items"] == []
        # error statuses are the caller's to interpret, not exceptions
        missing = client.get(f"{site.url}/missing")
        assert (missing.status, missing.text) == (404, "gone fishing")


def test_host_names_are_resolved_and_checked(serve):
    site = serve(outside_world())
    with GuardedClient() as client, pytest.raises(BlockedAddress, match=r"resolves to 127\.0\.0\.1"):
        client.get(f"http://localhost:{site.port}/feed")


def test_redirect_from_public_to_private_refused(serve, serve_public, public_policy):
    private = serve(outside_world())
    public = serve_public(outside_world())
    with GuardedClient(policy=public_policy) as client:
        assert client.get(f"{public.url}/feed").status == 200
        with pytest.raises(BlockedAddress) as refused:
            client.get(f"{public.url}/to?url={private.url}/feed")
    assert refused.value.url == f"{private.url}/feed"
    assert "127.0.0.1" in str(refused.value)


def test_redirects_followed_up_to_the_limit_with_the_final_url_reported(serve):
    site = serve(outside_world())
    with GuardedClient(allow_private=True, max_redirects=3) as client:
        fetched = client.get(f"{site.url}/hop/2")  # /hop/2 → /hop/1 → /hop/0 → /feed
        assert fetched.url == f"{site.url}/feed"
        with pytest.raises(TooManyRedirects, match="more than 3 times"):
            client.get(f"{site.url}/hop/3")


def test_redirect_methods_and_credentials(serve, serve_public):
    site = serve(outside_world())
    other_origin = serve_public(outside_world())
    with GuardedClient(allow_private=True) as client:
        after_303 = client.post(f"{site.url}/to?code=303&url=/echo", b"payload").json()
        assert (after_303["method"], after_303["body"]) == ("GET", "")
        after_307 = client.post(f"{site.url}/to?code=307&url=/echo", b"payload").json()
        assert (after_307["method"], after_307["body"]) == ("POST", "payload")

        secret = {"Authorization": "Bearer s3cret"}
        same_origin = client.get(f"{site.url}/to?url=/echo", headers=secret).json()
        assert same_origin["auth"] == "Bearer s3cret"
        elsewhere = client.get(f"{site.url}/to?url={other_origin.url}/echo", headers=secret).json()
        assert elsewhere["auth"] is None


def test_oversized_bodies_are_cut_off(serve):
    site = serve(outside_world())
    with GuardedClient(allow_private=True, max_bytes=4000) as client:
        with pytest.raises(TooLarge, match="larger than 4,000 bytes"):
            client.get(f"{site.url}/big")
        with pytest.raises(TooLarge):
            client.get(f"{site.url}/big-streamed")
        assert len(client.request("GET", f"{site.url}/big", max_bytes=5000).content) == 5000


def test_slow_server_hits_the_total_deadline(serve):
    site = serve(outside_world())
    # Each byte arrives well within the read timeout; only the total deadline can stop it.
    client = GuardedClient(allow_private=True, read_timeout=2.0, total_timeout=0.5)
    with client, pytest.raises(FetchTimeout, match=r"longer than 0\.5 seconds"):
        client.get(f"{site.url}/trickle")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/feed", "gopher://example.org/"])
def test_non_http_schemes_refused(url):
    with (
        GuardedClient(allow_private=True) as client,
        pytest.raises(BlockedAddress, match="http:// or https://"),
    ):
        client.get(url)


def test_unresolvable_and_unreachable_hosts_explain_themselves(serve):
    with GuardedClient(allow_private=True) as client:
        with pytest.raises(FetchError, match="does not resolve"):
            client.get("http://no-such-host.invalid/feed")
        site = serve(outside_world())
        site.stop()
        with pytest.raises(FetchError, match="connection failed"):
            client.get(f"{site.url}/feed")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a00:1", "private"),
    ],
)
def test_policy_refuses_every_kind_of_non_public_address(address, kind):
    assert kind in AddressPolicy().refusal(address)
    assert AddressPolicy(allow_private=True).refusal(address) is None


def test_policy_accepts_public_addresses_and_named_networks():
    assert AddressPolicy().refusal("93.184.216.34") is None
    assert AddressPolicy().refusal("2606:2800:220:1::1") is None
    policy = AddressPolicy.treating_as_public("127.0.0.2/32")
    assert policy.refusal("127.0.0.2") is None
    assert "loopback" in policy.refusal("127.0.0.1")
