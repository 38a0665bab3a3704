"""Fixtures for the shared protocol code: a second loopback address playing "the internet".

127.0.0.2 is a loopback address like 127.0.0.1, but an ``AddressPolicy`` can be told to
treat it as public while 127.0.0.1 stays private, so a redirect from "outside" to the
operator's own machine can be shown for real, with no resolver patched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schema.fetch import AddressPolicy
from tests.conftest import LiveServer

PUBLIC_HOST = "127.0.0.2"


@pytest.fixture
def serve_public() -> Iterator:
    """``serve_public(app)`` serves ``app`` on 127.0.0.2, which ``public_policy`` treats as public."""
    servers: list[LiveServer] = []

    def _serve(app) -> LiveServer:
        server = LiveServer(app, host=PUBLIC_HOST).start()
        servers.append(server)
        return server

    yield _serve
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def public_policy() -> AddressPolicy:
    return AddressPolicy.treating_as_public(f"{PUBLIC_HOST}/32")
