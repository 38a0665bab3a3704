"""Embeds: the list for iframes, the printable sheet, the snippet builder, and the widget files.

Every page here renders the same result as ``GET /api/activities`` (it calls the same
``aggregator.query.search``), so a website's iframe, a link worker's printout and the
``<localfeed-activities>`` widget can never disagree. The pages work without JavaScript;
feed text reaches HTML only through Jinja's autoescaping and links only when http(s). Each
result is put in words under the shared guard (:func:`federation.feeds.common.render_each`):
one that cannot be is left off the page, which is still served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, url_for
from werkzeug.security import safe_join

from aggregator import api, geocode, query
from aggregator.adapters.mapping import telephone
from federation.clock import clock
from federation.feeds.common import page_text, render_each, vocab_label
from federation.feeds.schemaorg import schema_org_session
from schema import schedule, vocab
from schema.price import describe_price
from schema.schedule import LOCAL_ZONE
from schema.text import http_url
from schema.validation import FORMATS

bp = Blueprint("embed", __name__)


@bp.record_once
def _plain_text_pages(state: Any) -> None:
    # Every page of the app, not only the embeds: no stored text can put a control character on one.
    state.app.jinja_env.finalize = page_text


DEFAULT_WIDGETS_DIR = Path(__file__).resolve().parent.parent / "widgets"
RADII = (1, 2, 5, 10, 20, 50)
DEFAULT_RADIUS = f"{query.DEFAULT_RADIUS_KM:g}"  # what the API searches when no radius is given
# Parameters of the embed pages themselves; everything else is the API's query.
EMBED_ONLY = ("aff", "heading")
PRINT_MAX_ITEMS = 200  # a printed sheet is read by a person: more than this helps nobody

BOOKING_WORDS = {
    "drop-in": "Just turn up",
    "book-ahead": "Book ahead",
    "contact-first": "Contact first",
    "referral": "By referral",
}
SPACE_WORDS = {"spaces": "Spaces available", "waiting-list": "Waiting list", "full": "Full"}
# Nearer than this, "0.0 km · 0 min walk" says less than "at or near this postcode".
AT_THE_POSTCODE_KM = 0.1
# First-visit text longer than this is folded under a summary, so the list stays quick to scan.
FIRST_VISIT_SHOWN_IN_FULL = 200


@dataclass
class Link:
    text: str
    url: str


@dataclass
class Entry:
    """One result in words, ready for a template: every field is plain text or a checked URL."""

    name: str
    organiser: str
    when: str
    next_dates: list[str]
    place: str
    distance: str
    cost: str
    space: str
    access: list[str]
    booking: str
    booking_link: Link | None
    contact: list[str]
    checked_month: str  # "October 2026": when the organiser last confirmed it
    freshness_note: str
    description: str
    first_visit: str
    sources: list[Link] = field(default_factory=list)
    vouched_by: list[str] = field(default_factory=list)  # who has checked it ("Merton CVS")
    json_ld: list[dict[str, Any]] = field(default_factory=list)
    id: str = ""  # the activity's id, which the impact counts name (aggregator.impact)
    audiences: list[str] = field(default_factory=list)  # who it is especially for ("Carers")
    contact_links: list[Link] = field(default_factory=list)  # name, tel: and mailto: (url "" for text)

    @property
    def first_visit_is_long(self) -> bool:
        return len(self.first_visit) > FIRST_VISIT_SHOWN_IN_FULL


def is_eventbrite(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.startswith("eventbrite.") or ".eventbrite." in host


def with_affiliate(url: str, aff: str | None) -> str:
    """Eventbrite's ``aff`` tracking code for the embedding site; other links keep their destination."""
    if not aff or not is_eventbrite(url):
        return url
    parts = urlsplit(url)
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("aff="))
    query = f"{query}&{urlencode({'aff': aff})}" if query else urlencode({"aff": aff})
    return urlunsplit(parts._replace(query=query))


def contact_links(contact: Mapping[str, Any]) -> list[Link]:
    """The contact's name, telephone and email; the number and address as links when well formed."""
    links = [Link(str(contact["name"]), "")] if contact.get("name") else []
    number = contact.get("telephone")
    if number:
        dialled = telephone(number)  # the contract's pattern
        links.append(Link(str(number), f"tel:{dialled.replace(' ', '')}" if dialled else ""))
    email = contact.get("email")
    if email:
        # Percent-encoded, so that no "?" or "&" in a stored value can add a subject or a copy.
        well_formed = isinstance(email, str) and FORMATS["email"](email)
        links.append(Link(str(email), f"mailto:{quote(email, safe='@')}" if well_formed else ""))
    return links


def source_page(source_id: Any) -> str:
    """This aggregator's page about a source, for people; "" for a source it no longer knows."""
    return url_for("sources.source_page", source_id=source_id) if isinstance(source_id, int) else ""


def distance_words(item: Mapping[str, Any]) -> str:
    """How far, as "1.2 km · 16 min walk" ("about" when measured to or from an area's middle).

    Under 100 m it says "at or near this postcode", where "0.0 km · 0 min walk" would puzzle.
    """
    if item.get("distance_km") is None:
        return ""
    if item["distance_km"] < AT_THE_POSTCODE_KM:
        return "at or near this postcode"
    words = f"{'about ' if item.get('distance_approximate') else ''}{item['distance_km']:.1f} km"
    if item.get("walking_minutes") is not None:
        words += f" · {item['walking_minutes']} min walk"
    return words


def local(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(LOCAL_ZONE)


def short_day(moment: datetime) -> str:
    """"Tue 24 Nov"."""
    return f"{moment:%a} {moment.day} {moment:%b}"


def long_day(moment: datetime) -> str:
    """"Tuesday 24 November 2026", written out in full for the printed sheet."""
    return f"{moment:%A} {moment.day} {moment:%B %Y}"


def hours(start: datetime, end: datetime) -> str:
    """"10:00\u201311:30", with the dash schema.schedule.describe uses."""
    return f"{start:%H:%M}{schedule.EN_DASH}{end:%H:%M}"


def present(item: Mapping[str, Any], aff: str | None = None) -> Entry:
    """An API result (``{"activity", "distance_km", ...}``) in the words people read."""
    activity = item["activity"]
    occurrences = [(local(o["start"]), local(o["end"])) for o in item.get("next_occurrences") or []]
    if activity["type"] == "Event":
        first = (local(activity["startDate"]), local(activity["endDate"]))
        start, end = occurrences[0] if occurrences else first
        when = f"{short_day(start)}, {hours(start, end)}"
    else:
        when = "; ".join(schedule.describe(entry) for entry in activity.get("schedule", []))
        if occurrences:
            when = f"{when} · next: {short_day(occurrences[0][0])}"

    location = activity.get("location") or {}
    address = location.get("address") or {}
    if activity.get("attendanceMode") == "online":
        place = "Online"
    else:
        place = ", ".join(
            part
            for part in (location.get("name"), address.get("streetAddress"), address.get("addressLocality"),
                         address.get("postalCode"))
            if part
        )

    capacity = activity.get("capacity") or {}
    space = SPACE_WORDS.get(capacity.get("status", ""), "")
    if capacity.get("status") == "spaces" and capacity.get("remaining"):
        remaining = capacity["remaining"]
        space = f"{remaining} {'space' if remaining == 1 else 'spaces'} left"

    booking = activity.get("booking") or {}
    booking_url = http_url(booking.get("url"))
    booking_words = BOOKING_WORDS.get(booking.get("method", ""), "")
    booking_link = None
    if booking_url:
        text = "Book on Eventbrite" if is_eventbrite(booking_url) else booking_words or "Details"
        booking_link = Link(text, with_affiliate(booking_url, aff))

    contact = activity.get("contact") or {}
    freshness = item.get("freshness") or {}
    verified = freshness.get("lastVerified") or activity.get("lastVerified")
    # A date only we filled in (the harvest day) is no check: the note says so instead.
    confirmed = freshness.get("confirmedByOrganiser", True)
    checked_month = f"{date.fromisoformat(verified):%B %Y}" if verified and confirmed else ""
    # Each source's page for people here, not its feed (which is for machines).
    sources = [
        Link(source["name"], source_page(source.get("id")))
        for source in item.get("sources") or []
        if source.get("name")
    ]
    return Entry(
        id=str(activity.get("id") or ""),
        name=activity["name"],
        organiser=activity["organizer"]["name"],
        when=when,
        next_dates=[f"{long_day(start)}, {hours(start, end)}" for start, end in occurrences],
        place=place,
        distance=distance_words(item),
        cost=describe_price(activity.get("price") or {}),
        space=space,
        access=[vocab_label("accessibility", a) for a in location.get("accessibility") or []],
        booking=booking_words,
        booking_link=booking_link,
        contact=[c for c in (contact.get("name"), contact.get("telephone"), contact.get("email")) if c],
        checked_month=checked_month,
        freshness_note=(freshness.get("note") or "") if freshness.get("state") != "fresh" else "",
        description=activity.get("description", ""),
        first_visit=activity.get("firstVisit", ""),
        sources=sources,
        vouched_by=[str(name) for name in item.get("vouchedBy") or []],
        json_ld=[schema_org_session(activity, start, end) for start, end in occurrences],
        audiences=[vocab_label("audiences", a) for a in activity.get("audiences") or []],
        contact_links=contact_links(contact),
    )


def count_words(shown: int, total: int, lower_bound: bool = False) -> str:
    """The count as people say it: "Showing 10 of 38 activities", or "38 activities" when all are shown."""
    noun = "activity" if total == 1 and not lower_bound else "activities"
    of = f"more than {total}" if lower_bound else str(total)
    return f"Showing {shown} of {of} {noun}" if lower_bound or shown < total else f"{total} {noun}"


def present_each(items: Iterable[Mapping[str, Any]], aff: str | None, *, where: str) -> list[Entry]:
    """Each result in words (:func:`present`); one that cannot be put in words is left out and logged."""
    return list(render_each(items, lambda item: present(item, aff), where=where))


class SearchFailed(Exception):
    """The query could not be answered; ``str()`` says what to change.

    ``choices`` are the places an ambiguous name may mean, as the API gives them.
    """

    def __init__(self, message: str, choices: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.choices = choices or []


def run_search(params: Mapping[str, str]) -> dict[str, Any]:
    """The API's own search (same store, geocoder, clock, thresholds), its errors as ``SearchFailed``."""
    try:
        return api.run_search(params)
    except query.QueryError as error:
        raise SearchFailed(error.message, error.choices) from None
    except geocode.GeocoderUnavailable as error:
        current_app.logger.warning("Geocoding failed: %s", error)
        raise SearchFailed("We can't look up postcodes just now. Try again in a few minutes.") from None


def query_params(args: Mapping[str, str]) -> dict[str, str]:
    """The API's part of a request's arguments: the embed-only ones and empty form fields dropped."""
    return {key: value for key, value in args.items() if key not in EMBED_ONLY and value.strip()}


def vocab_choices(kind: str) -> list[tuple[str, str]]:
    """``(id, label)`` pairs of one vocabulary, in its display order."""
    return [(id, vocab.label(kind, id)) for id in vocab.ids(kind)]


def form_choices() -> dict[str, Any]:
    return {
        "radii": RADII,
        "default_radius": DEFAULT_RADIUS,
        "days": list(query.DAY_NAMES.items()),  # ("tu", "Tuesday"): the API's day codes
        "categories": vocab_choices("categories"),
        "accessibility": vocab_choices("accessibility"),
    }


def iframe_friendly(response: Response) -> Response:
    """Any website may frame these pages: they show public listings and take no actions."""
    response.headers.pop("X-Frame-Options", None)
    response.headers["Content-Security-Policy"] = "frame-ancestors *"
    return response


def located_label(body: Mapping[str, Any]) -> str:
    """Where a search was measured from, as its answer names it: "CR4 (Mitcham)"; "" without ``near``."""
    return str((body.get("query", {}).get("located") or {}).get("label") or "")


def choice_links(endpoint: str, args: Mapping[str, Any], choices: list[dict[str, str]]) -> list[Link]:
    """Each place an ambiguous name may mean, as a link to the same search near it."""
    return [
        Link(choice["label"], url_for(endpoint, **{**args, "near": choice["near"], "cursor": None}))
        for choice in choices
    ]


@bp.get("/embed")
def embed_list() -> Response:
    params = query_params(request.args.to_dict())
    aff = request.args.get("aff")
    error, entries, next_url, located, choices, count = "", [], None, "", [], ""
    try:
        body = run_search(params)
    except SearchFailed as failure:
        error = str(failure)
        choices = choice_links(".embed_list", request.args.to_dict(), failure.choices)
    else:
        located = located_label(body)
        entries = present_each(body["items"], aff, where="Embedded list")
        count = count_words(len(entries), body["total"], body["total_is_lower_bound"])
        if body.get("next_cursor"):
            next_url = url_for(".embed_list", **{**request.args.to_dict(), "cursor": body["next_cursor"]})
    print_query: dict[str, Any] = {k: v for k, v in params.items() if k != "cursor"}  # Any: as url_for's
    page = render_template(
        "embed/list.html",
        entries=entries,
        error=error,
        choices=choices,
        located=located,
        count=count,
        next_url=next_url,
        args=request.args,
        heading=request.args.get("heading") or "What's on nearby",
        print_url=url_for(".embed_print", **print_query),
        **form_choices(),
    )
    return iframe_friendly(Response(page, status=400 if error else 200))


def all_items(params: Mapping[str, str], located: dict[str, str]) -> Iterable[Mapping[str, Any]]:
    """Every result, page after page, up to ``limit`` (as the list showed) or ``PRINT_MAX_ITEMS``.

    ``located["label"]`` is set on the way. A ``limit`` the API refuses is refused by its first search.
    """
    params = {key: value for key, value in params.items() if key != "cursor"}
    limit = params.get("limit", "").strip()
    cap = min(int(limit), PRINT_MAX_ITEMS) if limit.isdigit() else PRINT_MAX_ITEMS
    count = 0
    while True:
        body = run_search(params)
        located["label"] = located_label(body)
        for item in body["items"]:
            yield item
            count += 1
            if count >= cap:
                return
        if not body.get("next_cursor"):
            return
        params["cursor"] = body["next_cursor"]


@bp.get("/embed/print")
def embed_print() -> Response:
    if "pick" in request.args:  # a link worker's ticked activities, not a search
        from aggregator.shortlist import print_picks  # shortlist builds on this module

        return print_picks()
    params = query_params(request.args.to_dict())
    aff = request.args.get("aff")
    error, entries, located = "", [], {"label": ""}
    try:
        entries = present_each(all_items(params, located), aff, where="Printed list")
    except SearchFailed as failure:
        error = str(failure)
    page = render_template(
        "embed/print.html",
        entries=entries,
        error=error,
        summary=describe_query(params, located["label"]),
        printed=clock(current_app)().astimezone(LOCAL_ZONE),
        list_url=url_for(".embed_list", _external=True, **params),
    )
    return Response(page, status=400 if error else 200)


def describe_query(params: Mapping[str, str], located: str = "") -> str:
    """The search in words, printed at the top of the sheet: "Walking within 2 km of CR4 (Mitcham)".

    ``located`` is the search's own name for its place; without it, ``near`` as typed.
    """
    words = []
    if params.get("category"):
        words.append(" or ".join(vocab_label("categories", c) for c in params["category"].split(",")))
    else:
        words.append("Activities")
    if params.get("free") in ("true", "1", "yes"):
        words.append("that are free")
    if params.get("day"):
        days = [query.DAY_NAMES.get(code.strip().lower(), code) for code in params["day"].split(",")]
        words.append(f"on {' or '.join(days)}")
    if params.get("near"):
        place = located or params["near"].strip()
        words.append(f"within {params.get('radius', DEFAULT_RADIUS)} km of {place}")
    return " ".join(words)


def public_base() -> str:
    return (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")


BUILDER_ATTRIBUTES = (
    ("near", "near"),
    ("radius", "radius"),
    ("categories", "categories"),
    ("audiences", "audiences"),
    ("accessibility", "accessibility"),
    ("day", "day"),
    ("free", "free"),
    ("has_space", "has-space"),
    ("limit", "limit"),
    ("layout", "layout"),
    ("heading", "heading"),
    ("aff", "aff"),
)


@bp.get("/embed/builder")
def builder() -> str:
    """A form a website owner fills in to get a snippet; the preview is the snippet itself, live."""
    chosen: dict[str, str] = {}
    for param, _attribute in BUILDER_ATTRIBUTES:
        values = [v.strip() for v in request.args.getlist(param) if v.strip()]
        if values:
            chosen[param] = ",".join(values)
    base = public_base()
    attributes = {attribute: chosen[param] for param, attribute in BUILDER_ATTRIBUTES if param in chosen}
    if request.args.get("controls"):
        attributes["controls"] = ""
    api_names = {"categories": "category", "audiences": "audience", "has_space": "has_space"}
    embed_query: dict[str, Any] = {  # Any: url_for's other keywords are not str
        api_names.get(param, param): value
        for param, value in chosen.items()
        if param not in ("layout", "limit")
    }
    # A snippet for a place we cannot find would show its visitors an error: say why instead.
    problem, located, choices = "", "", []
    if chosen.get("near"):
        try:
            located = located_label(run_search({"near": chosen["near"], "limit": "1"}))
        except SearchFailed as failure:
            problem = str(failure)
            choices = choice_links(".builder", request.args.to_dict(flat=False), failure.choices)
    return render_template(
        "embed/builder.html",
        problem=problem,
        choices=choices,
        located=located,
        chosen=chosen,
        controls=bool(request.args.get("controls")),
        base=base,
        attributes=attributes,
        script_url=f"{base}{url_for('.widget_file', filename='localfeed.js')}",
        preview_script_url=widget_url("localfeed.js"),
        embed_url=f"{base}{url_for('.embed_list', **embed_query)}",
        **form_choices(),
    )


@bp.get("/api/vocab.json")
def vocab_labels() -> Response:
    """The vocabularies' labels for the widget, so it shows the words the schema owns."""
    body = {kind: dict(vocab_choices(kind)) for kind in ("categories", "audiences", "accessibility")}
    response = jsonify(body)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    return response


def widgets_dir() -> Path:
    return Path(current_app.config.get("WIDGETS_DIR") or DEFAULT_WIDGETS_DIR)


# Keyed by a file and its modification time, so each edit of a widget file adds an entry:
# a bound keeps a process that outlives many deployments from holding every old one.
@lru_cache(maxsize=64)
def _fingerprint(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def widget_version(filename: str) -> str:
    """A fingerprint of the file's bytes: it changes exactly when the file does."""
    path = safe_join(str(widgets_dir()), filename)
    if path is None or not Path(path).is_file():
        abort(404)
    return _fingerprint(path, Path(path).stat().st_mtime_ns)


def widget_url(filename: str) -> str:
    """The versioned URL of a widget file, cacheable for ever (our own pages use it)."""
    return url_for("embed.widget_file", filename=filename, v=widget_version(filename))


MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@bp.get("/widgets/<path:filename>")
def widget_file(filename: str) -> Response:
    """A widget file for any website: CORS open, ETag, and caching that still lets updates through.

    A URL carrying the current ``?v=`` fingerprint never changes, so browsers keep it a year.
    The bare URL (the one in snippets on other sites) is kept a day and revalidated with the
    ETag, so a fix reaches every site within a day without anyone editing their page.
    """
    version = widget_version(filename)
    joined = safe_join(str(widgets_dir()), filename)
    assert joined is not None  # widget_version has answered 404 otherwise
    path = Path(joined)
    media_type = MEDIA_TYPES.get(path.suffix)
    if media_type is None:
        abort(404)
    response = Response(path.read_bytes(), content_type=media_type)
    response.set_etag(version)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.args.get("v") == version:
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        response.headers["Cache-Control"] = "public, max-age=86400, stale-while-revalidate=604800"
    response.make_conditional(request)  # changes the response in place (and returns it, typed as werkzeug's)
    return response
