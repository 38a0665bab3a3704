"""What the adapters for other people's formats share: turning their fields into ours.

OpenActive, iCalendar, Atom/RSS and Open Referral UK each describe an activity their
own way, but the last steps are the same for all of them: clean the text, find a UK
postcode, guess categories from words, mint an id from the source's own id, say how
fresh the information is, and either hand over a valid activity or say exactly why not.
Keeping those steps here means each adapter module holds only its format's quirks.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from aggregator.adapters.base import Change, Unmapped
from aggregator.authority import SourceAuthority
from schema import is_valid_activity, normalise_postcode, validate_activity
from schema.text import FORBIDDEN_CHARACTER
from schema.vocab import categories as category_vocabulary

log = logging.getLogger(__name__)

# What a source's odd data raises deep inside parsing and mapping: a date past year 9999, a
# string where a number goes, JSON nested thousands deep. Caught per item by ``guarded``, so
# one strange item is the source's problem, shown with its name, not a fault of ours.
SOURCE_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError)
_DETAIL_LIMIT = 200
Mapped = TypeVar("Mapped")

# Marks an activity whose ``lastVerified`` is the day we first harvested it, because the source
# gave no date of its own: shown as "not confirmed by the organiser". A namespaced key, so
# the contract's extension rule admits it (see ``freshness`` below).
VERIFIED_BY = "ext:verifiedBy"
VERIFIED_BY_HARVEST = "harvest"

# The contract's postcode pattern, unanchored, to find a postcode inside free text.
POSTCODE_IN_TEXT = re.compile(r"\b([A-Z]{1,2}[0-9][A-Z0-9]? *[0-9][A-Z]{2}|GIR *0AA)\b", re.IGNORECASE)
_TELEPHONE = re.compile(r"^[+(]?[0-9][0-9 ()-]{5,24}$")
_TAG = re.compile(r"<[^>]*>")
_MARKUP_START = re.compile(r"<(?=[A-Za-z/!?])")
_SPACE = re.compile(r"\s+")

SHORT_TEXT = 120
# A source that gives no price: never shown as free (a prescriber would repeat it to a patient).
PRICE_NOT_GIVEN = {"isFree": False, "notes": "Price not given; check with the organiser"}
LONG_TEXT = 2000

# Words that give a category away, tried in order; the first pattern of each category that
# matches a label adds it. Kept short and plain: it reads English feeds' own labels.
_CATEGORY_WORDS: tuple[tuple[str, str], ...] = (
    ("chair-exercise", r"chair[- ]based|seated exercise|chair (?:yoga|exercise)"),
    # "Walking football" and its kin are sports played at a walk, not walks.
    (
        "walking",
        r"\bwalk(?!ing (?:football|netball|rugby|basketball|cricket|hockey|tennis))|\brambl|\bhik(?:e|ing)\b",
    ),
    ("running", r"\brun(?:s|ning|ners?)?\b|\bjog|parkrun|couch to 5k"),
    ("cycling", r"\bcycl|\bbik(?:e|es|ing)\b|\bride\b|\brides\b"),
    ("swimming", r"\bswim|\baqua"),
    ("dance", r"\bdanc|zumba|ballet|salsa|ceilidh"),
    ("yoga-pilates", r"\byoga|pilates|tai chi|qigong"),
    (
        "exercise-class",
        r"fitness|exercise|bodypump|\bpump\b|circuit|\bgym\b|toning|strength|aerobic|hiit|"
        r"\bspin(?:ning)?\b|boxercise|bootcamp|keep fit",
    ),
    (
        "sport",
        r"football|tennis|badminton|\bbowls\b|cricket|netball|basketball|\bgolf|hockey|rugby|squash|"
        r"roller|skat(?:e|ing)|\bsports?\b|volleyball|archery|climbing|martial|karate|judo",
    ),
    ("arts-crafts", r"\bart\b|\barts\b|craft|knit|crochet|sewing|\bsew\b|paint|pottery|drawing|sketch"),
    ("music-singing", r"choir|\bsing|music|ukulele|\bband\b|guitar"),
    ("drama-writing", r"drama|theatre|creative writing|poetry|storytell"),
    ("gardening-nature", r"garden|allotment|nature|conservation|beekeep|wildlife"),
    ("lunch-club", r"lunch club|\blunch"),
    ("social-club", r"coffee morning|social club|\bsocial\b|drop[- ]in caf|\bcaf[eé]\b|friendship"),
    ("befriending", r"befriend"),
    ("baby-toddler", r"\bbab(?:y|ies)\b|toddler|stay and play|stay & play|rhyme time"),
    ("parents-carers", r"\bparent|\bcarers?\b"),
    ("peer-support", r"peer support|support group"),
    ("mental-health", r"mental health|wellbeing|well-being|counsell|anxiety|depression"),
    ("digital-skills", r"digital|computer|\btablet|internet|smartphone|\bit skills"),
    ("learning", r"\bcourse|\blearn|\blesson|\btalks?\b|language class|\bclass(?:es)?\b"),
    ("volunteering", r"volunteer"),
    ("faith-culture", r"church|faith|mosque|temple|gurdwara|synagogue|cultur"),
    ("advice", r"advice|benefits|debt|housing|citizens"),
    ("mens-shed", r"men'?s shed|repair caf"),
    ("cooking-food", r"\bcook|\bfood|kitchen|baking"),
    ("games-hobbies", r"\bgames?\b|chess|bingo|\bquiz|\bcards\b|hobby|board game|model"),
    ("reading-book-club", r"book club|\breading|library"),
    ("heritage-history", r"histor|heritage|reminisc|museum"),
)
_CATEGORY_PATTERNS = tuple(
    (category, re.compile(words, re.IGNORECASE)) for category, words in _CATEGORY_WORDS
)


@dataclass
class Candidate:
    """An activity built from a source item, with what stops it being shown.

    ``label`` names the item the way its source does ("Service 'Community Counselling'");
    ``problems`` are plain sentences about what the source lacks or gets wrong. ``ref``
    is the source's stable name for the item (its RPDE id, its UID), so a problem shown
    on the source's page clears when the item maps; it defaults to the label.
    """

    id: str
    label: str
    activity: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    ref: str = ""
    modified: int | str | None = None  # the source's change marker for the item, when it has one

    def result(self) -> Change | Unmapped:
        """The activity as a Change when it is valid, else an Unmapped saying why, field by field."""
        ref = self.ref or self.label
        if not self.problems:
            if is_valid_activity(self.activity):
                return Change(self.id, self.activity, ref=ref, modified=self.modified)
            self.problems.extend(problem.message for problem in validate_activity(self.activity))
        return Unmapped(ref, f"{self.label}: {'; '.join(self.problems)}")


def guarded(ref: str, label: str, build: Callable[[], Mapped]) -> Mapped | Unmapped:
    """``build()``, or an Unmapped naming the item when what the source sent made it fail.

    The reason keeps the error's own words, so a fault of ours that slips through is still
    specific enough to report; the traceback goes to the log for the same reason.
    """
    try:
        return build()
    except SOURCE_ERRORS as exc:
        log.warning("could not map %s from its source", ref, exc_info=True)
        return Unmapped(
            ref,
            f"{label} could not be read: {source_error(exc)}. Ask the publisher to check this item; "
            "if it looks right, report this message to the aggregator's operator.",
        )


def source_error(exc: BaseException) -> str:
    """An error raised by a source's data, in plain words and of bounded length."""
    if isinstance(exc, RecursionError):
        return "it is nested too deeply to read"
    # The error may quote the source's bytes: keep it short and free of what no text may hold.
    detail = FORBIDDEN_CHARACTER.sub("?", str(exc)) or type(exc).__name__
    if len(detail) > _DETAIL_LIMIT:
        detail = detail[: _DETAIL_LIMIT - 1] + "…"
    if isinstance(exc, OverflowError):
        return f"a date or number in it is out of range ({detail})"
    return f"{detail} ({type(exc).__name__})"


def text(value: Any, limit: int = LONG_TEXT) -> str:
    """Plain text from a source field that may hold HTML: tags dropped, entities decoded, spaces collapsed.

    Cut at ``limit`` characters on a word boundary, with an ellipsis, so the contract's
    length rules hold without losing the start of a long description.
    """
    if value is None:
        return ""
    plain = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", str(value)))).strip()
    # A stray "<" left after unescaping would read as markup to the contract's rule.
    plain = _MARKUP_START.sub("< ", plain)
    if len(plain) <= limit:
        return plain
    cut = plain[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def find_postcode(value: Any) -> str | None:
    """The first UK postcode in ``value`` (any text), in its normal form, or None."""
    match = POSTCODE_IN_TEXT.search(str(value or ""))
    return normalise_postcode(match.group(1)) if match else None


def postcode(value: Any) -> str | None:
    """``value`` in its normal form when it is a UK postcode (a source field may hold anything), else None."""
    return normalise_postcode(value) if isinstance(value, str) else None


def telephone(value: Any) -> str | None:
    """A telephone number the contract accepts, from a source that may quote or pad it."""
    cleaned = _SPACE.sub(" ", str(value or "").strip().strip("\"'").strip())
    return cleaned if _TELEPHONE.match(cleaned) else None


def geo(latitude: Any, longitude: Any) -> dict[str, float] | None:
    """``{latitude, longitude}`` when both are numbers in range, else None."""
    try:
        lat, lon = float(latitude), float(longitude)
    except (TypeError, ValueError):
        return None
    if -90 <= lat <= 90 and -180 <= lon <= 180 and not (lat == 0 and lon == 0):
        return {"latitude": lat, "longitude": lon}
    return None


def categories_for(labels: Iterable[Any], concepts: Iterable[str] = ()) -> list[str]:
    """Our categories for a source's activity concept URIs and labels, best evidence first.

    Concept URIs are matched against the OpenActive concepts the vocabulary lists;
    labels by the words above. Empty when nothing fits: the caller picks its default.
    """
    found: list[str] = []
    wanted = {_concept_key(uri) for uri in concepts}
    if wanted:
        for category, entry in category_vocabulary().items():
            if wanted & {_concept_key(uri) for uri in entry.get("openactive", ())}:
                found.append(category)
    for label in labels:
        for category, pattern in _CATEGORY_PATTERNS:
            if category not in found and pattern.search(str(label or "")):
                found.append(category)
    return found


def _concept_key(uri: str) -> str:
    """Activity List URIs are written with and without a slash before '#': compare the fragment."""
    return uri.rsplit("#", 1)[-1].lower()


def feed_base(url: str) -> str:
    """The feed's URL without query or fragment: the stable part ids are minted under."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def minted_id(feed_url: str, source_id: Any) -> str:
    """``<feed url>#<source id>``: stable for as long as the source keeps its own ids."""
    return f"{feed_base(feed_url)}#{quote(str(source_id), safe='')}"


def item_id_for(feed_url: str, own: str | None, fallback: Any) -> str:
    """The item's own URL when it is on the feed's site, else an id namespaced under the feed.

    A feed may only give ids on its own site (aggregator.authority), so an event whose page is
    elsewhere (an Eventbrite link, a booking system's domain) is named under the feed; its own
    URL still goes into ``sameAs``, where it merges with that site's own copy.
    """
    if own and SourceAuthority.of([feed_url], relays=False).speaks_for(own):
        return own
    return minted_id(feed_url, own or fallback)


def freshness(source_date: Any, harvested_at: datetime) -> dict[str, str]:
    """``lastVerified`` from the source's own date when it has one, else the harvest's day marked as ours.

    The contract requires a date, and means by it the organiser's last confirmation. A
    source that gives none (an iCalendar event with no LAST-MODIFIED, an ORUK service with
    no assured_date) has no such date, so the one given is only since when we have seen it
    listed, and the mark says so: the API and every page then say "Not confirmed by the
    organiser" and never show the date as a check. The harvest keeps the first such day
    (:func:`keep_verification`), so the listing ages and in time expires like any other
    that nobody confirms: stamping it afresh at every harvest made it look confirmed today,
    for ever.
    """
    day = as_date(source_date)
    if day is not None:
        return {"lastVerified": day.isoformat()}
    return {"lastVerified": harvested_at.date().isoformat(), VERIFIED_BY: VERIFIED_BY_HARVEST}


def keep_verification(activity: dict[str, Any], held: Mapping[str, Any] | None) -> None:
    """Give ``activity``, dated by the harvest only, the day its source's copy ``held`` was first seen.

    Only when ``held`` was dated so too: an activity with a date of its own keeps it (a
    newer confirmation replaces an older one), and one that has lost its source's date
    is unconfirmed from now on, whatever an earlier version of it said.
    """
    first_seen = (held or {}).get("lastVerified")
    if first_seen and activity.get(VERIFIED_BY) == VERIFIED_BY_HARVEST == (held or {}).get(VERIFIED_BY):
        activity["lastVerified"] = first_seen


def as_date(value: Any) -> date | None:
    """A date from an ISO date or date-time (string, date or datetime), or None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def as_datetime(value: Any) -> datetime | None:
    """A timezone-aware datetime from an ISO string (``Z`` allowed), or None when it has no offset."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None and parsed.utcoffset() is not None else None


def stamp(value: datetime) -> str:
    """An RFC 3339 date-time with offset, to the second."""
    return value.replace(microsecond=0).isoformat()


def modified(value: Any, harvested_at: datetime) -> str:
    """``dateModified`` from the source's own change time, else the start of the harvest's day.

    A day, not the instant: a source read whole at every harvest must give the same
    activity each time, or every harvest would count as a change to merge and republish.
    """
    parsed = as_datetime(value)
    if parsed is None:
        parsed = datetime.combine(harvested_at.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    return stamp(parsed)


def clock(value: Any) -> str | None:
    """``"HH:MM"`` from a time like ``10:00``, ``9:30``, ``10:00:00`` or ``10:00Z``, or None."""
    match = re.match(r"^(\d{1,2}):(\d{2})", str(value or ""))
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        return None
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def as_list(value: Any) -> list[Any]:
    """A JSON-LD or iCalendar value that may be one thing or a list of them, as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def as_object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (missing, a string, a list)."""
    return value if isinstance(value, dict) else {}


def address(
    street: str | None, locality: str | None, postcode: str, region: str | None = None
) -> dict[str, str]:
    """The contract's address, filling a missing street or locality from what is there
    (a region is kept only when the source names one: it is never guessed)."""
    street, locality, region = text(street, SHORT_TEXT), text(locality, SHORT_TEXT), text(region, SHORT_TEXT)
    found = {
        "streetAddress": street or locality or postcode,
        "addressLocality": locality or street or postcode,
        "postalCode": postcode,
    }
    return {**found, "addressRegion": region} if region else found
