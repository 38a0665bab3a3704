"""``python -m schema validate``, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from schema.rpde import deleted_item, encode_page, updated_item
from tests.factories import event_activity, weekly_activity
from tests.schema.conftest import EXAMPLE_FILES


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "schema", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_valid_files_pass():
    result = run("validate", *EXAMPLE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"{path}: valid (an activity)" for path in EXAMPLE_FILES]
    assert result.stderr == ""


def test_problems_are_printed_per_file_and_exit_1(tmp_path):
    bad = weekly_activity()
    bad["location"]["address"]["postalCode"] = "CR4 1A"
    bad_file = write(tmp_path / "bad.json", bad)
    good_file = write(tmp_path / "good.json", event_activity())
    result = run("validate", bad_file, good_file)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{bad_file}: 1 problem in an activity",
        f"{bad_file}: $.location.address.postalCode: postcode: "
        "Postcode 'CR4 1A' is not a UK postcode, like 'CR4 1AA'.",
        f"{good_file}: valid (an activity)",
    ]


def test_a_list_of_activities_reports_each_by_index(tmp_path):
    listing = write(
        tmp_path / "list.json", [weekly_activity(), weekly_activity(name=""), event_activity(categories=[])]
    )
    result = run("validate", listing)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{listing}: 2 problems in 3 activities"
    assert lines[1].startswith(f"{listing}: $[1].name: required: Name is empty;")
    assert lines[2].startswith(f"{listing}: $[2].categories: required: Categories are empty;")


def test_an_rpde_page_is_checked_with_each_updated_items_data(tmp_path):
    bad = weekly_activity(description="<p>Hello</p>")
    body = encode_page(
        [
            updated_item(bad["id"], 1, bad),
            deleted_item("https://publisher.example/activities/old", 2),
            {
                "state": "updated",
                "kind": "Event",
                "id": "https://publisher.example/activities/x",
                "modified": "3",
            },
        ],
        "https://publisher.example/feeds/activities?afterChangeNumber=3",
    )
    page = tmp_path / "page.json"
    page.write_bytes(body)
    result = run("validate", page)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{page}: 3 problems in an RPDE page of 3 items",
        f"{page}: $.items[0].data.description: html-not-allowed: Description contains HTML ('<p>'); "
        "write plain text without tags — formatting and links in it are not shown.",
        f"{page}: $.items[2].modified: wrong-type: Item change number should be a whole number, not text.",
        f"{page}: $.items[2].data: required: "
        "Item data is missing; an updated item carries the activity as 'data'.",
    ]


def test_unreadable_and_malformed_files_exit_2_and_the_rest_are_still_checked(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "Walk",', encoding="utf-8")
    missing = tmp_path / "missing.json"
    good = write(tmp_path / "good.json", weekly_activity())
    bad = write(tmp_path / "bad.json", weekly_activity(categories=["knitting"]))
    result = run("validate", broken, missing, good, bad)
    assert result.returncode == 2
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{broken}: not valid JSON (")
    assert errors[0].endswith("); fix the syntax and try again.")
    assert errors[1] == f"{missing}: cannot read the file: No such file or directory."
    assert f"{good}: valid (an activity)" in result.stdout
    assert f"{bad}: $.categories[0]: unknown-category:" in result.stdout


def test_standard_input_is_read_for_a_dash():
    result = run("validate", "-", stdin=json.dumps(weekly_activity(lastVerified="soon")))
    assert result.returncode == 1
    assert result.stdout.splitlines()[1].startswith("-: $.lastVerified: bad-date: Last verified date 'soon'")


def test_usage_errors():
    result = run()
    assert result.returncode == 2
    assert "usage: python -m schema" in result.stderr
    help_text = run("validate", "--help")
    assert help_text.returncode == 0
    assert "an RPDE page" in help_text.stdout
