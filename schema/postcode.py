"""UK postcodes as the contract accepts them, and their one normal form.

Validity comes from the schema's own ``postcode`` pattern, so a postcode the contract
accepts always normalises, and storage, geocoding and search can compare normal forms.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from functools import cache
from typing import Any

from schema.resources import shared


@cache
def _pattern() -> re.Pattern[str]:
    return re.compile(shared("activity.schema.json")["$defs"]["postcode"]["pattern"])


def normalise_postcode(text: str) -> str | None:
    """``"cr41ht"`` → ``"CR4 1HT"``: upper case, one space before the inward code.

    None when ``text`` is not a UK postcode.
    """
    if not _pattern().search(text):
        return None
    compact = "".join(text.split()).upper()
    return f"{compact[:-3]} {compact[-3:]}"


def normalise_activity_postcode(activity: MutableMapping[str, Any]) -> None:
    """Put ``activity``'s postcode in its normal form, in place, before it is checked and stored.

    Every door calls it (the publisher's one write path, the aggregator's harvest), so
    feeds, merging and search compare like with like however it was typed. Anything that
    is not a postcode is left as sent, for validation to name.
    """
    location = activity.get("location")
    address = location.get("address") if isinstance(location, dict) else None
    typed = address.get("postalCode") if isinstance(address, dict) else None
    if isinstance(address, dict) and isinstance(typed, str):
        address["postalCode"] = normalise_postcode(typed) or typed


# A postcode's areas, finest first after the postcode itself: its sector ("CR4 2", about
# 3,000 addresses) and its district, the outward code ("CR4", about 8 sectors).
SECTOR, DISTRICT = "sector", "district"
_OUTWARD = re.compile(r"^(GIR|[A-Z]{1,2}[0-9][A-Z0-9]?)$")
_SECTOR = re.compile(r"^(GIR|[A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9])$")


def district_of(postcode: str) -> str:
    """The outward code of a normalised postcode: "CR4 2DG" → "CR4"."""
    return postcode.split(" ")[0]


def sector_of(postcode: str) -> str:
    """The sector of a normalised postcode: "CR4 2DG" → "CR4 2"."""
    return postcode[:-2]


def area_of(text: str) -> tuple[str, str] | None:
    """``(SECTOR, "CR4 2")`` or ``(DISTRICT, "CR4")`` when ``text`` names a postcode area, else None."""
    compact = " ".join(text.split()).upper()
    if _OUTWARD.match(compact):
        return DISTRICT, compact
    sector = _SECTOR.match(compact)
    if sector:
        return SECTOR, f"{sector.group(1)} {sector.group(2)}"
    return None
