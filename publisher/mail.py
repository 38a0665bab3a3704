"""Sending email: by SMTP when SMTP_HOST is set, otherwise into an outbox an administrator reads.

Nothing is silently dropped: a message that cannot be sent (no SMTP server configured,
or the server refused it) is kept in the ``email_outbox`` table with the reason, and
``/admin/outbox`` shows it, so someone can still pass the reminder on by hand.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Column, Engine, Integer, String, Table, Text, desc, insert, select

from federation.clock import utcnow
from federation.db import UTCDateTime
from publisher.store import metadata

MAIL_DEFAULTS: dict[str, Any] = {
    "SMTP_HOST": "",  # unset: emails go to the outbox at /admin/outbox
    "SMTP_PORT": 587,
    "SMTP_USER": "",
    "SMTP_PASSWORD": "",
    "SMTP_FROM": "",  # unset: localfeed@<SMTP_HOST>
    "SMTP_STARTTLS": True,
    "SMTP_TIMEOUT": 30.0,
}

NO_SMTP = "Not sent: SMTP_HOST is not set, so emails are kept here. Set SMTP_HOST to send them."

email_outbox = Table(
    "email_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("recipients", Text, nullable=False),  # comma-separated addresses
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("reason", Text, nullable=False),  # why it is here rather than sent
    Column("created_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Email:
    recipients: tuple[str, ...]
    subject: str
    body: str


@dataclass(frozen=True)
class KeptEmail:
    """A message in the outbox, as the administrator's page lists it."""

    id: int
    recipients: str
    subject: str
    body: str
    reason: str
    created_at: datetime


def send(engine: Engine, config: Mapping[str, Any], email: Email) -> bool:
    """Send ``email`` by SMTP; True when sent, False when it was kept in the outbox instead."""
    if not config.get("SMTP_HOST"):
        keep(engine, email, NO_SMTP)
        return False
    try:
        _send_smtp(config, email)
    except (OSError, smtplib.SMTPException) as error:
        keep(engine, email, f"Not sent: the mail server {config['SMTP_HOST']} said {error!r}. Check SMTP_*.")
        return False
    return True


def _send_smtp(config: Mapping[str, Any], email: Email) -> None:
    host = config["SMTP_HOST"]
    message = EmailMessage()
    message["From"] = config.get("SMTP_FROM") or f"localfeed@{host}"
    message["To"] = ", ".join(email.recipients)
    message["Subject"] = email.subject
    message.set_content(email.body)
    port = int(config.get("SMTP_PORT") or MAIL_DEFAULTS["SMTP_PORT"])
    timeout = float(config.get("SMTP_TIMEOUT") or MAIL_DEFAULTS["SMTP_TIMEOUT"])
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        if config.get("SMTP_STARTTLS", True):
            smtp.starttls(context=ssl.create_default_context())
        if config.get("SMTP_USER"):
            smtp.login(config["SMTP_USER"], config.get("SMTP_PASSWORD") or "")
        smtp.send_message(message)


def keep(engine: Engine, email: Email, reason: str) -> None:
    """Put ``email`` in the outbox with the reason it was not sent."""
    with engine.begin() as conn:
        conn.execute(
            insert(email_outbox).values(
                recipients=", ".join(email.recipients),
                subject=email.subject,
                body=email.body,
                reason=reason,
                created_at=utcnow(),
            )
        )


def outbox(engine: Engine, limit: int = 200) -> Sequence[KeptEmail]:
    """The newest kept messages first."""
    query = select(email_outbox).order_by(desc(email_outbox.c.id)).limit(limit)
    with engine.connect() as conn:
        return [KeptEmail(**row._mapping) for row in conn.execute(query)]
