"""A publisher's editors see their own group's counts from two real aggregators; an administrator sees all.

The publisher, and two aggregators that harvest its real feed, each serve on loopback; the
events reach the aggregators as browsers send them, and the publisher fetches the reports
through its guarded client, as in production.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import httpx
import orjson

from aggregator.impact import tally
from publisher import editing
from publisher.impact import refresh
from tests.embed.live import aggregator_app, harvest
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import store_of

PASSWORD = "correct horse battery"
SURGERY = "https://surgery.example"
LIBRARY = "https://library.example"


def log_in(client: httpx.Client, email: str) -> str:
    """Log in through the form; returns the new session's CSRF token."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
    answer = client.post("/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, answer.text
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/impact").text).group(1)


def count(aggregator: str, site: str, *events: tuple[str, str]) -> None:
    body = orjson.dumps({"events": events})
    assert (
        httpx.post(f"{aggregator}/impact/events", content=body, headers={"Origin": site}).status_code == 204
    )


def test_editors_see_their_groups_counts_from_two_aggregators_and_an_admin_sees_every_group(
    make_publisher, serve, tmp_path
):
    day = datetime(2026, 11, 3, 11, 0, tzinfo=UTC)
    clock = {"now": day}
    aggregators = []
    for name in ("north", "south"):
        (tmp_path / name).mkdir()
        aggregators.append(aggregator_app(tmp_path / name, CLOCK=lambda: clock["now"]))
    listed = ",".join(serve(app).url for app in aggregators)
    publisher = make_publisher(IMPACT_AGGREGATORS=listed, IMPACT_REFRESH_SECONDS=0, HUB_WORKER=False)
    site = serve(publisher).url
    store = store_of(publisher)
    walkers = store.add_group("Mitcham Walkers")
    lunch_club = store.add_group("St Mark's Lunch Club")
    store.add_user("walks@example.org", PASSWORD, "editor", walkers.id)
    store.add_user("admin@example.org", PASSWORD, "admin")
    walk = editing.save_activity(store, walkers, weekly_activity(), base_url=site)
    lunch = editing.save_activity(store, lunch_club, event_activity(), base_url=site)
    assert walk.ok and lunch.ok, (walk.problems, lunch.problems)
    walk_id, lunch_id = store.get_activity(walk.slug).uri, store.get_activity(lunch.slug).uri

    north, south = listed.split(",")
    for app in aggregators:
        harvest(app, f"{site}/feeds/activities")
    count(
        north,
        SURGERY,
        *[("shown", walk_id)] * 7,
        *[("opened", walk_id)] * 5,
        ("booking", walk_id),
        *[("shown", lunch_id)] * 9,
    )
    count(south, LIBRARY, *[("shown", walk_id)] * 6, *[("printed", walk_id)] * 3)
    for app in aggregators:
        tally(app).flush()  # what each aggregator does every second
    clock["now"] = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)  # 3 November is over: it is reported

    assert refresh(publisher) == []
    with httpx.Client(base_url=site, timeout=10) as editor:
        token = log_in(editor, "walks@example.org")
        page = editor.get("/admin/impact").text
        assert "Mitcham Walkers" in page and "Mitcham Health Walk" in page
        assert "St Mark" not in page and "Winter Warmer" not in page  # another group's
        assert "November 2026" in page
        all_sites = re.search(r'<tr class="all-sites">(.*?)</tr>', page, re.S).group(1)
        cells = [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td>(.*?)</td>", all_sites, re.S)]
        # Website, views (7 + 6), opens, booking follows (1: suppressed), contact, prints (3: suppressed).
        assert cells == ["All websites", "13", "5", "fewer than 5 a day", "0", "fewer than 5 a day"]
        assert "surgery.example" in page and "library.example" in page
        assert north.split("://")[1] in page and south.split("://")[1] in page  # who counted

        sheet = editor.get("/admin/impact.csv")
        assert sheet.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(sheet.text)))
        by_site = {row[4]: row for row in rows[1:] if len(row) > 4}
        assert by_site["All websites"][:6] == [
            "Mitcham Walkers",
            "Mitcham Health Walk",
            walk_id,
            "November 2026",
            "All websites",
            "13",
        ]
        assert by_site["surgery.example"][5:8] == ["7", "5", "fewer than 5 a day"]
        assert by_site["library.example"][5] == "6" and by_site["library.example"][9] == "fewer than 5 a day"
        assert lunch_id not in sheet.text and "Lunch" not in sheet.text
        assert "Winter Warmer" not in editor.get("/admin/impact/print").text
        assert "Mitcham Health Walk" in editor.get("/admin/impact/print").text
        assert editor.post("/admin/impact/refresh", data={"csrf_token": token}).status_code == 302

    with httpx.Client(base_url=site, timeout=10) as umbrella:
        log_in(umbrella, "admin@example.org")
        page = umbrella.get("/admin/impact").text
        assert "Mitcham Health Walk" in page and "Winter Warmer Lunch" in page
        assert "Winter Warmer Lunch" in umbrella.get("/admin/impact.csv").text
