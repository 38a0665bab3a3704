"""Reminders to confirm activities: the sequence on a controlled clock, real emails, the links, the outbox.

Emails go to a small SMTP server on a loopback socket (the outside world's mail server,
faked); the links in them are followed over HTTP against the real app.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from publisher import editing
from publisher.cli import main
from publisher.store import Group, Store
from tests.factories import weekly_activity
from tests.publisher.conftest import store_of
from tests.publisher.test_admin import PASSWORD, csrf_token, log_in

LINK = re.compile(r"https?://\S+")


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, MAIL, RCPT, DATA (with dot-unstuffing), RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 test-smtp ready")
        sender, recipients = None, []
        for raw in self.rfile:
            command = raw.decode("ascii", "replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-test-smtp\r\n250 8BITMIME")
            elif verb == "MAIL":
                sender, recipients = command[10:].strip("<> "), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command[8:].strip("<> "))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                for line in self.rfile:
                    if line == b".\r\n":
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                self.server.messages.append((sender, recipients, b"".join(lines)))
                self.reply("250 OK: queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:  # RSET, NOOP
                self.reply("250 OK")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages: list[tuple[str, list[str], bytes]] = []

    def emails(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default) for _, _, raw in self.messages]


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class Clock:
    """The CLOCK setting: real time moved on by whole days."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.days = 0

    def __call__(self) -> datetime:
        return self.start + timedelta(days=self.days)


def add_walk(store: Store, group: Group, age_days: int) -> str:
    verified = editing.today() - timedelta(days=age_days)
    doc = weekly_activity(lastVerified=verified.isoformat())
    result = editing.save_activity(store, group, doc, base_url="http://localhost")
    assert result.ok, result.problems
    return result.slug


def test_the_reminder_sequence_its_emails_and_links(make_publisher, database_url, serve, smtp):
    from publisher import reminders

    clock = Clock()
    app = make_publisher(
        database_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp.server_address[1],
        SMTP_STARTTLS=False,
        SMTP_FROM="reminders@activities.example",
        REMINDER_STEPS_DAYS="90,104,118",
        CLOCK=clock,
    )
    live = serve(app)
    app.config["PUBLIC_URL"] = live.url
    store = store_of(app)
    walkers = store.add_group("Mitcham Walkers", email="group@walkers.example")
    store.add_user("ann@walkers.example", PASSWORD, "editor", walkers.id)
    store.add_user("bob@walkers.example", PASSWORD, "editor", walkers.id)
    store.add_user("cook@lunch.example", PASSWORD, "editor", store.add_group("Lunch Club").id)
    slug = add_walk(store, walkers, age_days=89)
    recent = add_walk(store, walkers, age_days=10)  # confirmed recently: its turn comes later

    def run_at(days: int) -> list[tuple[str, int]]:
        clock.days = days
        return [(sent.slug, sent.step) for sent in reminders.send_reminders(app)]

    assert run_at(0) == []
    assert run_at(1) == [(slug, 1)]
    assert run_at(1) == []  # never the same reminder twice
    assert run_at(12) == []
    assert run_at(15) == [(slug, 2)]
    assert run_at(29) == [(slug, 3)]
    assert run_at(29) == []
    assert run_at(200) == [(recent, 1)]  # three reminders for the first, then no more

    sent = smtp.emails()[:3]
    assert [message["Subject"] for message in sent] == [
        "Is “Mitcham Health Walk” still running as described?",
        "Reminder 2 of 3: Is “Mitcham Health Walk” still running as described?",
        "Reminder 3 of 3: Is “Mitcham Health Walk” still running as described?",
    ]
    assert all(to == ["ann@walkers.example", "bob@walkers.example"] for _, to, _ in smtp.messages)
    assert sent[0]["From"] == "reminders@activities.example"
    body = sent[2].get_content()
    assert "last confirmed on" in body and "This is the last reminder" in body
    still_running, edit = LINK.findall(body)
    assert still_running.startswith(f"{live.url}/admin/still-running/")
    assert edit == f"{live.url}/admin/activities/{slug}/edit"

    with httpx.Client(timeout=10) as http:
        asked = http.get(still_running)
        assert asked.status_code == 200 and "still running as described?" in asked.text
        done = http.post(still_running, data={"csrf_token": csrf_token(asked.text)})
        assert done.status_code == 200 and "Thank you" in done.text
        # Confirmed on the day the app's clock reads, the day reminders count from.
        assert store.get_activity(slug).data["lastVerified"] == editing.today(clock()).isoformat()
        again = http.post(still_running, data={"csrf_token": csrf_token(asked.text)})
        assert again.status_code == 409 and "This link has already been used" in again.text
        tampered = http.get(still_running[:-4] + ("AAAA" if not still_running.endswith("AAAA") else "BBBB"))
        assert tampered.status_code == 400 and "This link does not work" in tampered.text
        changed = http.get(edit)  # "something has changed": the edit form, after logging in
        assert changed.status_code == 302 and "/admin/login?next=" in changed.headers["location"]

    # The confirmation (on day 200) starts the sequence over from the new lastVerified.
    assert run_at(200 + 89) == [(recent, 2)]
    assert run_at(200 + 90) == [(slug, 1)]
    assert len(smtp.messages) == 6


def test_without_smtp_reminders_wait_in_the_outbox_an_administrator_reads(
    make_publisher, tmp_path, monkeypatch
):
    database = f"sqlite:///{tmp_path / 'outbox.sqlite'}"
    app = make_publisher(database, PUBLIC_URL="https://activities.example")
    store = store_of(app)
    walkers = store.add_group("Mitcham Walkers")
    store.add_user("ann@walkers.example", PASSWORD, "editor", walkers.id)
    store.add_user("admin@example.org", PASSWORD, "admin")
    nobody = store.add_group("Quiet Group")  # no editor and no email address
    walk = add_walk(store, walkers, age_days=100)
    add_walk(store, nobody, age_days=120)
    cancelled = weekly_activity(name="Old walk", status="cancelled", lastVerified="2025-01-01")
    assert editing.save_activity(store, walkers, cancelled, base_url="https://activities.example").ok

    for key, value in {
        "DATABASE_URL": database,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret",
        "PUBLIC_URL": "https://activities.example",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMTP_HOST", raising=False)
    result = CliRunner().invoke(main, ["send-reminders"])
    assert result.exit_code == 0, result.output
    assert f"Reminder 1 for {walk}: kept in the outbox." in result.output
    assert "2 reminder(s)." in result.output
    assert CliRunner().invoke(main, ["send-reminders"]).output.strip() == "0 reminder(s)."

    client = app.test_client()
    log_in(client, "admin@example.org")
    outbox = client.get("/admin/outbox").text
    assert "To</dt><dd>ann@walkers.example" in outbox
    assert "SMTP_HOST is not set" in outbox and "Quiet Group has no editor" in outbox
    assert "https://activities.example/admin/still-running/" in outbox
    overdue = client.get("/admin/overdue").text
    assert overdue.index("Mitcham Walkers") < overdue.index("Quiet Group")
    assert "(100 days ago)" in overdue and "Reminded 1 of 3 times" in overdue

    editor = app.test_client()
    log_in(editor, "ann@walkers.example")
    for page in ("/admin/outbox", "/admin/overdue", "/admin/subscribers"):
        refused = editor.get(page)
        assert refused.status_code == 403 and "This page is for administrators" in refused.text, page


def test_a_mail_server_that_refuses_leaves_the_email_in_the_outbox(make_publisher, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = make_publisher(
        f"sqlite:///{tmp_path / 'refused.sqlite'}",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=closed_port,
        SMTP_TIMEOUT=2,
    )
    store = store_of(app)
    walkers = store.add_group("Mitcham Walkers", email="group@walkers.example")
    store.add_user("admin@example.org", PASSWORD, "admin")
    add_walk(store, walkers, age_days=95)

    client = app.test_client()
    token = log_in(client, "admin@example.org")
    assert "Reminder 1 is due" in client.get("/admin/overdue").text
    sent = client.post("/admin/overdue/send", data={"csrf_token": token}, follow_redirects=True)
    assert "1 could not be sent and are in the outbox" in sent.text
    outbox = client.get("/admin/outbox").text
    assert "group@walkers.example" in outbox and "Not sent: the mail server 127.0.0.1 said" in outbox
    assert "http://localhost/admin/still-running/" in outbox  # the links follow the request's address


def test_reminder_steps_must_increase():
    from publisher.reminders import ReminderError, reminder_steps

    assert reminder_steps({"REMINDER_AFTER_DAYS": 60}) == (60, 74, 88)
    assert reminder_steps({"REMINDER_STEPS_DAYS": "90, 120"}) == (90, 120)
    with pytest.raises(ReminderError, match="like 90,104,118"):
        reminder_steps({"REMINDER_STEPS_DAYS": "104,90"})
