"""Open Referral UK / HSDS 3.0 service directories: ``/services`` pages and ``/services/{id}``.

Councils publish their directories of local services through the Open Referral API. The
list gives one-to-one fields only, so each service is read in full from its own URL,
which is also the id we give it: it is the source's own address for the service and
stays the same across harvests.

A directory has no change feed with deletions, so the adapter reads it whole at least
once a day and hands the harvest a snapshot (services that vanished are dropped). In
between it asks only for services modified since the last harvest with
``modified_after``; a server that ignores the parameter costs list pages but no detail
requests, because each summary's ``last_modified`` is checked too.

A directory is a stranger's server: its list may never end, repeat itself, or say
``total_pages`` in words. The list is read while the harvest's budget lasts and until a
page brings nothing new; when the budget runs out, what was read is handed over with a
cursor that resumes the list where it stopped, and the harvest records why it stopped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from aggregator import budget
from aggregator.adapters import mapping as m
from aggregator.adapters.base import Change, Fetch, Page, SourceGone, Unmapped
from federation.clock import utcnow
from schema.schedule import (
    AT_MOST_DAILY,
    FINER_THAN_DAILY,
    nth_session_date,
    repeat_problem,
    runs_on,
    start_problem,
)
from schema.text import http_url

KIND = "oruk"

PER_PAGE = 100
FULL_HARVEST_EVERY = timedelta(days=1)
_MAX_PAGES = 10_000
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_BYDAY = re.compile(r"^([+-]?\d)?(MO|TU|WE|TH|FR|SA|SU)$")
_ENDED = {"inactive", "defunct"}
_ACCESS_WORDS = (
    ("hearing-loop", r"induction loop|hearing loop"),
    ("wheelchair-accessible", r"wheelchair"),
    ("step-free", r"step[- ]free|level access|\bramp|\blift\b"),
    ("accessible-toilet", r"accessible (?:toilet|wc)|disabled toilet"),
    ("parking", r"\bparking|car park"),
    ("changing-places", r"changing places"),
)


def sniff(content_type: str, body: bytes) -> bool:
    """An Open Referral paging envelope (``total_pages`` and ``contents``)."""
    if content_type and "json" not in content_type:
        return False
    head = body[:65536].lstrip()
    return head.startswith(b"{") and b'"contents"' in head and b'"total_pages"' in head


def pages(fetch: Fetch, url: str, cursor: str | None, *, now: datetime | None = None) -> Iterator[Page]:
    """One page: every service (re)read since ``cursor``, a snapshot when the whole list was read.

    ``cursor`` is JSON ``{"since": when this harvest started, "full_at": the last whole read}``,
    with ``"resume"`` while a read of the list stopped by the budget is under way.
    """
    harvested_at = now or utcnow()
    state = _cursor(cursor)
    full_at = m.as_datetime(state.get("full_at"))
    resume = m.as_object(state.get("resume"))
    listing = _Listing.resumed(resume) if resume else _Listing.fresh(harvested_at, full_at, state)
    services_url = m.feed_base(url).rstrip("/")
    # Only a read of the whole list in one harvest is the whole set.
    page = Page([], [], snapshot=listing.full and not resume)
    try:
        for summary in _summaries(fetch, services_url, listing, page):
            _read_service(fetch, services_url, summary, listing, harvested_at, page)
            listing.done += 1
    except budget.BudgetSpent:
        # Hand over what was read, to resume from there next time; the harvest says why it stopped.
        page.snapshot = False
        page.cursor = json.dumps({**_finished(state, full_at), "resume": listing.state()}, sort_keys=True)
        yield page
        raise
    whole_read_at = listing.started if listing.full or full_at is None else full_at
    page.cursor = json.dumps(
        {"since": m.stamp(listing.started), "full_at": m.stamp(whole_read_at)}, sort_keys=True
    )
    yield page


class _Listing:
    """One read of the service list: which services it asks for, and how far it has got."""

    def __init__(self, started: datetime, full: bool, since: datetime | None, number: int = 1, done: int = 0):
        self.started, self.full, self.since = started, full, since
        self.number = number  # the list page being read
        self.done = done  # its services already read
        self.seen: set[str] = set()

    @classmethod
    def fresh(cls, harvested_at: datetime, full_at: datetime | None, state: dict[str, Any]) -> _Listing:
        full = full_at is None or harvested_at - full_at >= FULL_HARVEST_EVERY
        return cls(harvested_at, full, None if full else m.as_datetime(state.get("since")))

    @classmethod
    def resumed(cls, resume: dict[str, Any]) -> _Listing:
        number, done = resume.get("page"), resume.get("done")
        return cls(
            m.as_datetime(resume.get("started")) or utcnow(),
            resume.get("full") is True,
            m.as_datetime(resume.get("since")),
            number if isinstance(number, int) and 1 <= number <= _MAX_PAGES else 1,
            done if isinstance(done, int) and done >= 0 else 0,
        )

    def state(self) -> dict[str, Any]:
        return {
            "started": m.stamp(self.started),
            "full": self.full,
            "since": m.stamp(self.since) if self.since else None,
            "page": self.number,
            "done": self.done,
        }


def _finished(state: dict[str, Any], full_at: datetime | None) -> dict[str, Any]:
    """The cursor of the last finished read, as it was."""
    return {"since": state.get("since"), "full_at": m.stamp(full_at) if full_at else None}


def _read_service(
    fetch: Fetch,
    services_url: str,
    summary: dict[str, Any],
    listing: _Listing,
    harvested_at: datetime,
    page: Page,
) -> None:
    """Add one listed service to ``page``: read in full, withdrawn, or the reason it is not shown."""
    service_id = str(summary["id"])
    ref = f"service {service_id}"
    changed = m.as_datetime(summary.get("last_modified"))
    if listing.since is not None and changed is not None and changed < listing.since:
        return
    item_id = f"{services_url}/{quote(service_id, safe='')}"
    try:
        fetched = fetch(item_id)
    except SourceGone:  # listed a moment ago, gone now: the service was withdrawn
        page.changes.append(Change(item_id, None, ref=ref))
        return
    detail = _json(fetched) if fetched is not None else summary
    if not isinstance(detail, dict):
        page.unmapped.append(Unmapped(ref, f"{item_id} did not answer with a service as JSON."))
        return
    if str(detail.get("status", "active")).lower() in _ENDED:
        page.changes.append(Change(item_id, None, ref=ref))
        return
    page.add(
        m.guarded(ref, f"Service {service_id}", lambda: map_service(detail, item_id, harvested_at).result())
    )


def _summaries(fetch: Fetch, services_url: str, listing: _Listing, page: Page) -> Iterator[dict[str, Any]]:
    """The service summaries of every list page, stopping at the last (whatever ``total_pages`` claims).

    Also stops, with a reason, at a page that brings no service not already listed: a server
    that answers every page with the same one, or with a next page forever.
    """
    while listing.number <= _MAX_PAGES:
        query: dict[str, int | str] = {"page": listing.number, "per_page": PER_PAGE}
        if listing.since is not None:
            query["modified_after"] = m.stamp(listing.since)
        list_url = f"{services_url}?{urlencode(query)}"
        fetched = fetch(list_url)
        if fetched is None:
            return
        envelope = _json(fetched)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("contents"), list):
            page.unmapped.append(
                Unmapped(
                    list_url,
                    (
                        f"{list_url} is not an Open Referral page (a JSON object with 'contents'); "
                        "check that the source URL is the directory's /services endpoint."
                    ),
                )
            )
            page.snapshot = False  # a broken read is not the whole set: keep what we have
            return
        new = 0
        for index, summary in enumerate(envelope["contents"]):
            budget.spend(items=1)
            service_id = summary.get("id") if isinstance(summary, dict) else None
            if isinstance(service_id, bool) or not isinstance(service_id, str | int) or service_id == "":
                if service_id is not None:
                    page.unmapped.append(_bad_id(list_url, index, service_id))
                continue
            if str(service_id) in listing.seen:
                continue
            listing.seen.add(str(service_id))
            new += 1
            if index >= listing.done:  # those before were read before the budget stopped the last harvest
                yield summary
        total = envelope.get("total_pages")
        last_number = total if isinstance(total, int) and not isinstance(total, bool) else None
        if total is not None and last_number is None:
            page.unmapped.append(_bad_total(list_url, total))
        if not envelope["contents"] or envelope.get("last_page") is True:
            return
        if last_number is not None and listing.number >= last_number:
            return
        if new == 0:
            page.unmapped.append(
                Unmapped(
                    list_url,
                    f"{list_url} lists no service that the pages before it did not; the list was read up to "
                    "there. Ask the directory's publisher to end the list (an empty page, last_page or "
                    "total_pages).",
                )
            )
            page.snapshot = False  # the list did not end as a list should: keep what we have
            return
        listing.number, listing.done = listing.number + 1, 0
    page.unmapped.append(
        Unmapped(services_url, f"{services_url} lists more than {_MAX_PAGES:,} pages; read up to there.")
    )
    page.snapshot = False


def _bad_id(list_url: str, index: int, value: Any) -> Unmapped:
    return Unmapped(
        f"{list_url} item {index + 1}",
        f"Item {index + 1} of {list_url} has an id that is {type(value).__name__}, not text; "
        "ask the directory's publisher to give every service a text id.",
    )


def _bad_total(list_url: str, value: Any) -> Unmapped:
    return Unmapped(
        list_url,
        f"{list_url} gives total_pages as {m.text(repr(value), 40)}, not a whole number; we read on until a "
        "page is empty or repeats. Ask the directory's publisher to give it as a number.",
    )


def map_service(service: Mapping[str, Any], item_id: str, harvested_at: datetime) -> m.Candidate:
    """Our activity for one fully nested HSDS service, with what stops it being shown."""
    name = m.text(service.get("name"), m.SHORT_TEXT)
    label = f"Service '{name or service.get('id')}'"
    problems: list[str] = []
    at_locations = [s for s in service.get("service_at_locations") or [] if isinstance(s, dict)]
    activity: dict[str, Any] = {"id": item_id, "type": "SessionSeries", "name": name}
    if not name:
        problems.append("it has no name")
    description = m.text(service.get("description"))
    if description:
        activity["description"] = description
    organization = m.as_object(service.get("organization"))
    activity["organizer"] = _organizer(organization, problems)
    terms = [
        (attribute.get("taxonomy_term") or {}).get("name")
        for attribute in service.get("attributes") or []
        if isinstance(attribute, dict)
    ]
    activity["categories"] = m.categories_for(terms) or m.categories_for([name, description]) or ["advice"]
    _location(at_locations, activity, problems)
    schedules = _schedules(service, at_locations, harvested_at, problems)
    if schedules:
        activity["schedule"] = schedules
    activity["price"] = _price(service, problems)
    ages = {
        key: int(service[field])
        for key, field in (("min", "minimum_age"), ("max", "maximum_age"))
        if isinstance(service.get(field), int | float) and 0 <= service[field] <= 120
    }
    if ages:
        activity["ageRange"] = ages
    activity["booking"] = _booking(service)
    contact = _contact(service, at_locations)
    if contact:
        activity["contact"] = contact
    languages = [
        lang["code"]
        for lang in service.get("languages") or []
        if isinstance(lang, dict)
        and re.match(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", str(lang.get("code", "")))
    ]
    if languages:
        activity["languages"] = list(dict.fromkeys(languages))
    if str(service.get("status", "")).lower() == "temporarily closed":
        activity["status"] = "paused"
    activity.update(m.freshness(service.get("assured_date"), harvested_at))
    activity["dateModified"] = m.modified(service.get("last_modified"), harvested_at)
    return m.Candidate(item_id, label, activity, problems, ref=f"service {service.get('id')}")


def _organizer(organization: Mapping[str, Any], problems: list[str]) -> dict[str, str]:
    name = m.text(organization.get("name"), m.SHORT_TEXT)
    if not name:
        problems.append("it names no organization")
    organizer = {"name": name}
    website = http_url(organization.get("website"))
    if website:
        organizer["url"] = website
    if "@" in str(organization.get("email") or ""):
        organizer["email"] = organization["email"].strip()
    return organizer


def _location(at_locations: list[dict[str, Any]], activity: dict[str, Any], problems: list[str]) -> None:
    """The first physical location with a UK postcode; else say what is wrong with each one."""
    faults = []
    for at_location in at_locations:
        place = m.as_object(at_location.get("location"))
        name = m.text(place.get("name"), m.SHORT_TEXT)
        if place.get("location_type") == "virtual":
            online = http_url(place.get("url"))
            if online:
                activity["attendanceMode"], activity["onlineUrl"] = "online", online
                return
            continue
        addresses = [a for a in place.get("addresses") or [] if isinstance(a, dict)]
        usable = next(((a, code) for a in addresses if (code := m.postcode(a.get("postal_code")))), None)
        point = m.geo(place.get("latitude"), place.get("longitude"))
        if usable is not None:
            address, postcode = usable
            street = ", ".join(p for p in (address.get("address_1"), address.get("address_2")) if p)
            location: dict[str, Any] = {
                "name": name or m.text(street, m.SHORT_TEXT),
                "address": m.address(
                    street, address.get("city") or address.get("region") or "", postcode,
                    address.get("state_province") or address.get("region"),
                ),
            }
            if point:
                location["geo"] = point
            access = _access(place)
            if access:
                location["accessibility"] = access
            activity["location"] = location
            return
        wrong = [
            f"postcode '{a['postal_code']}' is not a UK postcode" for a in addresses if a.get("postal_code")
        ]
        wrong = wrong or ["has no address with a postcode"]
        if place.get("latitude") is not None and point is None:
            for axis, limit in (("latitude", 90), ("longitude", 180)):
                value = place.get(axis)
                if not isinstance(value, int | float) or abs(value) > limit:
                    wrong.append(f"{axis} {value} is out of range")
        faults.append(f"location '{name or place.get('id')}' {' and '.join(wrong)}")
    if faults:
        problems.append("; ".join(faults) + "; no location we can show")
    else:
        problems.append("it has no location; no location we can show")


def _access(place: Mapping[str, Any]) -> list[str]:
    words = " ".join(
        f"{a.get('description') or ''} {a.get('details') or ''} {a.get('accessibility') or ''}"
        for a in place.get("accessibility") or []
        if isinstance(a, dict)
    )
    return [feature for feature, pattern in _ACCESS_WORDS if re.search(pattern, words, re.IGNORECASE)]


def _schedules(
    service: Mapping[str, Any],
    at_locations: list[dict[str, Any]],
    harvested_at: datetime,
    problems: list[str],
) -> list[dict[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    sources = [service.get("schedules")]
    for at_location in at_locations:
        sources.append(at_location.get("schedules"))
        if isinstance(at_location.get("location"), dict):
            sources.append(at_location["location"].get("schedules"))
    for rules in sources:
        for rule in rules or []:
            if isinstance(rule, dict):
                found.setdefault(str(rule.get("id") or len(found)), rule)
    entries = [
        entry
        for rule in found.values()
        if (entry := _schedule_entry(rule, harvested_at, problems)) is not None
    ]
    if not found:
        problems.append("it has no schedule (opening times), so we cannot say when to go")
    elif entries and all(e.get("endDate", "9999") < harvested_at.date().isoformat() for e in entries):
        problems.append(f"its schedule ended on {max(e['endDate'] for e in entries)}")
    # One pattern may be given at service, service-at-location and location level alike.
    return list({json.dumps(e, sort_keys=True): e for e in entries}.values())


def _schedule_entry(
    rule: Mapping[str, Any], harvested_at: datetime, problems: list[str]
) -> dict[str, Any] | None:
    """Our entry for one HSDS schedule (RFC 5545 RRULE parts), or None with a problem added."""
    frequency, interval = str(rule.get("freq") or "").upper(), rule.get("interval", 1)
    interval = 1 if interval is None else interval
    # A frequency we do not know at all is left to the message below, which says what we show.
    known = frequency in (*FINER_THAN_DAILY, *AT_MOST_DAILY)
    refused = repeat_problem(frequency, interval) if known else None
    if refused:
        shown = f"{m.text(frequency, 20)}, interval {m.text(repr(interval), 20)}"
        problems.append(f"its schedule ({shown}) cannot be shown: {refused}")
        return None
    parts = [part.strip().upper() for part in str(rule.get("byday") or "").split(",") if part.strip()]
    matched = [_BYDAY.match(part) for part in parts]
    opens, closes = m.clock(rule.get("opens_at")), m.clock(rule.get("closes_at"))
    extra = [name for name in ("bymonthday", "byweekno", "byyearday") if rule.get(name)]
    described = f"schedule ({frequency or 'no freq'}, byday '{rule.get('byday') or ''}'"
    described += f", {', '.join(f'{n} {rule[n]}' for n in extra)})" if extra else ")"
    entry: dict[str, Any] = {}
    if frequency == "WEEKLY" and interval in (1, 2) and parts and all(x and not x.group(1) for x in matched):
        by_day = [x.group(2) for x in matched if x]  # every one matched, as the test above saw
        entry = {"repeatFrequency": "P1W" if interval == 1 else "P2W", "byDay": by_day}
    elif frequency == "MONTHLY" and interval == 1 and len(parts) == 1 and matched[0] and matched[0].group(1):
        week = int(matched[0].group(1))
        if week in (1, 2, 3, 4, -1):
            entry = {"repeatFrequency": "P1M", "byDay": [matched[0].group(2)], "byMonthWeek": week}
    if not entry or extra:
        why = (
            f"it also limits the days by {' and '.join(extra)}, which a weekly pattern cannot say"
            if entry
            else "we show weekly, fortnightly and nth-weekday-of-the-month patterns"
        )
        problems.append(f"its {described} is not one we can show: {why}")
        return None
    if opens is None or closes is None:
        problems.append(f"its {described} has no opening and closing times")
        return None
    starts = m.as_date(rule.get("dtstart")) or m.as_date(rule.get("valid_from")) or harvested_at.date()
    too_far = start_problem(starts, harvested_at.date())
    if too_far:
        problems.append(f"its {described} {too_far}")
        return None
    entry.update({"startTime": opens, "endTime": closes, "startDate": starts.isoformat()})
    count = rule.get("count")
    ends = (
        m.as_date(rule.get("until"))
        or m.as_date(rule.get("valid_to"))
        or (
            nth_session_date(entry, count) if isinstance(count, int) and not isinstance(count, bool) else None
        )
    )
    if ends is not None and not runs_on(ends, starts):
        entry["endDate"] = max(ends, starts).isoformat()
    # HSDS gives ``timezone`` as a bare UTC offset, which cannot follow British Summer Time
    # (and is often wrong, like 3 in the standard's own example): UK directories mean UK time.
    entry["timezone"] = "Europe/London"
    return entry


def _price(service: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    options = [o for o in service.get("cost_options") or [] if isinstance(o, dict)]
    priced = [o for o in options if isinstance(o.get("amount"), int | float)]
    foreign = {
        str(o["currency"]).upper()
        for o in priced
        if o.get("currency") and str(o["currency"]).upper() != "GBP"
    }
    if foreign:
        problems.append(f"its costs are in {', '.join(sorted(foreign))}, not pounds (GBP)")
    if priced and all(o["amount"] == 0 for o in priced):
        return {"isFree": True}
    if priced:
        cheapest = min(priced, key=lambda o: o["amount"])
        price: dict[str, Any] = {"amount": cheapest["amount"], "currency": "GBP"}
        notes = ": ".join(
            m.text(cheapest.get(k)) for k in ("option", "amount_description") if cheapest.get(k)
        )
        if notes:
            price["notes"] = m.text(notes, m.SHORT_TEXT)
        return price
    fees = m.text(service.get("fees_description") or service.get("fees"))
    if not fees:
        return dict(m.PRICE_NOT_GIVEN)
    if re.fullmatch(r"(it is |it's )?(free|free of charge|no charge|none)\.?", fees, re.IGNORECASE):
        return {"isFree": True}
    return {"isFree": False, "notes": m.text(fees, m.SHORT_TEXT)}  # the fees in words are the price


def _booking(service: Mapping[str, Any]) -> dict[str, str]:
    process = str(service.get("application_process") or "").lower()
    if re.search(r"referr|\bgp\b", process):
        method = "referral"
    elif re.search(r"drop[- ]in|just (?:turn|come) (?:up|along)", process):
        method = "drop-in"
    elif re.search(r"\bbook|appointment|regist", process):
        method = "book-ahead"
    else:
        method = "contact-first"
    booking = {"method": method}
    link = http_url(service.get("url"))
    if link:
        booking["url"] = link
    return booking


def _contact(service: Mapping[str, Any], at_locations: list[dict[str, Any]]) -> dict[str, str]:
    people = [c for c in service.get("contacts") or [] if isinstance(c, dict)]
    for at_location in at_locations:
        people += [c for c in at_location.get("contacts") or [] if isinstance(c, dict)]
    person = people[0] if people else {}
    phones = [*(person.get("phones") or []), *(service.get("phones") or [])]
    contact = {}
    if m.text(person.get("name"), m.SHORT_TEXT):
        contact["name"] = m.text(person["name"], m.SHORT_TEXT)
    email = person.get("email") or service.get("email")
    if "@" in str(email or ""):
        contact["email"] = str(email).strip()
    number = next((n for p in phones if isinstance(p, dict) and (n := m.telephone(p.get("number")))), None)
    if number:
        contact["telephone"] = number
    return contact


def _cursor(cursor: str | None) -> dict[str, Any]:
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _json(fetched: Any) -> Any:
    try:
        return fetched.json()
    except ValueError:
        return None
