"""Serving an RPDE feed over HTTP: the ``afterChangeNumber`` cursor, the next-page link, caching.

The publisher and the aggregator both serve RPDE pages, and the rules must be the same at
both: a follower walks either with the same harvest code.

- the cursor is ``afterChangeNumber``, a whole number from 0 (absent means 0); anything
  else is a ``400`` whose message says what to do;
- ``next`` points after the last item of the page; a page with no items is the last and
  names itself, so a reader keeps that URL and polls it;
- a full page never loses an item it lists (a changed item moves to a later page), so
  caches may keep it an hour; the last page grows as changes land, so only seconds;
- every response carries a strong ``ETag`` over its bytes and answers ``If-None-Match``
  with ``304``, so re-polling an unchanged feed costs no body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Response, jsonify, request

from schema.rpde import MEDIA_TYPE, encode_page

FULL_PAGE_MAX_AGE = 3600
LAST_PAGE_MAX_AGE = 8
MAX_CHANGE_NUMBER = 2**63 - 1  # the largest a 64-bit change number column holds
CURSOR = "afterChangeNumber"

# ``read(after, limit)``: up to ``limit`` RPDE items (``rpde.updated_item`` / ``deleted_item``)
# whose change numbers come after ``after``, oldest first.
ReadChanges = Callable[[int, int], Sequence[Mapping[str, Any]]]


def cached_response(body: bytes, media_type: str, max_age: int) -> Response:
    """A feed response with ``Cache-Control`` and an ETag over its bytes, answering ``304`` when unchanged."""
    response = Response(body, mimetype=media_type)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.set_etag(hashlib.sha256(body).hexdigest())
    response.make_conditional(request)  # changes the response in place (and returns it, typed as werkzeug's)
    return response


def rpde_response(feed_url: str, read: ReadChanges, page_size: int, license: str) -> Response:
    """The page of the feed at ``feed_url`` the current request asks for, or a ``400`` for a bad cursor."""
    raw = request.args.get(CURSOR)
    if raw is None:
        after, own_url = 0, feed_url
    elif raw.isascii() and raw.isdigit() and int(raw) <= MAX_CHANGE_NUMBER:
        after, own_url = int(raw), f"{feed_url}?{CURSOR}={int(raw)}"
    else:
        response = jsonify(
            message=f"{CURSOR}={raw!r} is not a change number; use a whole number from 0, "
            f"or start from {feed_url} and follow the 'next' link of each page."
        )
        response.status_code = 400
        return response
    items = list(read(after, page_size))
    next_url = f"{feed_url}?{CURSOR}={items[-1]['modified']}" if items else own_url
    max_age = FULL_PAGE_MAX_AGE if len(items) >= page_size else LAST_PAGE_MAX_AGE
    return cached_response(encode_page(items, next_url, license), MEDIA_TYPE, max_age)
