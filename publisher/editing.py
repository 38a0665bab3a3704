"""The one path every writer takes: the JSON API, the editors' UI, the CSV import and the CLI.

Writers hand over what a person or a machine typed; this module fills in what the
publisher owns (the ``id``, ``dateModified``, defaults from the group), checks the
result against the contract, and writes only a valid activity. Keeping this in one
place is what makes "the feed only ever carries valid activities" true.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from federation.clock import utcnow
from federation.db import json_text
from federation.geocoding import Centroids, Geocoder, GeocoderUnavailable, files_of, locate_postcode
from publisher.store import Conflict, Group, NotFound, Store, StoredActivity, slugify
from schema import Problem, normalise_activity_postcode, normalise_postcode, outsized, validate_activity
from schema.schedule import LOCAL_ZONE

# Dates people see ("verified today") are the organiser's dates, which are UK dates.
CONFIRMATION_SALT = "localfeed.still-running"
CONFIRMATION_MAX_AGE = timedelta(days=60)
_SLUG_ATTEMPTS = 5


class ActivityNotFound(NotFound):
    """The slug names no live activity of this group (another group's looks just as absent)."""


class BadConfirmationLink(ValueError):
    """A "still running" link that is forged, mangled or too old."""


@dataclass(frozen=True)
class SaveResult:
    """What happened to a save: the slug and stored document, or the problems that stopped it.

    ``slug`` is None when a new activity was refused (it has no address yet).
    """

    slug: str | None
    activity: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    change_number: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def today(now: datetime | None = None) -> date:
    """The organiser's (UK) date at ``now``, an aware datetime; by default the real time now.

    Pass the app's clock (:func:`federation.clock.clock`) so tests can move time on.
    """
    return (now or utcnow()).astimezone(LOCAL_ZONE).date()


def activity_url(base_url: str, slug: str) -> str:
    """The activity's ``id``: its public page, where the id resolves."""
    return f"{base_url.rstrip('/')}/activities/{slug}"


def organizer_from_group(group: Group) -> dict[str, str]:
    """The group as an ``organizer``, with whichever contact details it has."""
    details = {"name": group.name, "url": group.url, "email": group.email, "telephone": group.telephone}
    return {key: value for key, value in details.items() if value}


def prepare_activity(
    group: Group,
    doc: dict[str, Any],
    slug: str | None = None,
    *,
    base_url: str,
    existing: StoredActivity | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Fill in what the publisher owns; returns a new dict and leaves ``doc`` untouched.

    The ``id`` is minted from ``slug`` for a new activity and kept from ``existing``
    on an edit, whatever the writer sent, so an id never changes. The organiser
    defaults to the group, ``lastVerified`` to today (:func:`today` at ``now``, the
    app's clock reading), and ``dateModified`` is the real time now. A postcode is put
    in its normal form, so the feed, merging and search compare like with like
    whichever door the activity came in by.
    """
    prepared = copy.deepcopy(doc)
    if existing is not None:
        prepared["id"] = existing.uri
    else:
        prepared["id"] = activity_url(base_url, slug or new_slug_base(doc))
    organizer = prepared.get("organizer")
    if not organizer:
        prepared["organizer"] = organizer_from_group(group)
    elif isinstance(organizer, dict) and not organizer.get("name"):
        prepared["organizer"] = {**organizer_from_group(group), **organizer, "name": group.name}
    normalise_activity_postcode(prepared)
    prepared.setdefault("lastVerified", today(now).isoformat())
    prepared["dateModified"] = utcnow().isoformat(timespec="seconds")
    return prepared


def new_slug_base(doc: dict[str, Any]) -> str:
    """A readable slug from the activity's name, or ``activity`` when the name gives none."""
    name = doc.get("name")
    return (isinstance(name, str) and slugify(name)) or "activity"


def save_activity(
    store: Store,
    group: Group,
    doc: dict[str, Any],
    slug: str | None = None,
    *,
    base_url: str,
    now: datetime | None = None,
) -> SaveResult:
    """Create (no ``slug``) or replace (``slug``) one of ``group``'s activities.

    Nothing is written when the activity breaks the contract, or could not be written as
    JSON: the result carries the problems instead, so no writer ever sees the database
    refuse it. Raises ActivityNotFound when ``slug`` is not a live activity of ``group``.
    ``now`` is the app's clock reading (see :func:`prepare_activity`).
    """
    too_big = outsized(doc)  # before the copy in prepare_activity, which recurses
    if too_big is not None:
        return SaveResult(slug, doc, [too_big])
    if slug is not None:
        existing = store.get_activity(slug)
        if existing is None or existing.is_deleted or existing.group_id != group.id:
            raise ActivityNotFound(f"There is no activity {slug!r} in {group.name}.")
        prepared = prepare_activity(group, doc, slug, base_url=base_url, existing=existing, now=now)
        problems = validate_activity(prepared) or _unstorable(prepared)
        if problems:
            return SaveResult(slug, prepared, problems)
        try:
            stored = store.replace_activity(slug, prepared, group_id=group.id)
        except NotFound:
            raise ActivityNotFound(f"There is no activity {slug!r} in {group.name}.") from None
        return SaveResult(slug, prepared, [], stored.change_number)

    base = new_slug_base(doc)
    prepared = prepare_activity(group, doc, base, base_url=base_url, now=now)
    problems = validate_activity(prepared) or _unstorable(prepared)
    if problems:
        return SaveResult(None, prepared, problems)
    # The free slug is checked again inside the writing transaction; another writer
    # may take it in between, and then the next free one is tried.
    for _attempt in range(_SLUG_ATTEMPTS):
        new_slug = store.free_slug(base)
        prepared["id"] = activity_url(base_url, new_slug)
        try:
            stored = store.create_activity(group.id, new_slug, prepared)
        except Conflict:
            continue
        return SaveResult(new_slug, prepared, [], stored.change_number)
    raise Conflict(f"Could not find a free address for {base!r} after {_SLUG_ATTEMPTS} tries; try again.")


def contradictions(activity: Mapping[str, Any]) -> list[str]:
    """What in ``activity`` contradicts itself or leaves people stuck, each with what to do about it.

    Warnings, not problems: the activity is saved all the same, since the organiser knows best
    (a full group may still welcome newcomers), but someone signposted to it would be let down.
    """
    name = activity.get("name") or "This activity"
    found = []
    space = (activity.get("capacity") or {}).get("status")
    if space in ("full", "waiting-list") and (activity.get("booking") or {}).get("method") == "drop-in":
        said = "full, with a waiting list" if space == "waiting-list" else "full"
        found.append(
            f"“{name}” says it is {said}, and also that people can just turn up, so people may come "
            "and be turned away. Change “How do people join?” to “Get in touch first” or “Book ahead”, "
            "or, if there is room again, change “Is there space?” (under “More about this activity”)."
        )
    contact = activity.get("contact") or {}
    organizer = activity.get("organizer") or {}
    ways_in = [
        contact.get("email"),
        contact.get("telephone"),
        (activity.get("booking") or {}).get("url"),
        *(organizer.get(key) for key in ("email", "telephone", "url") if isinstance(organizer, dict)),
    ]
    if not any(ways_in):
        found.append(
            f"“{name}” gives no way to ask about it or book: no contact email or telephone, no booking "
            "link, and the group has none on file either. Add a contact email or telephone so people "
            "can check before they come."
        )
    return found


def _unstorable(prepared: dict[str, Any]) -> list[Problem]:
    """A problem if ``prepared`` cannot be written as the database's JSON, else none.

    The contract's rules refuse everything known to fail here (lone surrogates, numbers
    past what JSON readers hold); this is the last check before the write, so whatever
    they miss is answered as the activity's problem rather than as the server's fault.
    """
    try:
        json_text(prepared)
    except orjson.JSONEncodeError as error:
        message = (
            f"The activity could not be stored: {error}. Check its numbers (no larger than they need "
            "to be) and its text (no characters cut in half), then send it again."
        )
        return [Problem("$", "not-storable", message)]
    return []


def delete_activity(store: Store, group: Group, slug: str) -> StoredActivity:
    """Delete one of ``group``'s activities; the feed keeps a tombstone."""
    try:
        return store.delete_activity(slug, group_id=group.id)
    except NotFound:
        raise ActivityNotFound(f"There is no activity {slug!r} in {group.name}.") from None


def confirm_still_running(
    store: Store, group: Group, slug: str, now: datetime | None = None
) -> StoredActivity:
    """The organiser says the activity is still running as described: ``lastVerified`` becomes today.

    ``now`` is the app's clock reading, so the day agrees with the one reminders count from.
    """
    try:
        return store.set_last_verified(slug, today(now), group_id=group.id)
    except NotFound:
        raise ActivityNotFound(f"There is no activity {slug!r} in {group.name}.") from None


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=CONFIRMATION_SALT)


def confirmation_token(secret: str, slug: str) -> str:
    """A signed token for a no-login "still running" link (sent in reminder emails)."""
    return _serializer(secret).dumps(slug)


class ConfirmationLink(NamedTuple):
    """What a genuine confirmation token says: which activity, and the UK date it was made."""

    slug: str
    issued_on: date


def read_confirmation_token(
    secret: str, token: str, max_age: timedelta = CONFIRMATION_MAX_AGE
) -> ConfirmationLink:
    """The activity a confirmation token was made for, and when.

    Raises BadConfirmationLink if the token is not genuine or older than ``max_age``.
    """
    try:
        slug, issued = _serializer(secret).loads(
            token, max_age=int(max_age.total_seconds()), return_timestamp=True
        )
    except SignatureExpired:
        raise BadConfirmationLink(
            "This confirmation link has expired. Log in to confirm the activity, or ask for a new reminder."
        ) from None
    except BadSignature:
        raise BadConfirmationLink(
            "This confirmation link is not valid; it may have been cut short. "
            "Copy the whole link from the email."
        ) from None
    return ConfirmationLink(slug, issued.astimezone(LOCAL_ZONE).date())


# -- can it be found on a map? ------------------------------------------------------------------


@dataclass
class Placer:
    """Whether an activity can be put on a map, judged as an aggregator judges it.

    The same choices as the aggregator's (:mod:`federation.geocoding`): the activity's own
    map position; else its postcode, exactly (this publisher's own listings that give both
    postcode and position, the operator's postcode file, a postcode service), else the middle
    of its sector or district as far as those know them. An activity none of that can place
    is saved all the same, with a warning (:meth:`warning`): no search near a place finds it.
    Build one per save or import (:meth:`for_store`): it reads every live listing once.
    """

    geocoder: Geocoder
    exact: dict[str, tuple[float, float]] = field(default_factory=dict)
    areas: Centroids = field(default_factory=Centroids)

    @classmethod
    def for_store(cls, store: Store, geocoder: Geocoder) -> Placer:
        placer = cls(geocoder)
        for stored in store.list_activities():
            postcode, position = _postcode(stored.data or {}), _own_position(stored.data or {})
            if postcode and position and postcode not in placer.exact:
                placer.exact[postcode] = position
                placer.areas.add(postcode, position)
        return placer

    def _exact(self, postcode: str) -> tuple[float, float] | None:
        return self.exact.get(postcode) or self.geocoder.lookup(postcode)

    def _area(self, code: str) -> tuple[float, float] | None:
        for postcode_file in files_of(self.geocoder):
            found = postcode_file.area(code)
            if found is not None:
                return found
        return self.areas.get(code)

    def warning(self, activity: dict[str, Any]) -> str | None:
        """What to tell the editor when ``activity`` cannot be placed on a map; None when it can.

        Also None when a postcode service could not be asked just now: an outage is no
        reason to tell an editor their postcode is wrong.
        """
        if activity.get("attendanceMode") == "online" or not isinstance(activity.get("location"), dict):
            return None
        if _own_position(activity) is not None:
            return None
        name = activity.get("name") or "this activity"
        postcode = _postcode(activity)
        if postcode is None:
            return (
                f"“{name}” has no postcode, so it can't be put on the map: people searching near a "
                "postcode or town won't find it. Add the postcode of where it meets."
            )
        try:
            located = locate_postcode(postcode, self._exact, self._area)
        except GeocoderUnavailable:
            return None
        if located is not None:
            return None
        return (
            f"We couldn't place the postcode {postcode} on the map, so people searching near a postcode "
            f"or town may not find “{name}”. Check the postcode is right; if it is, "
            "tell whoever runs this site that their postcode list doesn't have it yet."
        )


def _postcode(activity: dict[str, Any]) -> str | None:
    address = (activity.get("location") or {}).get("address") or {}
    typed = address.get("postalCode") if isinstance(address, dict) else None
    return normalise_postcode(typed) if isinstance(typed, str) else None


def _own_position(activity: dict[str, Any]) -> tuple[float, float] | None:
    geo = (activity.get("location") or {}).get("geo") or {}
    if not isinstance(geo, dict) or geo.get("latitude") is None or geo.get("longitude") is None:
        return None
    return float(geo["latitude"]), float(geo["longitude"])
