"""Freshness states, notes and capacity's shelf life, on a clock the test sets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from aggregator import freshness
from aggregator.freshness import Thresholds

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age_days", "state"),
    [(0, "fresh"), (90, "fresh"), (91, "ageing"), (180, "ageing"), (181, "stale"), (365, "stale"),
     (366, "expired")],
)  # fmt: skip
def test_states_change_at_the_thresholds(age_days, state):
    verified = NOW.date() - timedelta(days=age_days)
    described = freshness.describe(verified, NOW, Thresholds())
    assert described["state"] == state
    assert described["lastVerified"] == verified.isoformat()
    expected_note = f"Not confirmed since {verified:%B %Y}" if state in ("stale", "expired") else None
    assert described["note"] == expected_note


def test_a_quiet_source_makes_a_listing_stale_but_never_revives_an_expired_one():
    quiet_since = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    fresh = freshness.describe(date(2026, 11, 1), NOW, Thresholds(), quiet_since)
    assert fresh == {
        "state": "stale",
        "lastVerified": "2026-11-01",
        "note": "Its source has not answered since 3 November 2026",
        "confirmedByOrganiser": True,
    }
    assert freshness.describe(date(2025, 1, 1), NOW, Thresholds(), quiet_since)["state"] == "expired"


def test_thresholds_come_from_the_settings_and_must_be_in_order():
    thresholds = Thresholds.from_config(
        {"FRESH_DAYS": "30", "AGEING_DAYS": 60, "STALE_DAYS": 90, "CAPACITY_MAX_AGE_DAYS": 7,
         "SOURCE_UNREACHABLE_DAYS": 3}
    )  # fmt: skip
    assert thresholds == Thresholds(30, 60, 90, 7, 3)
    assert freshness.state(NOW.date() - timedelta(days=61), NOW, thresholds) == "stale"
    with pytest.raises(ValueError, match="must be in increasing order"):
        Thresholds.from_config({"FRESH_DAYS": 200})


def test_capacity_older_than_its_shelf_life_is_shown_as_unknown():
    def shown(capacity, modified="2026-11-19T10:00:00+00:00"):
        return freshness.current_capacity({"capacity": capacity, "dateModified": modified}, NOW, Thresholds())

    recent = (NOW - timedelta(days=3)).isoformat()
    old = (NOW - timedelta(days=15)).isoformat()
    assert shown({"status": "full", "updatedAt": recent}) == {"status": "full", "updatedAt": recent}
    assert shown({"status": "full", "updatedAt": old}) == {"status": "unknown", "updatedAt": old}
    # Without its own date, capacity is as old as the listing's last save.
    assert shown({"status": "spaces", "remaining": 4}) == {"status": "spaces", "remaining": 4}
    assert shown({"status": "spaces", "remaining": 4}, modified=old) == {"status": "unknown"}
    assert shown(None) is None
