"""A W3C WebSub hub and subscriber toolkit, mounted by both the publisher and the aggregator.

Both apps are hubs and the aggregator is also a subscriber: the protocol is written once, here.

- :mod:`.signing` — ``X-Hub-Signature`` HMACs;
- :mod:`.hub` — :class:`Hub`: tables, the ``POST /websub`` blueprint, intent verification,
  the delivery outbox with retries;
- :mod:`.worker` — :class:`HubWorker`, a thread that runs a hub's due work (no Redis needed),
  and :class:`AppHubWorker`, one that ends with its Flask app;
- :mod:`.jobs` — the same work as plain functions for rq;
- :mod:`.subscriber` — discovery, subscription requests, verification and delivery checks.
"""

from .hub import Hub, HubRequestError
from .signing import sign, verify
from .subscriber import (
    Discovery,
    check_verification,
    discover,
    new_callback_token,
    new_secret,
    renew_due,
    subscribe_request,
    verify_delivery,
)
from .worker import AppHubWorker, HubWorker

__all__ = [
    "AppHubWorker",
    "Discovery",
    "Hub",
    "HubRequestError",
    "HubWorker",
    "check_verification",
    "discover",
    "new_callback_token",
    "new_secret",
    "renew_due",
    "sign",
    "subscribe_request",
    "verify",
    "verify_delivery",
]
