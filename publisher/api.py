"""The JSON API for machines: a group's activities, written with a bearer token.

A token acts for exactly one group. Another group's activity is answered exactly as
an absent one (404), so a token cannot even learn which slugs other groups use.
Every write goes through ``publisher.editing``, like the editors' UI.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from federation.bodies import body_within
from federation.clock import clock
from publisher import editing
from publisher.extensions import get_store, public_url
from publisher.store import Group, StoredActivity
from schema import MAX_ACTIVITY_BYTES

bp = Blueprint("api", __name__, url_prefix="/api")

HOW_TO_GET_A_TOKEN = (
    "Send the header 'Authorization: Bearer <token>'. A publisher administrator creates a token for your "
    "group in the admin pages, or with the command 'localfeed-publisher create-token --group <group-slug>'."
)


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(message=message, **extra)
    response.status_code = status
    return response


@bp.before_request
def _authenticate() -> Response | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        response = _error(401, "This API needs a token. " + HOW_TO_GET_A_TOKEN)
    else:
        group = get_store().group_for_token(token.strip())
        if group is not None:
            g.api_group = group
            return None
        response = _error(401, "This token is not valid; it may have been revoked. " + HOW_TO_GET_A_TOKEN)
    response.headers["WWW-Authenticate"] = 'Bearer realm="localfeed"'
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return _error(error.code or 500, error.description or error.name)


def _group() -> Group:
    return g.api_group


def _owned(slug: str) -> StoredActivity:
    """The group's own activity (or tombstone); another group's is answered as absent."""
    stored = get_store().get_activity(slug)
    if stored is None or stored.group_id != _group().id:
        raise editing.ActivityNotFound(
            f"There is no activity {slug!r} for your group. List yours at /api/activities."
        )
    return stored


@bp.errorhandler(editing.ActivityNotFound)
def _not_found(error: editing.ActivityNotFound) -> Response:
    return _error(404, str(error))


# One activity is at most MAX_ACTIVITY_BYTES as compact JSON; a body may be ten times that,
# for indentation and \u escapes, and is refused before it is read whole when it is longer.
MAX_BODY_BYTES = 10 * MAX_ACTIVITY_BYTES
_NOT_A_NUMBER = re.compile(rb"-?(?:NaN|Infinity)")


def _body() -> dict[str, Any] | Response:
    """The request's activity, read within bounds before anything else looks at it.

    The body is read up to MAX_BODY_BYTES (with a Content-Length or without one, as a
    chunked body is), and parsed by orjson, which never recurses in Python and refuses
    what JSON cannot carry (NaN, Infinity, numbers past a double, lone surrogates); each
    refusal says where in the body the fault is. Depth and size within the body are the
    contract's (``schema.outsized``), checked by ``editing.save_activity``.
    """
    if not request.is_json:
        return _error(
            400,
            "The request body must be one activity as a JSON object, "
            "sent with 'Content-Type: application/json'.",
        )
    data = body_within(MAX_BODY_BYTES)
    if data is None:
        return _error(
            413,
            f"The request body is over {MAX_BODY_BYTES:,} bytes; one activity is at most "
            f"{MAX_ACTIVITY_BYTES:,} bytes of JSON. Send one activity per request, "
            "and shorten its longest texts.",
        )
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        line, column, fault = _json_fault(data, error)
        return _error(
            400,
            f"The request body is not JSON we can read: at line {line}, column {column}, {fault}",
            line=line,
            column=column,
        )
    if not isinstance(doc, dict):
        return _error(
            400,
            "The request body must be one activity as a JSON object, "
            "sent with 'Content-Type: application/json'.",
        )
    return doc


def _json_fault(data: bytes, error: orjson.JSONDecodeError) -> tuple[int, int, str]:
    """Where the body's JSON goes wrong (line, column) and what to do, in words."""
    line, column, reason = error.lineno, error.colno, error.msg
    if "UTF-8" in reason:
        fault = "there is a byte that is not UTF-8 text; send the JSON encoded as UTF-8."
        try:  # orjson does not say where; the byte is found the slow way
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            before = data[: bad.start]
            line, column = before.count(b"\n") + 1, bad.start - before.rfind(b"\n")
    elif "surrogate" in reason:
        fault = (
            "a \\u escape stands for half of a character (a lone surrogate, such as \\ud800), which no "
            "text may hold; it usually comes from text cut in the middle of an emoji. Send the whole "
            "character, or remove it."
        )
    elif "infinity" in reason:
        fault = "a number is too large for any computer to hold; send a number in the field's range."
    elif any(_NOT_A_NUMBER.match(data, max(error.pos - back, 0)) for back in (0, 1)):
        fault = "NaN or Infinity is written as a number, which JSON cannot carry; leave the field out."
    elif "depth" in reason:
        fault = (
            "lists and objects are nested over 1,000 levels deep, where an activity needs four or five; "
            "send one activity at a time."
        )
    else:
        fault = f"{reason}. Check the JSON there, or build it with a JSON library."
    return line, column, fault


def _represent(slug: str, activity: dict[str, Any]) -> dict[str, Any]:
    return {"slug": slug, "url": url_for("api.get_activity", slug=slug, _external=True), "activity": activity}


def _saved(result: editing.SaveResult, status: int) -> Response:
    if result.problems:
        problems = [{"path": p.path, "code": p.code, "message": p.message} for p in result.problems]
        return _error(422, "The activity was not saved; fix the problems listed.", problems=problems)
    assert result.slug is not None  # saved, since there are no problems
    response = jsonify(_represent(result.slug, result.activity))
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("api.get_activity", slug=result.slug, _external=True)
    return response


@bp.get("/activities")
def list_activities() -> Response:
    stored = get_store().list_activities(_group().id)
    return jsonify(activities=[_represent(item.slug, item.live_data) for item in stored])


@bp.get("/activities/<slug>")
def get_activity(slug: str) -> Response:
    stored = _owned(slug)
    if stored.is_deleted:
        return _error(410, f"The activity {slug!r} was deleted.")
    return jsonify(_represent(slug, stored.live_data))


@bp.post("/activities")
def create_activity() -> Response:
    doc = _body()
    if isinstance(doc, Response):
        return doc
    result = editing.save_activity(
        get_store(), _group(), doc, base_url=public_url(), now=clock(current_app)()
    )
    return _saved(result, 201)


@bp.put("/activities/<slug>")
def replace_activity(slug: str) -> Response:
    _owned(slug)
    doc = _body()
    if isinstance(doc, Response):
        return doc
    result = editing.save_activity(
        get_store(), _group(), doc, slug, base_url=public_url(), now=clock(current_app)()
    )
    return _saved(result, 200)


@bp.delete("/activities/<slug>")
def delete_activity(slug: str) -> Response:
    _owned(slug)
    editing.delete_activity(get_store(), _group(), slug)
    return Response(status=204)
