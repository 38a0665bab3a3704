"""How current a listing is, from the date its organiser last confirmed it.

Stale listings are the field's biggest complaint, so every item carries a state:

- ``fresh``: confirmed within FRESH_DAYS (90);
- ``ageing``: within AGEING_DAYS (180);
- ``stale``: within STALE_DAYS (365) — still listed, after the fresher ones, with a
  "Not confirmed since June 2026" note;
- ``expired``: older — hidden from searches but kept, so it comes back the moment its
  organiser confirms it.

A listing whose every source has been failing for longer than SOURCE_UNREACHABLE_DAYS (14)
is shown as stale at best, with a note saying since when: nobody can have confirmed it
through a feed we cannot read.

A listing whose ``lastVerified`` is only the day a foreign-format feed was first harvested
with it (``"ext:verifiedBy": "harvest"``: the source gave no date; see
``aggregator.adapters.mapping.freshness``) is shown as stale at best, noted "Not confirmed by
the organiser": the date says since when we have seen it listed, not that anyone checked.

The republished feeds say what the API shows: an expired listing is published as deleted
(``aggregator.feeds``), and as updated again once a newer ``lastVerified`` brings it back.
Time alone expires a listing, with no change to give it a change number, so
:func:`publish_expiries` (run by ``aggregator.housekeeping``) gives one to each listing
that has expired since its last change: a follower reading on from its cursor sees it go.

A capacity ("spaces", "full") older than CAPACITY_MAX_AGE_DAYS (14) is shown as unknown:
telling someone a group has space on a month-old word is how people get turned away.
Every function takes ``now``, so tests run on a clock they control.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from aggregator.adapters.mapping import VERIFIED_BY, VERIFIED_BY_HARVEST, as_date
from aggregator.store import chunks, counter, merged
from federation.db import next_change_numbers

STATES = ("fresh", "ageing", "stale", "expired")
NOT_CONFIRMED = "Not confirmed by the organiser"


@dataclass(frozen=True)
class Thresholds:
    """Ages in days at which a listing stops being fresh, ageing and stale; and capacity's shelf life."""

    fresh_days: int = 90
    ageing_days: int = 180
    stale_days: int = 365
    capacity_max_age_days: int = 14
    source_unreachable_days: int = 14

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Thresholds:
        """FRESH_DAYS, AGEING_DAYS, STALE_DAYS and CAPACITY_MAX_AGE_DAYS, where set."""
        defaults = cls()
        thresholds = cls(
            fresh_days=int(config.get("FRESH_DAYS", defaults.fresh_days)),
            ageing_days=int(config.get("AGEING_DAYS", defaults.ageing_days)),
            stale_days=int(config.get("STALE_DAYS", defaults.stale_days)),
            capacity_max_age_days=int(config.get("CAPACITY_MAX_AGE_DAYS", defaults.capacity_max_age_days)),
            source_unreachable_days=int(
                config.get("SOURCE_UNREACHABLE_DAYS", defaults.source_unreachable_days)
            ),
        )
        if not 0 <= thresholds.fresh_days <= thresholds.ageing_days <= thresholds.stale_days:
            raise ValueError(
                f"FRESH_DAYS ({thresholds.fresh_days}), AGEING_DAYS ({thresholds.ageing_days}) and "
                f"STALE_DAYS ({thresholds.stale_days}) must be in increasing order; fix the settings."
            )
        return thresholds

    def stale_before(self, now: datetime) -> date:
        """Listings confirmed before this date are stale (or expired)."""
        return now.date() - timedelta(days=self.ageing_days)

    def expired_before(self, now: datetime) -> date:
        """Listings confirmed before this date are expired: hidden from searches."""
        return now.date() - timedelta(days=self.stale_days)

    def source_reachable_since(self, now: datetime) -> datetime:
        """A failing source whose last success is before this instant makes its listings stale."""
        return now - timedelta(days=self.source_unreachable_days)

    def capacity_known_since(self, now: datetime) -> datetime:
        """A capacity stated before this instant is too old to repeat."""
        return now - timedelta(days=self.capacity_max_age_days)


def state(last_verified: date, now: datetime, thresholds: Thresholds) -> str:
    """``fresh``, ``ageing``, ``stale`` or ``expired`` for a listing confirmed on ``last_verified``."""
    age = (now.date() - last_verified).days
    if age <= thresholds.fresh_days:
        return "fresh"
    if age <= thresholds.ageing_days:
        return "ageing"
    if age <= thresholds.stale_days:
        return "stale"
    return "expired"


def is_expired(activity: Mapping[str, Any] | None, now: datetime, thresholds: Thresholds) -> bool:
    """Whether searches hide ``activity`` as expired: its ``lastVerified`` is before ``expired_before``."""
    last_verified = as_date((activity or {}).get("lastVerified"))
    return last_verified is not None and last_verified < thresholds.expired_before(now)


def publish_expiries(engine: Engine, now: datetime, thresholds: Thresholds) -> int:
    """Give a new change number to each listing that has expired since its last change; how many.

    Such a listing went on being published as updated at its last change number, and a
    follower past that number would never learn that it went: the new number puts it
    after every cursor, where the feeds publish it as deleted. One that expired before its
    last change was already published so. Safe to run often and in several processes:
    the listings are read again under the change counter's lock, as every merge writes.
    """
    with engine.connect() as conn:
        due = _expired_since_last_change(conn, now, thresholds)
    published = 0
    for chunk in chunks(due):
        with engine.begin() as conn:
            numbers = next_change_numbers(conn, counter, len(chunk))  # first: queue behind the merges
            still_due = _expired_since_last_change(conn, now, thresholds, among=chunk)
            # A number left over (a listing changed meanwhile) is a gap, which change numbers may have.
            renumbered = [{"b_id": item, "b_number": n} for item, n in zip(still_due, numbers, strict=False)]
            if renumbered:
                bump = update(merged).where(merged.c.id == bindparam("b_id"))
                conn.execute(bump.values(change_number=bindparam("b_number"), modified_at=now), renumbered)
            published += len(still_due)
    return published


def _expired_since_last_change(
    conn: Connection, now: datetime, thresholds: Thresholds, among: list[int] | None = None
) -> list[int]:
    """The live merged items expired now that were not yet expired at their last change."""
    from aggregator import search_index  # it reads this module's rules as it indexes

    c = search_index.index.c
    expired = select(c.merged_id, c.last_verified).where(c.last_verified < thresholds.expired_before(now))
    if among is not None:
        expired = expired.where(c.merged_id.in_([str(merged_id) for merged_id in among]))
    last_verified = {int(row.merged_id): row.last_verified for row in conn.execute(expired)}
    due = []
    for chunk in chunks(last_verified):
        live = select(merged.c.id, merged.c.modified_at).where(merged.c.state == "updated")
        rows = conn.execute(live.where(merged.c.id.in_(chunk)))
        due += [row.id for row in rows if last_verified[row.id] >= thresholds.expired_before(row.modified_at)]
    return sorted(due)


def confirmed_by_organiser(activity: Mapping[str, Any]) -> bool:
    """False when ``lastVerified`` is only the harvest date a foreign-format adapter filled in."""
    return activity.get(VERIFIED_BY) != VERIFIED_BY_HARVEST


def describe(
    last_verified: date,
    now: datetime,
    thresholds: Thresholds,
    unreachable_since: datetime | None = None,
    *,
    confirmed: bool = True,
) -> dict[str, Any]:
    """The API's ``freshness`` object: state, the date, and a note for stale and expired listings.

    ``unreachable_since``: when its sources last answered, if all have been failing for longer
    than SOURCE_UNREACHABLE_DAYS. ``confirmed``: see :func:`confirmed_by_organiser`.
    """
    current = state(last_verified, now, thresholds)
    note = None
    if current in ("stale", "expired"):
        note = f"Not confirmed since {last_verified.strftime('%B %Y')}"
    if not confirmed:
        current = "stale" if current != "expired" else current
        note = NOT_CONFIRMED
    if unreachable_since is not None and current != "expired":
        current = "stale"
        note = f"Its source has not answered since {unreachable_since.day} {unreachable_since:%B %Y}"
    return {
        "state": current,
        "lastVerified": last_verified.isoformat(),
        "note": note,
        "confirmedByOrganiser": confirmed,
    }


def capacity_stated_at(activity: Mapping[str, Any]) -> datetime | None:
    """When the capacity was last stated: its own ``updatedAt``, else when the item was last saved."""
    capacity = activity.get("capacity") or {}
    for value in (capacity.get("updatedAt"), activity.get("dateModified")):
        if value:
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                continue
    return None


def current_capacity(
    activity: Mapping[str, Any], now: datetime, thresholds: Thresholds
) -> dict[str, Any] | None:
    """The capacity to show: as stated, or ``unknown`` when it was stated too long ago to trust."""
    capacity = activity.get("capacity")
    if not capacity or capacity.get("status") == "unknown":
        return capacity
    stated = capacity_stated_at(activity)
    if stated is not None and stated.tzinfo is not None and stated >= thresholds.capacity_known_since(now):
        return capacity
    shown: dict[str, Any] = {"status": "unknown"}
    if capacity.get("updatedAt"):
        shown["updatedAt"] = capacity["updatedAt"]
    return shown
