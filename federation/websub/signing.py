"""HMAC signatures of WebSub content distribution (``X-Hub-Signature``).

The hub signs the raw body with the subscriber's ``hub.secret``; the subscriber recomputes
the signature over the bytes it received, with a constant-time compare, and ignores the
delivery when they differ (WebSub §8).
"""

from __future__ import annotations

import hashlib
import hmac

# The algorithm names WebSub recognises; sha1 is accepted on input for old hubs, never produced.
ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def _key(secret: bytes | str) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: bytes | str, body: bytes, method: str = "sha256") -> str:
    """The ``X-Hub-Signature`` value for ``body``: ``"sha256=<hex HMAC>"``."""
    if method not in ALGORITHMS or method == "sha1":
        raise ValueError(f"Cannot sign with {method!r}: use sha256, sha384 or sha512.")
    return f"{method}={hmac.new(_key(secret), body, ALGORITHMS[method]).hexdigest()}"


def verify(secret: bytes | str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is a valid signature of ``body`` under ``secret``.

    Missing, malformed or unknown-algorithm headers are simply not valid: a subscriber
    that asked for signed deliveries must treat an unsigned one as forged.
    """
    if not header or not secret:
        return False
    method, sep, given = header.strip().partition("=")
    digest = ALGORITHMS.get(method.strip().lower())
    if not sep or digest is None:
        return False
    expected = hmac.new(_key(secret), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())
