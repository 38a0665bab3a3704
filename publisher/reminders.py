"""Reminders that keep listings current: "is this still running as described?"

Stale, unchecked listings are the field's biggest complaint, and the organiser is the
only person who can say an activity is still on. So when an activity's ``lastVerified``
is REMINDER_AFTER_DAYS old (90), its group's editors get an email with a signed one-click
"Still running as described" link (``editing.confirmation_token``; the link's page is
``admin.confirm_link``) and a "Something has changed" link to the edit form. If nobody
answers, a second and a third reminder follow at REMINDER_STEPS_DAYS ("90,104,118"), and
then no more: a reminder nobody reads is noise, and the overdue page shows the rest.

Each reminder sent is a row of ``sent_reminders`` keyed by the activity, the
``lastVerified`` it was about and its step, so no reminder goes twice (even with two
runs at once: the row is written before the email), and a confirmation, which
changes ``lastVerified``, starts the sequence over.

Runs from ``localfeed-publisher send-reminders`` (cron), from the ``serve`` command every
REMINDER_INTERVAL_SECONDS, or from the button on ``/admin/overdue``. Every date comes from
the CLOCK setting (a callable returning an aware datetime), so tests control time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, url_for
from sqlalchemy import Column, Integer, String, Table, Text, UniqueConstraint, insert, select
from sqlalchemy.exc import IntegrityError

from federation.clock import clock
from federation.config import load_config
from federation.db import UTCDateTime
from publisher import admin, editing, mail
from publisher.auth import admin_required
from publisher.extensions import STORE_KEY, public_url
from publisher.store import Group, Store, StoredActivity, metadata

log = logging.getLogger(__name__)

REMINDER_DEFAULTS: dict[str, Any] = {
    "REMINDER_AFTER_DAYS": 90,
    "REMINDER_STEPS_DAYS": "",  # unset: REMINDER_AFTER_DAYS, then two weeks and four weeks later
    "REMINDER_INTERVAL_SECONDS": 3600,  # how often `serve` looks for due reminders; 0: never
    **mail.MAIL_DEFAULTS,
}
FOLLOW_UP_DAYS = (14, 28)
IN_LIST_SIZE = 500  # values per IN (...): well inside both databases' parameter limits

sent_reminders = Table(
    "sent_reminders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("activity_slug", String(120), nullable=False),
    Column("last_verified", String(10), nullable=False),  # the confirmation the reminder asks to renew
    Column("step", Integer, nullable=False),  # 1, 2 or 3
    Column("recipients", Text, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    UniqueConstraint("activity_slug", "last_verified", "step", name="uq_sent_reminders_step"),
)

bp = Blueprint("reminders", __name__, url_prefix="/admin")
bp.register_error_handler(403, admin.forbidden_page)


class ReminderError(ValueError):
    """Reminders cannot be sent as configured; the message says which setting to fix."""


@dataclass(frozen=True)
class Overdue:
    """An activity not confirmed for at least the first step, and the reminders sent about it so far."""

    group: Group
    activity: StoredActivity
    last_verified: date
    age_days: int
    sent: list[datetime] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.activity.live_data["name"]


@dataclass(frozen=True)
class SentReminder:
    slug: str
    step: int
    recipients: tuple[str, ...]
    delivered: bool  # False: kept in the outbox


# -- settings ---------------------------------------------------------------------------------


def reminder_steps(config: Mapping[str, Any]) -> tuple[int, ...]:
    """The ages in days at which the first, second and third reminders go out."""
    raw = str(config.get("REMINDER_STEPS_DAYS") or "").strip()
    if not raw:
        first = int(config.get("REMINDER_AFTER_DAYS") or REMINDER_DEFAULTS["REMINDER_AFTER_DAYS"])
        return (first, *(first + extra for extra in FOLLOW_UP_DAYS))
    try:
        steps = tuple(int(part) for part in raw.split(","))
    except ValueError:
        steps = ()
    if not steps or steps[0] < 1 or list(steps) != sorted(set(steps)):
        raise ReminderError(
            f"REMINDER_STEPS_DAYS={raw!r} must be whole numbers of days, increasing and comma-separated, "
            "like 90,104,118."
        )
    return steps


# -- who is overdue, and what is due -----------------------------------------------------------


def overdue(store: Store, steps: Sequence[int], now: datetime) -> list[Overdue]:
    """Live activities at least ``steps[0]`` days past ``lastVerified``, by group, oldest first.

    A cancelled activity is not asked about: there is nothing running to confirm.
    """
    today = editing.today(now)
    late = []
    for stored in store.list_activities():
        if stored.live_data.get("status") == "cancelled":
            continue
        last_verified = date.fromisoformat(stored.live_data["lastVerified"])
        if (today - last_verified).days >= steps[0]:
            late.append((stored, last_verified))
    sent = _sent(store, [stored.slug for stored, _ in late])
    groups = {group.id: group for group in store.list_groups()}
    found = [
        Overdue(
            groups[stored.group_id],
            stored,
            last_verified,
            (today - last_verified).days,
            sent.get((stored.slug, last_verified.isoformat()), []),
        )
        for stored, last_verified in late
    ]
    return sorted(found, key=lambda o: (o.group.name.lower(), -o.age_days, o.name))


def _sent(store: Store, slugs: Sequence[str]) -> dict[tuple[str, str], list[datetime]]:
    """When each reminder went, by (activity, the ``lastVerified`` it was about), first step first."""
    sent: dict[tuple[str, str], list[datetime]] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(slugs), IN_LIST_SIZE):
            query = (
                select(sent_reminders)
                .where(sent_reminders.c.activity_slug.in_(slugs[start : start + IN_LIST_SIZE]))
                .order_by(sent_reminders.c.step)
            )
            for row in conn.execute(query):
                sent.setdefault((row.activity_slug, row.last_verified), []).append(row.sent_at)
    return sent


def next_step(item: Overdue, steps: Sequence[int], now: datetime) -> int | None:
    """The reminder due now for ``item`` (1, 2, 3...), or None.

    Steps are taken in order and never skipped, and a follow-up waits its full interval
    after the reminder before it, so an activity found long overdue is not sent three
    emails in three days.
    """
    step = len(item.sent) + 1
    if step > len(steps) or item.age_days < steps[step - 1]:
        return None
    if item.sent and now - item.sent[-1] < timedelta(days=steps[step - 1] - steps[step - 2]):
        return None
    return step


def recipients(store: Store, group: Group) -> tuple[str, ...]:
    """The group's editors; the group's own address when it has no editor yet."""
    editors = tuple(user.email for user in store.list_users(group.id) if user.role == "editor")
    return editors or ((group.email,) if group.email else ())


# -- sending -------------------------------------------------------------------------------------


def send_reminders(app: Flask, base_url: str | None = None) -> list[SentReminder]:
    """Send every reminder due now; returns what went out (or into the outbox).

    ``base_url`` is where the links point: the request's address, else PUBLIC_URL.
    """
    base_url = (base_url or app.config.get("PUBLIC_URL") or "").rstrip("/")
    if not base_url:
        raise ReminderError(
            "Set PUBLIC_URL to the address people reach this publisher at (like "
            "https://activities.example.org), so the links in reminder emails work."
        )
    store: Store = app.extensions[STORE_KEY]
    steps = reminder_steps(app.config)
    now = clock(app)()
    done = []
    for item in overdue(store, steps, now):
        step = next_step(item, steps, now)
        if step is None:
            continue
        to = recipients(store, item.group)
        email = _email(app, base_url, item, step, len(steps), to)
        if not _claim(store, item, step, to, now):
            continue  # another run sent it a moment ago
        if to:
            delivered = mail.send(store.engine, app.config, email)
        else:
            mail.keep(
                store.engine,
                email,
                f"Not sent: {item.group.name} has no editor and no email address. "
                "Add an editor for the group, then forward this to them.",
            )
            delivered = False
        done.append(SentReminder(item.activity.slug, step, to, delivered))
    return done


def _claim(store: Store, item: Overdue, step: int, to: Sequence[str], now: datetime) -> bool:
    """Record the reminder before sending it; False when it is recorded already."""
    try:
        with store.engine.begin() as conn:
            conn.execute(
                insert(sent_reminders).values(
                    activity_slug=item.activity.slug,
                    last_verified=item.last_verified.isoformat(),
                    step=step,
                    recipients=", ".join(to),
                    sent_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def _email(app: Flask, base_url: str, item: Overdue, step: int, steps: int, to: Sequence[str]) -> mail.Email:
    token = editing.confirmation_token(app.config["SECRET_KEY"], item.activity.slug)
    # A request context for url_for: the links are built as if asked at ``base_url``.
    with app.test_request_context("/", base_url=base_url):
        body = render_template(
            "reminders/email.txt",
            item=item,
            step=step,
            steps=steps,
            still_running_url=url_for("admin.confirm_link", token=token, _external=True),
            edit_url=url_for("admin.edit_activity", slug=item.activity.slug, _external=True),
        )
    subject = f"Is “{item.name}” still running as described?"
    if step > 1:
        subject = f"Reminder {step} of {steps}: {subject}"
    return mail.Email(tuple(to), subject, body)


def _send_every(app: Flask, interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            sent = send_reminders(app)
        except Exception:  # the server keeps serving; the next round tries again
            log.exception("Sending reminders failed")
        else:
            if sent:
                log.info("Sent %d reminder(s)", len(sent))


def start_periodic(app: Flask) -> threading.Thread | None:
    """For ``serve``: a thread sending due reminders every REMINDER_INTERVAL_SECONDS.

    None when that is 0, or when PUBLIC_URL is unset (the emails' links need it).
    """
    interval = float(app.config["REMINDER_INTERVAL_SECONDS"])
    if interval <= 0:
        return None
    if not app.config.get("PUBLIC_URL"):
        log.warning("PUBLIC_URL is not set, so reminders are not sent automatically; set it to send them.")
        return None
    thread = threading.Thread(
        target=_send_every, args=(app, interval), name="localfeed-reminders", daemon=True
    )
    thread.start()
    return thread


# -- the administrator's pages -------------------------------------------------------------------


@bp.get("/overdue")
@admin_required
def overdue_page() -> str:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    steps = reminder_steps(app.config)
    now = clock(app)()
    listed = overdue(app.extensions[STORE_KEY], steps, now)
    by_group: dict[int, list[Overdue]] = {}
    for item in listed:
        by_group.setdefault(item.group.id, []).append(item)
    return render_template(
        "reminders/overdue.html",
        groups=[(items[0].group, items) for items in by_group.values()],
        steps=steps,
        due={item.activity.slug: next_step(item, steps, now) for item in listed},
    )


@bp.post("/overdue/send")
@admin_required
def send_now() -> Any:
    sent = send_reminders(current_app._get_current_object(), public_url())  # type: ignore[attr-defined]
    kept = sum(1 for reminder in sent if not reminder.delivered)
    message = f"Sent {len(sent) - kept} reminder(s)."
    if kept:
        message += f" {kept} could not be sent and are in the outbox."
    flash(message, "success")
    return redirect(url_for("reminders.overdue_page"))


@bp.get("/outbox")
@admin_required
def outbox_page() -> str:
    engine = current_app.extensions[STORE_KEY].engine
    return render_template("reminders/outbox.html", emails=mail.outbox(engine))


def init_app(app: Flask) -> None:
    """Settings and the administrator's pages (``/admin/overdue``, ``/admin/outbox``)."""
    given = {key: app.config[key] for key in REMINDER_DEFAULTS if key in app.config}
    app.config.update(load_config(REMINDER_DEFAULTS, given))
    reminder_steps(app.config)  # a wrong setting stops the start, not the first reminder run
    app.register_blueprint(bp)
