"""CSV import: an umbrella body fills in a spreadsheet, one row per activity, and imports it.

The columns have the names people see in the editors' form ("Activity name", "How
often", "Cost"...), and each cell is read exactly as the form reads what is typed
(``publisher.forms``), so a spreadsheet and the form accept the same things. Every row
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
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from federation.clock import utcnow
from publisher import editing, forms
from publisher.store import Group, Store, StoredActivity
from schema import validate_activity

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
    """

    line: int
    name: str
    group: str
    problems: list[RowProblem] = field(default_factory=list)
    slug: str | None = None
    updates: str | None = None
    unchanged: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def action(self) -> str:
        """What importing the row does: "new", "updated" or "unchanged"."""
        if self.updates is None:
            return "new"
        return "unchanged" if self.unchanged else "updated"


@dataclass
class ImportReport:
    """What an import found and did, row by row."""

    dry_run: bool
    rows: list[RowResult] = field(default_factory=list)
    file_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
            return "The file could not be read: " + " ".join(self.file_problems)
        good, bad = len(self.good_rows), len(self.bad_rows)
        ready = _counts(self.good_rows)
        found = f"{good} row(s) are ready to import ({ready}) and {bad} row(s) have problems."
        if self.dry_run:
            return f"Checked only, nothing saved: {found}"
        if not self.written:
            return f"Nothing was imported: {found} Fix them, or import the good rows only."
        written = len(self.written)
        return f"Imported {written} activit{'y' if written == 1 else 'ies'}: {_counts(self.written)}."


def _counts(rows: Sequence[RowResult]) -> str:
    """Like "2 new, 1 updated, 5 unchanged", leaving out the actions no row takes."""
    actions = [row.action for row in rows]
    counts = [f"{actions.count(a)} {a}" for a in ("new", "updated", "unchanged") if a in actions]
    return ", ".join(counts) or "none"


def decode(data: bytes) -> str:
    """Text from an uploaded file: UTF-8 (with or without Excel's byte-order mark), else Windows-1252."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


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
) -> ImportReport:
    """Check every row of a CSV of activities and, unless ``dry_run``, save them.

    ``groups`` is the one group every row belongs to (an editor's import), or the groups
    the "Group" column may name (an administrator's). Nothing is written when any row
    has a problem, unless ``good_rows_only``; then the good rows are saved and the report
    still lists the bad ones. ``now`` is the app's clock reading, for ``lastVerified``.
    """
    text = source.read() if hasattr(source, "read") else source
    if isinstance(text, bytes):
        text = decode(text)
    report = ImportReport(dry_run=dry_run)
    # Spreadsheets and browsers end lines with CRLF; cells keep plain LF line breaks.
    rows = _read_rows(text.lstrip("\ufeff").replace("\r\n", "\n"), report)
    only_group = groups if isinstance(groups, Group) else None
    choices = [groups] if isinstance(groups, Group) else list(groups)
    live: dict[int, list[StoredActivity]] = {}
    claimed: dict[str, int] = {}  # slug → the line that updates it
    checked: list[tuple[RowResult, Group | None, dict[str, Any]]] = []
    for line, cells in rows:
        name = cells.get("name", "").strip()
        result = RowResult(line=line, name=name, group=cells.get("group", "").strip())
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
        report.rows.append(result)
        checked.append((result, group, doc))
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
        result.problems += _row_problems(result.line, saved.problems)
    return report


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


def _read_rows(text: str, report: ImportReport) -> list[tuple[int, dict[str, Any]]]:
    """(line number where the row starts, form fields) for each non-empty row."""
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","  # Excel in some locales
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        report.file_problems.append("It is empty. Start from the template, which has a row of column names.")
        return []
    by_name = {column.lower(): column for column in COLUMNS}
    columns: list[str | None] = []
    for heading in header:
        column = by_name.get(" ".join(heading.split()).lower())
        columns.append(column)
        if column is None and heading.strip():
            close = difflib.get_close_matches(heading.strip(), list(COLUMNS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "it was ignored."
            report.warnings.append(f"Column '{heading.strip()}' is not one we know; {hint}")
    if "Activity name" not in columns:
        report.file_problems.append(
            "Its first row has no 'Activity name' column. The first row must hold the column names, "
            "as in the template."
        )
        return []
    rows = []
    line = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            named = zip(columns, cells, strict=False)
            rows.append((line, {COLUMNS[column]: cell for column, cell in named if column}))
        line = reader.line_num + 1
    return rows


def _fields(cells: dict[str, str], stored: StoredActivity | None = None) -> dict[str, Any]:
    """A row's cells as the form's fields: lists split on ';' or ',', and "Cost" as free or an amount.

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
        if amount.lower() in _FREE_WORDS:
            fields.update(cost="free", amount="")
        else:
            fields["cost"] = "paid" if amount else ""
    return fields


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
    doc, read_problems = forms.activity_from_fields(_fields(cells, stored), stored.data if stored else None)
    if group is None:
        # Without a group the organiser is unknown; the rest of the row is still checked.
        group = Group(
            id=0, slug="", name="(group)", url=None, email=None, telephone=None, description=None,
            created_at=utcnow(),
        )  # fmt: skip
    slug = stored.slug if stored else None
    prepared = editing.prepare_activity(group, doc, slug, base_url=base_url, existing=stored, now=now)
    problems = forms.merge_problems(read_problems, validate_activity(prepared))
    result.problems += _row_problems(result.line, problems)
    if stored is not None and stored.data is not None:
        result.unchanged = _content(prepared) == _content(stored.data)
    return doc


def _content(activity: dict[str, Any]) -> dict[str, Any]:
    """What the activity says, without the dates that saving it moves on."""
    return {key: value for key, value in activity.items() if key not in ("dateModified", "lastVerified")}


def _row_problems(line: int, problems: Sequence[Any]) -> list[RowProblem]:
    return [
        RowProblem(line, COLUMN_FOR_FIELD.get(forms.field_for(problem) or "", WHOLE_ROW), problem.message)
        for problem in problems
    ]
