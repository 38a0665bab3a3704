"""How good a source's listings are, and who has checked them.

The quality report (on the source's public page and at ``/sources/<id>/quality.json``)
tells a publisher what to improve and a social prescriber how far to trust a feed:
the share of its accepted items that carry each thing a person needs before going
(where exactly, what it is, what the first visit is like, access, whom to ask, how
to book), the problems that got items refused, by kind, and how long ago organisers
last confirmed their listings. The refused items themselves, grouped by reason with the
plain messages (:func:`refused_by_reason`), are on the same page, so a publisher whose
items are refused can see why and fix them. So are the accepted items that cannot be put
on the map (:func:`unplaced_items`): no search near a place finds them until they can.

"Checked by us": an operator whose own staff visit the groups (a CVS, say) marks a
source as checked; every listing from it then names who vouches for it
(``vouchedBy`` in the query API, the widget and the embeds).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, request, url_for
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from aggregator import search_index as si
from aggregator.auth import operator_required, signed_in_operator_id
from aggregator.discovery import awaiting_approval
from aggregator.freshness import confirmed_by_organiser
from aggregator.store import copies, quarantine, sources
from federation.clock import clock
from federation.geocoding import DISTRICT, SECTOR, district_of

bp = Blueprint("quality", __name__)

MAX_CHECKED_BY = 200

# A readable name for each reason an item is refused, from the contract (schema.validation)
# and from the aggregator's own checks. A code not listed here is shown as itself: new
# checks name their reasons before this list catches up.
REFUSAL_REASONS: dict[str, str] = {
    "required": "Something required is missing",
    "wrong-type": "A field holds the wrong kind of value",
    "unknown-field": "A field Localfeed does not have",
    "not-allowed": "A value that is not allowed",
    "invalid": "A value that is not valid",
    "too-long": "Text that is too long",
    "too-few": "Too few entries",
    "too-many": "Too many entries",
    "too-small": "A number that is too small",
    "too-large": "A number that is too large",
    "duplicate": "An entry listed twice",
    "end-before-start": "Ends before it starts",
    "age-range": "Ages the wrong way round",
    "bad-timezone": "An unknown time zone",
    "bad-day": "Not a day of the week",
    "month-week-needs-monthly": "A week of the month on a schedule that is not monthly",
    "currency": "A price not in pounds",
    "postcode": "Not a UK postcode",
    "unknown-category": "An unknown category",
    "unknown-accessibility": "An unknown accessibility feature",
    "unknown-audience": "An unknown audience",
    "html-not-allowed": "HTML in plain text",
    "control-character": "Hidden control characters in text",
    "unsafe-url": "An unsafe web address",
    "bad-url": "Not a full web address",
    "bad-date": "Not a date",
    "bad-datetime": "Not a date and time",
    "bad-time": "Not a time",
    "bad-email": "Not an email address",
    "bad-telephone": "Not a telephone number",
    "bad-language": "Not a language code",
    "bad-format": "Not in the expected form",
    "id-mismatch": "The item's id and its data's id differ",
    "foreign-origin": "An activity of another site",
    "future-date": "A date in the future",
    "unmapped": "Could not be read as an activity",
}


def refusal_reason(code: str) -> str:
    """A reason code in words: its name in REFUSAL_REASONS, else the code's own words ("Brand new check")."""
    return REFUSAL_REASONS.get(code) or code.replace("-", " ").capitalize()


# Items listed under each reason on the page; the rest are counted (all are in the source's JSON).
REFUSED_SHOWN_PER_REASON = 20
# Items listed as not on the map, or only roughly; the rest are counted.
UNPLACED_SHOWN = 50


def _has_geo(activity: Mapping[str, Any]) -> bool:
    geo = (activity.get("location") or {}).get("geo") or {}
    return geo.get("latitude") is not None and geo.get("longitude") is not None


def _has_text(field: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda activity: bool(str(activity.get(field) or "").strip())


def _has_accessibility(activity: Mapping[str, Any]) -> bool:
    return bool((activity.get("location") or {}).get("accessibility"))


def _has_contact(activity: Mapping[str, Any]) -> bool:
    """Someone to ask: the activity's contact, or else its organiser, with an email or telephone."""
    return any(
        (activity.get(part) or {}).get("email") or (activity.get(part) or {}).get("telephone")
        for part in ("contact", "organizer")
    )


def _has_booking(activity: Mapping[str, Any]) -> bool:
    booking = activity.get("booking") or {}
    return bool(booking.get("url")) or booking.get("method") not in (None, "", "unknown")


# What each share counts, in the order the page lists them.
CHECKS: dict[str, tuple[str, Callable[[Mapping[str, Any]], bool]]] = {
    "geo": ("a map position", _has_geo),
    "description": ("a description", _has_text("description")),
    "firstVisit": ("first-visit information", _has_text("firstVisit")),
    "accessibility": ("accessibility information", _has_accessibility),
    "contact": ("a contact email or telephone", _has_contact),
    "booking": ("how to book or join", _has_booking),
}


def quality_report(conn: Connection, source_id: int, now: datetime) -> dict[str, Any]:
    """The quality report of one source at ``now``: shares, problems by kind, confirmation ages.

    Shares are of the source's accepted items (None when it has none yet). The median age
    counts only dates an organiser gave: a harvest date filled in by an adapter says nothing.
    """
    counts: Counter[str] = Counter()
    items = 0
    ages: list[int] = []
    today = now.date()
    for data, last_verified in conn.execute(
        select(copies.c.data, copies.c.last_verified).where(copies.c.source_id == source_id)
    ):
        items += 1
        counts.update(name for name, (_label, check) in CHECKS.items() if check(data))
        if last_verified and confirmed_by_organiser(data):
            ages.append((today - date.fromisoformat(last_verified[:10])).days)
    problems: Counter[str] = Counter()
    refused = 0
    for (reasons,) in conn.execute(select(quarantine.c.problems).where(quarantine.c.source_id == source_id)):
        refused += 1
        problems.update(str(reason.get("code") or "unknown") for reason in reasons or [])
    return {
        "items": items,
        "with": {
            name: {"count": counts[name], "share": round(counts[name] / items, 3) if items else None}
            for name in CHECKS
        },
        "refusedItems": refused,
        "problems": dict(sorted(problems.items(), key=lambda pair: (-pair[1], pair[0]))),
        # The same refusals, grouped by reason with each item's messages: what the publisher must fix.
        "refused": refused_by_reason(conn, source_id),
        "lastVerified": {
            "medianAgeDays": statistics.median(ages) if ages else None,
            "confirmedByOrganiser": len(ages),
            "notConfirmed": items - len(ages),
        },
        **unplaced_items(conn, source_id),
    }


def unplaced_items(conn: Connection, source_id: int, shown: int = UNPLACED_SHOWN) -> dict[str, Any]:
    """The source's listings no near search finds (``unplaced``), and those it finds only roughly.

    The rough ones (``placedApproximately``) are placed at the middle of their postcode sector
    or district. Each lists at most ``shown`` items by name, with their postcode and what to do, and counts
    them all. Online activities need no place and are left out.
    """
    c = si.index.c
    rows = conn.execute(
        select(c.merged_id, c.postcode, c.placed, c.cell, si.documents.c.activity)
        .join(si.index_sources, si.index_sources.c.merged_id == c.merged_id)
        .join(si.documents, si.documents.c.merged_id == c.merged_id)
        .where(
            si.index_sources.c.source_id == source_id,
            c.own_geo.is_(False),
            (c.cell.is_(None)) | c.placed.in_((SECTOR, DISTRICT)),
        )
        .order_by(c.merged_id)
    )
    found: dict[str, dict[str, Any]] = {
        "unplaced": {"count": 0, "items": []},
        "placedApproximately": {"count": 0, "items": []},
    }
    for merged_id, postcode, placed, cell, activity in rows:
        if activity.get("attendanceMode") == "online":
            continue
        kind = "unplaced" if cell is None else "placedApproximately"
        group = found[kind]
        group["count"] += 1
        if len(group["items"]) < shown:
            group["items"].append({
                "item": merged_id,
                "name": activity.get("name"),
                "postcode": postcode,
                "placed": placed,
                "message": _placing_advice(postcode, placed if cell is not None else None),
            })
    for group in found.values():
        group["more"] = group["count"] - len(group["items"])
    return found


def _placing_advice(postcode: str | None, placed: str | None) -> str:
    """Why a listing is not on the map (or only roughly), and what would put it there."""
    fix = (
        "Ask the publisher to check the postcode, or to give the map position (geo); loading the ONS "
        "Postcode Directory here (POSTCODE_CSV, see docs/deploying.md) places every real postcode."
    )
    if postcode is None:
        return f"It has neither a postcode nor a map position. {fix}"
    if placed is None:
        district = district_of(postcode)
        return f"We don't know where {postcode} is, nor anything in its district {district}. {fix}"
    return (
        f"We don't know {postcode} exactly, so it is placed in the middle of its {placed} "
        f"and its distances are approximate. {fix}"
    )


def refused_by_reason(
    conn: Connection, source_id: int, shown_per_reason: int = REFUSED_SHOWN_PER_REASON
) -> list[dict[str, Any]]:
    """The source's refused items grouped by reason code, the most common reason first.

    Each reason has its readable ``label``, the ``count`` of items refused for it, the first
    ``shown_per_reason`` of them (by ref) with that reason's paths and messages, and how many
    ``more`` there are. An item refused for two reasons is under both, with each reason's
    own messages, so each group reads as one thing to fix.
    """
    groups: dict[str, dict[str, Any]] = {}
    rows = conn.execute(
        select(quarantine.c.item_ref, quarantine.c.data, quarantine.c.problems, quarantine.c.last_seen)
        .where(quarantine.c.source_id == source_id)
        .order_by(quarantine.c.item_ref)
    )
    for ref, data, reasons, last_seen in rows:
        by_code: dict[str, list[dict[str, str]]] = {}
        for reason in reasons or []:
            code = str(reason.get("code") or "unknown")
            by_code.setdefault(code, []).append(
                {"path": str(reason.get("path") or "$"), "message": str(reason.get("message") or "")}
            )
        name = data.get("name") if isinstance(data, dict) else None
        for code, problems in by_code.items():
            group = groups.setdefault(
                code, {"code": code, "label": refusal_reason(code), "count": 0, "items": []}
            )
            group["count"] += 1
            if len(group["items"]) < shown_per_reason:
                group["items"].append({
                    "item": ref,
                    "name": name if isinstance(name, str) else None,
                    "lastSeen": last_seen.isoformat(),
                    "problems": problems,
                })
    for group in groups.values():
        group["more"] = group["count"] - len(group["items"])
    return sorted(groups.values(), key=lambda group: (-group["count"], group["code"]))


def _source_row(source_id: int) -> Any:
    """The source, as public as its page: a pending join request is the operator's business only."""
    with current_app.extensions["engine"].connect() as conn:
        row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    if row is None or (awaiting_approval(row) and signed_in_operator_id() is None):
        abort(404)
    return row


def report_for(source_id: int) -> dict[str, Any]:
    """The current app's report for ``source_id``, with who vouches for the source, on the app's clock."""
    row = _source_row(source_id)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with app.extensions["engine"].connect() as conn:
        report = quality_report(conn, source_id, clock(app)())
    return {"source": source_id, "checkedBy": row.checked_by, **report}


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"source_quality": report_for, "QUALITY_CHECKS": CHECKS}


bp.add_app_template_filter(refusal_reason, "refusal_reason")


@bp.get("/sources/<int:source_id>/quality.json")
def quality_json(source_id: int):
    response = jsonify(report_for(source_id))
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def set_checked_by(conn: Connection, source_id: int, checked_by: str | None) -> None:
    """Record who vouches for a source's listings (None: nobody here checks them)."""
    conn.execute(update(sources).where(sources.c.id == source_id).values(checked_by=checked_by or None))


@bp.post("/operator/sources/<int:source_id>/checked")
@operator_required
def operator_checked(source_id: int):
    """The operator's "checked by us" control: a tick box and the name that vouches."""
    name = " ".join(request.form.get("checked_by", "").split())[:MAX_CHECKED_BY]
    vouching = bool(request.form.get("checked"))
    if vouching and not name:
        name = current_app.config["AGGREGATOR_NAME"]
    with current_app.extensions["engine"].begin() as conn:
        source_name = conn.execute(select(sources.c.name).where(sources.c.id == source_id)).scalar()
        if source_name is None:
            abort(404)
        set_checked_by(conn, source_id, name if vouching else None)
    if vouching:
        flash(f"Listings from {source_name} now say they are checked by {name}.")
    else:
        flash(f"Listings from {source_name} no longer say anyone here checks them.")
    return redirect(url_for("sources.operator_sources"))
