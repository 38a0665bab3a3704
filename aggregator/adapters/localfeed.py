"""Our own feed format: RPDE pages of Localfeed activities, from a publisher or an aggregator.

The cursor is the URL of the next page to read. The last page has no items and names
itself as ``next``; the harvest keeps that URL, so the next harvest asks for it again
with a conditional GET and sees new changes as soon as they are published.

An aggregator's republished feed adds ``"localfeed:provenance"`` to each item; it is
carried into the change's data under the same key for the harvest to take out (so that
a loop through this aggregator can be refused), never validated as part of the activity.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from aggregator.adapters.base import Change, Fetch, Page, Unmapped
from schema.rpde import decode_page

KIND = "localfeed"
PROVENANCE_KEY = "localfeed:provenance"


def sniff(content_type: str, body: bytes) -> bool:
    """An RPDE page whose items (if any) look like Localfeed activities, not OpenActive ones."""
    if "json" not in content_type and not body.lstrip().startswith(b"{"):
        return False
    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(page, dict) or not isinstance(page.get("items"), list) or "next" not in page:
        return False
    items = [item for item in page["items"] if isinstance(item, dict) and item.get("data")]
    if not items:  # an empty page: ours unless it names OpenActive (its licence, say)
        return b"openactive.io" not in body
    data = items[0]["data"]
    return isinstance(data, dict) and "lastVerified" in data


def pages(fetch: Fetch, url: str, cursor: str | None) -> Iterator[Page]:
    next_url = cursor or url
    while True:
        fetched = fetch(next_url)
        if fetched is None:  # 304: nothing new since the last harvest
            return
        page = decode_page(fetched.content)
        changes: list[Change] = []
        unmapped: list[Unmapped] = []
        for item in page["items"]:
            if item["state"] == "deleted":
                changes.append(Change(id=item["id"], data=None))
                continue
            data = dict(item["data"])
            provenance = item.get(PROVENANCE_KEY)
            if provenance is not None:
                if not isinstance(provenance, list):
                    unmapped.append(Unmapped(item["id"], f"its {PROVENANCE_KEY} is not a list of sources"))
                    continue
                data[PROVENANCE_KEY] = provenance
            changes.append(Change(id=item["id"], data=data))
        last = not page["items"] or page["next"] == next_url
        yield Page(changes, unmapped, cursor=page["next"])
        if last:
            return
        next_url = page["next"]
