"""Prices in plain English, the same on a publisher's pages and an aggregator's embeds.

A price is free, one amount in pounds, or, where there is no one amount (pay what you
can, prices by age, or a source that did not say), ``{"isFree": false, "notes": ...}``:
the notes are then the whole story, and nothing claims the activity is free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe_price", "is_free"]


def is_free(price: Mapping[str, Any]) -> bool:
    """Free to go: said so, or an amount of nothing."""
    return bool(price.get("isFree")) or price.get("amount") == 0


def describe_price(price: Mapping[str, Any]) -> str:
    """ "Free", "£3.50", either with its notes in brackets, or the notes alone."""
    notes = price.get("notes") or ""
    if is_free(price):
        text = "Free"
    elif price.get("amount") is not None:
        text = f"£{price['amount']:,.2f}"
    else:
        return notes
    return f"{text} ({notes})" if notes else text
