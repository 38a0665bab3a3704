"""A search never waits for a harvest's write, even when it learns something worth keeping.

SQLite has one writer at a time. A search near a postcode the table does not know asks the
geocoder, and would like to keep the answer and place the listings that waited for it; if
it wrote in its own transaction it would queue behind a harvest's page (up to the busy
timeout). Here a real writer holds the write lock while the search runs on another thread:
the search answers anyway, and the answer is kept by a later search once the lock is free.
"""

from __future__ import annotations

import threading

import pytest

from aggregator import geocode, query
from federation.geocoding import CsvGeocoder
from tests.aggregator.test_places import NOW, ONSPD, engine, mitcham  # noqa: F401  (engine: a fixture)

NEW = "CR4 1HU"  # in the operator's file; no listing gives it


def _search(database, geocoder) -> dict:
    with database.connect() as conn:
        return query.search(conn, {"near": NEW, "radius": "3"}, now=NOW, geocoder=geocoder)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_search_near_a_new_postcode_answers_while_a_harvest_holds_the_write_lock(engine):  # noqa: F811
    mitcham(engine)
    directory = CsvGeocoder(ONSPD)
    harvest = engine.raw_connection()
    harvest.execute("BEGIN IMMEDIATE")  # a harvest's page, mid-write
    answered: dict[str, dict] = {}
    try:
        searching = threading.Thread(target=lambda: answered.update(body=_search(engine, directory)))
        searching.start()
        searching.join(timeout=10)  # the busy timeout is 30 s: a search that waited would still be waiting
        assert not searching.is_alive(), "the search waited for the harvest's write"
        assert answered["body"]["query"]["located"]["precision"] == "postcode"
        assert answered["body"]["items"]
        with engine.connect() as conn:
            assert geocode.known(conn, NEW) is None  # not kept: the database was busy
    finally:
        harvest.rollback()
        harvest.close()

    _search(engine, directory)  # the database is free now: this one keeps the answer
    with engine.connect() as conn:
        assert geocode.known(conn, NEW) == pytest.approx((51.4, -0.1536))
