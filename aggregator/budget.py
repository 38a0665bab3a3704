"""What one harvest job may spend on one source: wall-clock time, pages, items and bytes.

A source we follow is a stranger's server. Whatever it sends (an endless feed, a page of
a million items, a calendar that takes minutes to read), one harvest of it must end in
bounded time and memory so the other sources get their turn. The harvest puts a
:class:`Budget` in force while the adapter runs; the fetch and every adapter's item loop
call :func:`spend`, which raises :class:`BudgetSpent` once any part is used up. The
harvest then keeps the pages it applied, with their cursor, and records the reason: the
next harvest continues from there.

``spend`` is a no-op when no budget is in force, so adapters read the same outside a
harvest (tests, the command line's ``check``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Budget", "BudgetSpent", "in_force", "remaining_seconds", "spend"]


class BudgetSpent(Exception):
    """One part of the harvest's budget is used up; ``reason`` says which, in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Budget:
    """Limits for one harvest job, and what it has used so far."""

    seconds: float = 120.0
    pages: int = 1_000
    items: int = 100_000
    bytes: int = 200_000_000
    started: float = field(default_factory=time.monotonic)
    used_pages: int = 0
    used_items: int = 0
    used_bytes: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Budget:
        return cls(
            seconds=float(config.get("HARVEST_TIME_LIMIT", 120.0)),
            pages=int(config.get("HARVEST_MAX_PAGES", 1_000)),
            items=int(config.get("HARVEST_MAX_ITEMS", 100_000)),
            bytes=int(config.get("HARVEST_MAX_BYTES", 200_000_000)),
        )

    def remaining(self) -> float:
        """Seconds left before the time limit (never negative)."""
        return max(0.0, self.seconds - (time.monotonic() - self.started))

    def spend(self, *, pages: int = 0, items: int = 0, bytes: int = 0) -> None:
        """Count what was just used; raise :class:`BudgetSpent` if any limit is now passed."""
        self.used_pages += pages
        self.used_items += items
        self.used_bytes += bytes
        if self.remaining() <= 0:
            raise BudgetSpent(f"the harvest reached its time limit of {self.seconds:g} seconds")
        if self.used_pages > self.pages:
            raise BudgetSpent(f"the feed needed more than {self.pages} requests in one harvest")
        if self.used_items > self.items:
            raise BudgetSpent(f"the feed sent more than {self.items} items in one harvest")
        if self.used_bytes > self.bytes:
            raise BudgetSpent(f"the feed sent more than {self.bytes:,} bytes in one harvest")


_current: ContextVar[Budget | None] = ContextVar("localfeed_harvest_budget", default=None)


@contextmanager
def in_force(budget: Budget) -> Iterator[Budget]:
    """Make ``budget`` the one :func:`spend` charges here, and in threads run in a copy of this context."""
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def spend(*, pages: int = 0, items: int = 0, bytes: int = 0) -> None:
    """Charge the budget in force, if any; raises :class:`BudgetSpent` when it is used up."""
    budget = _current.get()
    if budget is not None:
        budget.spend(pages=pages, items=items, bytes=bytes)


def remaining_seconds(default: float) -> float:
    """Seconds left in the budget in force, or ``default`` outside a harvest; for request deadlines."""
    budget = _current.get()
    return default if budget is None else min(default, budget.remaining())
