"""The guarded client against hostile servers: compression bombs, dribbled headers, lying lengths.

A well-behaved server cannot lie, so these cases are answered byte by byte by the
hostile server on loopback (tests/hostile/server.py). Memory is measured in a child
process, so what the fetch costs is not hidden in what the test process already holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from functools import cache

import pytest

from federation import content_coding
from federation.fetch import AddressPolicy, FetchError, FetchTimeout, GuardedClient, TooLarge
from tests.hostile.server import HostileServer, Wire

BOMB_ZEROS = 200 * 1024 * 1024  # what the bombs unfold to: far more than the fetch may hold
MAX_BYTES = 1_000_000
GZIP, ZLIB, RAW_DEFLATE = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS


def compressed(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


@cache
def compressed_zeros(size: int, wbits: int) -> bytes:
    """``size`` zero bytes compressed, built a megabyte at a time (the zeros never exist at once)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    megabyte = bytes(1024 * 1024)
    parts = [packer.compress(megabyte) for _ in range(size // len(megabyte))]
    return b"".join(parts) + packer.flush()


def answer(body: bytes, encoding: str) -> object:
    def handler(wire: Wire) -> None:
        wire.respond(body, "application/json", headers=[("Content-Encoding", encoding)])

    return handler


def dribbled_headers(wire: Wire) -> None:
    """Headers one byte at a time, each well within any read timeout, never ending."""
    wire.send(b"HTTP/1.1 200 OK\r\n")
    while True:
        wire.send(b"X")
        wire.sleep(0.1)


def endless_slow_body(wire: Wire) -> None:
    wire.send(wire.head(200, [("Content-Type", "text/plain")]))
    while True:
        wire.send(b".")
        wire.sleep(0.1)


def longer_length_then_hang_up(wire: Wire) -> None:
    wire.send(wire.head(200, [("Content-Type", "text/plain"), ("Content-Length", "1000")]) + b"only this")


def longer_length_then_silence(wire: Wire) -> None:
    wire.send(wire.head(200, [("Content-Type", "text/plain"), ("Content-Length", "1000")]) + b"only this")
    wire.sleep(30)


def shorter_length(wire: Wire) -> None:
    wire.send(wire.head(200, [("Content-Type", "text/plain"), ("Content-Length", "5")]) + b"hello, and more")


def truncated_gzip(wire: Wire) -> None:
    body = compressed(b'{"items": []}' * 100, GZIP)[:-12]
    wire.send(wire.head(200, [("Content-Encoding", "gzip")]) + body)  # ends by closing


def echo_accept_encoding(wire: Wire) -> None:
    wire.respond(wire.headers.get("accept-encoding", "").encode(), "text/plain")


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    payload = b'{"items": ["a", "b"]}' * 50
    server = HostileServer(
        {
            "/bomb/gzip-gzip": answer(compressed(compressed_zeros(BOMB_ZEROS, GZIP), GZIP), "gzip, gzip"),
            "/bomb/deflate-raw": answer(compressed_zeros(BOMB_ZEROS, RAW_DEFLATE), "deflate"),
            "/bomb/deflate-zlib": answer(compressed_zeros(20 * MAX_BYTES, ZLIB), "deflate"),
            "/ok/gzip-deflate": answer(compressed(compressed(payload, GZIP), ZLIB), "gzip, deflate"),
            "/ok/raw-deflate": answer(compressed(payload, RAW_DEFLATE), "deflate"),
            "/ok/x-gzip": answer(compressed(payload, GZIP), "x-gzip, identity"),
            "/refused/zstd": answer(payload, "zstd"),
            "/refused/four-layers": answer(payload, "gzip, gzip, gzip, gzip"),
            "/refused/br": answer(payload, "br"),
            "/refused/corrupt": answer(b"\x1f\x8b\x08\x00 this is not gzip data", "gzip"),
            "/refused/truncated": truncated_gzip,
            "/slow/headers": dribbled_headers,
            "/slow/body": endless_slow_body,
            "/lying/longer-closed": longer_length_then_hang_up,
            "/lying/longer-open": longer_length_then_silence,
            "/lying/shorter": shorter_length,
            "/echo/accept-encoding": echo_accept_encoding,
        }
    )
    yield server
    server.stop()


# The fetch run alone in a fresh interpreter: its peak resident memory, before and after.
CHILD = textwrap.dedent("""
    import json, resource, sys
    from federation.fetch import GuardedClient, TooLarge

    def peak_kb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux

    with GuardedClient(allow_private=True, max_bytes=int(sys.argv[2])) as client:
        before = peak_kb()
        try:
            client.get(sys.argv[1])
            outcome = "fetched"
        except TooLarge as exc:
            outcome = exc.reason
        print(json.dumps({"outcome": outcome, "grew_kb": peak_kb() - before}))
""")


@pytest.mark.parametrize(("path", "layer"), [("/bomb/gzip-gzip", "gzip"), ("/bomb/deflate-raw", "deflate")])
def test_a_compression_bomb_is_stopped_without_unfolding_it(hostile, path, layer):
    body_size = len(compressed_zeros(BOMB_ZEROS, GZIP if layer == "gzip" else RAW_DEFLATE))
    assert body_size < BOMB_ZEROS // 500  # a small body promising 200 MB

    run = subprocess.run(
        [sys.executable, "-c", CHILD, f"{hostile.url}{path}", str(MAX_BYTES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(run.stdout)
    assert result["outcome"] == (
        f"the response is larger than {MAX_BYTES:,} bytes once its {layer} compression is undone"
    )
    # The limit plus working buffers, far from the 200 MB the body unfolds to (+100 MB is a
    # generous bound against allocator noise, not a measure of speed or thrift).
    assert result["grew_kb"] < 100 * 1024, result


def test_every_layer_is_bounded_and_honest_bodies_decode(hostile):
    with GuardedClient(allow_private=True, max_bytes=MAX_BYTES) as client:
        with pytest.raises(TooLarge, match="once its deflate compression is undone"):
            client.get(f"{hostile.url}/bomb/deflate-zlib")
        expected = b'{"items": ["a", "b"]}' * 50
        for path in ("/ok/gzip-deflate", "/ok/raw-deflate", "/ok/x-gzip"):
            assert client.get(f"{hostile.url}{path}").content == expected, path
        # A limit the decoded body only just fits, but its raw (compressed) bytes do not matter to.
        exact = client.request("GET", f"{hostile.url}/ok/gzip-deflate", max_bytes=len(expected))
        assert exact.content == expected
        with pytest.raises(TooLarge):
            client.request("GET", f"{hostile.url}/ok/gzip-deflate", max_bytes=len(expected) - 1)


def test_only_encodings_the_client_can_bound_are_asked_for(hostile):
    with GuardedClient(allow_private=True) as client:
        asked = client.get(f"{hostile.url}/echo/accept-encoding").text
    assert asked == content_coding.accepted_codings()
    assert "zstd" not in asked


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/refused/zstd", "encoded with 'zstd', which this client cannot decode"),
        ("/refused/four-layers", "compressed 4 times over"),
        ("/refused/corrupt", "its gzip data is corrupt"),
        ("/refused/truncated", "ended in the middle of its gzip data"),
    ],
)
def test_encodings_that_cannot_be_decoded_safely_are_refused_with_a_reason(hostile, path, reason):
    with GuardedClient(allow_private=True) as client, pytest.raises(FetchError) as refused:
        client.get(f"{hostile.url}{path}")
    assert reason in refused.value.reason
    assert refused.value.hint  # and what to do about it


def test_brotli_is_refused_when_no_bounded_brotli_is_installed(hostile):
    if "br" in content_coding.accepted_codings():
        pytest.skip("a Brotli module that bounds its output is installed here")
    with GuardedClient(allow_private=True) as client, pytest.raises(FetchError) as refused:
        client.get(f"{hostile.url}/refused/br")
    assert "Brotli 1.2 or later" in str(refused.value)


@pytest.mark.parametrize("path", ["/slow/headers", "/slow/body", "/lying/longer-open"])
def test_the_total_deadline_covers_headers_and_body(hostile, path):
    # Each byte comes well within the read timeout: only the total deadline can end these.
    client = GuardedClient(allow_private=True, read_timeout=3.0, total_timeout=1.0)
    started = time.monotonic()
    with client, pytest.raises(FetchTimeout) as timed_out:
        client.get(f"{hostile.url}{path}")
    assert time.monotonic() - started < 5  # bounded, not hanging (not a speed check)
    assert timed_out.value.reason.endswith("(the whole request took longer than 1 second)")


def test_a_lying_content_length_ends_cleanly(hostile):
    with GuardedClient(allow_private=True) as client:
        with pytest.raises(FetchError, match="connection failed"):
            client.get(f"{hostile.url}/lying/longer-closed")  # hung up before the promised 1000 bytes
        # Content-Length frames the message: what follows it is not part of the body.
        assert client.get(f"{hostile.url}/lying/shorter").content == b"hello"
        assert client.get(f"{hostile.url}/ok/x-gzip").status == 200  # and the client carries on


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("2002:a9fe:a9fe::", "a 6to4 address that reaches 169.254.169.254, a link-local address"),
        ("2002:7f00:1::1", "a 6to4 address that reaches 127.0.0.1, a loopback address"),
        ("2002:c0a8:101::", "a 6to4 address that reaches 192.168.1.1, a private network address"),
        ("2002:c058:6301::", "reaches 192.88.99.1, the deprecated 6to4 relay anycast range"),
        ("192.88.99.1", "the deprecated 6to4 relay anycast range"),
        # Teredo: server 93.184.216.34 (public), client 10.0.0.1 stored obfuscated (bits inverted).
        ("2001:0:5db8:d822::f5ff:fffe", "a Teredo address whose client is 10.0.0.1, a private network"),
        ("2001:0:a9fe:a9fe::", "a Teredo address whose server is 169.254.169.254, a link-local"),
        ("64:ff9b::a9fe:a9fe", "(which reaches 169.254.169.254), a link-local address"),
        ("64:ff9b:1::a00:1", "(which reaches 10.0.0.1), a private network address"),
        ("::ffff:a9fe:a9fe", "(which reaches 169.254.169.254), a link-local address"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("fec0::1", "site-local"),
    ],
)
def test_addresses_carrying_a_non_public_ipv4_are_refused_naming_it(address, named):
    assert named in AddressPolicy().refusal(address)
    assert AddressPolicy(allow_private=True).refusal(address) is None


@pytest.mark.parametrize(
    "address",
    ["2002:5db8:d822::1", "64:ff9b::5db8:d822", "::ffff:93.184.216.34", "93.184.216.34", "2606:2800:220::1"],
)
def test_addresses_reaching_a_public_host_are_allowed(address):
    assert AddressPolicy().refusal(address) is None


def test_teredo_is_refused_even_between_public_hosts():
    # Server and client both public (93.184.216.34 and 8.8.8.8): a tunnel, not a globally routable host.
    assert "Teredo" in AddressPolicy().refusal("2001:0:5db8:d822::f7f7:f7f7")


def test_networks_treated_as_public_also_count_inside_ipv6_forms():
    policy = AddressPolicy.treating_as_public("127.0.0.2/32")
    assert policy.refusal("::ffff:127.0.0.2") is None
    assert "127.0.0.1" in policy.refusal("2002:7f00:1::")
