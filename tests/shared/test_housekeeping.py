"""Housekeeping (issue 24): delivered pushes and relayed outbox records go after their retention,
and SQLite gives the space back without ever making a reader wait."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select, text, update

from federation.clock import utcnow
from federation.db import compact, make_engine
from federation.websub.hub import Retention
from publisher import housekeeping
from publisher.cli import main as publisher_cli
from publisher.editing import save_activity
from publisher.hub import HUB_KEY
from publisher.store import outbox
from tests.factories import weekly_activity
from tests.publisher.conftest import make_publisher, store_of  # noqa: F401  (the fixture)
from tests.shared.websub_world import make_hub


def _filled(path: Path, rows: int = 3000):
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)"))
        conn.execute(text("INSERT INTO t (body) VALUES (randomblob(4000))"), [{}] * rows)
    return engine


def _on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def test_a_new_sqlite_file_gives_the_space_of_purged_rows_back(tmp_path):
    path = tmp_path / "kept.sqlite"
    engine = _filled(path)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2  # incremental
    full = _on_disk(path)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM t"))

    done = compact(engine)

    assert done["log_reset"] == 1 and done["pages_returned"] >= 3000
    assert _on_disk(path) < full / 20  # the file shrank and the write-ahead log was truncated
    assert Path(f"{path}-wal").stat().st_size == 0


def test_compacting_never_waits_for_a_reader_nor_makes_one_wait(tmp_path):
    path = tmp_path / "busy.sqlite"
    engine = _filled(path, rows=500)
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (500,)  # holds this snapshot
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM t WHERE id > 100"))
    try:
        started = time.monotonic()
        done = compact(engine)
        assert time.monotonic() - started < 2  # not the 30 s busy timeout writers have
        assert done["log_reset"] == 0  # the log cannot be reset under the reader: left for later
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (500,)
    finally:
        reader.rollback()
        reader.close()
    assert compact(engine)["log_reset"] == 1


def test_delivered_pushes_go_after_their_retention_failed_ones_after_a_week(tmp_path):
    from tests.shared.websub_world import Clock

    clock = Clock()
    hub, engine = make_hub(
        f"sqlite:///{tmp_path / 'hub.sqlite'}", clock, retention=Retention(timedelta(hours=1))
    )
    d, s = hub.deliveries, hub.subscriptions
    with engine.begin() as conn:
        conn.execute(
            s.insert().values(
                id=1, topic="t", callback="http://x.test/cb", state="active", created_at=clock.now
            )
        )
        rows = [
            {"state": state, "finished_at": clock.now if state != "pending" else None}
            for state in ("delivered", "failed", "expired", "pending")
        ]
        for row in rows:
            conn.execute(
                d.insert().values(
                    subscription_id=1,
                    topic="t",
                    body=b"x",
                    content_type="application/json",
                    created_at=clock.now,
                    attempts=0,
                    next_attempt_at=clock.now,
                    **row,
                )
            )

    def states() -> list[str]:
        with engine.connect() as conn:
            return sorted(conn.execute(select(d.c.state)).scalars())

    clock.advance(minutes=59)
    assert hub.prune() == 0
    clock.advance(minutes=2)
    assert hub.prune() == 1
    assert states() == ["expired", "failed", "pending"]
    clock.advance(days=7)
    assert hub.prune() == 2
    assert states() == ["pending"]  # never pruned


def test_the_publisher_forgets_relayed_records_after_the_retention(make_publisher, tmp_path):  # noqa: F811
    database = f"sqlite:///{tmp_path / 'publisher.sqlite'}"
    app = make_publisher(database, HUB_WORKER=False, DELIVERED_KEEP_SECONDS=600)
    store = store_of(app)
    group = store.add_group("Mitcham Walkers")
    for name in ("Walk", "Lunch"):
        save_activity(store, group, weekly_activity(name=name), base_url="http://localhost")
    relay = app.extensions[HUB_KEY]
    assert relay.relay() == 2
    save_activity(store, group, weekly_activity(name="Not relayed yet"), base_url="http://localhost")

    def records() -> int:
        with store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox)).scalar_one()

    assert housekeeping.run(store, relay.hub, app.config)["outbox"] == 0  # relayed just now: kept
    with store.engine.begin() as conn:
        relayed = outbox.c.delivered_at.is_not(None)
        conn.execute(update(outbox).where(relayed).values(delivered_at=utcnow() - timedelta(hours=1)))
    report = housekeeping.run(store, relay.hub, app.config)
    assert report["outbox"] == 2 and records() == 1  # the unrelayed record stays whatever its age
    assert report["database"]["log_reset"] == 1

    # The same from the command line, with the settings in the environment as a server has them.
    env = {"DATABASE_URL": database, "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "x"}
    result = CliRunner().invoke(publisher_cli, ["housekeeping"], env={**os.environ, **env})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Removed 0 outbox, 0 deliveries, 0 tombstones.")
    assert "write-ahead log holds 0 page(s)" in result.output
