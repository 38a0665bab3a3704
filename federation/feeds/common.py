"""What every rendering of a feed or page shares: what it says about the feed itself, the text it
can carry, and the guard that keeps one activity that cannot be rendered from failing the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, TypeVar

from markupsafe import Markup

from schema import vocab
from schema.schedule import describe
from schema.text import has_forbidden_character, without_forbidden_characters

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Rendered = TypeVar("Rendered")


@dataclass(frozen=True)
class FeedInfo:
    """The feed's identity and links.

    ``self_url`` is this rendering's own URL (Atom ``rel=self``, and the feed's id);
    ``home_url`` is the human page the feed belongs to; ``hub_url`` the WebSub hub
    that pushes its changes, if any.
    """

    title: str
    self_url: str
    home_url: str
    hub_url: str | None = None
    license_url: str | None = None
    subtitle: str | None = None


def renderable(value: Any) -> Any:
    """``value`` with every character XML 1.0 and iCalendar cannot carry removed from its strings (keys too).

    The contract refuses these characters, but a store may hold text from before that rule,
    or from a path that skipped it, and one such character must never make a feed or page
    fail (lxml refuses to build XML holding a BEL; a lone surrogate cannot be encoded). So
    every renderer passes what it renders through here: one rule for all of them instead
    of a check at each field. A clean value, the usual case, is returned as it is, uncopied.
    """
    if not has_forbidden_character(value):
        return value
    return _cleaned(value)


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return without_forbidden_characters(value)
    if isinstance(value, Mapping):
        return {_cleaned(key): _cleaned(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(item) for item in value]
    return value


def page_text(value: Any) -> Any:
    """What an HTML page prints for ``value``: its text without the characters ``renderable`` removes.

    Both apps set it as Jinja's ``finalize``, so every ``{{ ... }}`` of every page goes through
    it before autoescaping: a browser would show such a character as a box or not at all,
    and an HTML parser counts it as an error. Markup (already escaped) stays Markup.
    """
    if not isinstance(value, str) or not has_forbidden_character(value):
        return value
    cleaned = without_forbidden_characters(value)
    return Markup(cleaned) if isinstance(value, Markup) else cleaned


def renderable_info(info: FeedInfo) -> FeedInfo:
    """``info`` with its text made renderable: titles come from an operator's configuration."""
    texts = {field.name: getattr(info, field.name) for field in fields(info)}
    return replace(info, **{name: renderable(text) for name, text in texts.items()})


def render_one(item: Item, render: Callable[[Item], Rendered], *, where: str) -> Rendered | None:
    """``render(item)``, or None (the failure logged with the item's id) if it raises anything at all.

    Every page and feed of both apps renders each activity through here (or :func:`render_each`).
    The contract bounds what a stored activity holds, but a store may hold items from before a
    rule, or written by a path that skipped it, and a renderer may have a fault of its own: a
    calendar of ten thousand events must not answer 500 for everyone because one of them starts
    on 0001-01-01. So any exception is caught, not a chosen few; the log names the page or feed
    (``where``) and the item, so the item can be found and fixed at its source.
    """
    try:
        return render(item)
    except Exception:  # whatever one item does, the rest still render
        log.exception("%s: left out the activity %s, which could not be rendered", where, item_id(item))
        return None


def render_each(
    items: Iterable[Item], render: Callable[[Item], Rendered | None], *, where: str
) -> Iterator[Rendered]:
    """``render(item)`` for each item, in order, leaving out each one that fails (logged) or gives None."""
    for item in items:
        rendered = render_one(item, render, where=where)
        if rendered is not None:
            yield rendered


def item_id(item: Any) -> str:
    """The id of an activity however a renderer holds it (a dict, a search result, a stored row), for a log.

    Never raises: it names an item that has already failed once.
    """
    holders = (item, getattr(item, "data", None), getattr(item, "activity", None), _get(item, "activity"))
    for holder in holders:
        found = _get(holder, "id")
        if isinstance(found, str):
            return repr(found)
    for attribute in ("uri", "id", "item_id"):
        found = getattr(item, attribute, None)
        if isinstance(found, str):
            return repr(found)
    return f"(without an id: a {type(item).__name__})"


def _get(holder: Any, key: str) -> Any:
    return holder.get(key) if isinstance(holder, Mapping) else None


def vocab_label(kind: str, item_id: Any) -> str:
    """The English label of a vocabulary id; an id the vocabulary does not have is its own label.

    Such an id was stored before the vocabulary changed (or by a path that skipped the
    contract): it is shown as it is rather than making a page or feed fail.
    """
    try:
        return vocab.label(kind, item_id)
    except (KeyError, TypeError):  # TypeError: not even a string (a list cannot be looked up)
        return str(item_id)


def category_labels(activity: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each of the activity's categories as (id, English label)."""
    return [(category, vocab_label("categories", category)) for category in activity.get("categories") or ()]


def summary_text(activity: Mapping[str, Any]) -> str:
    """A few plain lines a feed reader or calendar shows: when, where, the description."""
    lines = [describe(entry) for entry in activity.get("schedule") or ()]
    if activity.get("type") == "Event":
        start = datetime.fromisoformat(activity["startDate"])
        lines.append(f"{start:%A} {start.day} {start:%B %Y, %H:%M}")
    place = (activity.get("location") or {}).get("name")
    if place:
        lines.append(place)
    if activity.get("description"):
        lines.append(activity["description"])
    return "\n".join(lines)
