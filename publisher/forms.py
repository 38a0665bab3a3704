"""The activity form: flat fields a volunteer fills in, mapped to and from the activity JSON.

The editors' web form and the CSV import share these fields (a CSV column is a field
with a friendlier name), so both accept the same spellings ("Tuesday", "2pm",
"6/1/2026", "£3.50") and both point each problem at the field a person typed into.

Reading is forgiving, checking is not: this module only turns what was typed into the
contract's shapes. Whatever it cannot read it keeps as typed, so the contract's
validator still refuses the document, and it adds a problem worded for the form that
takes the place of the validator's at the same path. Everything else is judged by
``schema.validate_activity`` alone.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from typing import Any

from werkzeug.datastructures import MultiDict

from federation.clock import utcnow
from publisher.editing import today as uk_today
from schema import Problem, normalise_postcode, vocab
from schema.price import donation_of, pay_what_you_can
from schema.schedule import DEFAULT_TIMEZONE, LOCAL_ZONE, WEEKDAYS

Fields = dict[str, Any]
"""Field name → text typed (a list of texts for the fields in ``LIST_FIELDS``)."""


FREQUENCIES = {
    "weekly": "Every week",
    "fortnightly": "Every other week",
    "monthly-1": "Once a month, on the first",
    "monthly-2": "Once a month, on the second",
    "monthly-3": "Once a month, on the third",
    "monthly-4": "Once a month, on the fourth",
    "monthly-last": "Once a month, on the last",
    "once": "Just once (a one-off event)",
}
_MONTH_WEEKS = {"monthly-1": 1, "monthly-2": 2, "monthly-3": 3, "monthly-4": 4, "monthly-last": -1}
# Words people use for each frequency, checked in this order ("first week" is monthly, not weekly).
_FREQUENCY_WORDS = [
    ("once", ("once", "one-off", "one off", "single")),
    ("fortnightly", ("other", "fortnight", "two weeks", "2 weeks", "alternate")),
    ("monthly-1", ("first", "1st")),
    ("monthly-2", ("second", "2nd")),
    ("monthly-3", ("third", "3rd")),
    ("monthly-4", ("fourth", "4th")),
    ("monthly-last", ("last",)),
    ("weekly", ("week",)),
]

DAYS = dict(zip(WEEKDAYS, calendar.day_name, strict=True))

BOOKING = {
    "drop-in": "Just turn up",
    "book-ahead": "Book ahead",
    "referral": "Needs a referral (for example from a GP or link worker)",
    "contact-first": "Get in touch first",
}
_BOOKING_WORDS = [
    ("drop-in", ("drop", "turn up", "no need", "just come")),
    ("referral", ("refer",)),
    ("contact-first", ("contact", "get in touch", "call", "phone", "email")),
    ("book-ahead", ("book",)),
]

SPACE = {
    "spaces": "There are spaces",
    "waiting-list": "Full, with a waiting list",
    "full": "Full",
    "unknown": "Not sure",
}
_SPACE_WORDS = [
    ("waiting-list", ("wait",)),
    ("full", ("full",)),
    ("spaces", ("space", "places", "open")),
    ("unknown", ("unknown", "not sure", "don't know")),
]

COST = {"free": "Free", "donation": "Pay what you can (a donation)", "paid": "There is a charge"}
# Repeating patterns an ongoing group can give without a first date: it is listed from today.
# Every other week cannot: which weeks it meets is counted from a date of one of its sessions.
_NO_DATE_NEEDED = ("weekly", *_MONTH_WEEKS)

VOCAB_FIELDS = {"categories": "categories", "audiences": "audiences", "accessibility": "accessibility"}
# ``remove_times`` holds the positions (1, 2...) of further schedule entries ticked for removal:
# the form edits the first entry, and keeps the rest unless told to drop them.
LIST_FIELDS = (*VOCAB_FIELDS, "days", "remove_times")
TEXT_FIELDS = (
    "name", "description", "venue", "street", "town", "postcode", "frequency", "start_time", "end_time",
    "first_date", "last_date", "dates_off", "cost", "amount", "cost_notes", "booking", "booking_link",
    "contact_name", "contact_email", "contact_phone", "first_visit", "space",
)  # fmt: skip

# The form's fields from top to bottom (admin/activity_form.html): the essentials on a phone's
# first screens, then those under "More about this activity". Problems are listed in this order.
ESSENTIAL_FIELDS = (
    "group", "name", "categories", "description", "venue", "street", "town", "postcode", "frequency",
    "days", "start_time", "end_time", "first_date", "remove_times", "cost", "amount", "booking",
    "booking_link", "contact_email", "contact_phone",
)  # fmt: skip
MORE_FIELDS = (
    "audiences", "accessibility", "last_date", "dates_off", "cost_notes", "space", "first_visit",
    "contact_name",
)  # fmt: skip
_FORM_ORDER = {name: position for position, name in enumerate((*ESSENTIAL_FIELDS, *MORE_FIELDS))}

# Where a problem at a JSON path is shown: the first matching prefix wins. A path with
# indexes is matched with them stripped (``$.schedule[0].startTime`` → ``$.schedule.startTime``).
_FIELD_FOR_PATH = [
    ("$.group", "group"),  # not the activity's: the form's choice of the group that runs it
    ("$.name", "name"),
    ("$.description", "description"),
    ("$.categories", "categories"),
    ("$.location.address.streetAddress", "street"),
    ("$.location.address.addressLocality", "town"),
    ("$.location.address.postalCode", "postcode"),
    ("$.location.address", "street"),
    ("$.location.accessibility", "accessibility"),
    ("$.location", "venue"),
    ("$.schedule.byDay", "days"),
    ("$.schedule.startTime", "start_time"),
    ("$.schedule.endTime", "end_time"),
    ("$.schedule.startDate", "first_date"),
    ("$.schedule.endDate", "last_date"),
    ("$.schedule.exceptDates", "dates_off"),
    ("$.schedule", "frequency"),
    ("$.startDate", "first_date"),
    ("$.endDate", "end_time"),
    ("$.price.amount", "amount"),
    ("$.price.isFree", "amount"),  # "not free" without an amount: the amount is what is missing
    ("$.price.notes", "cost_notes"),
    ("$.price", "cost"),
    ("$.audiences", "audiences"),
    ("$.capacity", "space"),
    ("$.booking.url", "booking_link"),
    ("$.booking", "booking"),
    ("$.contact.name", "contact_name"),
    ("$.contact.email", "contact_email"),
    ("$.contact.telephone", "contact_phone"),
    ("$.firstVisit", "first_visit"),
]

# The validator speaks of the JSON document; where that wording would puzzle someone
# filling in the form, these say the same in the form's terms.
_FORM_WORDING = {
    ("cost", "required"): "Say whether it is free or what it costs.",
    ("amount", "required"): "Enter the cost in pounds, like 3.50, or choose Free.",
    ("booking", "required"): "Say how people join: just turn up, book ahead, referral or get in touch first.",
    ("name", "required"): "Enter the name of the activity, like “Mitcham Health Walk”.",
    ("town", "required"): "Enter the town, like Mitcham.",
    ("postcode", "required"): "Enter the postcode, like CR4 1AA.",
    ("start_time", "required"): "Enter the time it starts, like 10:00.",
    ("frequency", "required"): "Say how often it happens, or choose 'Just once'.",
    ("first_date", "required"): "Enter the date it happens, or the date of the first session.",
    ("end_time", "required"): "Enter the time it ends, like 11:30.",
    ("venue", "required"): "Enter where it happens: the name of the place.",
    ("street", "required"): "Enter the street address of the place.",
    ("days", "required"): "Choose the day it happens.",
    ("categories", "required"): "Choose at least one kind of activity.",
}

# A field the form needs filled → where the contract wants what it holds: its problem is filed there.
_REQUIRED_AT = {
    "name": "$.name",
    "categories": "$.categories",
    "venue": "$.location.name",
    "street": "$.location.address.streetAddress",
    "town": "$.location.address.addressLocality",
    "postcode": "$.location.address.postalCode",
    "frequency": "$.schedule",
    "days": "$.schedule[0].byDay",
    "start_time": "$.schedule[0].startTime",
    "end_time": "$.schedule[0].endTime",
    "first_date": "$.schedule[0].startDate",
    "cost": "$.price",
    "amount": "$.price.amount",
    "booking": "$.booking.method",
}
_FORTNIGHTLY_DATE = "For every other week, enter the date of one session, so we know which weeks it meets."


def field_for(problem: Problem) -> str | None:
    """The form field where ``problem`` belongs, or None if the form has no such field."""
    bare = re.sub(r"\[\d+\]", "", problem.path)
    if bare == "$.startDate" and problem.code == "bad-time":
        return "start_time"  # a one-off's start is typed as a date and a time
    for prefix, name in _FIELD_FOR_PATH:
        if bare == prefix or bare.startswith(prefix + ".") or bare.startswith(prefix + "["):
            return name
    return None


def reworded(problem: Problem) -> Problem:
    """``problem`` in the form's words where the validator's would speak of JSON."""
    message = _FORM_WORDING.get((field_for(problem) or "", problem.code))
    return Problem(problem.path, problem.code, message) if message else problem


def merge_problems(read: Iterable[Problem], checked: Iterable[Problem]) -> list[Problem]:
    """Reading problems, then the validator's on other paths (one message per path, form wording)."""
    found = {problem.path: problem for problem in read}
    for problem in checked:
        found.setdefault(problem.path, reworded(problem))
    return list(found.values())


def missing_fields(fields: Mapping[str, Any], doc: Mapping[str, Any]) -> list[Problem]:
    """A problem for each field the activity ``doc`` needs that was left empty, every one at once.

    The contract's validator says "location is missing" once for four empty address fields, so
    filling in the name of the place alone would bring the next three; this names each field.
    """
    frequency = fields.get("frequency", "")
    needed = ["name", "categories", "frequency", "start_time", "end_time", "cost", "booking"]
    if doc.get("attendanceMode") != "online":
        needed += ["venue", "street", "town", "postcode"]
    if frequency != "once" and not fields.get("first_date"):
        needed.append("days")  # a first date says the day
    if frequency not in _NO_DATE_NEEDED:
        needed.append("first_date")
    if fields.get("cost") == "paid" and not fields.get("cost_notes"):
        needed.append("amount")
    problems = []
    for name in sorted(needed, key=_FORM_ORDER.__getitem__):
        if not fields.get(name):
            fortnightly_date = (name, frequency) == ("first_date", "fortnightly")
            message = _FORTNIGHTLY_DATE if fortnightly_date else _FORM_WORDING[(name, "required")]
            problems.append(Problem(_REQUIRED_AT[name], "required", message))
    return problems


def form_problems(
    fields: Mapping[str, Any], doc: Mapping[str, Any], read: Iterable[Problem], checked: Iterable[Problem]
) -> list[Problem]:
    """Every problem the form shows at once, in the form's order of fields.

    What could not be read comes first, then each field left empty (:func:`missing_fields`),
    then the validator's findings ``checked`` for fields not already named, so one submission
    brings every problem and no field is told twice that it is empty.
    """
    read = list(read)
    named = {field_for(problem) for problem in read}
    missing = [problem for problem in missing_fields(fields, doc) if field_for(problem) not in named]
    named |= {field_for(problem) for problem in missing}
    others = [problem for problem in checked if field_for(problem) is None or field_for(problem) not in named]
    return in_form_order(merge_problems([*read, *missing], others))


def in_form_order(problems: Iterable[Problem]) -> list[Problem]:
    """``problems`` in the order of the fields they belong to; those with no field last."""
    return sorted(problems, key=lambda problem: _FORM_ORDER.get(field_for(problem) or "", len(_FORM_ORDER)))


def problems_by_field(problems: Iterable[Problem]) -> dict[str, list[str]]:
    """Messages grouped by the form field they belong to; ``""`` holds those with no field."""
    grouped: dict[str, list[str]] = {}
    for problem in problems:
        grouped.setdefault(field_for(problem) or "", []).append(problem.message)
    return grouped


def read_form(form: MultiDict[str, str]) -> Fields:
    """The activity fields from a submitted form (a werkzeug MultiDict), stripped of spaces."""
    # Browsers send line breaks as CRLF; the feed's plain text uses LF.
    fields: Fields = {name: form.get(name, "").replace("\r\n", "\n").strip() for name in TEXT_FIELDS}
    for name in LIST_FIELDS:
        fields[name] = [value.strip() for value in form.getlist(name) if value.strip()]
    return fields


def blank_fields() -> Fields:
    """The fields of a new activity: everything empty but a weekly pattern.

    Cost and how to join are left unchosen: a choice made for the volunteer ("Just turn up",
    say) is saved without anyone having thought about it.
    """
    fields: Fields = dict.fromkeys(TEXT_FIELDS, "")
    fields.update({name: [] for name in LIST_FIELDS})
    fields.update(frequency="weekly")
    return fields


def fields_from_activity(activity: Mapping[str, Any]) -> Fields:
    """The form as it looks for editing a stored activity."""
    fields = blank_fields()
    location = activity.get("location") or {}
    address = location.get("address") or {}
    price = activity.get("price") or {}
    donation, suggested = donation_of(price)
    contact = activity.get("contact") or {}
    fields.update(
        name=activity.get("name", ""),
        description=activity.get("description", ""),
        categories=list(activity.get("categories") or []),
        audiences=list(activity.get("audiences") or []),
        accessibility=list(location.get("accessibility") or []),
        venue=location.get("name", ""),
        street=address.get("streetAddress", ""),
        town=address.get("addressLocality", ""),
        postcode=address.get("postalCode", ""),
        cost="free" if price.get("isFree") else "donation" if donation else "paid",
        amount=f"{price['amount']:.2f}" if "amount" in price else f"{suggested:.2f}" if suggested else "",
        cost_notes="" if donation else price.get("notes", ""),
        booking=(activity.get("booking") or {}).get("method", ""),
        booking_link=(activity.get("booking") or {}).get("url", ""),
        contact_name=contact.get("name", ""),
        contact_email=contact.get("email", ""),
        contact_phone=contact.get("telephone", ""),
        first_visit=activity.get("firstVisit", ""),
        space=(activity.get("capacity") or {}).get("status", ""),
    )
    if activity.get("type") == "Event":
        start = _local(activity.get("startDate"))
        end = _local(activity.get("endDate"))
        fields.update(
            frequency="once",
            first_date=start.date().isoformat() if start else "",
            start_time=f"{start:%H:%M}" if start else "",
            end_time=f"{end:%H:%M}" if end else "",
        )
    elif activity.get("schedule"):
        entry = activity["schedule"][0]
        frequency = {"P1W": "weekly", "P2W": "fortnightly"}.get(entry.get("repeatFrequency"))
        if frequency is None:
            month_week = entry.get("byMonthWeek")
            frequency = next((key for key, week in _MONTH_WEEKS.items() if week == month_week), "")
        fields.update(
            frequency=frequency,
            days=list(entry.get("byDay") or []),
            start_time=entry.get("startTime", ""),
            end_time=entry.get("endTime", ""),
            first_date=entry.get("startDate", ""),
            last_date=entry.get("endDate", ""),
            dates_off=", ".join(entry.get("exceptDates") or []),
        )
    return fields


def further_times(activity: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The schedule entries after the first, with their positions: the ones the form does not edit.

    An activity can meet at more than one time (made through the API, say); the form edits
    the first and shows these so that an editor sees them and can remove one.
    """
    if activity.get("type") == "Event":
        return []
    return list(enumerate((activity.get("schedule") or [])[1:], start=1))


def activity_from_fields(
    fields: Mapping[str, Any], base: Mapping[str, Any] | None = None, *, today: date | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """The activity the fields describe, and the problems met reading them.

    ``base`` is the stored activity when editing: what the form does not show (map
    position, languages, status, further schedule patterns...) is kept from it. The
    publisher's own fields (``id``, ``dateModified``) are left to ``editing``. Saving
    the form counts as the organiser checking the details, so ``lastVerified`` is today.
    ``today`` (the UK date now, by default) is when a weekly or monthly group given no
    first date is listed from: the contract needs a start, and an ongoing group has one.
    """
    reader = _Reader()
    doc: dict[str, Any] = dict(base or {})
    doc.pop("lastVerified", None)  # saving the form counts as checking it; editing sets today
    _set(doc, "name", fields.get("name", ""))
    _set(doc, "description", fields.get("description", ""))
    doc["categories"] = vocab_ids("categories", fields.get("categories", []))
    _set(doc, "audiences", vocab_ids("audiences", fields.get("audiences", [])))
    _set(doc, "firstVisit", fields.get("first_visit", ""))
    _set(doc, "location", _location(fields, (base or {}).get("location") or {}))

    frequency = reader.frequency(fields.get("frequency", ""))
    for key in ("schedule", "startDate", "endDate"):
        doc.pop(key, None)
    if frequency == "once":
        doc["type"] = "Event"
        day = reader.date(fields.get("first_date", ""), "$.startDate")
        start = reader.time(fields.get("start_time", ""), "$.startDate")
        end = reader.time(fields.get("end_time", ""), "$.endDate")
        if isinstance(day, date) and not start:
            reader.problem("$.startDate", "bad-time", "Enter the time it starts, like 10:00.")
        _set(doc, "startDate", _instant(day, start))
        _set(doc, "endDate", _instant(day, end))
    else:
        doc["type"] = "SessionSeries"
        removed = set(fields.get("remove_times", []))
        others = [entry for position, entry in further_times(base or {}) if str(position) not in removed]
        first = _schedule_entry(reader, frequency, fields, (base or {}).get("schedule"), today or uk_today())
        doc["schedule"] = [first, *others]

    _set(doc, "price", _price(reader, fields))
    booking = {"method": _choice(_BOOKING_WORDS, BOOKING, fields.get("booking", ""))}
    _set(booking, "url", fields.get("booking_link", ""))
    doc["booking"] = {key: value for key, value in booking.items() if value}
    contact = {
        "name": fields.get("contact_name", ""),
        "email": fields.get("contact_email", ""),
        "telephone": fields.get("contact_phone", ""),
    }
    _set(doc, "contact", {key: value for key, value in contact.items() if value})
    _set(doc, "capacity", _capacity(fields.get("space", ""), (base or {}).get("capacity")))
    return doc, reader.problems


def _set(doc: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key``, or remove it when the field was left empty (optional fields are absent, not blank)."""
    if value in ("", [], {}, None):
        doc.pop(key, None)
    else:
        doc[key] = value


def _location(fields: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    typed = fields.get("postcode", "").strip()
    address = {
        "streetAddress": fields.get("street", ""),
        "addressLocality": fields.get("town", ""),
        "postalCode": normalise_postcode(typed) or typed,
    }
    location: dict[str, Any] = {key: value for key, value in base.items() if key == "geo"}
    _set(location, "name", fields.get("venue", ""))
    _set(location, "address", {key: value for key, value in address.items() if value})
    _set(location, "accessibility", vocab_ids("accessibility", fields.get("accessibility", [])))
    if list(location) == ["geo"]:
        return {}
    if location.get("geo") and (base.get("address") or {}).get("postalCode") != address["postalCode"]:
        location.pop("geo")  # the old map position belongs to the old address
    return location


def _schedule_entry(
    reader: _Reader, frequency: str, fields: Mapping[str, Any], base_schedule: list[Any] | None, today: date
) -> dict[str, Any]:
    base_entry = (base_schedule or [{}])[0]
    entry: dict[str, Any] = {}
    if frequency in _MONTH_WEEKS:
        entry.update(repeatFrequency="P1M", byMonthWeek=_MONTH_WEEKS[frequency])
    elif frequency:
        entry["repeatFrequency"] = {"weekly": "P1W", "fortnightly": "P2W"}.get(frequency, frequency)
    first = reader.date(fields.get("first_date", ""), "$.schedule[0].startDate")
    typed_days = fields.get("days", [])
    days = [reader.day(text, f"$.schedule[0].byDay[{index}]") for index, text in enumerate(typed_days)]
    if not days and isinstance(first, date):
        days = [WEEKDAYS[first.weekday()]]  # "every week from Tuesday 6 January" says the day
    if first == "" and frequency in _NO_DATE_NEEDED:
        # An ongoing group: listed from the start it already has (so saving the same again changes
        # nothing), else from today. Not its day, which only a typed date says.
        earlier = base_entry.get("startDate")
        first = earlier if isinstance(earlier, str) and earlier and earlier <= today.isoformat() else today
    _set(entry, "byDay", days)
    _set(entry, "startTime", reader.time(fields.get("start_time", ""), "$.schedule[0].startTime"))
    _set(entry, "endTime", reader.time(fields.get("end_time", ""), "$.schedule[0].endTime"))
    _set(entry, "startDate", _iso(first))
    _set(entry, "endDate", _iso(reader.date(fields.get("last_date", ""), "$.schedule[0].endDate")))
    typed_dates_off = [text for text in re.split(r"[,;\n]+", fields.get("dates_off", "")) if text.strip()]
    dates_off = [
        _iso(reader.date(text, f"$.schedule[0].exceptDates[{index}]"))
        for index, text in enumerate(typed_dates_off)
    ]
    _set(entry, "exceptDates", dates_off)
    entry["timezone"] = base_entry.get("timezone", DEFAULT_TIMEZONE)
    return entry


def _price(reader: _Reader, fields: Mapping[str, Any]) -> dict[str, Any]:
    cost = fields.get("cost", "")
    amount_text = fields.get("amount", "")
    notes = fields.get("cost_notes", "")
    if not cost and not amount_text:
        return {}  # not said: the validator asks whether it is free
    if cost == "free":
        price: dict[str, Any] = {"isFree": True}
    elif cost == "donation":
        return _donation(reader, amount_text, notes)
    elif not amount_text and notes:
        price = {"isFree": False}  # no one amount ("pay what you can"): the notes say how it works
    else:
        price = {"currency": "GBP"}
        _set(price, "amount", reader.amount(amount_text))
    _set(price, "notes", notes)
    return price


def _donation(reader: _Reader, suggested_text: str, notes: str) -> dict[str, Any]:
    """Pay what you can, with the suggested donation typed in the amount field if any."""
    if notes:
        reader.problem(
            "$.price.notes",
            "donation-notes",
            "Leave “About the cost” empty with “Pay what you can”: the listing says pay what you can, and "
            "the suggested donation if you give one. Or choose “There is a charge” to describe it yourself.",
        )
    suggested = reader.amount(suggested_text)
    if isinstance(suggested, float) and not 0 <= suggested <= 10_000:
        message = "Enter a suggested donation in pounds, like 3.00, or leave it empty."
        reader.problem("$.price.amount", "bad-amount", message)
    return pay_what_you_can(suggested if isinstance(suggested, float) and suggested > 0 else None)


def _capacity(status_text: str, base: Mapping[str, Any] | None) -> dict[str, Any]:
    status = _choice(_SPACE_WORDS, SPACE, status_text)
    if not status:
        return {}
    if base and base.get("status") == status:
        return dict(base)
    return {"status": status, "updatedAt": utcnow().isoformat(timespec="seconds")}


def _choice(words: list[tuple[str, tuple[str, ...]]], known: Mapping[str, str], text: str) -> str:
    """The id a person meant by ``text`` (an id, a label or a usual phrase); else ``text`` as typed."""
    lowered = text.strip().lower()
    if lowered in known:
        return lowered
    by_label = {label.lower(): key for key, label in known.items()}
    if lowered in by_label:
        return by_label[lowered]
    return next((key for key, phrases in words if any(p in lowered for p in phrases)), text.strip())


def vocab_ids(kind: str, values: Iterable[str]) -> list[str]:
    """Vocabulary ids from ids or English labels; anything else is kept for the validator to name.

    The CSV import checks its cells with this too, so a sheet and the form read a value alike.
    """
    entries = getattr(vocab, kind)()
    by_label = {entry["label"].lower(): key for key, entry in entries.items()}
    ids: list[str] = []
    for value in values:
        text = value.strip()
        as_id = "-".join(text.lower().split())  # "Lunch club" is the id "lunch-club"
        found = text if text in entries else by_label.get(text.lower(), as_id)
        if found and found not in ids:
            ids.append(found)
    return ids


def _instant(day: date | str, clock: str) -> str:
    """A one-off event's date and time as a date-time with the UK offset of that day.

    Empty unless both were read: the event then lacks a required field, which keeps it unsaved.
    """
    if isinstance(day, date) and re.fullmatch(r"\d\d:\d\d", clock or ""):
        local = datetime.combine(day, time.fromisoformat(clock), LOCAL_ZONE)
        return local.isoformat(timespec="seconds")
    return ""


def _iso(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


def _local(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text).astimezone(LOCAL_ZONE)
    except (TypeError, ValueError):
        return None


_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d.%m.%Y", "%d %B %Y", "%d %b %Y")
_CLOCK = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)?$")


class _Reader:
    """Reads typed dates, times, days and amounts, noting a problem for each it cannot read."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, path: str, code: str, message: str) -> None:
        if all(problem.path != path for problem in self.problems):
            self.problems.append(Problem(path, code, message))

    def date(self, text: str, path: str) -> date | str:
        text = " ".join(text.split())
        if not text:
            return ""
        for pattern in _DATE_FORMATS:
            try:
                return datetime.strptime(text, pattern).date()
            except ValueError:
                continue
        self.problem(path, "bad-date", f"'{text}' is not a date we can read; write it like 6/1/2026.")
        return text

    def time(self, text: str, path: str) -> str:
        match = _CLOCK.match(text.strip().lower())
        if not text.strip():
            return ""
        if match:
            hours, minutes, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
            if half and 1 <= hours <= 12:
                hours = hours % 12 + (12 if half == "pm" else 0)
            if (match.group(2) or half) and hours < 24 and minutes < 60:
                return f"{hours:02d}:{minutes:02d}"
        self.problem(path, "bad-time", f"'{text}' is not a time we can read; write it like 10:00 or 2:30pm.")
        return text

    def day(self, text: str, path: str) -> str:
        lowered = text.strip().lower()
        stem = lowered.rstrip("s")  # "TU", "Tue", "Tues", "Tuesday" and "Tuesdays" all mean Tuesday
        for code, name in DAYS.items():
            if lowered == code.lower() or (len(stem) >= 3 and name.lower().startswith(stem)):
                return code
        self.problem(path, "bad-day", f"'{text}' is not a day of the week; write it like Tuesday.")
        return text

    def frequency(self, text: str) -> str:
        if not text.strip():
            return ""
        found = _choice(_FREQUENCY_WORDS, FREQUENCIES, text)
        if found not in FREQUENCIES:
            self.problem(
                "$.schedule[0].repeatFrequency",
                "bad-frequency",
                f"'{text}' is not a pattern we know; use Every week, Every other week, "
                "First (Second, Third, Fourth or Last) Tuesday of the month, or Once.",
            )
        return found

    def amount(self, text: str) -> float | str:
        cleaned = text.strip().lstrip("£").replace(",", "").strip()
        if not cleaned:
            return ""
        try:
            return float(cleaned)
        except ValueError:
            self.problem(
                "$.price.amount", "bad-amount", f"'{text}' is not an amount of money; write it like 3.50."
            )
            return text
