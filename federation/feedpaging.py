"""Serving an RPDE feed over HTTP: the ``afterChangeNumber`` cursor, the next-page link, caching.

The publisher and the aggregator both serve RPDE pages, and the rules must be the same at
both: a follower walks either with the same harvest code.

- the cursor is ``afterChangeNumber``, a whole number from 0 (absent means 0), and it is
  the only parameter: anything else, above all RPDE's other ordering (``afterTimestamp``
  and ``afterId``), is a ``400`` whose message names it and says what to do, never a
  silent restart from the beginning;
- ``next`` points after the last item of the page; a page with no items is the last and
  names itself, so a reader keeps that URL and polls it;
- a page with items never loses one it lists (a changed item moves to a later page, and a
  stale copy's ``next`` still leads on to it), so caches may keep it an hour, as RPDE
  asks; only the last page, where new changes appear, is kept for seconds;
- every response carries a strong ``ETag`` over its bytes and answers ``If-None-Match``
  with ``304``, so re-polling an unchanged feed costs no body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Response, jsonify, request

from schema.rpde import MEDIA_TYPE, encode_page

PAGE_MAX_AGE = 3600  # every page but the last, as RPDE asks
LAST_PAGE_MAX_AGE = 8
MAX_CHANGE_NUMBER = 2**63 - 1  # the largest a 64-bit change number column holds
CURSOR = "afterChangeNumber"
# RPDE's other ordering: a reader that sends these expects a feed ordered by time, which this is not.
TIMESTAMP_CURSOR = ("afterTimestamp", "afterId")
# What a 400's message quotes of a query string a stranger wrote: enough to recognise it by.
_QUOTED_LENGTH = 60
_QUOTED_NAMES = 5

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
    """The page of the feed at ``feed_url`` the current request asks for, or a ``400`` for bad paging."""
    problem = paging_problem(feed_url)
    if problem is not None:
        response = jsonify(message=problem)
        response.status_code = 400
        return response
    raw = request.args.get(CURSOR)
    after = 0 if raw is None else int(raw)
    own_url = feed_url if raw is None else f"{feed_url}?{CURSOR}={after}"
    items = list(read(after, page_size))
    next_url = f"{feed_url}?{CURSOR}={items[-1]['modified']}" if items else own_url
    max_age = PAGE_MAX_AGE if items else LAST_PAGE_MAX_AGE
    return cached_response(encode_page(items, next_url, license), MEDIA_TYPE, max_age)


def paging_problem(feed_url: str) -> str | None:
    """Why the current request's query string cannot page the feed at ``feed_url``, or None."""
    how = f"start from {feed_url} and follow the 'next' link of each page"
    unknown = [name for name in request.args if name != CURSOR]
    timestamped = [name for name in unknown if name in TIMESTAMP_CURSOR]
    if timestamped:
        return (
            f"This feed is ordered by change number, so {' and '.join(timestamped)} cannot page it: "
            f"use {CURSOR} (a whole number from 0) instead, or {how}."
        )
    if unknown:
        names = ", ".join(repr(name[:_QUOTED_LENGTH]) for name in unknown[:_QUOTED_NAMES])
        return f"This feed takes only {CURSOR}, not {names}: remove it, or {how}."
    given = request.args.getlist(CURSOR)
    if len(given) > 1:
        return f"{CURSOR} is given {len(given)} times; give it once, or {how}."
    if given and not _is_change_number(given[0]):
        quoted = repr(given[0][:_QUOTED_LENGTH])
        return f"{CURSOR}={quoted} is not a change number; use a whole number from 0, or {how}."
    return None


def _is_change_number(raw: str) -> bool:
    # Length first: int() refuses strings of thousands of digits with an error of its own.
    digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_CHANGE_NUMBER))
    return digits and int(raw) <= MAX_CHANGE_NUMBER
