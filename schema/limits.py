"""How much one activity may hold as a whole: its nesting, its size, and the numbers and text anywhere in it.

``activity.schema.json`` bounds every field it names (text lengths, list lengths, numeric
ranges, the years of dates). These are the bounds JSON Schema cannot say, over the whole
document, extension fields (which the schema leaves free) included:

* at most ``MAX_ACTIVITY_DEPTH`` levels of nesting, and ``MAX_ACTIVITY_BYTES`` of JSON: an
  activity is a few levels deep and a few KB long, and far more is an attack on the time of
  whoever validates, stores or renders it;
* every number finite (Python's ``json`` reads ``NaN`` and ``Infinity``, which no JSON
  writer, database or feed reader takes back), and every whole number within the range
  I-JSON (RFC 7493) promises any reader can hold exactly;
* no character that breaks a renderer in any string (``schema.text``).

Every door (publisher form, API, CSV import, aggregator harvest) checks these through
``schema.validation``; this module holds the one definition of each, and the walk that
checks them all at once on the fast path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import orjson

from schema.text import FORBIDDEN_CHARACTER

MAX_ACTIVITY_DEPTH = 20  # levels of objects and lists; an activity needs four or five
MAX_ACTIVITY_BYTES = 100_000  # of JSON (UTF-8); a full activity is 2 to 5 KB
MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON: whole numbers every JSON reader (JavaScript included) holds exactly

# The years a date may lie in. The schema says it with a pattern on every date and
# date-time (tests/schema/test_limits.py holds the two to the same years); messages use these.
EARLIEST_YEAR = 1900
LATEST_YEAR = 2100

_search = FORBIDDEN_CHARACTER.search

Parts = tuple[str | int, ...]  # where a value is in a document: its keys and indexes


def within_limits(doc: Any) -> bool:
    """Whether ``doc`` is at most MAX_ACTIVITY_DEPTH deep, with every number sound and every string clean.

    The fast path, taken by every harvested item: one pass over the document, a level at a
    time (never recursing, so no depth can exhaust the stack), checking numbers as it meets
    them and gathering the strings (keys too) to search for forbidden characters once, all
    joined: one search of a kilobyte costs far less than a search a string (the whole check
    takes 30% less time than that way on the bench's activities). No character is forbidden
    because of its neighbours, so joining the strings finds exactly what searching each
    would. The size is :func:`json_size`'s business.
    """
    texts: list[Any] = []
    level: list[Any] = [doc]
    for _ in range(MAX_ACTIVITY_DEPTH + 1):
        below: list[Any] = []
        for node in level:
            if isinstance(node, str):
                texts.append(node)
            elif isinstance(node, dict):
                texts.extend(node)
                below.extend(node.values())
            elif isinstance(node, list):
                below.extend(node)
            elif isinstance(node, float):
                if not math.isfinite(node):
                    return False
            elif isinstance(node, int) and not -MAX_SAFE_INTEGER <= node <= MAX_SAFE_INTEGER:
                return False
        if not below:
            return _search(_joined(texts)) is None
        level = below
    return False  # values remain below the deepest level allowed


def _joined(texts: list[Any]) -> str:
    """The strings among ``texts`` as one; keys that are not strings (never in JSON) are left out."""
    try:
        return "".join(texts)
    except TypeError:
        return "".join(text for text in texts if isinstance(text, str))


def deeper_than(value: Any, limit: int = MAX_ACTIVITY_DEPTH) -> bool:
    """Whether ``value`` nests objects and lists so that some value lies more than ``limit`` levels down.

    The document itself is level 0. Level by level, without recursing, so a document nested
    a million deep is measured as cheaply as any other.
    """
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node if isinstance(node, list) else ())
        ]
        if not level:
            return False
    return True


def json_size(doc: Any) -> int:
    """The bytes of ``doc`` written as compact UTF-8 JSON: what storing or sending it costs.

    Call it on documents no deeper than MAX_ACTIVITY_DEPTH (``deeper_than`` first).
    """
    try:
        return len(orjson.dumps(doc))
    except orjson.JSONEncodeError:
        # Only a document already broken otherwise gets here (a lone surrogate, a whole number
        # past 64 bits), and it is measured the slow way, as its JSON would be written.
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)
        return len(text.encode("utf-8", "surrogatepass"))


def unsound_numbers(value: Any, parts: Parts = ()) -> Iterator[tuple[Parts, Any]]:
    """Each number in ``value`` that is not finite or is a whole number out of range, with where it is.

    For explaining, once :func:`within_limits` has said no and the depth is known to be
    within MAX_ACTIVITY_DEPTH (it recurses).
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            yield parts, value
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            yield parts, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from unsound_numbers(item, (*parts, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unsound_numbers(item, (*parts, index))
