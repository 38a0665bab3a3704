"""Anonymous impact counts at the aggregator: what is kept (a count), what never is, and suppression.

A real aggregator holding real harvested activities, served by a real Werkzeug server whose
request log is captured; the counting requests come over HTTP as browsers send them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from sqlalchemy import insert, inspect, select, text

from aggregator.harvest import harvest_source
from aggregator.impact import record, tally
from aggregator.settings import job_config
from aggregator.store import impact_counts, impact_relayed, metadata, sources
from federation.websub.hub import define_tables
from tests.embed.live import FEED_PATH, activities, aggregator_app, harvest, serve_feed

VISITOR = "203.0.113.9"  # the browser's address, as the reverse proxy in front reports it
BROWSER = "Mozilla/5.0 (X11; Linux) MarkerBrowser/77.7"
COOKIE = "session=cookie-marker-5521"
SURGERY = "https://surgery.example"
PUBLISHER_HOST = "127.0.0.2"
PERSONAL = (VISITOR, "127.0.0.1", "MarkerBrowser", "cookie-marker")


class Clock:
    """The aggregator's CLOCK: a test moves it on."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def counting(serve, tmp_path):
    """(app, its server, activity ids, clock): an aggregator behind one proxy, holding four activities."""
    # The publisher on another loopback address: the browser's own (127.0.0.1) then appears nowhere.
    site = serve_feed(lambda app: serve(app, host=PUBLISHER_HOST), activities)
    ids = [activity["id"] for activity in activities(site)]
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=UTC))
    app = aggregator_app(tmp_path, TRUSTED_PROXIES=1, CLOCK=clock)
    harvest(app, site + FEED_PATH)
    return app, serve(app), ids, clock


def browser_headers(**extra: str) -> dict[str, str]:
    return {"User-Agent": BROWSER, "Cookie": COOKIE, "X-Forwarded-For": VISITOR, **extra}


def counts(app) -> dict[tuple[str, str, str], int]:
    """What is stored, once the counts waiting in memory are written (as they are every second)."""
    tally(app).flush()
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(impact_counts)).all()
    return {(row.activity_id, row.site, row.kind): row.events for row in rows}


def test_no_stored_row_log_line_or_response_of_counting_holds_an_address_browser_or_cookie(counting, caplog):
    app, server, ids, _clock = counting
    lunch, walk = ids[0], ids[1]
    caplog.set_level(logging.INFO)
    answers = [
        httpx.post(
            f"{server.url}/impact/events",
            content=f'{{"events": [["shown", "{lunch}"], ["shown", "{walk}"], ["opened", "{walk}"]]}}',
            headers=browser_headers(Origin=SURGERY, **{"Content-Type": "text/plain;charset=UTF-8"}),
        ),
        httpx.get(
            f"{server.url}/impact/pixel.gif",
            params={"k": "printed", "a": [lunch, walk]},
            headers=browser_headers(Referer=f"{SURGERY}/patients/jo-bloggs/diabetes?x=1"),
        ),
        httpx.get(
            f"{server.url}/go/booking",
            params={"a": lunch},
            headers=browser_headers(Referer=f"{SURGERY}/patients/jo-bloggs"),
        ),
    ]
    assert [answer.status_code for answer in answers] == [204, 200, 302]
    assert answers[1].content.startswith(b"GIF89a")
    for answer in answers:
        assert "set-cookie" not in answer.headers
        seen = str(answer.headers) + answer.text
        assert not any(marker in seen for marker in PERSONAL), seen

    assert counts(app) == {
        (lunch, SURGERY, "shown"): 1,
        (walk, SURGERY, "shown"): 1,
        (walk, SURGERY, "opened"): 1,
        (lunch, SURGERY, "printed"): 1,
        (walk, SURGERY, "printed"): 1,
        (lunch, SURGERY, "booking"): 1,
    }
    with app.extensions["engine"].connect() as conn:  # every row of every table, not just the counts
        stored = " ".join(
            str(tuple(row))
            for name in inspect(conn).get_table_names()
            for row in conn.execute(text(f'SELECT * FROM "{name}"'))
        )
    assert not any(marker in stored for marker in PERSONAL)
    assert "jo-bloggs" not in stored and "diabetes" not in stored  # only the site's origin is kept

    server_lines = [
        r.getMessage() for r in caplog.records if r.name != "httpx"
    ]  # httpx's: the test's own client
    counting_lines = [line for line in server_lines if "/impact/" in line or "/go/" in line]
    assert len(counting_lines) == 3, caplog.text  # Werkzeug logged each request, and nothing personal in them
    for line in counting_lines:
        assert not any(marker in line for marker in PERSONAL), line
        assert "jo-bloggs" not in line


def test_privacy_signals_opt_out_and_unknown_ids_are_not_counted(counting):
    app, server, ids, _clock = counting
    body = f'{{"events": [["shown", "{ids[0]}"]]}}'
    for asked in ({"Sec-GPC": "1"}, {"DNT": "1"}):
        answer = httpx.post(f"{server.url}/impact/events", content=body, headers={"Origin": SURGERY, **asked})
        assert answer.status_code == 204  # the same answer: a page cannot tell who was counted
    httpx.get(f"{server.url}/impact/pixel.gif", params={"k": "shown", "a": ids[0], "counting": "off"})
    elsewhere = "https://elsewhere.example/activities/x"
    made_up = orjson.dumps({"events": [["shown", elsewhere], ["clicked", ids[0]]]})
    assert (
        httpx.post(f"{server.url}/impact/events", content=made_up, headers={"Origin": SURGERY}).status_code
        == 204
    )
    assert counts(app) == {}

    too_many = orjson.dumps({"events": [["shown", ids[0]]] * 101})
    answer = httpx.post(f"{server.url}/impact/events", content=too_many)
    assert answer.status_code == 400 and "at most 100 events" in answer.json()["error"]["message"]
    assert httpx.post(f"{server.url}/impact/events", content=b"x" * 20_000).status_code == 413
    assert httpx.post(f"{server.url}/impact/events", content=b"not json").status_code == 400
    assert counts(app) == {}


def test_booking_redirect_goes_only_to_the_activitys_own_booking_address(counting):
    app, server, ids, _clock = counting
    lunch, walk = ids[0], ids[1]
    answer = httpx.get(
        f"{server.url}/go/booking",
        params={
            "a": lunch,
            "url": "https://evil.example/",
            "next": "https://evil.example/",
            "aff": "surgery42",
        },
    )
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(
        "https://www.eventbrite.co.uk/e/winter-warmer-lunch-tickets-123456789"
    )
    assert "aff=surgery42" in answer.headers["location"]
    # No booking link held, or no such activity: nowhere to send anyone.
    assert httpx.get(f"{server.url}/go/booking", params={"a": walk}).status_code == 404
    assert httpx.get(f"{server.url}/go/booking", params={"a": "https://evil.example/"}).status_code == 404
    # With GPC the browser still gets where it was going, uncounted.
    answer = httpx.get(f"{server.url}/go/booking", params={"a": lunch}, headers={"Sec-GPC": "1"})
    assert answer.status_code == 302
    assert counts(app) == {(lunch, "", "booking"): 1}  # no Origin or Referer sent: the site is not known


def test_a_count_of_3_is_published_as_fewer_than_5_and_no_total_gives_it_back(counting):
    app, server, ids, clock = counting
    walk = ids[1]
    origin = walk.split("/activities/")[0]
    engine = app.extensions["engine"]
    day1, day2 = datetime(2026, 11, 3).date(), datetime(2026, 11, 4).date()
    record(engine, day1, SURGERY, [("shown", walk)] * 3)
    record(engine, day1, "https://library.example", [("shown", walk)] * 4)
    record(engine, day2, SURGERY, [("shown", walk)] * 7)
    clock.now = datetime(2026, 11, 4, 15, 0, tzinfo=UTC)  # day 2 is not over yet: not published
    body = httpx.get(f"{server.url}/impact/report", params={"origin": origin}).json()
    assert body["through"] == "2026-11-03"
    (own,) = body["counts"]
    assert {(c["site"], c["count"]) for c in own["days"]} == {
        (SURGERY, None),
        ("https://library.example", None),
    }

    clock.now += timedelta(days=1)
    answer = httpx.get(f"{server.url}/impact/report", params={"origin": origin})
    assert answer.headers["access-control-allow-origin"] == "*"
    (own,) = answer.json()["counts"]
    cells = {(c["day"], c["site"]): c["count"] for c in own["days"]}
    assert cells == {
        ("2026-11-03", SURGERY): None,
        ("2026-11-03", "https://library.example"): None,
        ("2026-11-04", SURGERY): 7,
    }
    months = {m["site"]: (m["count"], m["lowerBound"]) for m in own["months"]}
    assert months == {SURGERY: (7, True), "https://library.example": (0, True)}
    # The month's total minus the published days leaves 0 for the suppressed one, never 3;
    # and the two small sites' counts (3 and 4) do not add up to a publishable 7 anywhere.
    assert months[SURGERY][0] - sum(c for c in cells.values() if c) == 0
    assert '"count":3' not in answer.text and '"count":4' not in answer.text

    assert httpx.get(f"{server.url}/impact/report", params={"origin": origin + "/path"}).status_code == 400


def test_counts_of_aggregators_that_follow_us_come_back_in_our_report(serve, tmp_path):
    """B follows A (subscribed to A's hub) and counts A's relayed items; A's report carries B's counts."""
    site = serve_feed(serve, activities)
    walk = activities(site)[1]["id"]
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=UTC))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    upstream = aggregator_app(tmp_path / "a", CLOCK=clock)
    downstream = aggregator_app(tmp_path / "b", CLOCK=clock)
    harvest(upstream, site + FEED_PATH)
    a, b = serve(upstream), serve(downstream)
    with downstream.extensions["engine"].begin() as conn:  # B follows A, an aggregator relaying the site
        source_id = conn.execute(
            insert(sources).values(
                url=a.url + FEED_PATH,
                feed_url=a.url + FEED_PATH,
                kind="localfeed",
                name="A",
                state="approved",
                trust=50,
                is_aggregator=True,
            )
        ).inserted_primary_key[0]
    assert harvest_source(source_id, job_config(downstream)).status == "ok"
    record(downstream.extensions["engine"], datetime(2026, 11, 9).date(), SURGERY, [("opened", walk)] * 6)
    subscriptions = define_tables(metadata)[0]
    with upstream.extensions["engine"].begin() as conn:  # B's subscription to A's hub, as verified
        now = datetime.now(UTC)
        conn.execute(
            insert(subscriptions).values(
                topic=f"{a.url}{FEED_PATH}",
                callback=f"{b.url}/websub/callback/1",
                state="active",
                lease_seconds=86400,
                expires_at=now + timedelta(days=1),
                created_at=now,
                failures=0,
            )
        )

    from aggregator.impact import refresh_relayed

    origin = walk.split("/activities/")[0]
    assert refresh_relayed(upstream.config, upstream.extensions["engine"], origin, a.url) == []
    with upstream.extensions["engine"].connect() as conn:
        assert conn.execute(select(impact_relayed.c.counted_by)).scalars().all() == [b.url]
    body = httpx.get(f"{a.url}/impact/report", params={"origin": origin}).json()
    by_counter = {section["countedBy"]: section["days"] for section in body["counts"]}
    assert by_counter[a.url] == []
    assert by_counter[b.url] == [
        {"activity": walk, "day": "2026-11-09", "site": SURGERY, "kind": "opened", "count": 6}
    ]


def test_counts_add_up_on_both_databases(database_url, serve, tmp_path):
    site = serve_feed(lambda app: serve(app, host=PUBLISHER_HOST), activities)
    walk = activities(site)[1]["id"]
    app = aggregator_app(tmp_path, DATABASE_URL=database_url)
    harvest(app, site + FEED_PATH)
    day = datetime(2026, 11, 3).date()
    engine = app.extensions["engine"]
    events = [("shown", walk)] * 4 + [("shown", "https://elsewhere.example/x")]
    assert record(engine, day, SURGERY, events) == 4
    tally(app).add(day, SURGERY, [("shown", walk), ("opened", walk)])
    assert tally(app).flush() == 2
    assert counts(app) == {(walk, SURGERY, "shown"): 5, (walk, SURGERY, "opened"): 1}
    engine.dispose()


def test_reports_asked_for_any_number_of_origins_remember_at_most_a_bounded_number(serve, tmp_path):
    """Anyone may ask for a report on any origin; the memory of when each was refreshed stays bounded."""
    from aggregator import impact

    app = aggregator_app(tmp_path)
    key_of = str(app.config["DATABASE_URL"])
    server = serve(app)
    with httpx.Client(base_url=server.url) as client:
        first = client.get("/impact/report", params={"origin": "https://first.example"})
        assert first.status_code == 200
        for n in range(impact.REFRESHING_KEPT + 50):
            answer = client.get("/impact/report", params={"origin": f"https://site{n}.example"})
            assert answer.status_code == 200
    assert len(impact._refreshing) <= impact.REFRESHING_KEPT
    assert (key_of, f"https://site{impact.REFRESHING_KEPT + 49}.example") in impact._refreshing
    assert (key_of, "https://first.example") not in impact._refreshing  # the oldest made way
    # Within IMPACT_REFRESH_SECONDS an origin is refreshed once: asking again keeps its time.
    last = (key_of, "https://site1000.example")
    when = impact._refreshing[last]
    httpx.get(f"{server.url}/impact/report", params={"origin": "https://site1000.example"})
    assert impact._refreshing[last] == when
