"""Localfeed publisher: a group's (or an umbrella body's) own activity feeds, and the editors who keep them.

``create_app`` builds the Flask app: the SQL store, the editors' UI under ``/admin``,
the JSON API under ``/api``, the feeds under ``/feeds`` and the public pages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from federation.config import load_config, persistent_secret_key, trust_proxies
from publisher.extensions import STORE_KEY, csrf, limiter
from publisher.store import Store

DEFAULTS: dict[str, Any] = {
    "INSTANCE_PATH": "",  # unset: Flask's instance folder
    "DATABASE_URL": "",  # unset: a SQLite file in the instance folder
    "SECRET_KEY": "",  # unset: generated once and kept in the instance folder
    "PUBLIC_URL": "",  # unset: derived from each request
    "PUBLISHER_NAME": "Localfeed publisher",
    "PUBLISHER_REGION": "",  # the county or region of the activities (e.g. London), for addresses naming none
    "FEED_LICENSE": "https://creativecommons.org/licenses/by/4.0/",
    "REDIS_URL": "",  # unset: rate limits counted in memory
    "ALLOW_PRIVATE_NETWORKS": False,
    "PAGE_SIZE": 500,
    "TOMBSTONE_DAYS": 30,
    "PUBLIC_RATE_LIMIT": "600 per minute",
    "LOGIN_RATE_LIMIT": "10 per minute",  # failed log-ins per client address
    "PASSWORD_RESET_MINUTES": 60,  # how long an emailed "set a new password" link works
    "POSTCODE_CSV": "",  # a postcode file (ONS Postcode Directory or Code-Point Open), as the aggregator's
    "POSTCODES_API_URL": "",  # a postcodes.io-compatible service, asked after the file
    "RATELIMIT_ENABLED": True,
    "TRUSTED_PROXIES": 0,  # reverse proxies in front whose X-Forwarded-* headers are believed
    "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,  # bytes in one request: the CSV upload is the largest
    # Seconds a form stays valid; none by default, as a volunteer may take over an hour on one.
    # (The CSRF token is still tied to the session, which logging out or in replaces.)
    "WTF_CSRF_TIME_LIMIT": None,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # Upgrade an existing database to this version's tables at start, instead of refusing to
    # start until `localfeed-publisher db upgrade` is run. A new, empty database is always built.
    "DATABASE_AUTO_UPGRADE": False,
}

MAX_PAGE_SIZE = 500


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build a publisher app from DEFAULTS, then environment variables, then ``config``."""
    settings = load_config(DEFAULTS, config)
    instance_path = str(Path(settings["INSTANCE_PATH"]).resolve()) if settings["INSTANCE_PATH"] else None
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(settings)
    _check_settings(app)
    trust_proxies(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path, 'publisher.sqlite')}"
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = persistent_secret_key(app.instance_path)
    app.config["SESSION_COOKIE_SECURE"] = app.config["PUBLIC_URL"].lower().startswith("https://")
    # The import's confirm step sends the whole CSV back as one form field.
    app.config["MAX_FORM_MEMORY_SIZE"] = app.config["MAX_CONTENT_LENGTH"]
    app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"] or "memory://"
    # Workers of one publisher share counters; two publishers on one Redis do not.
    database_digest = hashlib.sha256(app.config["DATABASE_URL"].encode()).hexdigest()[:12]
    app.config["RATELIMIT_KEY_PREFIX"] = f"localfeed-publisher-{database_digest}"
    assert isinstance(app.json, DefaultJSONProvider)  # Flask's own, the one with sort_keys
    app.json.sort_keys = False  # activities read best in the contract's field order

    store = Store.from_url(app.config["DATABASE_URL"])
    store.prepare(auto_upgrade=app.config["DATABASE_AUTO_UPGRADE"])
    app.extensions[STORE_KEY] = store

    csrf.init_app(app)
    limiter.init_app(app)

    from publisher import admin, api, feeds, pages

    csrf.exempt(api.bp)  # machines authenticate with bearer tokens, not cookies
    for blueprint in (pages.bp, feeds.bp, api.bp, admin.bp):
        app.register_blueprint(blueprint)

    from publisher import hub

    hub.init_app(app)  # POST /websub, push of each change, /admin/subscribers
    from publisher import reminders

    reminders.init_app(app)  # "still running?" emails, /admin/overdue, /admin/outbox
    from publisher import impact

    impact.init_app(app)  # counts from the aggregators showing our activities: /admin/impact
    return app


def _check_settings(app: Flask) -> None:
    csrf_limit = app.config["WTF_CSRF_TIME_LIMIT"]
    if isinstance(csrf_limit, str):  # from the environment: seconds, or empty for no limit
        seconds = csrf_limit.strip()
        if seconds and not seconds.isdigit():
            raise ValueError(
                f"WTF_CSRF_TIME_LIMIT={csrf_limit!r} must be a number of seconds, or empty for no limit."
            )
        app.config["WTF_CSRF_TIME_LIMIT"] = int(seconds) if seconds else None
    page_size = app.config["PAGE_SIZE"]
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"PAGE_SIZE={page_size!r} must be a whole number from 1 to {MAX_PAGE_SIZE}.")
    if not isinstance(app.config["TOMBSTONE_DAYS"], int) or app.config["TOMBSTONE_DAYS"] < 30:
        raise ValueError(
            f"TOMBSTONE_DAYS={app.config['TOMBSTONE_DAYS']!r} must be at least 30: "
            "feed readers are promised deletions for 30 days."
        )

