"""Characters no text in Localfeed may hold, found anywhere in a document, and removed for display.

A feed is read by XML parsers, calendar apps and browsers, and each of them chokes on
some invisible characters: XML 1.0 cannot carry C0 control characters at all (lxml
refuses to build such a document, so one BEL in a name made every Atom feed holding it
answer 500), iCalendar text excludes them, and a lone surrogate cannot even be written
as UTF-8. None of them has a use in an activity's text. So the contract refuses them in
every string of a document, keys included (``schema.validation``), and every renderer
removes them from whatever it is given (``federation.feeds.common``), so text stored
before the rule, or by a path that skipped it, still renders.

One definition serves both, so what the contract refuses and what a renderer removes
can never drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# C0 controls except tab, newline and carriage return (text may have lines); DEL and the
# C1 controls; the surrogates (only ever halves of a pair, never characters on their own);
# and U+FFFE/U+FFFF, which Unicode promises never to assign and XML 1.0 excludes.
FORBIDDEN_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

_search = FORBIDDEN_CHARACTER.search


@dataclass(frozen=True, slots=True)
class ForbiddenCharacter:
    """One forbidden character: where in the document (keys and indexes), which, and where in its text.

    ``in_key`` says the character is in the name of the field at ``parts`` rather than in
    its value; ``position`` counts from 1, as a person counts characters.
    """

    parts: tuple[str | int, ...]
    in_key: bool
    character: str
    position: int
    before: str  # the text just before it, to help a person find it

    @property
    def code_point(self) -> str:
        return f"U+{ord(self.character):04X}"

    @property
    def is_control(self) -> bool:
        """A control character (as opposed to a surrogate or a noncharacter)."""
        return ord(self.character) <= 0x9F


def has_forbidden_character(value: Any) -> bool:
    """Whether any string in ``value`` (nested dicts and lists, keys too) holds a forbidden character.

    The fast path (every harvested item comes through it): one regex search per string, and
    no call or allocation for the strings themselves while the document is clean.
    """
    if isinstance(value, str):
        return _search(value) is not None
    if isinstance(value, dict):
        if any(isinstance(key, str) and _search(key) is not None for key in value):
            return True
        items: Iterable[Any] = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return False
    for item in items:
        if isinstance(item, str):
            if _search(item) is not None:
                return True
        elif isinstance(item, dict | list) and has_forbidden_character(item):
            return True
    return False


def forbidden_characters(value: Any, parts: tuple[str | int, ...] = ()) -> Iterator[ForbiddenCharacter]:
    """The first forbidden character of each string in ``value`` (and of each key), in document order."""
    if isinstance(value, str):
        yield from _first_in(value, parts, in_key=False)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield from _first_in(key, (*parts, key), in_key=True)
            yield from forbidden_characters(item, (*parts, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from forbidden_characters(item, (*parts, index))


def _first_in(text: str, parts: tuple[str | int, ...], *, in_key: bool) -> Iterator[ForbiddenCharacter]:
    found = _search(text)
    if found is not None:
        start = found.start()
        before = without_forbidden_characters(text[max(0, start - 20) : start])
        yield ForbiddenCharacter(parts, in_key, found.group(), start + 1, before)


def without_forbidden_characters(text: str) -> str:
    """``text`` with every forbidden character removed (the same string when it has none)."""
    return text if _search(text) is None else FORBIDDEN_CHARACTER.sub("", text)


def escaped(text: str) -> str:
    """``text`` with each forbidden character written as ``\\uXXXX``, to show it in a message or path."""
    return FORBIDDEN_CHARACTER.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


_HTTP_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)


def http_url(value: Any) -> str | None:
    """``value`` when it is an absolute http(s) URL, else None: what a page may make a link of.

    The contract allows only such links, but a renderer takes no stored value on trust: a
    ``javascript:`` or ``data:`` link must never become clickable, whatever was stored.
    """
    return value.strip() if isinstance(value, str) and _HTTP_URL.match(value.strip()) else None
