"""Reading a request's body within a size limit, whether or not it says how long it is.

Both apps take bodies from strangers (a hub's pushed delivery, a group's API call). A body
is read up to the limit and no further: one announcing more is refused before it is read,
and one sent without Content-Length (chunked) is cut at the limit by Werkzeug without
complaint, so one byte more than the limit is asked for: getting it means the body goes on.
"""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge


def body_within(limit: int) -> bytes | None:
    """The current request's body, or None when it is longer than ``limit`` bytes."""
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:  # a Content-Length over the limit: refused before reading
        return None
    return body if len(body) <= limit else None
