"""A link worker's shortlist: the few activities picked with one person, printed or shared by link.

The picks travel in the address and nowhere else: ``pick=<activity id>`` repeated, the id the
API gives each result. Nothing about the person is stored, so there is nothing to keep, leak or
delete. Three views read the same picks: the printable sheet (``/embed/print?pick=...``, drawn
by :func:`print_picks` for :func:`aggregator.embed.embed_print`), the live web view
(``/embed/shortlist``) and the page that shows the link to it (``/embed/link``, JSON for the widget).

The short link ``/s/<code>`` names each pick by its row in the merged store (``merged.id``:
one row per activity id, kept while the activity is listed and for weeks after it is deleted,
and taken up again if it comes back), written in Crockford's base 32 and joined by "-", then two
check characters. Three picks make about a dozen characters, short enough to read off paper and
type; the check turns any one mistyped character, or two swapped, into a clear "not a link
we made" instead of somebody else's activities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import segno
from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.engine import Connection
from werkzeug.wrappers import Response as BaseResponse

from aggregator import api, query
from aggregator.embed import Entry, iframe_friendly, present_each, public_base
from aggregator.store import merged
from federation.clock import clock
from schema import schedule
from schema.schedule import LOCAL_ZONE

bp = Blueprint("shortlist", __name__)

MAX_PICKS = 20  # a sheet for one person: more than this is a search, not a shortlist
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base 32, lower case
ALIASES = str.maketrans("oil", "011")  # what people read "0" and "1" as, from paper
SEPARATOR = "-"
CHECK_MODULUS = 1021  # a prime under 32 ** 2, so two characters hold the check
MAX_DIGITS = 7  # 32 ** 7 rows is far beyond any aggregator
NO_PICKS = (
    "No activities were ticked. Go back to the list, tick the activities that suit the person, "
    "then press the button again."
)


class BadCode(ValueError):
    """A short link's code that we did not make: mistyped, cut short, or made up."""


def _check(body: str) -> str:
    """Two characters over ``body``: each character's value weighted by its position, modulo a prime."""
    values = (32 if char == SEPARATOR else ALPHABET.index(char) for char in body)
    total = sum(position * value for position, value in enumerate(values, start=1)) % CHECK_MODULUS
    return ALPHABET[total // 32] + ALPHABET[total % 32]


def _base32(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 32)
        digits = ALPHABET[digit] + digits
        if not number:
            return digits


def _number(digits: str) -> int:
    number = 0
    for digit in digits:
        number = number * 32 + ALPHABET.index(digit)
    return number


def encode(rows: Sequence[int]) -> str:
    """The short link's code for merged rows ``rows``, in order: ``[1, 2, 3]`` → ``"1-2-3"`` + check."""
    if not rows or len(rows) > MAX_PICKS:
        raise ValueError(f"a short link names 1 to {MAX_PICKS} activities, not {len(rows)}")
    body = SEPARATOR.join(_base32(row) for row in rows)
    return body + _check(body)


def decode(code: str) -> list[int]:
    """The merged rows a code names; :class:`BadCode` for anything :func:`encode` could not have made."""
    code = code.strip().lower().translate(ALIASES)
    body, check = code[:-2], code[-2:]
    parts = body.split(SEPARATOR)
    if (
        not body
        or len(parts) > MAX_PICKS
        or any(not part or len(part) > MAX_DIGITS or set(part) - set(ALPHABET) for part in parts)
        or _check(body) != check
    ):
        raise BadCode(code)
    return [_number(part) for part in parts]


@dataclass
class Picks:
    """The picks of one request, found: ``items`` as the API gives them, in the order picked."""

    items: list[dict[str, Any]]
    missing: int  # picks no longer listed here
    over: int  # picks past MAX_PICKS, left off
    link: str  # the absolute short link to the listed picks, or "" when none is listed


def requested() -> list[str]:
    """The request's ``pick`` values, each once, in order; empty values (the form's marker) dropped."""
    return list(dict.fromkeys(value.strip() for value in request.args.getlist("pick") if value.strip()))


def find(ids: Sequence[str]) -> Picks:
    """Each picked activity as the API shows it now (``GET /api/activities/<id>``), each once,
    and the short link to them, read on one connection."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now, thresholds = clock(app)(), api.settings_for(app)
    items: dict[str, dict[str, Any]] = {}  # by the id the API gives it, which a pick of a copy's id shares
    missing = 0
    with app.extensions["engine"].connect() as conn:
        for activity_id in ids[:MAX_PICKS]:
            item = query.get(conn, activity_id, now=now, thresholds=thresholds)
            if item is None:
                missing += 1
            else:
                items.setdefault(item["activity"]["id"], item)
        code = short_code(conn, items)
    link = f"{public_base()}{url_for('shortlist.short_link', code=code)}" if code else ""
    return Picks(list(items.values()), missing, max(0, len(ids) - MAX_PICKS), link)


def short_code(conn: Connection, activity_ids: Iterable[str]) -> str:
    """The code of the short link to these (listed) activities, or "" for none."""
    ids = list(activity_ids)
    rows = dict(conn.execute(select(merged.c.item_id, merged.c.id).where(merged.c.item_id.in_(ids))).all())
    numbers = [rows[activity_id] for activity_id in ids if activity_id in rows]
    return encode(numbers) if numbers else ""


def qr_svg(url: str) -> str:
    """``url`` as a QR code, inline SVG with an accessible name; sized by the page's CSS."""
    svg = segno.make(url, micro=False).svg_inline(omitsize=True, title=f"QR code for {url}")
    return svg.replace("<svg ", '<svg role="img" aria-label="QR code for the up-to-date list" ', 1)


def missing_words(missing: int) -> str:
    """ "1 of your picks is no longer listed": said plainly, with what it means."""
    if not missing:
        return ""
    verb = "is" if missing == 1 else "are"
    return (
        f"{missing} of your picks {verb} no longer listed here, perhaps because the group has stopped. "
        "Search again for something similar."
    )


def over_words(over: int) -> str:
    """What happened to picks past the cap, and what to do."""
    if not over:
        return ""
    return (
        f"A shortlist holds at most {MAX_PICKS} activities, so the first {MAX_PICKS} are shown and "
        f"{over} more {'was' if over == 1 else 'were'} left off. Untick some and try again."
    )


@dataclass
class Picked:
    """One pick in the sheet's words: the list's (:class:`aggregator.embed.Entry`) and the sheet's own.

    ``when`` is the pattern ("Every Tuesday, 10:00–11:00"), the next dates being listed in full
    below it; "" for a one-off event that has them. ``booking`` comes before ``online``, the
    booking page's address, so that on paper the phone number is read first: a web address is
    little use to someone holding a printout.
    """

    entry: Entry
    when: str
    booking: str
    online: str = ""


def for_paper(activity: Mapping[str, Any], entry: Entry) -> Picked:
    """``activity`` as the sheet says it: its pattern of dates, and how to join, the phone first."""
    if activity.get("type") == "Event":
        when = "" if entry.next_dates else entry.when
    else:
        when = "; ".join(schedule.describe(part) for part in activity.get("schedule") or []) or entry.when
    if entry.booking_link is None:
        return Picked(entry, when, entry.booking)
    contact = activity.get("contact") or {}
    phone = contact.get("telephone") or (activity.get("organizer") or {}).get("telephone")
    if phone:
        words = f"Phone {phone} to book, or book online at"
    elif contact.get("email"):
        words = f"Email {contact['email']} to book, or book online at"
    else:
        words = "Book online at"
    return Picked(entry, when, words, entry.booking_link.url)


def sheet(printable: bool) -> tuple[str, int]:
    """The shortlist page (``printable``: the sheet) for the request's picks, and its status."""
    ids = requested()
    aff = request.args.get("aff")
    picks = find(ids)
    missing = picks.missing + _whole(request.args.get("missing"))
    entries = present_each(picks.items, aff, where="Shortlist")
    by_id = {item["activity"]["id"]: item["activity"] for item in picks.items}
    picks_in_words = [for_paper(by_id.get(entry.id, {}), entry) for entry in entries]
    link = picks.link
    listed = [entry.id for entry in entries]
    page = render_template(
        "embed/shortlist.html",
        printable=printable,
        picked=picks_in_words,
        problem="" if ids or missing else NO_PICKS,
        missing=missing_words(missing),
        over=over_words(picks.over),
        short_link=link,
        qr=qr_svg(link) if link else "",
        printed=clock(current_app)().astimezone(LOCAL_ZONE),
        print_url=url_for("embed.embed_print", pick=listed, aff=aff),
    )
    return page, 400 if not ids and not missing else 200


def _whole(value: str | None) -> int:
    """A count carried in the address (``missing=``), bounded; 0 for anything else."""
    return min(int(value), MAX_PICKS) if value and value.isdigit() else 0


def print_picks() -> Response:
    """``/embed/print?pick=...``: the printable sheet of just the picks."""
    page, status = sheet(printable=True)
    return Response(page, status=status)


@bp.get("/embed/shortlist")
def live() -> Response:
    """The picks as they are now, on screen: what the short link opens."""
    page, status = sheet(printable=False)
    return iframe_friendly(Response(page, status=status))


@bp.get("/embed/link")
def link_page() -> Response:
    """The short link to the picks: a page to copy it from, or JSON for the widget to copy."""
    ids = requested()
    picks = find(ids)
    link = picks.link
    if link:
        problem = ""
    elif ids:
        problem = missing_words(picks.missing)
    else:
        problem = NO_PICKS
    if request.accept_mimetypes.best == "application/json":
        body = {"url": link, "listed": len(picks.items), "missing": picks.missing}
        response = jsonify({"error": {"message": problem}} if problem else body)
        response.status_code = 400 if problem else 200
        response.headers["Access-Control-Allow-Origin"] = "*"  # the widget, on any website
        return response
    listed = [item["activity"]["id"] for item in picks.items]
    page = render_template(
        "embed/shortlist_link.html",
        problem=problem,
        short_link=link,
        qr=qr_svg(link) if link else "",
        count=len(picks.items),
        missing=missing_words(picks.missing) if link else "",
        over=over_words(picks.over),
        print_url=url_for("embed.embed_print", pick=listed),
    )
    return iframe_friendly(Response(page, status=400 if problem else 200))


@bp.get("/s/<code>")
def short_link(code: str) -> BaseResponse:
    """The short link: to the live shortlist of the activities it names; a clear 404 for a bad code."""
    try:
        rows = decode(code)
    except BadCode:
        page = render_template("embed/shortlist_problem.html", code=code)
        return Response(page, status=404)
    with current_app.extensions["engine"].connect() as conn:
        found = dict(conn.execute(select(merged.c.id, merged.c.item_id).where(merged.c.id.in_(rows))).all())
    picks = [found[row] for row in rows if row in found]
    missing = len(rows) - len(picks)
    target = url_for("shortlist.live", pick=picks or None, missing=missing or None)
    return redirect(target, code=302)
