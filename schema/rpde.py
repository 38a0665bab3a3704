"""The RPDE page codec: the bytes a feed serves, and the checked dict a harvester reads.

A page is ``{"next": URL, "items": [...], "license": URL}``; each item is
``{"state": "updated"|"deleted", "kind", "id", "modified", "data"?}`` where ``modified``
is the publisher's integer change number and deleted items carry no ``data``. Decoding
checks the envelope only (``feed-page.schema.json``): each item's ``data`` is validated
on its own by the reader, so one bad activity is quarantined without losing the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from schema.validation import Problem, validate_page

DEFAULT_LICENSE = "https://creativecommons.org/licenses/by/4.0/"
UPDATED, DELETED = "updated", "deleted"  # an item's two states
MEDIA_TYPE = "application/json"

_PROBLEMS_SHOWN = 3


class PageError(ValueError):
    """A response body that is not a valid RPDE page; ``problems`` lists what is wrong."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []


def encode_page(items: Iterable[Mapping[str, Any]], next_url: str, license: str = DEFAULT_LICENSE) -> bytes:
    """The JSON bytes of one page holding ``items``, pointing on to ``next_url``."""
    return orjson.dumps({"next": next_url, "items": list(items), "license": license})


def decode_page(body: bytes | str) -> dict[str, Any]:
    """The page in ``body``, checked against feed-page.schema.json; raises PageError if it is not one."""
    try:
        page: dict[str, Any] = orjson.loads(body)  # the schema check below makes it an object
    except orjson.JSONDecodeError as exc:
        start = body[:40].decode("utf-8", "replace") if isinstance(body, bytes) else body[:40]
        raise PageError(
            f"The feed page is not JSON ({exc}); it starts {start!r}. "
            "Check that the URL is the RPDE feed itself, not a web page about it."
        ) from None
    problems = validate_page(page)
    if problems:
        listed = "; ".join(str(p) for p in problems[:_PROBLEMS_SHOWN])
        more = len(problems) - _PROBLEMS_SHOWN
        if more > 0:
            listed += f"; and {more} more"
        raise PageError(f"The feed page is not a valid RPDE page: {listed}.", problems)
    return page


def updated_item(id: str, modified: int, data: Mapping[str, Any], kind: str | None = None) -> dict[str, Any]:
    """An item saying ``data`` is the activity ``id`` as of change number ``modified``.

    ``kind`` defaults to the activity's ``type`` (SessionSeries or Event).
    """
    return {"state": UPDATED, "kind": kind or data["type"], "id": id, "modified": modified, "data": data}


def deleted_item(id: str, modified: int, kind: str = "SessionSeries") -> dict[str, Any]:
    """A tombstone: the activity ``id`` was deleted at change number ``modified``.

    Readers delete by ``id`` whatever the ``kind``, so the default is safe when the kind
    of a deleted activity is no longer known.
    """
    return {"state": DELETED, "kind": kind, "id": id, "modified": modified}
