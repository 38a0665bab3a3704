"""Two real publishers, an aggregator following both, and a second aggregator following the first."""

from __future__ import annotations

import httpx
from sqlalchemy import select

import publisher
from aggregator.harvest import guarded_client
from aggregator.sources import add_source, discover
from aggregator.store import copies
from publisher.extensions import get_store
from tests.aggregator.conftest import follow, harvest, live
from tests.factories import event_activity, weekly_activity


class Publisher:
    """A real publisher app on a loopback port, written to through its JSON API."""

    def __init__(self, serve, tmp_path, name: str):
        self.app = publisher.create_app(
            {
                "INSTANCE_PATH": str(tmp_path / name),
                "SECRET_KEY": "test",
                "PUBLISHER_NAME": name,
                "ALLOW_PRIVATE_NETWORKS": True,
                "RATELIMIT_ENABLED": False,
            }
        )
        self.url = serve(self.app).url
        with self.app.app_context():
            store = get_store()
            group = store.add_group(f"{name} group")
            _, token = store.create_token(group.id, "test")
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def post(self, doc) -> dict:
        response = self.http.post("/api/activities", json=doc)
        assert response.status_code == 201, response.text
        return response.json()

    def put(self, slug: str, doc) -> None:
        assert self.http.put(f"/api/activities/{slug}", json=doc).status_code == 200

    def delete(self, slug: str) -> None:
        assert self.http.delete(f"/api/activities/{slug}").status_code == 204


def _serve_aggregator(app, serve) -> str:
    url = serve(app).url
    app.config["PUBLIC_URL"] = url  # ids of the via chain: this aggregator's own address
    return url


def _shown(app) -> dict[str, dict]:
    return {item_id: row["data"] for item_id, row in live(app).items()}


def test_two_publishers_two_aggregators_one_set_no_loop(
    serve, tmp_path, make_aggregator, make_feed, database_url
):
    group = Publisher(serve, tmp_path, "Mitcham Walkers")
    umbrella = Publisher(serve, tmp_path, "Merton CVS")
    walk = group.post(weekly_activity())
    # The umbrella body lists the same walk (its own copy, its own id) and a lunch of its own.
    umbrella.post(weekly_activity())
    lunch = umbrella.post(event_activity())
    # A third feed sends something broken.
    broken_feed = make_feed()
    broken = weekly_activity(id="https://broken.example/1", price={"amount": -1, "currency": "GBP"})
    broken_feed.put(broken)

    first = make_aggregator(database_url)
    first_url = _serve_aggregator(first, serve)
    # Given only the publishers' home pages, the feeds are discovered.
    with guarded_client(first.config) as client:
        assert discover(client, group.url + "/").feed_url.startswith(f"{group.url}/feeds/activities")
    engine = first.extensions["engine"]
    group_source = add_source(engine, group.url + "/", state="approved", trust=70, config=first.config)
    umbrella_source = add_source(engine, umbrella.url + "/", state="approved", config=first.config)
    broken_source = follow(first, broken_feed.feed_url)
    for source_id in (group_source, umbrella_source, broken_source):
        assert harvest(first, source_id).status == "ok"

    shown = live(first)
    assert len(shown) == 2  # the walk once, the lunch
    merged_walk = shown[walk["activity"]["id"]]
    assert {p["source_id"] for p in merged_walk["provenance"]} == {group_source, umbrella_source}
    health = first.test_client().get(f"/sources/{broken_source}.json").json
    assert [p["item"] for p in health["problems"]] == ["https://broken.example/1"]
    assert health["problems"][0]["reasons"][0]["path"].startswith("$.price")

    # Edit, delete and add at the publishers; the next harvest shows it all.
    group.put(walk["slug"], weekly_activity(name="Mitcham Morning Walk"))
    umbrella.delete(lunch["slug"])
    added = group.post(event_activity(name="Carol Singing"))
    for source_id in (group_source, umbrella_source):
        harvest(first, source_id)
    names = sorted(data["name"] for data in _shown(first).values())
    assert names == ["Carol Singing", "Mitcham Morning Walk"]
    assert added["activity"]["id"] in _shown(first)

    # A second aggregator follows the first, and the first follows it back.
    second = make_aggregator()
    second_url = _serve_aggregator(second, serve)
    upstream = add_source(
        second.extensions["engine"], first_url + "/", state="approved", config=second.config
    )
    back = follow(first, f"{second_url}/feeds/activities")
    for _ in range(2):
        assert harvest(second, upstream).status in ("ok", "not-modified")
        assert harvest(first, back).status in ("ok", "not-modified")

    assert _shown(second) == _shown(first)
    for item in live(second).values():
        for entry in item["provenance"]:
            assert entry["via"] == [first_url]
            assert entry["source_url"].startswith((group.url, umbrella.url))
    # Every item the first got back from the second had come through it: none was taken.
    with engine.connect() as conn:
        assert conn.execute(select(copies).where(copies.c.source_id == back)).all() == []
    republished = second.test_client().get("/feeds/activities").json["items"]
    updated = [i for i in republished if i["state"] == "updated"]
    assert {tuple(e["via"]) for i in updated for e in i["localfeed:provenance"]} == {(first_url, second_url)}
