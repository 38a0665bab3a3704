"""The aggregator's settings: their defaults, and the plain mapping its jobs are given.

They live apart from ``create_app`` so that jobs, the command line and the hub's rq jobs
can read them without importing the app factory (and everything it mounts).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

DEFAULTS: dict[str, Any] = {
    "INSTANCE_PATH": "",  # unset: Flask's instance folder
    "DATABASE_URL": "",  # unset: a SQLite file in the instance folder
    # Upgrade an existing database to this version's tables at start, instead of refusing to
    # start until `localfeed-aggregator db upgrade` is run. A new, empty database is always built.
    "DATABASE_AUTO_UPGRADE": False,
    "REDIS_URL": "",  # unset: harvest jobs run in-process
    "RQ_QUEUE": "localfeed",
    "SECRET_KEY": "",  # unset: generated once and kept in the instance folder
    "PUBLIC_URL": "",  # unset: derived from each request
    "AGGREGATOR_NAME": "Localfeed aggregator",
    "ALLOW_PRIVATE_NETWORKS": False,
    # Comma-separated CIDR ranges fetched as if public while private ones stay refused
    # (an internal server the operator trusts without opening the whole network).
    "FETCH_PUBLIC_NETWORKS": "",
    "FETCH_MAX_BYTES": 10_000_000,
    "FETCH_TIMEOUT": 30.0,  # seconds for one whole request, redirects and body included
    "HARVEST_PAGE_LIMIT": 200,  # pages one job walks before giving other sources a turn
    "HARVEST_INTERVAL": 900,  # seconds between polls of a healthy source
    "HARVEST_BACKOFF_MAX": 6 * 3600,  # longest wait after repeated failures
    "HARVEST_LEASE": 60,  # seconds a harvest holds its source unless renewed (a killed worker's lapses)
    # One harvest job's budget (aggregator.budget): at any limit it stops, keeps what it applied, says why.
    "HARVEST_TIME_LIMIT": 120.0,
    "HARVEST_MAX_PAGES": 1_000,  # requests, counting every page and ORUK detail call
    "HARVEST_MAX_ITEMS": 100_000,
    "HARVEST_MAX_BYTES": 200_000_000,
    "DISCOVERY_TIME_LIMIT": 60.0,  # seconds to find a source's feed (home page and candidates), as a job
    "JOB_TIMEOUT": 3600,  # seconds an rq worker lets one job run before stopping it
    "SCHEDULER_TICK": 15.0,  # seconds between the scheduler's looks for due sources
    "LOGIN_RATE_LIMIT": "10 per minute",
    "SESSION_COOKIE_SAMESITE": "Lax",  # the operator's session is not sent on other sites' posts
    "RATELIMIT_ENABLED": True,
    "TRUSTED_PROXIES": 0,  # reverse proxies in front whose X-Forwarded-* headers are believed
    "RATELIMIT_STORAGE_URI": "memory://",  # e.g. redis://... to count across processes
    "PUBLIC_FORM_RATE_LIMIT": "5 per minute",
    "POSTCODE_CSV": "",  # a postcode file (ONS Postcode Directory or Code-Point Open layout)
    "POSTCODES_API_URL": "",  # a postcodes.io-compatible service, asked after the file
    # Freshness (aggregator.freshness): days since the organiser last confirmed a listing.
    "FRESH_DAYS": 90,
    "AGEING_DAYS": 180,
    "STALE_DAYS": 365,  # older listings are expired: hidden from searches, kept
    "CAPACITY_MAX_AGE_DAYS": 14,  # an older "spaces"/"full" is shown as unknown
    "SOURCE_UNREACHABLE_DAYS": 14,  # listings whose every source has failed this long are flagged
    "API_CACHE_SECONDS": 60,  # Cache-Control max-age of query API answers
    "API_RATE_LIMIT": "300 per minute",  # per client address, on the public query API
    "WIDGETS_DIR": "",  # unset: the widgets/ folder shipped with the code, served under /widgets/
}


def job_config(app: Flask) -> dict[str, Any]:
    """The settings a job needs (harvest, subscription, hub), as plain values rq can pickle into Redis.

    The secret key stays out: jobs sign nothing, and Redis is no place for it.
    """
    plain = (str, int, float, bool, type(None))
    return {
        key: value
        for key, value in app.config.items()
        if key.isupper() and key != "SECRET_KEY" and isinstance(value, plain)
    }
