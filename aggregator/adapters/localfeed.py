"""Our own feed format: RPDE pages of Localfeed activities, from a publisher or an aggregator.

Each item's data is the activity in its OpenActive form, read back with the contract's one
mapping (``schema.openactive.from_openactive``), which the OpenActive adapter also uses for
Localfeed items it meets: an item is read the same way whichever adapter reads it.

The cursor is the URL of the next page to read. The last page has no items and names
itself as ``next``; the harvest keeps that URL, so the next harvest asks for it again
with a conditional GET and sees new changes as soon as they are published.

An aggregator's republished feed adds ``"localfeed:provenance"`` to each item; it is
carried into the change's data under the same key for the harvest to take out (so that
a loop through this aggregator can be refused), never validated as part of the activity.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from aggregator import budget
from aggregator.adapters.base import Change, Fetch, Page, Unmapped
from schema.openactive import NotLocalfeedForm, from_openactive, is_localfeed_form
from schema.rpde import PageError, decode_page

KIND = "localfeed"
PROVENANCE_KEY = "localfeed:provenance"


def sniff(content_type: str, body: bytes) -> bool:
    """An RPDE page whose items (if any) are Localfeed activities (OpenActive naming Localfeed's context)."""
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
    return is_localfeed_form(items[0]["data"])


def pages(fetch: Fetch, url: str, cursor: str | None) -> Iterator[Page]:
    next_url = cursor or url
    walked: set[str] = set()
    while True:
        walked.add(next_url)
        fetched = fetch(next_url)
        if fetched is None:  # 304: nothing new since the last harvest
            return
        page = decode_page(fetched.content)
        budget.spend(items=len(page["items"]))
        changes: list[Change] = []
        unmapped: list[Unmapped] = []
        for item in page["items"]:
            if item["state"] == "deleted":
                changes.append(Change(id=item["id"], data=None, modified=item["modified"]))
                continue
            try:
                data = from_openactive(item["data"])
            except NotLocalfeedForm as exc:
                unmapped.append(Unmapped(item["id"], f"{exc} Ask the publisher to check its feed."))
                continue
            provenance = item.get(PROVENANCE_KEY)
            if provenance is not None:
                problem = _provenance_problem(provenance)
                if problem:
                    unmapped.append(Unmapped(item["id"], problem))
                    continue
                data[PROVENANCE_KEY] = provenance
            changes.append(Change(id=item["id"], data=data, modified=item["modified"]))
        last = not page["items"] or page["next"] == next_url
        yield Page(changes, unmapped, cursor=page["next"])
        if last:
            return
        if page["next"] in walked:
            raise PageError(
                f"The feed page {next_url} links back to {page['next']}, a page already read in this "
                "harvest, so the feed never ends. Each next link must move past the page's last item."
            )
        next_url = page["next"]


def _provenance_problem(provenance: Any) -> str | None:
    """What is wrong with an item's provenance (a list of {source_url, item_id, via}), or None."""
    entries_ok = isinstance(provenance, list) and all(
        isinstance(entry, dict)
        and isinstance(entry.get("source_url", ""), str)
        and isinstance(entry.get("item_id", ""), str)
        and isinstance(entry.get("via", []), list)
        and all(isinstance(via, str) for via in entry.get("via", []))
        for entry in provenance
    )
    if entries_ok:
        return None
    return (
        f"its {PROVENANCE_KEY} is not a list of sources, each with a source_url, an item_id "
        "and a list of the aggregators it came through (via)"
    )
