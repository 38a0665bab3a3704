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
because a harvest applies thousands of items a second: copies are placed before they are
written (:func:`place`), which makes the merged row of a new item that has only its copy
finished, in one INSERT; an item whose only copy is one just written is built from that copy
as it is in memory (:func:`settle`); only items with several copies read them back.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


@dataclass
class Placement:
    """Where a page's new and changed copies belong, decided before they are written.

    Copies are named by (source id, item id), since a new one has no id until it is
    written, and go into the store with their merged item already set. ``homes`` are the
    merged rows made for this page: they had no copies, keys or index rows before it, so
    settling an item whose only copy came on this page reads nothing back.
    """

    copies: Sequence[Any]
    targets: dict[tuple[int, str], int] = field(default_factory=dict)
    affected: set[int] = field(default_factory=set)
    homes: dict[int, str] = field(default_factory=dict)  # merged id -> its item_id
    keys: dict[tuple[int, str], set[str]] = field(default_factory=dict)  # each copy's merge keys
    # Rows made finished by :func:`place`: merged id -> (data, provenance, merge keys), still to index.
    finished: dict[int, tuple[dict[str, Any], list[dict[str, Any]], set[str]]] = field(default_factory=dict)

    def target_of(self, copy: Any) -> int:
        """The merged item ``copy`` (anything with ``source_id`` and ``item_id``) belongs to."""
        return self.targets[(copy.source_id, copy.item_id)]


def place(conn: Connection, attached: Sequence[Any]) -> Placement:
    """Decide which merged item each new or changed copy joins, making merged rows where none fits.

    ``attached`` are copies as they will be stored (``id`` None for a new one; ``merged_id``
    as stored before this change). The caller writes them with :meth:`Placement.target_of`,
    then calls :func:`settle`. A sameAs bridging two merged items moves the stored copies of
    one into the other here.
    """
    placement = Placement(attached)
    if not attached:
        return placement
    uris = {(c.source_id, c.item_id): uri_keys(c.data) for c in attached}
    looks = {(c.source_id, c.item_id): match_key(c.data) for c in attached}
    key_map: dict[str, set[int]] = defaultdict(set)
    wanted = set().union(*uris.values()) | {k for k in looks.values() if k}
    for chunk in chunks(wanted):
        for key, merged_id in conn.execute(
            select(merge_keys.c.key, merge_keys.c.merged_id).where(merge_keys.c.key.in_(chunk))
        ):
            key_map[key].add(merged_id)
    # Which copies (source id, item id) each look-alike candidate holds.
    members: dict[int, set[tuple[int, str]]] = defaultdict(set)
    candidates = set().union(*(key_map[k] for k in looks.values() if k))
    for chunk in chunks(candidates):
        for merged_id, source_id, item_id in conn.execute(
            select(copies.c.merged_id, copies.c.source_id, copies.c.item_id).where(
                copies.c.merged_id.in_(chunk)
            )
        ):
            members[merged_id].add((source_id, item_id))
    homes, to_make = _home_ids(conn, [c.data["id"] for c in attached])
    placement.homes = dict(to_make)

    absorbed: dict[int, int] = {}  # merged items found to be one with another on this page
    for copy in attached:
        name = (copy.source_id, copy.item_id)
        found = set().union(*(key_map[k] for k in uris[name]))
        if found:
            target = min(found)
            # A copy naming two merged items (a sameAs bridging them) shows they are one.
            for other in sorted(found - {target}):
                if other < _NEW:  # a row still to make holds no stored copies
                    conn.execute(update(copies).where(copies.c.merged_id == other).values(merged_id=target))
                for ids in key_map.values():
                    if other in ids:
                        ids.discard(other)
                        ids.add(target)
                members[target] |= members.pop(other, set())
                absorbed[other] = target
                placement.homes.pop(target, None)  # it may now hold stored copies too
                placement.affected.add(other)
        else:
            # Look-alikes are only a hint: join the oldest, never fuse several together, and
            # never join a look-alike from the same source (a feed listing two means two).
            look = looks[name]
            alike = {
                m
                for m in (key_map[look] if look else ())
                if not any(source == copy.source_id and other != copy.item_id for source, other in members[m])
            }
            target = min(alike) if alike else homes[copy.data["id"]]
        placement.keys[name] = uris[name] | set(filter(None, [looks[name]]))
        for key in placement.keys[name]:
            key_map[key].add(target)  # later copies on this page find it too
        members[target].add(name)
        placement.targets[name] = target
        placement.affected.add(target)
        if copy.merged_id is not None and copy.merged_id != target:
            placement.affected.add(copy.merged_id)
    for name, target in placement.targets.items():
        while target in absorbed:  # placed earlier on the page in an item since bridged into another
            target = absorbed[target]
        placement.targets[name] = target
    _make_homes(conn, placement, to_make)
    return placement


def settle(conn: Connection, placement: Placement, detached_from: Iterable[int | None] = ()) -> None:
    """Bring every merged item concerned up to date once the placed copies are written.

    ``detached_from`` are the merged items of copies just deleted.
    """
    recompute(conn, placement.affected | {m for m in detached_from if m is not None}, placement)


# Rows still to make are named by numbers from _NEW up until they are made, in the order of
# their item ids, which is the order the database then numbers them in: above every row made
# before, as their ids will be. So the placement compares them exactly as it would their ids.
_NEW = 1 << 62
# A merged row made before anything is shown in it: in no feed and no index.
_UNSHOWN: dict[str, Any] = {
    "state": "deleted",
    "kind": "SessionSeries",
    "data": None,
    "provenance": [],
    "change_number": 0,
}


def _home_ids(conn: Connection, item_ids: list[str]) -> tuple[dict[str, int], dict[int, str]]:
    """The merged row each id would start (or, deleted, bring back): those still to make named from _NEW.

    Returns (item id -> merged id, the rows to make: stand-in id -> item id). A copy that
    joins another item leaves its home unused: a row that is never shown (change number 0,
    so in no feed) and that it takes up again if it is ever split off.
    """
    found = _merged_ids(conn, item_ids)
    missing = {_NEW + n: item_id for n, item_id in enumerate(sorted(set(item_ids) - set(found)))}
    found.update((item_id, stand_in) for stand_in, item_id in missing.items())
    return found, missing


def _make_homes(conn: Connection, placement: Placement, to_make: dict[int, str]) -> None:
    """Make the page's new merged rows (``to_make``) in one statement; give the placement their ids.

    A row whose only copy is one placed on this page (the usual case) is made finished: its
    data, provenance and change number, as :func:`recompute` would have set them, so it is
    written once. Any other is made empty and settled by :func:`recompute` with the rest.
    """
    if not to_make:
        return
    placed: dict[int, list[Any]] = defaultdict(list)
    for copy in placement.copies:
        placed[placement.target_of(copy)].append(copy)
    alone = {m: placed[m][0] for m in placement.homes if len(placed.get(m, ())) == 1}
    latest_believed = (utcnow() + FUTURE_SLACK).date().isoformat()
    views = {
        m: _merged_view(placement.homes[m], [_held(m, copy, row)], latest_believed)
        for m, copy, row in _with_sources(conn, alone)
    }
    stamp = utcnow()
    numbers = iter(next_change_numbers(conn, counter, len(views)) if views else ())
    rows = []
    for stand_in, item_id in to_make.items():
        row: dict[str, Any] = {"item_id": item_id, **_UNSHOWN, "modified_at": stamp}
        if stand_in in views:
            data, provenance = views[stand_in]
            kind = data.get("type", "SessionSeries")
            row.update(
                state="updated", kind=kind, data=data, provenance=provenance, change_number=next(numbers)
            )
        rows.append(row)
    # A plain many-row INSERT, then one SELECT: an ordered INSERT ... RETURNING runs row by row on SQLite.
    conn.execute(insert(merged), rows)
    made = _merged_ids(conn, to_make.values())
    real = {stand_in: made[item_id] for stand_in, item_id in to_make.items()}
    placement.targets = {name: real.get(target, target) for name, target in placement.targets.items()}
    placement.affected = {real.get(m, m) for m in placement.affected}
    placement.homes = {real[m]: item_id for m, item_id in placement.homes.items()}
    placement.finished = {
        real[m]: (*views[m], placement.keys[(copy.source_id, copy.item_id)]) for m, copy in alone.items()
    }


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


class _Before(NamedTuple):
    """What a merged row made on this page holds before it is settled: nothing shown yet."""

    item_id: str
    state: str = "deleted"
    kind: str = "SessionSeries"
    data: Any = None
    provenance: list[Any] = []


class _Held(NamedTuple):
    """A copy as the merge weighs it: its own columns and its source's."""

    id: int | None
    merged_id: int
    source_id: int
    item_id: str
    data: dict[str, Any]
    upstream: list[dict[str, Any]]
    last_verified: str | None
    harvested_at: Any
    trust: int
    feed_url: str
    source_url: str


_HELD = (
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


def recompute(conn: Connection, merged_ids: Iterable[int | None], placement: Placement | None = None) -> None:
    """Rebuild merged items from their copies; a new change number only for those that changed.

    With the ``placement`` whose copies were just written, an item whose only copy is one
    of them (the usual case) is built from that copy as it is in memory, without reading
    it back, and one made finished by :func:`place` is only indexed; only items with
    several copies read them all.
    """
    placement = placement or Placement(())
    ids = sorted({m for m in merged_ids if m is not None})
    if not ids:
        return
    finished = placement.finished
    built = [m for m in ids if m not in finished]
    groups: dict[int, list[Any]] = defaultdict(list, _alone(conn, built, placement))
    for chunk in chunks([m for m in built if m not in groups]):
        for row in conn.execute(
            select(*_HELD)
            .join(sources, sources.c.id == copies.c.source_id)
            .where(copies.c.merged_id.in_(chunk))
            .order_by(copies.c.id)
        ):
            groups[row.merged_id].append(row)
    current: dict[int, Any] = {m: _Before(item_id) for m, item_id in placement.homes.items()}
    for chunk in chunks([m for m in built if m not in placement.homes]):
        current.update((row.id, row) for row in conn.execute(select(merged).where(merged.c.id.in_(chunk))))
        conn.execute(delete(merge_keys).where(merge_keys.c.merged_id.in_(chunk)))

    keys: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    fresh: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []  # (id, data, provenance) to index
    latest_believed = (utcnow() + FUTURE_SLACK).date().isoformat()
    for merged_id in ids:
        if merged_id in finished:
            data, provenance, item_keys = finished[merged_id]
            keys += [{"key": key, "merged_id": merged_id} for key in sorted(item_keys)]
            fresh.append((merged_id, data, provenance))
            continue
        rows, before = groups.get(merged_id), current[merged_id]
        if not rows:
            if before.state != "deleted":
                changed.append(_change(merged_id, "deleted", before.kind, None, []))
            continue
        data, provenance = _merged_view(before.item_id, rows, latest_believed)
        item_keys = set().union(*(_keys_of(row, placement) for row in rows))
        keys += [{"key": key, "merged_id": merged_id} for key in sorted(item_keys)]
        if before.state == "updated" and before.data == data and before.provenance == provenance:
            continue
        changed.append(_change(merged_id, "updated", data.get("type", "SessionSeries"), data, provenance))
        fresh.append((merged_id, data, provenance))

    if keys:
        conn.execute(insert(merge_keys), keys)
    stamp = utcnow()
    if changed:
        for values, number in zip(changed, next_change_numbers(conn, counter, len(changed)), strict=True):
            values.update(b_change_number=number, b_modified_at=stamp)
        columns = ("state", "kind", "data", "provenance", "change_number", "modified_at")
        conn.execute(
            update(merged)
            .where(merged.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in columns}),
            changed,
        )
        search_index.remove_many(
            conn, [values["b_id"] for values in changed if values["b_state"] == "deleted"]
        )
    search_index.reindex_many(conn, fresh, now=stamp, unindexed=placement.homes)


def _alone(conn: Connection, ids: Sequence[int], placement: Placement) -> dict[int, list[_Held]]:
    """The items among ``ids`` whose only copy is one just placed, each with that copy as held now.

    An item made on this page holds only what the page put in it; any other is asked which
    copies it holds (ids only, no data), since it may hold older copies too.
    """
    placed: dict[int, list[Any]] = defaultdict(list)
    for copy in placement.copies:
        placed[placement.target_of(copy)].append(copy)
    alone = {m: placed[m][0] for m in ids if len(placed.get(m, ())) == 1}
    holding: dict[int, set[tuple[int, str]]] = defaultdict(set)
    for chunk in chunks([m for m in alone if m not in placement.homes]):
        for merged_id, source_id, item_id in conn.execute(
            select(copies.c.merged_id, copies.c.source_id, copies.c.item_id).where(
                copies.c.merged_id.in_(chunk)
            )
        ):
            holding[merged_id].add((source_id, item_id))
    alone = {
        m: copy
        for m, copy in alone.items()
        if m in placement.homes or holding[m] == {(copy.source_id, copy.item_id)}
    }
    return {m: [_held(m, copy, source)] for m, copy, source in _with_sources(conn, alone)}


def _with_sources(conn: Connection, placed: Mapping[int, Any]) -> list[tuple[int, Any, Any]]:
    """Each (merged id, its one placed copy) of ``placed`` with the copy's source's trust and URLs."""
    source_ids = {copy.source_id for copy in placed.values()}
    if not source_ids:
        return []
    by_source = {
        row.id: row
        for row in conn.execute(
            select(sources.c.id, sources.c.trust, sources.c.feed_url, sources.c.url).where(
                sources.c.id.in_(source_ids)
            )
        )
    }
    return [(m, copy, by_source[copy.source_id]) for m, copy in placed.items()]


def _held(merged_id: int, copy: Any, source: Any) -> _Held:
    """A copy just placed, as the merge weighs it."""
    return _Held(
        copy.id,
        merged_id,
        copy.source_id,
        copy.item_id,
        copy.data,
        copy.upstream,
        copy.data.get("lastVerified"),
        None,  # only weighed against other copies, and it has none
        source.trust,
        source.feed_url,
        source.url,
    )


def _keys_of(row: Any, placement: Placement) -> set[str]:
    """A copy's merge keys: as the placement worked them out, or afresh for a copy read back."""
    known = placement.keys.get((row.source_id, row.item_id))
    if known is not None:
        return known
    look = match_key(row.data)
    return uri_keys(row.data) | ({look} if look is not None else set())


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

    winner = rows[0] if len(rows) == 1 else max(rows, key=rank)
    # The merged item keeps the id it was first seen under, whichever copy wins, so a
    # follower of our feed sees one item change, never one vanish and another appear.
    data = {**winner.data, "id": item_id}
    same_as = {uri for r in rows for uri in [r.data.get("id"), *(r.data.get("sameAs") or [])] if uri}
    same_as.discard(item_id)
    if same_as:
        data["sameAs"] = sorted(same_as)
    return data, [entry for r in rows for entry in _provenance(r)]
