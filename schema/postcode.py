"""UK postcodes as the contract accepts them, and their one normal form.

Validity comes from the schema's own ``postcode`` pattern, so a postcode the contract
accepts always normalises, and storage, geocoding and search can compare normal forms.
"""

from __future__ import annotations

import re
from functools import cache

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
