"""OpenActive feeds (Modelling Opportunity Data 2.0 over RPDE) and schema.org JSON-LD events.

Booking systems publish sessions as OpenActive RPDE feeds: pages of ``{"items",
"next"}`` where each item carries a SessionSeries (with its ScheduledSessions embedded
as ``subEvent``, or published separately and joined by ``superEvent``), an Event, or a
deletion. We keep the series as the activity, because that is what a person joins, and
read its sessions for what the series alone cannot say: spaces left and cancelled dates.

The same mapping serves a single JSON-LD document (an ``Event`` on a web page) and the
Atom adapter's JSON-LD entries, since OpenActive is schema.org with rules.

Each series is mapped once per page, after every session of the page has joined it, so
thousands of sessions on one series cost what they weigh, not their number squared. An
item that cannot be read, whatever it holds, becomes a reason naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aggregator import budget
from aggregator.adapters import mapping as m
from aggregator.adapters.base import Change, Fetch, Page, Unmapped
from federation.clock import utcnow
from schema.openactive import DAYS, day_code, from_openactive, is_localfeed_form
from schema.schedule import LOCAL_ZONE, nth_session_date, repeat_problem, runs_on, start_problem
from schema.text import http_url

KIND = "openactive"

_FREQUENCIES = {"P1W": "P1W", "P7D": "P1W", "P2W": "P2W", "P14D": "P2W", "P1M": "P1M"}
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
# A repeatFrequency is an ISO 8601 duration: P1W, P14D, P1M, and in hostile or odd feeds PT1H or P0D.
_REPEAT = re.compile(
    r"^P(?:(?P<Y>\d+)Y)?(?:(?P<MO>\d+)M)?(?:(?P<W>\d+)W)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<H>\d+)H)?(?:(?P<MI>\d+)M)?(?:(?P<S>\d+(?:\.\d+)?)S)?)?$"
)
_SERIES_TYPES = {"SessionSeries", "CourseInstance", "HeadlineEvent"}
EVENT_TYPES = {"Event", "OnDemandEvent", "ScheduledSession", *_SERIES_TYPES}
# Sessions further apart on average than this many days keep no weekly pattern.
_MOSTLY_MISSING = 14
# An RPDE ``modified`` this large and no larger is a Unix time; smaller ones are change numbers.
_EPOCH_RANGE = (946_684_800, 4_102_444_800)  # 2000-01-01 .. 2100-01-01


def sniff(content_type: str, body: bytes) -> bool:
    """OpenActive JSON: an RPDE page or JSON-LD document whose context is openactive.io."""
    if content_type and "json" not in content_type:
        return False
    head = body[:65536].lstrip()
    return head.startswith((b"{", b"[")) and b"openactive.io" in head


def pages(fetch: Fetch, url: str, cursor: str | None, *, now: datetime | None = None) -> Iterator[Page]:
    """Walk the RPDE feed from ``cursor`` (the next page's URL), following ``next`` as given.

    A document that is not an RPDE page (a single JSON-LD Event, or an ``@graph`` of
    them) is one snapshot page. ``now`` is the harvest time, used for freshness and for
    which session's spaces count.
    """
    harvested_at = now or utcnow()
    series = _SeriesSeen(url, harvested_at)
    current = cursor or url
    while True:
        fetched = fetch(current)
        if fetched is None:
            return
        try:
            document = fetched.json()
        except ValueError as exc:
            yield Page(
                [],
                [
                    Unmapped(
                        current,
                        f"The feed page {current} is not JSON ({exc}); ask the publisher to check the feed.",
                    )
                ],
                cursor=current,  # read this page again next time
            )
            return
        if not (isinstance(document, dict) and isinstance(document.get("items"), list)):
            yield _document_page(document, url, harvested_at)
            return
        page = Page([], [])
        for item in document["items"]:
            budget.spend(items=1)
            ref = _item_ref(item)
            result = m.guarded(ref, ref, lambda: _page_item(item, ref, series, page))  # noqa: B023 (called at once)
            if isinstance(result, Unmapped):
                page.unmapped.append(result)
        series.flush(page)
        next_link = document.get("next")
        next_url = next_link if isinstance(next_link, str) else current
        last = not document["items"] or next_url == current
        if not last and not _same_site(next_url, url):
            page.unmapped.append(
                Unmapped(
                    current,
                    (
                        f"The feed page {current} links its next page to {next_url}, on another site "
                        f"than the feed ({urlsplit(url).netloc}); stopped there. Ask the publisher "
                        "to keep next links on the feed's own site."
                    ),
                )
            )
            last = True
        page.cursor = current if last else next_url
        yield page
        if last:
            return
        current = next_url


def _item_ref(item: Any) -> str:
    """How the source names an RPDE item, for any reason shown about it (whatever the item is)."""
    if isinstance(item, dict) and isinstance(item.get("id"), str | int):
        return f"{m.text(item.get('kind'), 40) or 'item'} {m.text(item['id'], 200)}"
    return m.text(repr(item)[:80], 80)


def _page_item(item: Any, ref: str, series: _SeriesSeen, page: Page) -> None:
    """Add one RPDE item to ``page``: a change, a deletion, or the reason it is not an activity.

    ``ref`` is how the source names the item (``_item_ref``), shown with any reason about it.

    A series (or event) is only noted here: ``series.flush`` maps it at the end of the page.
    """
    if not isinstance(item, dict) or "id" not in item:
        page.unmapped.append(Unmapped(ref, "An RPDE item without an id; the publisher's feed is broken."))
        return
    if isinstance(item["id"], bool) or not isinstance(item["id"], str | int):
        page.unmapped.append(
            Unmapped(
                ref,
                f"An RPDE item's id is {type(item['id']).__name__}, not a string or a number; "
                "the publisher's feed is broken.",
            )
        )
        return
    kind, source_id = str(item.get("kind", "")), item["id"]
    item_id = m.minted_id(series.feed_url, source_id)
    if item.get("state") == "deleted":
        series.forget(item_id)  # a series updated earlier in the page must not come back
        page.changes.append(Change(item_id, None, ref=ref, modified=_marker(item.get("modified"))))
        return
    data = item.get("data")
    if not isinstance(data, dict):
        page.unmapped.append(Unmapped(ref, f"{ref} is marked updated but carries no data."))
        return
    if is_localfeed_form(data):
        page.changes.append(_localfeed_change(data, item_id, ref, _marker(item.get("modified"))))
        return
    kind_of_data = thing_type(data)
    if kind_of_data == "ScheduledSession" or kind == "ScheduledSession":
        if not series.add_session(data):
            parent = data.get("superEvent")
            page.unmapped.append(
                Unmapped(
                    ref,
                    (
                        f"ScheduledSession {source_id} belongs to the series {_ref_of(parent)}, "
                        "which is not in this feed; add the publisher's SessionSeries feed as a "
                        "source too (sessions only add spaces and dates)."
                    ),
                )
            )
        return
    if kind_of_data not in EVENT_TYPES:
        page.unmapped.append(
            Unmapped(
                ref,
                (
                    f"{ref} is a {kind_of_data or 'thing of no @type'}, not a session or event "
                    "anyone can join; only SessionSeries, ScheduledSession and Event items are followed."
                ),
            )
        )
        return
    series.add_series(item_id, data, _epoch(item.get("modified")), ref, _marker(item.get("modified")))


def _localfeed_change(data: dict[str, Any], item_id: str, ref: str, modified: int | str | None) -> Change:
    """A Localfeed activity found in an OpenActive feed: read exactly, by the contract's mapping.

    Named under this feed like any item of it; its own id goes into ``sameAs``, where it
    merges with the copy from its own site.
    """
    activity = from_openactive(data)
    own = activity.get("id")
    activity["id"] = item_id
    if isinstance(own, str) and own != item_id:
        same = activity.get("sameAs")
        activity["sameAs"] = [own, *(u for u in same if u != own)] if isinstance(same, list) else [own]
    return Change(item_id, activity, ref=ref, modified=modified)


class _SeriesSeen:
    """The series met in this harvest, so sessions published separately can join them.

    Series and sessions are noted as a page is read and each series touched is mapped once
    when the page ends (``flush``): mapping it at every session would make the join quadratic.
    """

    def __init__(self, feed_url: str, harvested_at: datetime):
        self.feed_url = feed_url
        self.harvested_at = harvested_at
        self._item_ids: dict[str, str] = {}  # the series' @id, id or url → our item id
        # item id → (data, its change time, its ref, the RPDE item's modified)
        self._series: dict[str, tuple[dict[str, Any], datetime | None, str, int | str | None]] = {}
        self._sessions: dict[str, dict[str, dict[str, Any]]] = {}
        self._touched: dict[str, None] = {}  # series to map at the end of the page, in order

    def add_series(
        self,
        item_id: str,
        data: dict[str, Any],
        changed: datetime | None,
        ref: str = "",
        modified: int | str | None = None,
    ) -> None:
        for own in {data.get("@id"), data.get("id"), data.get("url")} - {None}:
            self._item_ids[str(own)] = item_id
        self._series[item_id] = (data, changed, ref, modified)
        self._touched[item_id] = None

    def add_session(self, session: dict[str, Any]) -> bool:
        """Join the session to its series; False when the series is not known."""
        parent = session.get("superEvent")
        item_id = self._item_ids.get(_ref_of(parent))
        embedded = parent if isinstance(parent, dict) and thing_type(parent) in _SERIES_TYPES else None
        if (item_id is None or item_id not in self._series) and embedded is not None:
            parent_id = embedded.get("@id") or embedded.get("id")
            item_id = m.item_id_for(self.feed_url, http_url(parent_id), parent_id or session.get("@id"))
            self.add_series(item_id, embedded, None)
        if item_id is None or item_id not in self._series:
            return False
        sessions = self._sessions.setdefault(item_id, {})
        sessions[str(session.get("@id") or session.get("identifier") or len(sessions))] = session
        self._touched[item_id] = None
        return True

    def forget(self, item_id: str) -> None:
        """The item was deleted: it is no series to join or to map any more."""
        self._series.pop(item_id, None)
        self._sessions.pop(item_id, None)
        self._touched.pop(item_id, None)

    def flush(self, page: Page) -> None:
        """Map each series touched since the last flush, once, into ``page``."""
        for item_id in self._touched:
            ref = self._series[item_id][2] or item_id
            page.add(m.guarded(ref, ref, lambda: self._map(item_id)))  # noqa: B023 (called at once)
        self._touched.clear()

    def _map(self, item_id: str) -> Change | Unmapped:
        data, changed, ref, modified = self._series[item_id]
        joined = list(self._sessions.get(item_id, {}).values())
        candidate = map_opportunity(data, item_id, self.harvested_at, extra_sessions=joined, changed=changed)
        candidate.ref = ref or candidate.ref
        candidate.modified = modified
        return candidate.result()


def _document_page(document: Any, url: str, harvested_at: datetime) -> Page:
    """A JSON-LD document that is not an RPDE page: each event in it, as the source's whole set."""
    things = document.get("@graph", [document]) if isinstance(document, dict) else document
    page = Page([], [], snapshot=True)
    for index, thing in enumerate(things if isinstance(things, list) else []):
        budget.spend(items=1)
        if isinstance(thing, dict) and thing_type(thing) in EVENT_TYPES:
            own = http_url(thing.get("@id")) or http_url(thing.get("url"))
            item_id = m.item_id_for(url, own, index)
            ref = f"{thing_type(thing)} {own or index}"
            page.add(m.guarded(ref, ref, lambda: map_opportunity(thing, item_id, harvested_at).result()))  # noqa: B023
    if not page.changes and not page.unmapped:
        # Not a snapshot: an error document answered with 200 must not remove what we show.
        page.snapshot = False
        page.unmapped.append(
            Unmapped(url, f"{url} holds no RPDE items and no schema.org Event; nothing to follow.")
        )
    return page


def map_opportunity(
    data: Mapping[str, Any],
    item_id: str,
    harvested_at: datetime,
    *,
    extra_sessions: list[dict[str, Any]] | None = None,
    changed: datetime | None = None,
    default_category: str = "sport",
) -> m.Candidate:
    """Our activity for an OpenActive / schema.org event-like object, with what stops it being shown.

    ``default_category`` is used when neither concepts nor words say: OpenActive publishes
    physical activity only, so "sport" fits it; a plain schema.org Event needs another.
    """
    name = m.text(data.get("name"), m.SHORT_TEXT)
    label = f"{thing_type(data) or 'Event'} '{name or data.get('@id') or item_id}'"
    problems: list[str] = []
    embedded = m.as_list(data.get("subEvent"))
    budget.spend(items=len(embedded))  # a series may carry thousands of sessions of its own
    sessions = [s for s in [*embedded, *(extra_sessions or [])] if isinstance(s, dict)]
    activity: dict[str, Any] = {"id": item_id, "name": name}
    if not name:
        problems.append("it has no name")
    description = m.text(data.get("description"))
    if description:
        activity["description"] = description
    activity["organizer"] = _organizer(data, problems)
    activity["categories"] = _categories(data) or [default_category]
    _place(data, activity, problems)
    schedule = _schedule(data, sessions, problems, harvested_at)
    start = m.as_datetime(data.get("startDate"))
    if schedule:
        activity["type"] = "SessionSeries"
        activity["schedule"] = schedule
    elif start is not None:
        activity["type"] = "Event"
        end = m.as_datetime(data.get("endDate")) or _plus_duration(start, data.get("duration"))
        activity["startDate"] = m.stamp(start)
        if end is None:
            problems.append("it has a start but neither an end nor a duration")
        else:
            activity["endDate"] = m.stamp(end)
    elif not problems:
        problems.append("it has no eventSchedule, sessions or startDate, so we cannot say when it happens")
    activity["price"] = _price(data, problems)
    ages = data.get("ageRange")
    if isinstance(ages, dict):
        age_range = {
            key: int(ages[field])
            for key, field in (("min", "minValue"), ("max", "maxValue"))
            if isinstance(ages.get(field), int | float) and 0 <= ages[field] <= 120
        }
        if age_range:
            activity["ageRange"] = age_range
    audiences = {"https://openactive.io/FemaleOnly": ["women"], "https://openactive.io/MaleOnly": ["men"]}
    if data.get("genderRestriction") in audiences:
        activity["audiences"] = audiences[data["genderRestriction"]]
    capacity = _capacity(data, sessions, harvested_at)
    if capacity:
        activity["capacity"] = capacity
    activity["booking"] = _booking(data)
    contact = _contact(data)
    if contact:
        activity["contact"] = contact
    if data.get("meetingPoint"):
        activity["firstVisit"] = m.text(f"Meeting point: {m.text(data['meetingPoint'])}")
    status = str(data.get("eventStatus", "")).rsplit("/", 1)[-1]
    if status in ("EventCancelled", "EventPostponed"):
        activity["status"] = "cancelled" if status == "EventCancelled" else "paused"
    own_id = http_url(data.get("@id") or data.get("id"))
    if own_id and own_id != item_id:
        activity["sameAs"] = [own_id]
    source_changed = m.as_datetime(data.get("dateModified")) or changed
    activity.update(m.freshness(source_changed, harvested_at))
    activity["dateModified"] = m.modified(source_changed, harvested_at)
    return m.Candidate(item_id, label, activity, problems)


def _organizer(data: Mapping[str, Any], problems: list[str]) -> dict[str, str]:
    source = next((o for o in m.as_list(data.get("organizer")) if isinstance(o, dict)), None)
    source = source or (data.get("programme") if isinstance(data.get("programme"), dict) else None)
    if source is None or not m.text(source.get("name"), m.SHORT_TEXT):
        given = [s for s in m.as_list(data.get("organizer")) if isinstance(s, str)]
        if given:
            return {"name": m.text(given[0], m.SHORT_TEXT)}
        problems.append("it names no organizer")
        return {"name": ""}
    organizer = {"name": m.text(source.get("name"), m.SHORT_TEXT)}
    website = http_url(source.get("url"))
    if website:
        organizer["url"] = website
    if isinstance(source.get("email"), str) and "@" in source["email"]:
        organizer["email"] = source["email"].strip()
    phone = m.telephone(source.get("telephone"))
    if phone:
        organizer["telephone"] = phone
    return organizer


def _categories(data: Mapping[str, Any]) -> list[str]:
    """From the activity concepts, then the publisher's own category words, then the name."""
    concepts = [c for c in m.as_list(data.get("activity")) if isinstance(c, dict)]
    labels = [c.get("prefLabel") for c in concepts] + [
        c for c in m.as_list(data.get("activity")) if isinstance(c, str)
    ]
    uris = [str(c.get("@id") or c.get("id")) for c in concepts if c.get("@id") or c.get("id")]
    return (
        m.categories_for(labels, uris)
        or m.categories_for(m.as_list(data.get("category")))
        or m.categories_for([data.get("name")])
    )


def _place(data: Mapping[str, Any], activity: dict[str, Any], problems: list[str]) -> None:
    place = data.get("location")
    if isinstance(place, dict) and thing_type(place) == "VirtualLocation":
        online = http_url(place.get("url"))
        if online:
            activity["attendanceMode"], activity["onlineUrl"] = "online", online
            return
    if not isinstance(place, dict):
        problems.append("it has no location")
        return
    address = place.get("address")
    if isinstance(address, dict):
        raw = str(address.get("postalCode") or "")
        postcode = m.postcode(raw)
        street, locality, region = (
            address.get("streetAddress"),
            address.get("addressLocality") or address.get("addressRegion"),
            address.get("addressRegion"),
        )
    else:
        raw, postcode = str(address or ""), m.find_postcode(address)
        street, locality, region = str(address or "").split(",")[0], "", None
    name = m.text(place.get("name"), m.SHORT_TEXT) or m.text(street, m.SHORT_TEXT)
    if postcode is None:
        where = f"'{name}'" if name else "given"
        problems.append(f"its location {where} has no UK postcode" + (f" (it says '{raw}')" if raw else ""))
        return
    where_it_is = m.address(street, locality, postcode, region)
    location: dict[str, Any] = {"name": name or postcode, "address": where_it_is}
    point = m.as_object(place.get("geo"))
    found = m.geo(point.get("latitude"), point.get("longitude"))
    if found:
        location["geo"] = found
    access = _access(data, place)
    if access:
        location["accessibility"] = access
    activity["location"] = location


def _access(data: Mapping[str, Any], place: Mapping[str, Any]) -> list[str]:
    words = {
        "wheelchair": "wheelchair-accessible",
        "step-free": "step-free",
        "step free": "step-free",
        "hearing loop": "hearing-loop",
        "induction loop": "hearing-loop",
        "dementia": "dementia-friendly",
        "sign language": "bsl",
        "bsl": "bsl",
    }
    labels = " ".join(
        str(c.get("prefLabel", ""))
        for c in m.as_list(data.get("accessibilitySupport"))
        if isinstance(c, dict)
    ).lower()
    found = [feature for word, feature in words.items() if word in labels]
    for amenity in m.as_list(place.get("amenityFeature")):
        if isinstance(amenity, dict) and amenity.get("value") is True and thing_type(amenity) == "Parking":
            found.append("parking")
    return list(dict.fromkeys(found))


def _schedule(
    data: Mapping[str, Any], sessions: list[dict[str, Any]], problems: list[str], harvested_at: datetime
) -> list[dict[str, Any]]:
    """Our schedule from ``eventSchedule``; failing that, from the sessions when they keep one pattern."""
    entries = []
    cancelled = _cancelled_dates(sessions)
    for rule in m.as_list(data.get("eventSchedule")):
        if not isinstance(rule, dict):
            continue
        entry = _schedule_entry(rule, sessions, problems, harvested_at)
        if entry is not None:
            missed = sorted({*entry.get("exceptDates", ()), *cancelled})
            if missed:
                entry["exceptDates"] = missed
            entries.append(entry)
    if not entries and not data.get("eventSchedule") and thing_type(data) in _SERIES_TYPES and sessions:
        entry = _pattern_of(sessions)
        if entry is None:
            problems.append("its sessions keep no weekly pattern and it has no eventSchedule")
        else:
            entries.append(entry)
    return entries


def _schedule_entry(
    rule: Mapping[str, Any], sessions: list[dict[str, Any]], problems: list[str], harvested_at: datetime
) -> dict | None:
    refused = _repeat_problem(rule.get("repeatFrequency"))
    if refused:
        problems.append(
            f"its schedule (every {m.text(rule.get('repeatFrequency'), 40)}) cannot be shown: {refused}"
        )
        return None
    frequency = _FREQUENCIES.get(str(rule.get("repeatFrequency", "")).upper())
    days = [day_code(day) for day in m.as_list(rule.get("byDay"))]
    start_time = m.clock(rule.get("startTime"))
    end_time = m.clock(rule.get("endTime")) or _clock_plus(start_time, rule.get("duration"))
    if frequency is None or not days or None in days or start_time is None or end_time is None:
        problems.append(
            f"its schedule (every {rule.get('repeatFrequency') or '?'}, "
            f"on {m.as_list(rule.get('byDay')) or '?'}, from {rule.get('startTime') or '?'}) is not one we "
            "can show: we need weekly, fortnightly or monthly repeats on named days with a start time "
            "and an end time or duration"
        )
        return None
    entry: dict[str, Any] = {
        "repeatFrequency": frequency,
        "byDay": list(dict.fromkeys(days)),
        "startTime": start_time,
        "endTime": end_time,
    }
    if frequency == "P1M":
        week = rule.get("byMonthWeek")
        if week not in (1, 2, 3, 4, -1):
            problems.append("its monthly schedule does not say which week of the month (byMonthWeek)")
            return None
        entry["byMonthWeek"] = week
    zone = rule.get("scheduleTimezone") or "Europe/London"
    first_session = min(
        (start for s in sessions if (start := m.as_datetime(s.get("startDate")))),
        default=None,
    )
    starts = m.as_date(rule.get("startDate")) or (
        first_session.astimezone(ZoneInfo(zone)).date() if first_session else None
    )
    if starts is None:
        problems.append("its schedule has no startDate and no sessions to date it from")
        return None
    too_far = start_problem(starts, harvested_at.date())
    if too_far:
        problems.append(f"its schedule {too_far}")
        return None
    entry["startDate"] = starts.isoformat()
    ends = m.as_date(rule.get("endDate"))
    count = rule.get("repeatCount")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(
                f"its schedule's repeatCount {m.text(repr(count), 40)} is not a whole number of 1 or more"
            )
            return None
        last = nth_session_date(entry, count)  # None: so many it runs on
        ends = min(ends, last) if ends and last else ends or last
    if ends and not runs_on(ends, starts):
        entry["endDate"] = ends.isoformat()
    excepted = sorted({d.isoformat() for d in (m.as_date(x) for x in m.as_list(rule.get("exceptDate"))) if d})
    if excepted:
        entry["exceptDates"] = excepted
    entry["timezone"] = zone
    return entry


def _pattern_of(sessions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A weekly entry reproducing the sessions exactly (missing weeks become exceptDates), or None."""
    times = []
    for session in sessions:
        start, end = m.as_datetime(session.get("startDate")), m.as_datetime(session.get("endDate"))
        if start is None or end is None:
            return None
        times.append((start.astimezone(LOCAL_ZONE), end.astimezone(LOCAL_ZONE)))
    clocks = {(s.strftime("%H:%M"), e.strftime("%H:%M")) for s, e in times}
    if len(clocks) != 1:
        return None
    ((start_time, end_time),) = clocks
    dates = sorted({s.date() for s, _ in times})
    if (dates[-1] - dates[0]).days > _MOSTLY_MISSING * len(dates):
        return None  # sessions years apart: mostly gaps, no weekly pattern (and no walk through the years)
    weekdays = sorted({d.weekday() for d in dates})
    expected, day = [], dates[0]
    while day <= dates[-1]:
        if day.weekday() in weekdays:
            expected.append(day)
        day += timedelta(days=1)
    entry = {
        "repeatFrequency": "P1W",
        "byDay": [list(DAYS)[d] for d in weekdays],
        "startTime": start_time,
        "endTime": end_time,
        "startDate": dates[0].isoformat(),
        "endDate": dates[-1].isoformat(),
        "timezone": "Europe/London",
    }
    held = set(dates)
    missing = [d.isoformat() for d in expected if d not in held]
    if missing:
        entry["exceptDates"] = missing
    return entry


def _cancelled_dates(sessions: list[dict[str, Any]]) -> list[str]:
    found = []
    for session in sessions:
        start = m.as_datetime(session.get("startDate"))
        if start and str(session.get("eventStatus", "")).endswith("EventCancelled"):
            found.append(start.astimezone(LOCAL_ZONE).date().isoformat())
    return found


def _capacity(data: Mapping[str, Any], sessions: list[dict[str, Any]], harvested_at: datetime) -> dict | None:
    """Spaces at the next session still to come (or at the event itself)."""
    upcoming = [
        (start, session)
        for session in sessions
        if (start := m.as_datetime(session.get("startDate"))) and start > harvested_at
    ]
    # By start alone: two sessions at the same time must not be compared as dicts.
    soonest = min(upcoming, key=lambda pair: pair[0])[1] if upcoming else None
    source = soonest if sessions else data
    if source is None or not isinstance(source.get("remainingAttendeeCapacity"), int):
        return None
    remaining = max(0, source["remainingAttendeeCapacity"])
    capacity: dict[str, Any] = {
        "status": "full" if remaining == 0 else "spaces",
        "updatedAt": m.stamp(harvested_at),
    }
    if remaining:
        capacity["remaining"] = remaining
    return capacity


def _price(data: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    offers = [
        o
        for o in m.as_list(data.get("offers"))
        if isinstance(o, dict) and isinstance(o.get("price"), int | float)
    ]
    if data.get("isAccessibleForFree") is True or (offers and all(o["price"] == 0 for o in offers)):
        return {"isFree": True}
    foreign = {str(o.get("priceCurrency")) for o in offers if o.get("priceCurrency") not in (None, "GBP")}
    if foreign:
        problems.append(f"its prices are in {', '.join(sorted(foreign))}, not pounds (GBP)")
        return {"isFree": False}
    if not offers:
        return dict(m.PRICE_NOT_GIVEN)
    cheapest = min(o["price"] for o in offers)
    price: dict[str, Any] = {"amount": cheapest, "currency": "GBP"}
    if len(offers) > 1:
        price["notes"] = m.text(
            "; ".join(f"{m.text(o.get('name')) or 'Price'} £{o['price']:.2f}" for o in offers), m.SHORT_TEXT
        )
    return price


def _booking(data: Mapping[str, Any]) -> dict[str, str]:
    link = next(
        (
            http_url(o.get("url"))
            for o in m.as_list(data.get("offers"))
            if isinstance(o, dict) and http_url(o.get("url"))
        ),
        None,
    ) or http_url(data.get("url"))
    return {"method": "book-ahead", "url": link} if link else {"method": "drop-in"}


def _contact(data: Mapping[str, Any]) -> dict[str, str]:
    organizer = next((o for o in m.as_list(data.get("organizer")) if isinstance(o, dict)), {})
    place = m.as_object(data.get("location"))
    contact = {}
    email = organizer.get("email")
    if isinstance(email, str) and "@" in email:
        contact["email"] = email.strip()
    phone = m.telephone(organizer.get("telephone")) or m.telephone(place.get("telephone"))
    if phone:
        contact["telephone"] = phone
    return contact


def thing_type(thing: Any) -> str:
    """The schema.org type of a JSON-LD object, without prefix: ``schema:Event`` → ``Event``."""
    kind = thing.get("@type") or thing.get("type") if isinstance(thing, dict) else None
    kind = kind[0] if isinstance(kind, list) and kind else kind
    return str(kind).rsplit(":", 1)[-1].rsplit("/", 1)[-1] if kind else ""


def _ref_of(thing: Any) -> str:
    if isinstance(thing, dict):
        return str(thing.get("@id") or thing.get("id") or thing.get("url") or "")
    return str(thing or "")


def _duration(value: Any) -> timedelta | None:
    match = _DURATION.match(str(value or ""))
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _plus_duration(start: datetime, duration: Any) -> datetime | None:
    length = _duration(duration)
    return start + length if length else None


def _clock_plus(start_time: str | None, duration: Any) -> str | None:
    length = _duration(duration)
    if start_time is None or length is None:
        return None
    end = datetime.combine(date(2000, 1, 1), datetime.strptime(start_time, "%H:%M").time()) + length
    return end.strftime("%H:%M") if end.date() == date(2000, 1, 1) else None


def _repeat_problem(value: Any) -> str | None:
    """Why an ISO 8601 repeatFrequency is refused (more often than daily, or a zero length), or None.

    Frequencies we do not recognise at all are left to the schedule's own message.
    """
    found = _REPEAT.match(str(value or "").strip().upper())
    if not found or not any(found.groups()):
        return None
    parts = {unit: float(amount) for unit, amount in found.groupdict().items() if amount is not None}
    if {"Y", "MO"} & parts.keys() and not {"W", "D", "H", "MI", "S"} & parts.keys():
        return repeat_problem(
            "YEARLY" if "Y" in parts else "MONTHLY", int(parts.get("Y") or parts.get("MO") or 0)
        )
    length = timedelta(
        weeks=parts.get("W", 0),
        days=parts.get("D", 0),
        hours=parts.get("H", 0),
        minutes=parts.get("MI", 0),
        seconds=parts.get("S", 0),
    )
    if timedelta(0) < length < timedelta(days=1):
        finest = (
            "HOURLY"
            if length >= timedelta(hours=1)
            else "MINUTELY"
            if length >= timedelta(minutes=1)
            else "SECONDLY"
        )
        return repeat_problem(finest, 1)
    days = length / timedelta(days=1)
    return repeat_problem("DAILY", int(days) if days.is_integer() else days)


def _marker(value: Any) -> int | str | None:
    """An RPDE item's ``modified`` as the change marker it is (a number or a string), else None."""
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _epoch(value: Any) -> datetime | None:
    """An RPDE ``modified`` that is a Unix time, as a datetime; None for a change number."""
    if isinstance(value, int) and _EPOCH_RANGE[0] <= value <= _EPOCH_RANGE[1]:
        return datetime.fromtimestamp(value, UTC)
    return None


def _same_site(link: str, feed_url: str) -> bool:
    return (
        urlsplit(link).hostname == urlsplit(feed_url).hostname
        and urlsplit(link).port == urlsplit(feed_url).port
    )
