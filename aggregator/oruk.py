"""The merged activities in the Open Referral UK shape: ``GET /oruk/services[/<id>]``.

Council directories that already consume Open Referral UK (HSDS 3.0) APIs can follow an
aggregator with no new code. This is a read-only view of the ``merged`` table: each
activity becomes a service whose id is a UUID derived from the activity's own id
(``uuid5``), so it stays the same for ever, here and on any other aggregator that
serves the same activity.

Fields follow the UK profile (https://github.com/OpenReferralUK/uk-profile, schema/):
the list endpoint gives one-to-one fields in the paging envelope, the detail endpoint
the fully nested service. Each service is built under the shared guard
(:func:`federation.feeds.common.render_each`): the list leaves out one that cannot be
built, and the detail endpoint falls back to the one-to-one fields, then to the id alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import func, select

from aggregator.adapters.mapping import VERIFIED_BY
from aggregator.store import merged
from federation.feeds.common import render_each, render_one, vocab_label
from schema.vocab import accessibility as access_vocabulary

bp = Blueprint("oruk", __name__, url_prefix="/oruk")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
_STATUS = {"scheduled": "active", "paused": "temporarily closed", "cancelled": "inactive"}
_FREQUENCY = {"P1W": ("WEEKLY", 1), "P2W": ("WEEKLY", 2), "P1M": ("MONTHLY", 1)}


class _BadRequest(Exception):
    """A request this API cannot answer, with the message and the parameter to fix."""

    def __init__(self, status: int, message: str, parameter: str | None = None):
        super().__init__(message)
        self.status, self.message, self.parameter = status, message, parameter


@bp.errorhandler(_BadRequest)
def _error(exc: _BadRequest) -> tuple[Response, int]:
    """Errors as JSON, like the query API's, with a message a person can act on."""
    return jsonify({"error": {"message": exc.message, "parameter": exc.parameter}}), exc.status


def service_id(item_id: str) -> str:
    """The Open Referral id of the activity ``item_id``: a UUID that never changes."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, item_id))


@bp.get("/")
def about() -> Any:
    """What this API is, as the Open Referral ``/`` endpoint describes itself."""
    return jsonify(
        {
            "version": "3.0",
            "profile": "https://github.com/OpenReferralUK/uk-profile",
            "openapi_url": "https://raw.githubusercontent.com/OpenReferralUK/uk-profile/main/schema/openapi.json",
        }
    )


@bp.get("/services")
def services() -> Any:
    """One page of services, in the Open Referral paging envelope."""
    page = _whole_number("page", 1)
    per_page = min(_whole_number("per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
    shown = merged.c.state == "updated"
    with current_app.extensions["engine"].connect() as conn:
        total = conn.execute(select(func.count()).select_from(merged).where(shown)).scalar_one()
        rows = conn.execute(
            select(merged.c.item_id, merged.c.data)
            .where(shown)
            .order_by(merged.c.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
    contents = list(render_each((row.data for row in rows if row.data), summary, where="ORUK services"))
    total_pages = max(1, -(-total // per_page))
    return jsonify(
        {
            "total_items": total,
            "total_pages": total_pages,
            "page_number": page,
            "size": len(contents),
            "first_page": page == 1,
            "last_page": page >= total_pages,
            "empty": not contents,
            "contents": contents,
        }
    )


@bp.get("/services/<wanted>")
def service(wanted: str) -> Any:
    """One fully nested service, by its Open Referral id."""
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
    raise _BadRequest(404, f"No service has the id {wanted!r}; the ids are listed at /oruk/services.")


def summary(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The one-to-one fields of a service, as ``/services`` lists them."""
    sid = service_id(activity["id"])
    contact = activity.get("contact") or {}
    organizer = activity["organizer"]
    found: dict[str, Any] = {
        "id": sid,
        "name": activity["name"],
        "description": activity.get("description", ""),
        "url": activity["id"],
        "status": _STATUS.get(activity.get("status", "scheduled"), "active"),
        "last_modified": activity["dateModified"],
        "organization": {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{organizer.get('url', '')}#{organizer['name']}")),
            "name": organizer["name"],
            "description": f"Organiser of {activity['name']}",
        },
    }
    email = contact.get("email") or organizer.get("email")
    if email:
        found["email"] = email
    if organizer.get("url"):
        found["organization"]["website"] = organizer["url"]
    if organizer.get("email"):
        found["organization"]["email"] = organizer["email"]
    ages = activity.get("ageRange") or {}
    if "min" in ages:
        found["minimum_age"] = ages["min"]
    if "max" in ages:
        found["maximum_age"] = ages["max"]
    if activity.get(VERIFIED_BY) is None:  # only a date the organiser confirmed counts as assured
        found["assured_date"] = activity["lastVerified"]
    return found


def full_service(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The fully nested service for ``/services/{id}``."""
    found = summary(activity)
    sid, page = found["id"], activity["id"]

    def child(kind: str, index: int = 0) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{page}#{kind}/{index}"))

    found["schedules"] = [
        {"id": child("schedule", i), "service_id": sid, "url": page, **fields}
        for i, fields in enumerate(_schedules(activity))
    ]
    location = activity.get("location")
    if location:
        address = location.get("address") or {}
        place: dict[str, Any] = {
            "id": child("location"),
            "location_type": "physical",
            "name": location["name"],
            "addresses": [
                {
                    "id": child("address"),
                    "location_id": child("location"),
                    "address_1": address.get("streetAddress", ""),
                    "city": address.get("addressLocality", ""),
                    "state_province": "",
                    "postal_code": address.get("postalCode", ""),
                    "country": "GB",
                    "address_type": "physical",
                }
            ],
            "accessibility": [
                {"id": child("accessibility", i), "description": vocab_label("accessibility", feature)}
                for i, feature in enumerate(location.get("accessibility", []))
                if feature in access_vocabulary()
            ],
        }
        if location.get("geo"):
            place["latitude"] = location["geo"]["latitude"]
            place["longitude"] = location["geo"]["longitude"]
        found["service_at_locations"] = [
            {
                "id": child("service_at_location"),
                "service_id": sid,
                "location_id": place["id"],
                "location": place,
            }
        ]
    elif activity.get("onlineUrl"):
        found["service_at_locations"] = [
            {
                "id": child("service_at_location"),
                "service_id": sid,
                "location": {
                    "id": child("location"),
                    "location_type": "virtual",
                    "url": activity["onlineUrl"],
                },
            }
        ]
    price = activity.get("price") or {}
    cost = {"id": child("cost"), "service_id": sid, "url": page}
    if price.get("isFree") or "amount" in price:
        cost.update(currency="GBP", amount=0 if price.get("isFree") else price["amount"])
    if price.get("notes"):  # where there is no amount, the only word on the cost
        cost["amount_description"] = price["notes"]
    found["cost_options"] = [cost]
    contact = activity.get("contact") or {}
    if contact:
        person: dict[str, Any] = {"id": child("contact"), "service_id": sid, "url": page}
        person.update({key: contact[key] for key in ("name", "email") if contact.get(key)})
        if contact.get("telephone"):
            person["phones"] = [{"id": child("phone"), "number": contact["telephone"]}]
        found["contacts"] = [person]
    found["languages"] = [
        {"id": child("language", i), "service_id": sid, "url": page, "code": code}
        for i, code in enumerate(activity.get("languages", []))
    ]
    found["attributes"] = [
        {
            "id": child("attribute", i),
            "link_type": "category",
            "taxonomy_term": {
                "id": str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"https://localfeed.org/vocab/categories#{category}")
                ),
                "name": vocab_label("categories", category),
                "term": vocab_label("categories", category),
                "code": category,
                "taxonomy": "Localfeed categories",
            },
        }
        for i, category in enumerate(activity.get("categories") or ())
    ]
    return found


def _schedules(activity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """HSDS schedules (RRULE parts) for a SessionSeries; one dated opening for an Event."""
    if activity["type"] == "Event":
        start, end = activity["startDate"], activity["endDate"]
        return [
            {
                "valid_from": start[:10],
                "valid_to": end[:10],
                "dtstart": start[:10],
                "opens_at": start[11:16],
                "closes_at": end[11:16],
            }
        ]
    found = []
    for entry in activity.get("schedule") or ():
        frequency, interval = _FREQUENCY[entry["repeatFrequency"]]
        week = entry.get("byMonthWeek")
        fields: dict[str, Any] = {
            "freq": frequency,
            "interval": interval,
            "byday": ",".join(f"{week}{day}" if week else day for day in entry["byDay"]),
            "opens_at": entry["startTime"],
            "closes_at": entry["endTime"],
            "dtstart": entry["startDate"],
            "valid_from": entry["startDate"],
        }
        if entry.get("endDate"):
            fields["valid_to"] = fields["until"] = entry["endDate"]
        if entry.get("exceptDates"):
            fields["notes"] = "Not on " + ", ".join(entry["exceptDates"])
        found.append(fields)
    return found


def _whole_number(name: str, default: int) -> int:
    raw = request.args.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise _BadRequest(
            400, f"{name}={raw!r} is not a whole number from 1; use e.g. {name}={default}.", name
        )
    return int(raw)
