"""Prices in plain English, the same on a publisher's pages and an aggregator's embeds.

A price is free, one amount in pounds, or, where there is no one amount (pay what you
can, prices by age, or a source that did not say), ``{"isFree": false, "notes": ...}``:
the notes are then the whole story, and nothing claims the activity is free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["PAY_WHAT_YOU_CAN", "describe_price", "donation_of", "is_free", "pay_what_you_can"]

# A donation is said in the notes, not as an amount: an amount would reach OpenActive as the
# offer's price and schema.org as what one must pay, and a suggested donation is neither. It
# needs no change to the contract, so every aggregator already accepts it.
PAY_WHAT_YOU_CAN = "Pay what you can"
_SUGGESTED = re.compile(r"^Pay what you can \(suggested donation £(\d+(?:\.\d{1,2})?)\)$")


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


def pay_what_you_can(suggested: float | None = None) -> dict[str, Any]:
    """The price of a pay-what-you-can activity, with its suggested donation in pounds if any."""
    if suggested is None:
        return {"isFree": False, "notes": PAY_WHAT_YOU_CAN}
    return {"isFree": False, "notes": f"{PAY_WHAT_YOU_CAN} (suggested donation £{suggested:.2f})"}


def donation_of(price: Mapping[str, Any]) -> tuple[bool, float | None]:
    """Whether ``price`` is one :func:`pay_what_you_can` made, and its suggested donation.

    A form editing the activity again reads its choice back from here.
    """
    notes = price.get("notes") or ""
    if price.get("isFree") is not False or price.get("amount") is not None:
        return False, None
    if notes == PAY_WHAT_YOU_CAN:
        return True, None
    match = _SUGGESTED.match(notes)
    return (True, float(match.group(1))) if match else (False, None)
