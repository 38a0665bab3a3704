"""The merged activities as an Open Referral UK API (HSDS 3.0, UK profile), under ``/oruk``.

Council directories that already consume Open Referral UK APIs can follow an aggregator
with no new code. Read-only: ``/`` (what this API is), ``/services`` and
``/services/{id}``, ``/service_at_locations`` (with ``postcode`` and ``proximity``),
``/taxonomies`` and ``/taxonomy_terms`` (our categories and audiences), with every filter
the profile lists (``aggregator.oruk.filters``). Lists come from the search index, the
table the query API reads, and show what it would show; a record's shape is
``aggregator.oruk.shape``'s.

Every answer carries ``Access-Control-Allow-Origin: *``, as the profile requires, so a
web page anywhere can read it. Errors are JSON, as the query API's are.

Each service is built under the shared guard (:func:`federation.feeds.common.render_each`):
a list leaves out one that cannot be built, and the detail endpoint falls back to the
one-to-one fields, then to the id alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from aggregator import search_index as si
from aggregator.api import geocoder_for, settings_for
from aggregator.oruk import filters as f
from aggregator.oruk.shape import (
    TAXONOMIES,
    every_term,
    full_service,
    service_at_location_summary,
    service_id,
    summary,
    taxonomy,
    taxonomy_term,
)
from aggregator.store import merged
from federation.clock import clock
from federation.feeds.common import render_each, render_one

__all__ = ["bp", "service_id"]

bp = Blueprint("oruk", __name__, url_prefix="/oruk")

# The UK profile this API follows, and its OpenAPI description (what validators read).
PROFILE_URL = "https://github.com/OpenReferralUK/uk-profile"
OPENAPI_URL = "https://raw.githubusercontent.com/OpenReferralUK/uk-profile/main/profile/openapi.json"


@bp.after_app_request
def _cors(response: Response) -> Response:
    """CORS ``*`` on every answer under /oruk, errors and unknown paths included."""
    if request.path == "/oruk" or request.path.startswith("/oruk/"):
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.errorhandler(f.BadRequest)
def _error(exc: f.BadRequest) -> tuple[Response, int]:
    """Errors as JSON, like the query API's, with a message a person can act on."""
    return jsonify({"error": {"message": exc.message, "parameter": exc.parameter}}), exc.status


@bp.get("/")
def about() -> Any:
    """What this API is, as the Open Referral ``/`` endpoint describes itself."""
    f.check_names("/", request.args)
    base = (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")
    name = current_app.config["AGGREGATOR_NAME"]
    return jsonify(
        {
            "version": "HSDS-UK-3.0",
            "profile": PROFILE_URL,
            "openapi_url": OPENAPI_URL,
            "description": f"Community activities that {name} follows, as Open Referral UK services.",
            "publisher": {"name": name, "website": f"{base}/"},
        }
    )


@bp.get("/services")
def services() -> Any:
    """One page of services (their one-to-one fields), filtered, in the Open Referral envelope."""
    f.check_names("/services", request.args)
    page, per_page = f.paging(request.args)
    wanted = f.read(request.args)
    with current_app.extensions["engine"].connect() as conn:
        total, activities = _listed(conn, wanted, page, per_page)
    contents = list(render_each(activities, summary, where="ORUK services"))
    return jsonify(_envelope(contents, total, page, per_page))


@bp.get("/service_at_locations")
def service_at_locations() -> Any:
    """One page of the places services run at, filtered; nearest first given a ``postcode``."""
    f.check_names("/service_at_locations", request.args)
    page, per_page = f.paging(request.args)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with app.extensions["engine"].begin() as conn:  # a postcode looked up is remembered
        wanted = f.read_place(conn, request.args, geocoder_for(app), clock(app)())
        total, activities = _listed(conn, wanted, page, per_page)
    contents = list(render_each(activities, service_at_location_summary, where="ORUK service_at_locations"))
    return jsonify(_envelope(contents, total, page, per_page))


@bp.get("/services/<wanted>")
def service(wanted: str) -> Any:
    """One fully nested service, by its Open Referral id."""
    f.check_names("/services/{id}", request.args)
    with current_app.extensions["engine"].connect() as conn:
        # The id is a hash of the activity's id, so it is found by hashing; only ids are read.
        for row in conn.execute(select(merged.c.item_id).where(merged.c.state == "updated")):
            if service_id(row.item_id) == wanted:
                data = conn.execute(select(merged.c.data).where(merged.c.item_id == row.item_id)).scalar_one()
                if data:
                    return jsonify(
                        render_one(data, full_service, where="ORUK service")
                        or render_one(data, summary, where="ORUK service in brief")
                        or {"id": wanted, "url": row.item_id}
                    )
    raise f.BadRequest(404, f"No service has the id {wanted!r}; the ids are listed at /oruk/services.")


@bp.get("/taxonomies")
def taxonomies() -> Any:
    """Our vocabularies that services' attributes use, as Open Referral taxonomies."""
    f.check_names("/taxonomies", request.args)
    return jsonify(_in_pages([taxonomy(scheme) for scheme in TAXONOMIES]))


@bp.get("/taxonomy_terms")
def taxonomy_terms() -> Any:
    """Every term of every taxonomy, with its description."""
    f.check_names("/taxonomy_terms", request.args)
    return jsonify(_in_pages([taxonomy_term(scheme, code) for scheme, code in every_term()]))


def _in_pages(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    page, per_page = f.paging(request.args)
    start = (page - 1) * per_page
    return _envelope(list(records[start : start + per_page]), len(records), page, per_page)


def _listed(conn: Connection, wanted: f.Filters, page: int, per_page: int) -> tuple[int, list[Any]]:
    """(how many activities meet ``wanted``, those on page ``page``), from the search index."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    c, d = si.index.c, si.documents.c
    conditions = f.where(wanted, clock(app)(), settings_for(app))
    order = [c.merged_id] if wanted.near is None else [f.distance(wanted), c.merged_id]
    documents = select(d.activity).join(si.documents, d.merged_id == c.merged_id).where(*conditions)
    start = (page - 1) * per_page
    if not wanted.needs_schedules:
        total = conn.execute(select(func.count()).select_from(si.index).where(*conditions)).scalar_one()
        rows = conn.execute(documents.order_by(*order).limit(per_page).offset(start)).scalars()
        return total, list(rows)
    # Clock times are not in the index: the rows SQL narrowed to are checked one by one, on
    # only the parts of their documents that say when (the database takes them out).
    when = [d.activity[key] for key in f.WHEN]
    meets: Callable[[Any], bool] = lambda fields: f.meets_schedules(fields, wanted)  # noqa: E731
    candidates = select(c.merged_id, *when).join(si.documents, d.merged_id == c.merged_id)
    matching = [
        row.merged_id
        for row in conn.execute(candidates.where(*conditions).order_by(*order))
        if render_one(dict(zip(f.WHEN, row[1:], strict=True)), meets, where="ORUK schedule filter")
    ]
    shown = matching[start : start + per_page]
    page_of = dict(conn.execute(select(d.merged_id, d.activity).where(d.merged_id.in_(shown))).all())
    return len(matching), [page_of[merged_id] for merged_id in shown if merged_id in page_of]


def _envelope(contents: Iterable[dict[str, Any]], total: int, page: int, per_page: int) -> dict[str, Any]:
    """The Open Referral paging envelope around one page of ``contents``."""
    contents = list(contents)
    total_pages = max(1, -(-total // per_page))
    return {
        "total_items": total,
        "total_pages": total_pages,
        "page_number": page,
        "size": len(contents),
        "first_page": page == 1,
        "last_page": page >= total_pages,
        "empty": not contents,
        "contents": contents,
    }
