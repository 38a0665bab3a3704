"""Merging the copies that several sources hold of one activity into one merged item.

A group's own feed, its umbrella body's feed and a neighbouring aggregator may all
carry the same walk. Copies join one merged item when they share an ``id`` or a
``sameAs`` URI, or, carefully, when name, postcode and schedule all match (never two
copies from one source that way: a feed listing two look-alike sessions means two).
The merged item shows the winning copy (the authority's for its id, then the most
trusted source, then the most recently verified) and lists every copy in its provenance.

Every function here runs inside the caller's transaction, which has already taken the
change counter's row lock (``federation.db.next_change_numbers``), so merges never race. Work is
done a page at a time, in a fixed number of statements (plus the search index's own),
because a harvest applies thousands of items a second.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from aggregator import search_index
from aggregator.adapters.mapping import VERIFIED_BY, VERIFIED_BY_HARVEST
from aggregator.authority import FUTURE_SLACK, SourceAuthority
from aggregator.store import chunks, copies, counter, merge_keys, merged, sources
from federation.clock import utcnow
from federation.db import next_change_numbers
from schema import normalise_postcode


def _normalise_name(name: str) -> str:
    """Case, accents, punctuation and spacing do not make two activities different."""
    folded = name.replace("\u2019", "'").replace("'", "")  # St Mark's = St Marks
    folded = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode().lower()
    folded = folded.replace("&", " and ")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", folded).split())


def _schedule_signature(activity: dict[str, Any]) -> str | None:
    if activity.get("type") == "Event":
        return activity.get("startDate")
    parts = []
    for rule in activity.get("schedule") or []:
        parts.append(
            "{}/{}/{}/{}".format(
                rule.get("repeatFrequency"),
                ",".join(sorted(rule.get("byDay") or [])),
                rule.get("byMonthWeek", ""),
                rule.get("startTime"),
            )
        )
    return ";".join(sorted(parts)) or None


def match_key(activity: dict[str, Any]) -> str | None:
    """The careful look-alike key, or None when the activity has no postcode or schedule to go on."""
    address = (activity.get("location") or {}).get("address") or {}
    postcode = normalise_postcode(address.get("postalCode") or "")
    signature = _schedule_signature(activity)
    name = _normalise_name(activity.get("name") or "")
    if not postcode or not signature or not name:
        return None
    return f"match:{name}|{postcode}|{signature}"


def uri_keys(activity: dict[str, Any]) -> set[str]:
    return {f"uri:{uri}" for uri in [activity.get("id"), *(activity.get("sameAs") or [])] if uri}


def attach(conn: Connection, attached: Sequence[Any], detached_from: Iterable[int | None] = ()) -> None:
    """Put new or changed copies into the right merged items, and bring every item concerned up to date.

    ``attached`` are copy rows (``id``, ``source_id``, ``data``, ``merged_id`` as stored
    before this change); ``detached_from`` the merged items of copies just deleted.
    """
    affected = {m for m in detached_from if m is not None}
    if attached:
        affected |= _assign(conn, attached)
    recompute(conn, affected)


def _assign(conn: Connection, attached: Sequence[Any]) -> set[int]:
    uris = {c.id: uri_keys(c.data) for c in attached}
    looks = {c.id: match_key(c.data) for c in attached}
    key_map: dict[str, set[int]] = defaultdict(set)
    wanted = set().union(*uris.values()) | {k for k in looks.values() if k}
    for chunk in chunks(wanted):
        for key, merged_id in conn.execute(
            select(merge_keys.c.key, merge_keys.c.merged_id).where(merge_keys.c.key.in_(chunk))
        ):
            key_map[key].add(merged_id)
    # Which copies (of which sources) each look-alike candidate holds.
    members: dict[int, set[tuple[int, int]]] = defaultdict(set)
    candidates = set().union(*(key_map[k] for k in looks.values() if k))
    for chunk in chunks(candidates):
        for merged_id, source_id, copy_id in conn.execute(
            select(copies.c.merged_id, copies.c.source_id, copies.c.id).where(copies.c.merged_id.in_(chunk))
        ):
            members[merged_id].add((source_id, copy_id))
    homes = _homes(conn, [c.data["id"] for c in attached])

    affected: set[int] = set()
    assignments = []
    for copy in attached:
        found = set().union(*(key_map[k] for k in uris[copy.id]))
        if found:
            target = min(found)
            # A copy naming two merged items (a sameAs bridging them) shows they are one.
            for other in sorted(found - {target}):
                conn.execute(update(copies).where(copies.c.merged_id == other).values(merged_id=target))
                for ids in key_map.values():
                    if other in ids:
                        ids.discard(other)
                        ids.add(target)
                members[target] |= members.pop(other, set())
                affected.add(other)
        else:
            # Look-alikes are only a hint: join the oldest, never fuse several together, and
            # never join a look-alike from the same source (a feed listing two means two).
            look = looks[copy.id]
            alike = {
                m
                for m in (key_map[look] if look else ())
                if not any(source == copy.source_id and other != copy.id for source, other in members[m])
            }
            target = min(alike) if alike else homes[copy.data["id"]]
        for key in uris[copy.id] | set(filter(None, [looks[copy.id]])):
            key_map[key].add(target)  # later copies on this page find it too
        members[target].add((copy.source_id, copy.id))
        assignments.append({"b_copy": copy.id, "b_merged": target})
        affected.add(target)
        if copy.merged_id is not None and copy.merged_id != target:
            affected.add(copy.merged_id)
    conn.execute(
        update(copies).where(copies.c.id == bindparam("b_copy")).values(merged_id=bindparam("b_merged")),
        assignments,
    )
    return affected


def _homes(conn: Connection, item_ids: list[str]) -> dict[str, int]:
    """The merged row each id would start (or, deleted, bring back), made in one statement for the page.

    A copy that joins another item leaves its home unused: a row that was never shown
    (change number 0, so in no feed) and that it takes up again if it is ever split off.
    """
    found = _merged_ids(conn, item_ids)
    missing = sorted(set(item_ids) - set(found))
    if missing:
        stamp = utcnow()
        rows = [
            {
                "item_id": item_id,
                "provenance": [],
                "state": "deleted",
                "change_number": 0,
                "modified_at": stamp,
            }
            for item_id in missing
        ]
        # A plain many-row INSERT, then one SELECT: an ordered INSERT ... RETURNING runs row by row on SQLite.
        conn.execute(insert(merged), rows)
        found.update(_merged_ids(conn, missing))
    return found


def _merged_ids(conn: Connection, item_ids: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunks(set(item_ids)):
        found.update(
            conn.execute(select(merged.c.item_id, merged.c.id).where(merged.c.item_id.in_(chunk))).all()
        )
    return found


def _provenance(row: Any) -> list[dict[str, Any]]:
    """A copy's entries: itself when straight from a publisher, else what its upstream listed."""
    if not row.upstream:
        return [{"source_id": row.source_id, "source_url": row.feed_url, "item_id": row.item_id, "via": []}]
    return [
        {
            "source_id": row.source_id,
            "source_url": entry.get("source_url", row.feed_url),
            "item_id": entry.get("item_id", row.item_id),
            "via": list(entry.get("via", [])),
        }
        for entry in row.upstream
    ]


def recompute(conn: Connection, merged_ids: Iterable[int | None]) -> None:
    """Rebuild merged items from their copies; a new change number only for those that changed."""
    ids = sorted({m for m in merged_ids if m is not None})
    if not ids:
        return
    groups: dict[int, list[Any]] = defaultdict(list)
    current: dict[int, Any] = {}
    for chunk in chunks(ids):
        for row in conn.execute(
            select(
                copies.c.id,
                copies.c.merged_id,
                copies.c.source_id,
                copies.c.item_id,
                copies.c.data,
                copies.c.upstream,
                copies.c.last_verified,
                copies.c.harvested_at,
                sources.c.trust,
                sources.c.feed_url,
                sources.c.url.label("source_url"),
            )
            .join(sources, sources.c.id == copies.c.source_id)
            .where(copies.c.merged_id.in_(chunk))
            .order_by(copies.c.id)
        ):
            groups[row.merged_id].append(row)
        current.update((row.id, row) for row in conn.execute(select(merged).where(merged.c.id.in_(chunk))))
        conn.execute(delete(merge_keys).where(merge_keys.c.merged_id.in_(chunk)))

    keys: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    latest_believed = (utcnow() + FUTURE_SLACK).date().isoformat()
    for merged_id in ids:
        rows, before = groups.get(merged_id), current[merged_id]
        if not rows:
            if before.state != "deleted":
                changed.append(_change(merged_id, "deleted", before.kind, None, []))
            continue
        data, provenance = _merged_view(before.item_id, rows, latest_believed)
        item_keys = set().union(*(uri_keys(r.data) for r in rows))
        item_keys |= {key for r in rows if (key := match_key(r.data)) is not None}
        keys += [{"key": key, "merged_id": merged_id} for key in sorted(item_keys)]
        if before.state == "updated" and before.data == data and before.provenance == provenance:
            continue
        changed.append(_change(merged_id, "updated", data.get("type", "SessionSeries"), data, provenance))

    if keys:
        conn.execute(insert(merge_keys), keys)
    if not changed:
        return
    stamp = utcnow()
    for values, number in zip(changed, next_change_numbers(conn, counter, len(changed)), strict=True):
        values.update(b_change_number=number, b_modified_at=stamp)
    columns = ("state", "kind", "data", "provenance", "change_number", "modified_at")
    conn.execute(
        update(merged)
        .where(merged.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in columns}),
        changed,
    )
    search_index.remove_many(conn, [values["b_id"] for values in changed if values["b_state"] == "deleted"])
    search_index.reindex_many(
        conn,
        [
            (values["b_id"], values["b_data"], values["b_provenance"])
            for values in changed
            if values["b_state"] == "updated"
        ],
        now=stamp,
    )


def _change(merged_id: int, state: str, kind: str, data: Any, provenance: list[Any]) -> dict[str, Any]:
    return {"b_id": merged_id, "b_state": state, "b_kind": kind, "b_data": data, "b_provenance": provenance}


def confirmed_on(row: Any) -> str:
    """The copy's ``lastVerified``, or "" when that is only the day we harvested it (unverified)."""
    if row.data.get(VERIFIED_BY) == VERIFIED_BY_HARVEST:
        return ""
    return row.last_verified or ""


def _merged_view(
    item_id: str, rows: list[Any], latest_believed: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The winning copy's data and every copy's provenance.

    The winner is the authority's copy (straight from the site that minted the item's id)
    whenever one is held, whatever the others' trust or dates (aggregator.authority); then
    copies straight from their publishers before relayed ones; then the most trusted, then
    the most recently verified, where a date after ``latest_believed`` counts for no more
    than that day.
    """
    authorities: dict[int, bool] = {}

    def rank(row: Any) -> tuple[Any, ...]:
        if row.source_id not in authorities:
            home = SourceAuthority.of((row.feed_url, row.source_url), relays=False)
            authorities[row.source_id] = home.speaks_for(item_id)
        direct = not row.upstream
        verified = min(confirmed_on(row), latest_believed)
        return (direct and authorities[row.source_id], direct, row.trust, verified, row.harvested_at, -row.id)

    winner = max(rows, key=rank)
    # The merged item keeps the id it was first seen under, whichever copy wins, so a
    # follower of our feed sees one item change, never one vanish and another appear.
    data = {**winner.data, "id": item_id}
    same_as = {uri for r in rows for uri in [r.data.get("id"), *(r.data.get("sameAs") or [])] if uri}
    same_as.discard(item_id)
    if same_as:
        data["sameAs"] = sorted(same_as)
    return data, [entry for r in rows for entry in _provenance(r)]
