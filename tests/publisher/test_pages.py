"""Public pages over real HTTP: discovery from the home page, and one URL per activity for all."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import httpx
import pytest

from publisher import editing
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import store_of

PUBLIC = "https://activities.example.org"


class _Head(HTMLParser):
    """Collects <link> tags, JSON-LD scripts and the skip link of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []
        self.json_ld: list[dict] = []
        self.anchors: list[dict[str, str]] = []
        self._in_json_ld = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "link":
            self.links.append(attributes)
        elif tag == "a":
            self.anchors.append(attributes)
        self._in_json_ld = tag == "script" and attributes.get("type") == "application/ld+json"

    def handle_data(self, data):
        if self._in_json_ld:
            self.json_ld.append(json.loads(data))
            self._in_json_ld = False


def _parse(html: str) -> _Head:
    parser = _Head()
    parser.feed(html)
    return parser


@pytest.fixture
def published(make_publisher, serve, tmp_path):
    app = make_publisher(f"sqlite:///{tmp_path / 'pages.sqlite'}", PUBLIC_URL=PUBLIC)
    server = serve(app)
    store = store_of(app)
    walkers = store.add_group("Mitcham Walkers", url="https://walkers.example/")
    lunch = store.add_group("St Mark's Lunch Club")
    walk = editing.save_activity(store, walkers, weekly_activity(), base_url=PUBLIC)
    meal = editing.save_activity(store, lunch, event_activity(), base_url=PUBLIC)
    return server, store, walkers, walk, meal


def test_home_page_describes_the_feeds_for_discovery(published):
    server, _store, _walkers, walk, meal = published
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    page = _parse(response.text)

    alternates = {link["type"]: link["href"] for link in page.links if link.get("rel") == "alternate"}
    assert alternates == {
        "application/vnd.localfeed.rpde+json": f"{PUBLIC}/feeds/activities",
        "application/atom+xml": f"{PUBLIC}/feeds/activities.atom",
        "text/calendar": f"{PUBLIC}/feeds/activities.ics",
    }
    assert {"rel": "hub", "href": f"{PUBLIC}/websub"} in page.links

    [dataset] = page.json_ld
    assert dataset["@type"] == "Dataset"
    assert dataset["license"] == "https://creativecommons.org/licenses/by/4.0/"
    formats = {item["encodingFormat"]: item["contentUrl"] for item in dataset["distribution"]}
    assert formats == alternates
    assert all(item["@type"] == "DataDownload" for item in dataset["distribution"])

    # The listing: each group with its activities, linked to their pages.
    assert "Mitcham Walkers" in response.text and "St Mark&#39;s Lunch Club" in response.text
    hrefs = {anchor.get("href") for anchor in page.anchors}
    assert {f"/activities/{walk.slug}", f"/activities/{meal.slug}"} <= hrefs
    assert page.anchors[0] == {"class": "skip-link", "href": "#main"}


def test_activity_page_is_html_with_json_ld_and_json_by_negotiation(published):
    server, _store, _walkers, walk, _meal = published
    url = f"{server.url}/activities/{walk.slug}"

    html = httpx.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.headers["Content-Type"].startswith("text/html")
    assert "Accept" in html.headers["Vary"]
    assert "Every Tuesday, 10:00" in html.text and "Free" in html.text and "Step-free" in html.text
    [json_ld] = _parse(html.text).json_ld  # schema.org events (tests/publisher/test_activity_page_jsonld.py)
    assert json_ld["@type"] == "EventSeries" and json_ld["@id"] == walk.activity["id"]

    as_json = httpx.get(url, headers={"Accept": "application/json"})
    assert as_json.headers["Content-Type"].startswith("application/json")
    assert as_json.json() == walk.activity
    assert list(as_json.json()) == list(walk.activity)  # the contract's field order is kept
    assert walk.activity["id"] == f"{PUBLIC}/activities/{walk.slug}"


def test_deleted_activity_is_gone_and_unknown_is_not_found(published):
    server, store, walkers, walk, _meal = published
    editing.delete_activity(store, walkers, walk.slug)
    gone = httpx.get(f"{server.url}/activities/{walk.slug}")
    assert gone.status_code == 410
    assert "This activity has been removed" in gone.text
    gone_json = httpx.get(f"{server.url}/activities/{walk.slug}", headers={"Accept": "application/json"})
    assert gone_json.status_code == 410 and "removed" in gone_json.json()["message"]
    assert httpx.get(f"{server.url}/activities/never-was").status_code == 404
    assert f"/activities/{walk.slug}" not in httpx.get(server.url + "/").text
