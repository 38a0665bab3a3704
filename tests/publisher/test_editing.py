"""The one write path: what the publisher fills in, what it refuses, and the signed confirmation link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from publisher import editing
from publisher.store import Store
from tests.factories import event_activity, weekly_activity

BASE = "https://activities.example.org"


@pytest.fixture
def store(tmp_path) -> Store:
    """SQLite only: the SQL under these rules runs on PostgreSQL in test_store and test_api."""
    store = Store.from_url(f"sqlite:///{tmp_path / 'editing.sqlite'}")
    store.prepare()
    return store


def test_new_activity_gets_its_id_organiser_and_dates_from_the_publisher(store: Store):
    group = store.add_group(
        "St Mark's Lunch Club", url="https://stmarks.example/", email="lunch@stmarks.example"
    )
    doc = event_activity(
        id="https://attacker.example/x", organizer={}, dateModified="2001-01-01T00:00:00+00:00"
    )
    del doc["lastVerified"]

    result = editing.save_activity(store, group, doc, base_url=BASE + "/")
    assert result.ok, result.problems
    saved = result.activity
    assert result.slug == "winter-warmer-lunch"
    assert saved["id"] == f"{BASE}/activities/winter-warmer-lunch"
    assert saved["organizer"] == {
        "name": "St Mark's Lunch Club",
        "url": "https://stmarks.example/",
        "email": "lunch@stmarks.example",
    }
    assert saved["lastVerified"] == editing.today().isoformat()
    assert datetime.now(UTC) - datetime.fromisoformat(saved["dateModified"]) < timedelta(minutes=1)
    assert doc["id"] == "https://attacker.example/x"  # the caller's dict is left alone
    assert store.get_activity(result.slug).data == saved


def test_edits_keep_the_id_even_when_the_public_address_changes(store: Store):
    group = store.add_group("Mitcham Walkers")
    first = editing.save_activity(store, group, weekly_activity(), base_url=BASE)
    moved = editing.save_activity(
        store, group, weekly_activity(name="Renamed walk"), first.slug, base_url="https://new-home.example"
    )
    assert moved.ok and moved.slug == first.slug
    assert moved.activity["id"] == first.activity["id"]
    assert moved.change_number == first.change_number + 1


def test_an_invalid_activity_writes_nothing(store: Store):
    group = store.add_group("Mitcham Walkers")
    saved = editing.save_activity(store, group, weekly_activity(), base_url=BASE)
    bad = weekly_activity(name="")
    bad["location"]["address"]["postalCode"] = "CR4 1A"

    refused_new = editing.save_activity(store, group, bad, base_url=BASE)
    refused_edit = editing.save_activity(store, group, bad, saved.slug, base_url=BASE)
    for refused in (refused_new, refused_edit):
        assert not refused.ok
        assert {"$.name", "$.location.address.postalCode"} <= {p.path for p in refused.problems}
    assert refused_new.slug is None
    assert store.last_change_number() == 1
    assert store.get_activity(saved.slug).data == saved.activity
    assert store.outbox_backlog() == 1


def test_another_groups_activity_is_absent(store: Store):
    walkers = store.add_group("Mitcham Walkers")
    lunch = store.add_group("St Mark's Lunch Club")
    walk = editing.save_activity(store, walkers, weekly_activity(), base_url=BASE)
    with pytest.raises(editing.ActivityNotFound):
        editing.save_activity(store, lunch, weekly_activity(name="Taken over"), walk.slug, base_url=BASE)
    with pytest.raises(editing.ActivityNotFound):
        editing.delete_activity(store, lunch, walk.slug)
    with pytest.raises(editing.ActivityNotFound):
        editing.confirm_still_running(store, lunch, walk.slug)
    assert store.get_activity(walk.slug).data == walk.activity


def test_still_running_is_a_change_that_sets_last_verified_today(store: Store):
    group = store.add_group("Mitcham Walkers")
    walk = editing.save_activity(store, group, weekly_activity(lastVerified="2026-01-01"), base_url=BASE)
    confirmed = editing.confirm_still_running(store, group, walk.slug)
    assert confirmed.data["lastVerified"] == editing.today().isoformat()
    assert confirmed.data["name"] == walk.activity["name"]
    assert confirmed.change_number == walk.change_number + 1
    assert [item.change_number for item in store.changes_after(0, 10)] == [confirmed.change_number]


def test_confirmation_links_are_signed_and_expire():
    token = editing.confirmation_token("secret", "mitcham-health-walk")
    assert editing.read_confirmation_token("secret", token) == ("mitcham-health-walk", editing.today())
    with pytest.raises(editing.BadConfirmationLink, match="not valid"):
        editing.read_confirmation_token("another secret", token)
    with pytest.raises(editing.BadConfirmationLink, match="not valid"):
        editing.read_confirmation_token("secret", token[:-4])
    forged = URLSafeTimedSerializer("secret", salt="some other purpose").dumps("mitcham-health-walk")
    with pytest.raises(editing.BadConfirmationLink):
        editing.read_confirmation_token("secret", forged)

    class SignedLongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int((datetime.now(UTC) - timedelta(days=61)).timestamp())

    old = URLSafeTimedSerializer("secret", salt=editing.CONFIRMATION_SALT, signer=SignedLongAgo)
    with pytest.raises(editing.BadConfirmationLink, match="expired"):
        editing.read_confirmation_token("secret", old.dumps("mitcham-health-walk"))


def test_contradictions_are_named_with_what_to_do_and_a_way_in_through_the_group_counts():
    assert editing.contradictions(weekly_activity()) == []
    full = weekly_activity(capacity={"status": "full"}, booking={"method": "drop-in"})
    [warning] = editing.contradictions(full)
    assert "says it is full, and also that people can just turn up" in warning
    assert editing.contradictions({**full, "booking": {"method": "contact-first"}}) == []

    unreachable = weekly_activity(organizer={"name": "Mitcham Walkers"})
    del unreachable["contact"]
    [warning] = editing.contradictions(unreachable)
    assert "no way to ask about it or book" in warning and "Add a contact email or telephone" in warning
    # Any one way in is enough: the group's telephone, or a booking link.
    phoned = {**unreachable, "organizer": {"name": "Mitcham Walkers", "telephone": "020 8123 4567"}}
    assert editing.contradictions(phoned) == []
    booked = {**unreachable, "booking": {"method": "book-ahead", "url": "https://tickets.example/walk"}}
    assert editing.contradictions(booked) == []
