"""CSV import: row-by-row problems by line and column, nothing written until every row is right (or asked)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from publisher import importer
from publisher.importer import COLUMNS, COST_COLUMN, GROUP_COLUMN, import_csv, template_csv
from tests.publisher.conftest import store_of
from tests.publisher.test_admin import PASSWORD, log_in

FIXTURE = Path(__file__).parent / "fixtures" / "three_good_two_bad.csv"
BASE = "https://activities.example.org"


def test_three_good_rows_and_two_bad_ones(publisher_app):
    store = store_of(publisher_app)
    groups = [store.add_group("Mitcham Walkers"), store.add_group("St Mark's Lunch Club")]
    text = FIXTURE.read_text(encoding="utf-8")

    checked = import_csv(store, groups, text, base_url=BASE)
    # The first row spans lines 2 and 3 (a line break inside quotes), so the rows start at 2, 4, 5, 6, 7.
    assert [row.line for row in checked.rows] == [2, 4, 5, 6, 7]
    assert [(p.line, p.column) for p in checked.problems] == [
        (6, "Postcode"),
        (7, "End time"),
        (7, "Booking link"),
    ]
    assert "CR4 2L" in checked.problems[0].message
    assert [row.name for row in checked.bad_rows] == ["Knit and Natter", "Evening Stroll"]
    assert "nothing saved" in checked.summary()
    assert store.last_change_number() == 0

    refused = import_csv(store, groups, text, dry_run=False, base_url=BASE)
    assert refused.written == [] and "Nothing was imported" in refused.summary()
    assert store.last_change_number() == 0 and store.outbox_backlog() == 0

    imported = import_csv(store, groups, text, dry_run=False, good_rows_only=True, base_url=BASE)
    assert [row.name for row in imported.written] == [
        "Mitcham Health Walk",
        "Nordic Walking",
        "Winter Warmer Lunch",
    ]
    assert len(imported.bad_rows) == 2  # still reported
    feed = {item.data["name"]: item for item in store.changes_after(0, 100)}
    assert set(feed) == {"Mitcham Health Walk", "Nordic Walking", "Winter Warmer Lunch"}
    assert store.outbox_backlog() == 3  # each change has its outbox record for push
    nordic = feed["Nordic Walking"].data
    assert nordic["id"] == f"{BASE}/activities/nordic-walking"
    assert nordic["categories"] == ["walking", "exercise-class"]
    assert nordic["price"] == {"currency": "GBP", "amount": 2.5}
    assert nordic["schedule"][0] | {} == {
        "repeatFrequency": "P2W",
        "byDay": ["SA"],
        "startTime": "09:00",
        "endTime": "10:30",
        "startDate": "2026-01-10",
        "timezone": "Europe/London",
    }
    lunch = feed["Winter Warmer Lunch"]
    assert lunch.group_id == groups[1].id
    assert lunch.data["startDate"] == "2026-12-10T12:00:00+00:00"
    assert feed["Mitcham Health Walk"].data["description"].endswith("Common,\nfinishing at the café.")


def test_an_import_for_one_group_refuses_rows_of_another(make_publisher, tmp_path):
    store = store_of(make_publisher(f"sqlite:///{tmp_path / 'one.sqlite'}"))
    walkers = store.add_group("Mitcham Walkers")
    store.add_group("St Mark's Lunch Club")
    report = import_csv(store, walkers, FIXTURE.read_bytes(), dry_run=False, base_url=BASE)
    group_problems = [(p.line, p.message) for p in report.problems if p.column == "Group"]
    assert [line for line, _ in group_problems] == [5, 6]
    assert "for Mitcham Walkers only" in group_problems[0][1]
    assert store.list_activities() == []


def test_the_template_imports_cleanly_and_spreadsheet_quirks_are_read(make_publisher, tmp_path):
    store = store_of(make_publisher(f"sqlite:///{tmp_path / 'template.sqlite'}"))
    walkers = store.add_group("Mitcham Walkers")
    template = template_csv()
    assert next(csv.reader(io.StringIO(template))) == list(COLUMNS)
    assert import_csv(store, [walkers], template, base_url=BASE).ok

    # Excel in some places saves with semicolons, a byte-order mark or Windows-1252.
    rows = list(csv.reader(io.StringIO(template)))
    rows[0][1] = "  activity NAME "
    rows[0].append("Notes")
    semicolons = io.StringIO()
    csv.writer(semicolons, delimiter=";").writerows(rows)
    data = "\ufeff".encode() + semicolons.getvalue().encode("cp1252")
    report = import_csv(store, walkers, data, dry_run=False, base_url=BASE)
    assert report.ok, report.problems
    assert report.warnings == ["Column 'Notes' is not one we know; it was ignored."]
    assert {row.name for row in report.written} == {"Mitcham Health Walk", "Coffee and Chat"}
    coffee = next(a for a in store.list_activities() if a.data["name"] == "Coffee and Chat").data
    assert coffee["schedule"][0]["byMonthWeek"] == 1 and coffee["schedule"][0]["startTime"] == "14:00"

    empty = import_csv(store, walkers, "", base_url=BASE)
    assert not empty.ok and "empty" in empty.summary()
    headless = import_csv(store, walkers, "Walk,Tuesday\n", base_url=BASE)
    assert "no 'Activity name' column" in headless.summary()


def test_the_admin_upload_page_shows_the_dry_run_then_imports_the_good_rows(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'upload.sqlite'}")
    store = store_of(app)
    store.add_group("Mitcham Walkers")
    store.add_group("St Mark's Lunch Club")
    store.add_user("admin@example.org", PASSWORD, "admin")
    client = app.test_client()
    token = log_in(client, "admin@example.org")

    served = client.get("/admin/import/template.csv")
    assert served.mimetype == "text/csv" and served.text == template_csv()

    upload = {"csrf_token": token, "file": (io.BytesIO(FIXTURE.read_bytes()), "activities.csv")}
    report = client.post("/admin/import", data=upload, content_type="multipart/form-data").text
    assert "Checked only, nothing saved" in report
    assert re.search(r"<td>6</td><td>Postcode</td><td>Postcode &#39;CR4 2L&#39;", report)
    assert "Import the 3 good rows only" in report
    assert store.list_activities() == []

    csv_text = FIXTURE.read_text(encoding="utf-8")
    confirm = {"csrf_token": token, "csv_text": csv_text, "confirm": "good-rows"}
    done = client.post("/admin/import", data=confirm).text
    assert "Imported 3 activities" in done
    assert len(store.list_activities()) == 3
    assert importer.decode("café".encode("cp1252")) == "café"


def _csv(rows: list[dict[str, str]]) -> str:
    """A CSV with the columns the rows use, in the template's order."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[c for c in COLUMNS if any(c in row for row in rows)], restval="")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_importing_the_spreadsheet_again_updates_instead_of_adding(publisher_app):
    store = store_of(publisher_app)
    walkers = store.add_group("Mitcham Walkers")
    first = import_csv(store, walkers, template_csv(), dry_run=False, base_url=BASE)
    assert first.ok and first.summary() == "Imported 2 activities: 2 new."
    before = {a.data["name"]: a for a in store.list_activities()}
    changes, backlog = store.last_change_number(), store.outbox_backlog()

    again = import_csv(store, walkers, template_csv(), dry_run=False, base_url=BASE)
    assert again.summary() == "Imported 2 activities: 2 unchanged."
    assert [row.slug for row in again.written] == [
        before[n].slug for n in ("Mitcham Health Walk", "Coffee and Chat")
    ]
    assert (store.last_change_number(), store.outbox_backlog()) == (changes, backlog)  # nothing to push

    # Next season's sheet: the walk moves to 10:30, in a file without the Description column,
    # and the name is typed differently. The walk is updated in place; its description stays.
    sheet = [{**row} for row in importer.TEMPLATE_ROWS]
    sheet[0].update({"Activity name": "  mitcham health WALK", "Start time": "10:30", "End time": "11:30"})
    for row in sheet:
        del row["Description"]
    checked = import_csv(store, walkers, _csv(sheet), base_url=BASE)
    assert [row.action for row in checked.rows] == ["updated", "unchanged"]
    assert "(1 updated, 1 unchanged)" in checked.summary()
    updated = import_csv(store, walkers, _csv(sheet), dry_run=False, base_url=BASE)
    assert updated.ok and updated.summary() == "Imported 2 activities: 1 updated, 1 unchanged."
    walk = store.get_activity(before["Mitcham Health Walk"].slug)
    assert walk.uri == before["Mitcham Health Walk"].uri and walk.change_number == changes + 1
    assert walk.data["schedule"][0]["startTime"] == "10:30"
    assert walk.data["name"] == "mitcham health WALK"  # as the sheet now spells it, trimmed
    assert walk.data["description"] == before["Mitcham Health Walk"].data["description"]
    assert len(store.list_activities()) == 2


def test_same_named_activities_are_told_apart_by_day_and_time(publisher_app):
    store = store_of(publisher_app)
    group = store.add_group("St Mark's")
    coffee = {**importer.TEMPLATE_ROWS[1], GROUP_COLUMN: "", "Activity name": "Coffee morning"}
    coffee.update({"How often": "Every week", "Day": "Tuesday", "Start time": "10:00", "End time": "11:00"})
    thursday = {**coffee, "Day": "Thursday"}
    assert import_csv(store, group, _csv([coffee, thursday]), dry_run=False, base_url=BASE).ok

    cheaper = {**thursday, COST_COLUMN: "£1.00"}
    friday = {**coffee, "Day": "Friday"}
    report = import_csv(store, group, _csv([cheaper, friday]), dry_run=False, base_url=BASE)
    assert [row.action for row in report.rows] == ["updated", "new"]
    prices = {
        a.data["schedule"][0]["byDay"][0]: a.data["price"].get("amount") for a in store.list_activities()
    }
    assert prices == {"TU": 2.0, "TH": 1.0, "FR": 2.0}

    twice = import_csv(store, group, _csv([cheaper, {**cheaper, COST_COLUMN: "Free"}]), base_url=BASE)
    assert [(p.line, p.column) for p in twice.problems] == [(3, "Activity name")]
    assert "Line 2 already changes this activity" in twice.problems[0].message

    # Two look-alikes at one time (typed into the editor) cannot be told apart: the row says so.
    store.create_activity(
        group.id,
        "coffee-morning-again",
        {**store.get_activity(report.rows[0].slug).data, "id": f"{BASE}/activities/coffee-morning-again"},
    )
    unclear = import_csv(store, group, _csv([cheaper]), dry_run=False, base_url=BASE)
    assert not unclear.ok and "could change any of them" in unclear.problems[0].message
    assert len(store.list_activities()) == 4
