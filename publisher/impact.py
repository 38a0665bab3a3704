"""How often each group's listings were seen and followed, from the aggregators that show them.

The counts are made at the aggregators (``aggregator.impact``), anonymous and with small
numbers already suppressed (:mod:`federation.impact`). This publisher fetches each one's
report for its own origin, through the guarded client, from:

- the aggregators subscribed to its WebSub hub now (each callback's origin), and
- those the IMPACT_AGGREGATORS setting lists (comma-separated base addresses), for
  aggregators that poll instead of subscribing.

It does so every IMPACT_REFRESH_SECONDS in a thread of ``localfeed-publisher serve``, and
whenever someone presses "Fetch the latest counts". A report carries, besides the
aggregator's own counts, those of the aggregators that follow it; the same aggregator's
counts reached two ways are kept once.
Editors see their own group's activities only (``/admin/impact``, a printable page and a
CSV for funders); an administrator, acting for the umbrella body, sees every group.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import JSON, Column, Table, Text, and_, false, select

from federation import impact
from federation.clock import clock, utcnow
from federation.config import load_config
from federation.db import UTCDateTime
from federation.fetch import GuardedClient
from federation.websub.hub import define_tables
from publisher import admin
from publisher.auth import login_required
from publisher.extensions import STORE_KEY
from publisher.store import Group, Store, activities, metadata

log = logging.getLogger(__name__)

IMPACT_DEFAULTS: dict[str, Any] = {
    "IMPACT_AGGREGATORS": "",  # comma-separated aggregator addresses asked besides the hub's subscribers
    "IMPACT_REFRESH_SECONDS": 6 * 3600,  # how often counts are fetched in the background; 0: only on demand
}
SHOWN_KINDS = ("shown", "opened", "booking", "contact", "printed")  # the columns people read first

# Each counting aggregator's last published day cells for one of our origins, as fetched.
impact_sections = Table(
    "impact_sections",
    metadata,
    Column("counted_by", Text, primary_key=True),  # the aggregator that counted (its origin)
    Column("origin", Text, primary_key=True),  # our origin the counts are for
    Column("asked", Text, nullable=False),  # the aggregator whose report carried them
    Column("generated", Text, nullable=False),  # when the counting aggregator made them (ISO 8601)
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("days", JSON, nullable=False),
)

bp = Blueprint("impact", __name__, url_prefix="/admin")
bp.register_error_handler(403, admin.forbidden_page)

_problems_key = "publisher.impact.problems"


# -- fetching -----------------------------------------------------------------------------------


def our_origins(store: Store, config: Mapping[str, Any]) -> list[str]:
    """The origins our activities' ids are minted on (PUBLIC_URL's, and any an older address used)."""
    with store.engine.connect() as conn:
        uris = conn.execute(select(activities.c.uri)).scalars().all()
    found = {impact.web_origin(uri) for uri in uris}
    found.add(impact.web_origin(config.get("PUBLIC_URL")))
    return sorted(origin for origin in found if origin)


def aggregators(store: Store, config: Mapping[str, Any], now: datetime) -> list[str]:
    """Whom to ask: our hub's current subscribers (by origin) and the IMPACT_AGGREGATORS setting."""
    subscriptions = define_tables(metadata)[0]
    with store.engine.connect() as conn:
        callbacks = (
            conn.execute(
                select(subscriptions.c.callback).where(
                    and_(subscriptions.c.state == "active", subscriptions.c.expires_at > now)
                )
            )
            .scalars()
            .all()
        )
    listed = [part.strip() for part in str(config.get("IMPACT_AGGREGATORS") or "").split(",")]
    found = {impact.web_origin(url) for url in [*callbacks, *listed] if url}
    return sorted(origin for origin in found if origin)


def refresh(app: Flask) -> list[str]:
    """Fetch each aggregator's report for each of our origins, keep the newest counts; returns problems."""
    store: Store = app.extensions[STORE_KEY]
    now = utcnow()
    origins = our_origins(store, app.config)
    problems: list[str] = []
    fetched: list[tuple[str, str, Mapping[str, Any]]] = []  # (asked, origin, section)
    with GuardedClient(
        allow_private=bool(app.config["ALLOW_PRIVATE_NETWORKS"]), max_bytes=20_000_000
    ) as client:
        for aggregator in aggregators(store, app.config, now):
            for origin in origins:
                try:
                    fetched += [
                        (aggregator, origin, s) for s in impact.fetch_report(client, aggregator, origin)
                    ]
                except impact.ImpactError as error:
                    problems.append(str(error))
    with store.engine.begin() as conn:
        for origin in origins:
            held = conn.execute(select(impact_sections).where(impact_sections.c.origin == origin)).all()
            newest = {row.counted_by: row.generated for row in held}
            # The counting aggregator's own report wins a tie with a relayed copy of it.
            offered = sorted(
                ((asked, s) for asked, o, s in fetched if o == origin),
                key=lambda pair: (pair[1]["generated"], pair[0] == pair[1]["countedBy"]),
            )
            for asked, given in offered:
                if given["generated"] < newest.get(given["countedBy"], ""):
                    continue
                newest[given["countedBy"]] = given["generated"]
                impact.keep_section(conn, impact_sections, origin, given, now, asked=asked)
    app.extensions[_problems_key] = problems
    for problem in problems:
        log.warning("Impact counts: %s", problem)
    return problems


def _refresh_every(app: Flask, interval: float) -> None:
    while True:
        time.sleep(interval)  # the first fetch waits too: "Fetch the latest counts" is there for now
        try:
            refresh(app)
        except Exception:  # the pages show what was fetched before; the next round tries again
            log.exception("Fetching impact counts failed")


def start_periodic(app: Flask) -> threading.Thread | None:
    """A thread fetching the counts every IMPACT_REFRESH_SECONDS (none when that is 0)."""
    interval = float(app.config["IMPACT_REFRESH_SECONDS"])
    if interval <= 0:
        return None
    thread = threading.Thread(
        target=_refresh_every, args=(app, interval), name="localfeed-impact", daemon=True
    )
    thread.start()
    return thread


# -- what editors see ---------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a table: a month, and a website (None: every website together), with a total per kind."""

    month: str
    site: str | None
    totals: dict[str, impact.Total] = field(default_factory=dict)

    def words(self, kind: str) -> str:
        return self.totals.get(kind, impact.Total()).words

    @property
    def website(self) -> str:
        return "All websites" if self.site is None else site_name(self.site)


@dataclass
class ActivityCounts:
    name: str
    uri: str
    rows: list[Row]


@dataclass
class GroupCounts:
    group: Group
    activities: list[ActivityCounts]


def month_name(month: str) -> str:
    """ "2026-11" → "November 2026"."""
    return f"{date.fromisoformat(month + '-01'):%B %Y}"


def site_name(site: str) -> str:
    return site.split("://", 1)[-1] if site else "Website not known"


def _rows(cells: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Month rows, newest first (all websites, then each website), summed from published day cells only."""
    by_key: dict[tuple[str, str | None], dict[str, impact.Total]] = {}
    for cell in cells:
        for site in (None, cell["site"]):
            totals = by_key.setdefault((cell["day"][:7], site), {})
            totals[cell["kind"]] = totals.get(cell["kind"], impact.Total()) + impact.Total.of(cell)
    ordered = sorted(by_key, key=lambda key: (key[1] is not None, key[1] or ""))
    ordered.sort(key=lambda key: key[0], reverse=True)  # stable: within a month, all websites first
    return [Row(month, site, by_key[(month, site)]) for month, site in ordered]


def counts_for(store: Store, groups: Sequence[Group]) -> list[GroupCounts]:
    """Each group's activities with their counts, from every aggregator's stored sections."""
    wanted = {group.id for group in groups}
    with store.engine.connect() as conn:
        listed = conn.execute(
            select(activities.c.uri, activities.c.slug, activities.c.group_id, activities.c.data).where(
                activities.c.group_id.in_(wanted) if wanted else false()
            )
        ).all()
        sections = conn.execute(select(impact_sections.c.days)).scalars().all()
    cells_of: dict[str, list[Mapping[str, Any]]] = {row.uri: [] for row in listed}
    for days in sections:
        for cell in days:
            if cell["activity"] in cells_of:
                cells_of[cell["activity"]].append(cell)
    result = []
    for group in groups:
        mine = [row for row in listed if row.group_id == group.id]
        counted = [
            ActivityCounts((row.data or {}).get("name") or row.slug, row.uri, _rows(cells_of[row.uri]))
            for row in mine
        ]
        counted.sort(key=lambda item: item.name.lower())
        result.append(GroupCounts(group, counted))
    return result


def _chosen_groups() -> list[Group]:
    """The signed-in user's groups (every group for an administrator), narrowed by ``?group=<slug>``."""
    groups = admin._groups_for_user()
    slug = request.args.get("group")
    return [group for group in groups if group.slug == slug] if slug else groups


def _page_context() -> dict[str, Any]:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    store: Store = app.extensions[STORE_KEY]
    with store.engine.connect() as conn:
        fetched = conn.execute(select(impact_sections.c.counted_by, impact_sections.c.fetched_at)).all()
    return {
        "counts": counts_for(store, _chosen_groups()),
        "kinds": SHOWN_KINDS,
        "kind_words": impact.KIND_WORDS,
        "month_name": month_name,
        "site_name": site_name,
        "counted_by": sorted({row.counted_by for row in fetched}),
        "last_fetched": max((row.fetched_at for row in fetched), default=None),
        "problems": app.extensions.get(_problems_key, []),
        "threshold": impact.THRESHOLD,
        "today": clock(app)().date(),
    }


@bp.get("/impact")
@login_required
def impact_page() -> str:
    return render_template("admin/impact.html", **_page_context())


@bp.get("/impact/print")
@login_required
def impact_print() -> str:
    return render_template("admin/impact_print.html", **_page_context())


@bp.get("/impact.csv")
@login_required
def impact_csv() -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "Group",
            "Activity",
            "Activity address",
            "Month",
            "Website",
            *(impact.KIND_WORDS[kind] for kind in impact.KINDS),
        ]
    )
    for group_counts in counts_for(current_app.extensions[STORE_KEY], _chosen_groups()):
        for item in group_counts.activities:
            for row in item.rows:
                writer.writerow(
                    [
                        group_counts.group.name,
                        item.name,
                        item.uri,
                        month_name(row.month),
                        row.website,
                        *(row.words(kind) for kind in impact.KINDS),
                    ]
                )
    writer.writerow([])
    writer.writerow(
        [
            f"A day's count below {impact.THRESHOLD} is never published, so nobody can be picked out; "
            "a total that includes such a day says 'at least'."
        ]
    )
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="activity-reach.csv"'
    return response


@bp.post("/impact/refresh")
@login_required
def impact_refresh() -> Any:
    problems = refresh(current_app._get_current_object())  # type: ignore[attr-defined]
    if problems:
        flash("Some counts could not be fetched: " + " ".join(problems), "error")
    else:
        flash("Fetched the latest counts.", "success")
    return redirect(url_for("impact.impact_page", group=request.args.get("group")))


def init_app(app: Flask) -> None:
    """Settings and the pages; ``serve`` starts the background fetching (:func:`start_periodic`),
    so that short-lived apps (tests, commands) leave no thread behind."""
    given = {key: app.config[key] for key in IMPACT_DEFAULTS if key in app.config}
    app.config.update(load_config(IMPACT_DEFAULTS, given))
    app.register_blueprint(bp)
