"""Geocoding: postcode spelling, the operator's CSV (ONS and Code-Point Open), a postcodes.io-like
service on loopback, and the table that learns from items and caches answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask, jsonify
from sqlalchemy.engine import Engine

from aggregator import geocode
from aggregator.store import metadata
from federation.db import make_engine
from federation.fetch import GuardedClient

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# Buckingham Palace's postcode, as the ONS Postcode Directory gives it.
SW1A_1AA = (51.501009, -0.141588)
SW1A_1AA_GRID = (529090, 179645)


def test_grid_references_convert_to_wgs84():
    lat, lon = geocode.osgb36_to_wgs84(*SW1A_1AA_GRID)
    assert lat == pytest.approx(SW1A_1AA[0], abs=1e-4)  # 1e-4 degrees is about 10 m
    assert lon == pytest.approx(SW1A_1AA[1], abs=1e-4)


def test_the_operators_csv_in_either_layout(tmp_path):
    ons = geocode.CsvGeocoder(DATA / "postcodes_ons.csv")
    assert ons.lookup("CR4 1HT") == (51.3982, -0.1545)
    assert ons.lookup("SW1A 1AA") == SW1A_1AA
    assert ons.lookup("ZZ99 3WZ") is None  # the ONS "no position" row
    assert ons.lookup("SE1 7PB") is None

    code_point = geocode.CsvGeocoder(DATA / "postcodes_codepoint.csv")
    lat, lon = code_point.lookup("SW1A 1AA")
    assert (lat, lon) == (pytest.approx(SW1A_1AA[0], abs=1e-4), pytest.approx(SW1A_1AA[1], abs=1e-4))
    assert code_point.lookup("SE1 7PB") == geocode.osgb36_to_wgs84(530950, 180050)

    headed = tmp_path / "grid.csv"
    headed.write_text("Postcode,Eastings,Northings\nsw1a 1aa,529090,179645\ngir0aa,544500,181500\n")
    assert geocode.CsvGeocoder(headed).lookup("SW1A 1AA") == code_point.lookup("SW1A 1AA")
    assert geocode.CsvGeocoder(headed).lookup("GIR 0AA") == geocode.osgb36_to_wgs84(544500, 181500)

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,town\nThe Hall,Mitcham\n")
    with pytest.raises(geocode.GeocoderUnavailable, match="no column named pcds or postcode"):
        geocode.CsvGeocoder(wrong).lookup("CR4 1HT")
    with pytest.raises(geocode.GeocoderUnavailable, match="cannot be read"):
        geocode.CsvGeocoder(tmp_path / "missing.csv").lookup("CR4 1HT")


class FakePostcodesIo:
    """A loopback imitation of postcodes.io that counts the lookups it answers."""

    def __init__(self, known: dict[str, tuple[float, float]]) -> None:
        self.known = known
        self.asked: list[str] = []
        self.broken = False
        self.app = Flask(__name__)
        self.app.add_url_rule("/postcodes/<postcode>", view_func=self.postcode)

    def postcode(self, postcode: str):
        self.asked.append(postcode)
        if self.broken:
            return jsonify(status=500, error="Internal server error"), 500
        if postcode not in self.known:
            return jsonify(status=404, error="Postcode not found"), 404
        lat, lon = self.known[postcode]
        return jsonify(status=200, result={"postcode": postcode, "latitude": lat, "longitude": lon})


@pytest.fixture
def postcodes_io(serve) -> Iterator[tuple[FakePostcodesIo, geocode.HttpGeocoder]]:
    fake = FakePostcodesIo({"SW1A 1AA": SW1A_1AA})
    url = serve(fake.app).url
    with GuardedClient(allow_private=True) as client:
        yield fake, geocode.HttpGeocoder(url + "/", client)


def test_a_postcodes_io_compatible_service(postcodes_io):
    fake, http = postcodes_io
    assert http.lookup("SW1A 1AA") == SW1A_1AA
    assert fake.asked == ["SW1A 1AA"]  # the space reached the service URL-encoded, intact
    assert http.lookup("ZZ1 1ZZ") is None
    fake.broken = True
    with pytest.raises(geocode.GeocoderUnavailable, match="cannot read"):
        http.lookup("SW1A 1AA")


def test_the_service_is_refused_on_a_private_address_unless_allowed(postcodes_io):
    fake, allowed = postcodes_io
    with GuardedClient() as strict:
        refused = geocode.HttpGeocoder(allowed.base_url, strict)
        with pytest.raises(geocode.GeocoderUnavailable, match="ALLOW_PRIVATE_NETWORKS"):
            refused.lookup("SW1A 1AA")
    assert fake.asked == []


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_the_table_learns_caches_and_remembers_unknowns_for_a_day(engine, postcodes_io):
    fake, http = postcodes_io
    chain = geocode.ChainGeocoder([geocode.CsvGeocoder(DATA / "postcodes_ons.csv"), http])
    with engine.begin() as conn:
        # From the file: asked once, then from the table.
        assert geocode.locate(conn, "CR4 1HT", chain, NOW) == (51.3982, -0.1545)
        # From the service, once.
        fake.known["SE1 7PB"] = (51.4985, -0.1131)
        assert geocode.locate(conn, "SE1 7PB", chain, NOW) == (51.4985, -0.1131)
        assert geocode.locate(conn, "SE1 7PB", chain, NOW) == (51.4985, -0.1131)
        assert fake.asked == ["SE1 7PB"]
        # Unknown: remembered for a day, then asked again.
        assert geocode.locate(conn, "ZZ1 1ZZ", chain, NOW) is None
        assert geocode.locate(conn, "ZZ1 1ZZ", chain, NOW + timedelta(hours=23)) is None
        assert fake.asked == ["SE1 7PB", "ZZ1 1ZZ"]
        fake.known["ZZ1 1ZZ"] = (51.0, 0.0)
        assert geocode.locate(conn, "ZZ1 1ZZ", chain, NOW + timedelta(hours=25)) == (51.0, 0.0)

        # Learned from items: the latest item's point, never over an official centroid.
        assert geocode.learn(conn, "CR4 2LF", (51.40, -0.16), NOW)
        assert geocode.learn(conn, "CR4 2LF", (51.41, -0.17), NOW)
        assert not geocode.learn(conn, "CR4 2LF", (51.41, -0.17), NOW)
        assert geocode.locate(conn, "CR4 2LF", geocode.NoGeocoder(), NOW) == (51.41, -0.17)
        assert not geocode.learn(conn, "CR4 1HT", (52.0, 0.0), NOW)
        assert geocode.known(conn, "CR4 1HT") == (51.3982, -0.1545)
        # With no geocoder configured, an unknown postcode is not remembered as unknown.
        assert geocode.locate(conn, "N1 9GU", geocode.NoGeocoder(), NOW) is None
        fake.known["N1 9GU"] = (51.53, -0.12)
        assert geocode.locate(conn, "N1 9GU", chain, NOW) == (51.53, -0.12)


def test_settings_choose_the_geocoders(tmp_path):
    assert isinstance(geocode.from_config({}), geocode.NoGeocoder)
    chain = geocode.from_config(
        {"POSTCODE_CSV": str(DATA / "postcodes_ons.csv"), "POSTCODES_API_URL": "https://api.postcodes.io"}
    )
    assert isinstance(chain, geocode.ChainGeocoder)
    assert [type(g) for g in chain.geocoders] == [geocode.CsvGeocoder, geocode.HttpGeocoder]
    assert chain.lookup("CR4 1HT") == (51.3982, -0.1545)  # the file answers; the service is not asked
