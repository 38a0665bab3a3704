"""The app factory: settings, the generated secret key, and a clear refusal of impossible settings."""

from __future__ import annotations

import gc
import logging
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from publisher import create_app, editing, hub
from publisher.store import activities
from tests.factories import weekly_activity
from tests.publisher.conftest import store_of


def test_secret_key_is_generated_once_and_kept(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    config = {"INSTANCE_PATH": str(tmp_path / "instance"), "HUB_WORKER": False}
    with caplog.at_level(logging.WARNING, logger="federation.config"):
        first = create_app(config)
    assert "SECRET_KEY is not set" in caplog.text
    second = create_app(config)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] and len(first.config["SECRET_KEY"]) == 64
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only
    # With no DATABASE_URL the data lives in the instance folder.
    assert first.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'publisher.sqlite'}"
    assert (tmp_path / "instance" / "publisher.sqlite").exists()


def test_settings_come_from_the_environment_and_impossible_ones_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGE_SIZE", "50")
    monkeypatch.setenv("PUBLISHER_NAME", "Merton Connected")
    monkeypatch.setenv("WTF_CSRF_TIME_LIMIT", "7200")
    config = {"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x", "HUB_WORKER": False}
    app = create_app(config)
    assert (app.config["PAGE_SIZE"], app.config["PUBLISHER_NAME"]) == (50, "Merton Connected")
    assert app.config["WTF_CSRF_TIME_LIMIT"] == 7200
    monkeypatch.setenv("WTF_CSRF_TIME_LIMIT", "")
    assert create_app(config).config["WTF_CSRF_TIME_LIMIT"] is None
    monkeypatch.setenv("WTF_CSRF_TIME_LIMIT", "an hour")
    with pytest.raises(ValueError, match="WTF_CSRF_TIME_LIMIT='an hour' must be a number of seconds"):
        create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x"})
    monkeypatch.delenv("WTF_CSRF_TIME_LIMIT")
    with pytest.raises(ValueError, match="PAGE_SIZE=501 must be a whole number from 1 to 500"):
        create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x", "PAGE_SIZE": 501})
    with pytest.raises(ValueError, match="TOMBSTONE_DAYS=7 must be at least 30"):
        create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x", "TOMBSTONE_DAYS": 7})


def _rate_limited_app(tmp_path, limit: str, **config):
    settings = {"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x", "PUBLIC_RATE_LIMIT": limit}
    return create_app({**settings, "HUB_WORKER": False, **config})


def test_public_pages_and_feeds_are_rate_limited(tmp_path, serve):
    server = serve(_rate_limited_app(tmp_path, "3 per minute"))
    statuses = [httpx.get(f"{server.url}/feeds/activities").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_behind_a_proxy_the_limits_count_each_visitor(tmp_path, serve):
    server = serve(_rate_limited_app(tmp_path, "2 per minute", TRUSTED_PROXIES=1))

    def visit(visitor: str) -> int:
        return httpx.get(f"{server.url}/feeds/activities", headers={"X-Forwarded-For": visitor}).status_code

    assert [visit("203.0.113.5") for _ in range(3)] == [200, 200, 429]
    assert visit("203.0.113.6") == 200  # another visitor behind the same proxy


def _delete_aged(store, group, name: str, days: int) -> None:
    """Delete a new activity, its tombstone dated ``days`` ago (the clock, moved on for it)."""
    saved = editing.save_activity(store, group, weekly_activity(name=name), base_url="http://localhost")
    deleted = editing.delete_activity(store, group, saved.slug)
    with store.engine.begin() as conn:
        conn.execute(
            update(activities)
            .where(activities.c.slug == saved.slug)
            .values(deleted_at=deleted.deleted_at - timedelta(days=days))
        )


def _remaining(store) -> dict[str, bool]:
    return {stored.slug: stored.is_deleted for stored in store.list_activities(include_deleted=True)}


def test_the_running_publisher_purges_tombstones_older_than_tombstone_days(make_publisher, tmp_path):
    """No cron job: the background worker forgets deletions once feed readers have had TOMBSTONE_DAYS."""
    app = make_publisher(f"sqlite:///{tmp_path / 'purge.sqlite'}", HUB_WORKER=False, TOMBSTONE_DAYS=45)
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    live = editing.save_activity(store, group, weekly_activity(), base_url="http://localhost")
    _delete_aged(store, group, "month-old", 31)
    _delete_aged(store, group, "past-limit", 46)

    worker = hub.PublisherHubWorker(app, app.extensions[hub.HUB_KEY], interval=1.0)
    worker.run_once()
    assert _remaining(store) == {live.slug: False, "month-old": True}


def test_with_redis_the_hub_job_purges_tombstones_once_an_hour(
    make_publisher, tmp_path, redis_url, unique_name
):
    """The rq path keeps the same house: the first hub job of the hour purges, the next ones do not."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    database = f"sqlite:///{tmp_path / 'purge.sqlite'}"
    app = make_publisher(database, REDIS_URL=redis_url, HUB_QUEUE=unique_name, TOMBSTONE_DAYS=45)
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    _delete_aged(store, group, "past-limit", 46)
    connection = Redis.from_url(redis_url)
    queue = Queue(unique_name, connection=connection)
    try:
        queue.enqueue(hub.run_due, hub.job_settings(app.config))
        SimpleWorker([queue], connection=connection).work(burst=True)
        assert _remaining(store) == {}
        _delete_aged(store, group, "later", 46)
        queue.enqueue(hub.run_due, hub.job_settings(app.config))
        SimpleWorker([queue], connection=connection).work(burst=True)
        assert _remaining(store) == {"later": True}  # purged again only an hour after the first
    finally:
        queue.delete(delete_jobs=True)
        connection.delete(f"{unique_name}:purged")


def test_the_hub_thread_ends_with_its_app(tmp_path):
    """Short-lived apps (tests, CLI commands) leave no thread polling a database behind."""
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x", "HUB_POLL_SECONDS": 0.05})
    worker = app.extensions["publisher.hub_worker"]
    assert worker._thread.is_alive()
    del app
    for _ in range(100):  # the app is in reference cycles: it goes at a collection the thread is not inside
        gc.collect()
        worker._thread.join(timeout=0.1)
        if not worker._thread.is_alive():
            break
    assert not worker._thread.is_alive()


def test_hub_delivery_threads_sets_the_hubs_pool(make_publisher, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'pool.sqlite'}", HUB_WORKER=False, HUB_DELIVERY_THREADS=3)
    assert app.extensions[hub.HUB_KEY].hub.delivery_threads == 3
