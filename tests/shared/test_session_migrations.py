"""The session-generation migrations give every existing editor and operator a token of their own."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from aggregator.store import MIGRATIONS as AGGREGATOR_MIGRATIONS
from federation import migrate
from federation.db import make_engine
from publisher.store import MIGRATIONS as PUBLISHER_MIGRATIONS

# (migrations, the revision before the generation, the user table, an INSERT of one user)
BEFORE = {
    "publisher": (
        PUBLISHER_MIGRATIONS, "0002", "users",
        "INSERT INTO users (email, password_hash, role, created_at) "
        "VALUES (:email, 'hash', 'admin', CURRENT_TIMESTAMP)",
    ),
    "aggregator": (
        AGGREGATOR_MIGRATIONS, "0003", "operators",
        "INSERT INTO operators (email, password_hash, created_at) VALUES (:email, 'hash', CURRENT_TIMESTAMP)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("app_name", BEFORE)
def test_existing_users_each_get_their_own_session_generation(app_name, database_url):
    migrations, before, table, insert_user = BEFORE[app_name]
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, migrations, before)
        with engine.begin() as conn:
            for email in ("one@example.org", "two@example.org"):
                conn.execute(text(insert_user), {"email": email})

        migrate.upgrade(engine, migrations)

        with engine.connect() as conn:
            generations = conn.execute(text(f"SELECT session_generation FROM {table}")).scalars().all()
        assert len(generations) == 2 and len(set(generations)) == 2
        assert all(len(generation) == 32 for generation in generations)
    finally:
        engine.dispose()
