"""The ``localfeed-publisher`` command: run the publisher and look after its data.

Settings come from environment variables, as for the app (DATABASE_URL, PUBLIC_URL,
SECRET_KEY...), so a command acts on the same data as the server it sits beside.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from typing import Any

import click
from flask import Flask
from sqlalchemy import Engine

from federation.clock import clock, utcnow
from federation.db import compacted
from federation.dbcommands import db_commands
from publisher import create_app
from publisher.extensions import get_store
from publisher.store import MIGRATIONS, Group, Store, StoreError


def _app() -> Flask:
    """The app for a one-off command: the serving process, not this one, pushes its changes."""
    return create_app({"HUB_WORKER": False})


def _store(app: Flask) -> Store:
    with app.app_context():
        return get_store()


def _group(store: Store, slug: str) -> Group:
    group = store.get_group_by_slug(slug)
    if group is None:
        known = ", ".join(g.slug for g in store.list_groups()) or "none yet; add one with 'add-group'"
        raise click.ClickException(f"There is no group {slug!r}. Groups: {known}.")
    return group


@click.group()
def main() -> None:
    """Run a Localfeed publisher and manage its groups, editors, tokens and data.

    Settings are read from environment variables: DATABASE_URL, PUBLIC_URL, SECRET_KEY and others.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Serve with gunicorn and this many worker processes (for production). "
    "Without it, a development server runs in this process.",
)
def serve(host: str, port: int, workers: int | None) -> None:
    """Serve the publisher over HTTP."""
    if workers:
        command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"{host}:{port}"]
        os.execv(sys.executable, [*command, "publisher:create_app()"])
    app = create_app()
    from werkzeug.serving import run_simple

    from publisher import impact, reminders

    reminders.start_periodic(app)  # with --workers, run `send-reminders` from cron instead
    impact.start_periodic(app)  # with --workers, editors fetch with "Fetch the latest counts"
    run_simple(host, port, app, threaded=True)


@main.command("create-admin")
@click.option("--email", required=True, help="The administrator's email address, used to log in.")
@click.password_option(help="The password (asked for if not given).")
def create_admin(email: str, password: str) -> None:
    """Add an administrator, who manages groups, editors and tokens."""
    try:
        user = _store(_app()).add_user(email, password, "admin")
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Added administrator {user.email}.")


@main.command("add-group")
@click.option("--name", required=True, help="The group's name as people know it, e.g. 'Mitcham Walkers'.")
@click.option("--slug", default=None, help="Short name for addresses (default: made from the name).")
@click.option("--url", default=None, help="The group's own website.")
@click.option("--email", default=None, help="The group's public email address.")
@click.option("--telephone", default=None, help="The group's public telephone number.")
def add_group(name: str, slug: str | None, url: str | None, email: str | None, telephone: str | None) -> None:
    """Add a group whose activities this publisher hosts. Prints the group's slug."""
    try:
        group = _store(_app()).add_group(name, slug, url=url, email=email, telephone=telephone)
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    click.echo(group.slug)


@main.command("add-editor")
@click.option("--email", required=True, help="The editor's email address, used to log in.")
@click.option("--group", "group_slug", required=True, help="The slug of the group they edit.")
@click.password_option(help="The password (asked for if not given).")
def add_editor(email: str, group_slug: str, password: str) -> None:
    """Add an editor, who can change their own group's activities only."""
    store = _store(_app())
    try:
        user = store.add_user(email, password, "editor", _group(store, group_slug).id)
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Added editor {user.email} for {group_slug}.")


@main.command("create-token")
@click.option("--group", "group_slug", required=True, help="The slug of the group the token acts for.")
@click.option(
    "--label", default="API token", show_default=True, help="What the token is for, to recognise it."
)
def create_token(group_slug: str, label: str) -> None:
    """Create an API token for a group. Prints the token: it is shown only this once."""
    store = _store(_app())
    _token, clear = store.create_token(_group(store, group_slug).id, label)
    click.echo("Keep this token secret; it cannot be shown again.", err=True)
    click.echo(clear)


@main.command("import-csv")
@click.argument("csv_file", type=click.File("rb"))
@click.option(
    "--group",
    "group_slug",
    default=None,
    help="The slug of the group every row belongs to. "
    "Without it, each row names its group in the Group column.",
)
@click.option("--dry-run", is_flag=True, help="Check every row and report problems; save nothing.")
@click.option("--good-rows-only", is_flag=True, help="Save the good rows even if other rows have problems.")
def import_csv(csv_file, group_slug: str | None, dry_run: bool, good_rows_only: bool) -> None:
    """Import activities from a CSV file (one row per activity; see the template in the admin pages).

    Every row is checked first; unless --good-rows-only, nothing is saved while any row has a problem.
    A file over CSV_IMPORT_MAX_ROWS rows or CSV_IMPORT_MAX_BYTES bytes is not imported at all.
    Exits with status 1 when there are problems.
    """
    from publisher import importer

    app = _app()
    store = _store(app)
    groups = _group(store, group_slug) if group_slug else store.list_groups()
    report = importer.import_csv(
        store,
        groups,
        csv_file,  # read a piece at a time: the file is never held whole
        dry_run=dry_run,
        good_rows_only=good_rows_only,
        base_url=_base_url(app),
        now=clock(app)(),
        budget=importer.ImportBudget.from_config(app.config),
    )
    click.echo(report.summary())
    for problem in report.problems:
        click.echo(str(problem))
    if report.unlisted_note():
        click.echo(report.unlisted_note())
    for warning in report.warnings:
        click.echo(f"Warning: {warning}")
    if not report.ok:
        sys.exit(1)


@main.command("csv-template")
def csv_template() -> None:
    """Print the CSV template for import-csv: every column, with example rows to copy."""
    from publisher import importer

    click.echo(importer.template_csv(), nl=False)


def _base_url(app: Flask) -> str:
    """PUBLIC_URL, which a command needs to mint ids (there is no request to take it from)."""
    if not app.config["PUBLIC_URL"]:
        raise click.ClickException(
            "Set PUBLIC_URL to the address people reach this publisher at "
            "(like https://activities.example.org), so new activities get their permanent addresses."
        )
    return app.config["PUBLIC_URL"].rstrip("/")


@main.command()
@click.option(
    "--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="File (default: stdout)."
)
def export(output) -> None:
    """Write a full JSON backup: groups, editors (no passwords), activities and tombstones."""
    app = _app()
    store = _store(app)
    json.dump(export_data(store, app.config["PUBLISHER_NAME"]), output, ensure_ascii=False, indent=1)
    output.write("\n")


def export_data(store: Store, publisher_name: str) -> dict[str, Any]:
    """Everything needed to rebuild the publisher's content, without any secret."""
    groups = store.list_groups()
    slugs: dict[int | None, str] = {group.id: group.slug for group in groups}  # an admin has no group
    return {
        "publisher": publisher_name,
        "exportedAt": utcnow().isoformat(timespec="seconds"),
        "lastChangeNumber": store.last_change_number(),
        "groups": [
            {key: value for key, value in vars(group).items() if key not in ("id", "created_at")}
            | {"createdAt": group.created_at.isoformat()}
            for group in groups
        ],
        "users": [
            {"email": user.email, "role": user.role, "group": slugs.get(user.group_id)}
            for user in store.list_users()
        ],
        "activities": [
            {
                "slug": stored.slug,
                "group": slugs[stored.group_id],
                "id": stored.uri,
                "kind": stored.kind,
                "state": stored.state,
                "changeNumber": stored.change_number,
                "modifiedAt": stored.modified_at.isoformat(),
                "deletedAt": stored.deleted_at and stored.deleted_at.isoformat(),
                "data": stored.data,
            }
            for stored in reversed(store.list_activities(include_deleted=True))
        ],
    }


@main.command("purge-tombstones")
def purge_tombstones() -> None:
    """Forget deleted activities older than TOMBSTONE_DAYS (feed readers have had their chance)."""
    app = _app()
    removed = _store(app).purge_tombstones(timedelta(days=app.config["TOMBSTONE_DAYS"]))
    click.echo(f"Removed {removed} tombstone(s).")


@main.command("housekeeping")
def housekeeping_command() -> None:
    """Purge what is past its retention (relayed outbox records, delivered pushes, old tombstones), then
    compact the database. The running publisher does this every HOUSEKEEPING_SECONDS by itself."""
    from publisher import housekeeping
    from publisher.hub import HUB_KEY

    app = _app()
    report = housekeeping.run(_store(app), app.extensions[HUB_KEY].hub, app.config)
    database = compacted(report.pop("database"))
    removed = ", ".join(f"{count} {what}" for what, count in report.items())
    click.echo(f"Removed {removed}. {database}".strip())


@main.command("send-reminders")
def send_reminders() -> None:
    """Email the editors of activities not confirmed for REMINDER_STEPS_DAYS (run it daily, e.g. from cron).

    Without SMTP_HOST the emails are kept in the outbox at /admin/outbox.
    """
    from publisher import reminders

    try:
        sent = reminders.send_reminders(_app())
    except reminders.ReminderError as error:
        raise click.ClickException(str(error)) from None
    for reminder in sent:
        where = "sent to " + ", ".join(reminder.recipients) if reminder.delivered else "kept in the outbox"
        click.echo(f"Reminder {reminder.step} for {reminder.slug}: {where}.")
    click.echo(f"{len(sent)} reminder(s).")


def _upgraded() -> Engine:
    """The app's engine, its database upgraded as the app starts (``db upgrade``)."""
    return _store(create_app({"HUB_WORKER": False, "DATABASE_AUTO_UPGRADE": True})).engine


main.add_command(db_commands(MIGRATIONS, _upgraded))
