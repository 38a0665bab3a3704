"""CSV import: an umbrella body fills in a spreadsheet, one row per activity, and imports it.

The columns have the names people see in the editors' form ("Activity name", "How
often", "Cost"...), and each cell is read exactly as the form reads what is typed
(``publisher.forms``), so a spreadsheet and the form accept the same things: the form's labels
("Gardening and nature", "Pay what you can"), which the problems name too, and which the page
of allowed values (:func:`allowed_values`) lists for the columns that take a list. Every row
is checked first; the report gives each problem by line number and column name, as a
spreadsheet shows them. Nothing is written in a dry run, nor when any row has a
problem, unless the caller asks to import only the good rows. Rows are written through
``editing.save_activity``, like every other change.

Importing the same spreadsheet again, with some rows changed, updates those activities
instead of adding them twice: a row belongs to the group's live activity of the same
name (where the group has several of that name, the one on the same day and start time;
where it has none of those, the row adds another). Columns the file leaves out keep
what is stored, and a row that changes nothing writes nothing, so subscribers are not
told of changes that did not happen.

A file is read as a stream and bounded before anything is parsed, whatever its size or
shape: a row budget and a byte budget (``ImportBudget``, from the app's settings), rows of
at most ``MAX_ROW_CHARS`` and cells of at most ``MAX_CELL_CHARS`` (longer ones are refused
by line and column, never held whole), any line ending (CRLF, LF, CR, mixed), and a
report that lists at most ``MAX_LISTED_PROBLEMS`` problems and counts the rest. So a
dry run of a file of any size holds one row at a time plus a report of bounded size.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import difflib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import IO, Any

from federation.clock import utcnow
from federation.config import load_config
from publisher import editing, forms
from publisher.store import Group, Store, StoredActivity
from schema import Problem, validate_activity, vocab
from schema.price import PAY_WHAT_YOU_CAN

GROUP_COLUMN = "Group"
COST_COLUMN = "Cost"
# Column → form field, in the template's order. "Cost" fills two fields: free, or an amount.
COLUMNS: dict[str, str] = {
    GROUP_COLUMN: "group",
    "Activity name": "name",
    "Description": "description",
    "Categories": "categories",
    "Venue": "venue",
    "Street": "street",
    "Town": "town",
    "Postcode": "postcode",
    "How often": "frequency",
    "Day": "days",
    "Start time": "start_time",
    "End time": "end_time",
    "First date": "first_date",
    "Last date": "last_date",
    "Dates off": "dates_off",
    COST_COLUMN: "amount",
    "Cost notes": "cost_notes",
    "Who it is for": "audiences",
    "Access": "accessibility",
    "Booking": "booking",
    "Booking link": "booking_link",
    "Contact name": "contact_name",
    "Contact email": "contact_email",
    "Contact phone": "contact_phone",
    "First visit": "first_visit",
    "Space": "space",
}
COLUMN_FOR_FIELD = {name: column for column, name in COLUMNS.items()} | {"cost": COST_COLUMN}
WHOLE_ROW = "(whole row)"
_FREE_WORDS = {"free", "0", "0.00", "£0", "£0.00", "no charge", "nothing"}
# A cost cell asking for a donation: "Pay what you can", "donation", "suggested donation £2.50"...
_DONATION_WORDS = re.compile(r"pay what you|donation|pwyc", re.IGNORECASE)
_POUNDS = re.compile(r"(\d+(?:\.\d+)?)")
# The columns whose cells take English labels from a vocabulary (or the ids behind them).
VOCAB_COLUMNS = {
    column: forms.VOCAB_FIELDS[name] for column, name in COLUMNS.items() if name in forms.VOCAB_FIELDS
}
_VOCAB_NOUNS = {"categories": "categories", "audiences": "audiences", "accessibility": "access features"}
_VOCAB_CODES = {"unknown-category", "unknown-accessibility", "unknown-audience"}

# The budgets an operator may change: checking a row costs about a third of a millisecond,
# so 5,000 rows is a dry run of a few seconds, and 10 MB holds 5,000 rows of long descriptions.
IMPORT_DEFAULTS: dict[str, Any] = {
    "CSV_IMPORT_MAX_ROWS": 5_000,  # rows of activities one import takes
    "CSV_IMPORT_MAX_BYTES": 10 * 1024 * 1024,  # bytes of a file one import reads
}
# Fixed bounds on one row: no cell the form takes is longer than 2,048 characters (a link),
# so 10,000 leaves room, and a row of 26 such cells fits in 100,000 characters. A row is kept
# under the csv module's own field limit (131,072), so the csv module never refuses a file.
MAX_CELL_CHARS = 10_000
MAX_ROW_CHARS = 100_000
MAX_LISTED_PROBLEMS = 500  # problems a report lists; the rest are counted
MAX_PLACEMENT_WARNINGS = 20  # rows named as "cannot be placed on the map"; the rest are counted
MAX_COLUMN_WARNINGS = 20  # unknown column names a report names; the rest are counted
_PIECE_CHARS = 65_536  # characters read at a time from a line, however long the line is
_CP1252_FALLBACK = "localfeed-cp1252-fallback"


def _cp1252_for_what_is_not_utf8(error: UnicodeError) -> tuple[str, int]:
    """Decode the bytes that are not UTF-8 as Windows-1252 (Excel's "CSV" on Windows), and go on.

    Done byte by byte as the file streams in, since the file is never held whole: a
    Windows-1252 file's first accented letter is where UTF-8 fails, and all before it was
    plain ASCII, the same in both.
    """
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return bytes(error.object[error.start : error.end]).decode("cp1252", errors="replace"), error.end


codecs.register_error(_CP1252_FALLBACK, _cp1252_for_what_is_not_utf8)


@dataclass(frozen=True)
class ImportBudget:
    """The most one import reads: rows of activities, and bytes of the file."""

    max_rows: int = IMPORT_DEFAULTS["CSV_IMPORT_MAX_ROWS"]
    max_bytes: int = IMPORT_DEFAULTS["CSV_IMPORT_MAX_BYTES"]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImportBudget:
        """The budget in the app's settings, else in the environment, else IMPORT_DEFAULTS."""
        given = {key: config[key] for key in IMPORT_DEFAULTS if key in config}
        settings = load_config(IMPORT_DEFAULTS, given)
        for name, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number of at least 1.")
        return cls(max_rows=settings["CSV_IMPORT_MAX_ROWS"], max_bytes=settings["CSV_IMPORT_MAX_BYTES"])


TEMPLATE_ROWS = [
    {
        GROUP_COLUMN: "Mitcham Walkers",
        "Activity name": "Mitcham Health Walk",
        "Description": "A gentle 45-minute walk around Mitcham Common at an easy pace, ending at the café.",
        "Categories": "Walking",
        "Venue": "Mitcham Common, Windmill Road car park",
        "Street": "Windmill Road",
        "Town": "Mitcham",
        "Postcode": "CR4 1HT",
        "How often": "Every week",
        "Day": "Tuesday",
        "Start time": "10:00",
        "End time": "11:00",
        "First date": "06/01/2026",
        "Dates off": "29/12/2026",
        COST_COLUMN: "Free",
        "Who it is for": "Older people; Carers",
        "Access": "Step-free access",
        "Booking": "Just turn up",
        "Contact email": "hello@mitcham-walkers.example",
        "Contact phone": "020 8123 4567",
        "First visit": "Meet by the café at 9:50. Wear comfortable shoes; you are welcome to bring a friend.",
        "Space": "There are spaces",
    },
    {
        GROUP_COLUMN: "Mitcham Walkers",
        "Activity name": "Coffee and Chat",
        "Description": "Tea, coffee and cake after the monthly long walk.",
        "Categories": "Social clubs",
        "Venue": "St Mark's Church Hall",
        "Street": "St Mark's Road",
        "Town": "Mitcham",
        "Postcode": "CR4 2LF",
        "How often": "First Tuesday of the month",
        "Day": "Tuesday",
        "Start time": "2pm",
        "End time": "3:30pm",
        "First date": "06/01/2026",
        COST_COLUMN: "£2.00",
        "Cost notes": "Includes cake",
        "Booking": "Book ahead",
        "Booking link": "https://www.eventbrite.co.uk/e/coffee-and-chat-tickets-123456789",
        "Contact email": "hello@mitcham-walkers.example",
    },
]


@dataclass(frozen=True)
class RowProblem:
    """One problem in the file: the line a spreadsheet shows, the column, and what to do."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"Line {self.line}, {self.column}: {self.message}"


@dataclass
class RowResult:
    """One activity row: its problems, or the slug it was saved under.

    ``updates`` is the slug of the stored activity the row changes (None: the row adds
    one), and ``unchanged`` says the row matches it exactly, so saving it writes nothing.
    ``unlisted_problems`` counts the row's problems past the report's listing.
    """

    line: int
    name: str
    group: str
    problems: list[RowProblem] = field(default_factory=list)
    slug: str | None = None
    updates: str | None = None
    unchanged: bool = False
    unlisted_problems: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unlisted_problems

    @property
    def action(self) -> str:
        """What importing the row does: "new", "updated" or "unchanged"."""
        if self.updates is None:
            return "new"
        return "unchanged" if self.unchanged else "updated"


@dataclass
class ImportReport:
    """What an import found and did, row by row.

    It lists at most ``max_listed`` problems and counts the rest (``unlisted_problems``),
    so a file with a problem in every cell of every row still makes a report of bounded size.
    """

    dry_run: bool
    rows: list[RowResult] = field(default_factory=list)
    file_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    max_listed: int = MAX_LISTED_PROBLEMS
    unlisted_problems: int = 0
    _listed: int = 0

    def add_row(self, row: RowResult) -> None:
        """Take a checked row, listing its problems while the listing has room."""
        problems, row.problems = row.problems, []
        self.add_problems(row, problems)
        self.rows.append(row)

    def add_problems(self, row: RowResult, problems: Sequence[RowProblem]) -> None:
        room = max(self.max_listed - self._listed, 0)
        listed = list(problems[:room])
        row.problems += listed
        row.unlisted_problems += len(problems) - len(listed)
        self._listed += len(listed)
        self.unlisted_problems += len(problems) - len(listed)

    @property
    def good_rows(self) -> list[RowResult]:
        return [row for row in self.rows if row.ok]

    @property
    def bad_rows(self) -> list[RowResult]:
        return [row for row in self.rows if not row.ok]

    @property
    def problems(self) -> list[RowProblem]:
        return [problem for row in self.rows for problem in row.problems]

    @property
    def written(self) -> list[RowResult]:
        return [row for row in self.rows if row.slug is not None]

    @property
    def ok(self) -> bool:
        return not self.file_problems and not self.bad_rows

    def summary(self) -> str:
        """The outcome in one sentence, for the CLI and the page heading."""
        if self.file_problems:
            return "The file cannot be imported: " + " ".join(self.file_problems)
        good, bad = len(self.good_rows), len(self.bad_rows)
        ready = _counts(self.good_rows)
        found = f"{good} row(s) are ready to import ({ready}) and {bad} row(s) have problems."
        if self.dry_run:
            return f"Checked only, nothing saved: {found}"
        if not self.written:
            return f"Nothing was imported: {found} Fix them, or import the good rows only."
        written = len(self.written)
        return f"Imported {written} activit{'y' if written == 1 else 'ies'}: {_counts(self.written)}."

    def unlisted_note(self) -> str:
        """What the listing leaves out, in words ("" when it lists every problem)."""
        if not self.unlisted_problems:
            return ""
        return (
            f"{self.unlisted_problems:,} more problem(s) are not listed here, to keep this report short. "
            "Fix the ones listed and check the file again to see them."
        )


def _counts(rows: Sequence[RowResult]) -> str:
    """Like "2 new, 1 updated, 5 unchanged", leaving out the actions no row takes."""
    actions = [row.action for row in rows]
    counts = [f"{actions.count(a)} {a}" for a in ("new", "updated", "unchanged") if a in actions]
    return ", ".join(counts) or "none"


@dataclass(frozen=True)
class AllowedValues:
    """What one column takes from a list, as the page of allowed values shows it."""

    column: str
    how: str  # how to write the values in a cell
    values: tuple[tuple[str, str], ...]  # (what to write, what it means or other ways to write it)

    @property
    def explained(self) -> bool:
        """Whether any value has words on what it means (a list of terms), or all speak for themselves."""
        return any(meaning for _value, meaning in self.values)

    @property
    def anchor(self) -> str:
        """The id of the column's part of the page, like "who-it-is-for"."""
        return "-".join(self.column.lower().split())


@cache
def allowed_values() -> tuple[AllowedValues, ...]:
    """Each column that takes values from a list, in the template's order, with the values in words.

    The words are the labels the editors' form shows; a cell may also hold the ids behind them.
    """
    several = "One or more, separated by semicolons. Capital letters do not matter."
    one = "One of these. Capital letters do not matter."
    lists = {
        column: AllowedValues(
            column,
            several,
            tuple((entry["label"], entry["description"]) for entry in getattr(vocab, kind)().values()),
        )
        for column, kind in VOCAB_COLUMNS.items()
    }
    lists["How often"] = AllowedValues(
        "How often",
        f"{one} Words like “First Tuesday of the month” or “Fortnightly” are read too.",
        tuple((label, "") for label in forms.FREQUENCIES.values()),
    )
    lists["Day"] = AllowedValues(
        "Day",
        f"{several} Short forms like Tue are read too.",
        tuple((day, "") for day in forms.DAYS.values()),
    )
    lists[COST_COLUMN] = AllowedValues(
        COST_COLUMN,
        one,
        (
            ("Free", "Also: 0, or no charge."),
            ("3.50", "An amount in pounds; £3.50 is read too."),
            (PAY_WHAT_YOU_CAN, "People give what they can; “donation” is read too."),
            (
                f"{PAY_WHAT_YOU_CAN} (suggested £3)",
                "With a suggested donation; “suggested donation £2.50” is read too.",
            ),
        ),
    )
    lists["Booking"] = AllowedValues("Booking", one, tuple((label, "") for label in forms.BOOKING.values()))
    lists["Space"] = AllowedValues("Space", one, tuple((label, "") for label in forms.SPACE.values()))
    return tuple(lists[column] for column in COLUMNS if column in lists)


def decode(data: bytes) -> str:
    """Text from an uploaded file: UTF-8 (with or without Excel's byte-order mark), else Windows-1252."""
    return data.decode("utf-8-sig", errors=_CP1252_FALLBACK)


def template_csv() -> str:
    """The CSV template: every column, and example rows to copy."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(TEMPLATE_ROWS)
    return out.getvalue()


def import_csv(
    store: Store,
    groups: Group | Sequence[Group],
    source: str | bytes | IO[str] | IO[bytes],
    *,
    dry_run: bool = True,
    good_rows_only: bool = False,
    base_url: str,
    now: datetime | None = None,
    budget: ImportBudget | None = None,
    placer: editing.Placer | None = None,
) -> ImportReport:
    """Check every row of a CSV of activities and, unless ``dry_run``, save them.

    ``groups`` is the one group every row belongs to (an editor's import), or the groups
    the "Group" column may name (an administrator's). Nothing is written when any row
    has a problem, unless ``good_rows_only``; then the good rows are saved and the report
    still lists the bad ones. Nothing is written either when the file goes past the
    ``budget`` (by default :class:`ImportBudget`'s). ``source`` is read as a stream, a
    piece at a time: pass an open file rather than its contents. ``now`` is the app's
    clock reading, for ``lastVerified``. With a ``placer``, the report warns of each good row
    whose place cannot be put on a map (:meth:`publisher.editing.Placer.warning`).
    """
    report = ImportReport(dry_run=dry_run)
    with _text_stream(source) as text:
        checked = _check_rows(
            store, groups, text, report, budget or ImportBudget(), dry_run, base_url, now, placer
        )
    if dry_run or report.file_problems or (report.bad_rows and not good_rows_only):
        return report
    for result, group, doc in checked:
        if not result.ok or group is None:
            continue
        if result.unchanged:
            result.slug = result.updates
            continue
        saved = editing.save_activity(store, group, doc, result.updates, base_url=base_url, now=now)
        result.slug = saved.slug
        report.add_problems(result, _row_problems(result.line, saved.problems))
    return report


def _check_rows(
    store: Store,
    groups: Group | Sequence[Group],
    text: IO[str],
    report: ImportReport,
    budget: ImportBudget,
    dry_run: bool,
    base_url: str,
    now: datetime | None,
    placer: editing.Placer | None = None,
) -> list[tuple[RowResult, Group | None, dict[str, Any]]]:
    """Check each row as it is read; return what saving needs, kept only when saving may follow."""
    unplaced = 0
    checked: list[tuple[RowResult, Group | None, dict[str, Any]]] = []
    only_group = groups if isinstance(groups, Group) else None
    choices = [groups] if isinstance(groups, Group) else list(groups)
    live: dict[int, list[StoredActivity]] = {}
    claimed: dict[str, int] = {}  # slug → the line that updates it
    for line, cells, too_long in _read_rows(text, report, budget):
        name = cells.get("name", "").strip()
        result = RowResult(line=line, name=name, group=cells.get("group", "").strip())
        if too_long:  # the rest of the row is not read until its size is fixed
            result.problems += too_long
            report.add_row(result)
            continue
        group = _row_group(result.group, choices, only_group, result)
        existing = None
        if group is not None:
            if group.id not in live:
                live[group.id] = store.list_activities(group.id)
            existing = _stored_match(live[group.id], cells, group, result)
        if existing is not None:
            result.updates = existing.slug
            if existing.slug in claimed:
                message = f"Line {claimed[existing.slug]} already changes this activity; keep one row for it."
                result.problems.append(RowProblem(line, "Activity name", message))
            claimed.setdefault(existing.slug, line)
        doc = _check_row(cells, group, result, base_url, existing, now)
        warning = placer.warning(doc) if placer is not None and not result.problems else None
        if warning:
            unplaced += 1
            if unplaced <= MAX_PLACEMENT_WARNINGS:
                report.warnings.append(f"Line {line}: {warning}")
        report.add_row(result)
        if not dry_run:
            checked.append((result, group, doc))
    if unplaced > MAX_PLACEMENT_WARNINGS:
        report.warnings.append(
            f"{unplaced - MAX_PLACEMENT_WARNINGS} more row(s) have a postcode we couldn't place on the map."
        )
    return checked


def _same_name(name: str) -> str:
    return " ".join(name.split()).casefold()


def _when(activity: dict[str, Any]) -> tuple[Any, ...]:
    """When an activity meets, as far as telling apart two of the same name needs."""
    if activity.get("type") == "Event":
        return (activity.get("startDate"),)
    entry = (activity.get("schedule") or [{}])[0]
    return (sorted(entry.get("byDay") or []), entry.get("startTime"))


def _stored_match(
    live: list[StoredActivity], cells: dict[str, Any], group: Group, result: RowResult
) -> StoredActivity | None:
    """The group's live activity this row changes, or None when it adds a new one."""
    name = _same_name(cells.get("name", ""))
    named = [a for a in live if name and _same_name((a.data or {}).get("name", "")) == name]
    if len(named) <= 1:
        return named[0] if named else None
    when = _when(forms.activity_from_fields(_fields(cells))[0])
    timed = [a for a in named if _when(a.data or {}) == when]
    if len(timed) > 1:
        message = (
            f"{group.name} has {len(timed)} activities called '{result.name}' on this day at this time, "
            "so this row could change any of them. Change them in the editor, or rename one there first."
        )
        result.problems.append(RowProblem(result.line, "Activity name", message))
    return timed[0] if len(timed) == 1 else None


@contextlib.contextmanager
def _text_stream(source: str | bytes | IO[str] | IO[bytes]) -> Iterator[IO[str]]:
    """``source`` as text read a piece at a time, every line ending kept as it is (for the csv module).

    Bytes are decoded as they stream in (see ``decode``); a file object the caller opened
    stays open, as it is the caller's.
    """
    if isinstance(source, str):
        yield io.StringIO(source.removeprefix("\ufeff"), newline="")
        return
    binary: IO[bytes]
    if isinstance(source, bytes):
        binary = io.BytesIO(source)
    elif isinstance(source.read(0), str):
        yield source  # type: ignore[misc]  # an IO[str], by what it reads
        return
    else:
        binary = source  # type: ignore[assignment]  # an IO[bytes], by what it reads
    wrapper = io.TextIOWrapper(binary, encoding="utf-8-sig", errors=_CP1252_FALLBACK, newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()  # closing the wrapper would close the caller's file


@dataclass(frozen=True)
class _Record:
    """One CSV record as written: where it starts, its text (at most MAX_ROW_CHARS), whether it went on."""

    line: int
    text: str
    cut: bool


class _RecordReader:
    """The records of a CSV text, one at a time, holding at most MAX_ROW_CHARS of each.

    A record ends at a line ending outside quotes (any of CRLF, LF, CR). Lines are read
    ``_PIECE_CHARS`` at a time, so a line of 50 MB costs no more memory than one of 50
    characters; what a record holds past MAX_ROW_CHARS is only counted. Reading stops
    before the byte that would take the file past ``max_bytes`` (counted as UTF-8).
    """

    def __init__(self, text: IO[str], max_bytes: int) -> None:
        self._text = text
        self.max_bytes = max_bytes
        self.bytes_read = 0
        self.line = 1  # the line the next record starts on
        self.over_budget = False

    def __iter__(self) -> Iterator[_Record]:
        parts: list[str] = []
        kept, quotes, start, cut, cr_at_cut = 0, 0, self.line, False, False
        while piece := self._text.readline(_PIECE_CHARS):
            if cr_at_cut and piece.startswith("\n"):
                piece = piece[1:]  # the rest of a CRLF that the piece's length split in two
                if not piece:
                    continue
            # As UTF-8; a plain ASCII piece (most are) is measured without encoding a copy.
            self.bytes_read += len(piece) if piece.isascii() else len(piece.encode("utf-8", "surrogatepass"))
            if self.bytes_read > self.max_bytes:
                self.over_budget = True
                return  # a record cut off by the budget is not a record
            quotes += piece.count('"')
            if not cut:
                room = MAX_ROW_CHARS - kept
                cut = len(piece) > room
                parts.append(piece[:room] if cut else piece)
                kept += min(len(piece), room)
            cr_at_cut = len(piece) == _PIECE_CHARS and piece.endswith("\r")
            if piece.endswith(("\n", "\r")):
                self.line += 1
                if quotes % 2 == 0:  # the line ending is outside quotes: the record ends here
                    yield _Record(start, "".join(parts), cut)
                    parts, kept, quotes, start, cut = [], 0, 0, self.line, False
        if parts:
            yield _Record(start, "".join(parts), cut)


def _read_rows(
    text: IO[str], report: ImportReport, budget: ImportBudget
) -> Iterator[tuple[int, dict[str, str], list[RowProblem]]]:
    """(line where the row starts, form fields, problems of size) for each non-empty row, as it is read.

    Stops at the budget, saying so in ``report.file_problems``: a file past it is never
    imported, even in part, since which rows were left out would be a guess.
    """
    records = _RecordReader(text, budget.max_bytes)
    reading = iter(records)
    header = next(reading, None)
    if header is None or not header.text.strip():
        if records.over_budget:
            report.file_problems.append(_over_bytes(1, budget))
        else:
            report.file_problems.append(
                "It is empty. Start from the template, which has a row of column names."
            )
        return
    if header.cut:
        report.file_problems.append(
            f"Its first row is over {MAX_ROW_CHARS:,} characters long; it must hold only the column names, "
            "as in the template."
        )
        return
    first_line = header.text.splitlines()[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","  # Excel in some locales
    columns = _columns(next(csv.reader([header.text], delimiter=delimiter), []), report)
    if "Activity name" not in columns:
        report.file_problems.append(
            "Its first row has no 'Activity name' column. The first row must hold the column names, "
            "as in the template."
        )
        return
    rows = 0
    for record in reading:
        for line, cells in _parsed(record, delimiter):
            if not any(cell.strip() for cell in cells):
                continue
            rows += 1
            if rows > budget.max_rows:
                report.file_problems.append(
                    f"Line {line}: the file has more than {budget.max_rows:,} rows of activities, the most "
                    f"one import takes, so nothing was imported. Split it into files of at most "
                    f"{budget.max_rows:,} rows and import each."
                )
                return
            yield line, *_row_cells(line, columns, cells, record.cut)
    if records.over_budget:
        report.file_problems.append(_over_bytes(records.line, budget))


def _over_bytes(line: int, budget: ImportBudget) -> str:
    megabytes = budget.max_bytes / 1_048_576
    size = f"{megabytes:g} MB" if megabytes >= 1 else f"{budget.max_bytes:,} bytes"
    return (
        f"Line {line}: the file goes on past {size}, the most one import reads, so nothing was "
        f"imported. Split it into files under {size} and import each."
    )


def _columns(header: list[str], report: ImportReport) -> list[str | None]:
    """The known column each heading names (None for one we do not know, which is warned of)."""
    by_name = {column.lower(): column for column in COLUMNS}
    columns: list[str | None] = []
    unknown = 0
    for heading in header:
        column = by_name.get(" ".join(heading.split()).lower())
        columns.append(column)
        if column is None and heading.strip():
            unknown += 1
            if unknown <= MAX_COLUMN_WARNINGS:
                close = difflib.get_close_matches(heading.strip()[:100], list(COLUMNS), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "it was ignored."
                report.warnings.append(f"Column '{heading.strip()[:100]}' is not one we know; {hint}")
    if unknown > MAX_COLUMN_WARNINGS:
        report.warnings.append(
            f"{unknown - MAX_COLUMN_WARNINGS:,} more columns are not ones we know; they were ignored."
        )
    return columns


def _parsed(record: _Record, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """The rows of one record with the lines they start on: one row, unless a stray quote joined several."""
    reader = csv.reader(io.StringIO(record.text, newline=""), delimiter=delimiter)
    lines_before = 0
    for cells in reader:
        yield record.line + lines_before, cells
        lines_before = reader.line_num


def _row_cells(
    line: int, columns: list[str | None], cells: list[str], cut: bool
) -> tuple[dict[str, str], list[RowProblem]]:
    """A row's cells by form field, line breaks in cells made plain LF, and a problem for each cell too long.

    In a row cut at MAX_ROW_CHARS the last cell read is only the start of that cell.
    """
    fields: dict[str, str] = {}
    too_long: list[RowProblem] = []
    for index, (column, cell) in enumerate(zip(columns, cells, strict=False)):
        if column is None:
            continue
        if len(cell) > MAX_CELL_CHARS:
            held = f"over {len(cell):,}" if cut and index == len(cells) - 1 else f"{len(cell):,}"
            message = (
                f"This cell holds {held} characters; a cell may hold at most {MAX_CELL_CHARS:,}. Shorten it."
            )
            too_long.append(RowProblem(line, column, message))
        elif "\r" in cell:
            fields[COLUMNS[column]] = cell.replace("\r\n", "\n").replace("\r", "\n")
        else:
            fields[COLUMNS[column]] = cell
    if cut and not too_long:
        # The row went on past MAX_ROW_CHARS in many long cells, or in columns we do not know.
        message = (
            f"This row is over {MAX_ROW_CHARS:,} characters long, more than any activity needs; "
            "shorten its longest cells, or remove columns that are not in the template."
        )
        too_long.append(RowProblem(line, WHOLE_ROW, message))
    return fields, too_long


def _fields(cells: dict[str, str], stored: StoredActivity | None = None) -> dict[str, Any]:
    """A row's cells as the form's fields: lists split on ';' or ',', and "Cost" as free, an amount,
    or the form's "Pay what you can" with the suggested donation as its amount.

    Fields the file has no column for are blank for a new activity, and as stored for one
    the row updates.
    """
    if stored is not None:
        fields = forms.fields_from_activity(stored.data or {})
    else:
        fields = forms.blank_fields() | {"frequency": "", "cost": "", "booking": ""}
    for name, cell in cells.items():
        cell = cell.strip()
        if name in forms.LIST_FIELDS:
            fields[name] = [part.strip() for part in cell.replace(";", ",").split(",") if part.strip()]
        else:
            fields[name] = cell
    if "amount" in cells:
        amount = fields["amount"]
        donation, suggested = _donation(amount)
        if donation:
            fields.update(cost="donation", amount=suggested)
            if "cost_notes" not in cells:
                fields["cost_notes"] = ""  # notes stored with an old cost: the donation replaces them
        elif amount.lower() in _FREE_WORDS:
            fields.update(cost="free", amount="")
        else:
            fields["cost"] = "paid" if amount else ""
    return fields


def _donation(cost: str) -> tuple[bool, str]:
    """Whether a Cost cell asks for a donation, and the donation it suggests in pounds ("" for none).

    "Pay what you can", "donation", "pay what you can (suggested £3)" and "suggested
    donation £2.50" are all donations; the first amount in the cell is the suggestion.
    """
    if not _DONATION_WORDS.search(cost):
        return False, ""
    suggested = _POUNDS.search(cost)
    return True, suggested.group(1) if suggested else ""


def _row_group(name: str, choices: list[Group], only: Group | None, result: RowResult) -> Group | None:
    wanted = name.strip().lower()
    if not wanted and len(choices) == 1:
        return choices[0]
    found = next((g for g in choices if wanted in (g.name.lower(), g.slug)), None)
    if found is not None:
        return found
    if only is not None:
        message = f"This row is for '{name}', but this import is for {only.name} only; leave Group empty."
    elif wanted:
        names = ", ".join(g.name for g in choices) or "none yet"
        message = f"'{name}' is not a group here; use one of: {names}."
    else:
        message = "Say which group runs this activity, by its name."
    result.problems.append(RowProblem(result.line, GROUP_COLUMN, message))
    return None


def _check_row(
    cells: dict[str, str],
    group: Group | None,
    result: RowResult,
    base_url: str,
    stored: StoredActivity | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The row's activity as it would be saved; its problems go on ``result``.

    For a row that updates ``stored``, also whether it would change anything.
    """
    fields = _fields(cells, stored)
    doc, read_problems = forms.activity_from_fields(fields, stored.data if stored else None)
    if group is None:
        # Without a group the organiser is unknown; the rest of the row is still checked.
        group = Group(
            id=0, slug="", name="(group)", url=None, email=None, telephone=None, description=None,
            created_at=utcnow(),
        )  # fmt: skip
    slug = stored.slug if stored else None
    prepared = editing.prepare_activity(group, doc, slug, base_url=base_url, existing=stored, now=now)
    problems = forms.merge_problems(read_problems, validate_activity(prepared))
    found = _row_problems(result.line, _in_the_sheets_words(problems, cells))
    found += _vocab_problems(result.line, cells, fields)
    order = list(COLUMNS)
    result.problems += sorted(found, key=lambda p: order.index(p.column) if p.column in order else len(order))
    if stored is not None and stored.data is not None:
        result.unchanged = _content(prepared) == _content(stored.data)
    return doc


def _content(activity: dict[str, Any]) -> dict[str, Any]:
    """What the activity says, without the dates that saving it moves on."""
    return {key: value for key, value in activity.items() if key not in ("dateModified", "lastVerified")}


def _in_the_sheets_words(problems: Sequence[Problem], cells: Mapping[str, str]) -> list[Problem]:
    """The validator's problems less those that speak of vocabulary ids (:func:`_vocab_problems` says
    them with labels), and a choice not in its list said with the labels the sheet uses."""
    choices = {"booking": forms.BOOKING, "space": forms.SPACE}
    worded: list[Problem] = []
    for problem in problems:
        field = forms.field_for(problem) or ""
        if problem.code in _VOCAB_CODES and field in cells:
            continue
        if problem.code == "not-allowed" and field in choices and field in cells:
            labels = "; ".join(choices[field].values())
            message = f"'{cells[field].strip()}' is not one we know; use one of: {labels}."
            problem = Problem(problem.path, problem.code, message)
        elif problem.code == "bad-amount" and field == "amount":
            message = (
                f"'{cells['amount'].strip()}' is not a cost we can read; write Free, an amount like 3.50, "
                f"or {PAY_WHAT_YOU_CAN}, with a suggested donation if you like: "
                f"'{PAY_WHAT_YOU_CAN} (suggested £3)'."
            )
            problem = Problem(problem.path, problem.code, message)
        elif problem.code == "donation-notes":
            message = (
                f"Cost notes cannot go with {PAY_WHAT_YOU_CAN}: the listing says pay what you can, and the "
                "suggested donation if there is one. Leave Cost notes empty, and say what the money pays "
                "for in the Description."
            )
            problem = Problem(problem.path, problem.code, message)
        worded.append(problem)
    return worded


def _vocab_problems(line: int, cells: Mapping[str, str], fields: Mapping[str, Any]) -> list[RowProblem]:
    """Each value in a vocabulary column that is neither a label nor an id, with the closest label."""
    problems: list[RowProblem] = []
    for column, kind in VOCAB_COLUMNS.items():
        name = COLUMNS[column]
        if name not in cells:
            continue
        known = vocab.ids(kind)
        labels = {id: vocab.label(kind, id) for id in known}
        spellings = labels | {label.lower(): label for label in labels.values()}
        for typed in fields[name]:
            if forms.vocab_ids(kind, [typed])[0] in known:  # read as the form reads it
                continue
            close = difflib.get_close_matches(typed.lower(), list(spellings), n=1)
            fix = f"did you mean '{spellings[close[0]]}'?" if close else "use one from the list."
            message = f"'{typed}' is not one of the {_VOCAB_NOUNS[kind]} we know; {fix}"
            problems.append(RowProblem(line, column, message))
    return problems


def _row_problems(line: int, problems: Sequence[Any]) -> list[RowProblem]:
    return [
        RowProblem(line, COLUMN_FOR_FIELD.get(forms.field_for(problem) or "", WHOLE_ROW), problem.message)
        for problem in problems
    ]
