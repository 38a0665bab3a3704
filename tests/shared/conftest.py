"""Fixtures for the shared protocol code: a second loopback address playing "the internet".

127.0.0.2 is a loopback address like 127.0.0.1, but an ``AddressPolicy`` can be told to
treat it as public while 127.0.0.1 stays private, so a redirect from "outside" to the
operator's own machine can be shown for real, with no resolver patched.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from federation.fetch import AddressPolicy

PUBLIC_HOST = "127.0.0.2"


@pytest.fixture
def serve_public(serve) -> Callable:
    """``serve_public(app)`` serves ``app`` on 127.0.0.2, which ``public_policy`` treats as public."""
    return partial(serve, host=PUBLIC_HOST)


@pytest.fixture
def public_policy() -> AddressPolicy:
    return AddressPolicy.treating_as_public(f"{PUBLIC_HOST}/32")
