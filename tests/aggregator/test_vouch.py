"""Who vouches for a listing: "checked by us" sources, and dates no organiser gave.

Two live feeds list the same lunch: a group's own feed (its organiser confirmed it a month
ago) and a directory, under its own id, whose adapter could only stamp the harvest day
(``"ext:verifiedBy": "harvest"``). The directory also has a shed nobody confirmed.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from aggregator.adapters.mapping import VERIFIED_BY
from tests.aggregator.conftest import follow, harvest, source_row
from tests.aggregator.test_sources import _logged_in, _post
from tests.browser.test_widget import open_widget
from tests.embed.live import FEED_PATH, LONDON, TODAY, aggregator_app, month_year, serve_feed
from tests.factories import event_activity

CONFIRMED = TODAY - timedelta(days=30)


def _on(days: int, hour: int = 12) -> dict[str, str]:
    start = datetime.combine(TODAY + timedelta(days=days), time(hour), LONDON)
    return {"startDate": start.isoformat(), "endDate": (start + timedelta(hours=2)).isoformat()}


def _own_feed(site: str) -> list[dict]:
    """The club's feed: its lunch, under an id on its own site."""
    return [
        event_activity(
            base=site, description="From the club's own feed.", lastVerified=CONFIRMED.isoformat(), **_on(20)
        )
    ]


def _directory_feed(site: str) -> list[dict]:
    """The directory's: the same lunch (same name, place and time) under the directory's id, and a shed."""
    lunch = event_activity(
        base=site,
        description="From a directory.",
        lastVerified=TODAY.isoformat(),
        **{VERIFIED_BY: "harvest"},
        **_on(20),
    )
    shed = event_activity(
        id=f"{site}/activities/directory-shed",
        name="Directory Shed",
        lastVerified=TODAY.isoformat(),
        **{VERIFIED_BY: "harvest"},
        **_on(2),
    )
    return [lunch, shed]


def _aggregator(serve, tmp_path):
    """The aggregator, its two sources (the club's first) and the lunch's id on the club's site."""
    app = aggregator_app(tmp_path, TESTING=True)
    own_site, directory_site = serve_feed(serve, _own_feed), serve_feed(serve, _directory_feed)
    own_source = follow(app, own_site + FEED_PATH, trust=50)
    directory_source = follow(app, directory_site + FEED_PATH, trust=50)
    for source_id in (own_source, directory_source):
        assert harvest(app, source_id).status == "ok"
    return app, own_source, directory_source, _own_feed(own_site)[0]["id"]


def test_harvest_dates_rank_as_unconfirmed_and_checked_sources_vouch(serve, tmp_path):
    app, own_source, directory_source, lunch_id = _aggregator(serve, tmp_path)
    client = app.test_client()

    # Both copies are one lunch, shown as the club's own feed says: that feed is on the site
    # that minted the lunch's id. The directory's newer date is only the day it was read.
    lunch = client.get("/api/activities/" + lunch_id).get_json()
    assert lunch["activity"]["description"] == "From the club's own feed."
    assert [source["url"] for source in lunch["sources"]] == [
        source_row(app, own_source).feed_url,
        source_row(app, directory_source).feed_url,
    ]
    assert lunch["freshness"]["confirmedByOrganiser"] is True and lunch["freshness"]["state"] == "fresh"
    assert lunch["vouchedBy"] == []

    # The shed meets sooner, but nobody confirmed it: it comes after, noted, never "fresh".
    listed = client.get("/api/activities").get_json()["items"]
    assert [item["activity"]["name"] for item in listed] == ["Winter Warmer Lunch", "Directory Shed"]
    assert listed[1]["freshness"] == {
        "state": "stale",
        "lastVerified": TODAY.isoformat(),
        "note": "Not confirmed by the organiser",
        "confirmedByOrganiser": False,
    }

    # The operator marks the club's feed as checked by their own visitors.
    operator = _logged_in(app)
    assert "Checked by us" in operator.get("/operator/sources").text
    marked = _post(
        operator,
        f"/operator/sources/{own_source}/checked",
        "/operator/sources",
        checked="1",
        checked_by="Merton CVS",
    )
    assert marked.status_code == 302
    listed = client.get("/api/activities").get_json()["items"]
    assert [item["vouchedBy"] for item in listed] == [["Merton CVS"], []]
    assert client.get(f"/sources/{own_source}/quality.json").get_json()["checkedBy"] == "Merton CVS"
    assert "<strong>Checked by Merton CVS</strong>" in client.get(f"/sources/{own_source}").text

    embedded = client.get("/embed").text
    assert "Checked by Merton CVS" in embedded and "Not confirmed by the organiser" in embedded
    assert embedded.count("Last checked") == 1  # the harvest day is no check
    assert f"Last checked {month_year(CONFIRMED)}" in embedded
    printed = client.get("/embed/print").text
    assert "<dt>Checked by</dt><dd>Merton CVS</dd>" in printed
    assert "<dt>Last checked</dt><dd>Not confirmed by the organiser</dd>" in printed

    # Unticking takes the name off again; a stranger cannot change it.
    _post(operator, f"/operator/sources/{own_source}/checked", "/operator/sources", checked_by="Merton CVS")
    assert client.get("/api/activities/" + lunch_id).get_json()["vouchedBy"] == []
    stranger = app.test_client().post(f"/operator/sources/{own_source}/checked", data={"checked": "1"})
    assert stranger.status_code in (302, 400)
    assert client.get("/api/activities/" + lunch_id).get_json()["vouchedBy"] == []


@pytest.mark.browser
def test_the_widget_says_who_vouches_and_what_no_organiser_confirmed(page, serve, tmp_path):
    app, own_source, _directory, _lunch_id = _aggregator(serve, tmp_path)
    _post(_logged_in(app), f"/operator/sources/{own_source}/checked", "/operator/sources", checked="1")
    aggregator = serve(app)
    open_widget(page, serve, aggregator)
    items = page.locator("localfeed-activities li.item")
    lunch, shed = items.nth(0).inner_text(), items.nth(1).inner_text()
    assert "Checked by Localfeed aggregator" in lunch and f"Last checked {month_year(CONFIRMED)}" in lunch
    assert "Not confirmed by the organiser" in shed and "Last checked" not in shed
    assert "Checked by" not in shed
