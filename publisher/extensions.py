"""Flask extensions and per-app accessors every blueprint of the publisher shares.

The extension objects live here, apart from ``create_app``, so blueprints can
decorate views with them (``@limiter.limit``, ``csrf.exempt``) without importing
the app factory.
"""

from __future__ import annotations

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from federation.websub.hub import HUB_PATH
from publisher.store import Store

csrf = CSRFProtect()
# Storage (memory, or Redis when REDIS_URL is set) is chosen per app in create_app
# through RATELIMIT_STORAGE_URI.
limiter = Limiter(key_func=get_remote_address)

STORE_KEY = "publisher.store"


def get_store() -> Store:
    """The store of the app handling the current request (or CLI command)."""
    return current_app.extensions[STORE_KEY]


def public_url() -> str:
    """The publisher's base URL, without a trailing slash: PUBLIC_URL, or else the request's own."""
    configured = current_app.config.get("PUBLIC_URL")
    return (configured or request.url_root).rstrip("/")


def hub_url() -> str:
    """Where the publisher's own WebSub hub listens."""
    return public_url() + HUB_PATH


def public_rate_limit() -> str:
    """The rate limit on public pages and feeds, per client address (PUBLIC_RATE_LIMIT)."""
    return current_app.config["PUBLIC_RATE_LIMIT"]
