"""Per-item monotonicity (issue 17): an older change never overwrites a newer one, nor undoes a deletion.

Late deliveries are the real case: a hub retries a push of an old change after newer
ones have been applied (by push or by polling). They come in here signed and on time
for the wire, just late for the item.
"""

from __future__ import annotations

from typing import Any

import httpx
from flask import Flask

from federation.websub import sign
from schema.rpde import deleted_item, encode_page
from tests.aggregator.conftest import copies_of, follow, harvest, live, subscribed
from tests.factories import weekly_activity, wire_item


def _push(aggregator_url: str, row: Any, items: list[dict[str, Any]], next_url: str) -> None:
    body = encode_page(items, next_url)
    answer = httpx.post(
        f"{aggregator_url}/websub/callback/{row.token}",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature": sign(row.secret, body)},
    )
    assert answer.status_code == 202, answer.text


def _name(app: Flask, item_id: str) -> str | None:
    shown = live(app).get(item_id)
    return None if shown is None else shown["data"]["name"]


def test_late_older_changes_never_overwrite_newer_ones_or_undo_a_deletion(
    make_feed, make_aggregator, serve, database_url
):
    feed = make_feed()
    walk = weekly_activity(id=feed.activity_id("walk"), name="Walk v1")
    lunch = weekly_activity(id=feed.activity_id("lunch"), name="Lunch v1")
    feed.put(walk)
    feed.put(lunch)
    app = make_aggregator(database_url)
    aggregator_url = serve(app).url
    source_id = follow(app, feed.feed_url)
    harvest(app, source_id)  # the cursor is now at change 2
    row = subscribed(app, source_id, feed.feed_url)
    after = feed.feed_url + "?afterChangeNumber=9"

    # Newer changes arrive first by push; then the older ones, late and out of order.
    _push(aggregator_url, row, [wire_item(walk["id"], 9, {**walk, "name": "Walk v9"})], after)
    _push(aggregator_url, row, [deleted_item(lunch["id"], 8)], after)
    _push(aggregator_url, row, [wire_item(walk["id"], 5, {**walk, "name": "Walk v5"})], after)
    _push(aggregator_url, row, [wire_item(lunch["id"], 6, {**lunch, "name": "Lunch v6"})], after)
    assert _name(app, walk["id"]) == "Walk v9"
    assert _name(app, lunch["id"]) is None  # the deletion stands
    assert copies_of(app, lunch["id"]) == {}

    # One page listing an item twice, out of order: the newer change counts.
    _push(
        aggregator_url,
        row,
        [
            wire_item(walk["id"], 12, {**walk, "name": "Walk v12"}),
            wire_item(walk["id"], 11, {**walk, "name": "Walk v11"}),
        ],
        after,
    )
    assert _name(app, walk["id"]) == "Walk v12"

    # A genuinely newer change brings the deleted item back, as the publisher meant.
    _push(aggregator_url, row, [wire_item(lunch["id"], 13, {**lunch, "name": "Lunch v13"})], after)
    assert _name(app, lunch["id"]) == "Lunch v13"
