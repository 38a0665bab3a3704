"""The editors' web UI through the test client: tenancy, CSRF, log-in limits, actions, the no-login link."""

from __future__ import annotations

import html
import io
import re
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from publisher import editing, importer
from publisher.store import Group, Store
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import store_of

BASE = "http://localhost"
PASSWORD = "correct horse battery"


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client: FlaskClient, email: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns a CSRF token of the new session for the next posts."""
    token = csrf_token(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.text
    return csrf_token(client.get("/admin/").text)


def as_submitted(form: str, token: str) -> dict[str, Any]:
    """What a browser posts for the activity form as shown: typed text, ticked choices, selections."""
    typed = r'<input type="(?:text|time|date|url|email|tel)" id="[^"]+" name="([^"]+)" value="([^"]*)"'
    fields: dict[str, Any] = {name: html.unescape(value) for name, value in re.findall(typed, form)}
    for name, value in re.findall(
        r'<input type="(?:checkbox|radio)" name="([^"]+)" value="([^"]+)"[^>]*checked', form
    ):
        fields.setdefault(name, []).append(value)
    for name, options in re.findall(
        r'<select id="[^"]+" name="([^"]+)"[^>]*>(.*?)</select>', form, re.DOTALL
    ):
        if chosen := re.search(r'value="([^"]*)" selected', options):
            # A drop-down and boxes may share a name (the main kind of activity, the others): both are sent.
            fields[name] = [chosen.group(1), *fields[name]] if name in fields else chosen.group(1)
    for name, text in re.findall(r'<textarea id="[^"]+" name="([^"]+)"[^>]*>([^<]*)</textarea>', form):
        fields[name] = html.unescape(text)
    return {**fields, "csrf_token": token}


def add_activity(store: Store, group: Group, **overrides) -> str:
    result = editing.save_activity(store, group, weekly_activity(**overrides), base_url=BASE)
    assert result.ok, result.problems
    return result.slug


@pytest.fixture
def two_groups(publisher_app: Flask):
    store = store_of(publisher_app)
    walkers = store.add_group("Mitcham Walkers")
    lunch = store.add_group("St Mark's Lunch Club")
    store.add_user("walker@example.org", PASSWORD, "editor", walkers.id)
    store.add_user("cook@example.org", PASSWORD, "editor", lunch.id)
    store.add_user("admin@example.org", PASSWORD, "admin")
    return store, walkers, lunch


def test_an_editor_cannot_read_or_change_another_groups_activities(publisher_app, two_groups):
    store, walkers, lunch = two_groups
    walk = add_activity(store, walkers, name="Mitcham Health Walk")
    lunch_club = add_activity(store, lunch, name="Winter Warmer Lunch")
    before = store.get_activity(lunch_club)
    client = publisher_app.test_client()
    token = log_in(client, "walker@example.org")

    listing = client.get("/admin/").text
    assert "Mitcham Health Walk" in listing
    assert "Winter Warmer Lunch" not in listing
    assert client.get(f"/admin/activities/{lunch_club}/edit").status_code == 404
    assert client.get(f"/admin/activities/{lunch_club}/delete").status_code == 404
    form = {"csrf_token": token, "name": "Hijacked", "categories": "walking"}
    attempts = [
        (f"/admin/activities/{lunch_club}/edit", form),
        (f"/admin/activities/{lunch_club}/status", {"csrf_token": token, "status": "cancelled"}),
        (f"/admin/activities/{lunch_club}/still-running", {"csrf_token": token}),
        (f"/admin/activities/{lunch_club}/delete", {"csrf_token": token}),
    ]
    for url, data in attempts:
        response = client.post(url, data=data)
        assert response.status_code == 404, url
        assert "it is not one of your group" in response.text
    # Another group's activity and a missing one look alike.
    assert client.get("/admin/activities/no-such-walk/edit").status_code == 404
    assert store.get_activity(lunch_club) == before
    # Administrators' pages are closed to editors.
    assert client.get("/admin/groups").status_code == 403
    assert client.post("/admin/tokens", data={"csrf_token": token, "group": lunch.id}).status_code == 403
    assert store.list_tokens(lunch.id) == []
    # Their own activity they can change.
    paused = client.post(f"/admin/activities/{walk}/status", data={"csrf_token": token, "status": "paused"})
    assert paused.status_code == 302
    assert store.get_activity(walk).data["status"] == "paused"


def test_posts_without_the_csrf_token_are_refused(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'csrf.sqlite'}")
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    store.add_user("walker@example.org", PASSWORD, "editor", group.id)
    slug = add_activity(store, group)
    client = app.test_client()

    refused = client.post("/admin/login", data={"email": "walker@example.org", "password": PASSWORD})
    assert refused.status_code == 400
    assert "nothing was changed" in refused.text
    assert client.get("/admin/").status_code == 302  # still logged out

    log_in(client, "walker@example.org")
    assert client.post(f"/admin/activities/{slug}/delete").status_code == 400
    forged = client.post(f"/admin/activities/{slug}/delete", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert not store.get_activity(slug).is_deleted


def test_log_in_is_rate_limited_per_address(make_publisher, tmp_path):
    app = make_publisher(
        f"sqlite:///{tmp_path / 'limit.sqlite'}", RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute"
    )
    store = store_of(app)
    store.add_user("admin@example.org", PASSWORD, "admin")
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").text)

    def attempt(password: str):
        return client.post(
            "/admin/login", data={"email": "admin@example.org", "password": password, "csrf_token": token}
        )

    for _ in range(3):
        failed = attempt("guess")
        assert failed.status_code == 401
        # The same words whether the email or the password was wrong.
        assert "The email address or password is not right" in failed.text
    blocked = attempt(PASSWORD)
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.text
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("public_url", ["https://activities.example.org", ""])
def test_the_session_cookie_is_lax_and_secure_behind_https(make_publisher, tmp_path, public_url):
    app = make_publisher(f"sqlite:///{tmp_path / 'cookie.sqlite'}", PUBLIC_URL=public_url)
    store_of(app).add_user("admin@example.org", PASSWORD, "admin")
    client = app.test_client()
    base_url = public_url or BASE
    page = client.get("/admin/login", base_url=base_url)
    form = {"email": "admin@example.org", "password": PASSWORD, "csrf_token": csrf_token(page.text)}
    # Over HTTPS the CSRF check also wants the form to come from this site, as a browser says.
    sent_from = {"Referer": f"{base_url}/admin/login"}
    logged_in = client.post("/admin/login", data=form, base_url=base_url, headers=sent_from)
    assert logged_in.status_code == 302
    cookie = logged_in.headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie
    assert ("Secure" in cookie) == bool(public_url)


def test_a_large_spreadsheet_imports_and_one_over_the_limit_is_refused(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'large.sqlite'}", MAX_CONTENT_LENGTH=1_048_576)
    store = store_of(app)
    store.add_group("Mitcham Walkers")
    store.add_user("admin@example.org", PASSWORD, "admin")
    client = app.test_client()
    token = log_in(client, "admin@example.org")
    # Bigger than Flask's 500 kB default for one form field, as the confirm step sends it back;
    # a spreadsheet's trailing empty rows are skipped.
    large = importer.template_csv() + "\r\n" * 300_000

    checked = client.post(
        "/admin/import",
        data={"csrf_token": token, "file": (io.BytesIO(large.encode()), "activities.csv")},
        content_type="multipart/form-data",
    )
    assert "Checked only, nothing saved" in checked.text
    confirm = {"csrf_token": token, "csv_text": large, "confirm": "all"}
    done = client.post("/admin/import", data=confirm, content_type="multipart/form-data")
    assert "Imported 2 activities" in done.text

    too_large = large + "\r\n" * 300_000
    refused = client.post(
        "/admin/import",
        data={"csrf_token": token, "file": (io.BytesIO(too_large.encode()), "activities.csv")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 413
    assert "This site takes up to 1 MB at a time, so nothing was changed." in refused.text
    assert len(store.list_activities()) == 2


def test_an_editor_adds_previews_changes_pauses_confirms_and_deletes(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'flow.sqlite'}")
    store = store_of(app)
    group = store.add_group("St Mark's Lunch Club", email="lunch@stmarks.example")
    store.add_user("cook@example.org", PASSWORD, "editor", group.id)
    client = app.test_client()
    token = log_in(client, "cook@example.org")
    lunch = {
        "csrf_token": token,
        "name": "Winter Warmer Lunch",
        "description": "A hot two-course lunch and a chat.",
        "categories": ["lunch-club", "social-club"],
        "venue": "St Mark's Church Hall",
        "street": "St Mark's Road",
        "town": "Mitcham",
        "postcode": "cr4 2lf",
        "frequency": "once",
        "start_time": "12:00",
        "end_time": "11:00",
        "first_date": "2026-12-10",
        "cost": "paid",
        "amount": "",
        "booking": "book-ahead",
        "booking_link": "javascript:alert(1)",
        "space": "spaces",
    }

    refused = client.post("/admin/activities/new", data=lunch)
    assert refused.status_code == 422
    html = refused.text
    for field, words in [
        ("end_time", "is not after the start"),
        ("amount", "Enter the cost in pounds"),
        ("booking_link", "is not a web address"),
    ]:
        assert re.search(rf'id="{field}-error">.*{re.escape(words)}', html), field
        assert f'<a href="#{field}">' in html
    assert 'value="Winter Warmer Lunch"' in html
    # The first kind is the drop-down's choice; the others are ticked under "More about this activity".
    assert 'value="lunch-club" selected' in html
    assert re.search(r'value="social-club"[^>]*checked', html)
    assert store.list_activities() == []

    lunch.update(end_time="2pm", amount="£3.50", booking_link="https://tickets.example/lunch", preview="1")
    preview = client.post("/admin/activities/new", data=lunch)
    assert preview.status_code == 200
    assert "Preview: this is how the listing will look" in preview.text
    assert "£3.50" in preview.text and "Thursday 10 December 2026" in preview.text
    assert store.list_activities() == []

    del lunch["preview"]
    saved = client.post("/admin/activities/new", data=lunch)
    assert saved.status_code == 302
    [stored] = store.list_activities()
    slug = stored.slug
    assert stored.data["startDate"] == "2026-12-10T12:00:00+00:00"
    assert stored.data["endDate"] == "2026-12-10T14:00:00+00:00"
    assert stored.data["price"] == {"currency": "GBP", "amount": 3.5}
    assert stored.data["location"]["address"]["postalCode"] == "CR4 2LF"
    assert stored.data["organizer"] == {"name": "St Mark's Lunch Club", "email": "lunch@stmarks.example"}
    assert stored.data["lastVerified"] == editing.today().isoformat()

    # The edit form shows what is stored; a change to monthly keeps the id.
    edit = client.get(f"/admin/activities/{slug}/edit").text
    assert 'value="14:00"' in edit and 'value="2026-12-10"' in edit
    monthly = {**lunch, "frequency": "monthly-1", "days": ["TH"], "first_date": "2027-01-07"}
    assert client.post(f"/admin/activities/{slug}/edit", data=monthly).status_code == 302
    changed = store.get_activity(slug)
    assert changed.uri == stored.uri and changed.change_number > stored.change_number
    assert changed.data["type"] == "SessionSeries" and "startDate" not in changed.data
    assert changed.data["schedule"][0]["byMonthWeek"] == 1

    # No one price: the notes alone say how it works, and nothing calls it free.
    pay_what_you_can = {**monthly, "amount": "", "cost_notes": "Pay what you can"}
    assert client.post(f"/admin/activities/{slug}/edit", data=pay_what_you_can).status_code == 302
    assert store.get_activity(slug).data["price"] == {"isFree": False, "notes": "Pay what you can"}
    # Said in words like that, it is the form's own "Pay what you can" choice when edited again.
    edit = client.get(f"/admin/activities/{slug}/edit").text
    assert re.search(r'name="cost" value="donation"[^>]*checked', edit)
    assert 'id="cost_notes" name="cost_notes" value=""' in edit
    public = client.get(f"/activities/{slug}").text
    assert "<dd>Pay what you can</dd>" in public and "<dd>Free" not in public

    for status, label in [("paused", "Paused"), ("cancelled", "Cancelled"), ("scheduled", "Running")]:
        client.post(f"/admin/activities/{slug}/status", data={"csrf_token": token, "status": status})
        assert store.get_activity(slug).data["status"] == status
        assert label in client.get("/admin/").text

    store.set_last_verified(slug, date(2026, 1, 1))
    assert "Last checked Thursday 1 January 2026" in client.get("/admin/").text
    client.post(f"/admin/activities/{slug}/still-running", data={"csrf_token": token})
    assert store.get_activity(slug).data["lastVerified"] == editing.today().isoformat()

    assert "This cannot be undone" in client.get(f"/admin/activities/{slug}/delete").text
    assert not store.get_activity(slug).is_deleted
    client.post(f"/admin/activities/{slug}/delete", data={"csrf_token": token})
    assert store.get_activity(slug).is_deleted
    assert client.get(f"/admin/activities/{slug}/edit").status_code == 404


def test_the_signed_still_running_link_works_once_and_a_tampered_one_is_refused(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'link.sqlite'}")
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    slug = add_activity(store, group, lastVerified="2026-01-01")
    link = f"/admin/still-running/{editing.confirmation_token(app.config['SECRET_KEY'], slug)}"
    client = app.test_client()  # nobody is logged in

    asked = client.get(link)
    assert asked.status_code == 200
    assert "Is “Mitcham Health Walk” still running as described?" in asked.text
    assert store.get_activity(slug).data["lastVerified"] == "2026-01-01"  # looking changes nothing
    done = client.post(link, data={"csrf_token": csrf_token(asked.text)})
    assert done.status_code == 200 and "Thank you" in done.text
    confirmed = store.get_activity(slug)
    assert confirmed.data["lastVerified"] == editing.today().isoformat()

    again = client.post(link, data={"csrf_token": csrf_token(asked.text)})
    assert "This link has already been used" in again.text
    assert client.get(link).status_code == 409
    assert store.get_activity(slug).change_number == confirmed.change_number

    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    refused = client.get(tampered)
    assert refused.status_code == 400
    assert "This link does not work" in refused.text and "Copy the whole link" in refused.text
    other = editing.confirmation_token("another publisher's secret", slug)
    assert client.get(f"/admin/still-running/{other}").status_code == 400


def test_an_administrator_manages_groups_editors_and_tokens(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'admin.sqlite'}")
    store = store_of(app)
    store.add_user("admin@example.org", PASSWORD, "admin")
    client = app.test_client()
    token = log_in(client, "admin@example.org")

    added = client.post("/admin/groups", data={"csrf_token": token, "name": "Pollards Hill Men's Shed"})
    assert added.status_code == 302
    [shed] = store.list_groups()
    assert "Pollards Hill Men&#39;s Shed" in client.get("/admin/groups").text
    assert client.post("/admin/groups", data={"csrf_token": token, "name": " "}).status_code == 422

    form = {"csrf_token": token, "email": "shed@example.org", "password": "short", "group": shed.id}
    assert "too short" in client.post("/admin/editors", data=form).text
    form["password"] = "sawdust and tea"
    assert client.post("/admin/editors", data=form).status_code == 302
    [editor] = [user for user in store.list_users() if user.email == "shed@example.org"]
    assert editor.group_id == shed.id and editor.role == "editor"

    # An administrator adds activities for any group, choosing it on the form.
    walkers = store.add_group("Mitcham Walkers")
    new = client.get("/admin/activities/new").text
    assert f'<option value="{walkers.id}">Mitcham Walkers</option>' in new
    unchosen = client.post("/admin/activities/new", data={"csrf_token": token, "name": "Walk"})
    assert re.search(r'id="group-error">.*Choose the group', unchosen.text)
    # The rest of the form is checked too, and the summary starts with the group, as the form does.
    links = re.findall(r'<li><a href="#([a-z_]+)">', unchosen.text)
    assert links[:2] == ["group", "categories"] and "venue" in links and "postcode" in links
    created = client.post("/admin/tokens", data={"csrf_token": token, "group": shed.id, "label": "Website"})
    clear = re.search(r'id="new-token">([^<]+)<', created.text).group(1)
    assert store.group_for_token(clear) == shed
    assert clear not in client.get("/admin/tokens").text  # shown once only
    [api_token] = store.list_tokens(shed.id)
    client.post(f"/admin/tokens/{api_token.id}/revoke", data={"csrf_token": token})
    assert store.group_for_token(clear) is None

    client.post(
        f"/admin/editors/{editor.id}/password", data={"csrf_token": token, "password": "new password 1"}
    )
    assert store.authenticate("shed@example.org", "new password 1") == editor
    client.post(f"/admin/editors/{editor.id}/remove", data={"csrf_token": token})
    assert store.authenticate("shed@example.org", "new password 1") is None


def test_an_event_round_trips_through_the_edit_form_unchanged(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'roundtrip.sqlite'}")
    store = store_of(app)
    group = store.add_group("St Mark's Lunch Club")
    store.add_user("cook@example.org", PASSWORD, "editor", group.id)
    result = editing.save_activity(store, group, event_activity(capacity={"status": "full"}), base_url=BASE)
    client = app.test_client()
    token = log_in(client, "cook@example.org")
    form = client.get(f"/admin/activities/{result.slug}/edit").text
    fields = as_submitted(form, token)
    assert fields["frequency"] == "once"
    assert client.post(f"/admin/activities/{result.slug}/edit", data=fields).status_code == 302
    after = store.get_activity(result.slug).data
    ignore = {"dateModified", "lastVerified"}
    assert {k: v for k, v in after.items() if k not in ignore} == {
        k: v for k, v in result.activity.items() if k not in ignore
    }


def test_further_times_are_shown_kept_and_removed_one_by_one(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'times.sqlite'}")
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    store.add_user("walker@example.org", PASSWORD, "editor", group.id)
    first = weekly_activity()["schedule"][0]
    thursday = {**first, "byDay": ["TH"], "startTime": "14:00", "endTime": "15:30"}
    monthly = {**first, "repeatFrequency": "P1M", "byMonthWeek": -1, "byDay": ["FR"]}
    slug = add_activity(store, group, schedule=[first, thursday, monthly])
    client = app.test_client()
    token = log_in(client, "walker@example.org")

    form = client.get(f"/admin/activities/{slug}/edit").text
    assert "It also meets" in form
    assert "Remove “Every Thursday, 14:00–15:30”" in form
    assert "Remove “Last Friday of the month, 10:00–11:00”" in form
    # Saved as shown, with the first time changed: the further times stay as they were.
    fields = {**as_submitted(form, token), "start_time": "09:30"}
    assert client.post(f"/admin/activities/{slug}/edit", data=fields).status_code == 302
    assert store.get_activity(slug).data["schedule"] == [{**first, "startTime": "09:30"}, thursday, monthly]

    form = client.get(f"/admin/activities/{slug}/edit").text
    fields = {**as_submitted(form, token), "remove_times": ["1"]}
    assert client.post(f"/admin/activities/{slug}/edit", data=fields).status_code == 302
    assert store.get_activity(slug).data["schedule"] == [{**first, "startTime": "09:30"}, monthly]

    form = client.get(f"/admin/activities/{slug}/edit").text
    assert "Thursday" not in form.split("It also meets")[1].split("</fieldset>")[0]
    fields = {**as_submitted(form, token), "remove_times": ["1"]}
    assert client.post(f"/admin/activities/{slug}/edit", data=fields).status_code == 302
    assert store.get_activity(slug).data["schedule"] == [{**first, "startTime": "09:30"}]
    assert "It also meets" not in client.get(f"/admin/activities/{slug}/edit").text
