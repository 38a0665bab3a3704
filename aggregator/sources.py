"""Sources: what this aggregator follows, who decides, and how each source is doing.

Operators add a feed or a publisher's home page (the feed is discovered, as a job:
aggregator.discovery), approve, pause, remove, set trust and find a feed again. Anyone may
ask to be included; nothing is harvested until an operator approves. The public pages say
whom we follow (``/sources.json``, so that aggregators find each other without a central
registry) and how each source is doing, including every item we refused and why, so the
publisher can fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

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
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from aggregator import wording
from aggregator.adapters import ADAPTERS, localfeed
from aggregator.auth import operator_required, signed_in_operator_id
from aggregator.discovery import (
    DISCOVERING,
    FEED_UNKNOWN,
    Discovered,
    DiscoveryError,
    awaiting_approval,
    discover,
    find_feed,
    searching,
    start_discovery,
    state_when_found,
)
from aggregator.extensions import limiter
from aggregator.feeds import own_url
from aggregator.jobs import enqueue_harvest
from aggregator.merge import recompute
from aggregator.quality import refused_by_reason
from aggregator.settings import job_config
from aggregator.store import copies, counter, merged, quarantine, sources
from federation.clock import utcnow
from federation.db import inserted_id, next_change_numbers
from schema.validation import field_name

# Discovery lives in aggregator.discovery; these names stay importable from here.
__all__ = ["Discovered", "DiscoveryError", "add_source", "add_source_later", "bp", "discover"]

bp = Blueprint("sources", __name__)
# The operator's and public pages speak in sentences and UK times (aggregator.wording).
bp.add_app_template_filter(wording.harvest_outcome, "harvest_outcome")
bp.add_app_template_filter(wording.plain_time, "plain_time")
bp.add_app_template_filter(wording.source_state, "source_state")
bp.add_app_template_filter(field_name, "field_name")  # a problem's JSON path as the field's name

# Items verified longer ago than this are counted as stale on the source page.
STALE_AFTER_DAYS = 90


def _checked(trust: int, kind: str | None) -> None:
    if not 0 <= trust <= 100:
        raise ValueError(f"Trust {trust} is out of range; give a whole number from 0 to 100.")
    if kind is not None and kind not in ADAPTERS:
        raise ValueError(f"Unknown feed kind {kind!r}; use one of: {', '.join(ADAPTERS)}.")


def _insert(conn: Connection, url: str, feed_url: str, **values: Any) -> int:
    """Store a source, unless one already has this feed (or this address, while its feed is unknown)."""
    duplicate = conn.execute(
        select(sources.c.id).where(or_(sources.c.feed_url == feed_url, sources.c.url == feed_url))
    ).scalar()
    if duplicate is not None:
        raise ValueError(f"The feed {feed_url} is already source {duplicate}; change that one instead.")
    return inserted_id(
        conn.execute(insert(sources).values(url=url, feed_url=feed_url, created_at=utcnow(), **values))
    )


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
    """Store a new source for ``url``, discovering its feed unless ``kind`` (and so the feed) is given.

    Discovery is waited for here (within its time limit), as the command line does; the
    operator's pages use :func:`add_source_later`, which answers at once.
    """
    _checked(trust, kind)
    if kind is None:
        found = find_feed(url, config)
        feed_url, kind, name = found.feed_url, found.kind, name or found.name
    feed_url = feed_url or url
    with engine.begin() as conn:
        return _insert(
            conn,
            url,
            feed_url,
            kind=kind,
            name=name or feed_url,
            state=state,
            trust=trust,
            requested_by=requested_by,
            request_message=request_message,
        )


def add_source_later(
    engine: Engine,
    url: str,
    *,
    name: str = "",
    then: str = "pending",
    trust: int = 50,
    config: Mapping[str, Any],
    callback_base: str,
) -> int:
    """Store a source for ``url`` at once, "discovering", and queue the job that finds its feed.

    It takes the state ``then`` once its feed is found. ``config`` is
    ``settings.job_config(app)``; ``callback_base`` is this aggregator's public address.
    """
    _checked(trust, None)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not a web address; give one starting with https://")
    with engine.begin() as conn:
        # Until the job finds the feed, the address stands in for it (and for the name).
        source_id = _insert(
            conn, url, url, kind=localfeed.KIND, name=name or url, state=DISCOVERING, trust=trust
        )
    start_discovery(engine, source_id, then, config, callback_base)
    return source_id


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
    _checked(trust, None)
    with engine.begin() as conn:
        next_change_numbers(conn, counter)
        conn.execute(update(sources).where(sources.c.id == source_id).values(trust=trust))
        recompute(
            conn, conn.execute(select(copies.c.merged_id).where(copies.c.source_id == source_id)).scalars()
        )


def set_relays(engine: Engine, source_id: int, relays: bool) -> None:
    """Say whether a source is an aggregator, allowed to relay other sites' items (aggregator.authority).

    Its relayed copies are dropped either way and its feed is read again from the start, so
    what it relays is judged afresh by the rule now in force (its own items are unchanged).
    """
    with engine.begin() as conn:
        next_change_numbers(conn, counter)
        relayed = conn.execute(
            select(copies.c.id, copies.c.merged_id, copies.c.upstream).where(copies.c.source_id == source_id)
        ).all()
        dropped = [row for row in relayed if row.upstream]
        if dropped:
            conn.execute(delete(copies).where(copies.c.id.in_([row.id for row in dropped])))
        conn.execute(
            update(sources)
            .where(sources.c.id == source_id)
            .values(is_aggregator=relays, cursor=None, etag=None, last_modified=None)
        )
        recompute(conn, [row.merged_id for row in dropped])


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
        if row is None or (awaiting_approval(row) and signed_in_operator_id() is None):
            abort(404)
        health = source_health(conn, row)
    # The search for its feed, while one runs or after it failed: the page shows its progress.
    health["discovery"] = searching(row, current_app.config)
    return row, health


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
    searches = {row.id: searching(row, current_app.config) for row in rows}
    return render_template("operator_sources.html", sources=rows, searches=searches, kinds=list(ADAPTERS))


@bp.post("/operator/sources")
@operator_required
def operator_add():
    """Add a source: at once if its format is given, else its feed is found by a job."""
    url = request.form.get("url", "").strip()
    kind = request.form.get("kind") or None
    name = request.form.get("name", "").strip()
    then = "approved" if request.form.get("approve") else "pending"
    try:
        trust = int(request.form.get("trust") or 50)
        if kind is None:
            source_id = add_source_later(
                _engine(), url, name=name, then=then, trust=trust,
                config=job_config(current_app), callback_base=_callback_base(),
            )  # fmt: skip
        else:
            source_id = add_source(
                _engine(), url, kind=kind, name=name, state=then, trust=trust, config=current_app.config
            )
    except ValueError as exc:
        flash(f"Could not add {url or 'the source'}: {exc}", "error")
        return redirect(url_for("sources.operator_sources"))
    if kind is None:
        flash(f"Added {name or url}: finding its feed… This page shows what is found.")
        return redirect(url_for("sources.source_page", source_id=source_id))
    waiting = "" if then == "approved" else " Approve it when you are ready to harvest it."
    flash(f"Added {name or url}.{waiting}")
    _harvest_if_approved(source_id)
    return redirect(url_for("sources.operator_sources"))


def _callback_base() -> str:
    """Our public address, for the WebSub subscription a job asks for once a feed is found."""
    return current_app.config.get("PUBLIC_URL") or request.url_root


def _harvest_if_approved(source_id: int) -> None:
    with _engine().connect() as conn:
        state = conn.execute(select(sources.c.state).where(sources.c.id == source_id)).scalar()
    if state == "approved":
        enqueue_harvest(source_id, job_config(current_app))
        from aggregator.subscriptions import enqueue_subscribe  # WebSub push, beside polling

        enqueue_subscribe(source_id)


def _find_feed_later(row: Any, then: str) -> Any:
    """Queue the search for the source's feed; the operator is sent to its page, which shows the outcome."""
    start_discovery(_engine(), row.id, then, job_config(current_app), _callback_base())
    return redirect(url_for("sources.source_page", source_id=row.id))


# What "find the feed again" leaves a source as once its feed is found: as it was, or (stopped
# because its feed had gone) approved again, since finding the new feed is how it restarts.
_STATE_WHEN_FOUND_AGAIN = {"stopped": "approved"}


@bp.post("/operator/sources/<int:source_id>/<action>")
@operator_required
def operator_action(source_id: int, action: str):
    engine = _engine()
    with engine.connect() as conn:
        row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    if row is None:
        abort(404)
    states = {"approve": "approved", "pause": "paused", "restart": "approved"}
    if row.state in FEED_UNKNOWN and action in (*states, "harvest"):
        flash(
            f"{row.name} has no feed yet, so it cannot be harvested: wait for the search to end, "
            "or find the feed again.",
            "error",
        )
        return redirect(url_for("sources.source_page", source_id=source_id))
    if action == "approve" and row.state == "pending" and row.feed_url == row.url:
        # A join request gave an address only: its feed is found now that someone vouches for it,
        # by a job, and harvesting starts once it is. The approval is recorded at once.
        flash(f"Approved {row.name}. Finding its feed at {row.url}… This page shows what is found.")
        return _find_feed_later(row, "approved")
    if action == "rediscover":
        then = state_when_found(row)
        flash(f"Finding the feed at {row.url} again… This page shows what is found.")
        return _find_feed_later(row, then or _STATE_WHEN_FOUND_AGAIN.get(row.state, row.state))
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
    elif action in ("relays", "publishes"):
        set_relays(engine, source_id, action == "relays")
        _harvest_if_approved(source_id)
        kind = "an aggregator: it may relay other sites' activities" if action == "relays" else "a publisher"
        flash(f"{row.name} is now {kind}.")
    elif action == "remove":
        remove_source(engine, source_id)
        flash(f"Removed {row.name} and the items it alone provided.")
    else:
        abort(404)
    return redirect(url_for("sources.operator_sources"))
