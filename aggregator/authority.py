"""Who may speak for an activity: the origin that minted its id, and dates that are only claims.

An aggregator follows feeds it does not control, and there is no central authority to
ask who owns a listing. The id answers it: a Localfeed id is a URL on the publisher's own
site, so the source on that origin (scheme, host, port) is the authority for it. Other
sources may only:

- speak for ids on their own origin (formats whose ids are not ours, such as iCal or
  OpenActive, are namespaced under the source's own feed URL by their adapters, so this
  holds for them too and one such source can never collide with another);
- or, when the source is an aggregator, relay items of other origins whose provenance
  names that origin. A relayed copy is shown only while no authoritative copy is held.

Anything else is refused with a reason the operator and the publisher can both read.
The same judgement is made for polled pages and pushed deliveries, because both are
applied by :func:`aggregator.harvest.apply_page`.

Dates are claims too: a ``dateModified`` or ``lastVerified`` more than a day ahead of our
clock is not believed (the item is refused), and never wins a merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from federation.origins import Origin, origin_of

# How far ahead of our clock a publisher's date may be (time zones, a slow clock) and still be believed.
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class SourceAuthority:
    """What one source may say: ids on its own origins, and relays when it is an aggregator."""

    origins: tuple[Origin, ...]
    relays: bool

    @classmethod
    def of(cls, urls: Iterable[str | None], *, relays: bool) -> SourceAuthority:
        found = (origin_of(url) for url in urls if url)
        return cls(tuple(dict.fromkeys(o for o in found if o is not None)), relays)

    def speaks_for(self, url: Any) -> bool:
        """Whether ``url`` is on one of this source's own origins."""
        where = origin_of(url)
        return where is not None and any(where.same_site(own) for own in self.origins)

    def refusal(self, item_id: str, upstream: list[dict[str, Any]]) -> str | None:
        """Why this source may not give this item, in plain words; None when it may."""
        if not upstream and self.speaks_for(item_id):
            return None
        where = origin_of(item_id)
        home = str(self.origins[0]) if self.origins else "an unknown site"
        if where is None:
            return (
                f"its id {item_id!r} is not a web address on the feed's own site ({home}); "
                "a Localfeed id is the activity's URL at its publisher"
            )
        if not upstream:
            return (
                f"this feed is on {home} but lists an activity of {where}: only {where} can publish it. "
                f"Remove it from this feed, or list it under an id on {home}"
            )
        if not self.relays:
            return (
                f"this feed is on {home} and relays an activity of {where}, but it is not an aggregator "
                "this aggregator relays from; the operator can mark it as one if it is"
            )
        named = any(_same_site(origin_of(entry.get("source_url")), where) for entry in upstream)
        if not named:
            return (
                f"it is relayed as an activity of {where}, "
                f"but its provenance does not name a source on {where}"
            )
        return None


def _same_site(a: Origin | None, b: Origin) -> bool:
    return a is not None and a.same_site(b)


def future_claim(data: Mapping[str, Any], now: datetime) -> str | None:
    """Which date of ``data`` is more than a day ahead of ``now``, in plain words; None if none is."""
    limit = now + FUTURE_SLACK
    for field in ("dateModified", "lastVerified"):
        value = data.get(field)
        when = _parsed(value)
        if when is not None and when > limit:
            return (
                f"its {field} {value!r} is more than a day in the future; "
                "a date not yet reached cannot be believed: correct the publisher's clock or the date"
            )
    return None


def _parsed(value: Any) -> datetime | None:
    """A date or date-time as an aware datetime (a bare date as its start, in UTC); None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

