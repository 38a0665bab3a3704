"""The store's own promises: one transaction per change with its outbox record, tombstones, tokens."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from publisher import editing
from publisher.store import Conflict, NotFound, Store, StoreError, activities, hash_token, outbox
from tests.factories import weekly_activity

BASE = "https://activities.example.org"


@pytest.fixture
def store(database_url) -> Store:
    store = Store.from_url(database_url)
    store.prepare()
    return store


def test_every_change_has_its_outbox_record_and_a_failed_write_leaves_neither(store: Store):
    group = store.add_group("Mitcham Walkers")
    walk = editing.save_activity(store, group, weekly_activity(), base_url=BASE)
    editing.save_activity(store, group, weekly_activity(name="Renamed"), walk.slug, base_url=BASE)
    editing.delete_activity(store, group, walk.slug)

    doc = dict(walk.activity)
    with pytest.raises(Conflict):  # the same slug again: refused inside the transaction
        store.create_activity(group.id, walk.slug, doc)
    with pytest.raises(NotFound):  # a tombstone cannot be edited
        store.replace_activity(walk.slug, doc, group_id=group.id)
    assert store.last_change_number() == 3  # the failed writes took no number

    with store.engine.connect() as conn:
        records = conn.execute(select(outbox).order_by(outbox.c.change_number)).mappings().all()
    assert [(r["change_number"], r["state"]) for r in records] == [
        (1, "updated"),
        (2, "updated"),
        (3, "deleted"),
    ]
    assert records[1]["data"]["name"] == "Renamed" and records[2]["data"] is None
    assert all(r["activity_uri"] == walk.activity["id"] and r["delivered_at"] is None for r in records)
    assert store.outbox_backlog() == 3

    with store.engine.begin() as conn:  # as the WebSub relay does
        conn.execute(update(outbox).values(delivered_at=datetime.now(UTC) - timedelta(days=8)))
    assert store.outbox_backlog() == 0
    assert store.purge_outbox(timedelta(days=7)) == 3


def test_old_tombstones_are_purged_and_live_activities_kept(store: Store):
    group = store.add_group("Mitcham Walkers")
    keep = editing.save_activity(store, group, weekly_activity(), base_url=BASE)
    recent = editing.save_activity(store, group, weekly_activity(name="Recent"), base_url=BASE)
    old = editing.save_activity(store, group, weekly_activity(name="Old"), base_url=BASE)
    editing.delete_activity(store, group, recent.slug)
    deleted = editing.delete_activity(store, group, old.slug)
    with store.engine.begin() as conn:
        conn.execute(
            update(activities)
            .where(activities.c.slug == old.slug)
            .values(deleted_at=deleted.deleted_at - timedelta(days=31))
        )
    assert store.purge_tombstones(timedelta(days=30)) == 1
    assert {a.slug for a in store.list_activities(include_deleted=True)} == {keep.slug, recent.slug}


def test_users_and_tokens(store: Store):
    group = store.add_group("Mitcham Walkers", "walkers")
    with pytest.raises(Conflict, match="already exists"):
        store.add_group("Other walkers", "walkers")
    with pytest.raises(StoreError, match="belongs to one group"):
        store.add_user("ed@example.org", "long enough", "editor")
    editor = store.add_user(" Ed@Example.org ", "long enough", "editor", group.id)
    assert editor.email == "ed@example.org" and not editor.is_admin
    assert store.authenticate("ED@example.org", "long enough") == editor
    assert store.authenticate("ed@example.org", "wrong password") is None
    store.set_password(editor.id, "another long one")
    assert store.authenticate("ed@example.org", "another long one") == editor

    token, clear = store.create_token(group.id, "website")
    assert store.group_for_token(clear) == group
    assert store.group_for_token(clear + "x") is None
    with store.engine.connect() as conn:
        stored_hashes = conn.exec_driver_sql("SELECT token_sha256 FROM api_tokens").scalars().all()
    assert stored_hashes == [hash_token(clear)] and clear not in stored_hashes
    assert not store.revoke_token(token.id, group_id=group.id + 1)  # another group's admin cannot
    assert store.revoke_token(token.id, group_id=group.id)
    assert store.group_for_token(clear) is None


def test_workers_starting_together_create_the_tables_once(database_url):
    """Each gunicorn worker creates missing tables at start; none may fail because another did."""
    errors: list[Exception] = []

    def start_worker() -> None:
        try:
            Store.from_url(database_url).prepare()
        except Exception as exc:
            errors.append(exc)

    workers = [threading.Thread(target=start_worker) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert Store.from_url(database_url).last_change_number() == 0  # the counter row was seeded once
