"""Both apps' migrations: they build the tables in the code, and an app refuses a database behind it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import Engine, inspect, text

import aggregator
import aggregator.cli
import publisher
import publisher.cli
from aggregator.store import MIGRATIONS as AGGREGATOR_MIGRATIONS
from federation import migrate
from federation.db import make_engine
from publisher.store import MIGRATIONS as PUBLISHER_MIGRATIONS

APPS: dict[str, tuple[Callable[..., Flask], migrate.Migrations, Any]] = {
    "publisher": (publisher.create_app, PUBLISHER_MIGRATIONS, publisher.cli.main),
    "aggregator": (aggregator.create_app, AGGREGATOR_MIGRATIONS, aggregator.cli.main),
}


def settings(database_url: str, tmp_path, **more: Any) -> dict[str, Any]:
    return {
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test",
        "HUB_WORKER": False,
        **more,
    }


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return migrate.current(conn)


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("app_name", APPS)
def test_the_migrations_build_the_tables_in_the_code(app_name, database_url):
    """What ``alembic check`` does: a table or column changed in the code without a revision fails here."""
    _, migrations, _ = APPS[app_name]
    assert migrate.differences(migrations, database_url) == []


def _shape(engine: Engine, tables: list[str]) -> dict[str, Any]:
    inspector = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"].compile(engine.dialect)), c["nullable"])
                for c in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            "foreign keys": sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    f["options"].get("ondelete"),
                )
                for f in inspector.get_foreign_keys(table)
            ),
        }
        for table in tables
    }


@pytest.mark.parametrize("app_name", APPS)
def test_an_upgrade_from_empty_builds_what_create_all_builds(app_name, engine):
    _, migrations, _ = APPS[app_name]
    metadata = migrations.tables()
    tables = sorted(metadata.tables)
    metadata.create_all(engine)
    created = _shape(engine, tables), _rows(engine, tables)
    metadata.drop_all(engine)

    migrate.upgrade(engine, migrations)

    assert (_shape(engine, tables), _rows(engine, tables)) == created
    assert set(inspect(engine).get_table_names()) == {*tables, "alembic_version"}


def _rows(engine: Engine, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """What each table holds: the rows a new database starts with (counters, cursors)."""
    with engine.connect() as conn:
        return {table: sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{table}"')))) for table in tables}


@pytest.mark.parametrize("app_name", APPS)
def test_a_new_database_is_built_at_the_latest_revision_as_the_app_starts(
    app_name, database_url, engine, tmp_path
):
    create_app, migrations, _ = APPS[app_name]
    create_app(settings(database_url, tmp_path))
    assert revision(engine) == migrations.head()
    assert migrate.differences(migrations, database_url) == []


@pytest.mark.parametrize("app_name", APPS)
def test_an_app_refuses_a_database_behind_it_until_it_is_upgraded(app_name, database_url, engine, tmp_path):
    create_app, migrations, cli = APPS[app_name]
    migrate.upgrade(engine, migrations, "0001")

    with pytest.raises(migrate.DatabaseNotCurrent) as refused:
        create_app(settings(database_url, tmp_path))
    assert f"Run: {migrations.program} db upgrade" in str(refused.value)
    assert revision(engine) == "0001"  # nothing was changed

    environment = {key: str(value) for key, value in settings(database_url, tmp_path, HUB_WORKER=0).items()}
    result = CliRunner().invoke(cli, ["db", "upgrade"], env=environment)
    assert result.exit_code == 0, result.output
    assert f"revision {migrations.head()}, the latest" in result.output
    create_app(settings(database_url, tmp_path))  # starts


@pytest.mark.parametrize("app_name", APPS)
def test_with_auto_upgrade_an_app_upgrades_its_database_as_it_starts(
    app_name, database_url, engine, tmp_path
):
    create_app, migrations, _ = APPS[app_name]
    migrate.upgrade(engine, migrations, "0001")
    create_app(settings(database_url, tmp_path, DATABASE_AUTO_UPGRADE=True))
    assert revision(engine) == migrations.head()


@pytest.mark.parametrize("app_name", APPS)
def test_a_database_a_newer_version_upgraded_is_refused(app_name, database_url, engine, tmp_path):
    create_app, migrations, _ = APPS[app_name]
    migrate.upgrade(engine, migrations)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(migrate.DatabaseNotCurrent) as refused:
        create_app(settings(database_url, tmp_path, DATABASE_AUTO_UPGRADE=True))
    assert "revision 9999, which this version of Localfeed does not have" in str(refused.value)
    assert f"{migrations.program} db upgrade" in str(refused.value)


def _made_before_migrations(engine: Engine, migrations: migrate.Migrations) -> None:
    """A database as the last version without migrations left it: its tables, no revision."""
    migrate.upgrade(engine, migrations, "0001")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))


@pytest.mark.parametrize("app_name", APPS)
def test_tables_made_before_migrations_are_recorded_as_the_first_revision(
    app_name, database_url, engine, tmp_path
):
    create_app, migrations, _ = APPS[app_name]
    _made_before_migrations(engine, migrations)

    with pytest.raises(migrate.DatabaseNotCurrent, match=f"Run: {migrations.program} db upgrade"):
        create_app(settings(database_url, tmp_path))  # recognised, but behind the code
    create_app(settings(database_url, tmp_path, DATABASE_AUTO_UPGRADE=True))
    assert revision(engine) == migrations.head()


@pytest.mark.parametrize("app_name", APPS)
def test_tables_made_before_migrations_that_are_not_the_first_revisions_are_refused(
    app_name, database_url, engine, tmp_path
):
    create_app, migrations, _ = APPS[app_name]
    _made_before_migrations(engine, migrations)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE websub_deliveries"))

    with pytest.raises(migrate.DatabaseNotCurrent, match="table websub_deliveries is missing"):
        create_app(settings(database_url, tmp_path, DATABASE_AUTO_UPGRADE=True))
    assert "alembic_version" not in inspect(engine).get_table_names()


def test_the_aggregators_change_number_carries_over_the_counters_new_shape(database_url, engine, tmp_path):
    migrate.upgrade(engine, AGGREGATOR_MIGRATIONS, "0001")
    with engine.begin() as conn:
        conn.execute(text("UPDATE counter SET value = 41 WHERE name = 'changes'"))
    migrate.upgrade(engine, AGGREGATOR_MIGRATIONS)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, value FROM counter")).all() == [(1, 41)]
