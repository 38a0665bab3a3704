"""The activity form's fields: what a first date left empty means, and every missing field at once."""

from __future__ import annotations

from datetime import date

from publisher import forms
from schema.price import pay_what_you_can
from tests.factories import weekly_activity

TODAY = date(2026, 12, 7)


def essentials(**changes: object) -> forms.Fields:
    fields = forms.fields_from_activity(weekly_activity())
    fields.update(first_date="", **changes)
    return fields


def test_an_ongoing_weekly_or_monthly_group_is_listed_from_today_or_the_start_it_has():
    for frequency in ("weekly", "monthly-2"):
        doc, problems = forms.activity_from_fields(essentials(frequency=frequency), today=TODAY)
        assert problems == []
        assert doc["schedule"][0]["startDate"] == "2026-12-07"
    # Saved again with the date left empty, it keeps the start it had: nothing changes.
    stored = weekly_activity()
    doc, _ = forms.activity_from_fields(essentials(), stored, today=TODAY)
    assert doc["schedule"] == stored["schedule"]
    # A start still to come is not kept when the date is cleared: it runs already.
    planned = weekly_activity(schedule=[{**stored["schedule"][0], "startDate": "2027-03-02"}])
    doc, _ = forms.activity_from_fields(essentials(), planned, today=TODAY)
    assert doc["schedule"][0]["startDate"] == "2026-12-07"


def test_the_day_comes_only_from_a_typed_date_and_every_other_week_needs_one():
    fields = essentials(days=[])
    doc, _ = forms.activity_from_fields(fields, today=TODAY)
    assert [problem.path for problem in forms.missing_fields(fields, doc)] == ["$.schedule[0].byDay"]
    assert "byDay" not in doc["schedule"][0]  # today is a Monday; the group may not meet on Mondays

    fields = essentials(frequency="fortnightly")
    doc, _ = forms.activity_from_fields(fields, today=TODAY)
    [problem] = forms.missing_fields(fields, doc)
    assert forms.field_for(problem) == "first_date" and "date of one session" in problem.message


def test_an_empty_form_names_every_required_field_once_in_the_forms_order():
    fields = forms.blank_fields()
    doc, read = forms.activity_from_fields(fields, today=TODAY)
    assert read == []  # nothing typed, so nothing unreadable: every problem is a missing field
    problems = forms.form_problems(fields, doc, read, [])
    assert [forms.field_for(problem) for problem in problems] == [
        "name", "categories", "venue", "street", "town", "postcode", "days", "start_time", "end_time",
        "cost", "booking",
    ]  # fmt: skip


def test_pay_what_you_can_round_trips_through_the_fields():
    doc, problems = forms.activity_from_fields(essentials(cost="donation", amount="£2.50"), today=TODAY)
    assert problems == [] and doc["price"] == pay_what_you_can(2.5)
    again = forms.fields_from_activity(doc)
    assert (again["cost"], again["amount"], again["cost_notes"]) == ("donation", "2.50", "")

    _, problems = forms.activity_from_fields(essentials(cost="donation", cost_notes="Lunch"), today=TODAY)
    assert [forms.field_for(problem) for problem in problems] == ["cost_notes"]
    _, problems = forms.activity_from_fields(essentials(cost="donation", amount="-1"), today=TODAY)
    assert [forms.field_for(problem) for problem in problems] == ["amount"]
