"""Sources: what this aggregator follows, who decides, and how each source is doing.

Operators add a feed or a publisher's home page (the feed is discovered), approve,
pause, remove and set trust. Anyone may ask to be included; nothing is harvested until
an operator approves. The public pages say whom we follow (``/sources.json``, so that
aggregators find each other without a central registry) and how each source is doing,
including every item we refused and why, so the publisher can fix it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from aggregator.adapters import ADAPTERS, detect
from aggregator.auth import operator_required, signed_in_operator_id
from aggregator.extensions import limiter
from aggregator.feeds import own_url
from aggregator.harvest import guarded_client
from aggregator.jobs import enqueue_harvest
from aggregator.merge import recompute
from aggregator.quality import refused_by_reason
from aggregator.settings import job_config
from aggregator.store import copies, counter, merged, quarantine, sources
from federation.clock import utcnow
from federation.db import inserted_id, next_change_numbers
from federation.fetch import FetchError, GuardedClient

bp = Blueprint("sources", __name__)

# Items verified longer ago than this are counted as stale on the source page.
STALE_AFTER_DAYS = 90
_DISCOVERY_CANDIDATES = 6


class DiscoveryError(ValueError):
    """No feed could be found at the address given; the message says why and what to try."""


@dataclass(frozen=True)
class Discovered:
    feed_url: str
    kind: str
    name: str


class _FeedLinks(HTMLParser):
    """Collects what a publisher's home page says about its feeds: alternate links and JSON-LD."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.title = ""
        self._json_ld: list[str] = []
        self._in_json_ld = False
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if (
            tag == "link"
            and "alternate" in attributes.get("rel", "").lower().split()
            and attributes.get("href")
        ):
            self.links.append(attributes["href"])
        elif tag == "script" and attributes.get("type", "").lower() == "application/ld+json":
            self._in_json_ld = True
            self._json_ld.append("")
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_json_ld = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_json_ld:
            self._json_ld[-1] += data
        elif self._in_title:
            self.title += data

    def datasets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for text in self._json_ld:
            try:
                document = json.loads(text)
            except ValueError:
                continue
            stack = document if isinstance(document, list) else [document]
            while stack:
                node = stack.pop(0)
                if not isinstance(node, dict):
                    continue
                stack.extend(node.get("@graph", []))
                types = node.get("@type")
                if types == "Dataset" or (isinstance(types, list) and "Dataset" in types):
                    found.append(node)
        return found


def _distribution_urls(dataset: Mapping[str, Any]) -> list[str]:
    distribution = dataset.get("distribution") or []
    if isinstance(distribution, dict):
        distribution = [distribution]
    return [
        url
        for d in distribution
        if isinstance(d, dict) and (url := d.get("contentUrl") or d.get("url"))
    ]


def discover(client: GuardedClient, url: str) -> Discovered:
    """The feed at ``url``: the URL itself if it is a feed, else the best feed its page links to.

    Our own RPDE format is preferred over the others, as it carries everything.
    """
    fetched = _get(client, url)
    kind = detect(fetched.content_type, fetched.content)
    if kind is not None:
        return Discovered(fetched.url, kind, "")
    page = _FeedLinks()
    page.feed(fetched.text)
    name = page.title.strip()
    candidates: list[str] = []
    for dataset in page.datasets():
        name = str(dataset.get("name") or name)
        candidates += _distribution_urls(dataset)
    candidates += page.links
    candidates = list(dict.fromkeys(urljoin(fetched.url, c) for c in candidates))[:_DISCOVERY_CANDIDATES]
    if not candidates:
        raise DiscoveryError(
            f"{url} is neither a feed we can read nor a page that links to one (no JSON-LD Dataset "
            'distribution and no <link rel="alternate">). Give the feed\'s own address instead.'
        )
    rank = {kind: position for position, kind in enumerate(ADAPTERS)}
    found: list[Discovered] = []
    for candidate in candidates:
        try:
            response = _get(client, candidate)
        except DiscoveryError:
            continue
        kind = detect(response.content_type, response.content)
        if kind is not None:
            found.append(Discovered(response.url, kind, name))
            if rank[kind] == 0:
                break  # nothing can beat it
    if not found:
        raise DiscoveryError(
            f"{url} links to {len(candidates)} feed(s) ({', '.join(candidates)}) but none is in a format "
            f"this aggregator reads ({', '.join(ADAPTERS)})."
        )
    return min(found, key=lambda d: rank[d.kind])


def _get(client: GuardedClient, url: str):
    try:
        response = client.get(url)
    except FetchError as exc:
        raise DiscoveryError(str(exc)) from None
    if response.status >= 400:
        raise DiscoveryError(f"{url} answered HTTP {response.status}; check the address.")
    return response


def add_source(
    engine: Engine,
    url: str,
    *,
    feed_url: str | None = None,
    kind: str | None = None,
    name: str = "",
    state: str = "pending",
    trust: int = 50,
    requested_by: str | None = None,
    request_message: str | None = None,
    config: Mapping[str, Any],
) -> int:
    """Store a new source for ``url``, discovering its feed unless ``kind`` (and so the feed) is given."""
    if not 0 <= trust <= 100:
        raise ValueError(f"Trust {trust} is out of range; give a whole number from 0 to 100.")
    if kind is not None and kind not in ADAPTERS:
        raise ValueError(f"Unknown feed kind {kind!r}; use one of: {', '.join(ADAPTERS)}.")
    if kind is None:
        with guarded_client(config) as client:
            found = discover(client, url)
        feed_url, kind, name = found.feed_url, found.kind, name or found.name
    feed_url = feed_url or url
    with engine.begin() as conn:
        duplicate = conn.execute(select(sources.c.id).where(sources.c.feed_url == feed_url)).scalar()
        if duplicate is not None:
            raise ValueError(f"The feed {feed_url} is already source {duplicate}; change that one instead.")
        return inserted_id(conn.execute(
            insert(sources).values(
                url=url,
                feed_url=feed_url,
                kind=kind,
                name=name or feed_url,
                state=state,
                trust=trust,
                requested_by=requested_by,
                request_message=request_message,
                created_at=utcnow(),
            )
        ))


def remove_source(engine: Engine, source_id: int) -> None:
    """Forget a source and everything it sent; merged items it alone held become tombstones."""
    with engine.begin() as conn:
        next_change_numbers(conn, counter)  # queue behind harvests, as they do
        merged_ids = list(
            conn.execute(select(copies.c.merged_id).where(copies.c.source_id == source_id)).scalars()
        )
        conn.execute(delete(copies).where(copies.c.source_id == source_id))
        conn.execute(delete(quarantine).where(quarantine.c.source_id == source_id))
        recompute(conn, merged_ids)
        conn.execute(delete(sources).where(sources.c.id == source_id))


def set_trust(engine: Engine, source_id: int, trust: int) -> None:
    """Change a source's trust and re-decide the merged items it contributes to."""
    if not 0 <= trust <= 100:
        raise ValueError(f"Trust {trust} is out of range; give a whole number from 0 to 100.")
    with engine.begin() as conn:
        next_change_numbers(conn, counter)
        conn.execute(update(sources).where(sources.c.id == source_id).values(trust=trust))
        recompute(
            conn, conn.execute(select(copies.c.merged_id).where(copies.c.source_id == source_id)).scalars()
        )


# -- what the public sees ----------------------------------------------------------------------


def _engine() -> Engine:
    return current_app.extensions["engine"]


def _public_source(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "url": row.url,
        "feed_url": row.feed_url,
        "kind": row.kind,
        "page": own_url() + url_for("sources.source_page", source_id=row.id),
    }


def source_health(conn: Connection, row: Any, today: date | None = None) -> dict[str, Any]:
    """Everything the source page shows: harvest state, counts, freshness and refused items
    (each one in ``problems``; by reason, as the page lists them, in ``refused``)."""
    today = today or utcnow().date()
    verified = list(
        conn.execute(select(copies.c.last_verified).where(copies.c.source_id == row.id)).scalars()
    )
    stale_before = (today - timedelta(days=STALE_AFTER_DAYS)).isoformat()
    shown = conn.execute(
        select(func.count())
        .select_from(copies)
        .join(merged, merged.c.id == copies.c.merged_id)
        .where(copies.c.source_id == row.id, merged.c.state == "updated")
    ).scalar_one()
    problems = conn.execute(
        select(quarantine).where(quarantine.c.source_id == row.id).order_by(quarantine.c.item_ref)
    ).all()
    last_harvest = row.last_harvest_at
    last_success = row.last_success_at
    return {
        **_public_source(row),
        "state": row.state,
        "trust": row.trust,
        "last_harvest_at": last_harvest.isoformat() if last_harvest else None,
        "last_success_at": last_success.isoformat() if last_success else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "counts": {"items": len(verified), "shown": shown, "quarantined": len(problems)},
        "freshness": {
            "oldest_verified": min((v for v in verified if v), default=None),
            "newest_verified": max((v for v in verified if v), default=None),
            "stale": sum(1 for v in verified if not v or v < stale_before),
            "stale_after_days": STALE_AFTER_DAYS,
        },
        "problems": [
            {
                "item": p.item_ref,
                "name": (p.data or {}).get("name") if isinstance(p.data, dict) else None,
                "reasons": p.problems,
                "first_seen": p.first_seen.isoformat(),
                "last_seen": p.last_seen.isoformat(),
            }
            for p in problems
        ],
        "refused": refused_by_reason(conn, row.id),
    }


def _visible_source(source_id: int) -> tuple[Any, dict[str, Any]]:
    with _engine().connect() as conn:
        row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
        # A join request is between the requester and the operator until it is approved.
        if row is None or (row.state == "pending" and signed_in_operator_id() is None):
            abort(404)
        return row, source_health(conn, row)


@bp.get("/")
def home():
    with _engine().connect() as conn:
        followed = conn.execute(
            select(sources)
            .where(sources.c.state.in_(("approved", "paused", "stopped")))
            .order_by(sources.c.name)
        ).all()
        count = conn.execute(
            select(func.count()).select_from(merged).where(merged.c.state == "updated")
        ).scalar()
    return render_template("home.html", sources=followed, count=count)


@bp.get("/sources.json")
def sources_json():
    with _engine().connect() as conn:
        rows = conn.execute(select(sources).where(sources.c.state == "approved").order_by(sources.c.id)).all()
    response = jsonify(
        {"aggregator": current_app.config["AGGREGATOR_NAME"], "sources": [_public_source(r) for r in rows]}
    )
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/sources/<int:source_id>")
def source_page(source_id: int):
    row, health = _visible_source(source_id)
    return render_template("source.html", source=row, health=health)


@bp.get("/sources/<int:source_id>.json")
def source_json(source_id: int):
    _row, health = _visible_source(source_id)
    response = jsonify(health)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.route("/join", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PUBLIC_FORM_RATE_LIMIT"], methods=["POST"])
def join():
    """A group or umbrella body asks to be followed; the operator decides."""
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        url = form.get("url", "").strip()
        contact = form.get("contact", "").strip()
        if not url.startswith(("http://", "https://")):
            errors["url"] = "Give your feed or website address, starting with https://"
        if "@" not in contact:
            errors["contact"] = "Give an email address the operator can reply to, like you@example.org"
        if not errors:
            try:
                # Stored as given, fetching nothing for an anonymous visitor: the feed is
                # discovered when an operator approves the request.
                add_source(
                    _engine(),
                    url,
                    feed_url=url,
                    kind="localfeed",
                    name=form.get("name", "").strip() or url,
                    requested_by=contact,
                    request_message=form.get("message", "").strip()[:2000],
                    config=current_app.config,
                )
            except ValueError as exc:
                errors["url"] = str(exc)
            else:
                return render_template("join.html", done=True, errors={}, form={})
    return render_template("join.html", done=False, errors=errors, form=form), (400 if errors else 200)


# -- what the operator does --------------------------------------------------------------------


@bp.get("/operator/sources")
@operator_required
def operator_sources():
    with _engine().connect() as conn:
        rows = conn.execute(select(sources).order_by(sources.c.state, sources.c.name)).all()
    return render_template("operator_sources.html", sources=rows, kinds=list(ADAPTERS))


@bp.post("/operator/sources")
@operator_required
def operator_add():
    url = request.form.get("url", "").strip()
    kind = request.form.get("kind") or None
    try:
        trust = int(request.form.get("trust") or 50)
        source_id = add_source(
            _engine(),
            url,
            kind=kind,
            name=request.form.get("name", "").strip(),
            state="approved" if request.form.get("approve") else "pending",
            trust=trust,
            config=current_app.config,
        )
    except (ValueError, DiscoveryError) as exc:
        flash(f"Could not add {url or 'the source'}: {exc}", "error")
        return redirect(url_for("sources.operator_sources"))
    flash(f"Added source {source_id}.")
    _harvest_if_approved(source_id)
    return redirect(url_for("sources.operator_sources"))


def _harvest_if_approved(source_id: int) -> None:
    with _engine().connect() as conn:
        state = conn.execute(select(sources.c.state).where(sources.c.id == source_id)).scalar()
    if state == "approved":
        enqueue_harvest(source_id, job_config(current_app))
        from aggregator.subscriptions import enqueue_subscribe  # WebSub push, beside polling

        enqueue_subscribe(source_id)


@bp.post("/operator/sources/<int:source_id>/<action>")
@operator_required
def operator_action(source_id: int, action: str):
    engine = _engine()
    with engine.connect() as conn:
        row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    if row is None:
        abort(404)
    if action == "approve" and row.state == "pending" and row.feed_url == row.url:
        # A join request gave an address only: find its feed now that someone is vouching for it.
        try:
            with guarded_client(current_app.config) as client:
                found = discover(client, row.url)
        except DiscoveryError as exc:
            flash(f"Could not approve {row.name}: {exc}", "error")
            return redirect(url_for("sources.operator_sources"))
        with engine.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.id == source_id)
                .values(feed_url=found.feed_url, kind=found.kind)
            )
    states = {"approve": "approved", "pause": "paused", "restart": "approved"}
    if action in states:
        with engine.begin() as conn:
            conn.execute(
                update(sources)
                .where(sources.c.id == source_id)
                .values(state=states[action], failures=0, next_attempt_at=None)
            )
        flash(f"{row.name} is now {states[action]}.")
        _harvest_if_approved(source_id)
    elif action == "harvest":
        _harvest_if_approved(source_id)
        flash(f"A harvest of {row.name} is queued.")
    elif action == "trust":
        try:
            set_trust(engine, source_id, int(request.form.get("trust", "")))
        except ValueError as exc:
            flash(f"Could not set trust for {row.name}: {exc}", "error")
        else:
            flash(f"Trust for {row.name} is now {request.form['trust']}.")
    elif action == "remove":
        remove_source(engine, source_id)
        flash(f"Removed {row.name} and the items it alone provided.")
    else:
        abort(404)
    return redirect(url_for("sources.operator_sources"))
