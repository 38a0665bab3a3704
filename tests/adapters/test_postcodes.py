"""Every adapter hands on a source's postcode in the contract's one normal form, GIR 0AA included."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from aggregator.adapters import mapping as m
from aggregator.adapters import openactive, oruk
from schema import validate_activity
from tests.adapters.directory import SHED
from tests.adapters.test_openactive import _series

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
SPELLINGS = [("cr41aa", "CR4 1AA"), (" CR4  1aa ", "CR4 1AA"), ("CR41AA", "CR4 1AA"), ("gir0aa", "GIR 0AA")]


@pytest.mark.parametrize(("sent", "normal"), SPELLINGS)
def test_openactive(sent, normal):
    series = _series("wf")
    series["location"]["address"]["postalCode"] = sent
    activity = openactive.map_opportunity(series, "https://leisure.example/series/wf", NOW).activity
    assert activity["location"]["address"]["postalCode"] == normal
    assert validate_activity(activity) == []


@pytest.mark.parametrize(("sent", "normal"), SPELLINGS)
def test_open_referral_uk(sent, normal):
    service = copy.deepcopy(SHED)
    service["service_at_locations"][0]["location"]["addresses"][0]["postal_code"] = sent
    candidate = oruk.map_service(service, "https://dir.example/services/shed", NOW)
    assert candidate.activity["location"]["address"]["postalCode"] == normal


@pytest.mark.parametrize(("sent", "normal"), SPELLINGS)
def test_free_text_locations(sent, normal):
    assert m.find_postcode(f"Mitcham Community Hall, 1 London Road, Mitcham {sent.strip()}") == normal


@pytest.mark.parametrize("field", ["CR4 1A", "", None, 4, ["CR4 1AA"]])
def test_a_field_that_is_not_a_postcode_gives_none(field):
    assert m.postcode(field) is None
