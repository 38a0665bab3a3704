"""The aggregator: follows the feeds an operator trusts, validates, merges and republishes them.

``create_app`` is the only entry point; harvest and hub jobs build their own engine from
the plain configuration mapping ``aggregator.settings.job_config(app)`` returns, so they
run the same in-process or in an rq worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from aggregator.settings import DEFAULTS
from federation.config import load_config, persistent_secret_key, trust_proxies
from federation.db import make_engine


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the aggregator app: settings, store (tables created), blueprints."""
    settings = load_config(DEFAULTS, config)
    instance_path = str(Path(settings["INSTANCE_PATH"]).resolve()) if settings["INSTANCE_PATH"] else None
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    if not settings["DATABASE_URL"]:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        settings["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path, 'aggregator.sqlite')}"
    if not settings["SECRET_KEY"]:
        settings["SECRET_KEY"] = persistent_secret_key(app.instance_path)
    settings["SESSION_COOKIE_SECURE"] = settings["PUBLIC_URL"].lower().startswith("https://")
    app.config.update(settings)
    from aggregator import impact

    impact.keep_counting_anonymous(app)  # before trust_proxies, so it sits inside ProxyFix
    trust_proxies(app)

    from aggregator.store import init_store

    engine = make_engine(app.config["DATABASE_URL"])
    init_store(engine, auto_upgrade=app.config["DATABASE_AUTO_UPGRADE"])
    app.extensions["engine"] = engine

    from aggregator.extensions import csrf, limiter

    csrf.init_app(app)
    limiter.init_app(app)

    from aggregator import api, embed, feeds, oruk, shortlist, sources
    from aggregator.auth import bp as auth_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(sources.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(oruk.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(shortlist.bp)  # a link worker's picks: /embed/shortlist, /embed/link, /s/<code>
    from aggregator import quality

    app.register_blueprint(quality.bp)  # quality reports, and "checked by us"

    from aggregator import hub, subscriptions

    subscriptions.init_app(app)  # WebSub callbacks from sources' hubs, /operator/subscriptions
    hub.init_app(app)  # POST /websub for the merged feed, and push of its changes
    impact.init_app(app)  # anonymous counts (/impact/events, /impact/pixel.gif, /go/booking), /impact/report
    return app
