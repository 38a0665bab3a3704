"""The public query API: ``GET /api/activities``, ``GET /api/activities/<id>``, ``GET /api/openapi.json``.

Any website may call it from a browser (CORS ``*``); answers carry an ``ETag`` and a
short ``Cache-Control``, so a widget polling the same search costs a ``304``. Errors are
JSON, ``{"error": {"message", "parameter"}}``, with a message a person can act on.

The embed pages use :func:`run_search` and :func:`settings_for` so that they answer the
same search with the same geocoder, clock and freshness thresholds as the API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from aggregator import freshness, geocode, openapi, query
from aggregator.extensions import limiter
from federation.clock import clock

bp = Blueprint("api", __name__)

DEFAULT_CACHE_SECONDS = 60
# Per client address: generous, since a busy site's widget is many browsers, each its own address.
DEFAULT_RATE_LIMIT = "300 per minute"


def _rate_limit() -> str:
    return current_app.config.get("API_RATE_LIMIT") or DEFAULT_RATE_LIMIT


def geocoder_for(app: Flask) -> geocode.Geocoder:
    """The geocoder the settings describe, built once per app (it holds a file or an HTTP client)."""
    if "geocoder" not in app.extensions:
        app.extensions["geocoder"] = geocode.from_config(app.config)
    return app.extensions["geocoder"]


def settings_for(app: Flask) -> freshness.Thresholds:
    """The freshness thresholds from the app's settings."""
    if "freshness" not in app.extensions:
        app.extensions["freshness"] = freshness.Thresholds.from_config(app.config)
    return app.extensions["freshness"]


def run_search(params: Mapping[str, str]) -> dict[str, Any]:
    """:func:`aggregator.query.search` with the current app's store, geocoder, clock and thresholds."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with app.extensions["engine"].begin() as conn:  # a postcode looked up elsewhere is remembered
        return query.search(
            conn, params, now=clock(app)(), geocoder=geocoder_for(app), thresholds=settings_for(app)
        )


def _json(body: Any, status: int = 200) -> Response:
    response = Response(orjson.dumps(body), status=status, mimetype="application/json")
    if status == 200:
        response.set_etag(hashlib.sha256(response.get_data()).hexdigest()[:32])
        seconds = int(current_app.config.get("API_CACHE_SECONDS", DEFAULT_CACHE_SECONDS))
        response.cache_control.public = True
        response.cache_control.max_age = seconds
        response.make_conditional(request)
    return response


def _error(
    status: int, message: str, parameter: str | None = None, choices: list[dict[str, str]] | None = None
) -> Response:
    error: dict[str, Any] = {"message": message, "parameter": parameter}
    if choices:
        error["choices"] = choices  # the places an ambiguous name may mean, each with its ``near``
    return _json({"error": error}, status)


@bp.after_request
def _cors(response: Response) -> Response:
    if request.path.startswith("/api/"):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = "ETag"
        response.headers["Access-Control-Allow-Headers"] = "If-None-Match"
        response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        response.vary.discard("Cookie")
    return response


@bp.errorhandler(429)
def _too_many(error: HTTPException) -> Response:
    return _error(
        429, f"Too many requests from your address ({error.description}). Wait a minute and try again."
    )


@bp.get("/api/activities")
@limiter.limit(_rate_limit)
def activities() -> Response:
    try:
        return _json(run_search(request.args.to_dict()))
    except query.QueryError as exc:
        return _error(400, exc.message, exc.parameter, exc.choices)
    except geocode.GeocoderUnavailable as exc:
        current_app.logger.warning("Geocoding failed: %s", exc)
        message = "We can't look up postcodes just now. Try again in a few minutes, or type a nearby town."
        return _error(503, message, "near")


# merge_slashes=False: the id is a URL, and its "//" must reach us as it was sent.
@bp.get("/api/activities/<path:activity_id>", merge_slashes=False)
@limiter.limit(_rate_limit)
def activity(activity_id: str) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with app.extensions["engine"].connect() as conn:
        item = query.get(conn, activity_id, now=clock(app)(), thresholds=settings_for(app))
    if item is None:
        return _error(
            404,
            f"No activity with the id '{activity_id}' is listed here. Check the id (URL-encoded), "
            "or search with GET /api/activities.",
            "id",
        )
    return _json(item)


@bp.get("/api/openapi.json")
def openapi_document() -> Response:
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    return _json(openapi.document(base.rstrip("/")))
