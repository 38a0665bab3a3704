"""What a hub pushes for a change is what its feeds serve for that change when polled.

At the publisher and at the aggregator alike, a follower subscribes to both feeds (RPDE
and Atom) through the hub; an activity is created, then deleted; after each push the same
feeds are polled over HTTP. The pushed items and entries must equal the polled ones, and
the feeds must say the same about themselves: title, subtitle, licence, self and hub
links. Left out is only what differs by design: the RPDE ``next`` link (a pushed page
ends at its own last change) and the Atom feed's ``updated`` (the polled feed lists every
activity, the pushed one the changed ones).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import orjson
import pytest

from aggregator.hub import HUB_KEY as AGGREGATOR_HUB_KEY
from federation.feeds import ATOM_PATH, RPDE_PATH
from federation.fetch import GuardedClient
from federation.websub import Hub, subscribe_request
from federation.websub.hub import HUB_PATH
from publisher.hub import HUB_KEY as PUBLISHER_HUB_KEY
from tests.factories import weekly_activity
from tests.shared.websub_world import Subscriber
from tests.websub.conftest import wait_for

ATOM = "{http://www.w3.org/2005/Atom}"
TOMBSTONE = "{http://purl.org/atompub/tombstones/1.0}deleted-entry"
FEEDS = {"rpde": RPDE_PATH, "atom": ATOM_PATH}


def _follow(serve, hub: Hub, base: str) -> Subscriber:
    """A follower of both of ``base``'s feeds, once ``hub`` holds both subscriptions active."""
    follower = Subscriber()
    callbacks = serve(follower.app()).url + "/callback/"
    with GuardedClient(allow_private=True) as client:
        for token, path in FEEDS.items():
            follower.wanted.add((token, base + path, "subscribe"))
            answer = subscribe_request(client, base + HUB_PATH, base + path, callbacks + token)
            assert answer.status == 202
    wait_for(
        lambda: (
            [s["state"] for s in hub.subscribers() if s["callback"].startswith(callbacks)]
            == ["active", "active"]
        ),
        what="the hub to verify both subscriptions",
    )
    return follower


def _links(headers: list[str]) -> dict[str, str]:
    """``Link`` header values as {rel: url}."""
    return {rel: url for url, rel in re.findall(r'<([^>]+)>;\s*rel="([^"]+)"', ", ".join(headers))}


def _rpde_changes(body: bytes) -> set[tuple[str, str]]:
    return {(item["id"], item["state"]) for item in orjson.loads(body)["items"]}


def _atom(body: bytes) -> dict[str, Any]:
    """An Atom document as what it says about itself, its entries and its tombstones (by id)."""
    root = ET.fromstring(body)
    return {
        "feed": {
            "id": root.findtext(f"{ATOM}id"),
            "title": root.findtext(f"{ATOM}title"),
            "subtitle": root.findtext(f"{ATOM}subtitle"),
            "generator": root.findtext(f"{ATOM}generator"),
            "links": sorted((link.get("rel"), link.get("href")) for link in root.findall(f"{ATOM}link")),
        },
        "entries": {entry.findtext(f"{ATOM}id"): ET.tostring(entry) for entry in root.iter(f"{ATOM}entry")},
        "tombstones": {gone.get("ref"): gone.get("when") for gone in root.iter(TOMBSTONE)},
    }


def _atom_changes(body: bytes) -> set[tuple[str, str]]:
    document = _atom(body)
    return {(id, "updated") for id in document["entries"]} | {
        (id, "deleted") for id in document["tombstones"]
    }


CHANGES_IN = {"rpde": _rpde_changes, "atom": _atom_changes}


def _pushed(follower: Subscriber, token: str, change: tuple[str, str]) -> dict[str, Any]:
    """The latest delivery on ``token``'s feed that carries ``change`` (id, state)."""

    def find() -> dict[str, Any] | None:
        for delivery in reversed(follower.deliveries):
            if delivery["token"] == token and change in CHANGES_IN[token](delivery["body"]):
                return delivery
        return None

    return wait_for(find, what=f"the push of {change} to the {token} topic")


def _polled_rpde(http: httpx.Client, feed_url: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """Walk the whole RPDE feed: its first page, that page's links, and each item's latest form."""
    first = http.get(feed_url)
    first.raise_for_status()
    items: dict[str, Any] = {}
    page = first.json()
    while page["items"]:
        items.update((item["id"], item) for item in page["items"])
        page = http.get(page["next"]).json()
    return first.json(), _links(first.headers.get_list("link")), items


def _assert_pushed_as_polled(
    http: httpx.Client, base: str, follower: Subscriber, change: tuple[str, str]
) -> None:
    rpde_push, atom_push = _pushed(follower, "rpde", change), _pushed(follower, "atom", change)

    pushed_page = orjson.loads(rpde_push["body"])
    polled_page, polled_links, polled_items = _polled_rpde(http, base + RPDE_PATH)
    assert pushed_page["items"] and all(polled_items[item["id"]] == item for item in pushed_page["items"])
    assert pushed_page["license"] == polled_page["license"]
    assert (
        _links([rpde_push["headers"]["Link"]])
        == polled_links
        == {
            "hub": base + HUB_PATH,
            "self": base + RPDE_PATH,
        }
    )

    pushed, polled_answer = _atom(atom_push["body"]), http.get(base + ATOM_PATH)
    polled = _atom(polled_answer.content)
    assert pushed["feed"] == polled["feed"]
    links = dict(polled["feed"]["links"])
    assert links["license"] and links["hub"] == base + HUB_PATH and links["self"] == base + ATOM_PATH
    assert pushed["entries"].items() <= polled["entries"].items()
    assert pushed["tombstones"].items() <= polled["tombstones"].items()
    assert change[0] in (pushed["entries"] if change[1] == "updated" else pushed["tombstones"])
    assert _links([atom_push["headers"]["Link"]]) == _links(polled_answer.headers.get_list("link"))


@pytest.mark.parametrize("node", ["publisher", "aggregator"])
def test_a_pushed_change_is_what_the_feeds_serve_when_polled(make_world, serve, node):
    world = make_world()
    if node == "publisher":
        app, base, hub_key = world.publisher, world.publisher_url, PUBLISHER_HUB_KEY
    else:
        app, base, hub_key = world.aggregator, world.aggregator_url, AGGREGATOR_HUB_KEY
    follower = _follow(serve, app.extensions[hub_key].hub, base)

    created = world.api("POST", "/activities", json=weekly_activity(name="Pushed As Polled Walk"))
    assert created.status_code == 201, created.text
    slug, activity_id = created.json()["slug"], created.json()["activity"]["id"]
    _assert_pushed_as_polled(world.http, base, follower, (activity_id, "updated"))

    assert world.api("DELETE", f"/activities/{slug}").status_code == 204
    _assert_pushed_as_polled(world.http, base, follower, (activity_id, "deleted"))
    if node == "aggregator":  # what the aggregator's pushes once lacked
        assert _atom(world.http.get(base + ATOM_PATH).content)["feed"]["subtitle"]
