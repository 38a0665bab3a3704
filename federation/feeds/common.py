"""What every rendering of a feed shares: what it says about the feed itself, and text it can carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from markupsafe import Markup

from schema import vocab
from schema.schedule import describe
from schema.text import has_forbidden_character, without_forbidden_characters


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


def category_labels(activity: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each of the activity's categories as (id, English label).

    An id the vocabulary does not have (stored before the vocabulary changed) is its own
    label, so that it cannot make a feed fail.
    """
    out = []
    for category in activity.get("categories") or ():
        try:
            out.append((category, vocab.label("categories", category)))
        except KeyError:
            out.append((category, str(category)))
    return out


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
