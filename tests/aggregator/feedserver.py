"""A small RPDE publisher the tests control: a list of changes served as real feed pages.

It stands in for "the outside world" (anyone's publisher) so the harvest can be tested
against exactly the pages, statuses, delays and sizes a test needs, over real HTTP.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import orjson
from flask import Flask, Response, request

from aggregator.adapters.localfeed import PROVENANCE_KEY
from schema.openactive import to_openactive
from schema.rpde import deleted_item, encode_page, updated_item


class FeedServer:
    """The feed's state: ``put``/``delete`` append changes with increasing change numbers."""

    def __init__(self, page_size: int = 3):
        self.page_size = page_size
        self.changes: dict[str, dict[str, Any]] = {}  # id -> latest RPDE item
        self.number = 0
        self.requests: list[tuple[str, int]] = []  # (path with query, status)
        self.page_delay = 0.0
        self.gate = threading.Event()  # /feed answers only once this is set
        self.gate.set()
        self.extra_item_fields: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, dict[str, Any]] = {}  # id -> the activity last put, as it was given
        self.lock = threading.Lock()
        self.base_url = ""
        self.app = self._make_app()

    # -- the feed's content ------------------------------------------------------------------

    def put(self, data: dict[str, Any], item_id: str | None = None) -> None:
        with self.lock:
            self.number += 1
            item_id = item_id or data["id"]
            self.changes.pop(item_id, None)  # re-appended at the end, like a real feed
            # On the wire, as a Localfeed publisher serves it: the activity in its OpenActive form.
            self.changes[item_id] = updated_item(item_id, self.number, to_openactive(data), data.get("type"))
            self.activities[item_id] = data

    def relay(self, data: dict[str, Any], publisher_feed_url: str) -> None:
        """List another site's activity as an aggregator's republished feed does: naming its source.

        The aggregator following this feed takes it only if this source is an aggregator (the
        operator's mark, or a /sources.json on its site) and the provenance names the id's site.
        """
        entry = {"source_url": publisher_feed_url, "item_id": data["id"], "via": [self.base_url]}
        self.extra_item_fields[data["id"]] = {PROVENANCE_KEY: [entry]}
        self.put(data)

    def delete(self, item_id: str) -> None:
        with self.lock:
            self.number += 1
            self.changes.pop(item_id, None)
            self.changes[item_id] = deleted_item(item_id, self.number)

    def current(self) -> dict[str, dict[str, Any]]:
        """What the feed says is live now: id -> data."""
        return {i: self.activities[i] for i, item in self.changes.items() if item["state"] == "updated"}

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/feed"

    @property
    def origin(self) -> str:
        """The site this feed is on (scheme, host and port): the authority for ids minted there."""
        return self.base_url

    def activity_id(self, slug: str) -> str:
        """An activity id on this feed's own site, as a publisher mints them under its own URL.

        The aggregator takes an id only from the source on the id's site (aggregator.authority),
        so a test's items are this feed's own unless it means to show something else.
        """
        return f"{self.origin}/activities/{slug}"

    # -- serving -----------------------------------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask(__name__)
        server = self

        @app.after_request
        def record(response: Response) -> Response:
            server.requests.append((request.full_path.rstrip("?"), response.status_code))
            return response

        @app.get("/feed")
        def feed() -> Response:
            after = int(request.args.get("afterChangeNumber", 0))
            server.gate.wait(timeout=30)
            if server.page_delay:
                time.sleep(server.page_delay)
            with server.lock:
                items = sorted(server.changes.values(), key=lambda item: item["modified"])
                page = [dict(item) for item in items if item["modified"] > after][: server.page_size]
                for item in page:
                    item.update(server.extra_item_fields.get(item["id"], {}))
            reached = page[-1]["modified"] if page else after
            body = encode_page(page, f"{request.host_url.rstrip('/')}/feed?afterChangeNumber={reached}")
            response = Response(body, mimetype="application/json")
            response.set_etag(hashlib.sha256(body).hexdigest())
            return response.make_conditional(request)

        @app.get("/")
        def home() -> str:
            dataset = {
                "@context": "https://schema.org/",
                "@type": "Dataset",
                "name": "Test Publisher",
                "distribution": [
                    {
                        "@type": "DataDownload",
                        "encodingFormat": "text/calendar",
                        "contentUrl": "/nothing.ics",
                    },
                    {"@type": "DataDownload", "encodingFormat": "application/json", "contentUrl": "/feed"},
                ],
            }
            return (
                "<!doctype html><html><head><title>Test Publisher home</title>"
                f'<script type="application/ld+json">{orjson.dumps(dataset).decode()}</script>'
                "</head><body><h1>Groups</h1></body></html>"
            )

        @app.get("/linked")
        def linked() -> str:
            return (
                '<!doctype html><html><head><title>Linked</title><link rel="alternate" '
                'type="application/json" href="/feed"></head><body></body></html>'
            )

        @app.get("/status/<int:code>")
        def status(code: int) -> Response:
            headers = {"Retry-After": request.args["retry_after"]} if "retry_after" in request.args else {}
            return Response("not here", status=code, headers=headers)

        @app.get("/slow")
        def slow() -> Response:
            time.sleep(float(request.args.get("seconds", 3)))
            return Response(encode_page([], f"{request.host_url}slow"), mimetype="application/json")

        @app.get("/huge")
        def huge() -> Response:
            filler = [
                {"state": "deleted", "kind": "Event", "id": f"x{n}", "modified": n} for n in range(20000)
            ]
            return Response(encode_page(filler, f"{request.host_url}huge"), mimetype="application/json")

        @app.get("/redirect")
        def redirect_to() -> Response:
            return Response("", status=302, headers={"Location": request.args["to"]})

        return app
