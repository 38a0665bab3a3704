"""The reminder email's link offers both answers side by side: still running, or stopped.

The email says what the link does (open it, then press an answer): opening it changes
nothing, because mail scanners open links too.
"""

from __future__ import annotations

from publisher import editing, mail, reminders
from tests.publisher.conftest import store_of
from tests.publisher.test_admin import add_activity, csrf_token


def test_we_have_stopped_pauses_the_activity_and_counts_as_an_answer(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'stopped.sqlite'}")
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    slug = add_activity(store, group, lastVerified="2026-01-01")
    link = f"/admin/still-running/{editing.confirmation_token(app.config['SECRET_KEY'], slug)}"
    client = app.test_client()

    asked = client.get(link)
    assert "Yes, it is still running as described" in asked.text and "We’ve stopped (or paused)" in asked.text
    answered = client.post(link, data={"csrf_token": csrf_token(asked.text), "answer": "stopped"})
    assert answered.status_code == 200 and "is now shown as paused" in answered.text

    stopped = store.get_activity(slug).data
    assert stopped["status"] == "paused"
    assert stopped["lastVerified"] == editing.today().isoformat()
    assert "already been used" in client.get(link).text


def test_the_email_says_what_the_link_does(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'email.sqlite'}")
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    store.add_user("walker@example.org", "correct horse battery", "editor", group.id)
    add_activity(store, group, lastVerified="2025-01-01")

    (sent,) = reminders.send_reminders(app, base_url="http://publisher.example")
    assert not sent.delivered  # no SMTP server: kept in the outbox, where the test reads it
    (kept,) = mail.outbox(store.engine)
    body = kept.body
    assert "one click" not in body
    assert 'press "Yes, it is still running as described"' in body and "We've stopped (or paused)" in body
