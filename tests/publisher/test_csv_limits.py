"""The CSV import bounded whatever the file: any line ending, oversized cells by line and column, budgets.

Uploaded over real HTTP through the editors' page, as a logged-in administrator, and run
through the ``import-csv`` command; the memory of a dry run of a 50 MB file is measured
in a process of its own. Afterwards every page and feed of the publisher answers 200.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from publisher.cli import main
from publisher.importer import MAX_CELL_CHARS, MAX_LISTED_PROBLEMS, template_csv
from tests.publisher.conftest import store_of
from tests.publisher.test_admin import PASSWORD, log_in
from tests.publisher.test_hostile_requests import assert_every_page_answers

ROOT = Path(__file__).resolve().parents[2]
LINE_ENDINGS = {"CRLF": "\r\n", "LF": "\n", "CR": "\r"}
# Peak memory a dry run of a 50 MB file may add to the process (docs/performance.md, "CSV import memory").
MEMORY_BOUND_MB = 32
BIG_FIELD = 3 * 1024 * 1024


def _template_rows() -> list[list[str]]:
    return list(csv.reader(io.StringIO(template_csv())))


def _written(rows: list[list[str]], endings: list[str]) -> str:
    """``rows`` as CSV, the n-th line ended by ``endings[n % len(endings)]`` (cells quoted as needed)."""
    lines = []
    for row in rows:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(row)  # quotes cells holding a line break
        lines.append(out.getvalue().removesuffix("\r\n"))
    return "".join(line + endings[n % len(endings)] for n, line in enumerate(lines))


@pytest.fixture
def admin_page(make_publisher, serve, tmp_path) -> Callable[..., tuple[httpx.Client, str, object]]:
    """``admin_page(**config)``: (an HTTP client logged in as an administrator, its CSRF token, the store)."""
    clients: list[httpx.Client] = []

    def _open(**config: object) -> tuple[httpx.Client, str, object]:
        app = make_publisher(f"sqlite:///{tmp_path / f'import{len(clients)}.sqlite'}", **config)
        store = store_of(app)
        store.add_group("Mitcham Walkers")
        store.add_user("admin@example.org", PASSWORD, "admin")
        client = httpx.Client(base_url=serve(app).url, timeout=60)
        clients.append(client)
        return client, log_in(client, "admin@example.org"), store

    yield _open
    for client in clients:
        client.close()


def _upload(client: httpx.Client, token: str, data: bytes) -> httpx.Response:
    return client.post(
        "/admin/import", data={"csrf_token": token}, files={"file": ("activities.csv", data, "text/csv")}
    )


def _listed(page: str) -> list[tuple[int, str, str]]:
    # A problem in a column that takes values from a list ends with a link to the list.
    link = r"(?: <a [^>]+>[^<]*</a>)?"
    rows = re.findall(rf"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*?){link}</td></tr>", page)
    return [(int(line), column, message) for line, column, message in rows]


def test_every_line_ending_reads_the_same_and_imports(admin_page):
    client, token, store = admin_page()
    header, *rows = _template_rows()
    rows[0][2] = "A gentle walk.\r\nTwo lines in one cell."
    styles = {**LINE_ENDINGS, "mixed": "\r\n|\n|\r"}
    for style, ending in styles.items():
        endings = ending.split("|")
        # The line break inside the quoted cell is written in the file's own style too.
        text = _written([header, *rows], endings).replace("walk.\r\nTwo", f"walk.{endings[-1]}Two")
        checked = _upload(client, token, text.encode())
        assert checked.status_code == 200, f"{style}: {_listed(checked.text)}"
        assert "2 row(s) are ready to import (2 new)" in checked.text, style
        assert _listed(checked.text) == [], style

    cr_only = _written([header, *rows], ["\r"]).replace("walk.\r\nTwo", "walk.\rTwo")
    done = client.post("/admin/import", data={"csrf_token": token, "csv_text": cr_only, "confirm": "all"})
    assert "Imported 2 activities" in done.text
    walk = next(a for a in store.list_activities() if a.data["name"] == "Mitcham Health Walk")
    assert walk.data["description"] == "A gentle walk.\nTwo lines in one cell."  # line breaks made plain
    assert_every_page_answers(client, [activity.slug for activity in store.list_activities()])


def test_the_command_reads_a_file_with_cr_line_endings(tmp_path, monkeypatch):
    for key, value in {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "cli-test",
        "PUBLIC_URL": "https://activities.example.org",
        "HUB_WORKER": "0",
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    assert runner.invoke(main, ["add-group", "--name", "Mitcham Walkers"]).exit_code == 0
    mac = tmp_path / "classic-mac.csv"
    mac.write_bytes(_written(_template_rows(), ["\r"]).encode("cp1252"))
    imported = runner.invoke(main, ["import-csv", "--group", "mitcham-walkers", str(mac)])
    assert imported.exit_code == 0, imported.output
    assert "Imported 2 activities: 2 new." in imported.output


def test_a_3_mb_cell_is_refused_by_line_and_column_and_the_rows_after_it_are_read(admin_page):
    client, token, store = admin_page(MAX_CONTENT_LENGTH=8 * 1024 * 1024)
    header, walk, coffee = _template_rows()
    quoted = [*walk[:1], "Long walk", "word, " * (BIG_FIELD // 6) + "\r\nend", *walk[3:]]
    bare = [*walk[:1], "Longer walk", *walk[2:4], "x" * BIG_FIELD, *walk[5:]]  # no quotes, no line break
    data = _written([header, quoted, bare, coffee], ["\r\n"]).encode()
    assert len(data) > 2 * BIG_FIELD

    checked = _upload(client, token, data)
    assert checked.status_code == 422
    listed = _listed(checked.text)
    assert [(line, column) for line, column, _ in listed] == [(2, "Description"), (4, "Venue")]
    assert all(f"a cell may hold at most {MAX_CELL_CHARS:,}" in message for _, _, message in listed)
    assert "1 row(s) are ready to import (1 new) and 2 row(s) have problems" in checked.text
    assert store.list_activities() == []


def test_a_file_past_a_budget_is_refused_where_it_goes_past_and_nothing_is_saved(admin_page):
    client, token, store = admin_page(CSV_IMPORT_MAX_ROWS=3, CSV_IMPORT_MAX_BYTES=4_000)
    header, walk, coffee = _template_rows()
    five_rows = _written([header, walk, coffee, walk, coffee, walk], ["\n"])
    too_many = _upload(client, token, five_rows.encode())
    assert too_many.status_code == 422
    assert "Line 5: the file has more than 3 rows of activities" in too_many.text
    assert 'name="confirm"' not in too_many.text
    confirm = {"csrf_token": token, "csv_text": five_rows, "confirm": "all"}
    confirmed = client.post("/admin/import", data=confirm)
    assert confirmed.status_code == 422 and "more than 3 rows" in confirmed.text

    long_rows = _written([header, walk, *[["Mitcham Walkers", "", "x" * 3_000]] * 2], ["\n"])
    too_long = _upload(client, token, long_rows.encode())
    assert too_long.status_code == 422
    assert "Line 4: the file goes on past 4,000 bytes, the most one import reads" in too_long.text
    assert store.list_activities() == []
    assert_every_page_answers(client, [])


def test_the_report_lists_a_bounded_number_of_problems_and_counts_the_rest(admin_page):
    client, token, _store = admin_page()
    header, walk, _coffee = _template_rows()
    bad = [*walk[:1], "Walk", *walk[2:7], "CR4 1A", "Every week", "Tuesday", "25:00"]
    checked = _upload(client, token, _written([header, *[bad] * 400], ["\r\n"]).encode())
    assert checked.status_code == 422
    listed = _listed(checked.text)
    assert len(listed) == MAX_LISTED_PROBLEMS
    unlisted = re.search(r"([\d,]+) more problem\(s\) are not listed here", checked.text)
    assert unlisted is not None and int(unlisted.group(1).replace(",", "")) > 0
    assert "0 row(s) are ready to import (none) and 400 row(s) have problems" in checked.text


def test_an_upload_over_the_request_limit_is_refused_with_what_to_do(admin_page):
    client, token, _store = admin_page(MAX_CONTENT_LENGTH=1024 * 1024)
    refused = _upload(client, token, template_csv().encode() + b"\r\n" * (1024 * 1024))
    assert refused.status_code == 413
    assert "This site takes up to 1 MB at a time" in refused.text


# A dry run through the command, in a process of its own, so its peak memory is its own.
CHILD = textwrap.dedent("""
    import json, sys
    import click
    from publisher.cli import main

    def run(*args):
        try:
            main(list(args), standalone_mode=False)
        except (SystemExit, click.ClickException):  # the exit status of a file with problems; a group there
            pass

    def status_mb(field):
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith(field + ":"))
        return int(line.split()[1]) / 1024  # kB

    run("add-group", "--name", "Mitcham Walkers")
    run("import-csv", "--dry-run", "--group", "mitcham-walkers", sys.argv[1])  # load what an import uses
    before = status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # start the peak (VmHWM) again from here, so it is the dry run's alone
    run("import-csv", "--dry-run", "--group", "mitcham-walkers", sys.argv[2])
    peak = status_mb("VmHWM")
    print(json.dumps({"grew_mb": round(peak - before, 1), "peak_mb": round(peak, 1)}))
""")


def fifty_megabyte_csv(path: Path) -> int:
    """A 50 MB CSV: 2,000 ordinary rows, then 16 rows with a 3 MB cell each, in every line-ending style."""
    header, walk, coffee = _template_rows()
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(_written([header, *[walk, coffee] * 1_000], ["\r\n", "\n", "\r"]))
        for n in range(16):
            long_walk = [*walk[:1], f"Long walk {n}", "word, " * (BIG_FIELD // 6), *walk[3:]]
            out.write(_written([long_walk], ["\r"]))
    return path.stat().st_size


def dry_run_in_a_child(tmp_path: Path, csv_path: Path, **env: str) -> tuple[dict, str]:
    small = tmp_path / "template.csv"
    small.write_text(template_csv(), encoding="utf-8")
    settings = {
        "DATABASE_URL": f"sqlite:///{tmp_path / f'{csv_path.stem}.sqlite'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "memory-test",
        "PUBLIC_URL": "https://activities.example.org",
        "HUB_WORKER": "0",
        **env,
    }
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(small), str(csv_path)],
        env={**os.environ, **settings, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    *output, figures = run.stdout.strip().splitlines()
    return json.loads(figures), "\n".join(output)


def test_a_dry_run_of_a_50_mb_file_stays_within_its_memory_bound(tmp_path):
    big = tmp_path / "fifty.csv"
    assert fifty_megabyte_csv(big) > 50_000_000

    # Budgets raised so the whole file is read: the memory is the streaming's, not the budget's.
    whole, report = dry_run_in_a_child(tmp_path, big, CSV_IMPORT_MAX_BYTES=str(64 * 1024 * 1024))
    assert whole["grew_mb"] < MEMORY_BOUND_MB, whole
    assert "2000 row(s) are ready to import (2000 new) and 16 row(s) have problems" in report
    oversized = re.findall(r"Line (\d+), Description: This cell holds over", report)
    assert [int(line) for line in oversized] == list(range(2002, 2018))

    # At the default budget the file is refused where it goes past 10 MB.
    stopped, report = dry_run_in_a_child(tmp_path, big)
    assert stopped["grew_mb"] < MEMORY_BOUND_MB, stopped
    assert re.search(r"Line \d+: the file goes on past 10 MB, the most one import reads", report), report
