"""The editors' web UI under ``/admin``: activities, the "still running" link, and the administrator's pages.

An editor sees and changes only their own group's activities; another group's activity
is answered exactly like a missing one (404), so editors cannot learn what others have.
An administrator manages groups, editors and API tokens and acts for every group.
Every change goes through ``publisher.editing``, like the JSON API and the CSV import,
and every page works without JavaScript: each button is a form that posts.
"""

from __future__ import annotations

from typing import IO, Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from werkzeug import Response as WerkzeugResponse
from werkzeug.exceptions import HTTPException

from federation.clock import clock
from federation.geocoding import RememberingGeocoder, from_config
from publisher import auth, editing, forms, importer, password_reset
from publisher.auth import admin_required, login_required, renew_own_session, signed_in_user, user_group
from publisher.extensions import get_store, public_url
from publisher.store import Group, StoredActivity, StoreError
from schema import Problem, validate_activity, vocab
from schema.schedule import describe

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.register_blueprint(auth.bp)
bp.register_blueprint(password_reset.bp)

STATUS_LABELS = {"scheduled": "Running", "paused": "Paused", "cancelled": "Cancelled"}
STATUS_DONE = {
    "paused": "is paused: it stays listed, marked as paused",
    "cancelled": "is cancelled: it stays listed, marked as cancelled",
    "scheduled": "is running again",
}


@bp.context_processor
def _form_choices() -> dict[str, Any]:
    return {
        "FREQUENCIES": forms.FREQUENCIES,
        "DAYS": forms.DAYS,
        "BOOKING": forms.BOOKING,
        "SPACE": forms.SPACE,
        "COST": forms.COST,
        "STATUS_LABELS": STATUS_LABELS,
        "CATEGORY_CHOICES": vocab.categories(),
        "AUDIENCE_CHOICES": vocab.audiences(),
        "ACCESS_CHOICES": vocab.accessibility(),
    }


def message_page(title: str, message: str, status: int) -> tuple[str, int]:
    """A page that says in plain words what happened and what to do, with its HTTP status."""
    return render_template("admin/message.html", title=title, message=message), status


@bp.errorhandler(CSRFError)
def _csrf_error(error: CSRFError) -> tuple[str, int]:
    explained = "This form was out of date or incomplete, so nothing was changed."
    return message_page("Please try again", f"{explained} Go back, reload the page and send it again.", 400)


@bp.errorhandler(413)
def _too_large(error: HTTPException) -> tuple[str, int]:
    megabytes = current_app.config["MAX_CONTENT_LENGTH"] / 1_048_576
    explained = f"This site takes up to {megabytes:g} MB at a time, so nothing was changed."
    return message_page("The file is too big", f"{explained} Split the spreadsheet into smaller files.", 413)


@bp.errorhandler(429)
def _too_many(error: HTTPException) -> tuple[str, int]:
    explained = "There have been too many attempts to log in from here. Wait a minute, then try again."
    advice = "If you have forgotten your password, ask for a link to set a new one."
    return message_page("Too many attempts", f"{explained} {advice}", 429)


@bp.errorhandler(403)
def forbidden_page(error: HTTPException) -> tuple[str, int]:
    """An editor on an administrator's page; other ``/admin`` blueprints register this too."""
    explained = "Only an administrator can do this. Ask your administrator if you need it done."
    return message_page("This page is for administrators", explained, 403)


@bp.errorhandler(404)
@bp.errorhandler(editing.ActivityNotFound)
def _not_found(error: Exception) -> tuple[str, int]:
    explained = "There is nothing here, or it is not one of your group's activities."
    return message_page("Page not found", f"{explained} Check the address, or go back to your list.", 404)


# -- activities ----------------------------------------------------------------------------


def _groups_for_user() -> list[Group]:
    """The groups the user acts for: their own, or every group for an administrator."""
    if signed_in_user().is_admin:
        return get_store().list_groups()
    group = user_group()
    return [group] if group else []


def _owned(slug: str) -> tuple[StoredActivity, Group]:
    """A live activity the user may change, with its group; anything else is 404."""
    stored = get_store().get_activity(slug)
    user = signed_in_user()
    if stored is None or stored.is_deleted or (not user.is_admin and stored.group_id != user.group_id):
        abort(404)
    group = get_store().get_group(stored.group_id)
    assert group is not None  # an activity's group_id is a foreign key
    return stored, group


@bp.get("/")
@login_required
def activities() -> str:
    store = get_store()
    groups = _groups_for_user()
    listed = [(group, store.list_activities(group.id)) for group in groups]
    for _group, items in listed:
        items.sort(key=lambda stored: stored.live_data["name"].lower())
    return render_template("admin/activities.html", listed=listed)


@bp.route("/activities/new", methods=["GET", "POST"])
@login_required
def new_activity() -> Any:
    return _activity_form(None, None)


@bp.route("/activities/<slug>/edit", methods=["GET", "POST"])
@login_required
def edit_activity(slug: str) -> Any:
    stored, group = _owned(slug)
    return _activity_form(stored, group)


def _activity_form(stored: StoredActivity | None, group: Group | None) -> Any:
    """Show, preview or save the activity form; ``stored`` is None for a new activity.

    Every problem is found in one go and shown at once; what is only doubtful (full, yet
    "just turn up") is saved and then pointed out with what to do.
    """
    groups = _groups_for_user()
    if request.method == "GET":
        fields = forms.fields_from_activity(stored.live_data) if stored else forms.blank_fields()
        chosen = group.id if group else (groups[0].id if len(groups) == 1 else None)
        return _render_form(stored, fields, [], groups, chosen)

    fields = forms.read_form(request.form)
    now = clock(current_app)()
    read_problems: list[Problem] = []
    if group is None:
        chosen = request.form.get("group", type=int) or (groups[0].id if len(groups) == 1 else None)
        group = next((g for g in groups if g.id == chosen), None)
        if group is None:
            read_problems.append(Problem("$.group", "required", "Choose the group that runs this activity."))
    else:
        chosen = group.id
    base = stored.data if stored else None
    doc, reading = forms.activity_from_fields(fields, base, today=editing.today(now))
    slug = stored.slug if stored else None
    # Without a chosen group the rest is still checked (as any group), so every problem shows at once.
    checked_as = group or next(iter(groups), None)
    prepared, checked = doc, []
    if checked_as is not None:
        prepared = editing.prepare_activity(
            checked_as, doc, slug, base_url=public_url(), existing=stored, now=now
        )
        checked = validate_activity(prepared)
    problems = forms.form_problems(fields, prepared, [*read_problems, *reading], checked)
    if problems or group is None or "preview" in request.form:
        return _render_form(stored, fields, problems, groups, chosen, None if problems else prepared)

    result = editing.save_activity(get_store(), group, doc, slug, base_url=public_url(), now=now)
    if result.problems:
        problems = forms.form_problems(fields, result.activity, [], result.problems)
        return _render_form(stored, fields, problems, groups, chosen)
    flash(f"Saved “{result.activity['name']}”. It is in your public feed now.", "success")
    for warning in [*editing.contradictions(result.activity), _placer().warning(result.activity)]:
        if warning:
            flash(warning, "warning")
    return redirect(url_for("admin.activities"))


def _placer() -> editing.Placer:
    """Whether activities can be placed on a map, by this publisher's geocoding settings.

    The geocoder is built once per app (it holds the postcode file, or remembers the
    service's answers so each postcode is asked once).
    """
    if "geocoder" not in current_app.extensions:
        current_app.extensions["geocoder"] = RememberingGeocoder(from_config(current_app.config))
    return editing.Placer.for_store(get_store(), current_app.extensions["geocoder"])


def _render_form(
    stored: StoredActivity | None,
    fields: forms.Fields,
    problems: list[Problem],
    groups: list[Group],
    chosen: int | None,
    preview: dict[str, Any] | None = None,
) -> tuple[str, int]:
    errors = forms.problems_by_field(problems)
    summary = [(forms.field_for(problem) or "", problem.message) for problem in problems]
    reminder_link = None
    if stored is not None:
        token = editing.confirmation_token(current_app.config["SECRET_KEY"], stored.slug)
        reminder_link = url_for("admin.confirm_link", token=token, _external=True)
    html = render_template(
        "admin/activity_form.html",
        stored=stored,
        fields=fields,
        errors=errors,
        summary=summary,
        groups=groups,
        groups_by_id={group.id: group.name for group in groups},
        chosen=chosen,
        preview=preview,
        warnings=editing.contradictions(preview) if preview else [],
        more_open=any(name in errors for name in forms.MORE_FIELDS),
        reminder_link=reminder_link,
        further_times={
            str(position): f"Remove “{describe(entry)}”"
            for position, entry in forms.further_times(stored.live_data if stored else {})
        },
    )
    return html, 422 if problems else 200


@bp.post("/activities/<slug>/status")
@login_required
def set_status(slug: str) -> WerkzeugResponse:
    stored, group = _owned(slug)
    status = request.form.get("status", "")
    if status not in STATUS_LABELS:
        abort(400)
    result = editing.save_activity(
        get_store(),
        group,
        {**stored.live_data, "status": status},
        slug,
        base_url=public_url(),
        now=clock(current_app)(),
    )
    if result.problems:
        flash(
            f"“{stored.live_data['name']}” could not be changed: {result.problems[0].message} "
            "Edit the activity to fix this first.",
            "error",
        )
    else:
        flash(f"“{stored.live_data['name']}” {STATUS_DONE[status]}.", "success")
    return redirect(url_for("admin.activities"))


@bp.post("/activities/<slug>/still-running")
@login_required
def still_running(slug: str) -> WerkzeugResponse:
    stored, group = _owned(slug)
    editing.confirm_still_running(get_store(), group, slug, clock(current_app)())
    flash(f"Thank you: “{stored.live_data['name']}” is marked as checked today.", "success")
    return redirect(url_for("admin.activities"))


@bp.route("/activities/<slug>/delete", methods=["GET", "POST"])
@login_required
def delete_activity(slug: str) -> Any:
    stored, group = _owned(slug)
    if request.method == "GET":
        return render_template("admin/delete.html", stored=stored)
    editing.delete_activity(get_store(), group, slug)
    flash(f"Deleted “{stored.live_data['name']}”. It is no longer listed.", "success")
    return redirect(url_for("admin.activities"))


# -- the "still running" link from a reminder email: no log-in ------------------------------


@bp.route("/still-running/<token>", methods=["GET", "POST"])
def confirm_link(token: str) -> Any:
    """Confirm an activity from a reminder email's link; each link works once.

    A link counts as used once the activity has been confirmed on or after the day the
    link was made, so a forwarded or replayed email cannot keep a stale listing fresh.
    """
    store = get_store()
    try:
        link = editing.read_confirmation_token(current_app.config["SECRET_KEY"], token)
    except editing.BadConfirmationLink as error:
        return render_template("admin/confirm_link.html", state="bad", message=str(error)), 400
    stored = store.get_activity(link.slug)
    if stored is None or stored.is_deleted:
        return render_template(
            "admin/confirm_link.html",
            state="bad",
            message="This activity is no longer listed, so there is nothing to confirm. "
            "If it should be listed, log in and add it again.",
        ), 410
    if stored.live_data.get("lastVerified", "") >= link.issued_on.isoformat():
        return render_template("admin/confirm_link.html", state="used", activity=stored.data), 409
    if request.method == "GET":
        return render_template("admin/confirm_link.html", state="ask", activity=stored.data, token=token)
    group = store.get_group(stored.group_id)
    assert group is not None  # an activity's group_id is a foreign key
    now = clock(current_app)()
    if request.form.get("answer") == "stopped":
        # An answer too: the organiser has told us how things are today.
        paused = {**stored.live_data, "status": "paused", "lastVerified": editing.today(now).isoformat()}
        result = editing.save_activity(store, group, paused, link.slug, base_url=public_url(), now=now)
        if result.problems:
            problem = f"It could not be marked as stopped: {result.problems[0].message}"
            return render_template("admin/confirm_link.html", state="bad", message=problem), 422
        return render_template("admin/confirm_link.html", state="stopped", activity=result.activity)
    confirmed = editing.confirm_still_running(store, group, link.slug, now)
    return render_template("admin/confirm_link.html", state="done", activity=confirmed.data)


# -- administrators: groups, editors, tokens ------------------------------------------------


@bp.route("/groups", methods=["GET", "POST"])
@admin_required
def groups() -> Any:
    store = get_store()
    error = None
    if request.method == "POST":
        details = {key: request.form.get(key, "").strip() or None for key in ("url", "email", "telephone")}
        try:
            group = store.add_group(request.form.get("name", ""), **details)
        except StoreError as problem:
            error = str(problem)
        else:
            flash(f"Added the group {group.name}. Now add an editor for it.", "success")
            return redirect(url_for("admin.groups"))
    return render_template(
        "admin/groups.html", groups=store.list_groups(), error=error
    ), 422 if error else 200


@bp.route("/editors", methods=["GET", "POST"])
@admin_required
def editors() -> Any:
    store = get_store()
    error = None
    if request.method == "POST":
        role = "admin" if request.form.get("role") == "admin" else "editor"
        group_id = request.form.get("group", type=int) if role == "editor" else None
        try:
            user = store.add_user(
                request.form.get("email", ""), request.form.get("password", ""), role, group_id
            )
        except StoreError as problem:
            error = str(problem)
        else:
            flash(f"Added {user.email}. Give them their password in person or by phone.", "success")
            return redirect(url_for("admin.editors"))
    names = {group.id: group.name for group in store.list_groups()}
    return render_template(
        "admin/editors.html", users=store.list_users(), group_names=names, error=error
    ), 422 if error else 200


@bp.post("/editors/<int:user_id>/password")
@admin_required
def set_password(user_id: int) -> WerkzeugResponse:
    try:
        get_store().set_password(user_id, request.form.get("password", ""))
    except StoreError as problem:
        flash(str(problem), "error")
    else:
        renew_own_session(user_id)  # their other sessions have ended; this one goes on
        flash("The new password is set. Anyone logged in with the old one has been logged out.", "success")
    return redirect(url_for("admin.editors"))


@bp.post("/editors/<int:user_id>/remove")
@admin_required
def remove_user(user_id: int) -> WerkzeugResponse:
    if user_id == signed_in_user().id:
        flash("You cannot remove yourself; ask another administrator.", "error")
    else:
        get_store().delete_user(user_id)
        flash("Removed. They can no longer log in.", "success")
    return redirect(url_for("admin.editors"))


@bp.route("/tokens", methods=["GET", "POST"])
@admin_required
def tokens() -> Any:
    store = get_store()
    new_token = None
    error = None
    if request.method == "POST":
        try:
            _token, new_token = store.create_token(
                request.form.get("group", type=int) or 0, request.form.get("label", "")
            )
        except StoreError:
            error = "Choose the group the token will act for."
    all_groups = store.list_groups()
    listed = [(group, store.list_tokens(group.id)) for group in all_groups]
    # The clear token is shown in this response only: never flashed, as the session cookie is readable.
    return render_template(
        "admin/tokens.html", groups=all_groups, listed=listed, new_token=new_token, error=error
    ), 422 if error else 200


@bp.post("/tokens/<int:token_id>/revoke")
@admin_required
def revoke_token(token_id: int) -> WerkzeugResponse:
    if get_store().revoke_token(token_id):
        flash("The token is revoked: programs using it can no longer make changes.", "success")
    return redirect(url_for("admin.tokens"))


# -- CSV import ------------------------------------------------------------------------------


@bp.get("/import/template.csv")
def import_template() -> Response:
    response = Response(importer.template_csv(), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=localfeed-activities.csv"
    return response


@bp.get("/import/values")
def import_values() -> str:
    """The values the columns of the spreadsheet take from a list, in words, on a page anyone can read."""
    return render_template("admin/import_values.html", lists=importer.allowed_values())


@bp.route("/import", methods=["GET", "POST"])
@login_required
def import_activities() -> Any:
    """Upload a CSV and see the dry-run report; then confirm to import (the CSV travels back in the form)."""
    if request.method == "GET":
        return render_template("admin/import.html", report=None)
    upload = request.files.get("file")
    source: IO[bytes] | str
    if upload is not None and upload.filename:
        source = upload.stream  # its size is capped by MAX_CONTENT_LENGTH; read a piece at a time
    else:
        source = request.form.get("csv_text", "")
        if not source.strip():
            return render_template(
                "admin/import.html",
                report=None,
                error="Choose a CSV file to upload, saved from your spreadsheet.",
            ), 422
    confirm = request.form.get("confirm")
    report = importer.import_csv(
        get_store(),
        _groups_for_user() if signed_in_user().is_admin else user_group() or [],
        source,
        dry_run=confirm is None,
        good_rows_only=confirm == "good-rows",
        base_url=public_url(),
        now=clock(current_app)(),
        budget=importer.ImportBudget.from_config(current_app.config),
        placer=_placer(),
    )
    csv_text = ""
    if report.dry_run and report.good_rows and not report.file_problems:  # the confirm form sends it back
        if isinstance(source, str):
            csv_text = source
        else:
            source.seek(0)
            csv_text = importer.decode(source.read())
    status = 200 if report.ok else 422
    anchors = {values.column: values.anchor for values in importer.allowed_values()}
    return render_template("admin/import.html", report=report, csv_text=csv_text, anchors=anchors), status
