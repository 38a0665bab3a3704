"""CSV import: an umbrella body fills in a spreadsheet, one row per activity, and imports it.

The columns have the names people see in the editors' form ("Activity name", "How
often", "Cost"...), and each cell is read exactly as the form reads what is typed
(``publisher.forms``), so a spreadsheet and the form accept the same things. Every row
is checked first; the report gives each problem by line number and column name, as a
spreadsheet shows them. Nothing is written in a dry run, nor when any row has a
problem, unless the caller asks to import only the good rows. Rows are written through
``editing.save_activity``, like every other change.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from publisher import editing, forms
from publisher.store import Group, Store
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
    """One activity row: its problems, or the slug it was saved under."""

    line: int
    name: str
    group: str
    problems: list[RowProblem] = field(default_factory=list)
    slug: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


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
        found = f"{good} row(s) are ready to import and {bad} row(s) have problems."
        if self.dry_run:
            return f"Checked only, nothing saved: {found}"
        if not self.written:
            return f"Nothing was imported: {found} Fix them, or import the good rows only."
        return f"Imported {len(self.written)} activit{'y' if len(self.written) == 1 else 'ies'}."


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
) -> ImportReport:
    """Check every row of a CSV of activities and, unless ``dry_run``, save them.

    ``groups`` is the one group every row belongs to (an editor's import), or the groups
    the "Group" column may name (an administrator's). Nothing is written when any row
    has a problem, unless ``good_rows_only``; then the good rows are saved and the report
    still lists the bad ones.
    """
    text = source.read() if hasattr(source, "read") else source
    if isinstance(text, bytes):
        text = decode(text)
    report = ImportReport(dry_run=dry_run)
    # Spreadsheets and browsers end lines with CRLF; cells keep plain LF line breaks.
    rows = _read_rows(text.lstrip("\ufeff").replace("\r\n", "\n"), report)
    only_group = groups if isinstance(groups, Group) else None
    choices = [groups] if isinstance(groups, Group) else list(groups)
    checked: list[tuple[RowResult, Group | None, dict[str, Any]]] = []
    for line, cells in rows:
        result = RowResult(line=line, name=cells.get("name", ""), group=cells.get("group", ""))
        group = _row_group(cells.get("group", ""), choices, only_group, result)
        doc = _check_row(cells, group, result, base_url)
        report.rows.append(result)
        checked.append((result, group, doc))
    if dry_run or report.file_problems or (report.bad_rows and not good_rows_only):
        return report
    for result, group, doc in checked:
        if result.ok and group is not None:
            saved = editing.save_activity(store, group, doc, base_url=base_url)
            result.slug = saved.slug
            result.problems += _row_problems(result.line, saved.problems)
    return report


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
            fields = {COLUMNS[column]: cell for column, cell in zip(columns, cells, strict=False) if column}
            rows.append((line, _fields(fields)))
        line = reader.line_num + 1
    return rows


def _fields(cells: dict[str, str]) -> dict[str, Any]:
    """A row's cells as the form's fields: lists split on ';' or ',', and "Cost" as free or an amount."""
    fields = forms.blank_fields() | {"frequency": "", "cost": "", "booking": ""}
    for name, cell in cells.items():
        cell = cell.strip()
        if name in forms.LIST_FIELDS:
            fields[name] = [part.strip() for part in cell.replace(";", ",").split(",") if part.strip()]
        else:
            fields[name] = cell
    amount = fields.get("amount", "")
    if amount.lower() in _FREE_WORDS:
        fields.update(cost="free", amount="")
    elif amount:
        fields["cost"] = "paid"
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
    cells: dict[str, Any], group: Group | None, result: RowResult, base_url: str
) -> dict[str, Any]:
    """The row's activity as it would be saved; its problems go on ``result``."""
    doc, read_problems = forms.activity_from_fields(cells)
    if group is None:
        # Without a group the organiser is unknown; the rest of the row is still checked.
        group = Group(
            id=0, slug="", name="(group)", url=None, email=None, telephone=None, description=None,
            created_at=datetime.now(UTC),
        )  # fmt: skip
    prepared = editing.prepare_activity(group, doc, base_url=base_url)
    problems = forms.merge_problems(read_problems, validate_activity(prepared))
    result.problems += _row_problems(result.line, problems)
    return doc


def _row_problems(line: int, problems: Sequence[Any]) -> list[RowProblem]:
    return [
        RowProblem(line, COLUMN_FOR_FIELD.get(forms.field_for(problem) or "", WHOLE_ROW), problem.message)
        for problem in problems
    ]
