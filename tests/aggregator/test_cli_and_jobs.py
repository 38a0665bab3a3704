"""The ``localfeed-aggregator`` command and in-process jobs (no Redis)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, insert, select, update

from aggregator import search_index
from aggregator.cli import main
from aggregator.harvest import harvest_source
from aggregator.jobs import enqueue_due, enqueue_harvest, start_scheduler
from aggregator.settings import job_config
from aggregator.store import merged
from federation.clock import utcnow
from tests.aggregator.conftest import follow, live, source_row
from tests.factories import weekly_activity


def test_cli_adds_harvests_and_creates_operators(make_feed, tmp_path):
    feed = make_feed()
    feed.put(weekly_activity(id=feed.activity_id("1")))
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),  # where the generated SECRET_KEY is kept
        "ALLOW_PRIVATE_NETWORKS": "1",
    }
    runner = CliRunner()

    added = runner.invoke(main, ["add-source", f"{feed.base_url}/", "--approve", "--trust", "70"], env=env)
    assert added.exit_code == 0, added.output
    assert "Added source 1 (approved)" in added.output
    duplicate = runner.invoke(main, ["add-source", feed.feed_url, "--kind", "localfeed"], env=env)
    assert duplicate.exit_code == 1 and "already source 1" in duplicate.output
    gone = runner.invoke(
        main, ["add-source", f"{feed.base_url}/status/410", "--kind", "localfeed", "--approve"], env=env
    )
    assert gone.exit_code == 0

    harvested = runner.invoke(main, ["harvest", "--all"], env=env)
    assert "source 1: ok, 2 page(s), 1 updated" in harvested.output
    assert "source 2: gone" in harvested.output and "410 Gone" in harvested.output
    assert harvested.exit_code == 1  # one source failed: scripts can tell
    assert "Queued 0 harvest(s)" in runner.invoke(main, ["schedule", "--once"], env=env).output  # none due
    again = runner.invoke(main, ["harvest", "1"], env=env)
    assert again.exit_code == 0 and "source 1: not-modified" in again.output
    assert runner.invoke(main, ["harvest"], env=env).exit_code == 2  # neither SOURCE nor --all

    made = runner.invoke(
        main, ["create-operator", "ops@council.example"], input="long password 1\n" * 2, env=env
    )
    assert made.exit_code == 0 and "created" in made.output
    short = runner.invoke(main, ["create-operator", "b@council.example"], input="short\nshort\n", env=env)
    assert short.exit_code == 1 and "shorter than 10" in short.output


def test_reindex_rebuilds_the_search_index_from_the_merged_items(make_feed, make_aggregator, database_url):
    feed = make_feed()
    for n in range(4):
        feed.put(weekly_activity(id=feed.activity_id(str(n)), name=f"Walk {n}"))
    app = make_aggregator(database_url)
    source_id = follow(app, feed.feed_url)
    assert harvest_source(source_id, job_config(app)).status == "ok"
    feed.delete(feed.activity_id("3"))
    assert harvest_source(source_id, job_config(app)).status == "ok"
    client, engine = app.test_client(), app.extensions["engine"]

    def found_near() -> list[str]:
        answer = client.get("/api/activities", query_string={"near": "51.3982,-0.1545", "radius": "2"})
        return sorted(item["activity"]["name"] for item in answer.get_json()["items"])

    assert found_near() == ["Walk 0", "Walk 1", "Walk 2"]
    # As an older version's index would be: another grid, a row missing.
    rows = search_index.index
    with engine.begin() as conn:
        first = conn.execute(select(func.min(rows.c.merged_id))).scalar_one()
        conn.execute(delete(rows).where(rows.c.merged_id == first))
        conn.execute(update(rows).values(cell=rows.c.cell + 7))
    assert found_near() == []

    rebuilt = CliRunner().invoke(main, ["reindex"], obj=app)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Search index rebuilt: 3 activities" in rebuilt.output
    assert found_near() == ["Walk 0", "Walk 1", "Walk 2"]  # the deleted item stays out
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(search_index.documents)).scalar_one() == 3


def test_a_rebuild_that_fails_leaves_the_old_index_whole(make_feed, make_aggregator, database_url):
    """The rebuild is one transaction, DROP and CREATE included (SQLite would commit those alone)."""
    feed = make_feed()
    for n in range(2):
        feed.put(weekly_activity(id=feed.activity_id(str(n)), name=f"Walk {n}"))
    app = make_aggregator(database_url)
    assert harvest_source(follow(app, feed.feed_url), job_config(app)).status == "ok"
    engine = app.extensions["engine"]
    with engine.begin() as conn:  # a merged item the index cannot take (no lastVerified)
        broken = weekly_activity(id="https://walkers.example/x")
        del broken["lastVerified"]
        conn.execute(insert(merged).values(item_id=broken["id"], data=broken, change_number=99))

    with pytest.raises(KeyError, match="lastVerified"):
        search_index.rebuild(engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(search_index.index)).scalar_one() == 2
        assert conn.execute(select(func.count()).select_from(search_index.documents)).scalar_one() == 2


def test_the_in_process_scheduler_harvests_due_sources_once(make_feed, make_aggregator):
    feed = make_feed()
    feed.put(weekly_activity(id=feed.activity_id("1")))
    app = make_aggregator(SCHEDULER_TICK=0.05)
    source_id = follow(app, feed.feed_url)
    config = job_config(app)

    stop = start_scheduler(config)
    try:
        deadline = time.monotonic() + 20
        while source_row(app, source_id).last_status is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # A stored next session that has begun is moved on by a later tick (search_index.roll_forward).
        long_ago = datetime(2026, 1, 6, 10, tzinfo=UTC)
        with app.extensions["engine"].begin() as conn:
            conn.execute(update(search_index.index).values(next_start=long_ago, next_from=long_ago))
        while next_starts(app) == [long_ago] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    assert source_row(app, source_id).last_status == "ok"
    [rolled] = next_starts(app)
    assert utcnow() < rolled < utcnow() + timedelta(days=8)  # the next weekly walk
    assert list(live(app)) == [feed.activity_id("1")]
    # Harvested just now: not due again until HARVEST_INTERVAL has passed.
    assert enqueue_due(config) == []
    assert len([path for path, _status in feed.requests if path.startswith("/feed")]) == 2


def next_starts(app):
    with app.extensions["engine"].connect() as conn:
        return list(conn.execute(select(search_index.index.c.next_start)).scalars())


def test_a_stuck_or_failing_source_blocks_no_other(make_feed, make_aggregator, database_url):
    stuck, healthy = make_feed(), make_feed()
    stuck.put(weekly_activity(id=stuck.activity_id("1")))
    healthy.put(weekly_activity(id=healthy.activity_id("1"), name="Healthy walk"))
    stuck.gate.clear()
    app = make_aggregator(database_url)
    config = job_config(app)
    ids = [follow(app, url) for url in (stuck.feed_url, healthy.feed_url, f"{healthy.base_url}/status/500")]

    stuck_job, healthy_job, failing_job = (enqueue_harvest(source_id, config) for source_id in ids)
    assert healthy_job.result(timeout=30).status == "ok"
    assert failing_job.result(timeout=30).status == "error"
    assert not stuck_job.done()  # still waiting on its server
    assert list(live(app)) == [healthy.activity_id("1")]
    assert "HTTP 500" in source_row(app, ids[2]).last_error["cause"]

    stuck.gate.set()
    assert stuck_job.result(timeout=30).status == "ok"
    assert sorted(live(app)) == sorted([healthy.activity_id("1"), stuck.activity_id("1")])


def test_the_worker_command_without_redis_says_where_harvests_run(tmp_path):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "REDIS_URL": "",
    }
    result = CliRunner().invoke(main, ["worker", "--burst"], env=env)
    assert result.exit_code == 1
    assert "REDIS_URL is not set" in result.output and "localfeed-aggregator schedule" in result.output
