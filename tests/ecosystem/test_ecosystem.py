"""The ecosystem's own tools over a running demo network: OpenActive's data-model and RPDE validators.

Nobody on this project wrote these checkers (``@openactive/data-model-validator`` and
``@openactive/rpde-validator``, pinned in package.json beside this file; ``npm ci`` here
installs them). The demo network runs as ``make demo`` runs it; every item of every
publisher's RPDE feed and of the aggregator's republished feed goes through the data-model
validator, and every feed through the RPDE validator. docs/ecosystem.md lists the results
and each kind of failure allowed here, with its reason.

The data-model validator would fetch remote documents (our JSON-LD context, the activity
lists); it is run with no network, from a cache laid out as its loader keeps one, holding
our own files and the OpenActive Activity List from ../shared/specs/openactive.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema.openactive import ACCESSIBILITY_SCHEME, ACTIVITY_LIST, CATEGORY_SCHEME, CONTEXT_URL
from schema.resources import shared
from schema.vocab import concept_scheme
from tests.demo.test_demo import DemoProcess

pytestmark = pytest.mark.ecosystem

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ACTIVITY_LIST_FILE = REPO.parent / "shared" / "specs" / "openactive" / "activity-list.jsonld"
NODE_TIMEOUT = 300.0  # generous: about 0.1 s an item on this machine (see check.js on the memoised lookups)

# Failures allowed, by (type, what): each is listed in docs/ecosystem.md with its reason.
ALLOWED = {
    # A category the Activity List has no concept for (lunch clubs, befriending, men's sheds...) is
    # a concept of Localfeed's own scheme; the validator asks for the official list whatever the scheme.
    ("use_official_activity_list", "activity"): "a concept of Localfeed's own scheme",
    # Only for an item harvested from a format whose source gave no region (an iCalendar feed, a
    # directory): a region is never guessed. Every publisher's item has one (PUBLISHER_REGION).
    ("missing_required_field", "addressRegion"): "its source, not a Localfeed publisher, names no region",
}


def _node_modules_or_skip() -> None:
    if (HERE / "node_modules" / "@openactive" / "data-model-validator").is_dir():
        return
    message = "The OpenActive validators are not installed: run `make test-ecosystem` (it runs npm ci)."
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _activity_list_or_skip() -> dict[str, Any]:
    if ACTIVITY_LIST_FILE.is_file():
        return json.loads(ACTIVITY_LIST_FILE.read_text(encoding="utf-8"))
    message = (
        f"The OpenActive Activity List is not at {ACTIVITY_LIST_FILE} (../shared beside the repository)."
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def seed_cache(directory: Path, activity_list: dict[str, Any]) -> None:
    """The remote documents the validator asks for, as its JSON loader caches them (by the URL's SHA-256)."""
    documents = {
        CONTEXT_URL: shared("context.jsonld"),
        CATEGORY_SCHEME: concept_scheme("categories", CATEGORY_SCHEME),
        ACCESSIBILITY_SCHEME: concept_scheme("accessibility", ACCESSIBILITY_SCHEME),
        ACTIVITY_LIST: activity_list,
    }
    directory.mkdir(parents=True, exist_ok=True)
    for url, data in documents.items():
        cached = {
            "errorCode": "error_none",
            "data": data,
            "statusCode": 200,
            "url": url,
            "exception": None,
            "contentType": "application/ld+json",
            "fetchTime": int(time.time() * 1000),
        }
        (directory / f"{hashlib.sha256(url.encode()).hexdigest()}.json").write_text(json.dumps(cached))


def node(*args: str, stdin: str | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [shutil.which("node") or "node", "check.js", *args],
        cwd=HERE,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
    )
    assert done.returncode == 0, f"node check.js {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def walk(feed_url: str) -> list[dict[str, Any]]:
    """Every item of an RPDE feed, read to its end."""
    items, url = [], feed_url
    for _ in range(200):
        page = httpx.get(url, timeout=10).json()
        items.extend(page["items"])
        if not page["items"] or page["next"] == url:
            return items
        url = page["next"]
    pytest.fail(f"{feed_url} did not end within 200 pages")


def live(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item["data"] for item in items if item["state"] == "updated"]


def allowed_kind(error: dict[str, Any], item_id: str, publishers: list[str]) -> str | None:
    for (kind, where), reason in ALLOWED.items():
        if error["type"] == kind and where in error["path"]:
            from_a_publisher = any(item_id.startswith(url + "/") for url in publishers)
            return None if where == "addressRegion" and from_a_publisher else reason
    return None


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Any:
    _node_modules_or_skip()
    demo = DemoProcess(tmp_path_factory.mktemp("ecosystem") / "demo")
    try:
        demo.wait_for(r"Press Ctrl-C to stop")
        yield json.loads((demo.state_dir / "network.json").read_text())
    finally:
        demo.kill_everything()


def test_every_feed_item_passes_the_openactive_data_model_validator(network, tmp_path):
    activity_list = _activity_list_or_skip()
    feeds = [p["url"] + "/feeds/activities" for p in network["publishers"]]
    published = [data for feed in feeds for data in live(walk(feed))]
    aggregator_feed = network["aggregator"]["url"] + "/feeds/activities"
    deadline = time.monotonic() + 60
    while (
        len(republished := live(walk(aggregator_feed))) < len(published) // 2 and time.monotonic() < deadline
    ):
        time.sleep(1)  # the aggregator harvests as the demo starts; wait for most of it
    assert published and republished
    seed_cache(tmp_path / "cache", activity_list)
    items = published + republished
    results = node("models", str(tmp_path / "cache"), stdin=json.dumps(items))["results"]
    assert len(results) == len(items)

    allowed: collections.Counter[str] = collections.Counter()
    failures = []
    for result in results:
        for error in result["errors"]:
            if error["severity"] != "failure":
                continue
            reason = allowed_kind(error, result["id"], [p["url"] for p in network["publishers"]])
            if reason:
                allowed[f"{error['type']} ({reason})"] += 1
            else:
                failures.append(f"{result['id']} {error['path']}: {error['type']}: {error['message']}")
    print(f"\n{len(published)} published and {len(republished)} republished items; allowed: {dict(allowed)}")
    assert failures == [], "\n".join(failures[:40])


def is_last_page(url: str) -> bool:
    """The page at ``url`` ends its feed: no items, and ``next`` names itself."""
    page = httpx.get(url, timeout=10).json()
    return page["items"] == [] and page["next"] == url


def walked_last_page(error: dict[str, Any]) -> bool:
    """The validator's walk fetches every page, the last one included, as "not the last page"
    (rpde-validator 3.0.3571, feed-checker.js: ``walk`` calls ``load(url, false)``), so a
    feed that does as the RPDE spec asks (``max-age=8`` on its last page) is warned once, on
    that page. The same validator then checks the last page as such and finds nothing."""
    return (
        error["type"] == "missing_cache_control"
        and "max-age=8" in error["message"]
        and is_last_page(error["page"])
    )


def test_every_feed_passes_the_rpde_validator(network):
    feeds = [p["url"] + "/feeds/activities" for p in network["publishers"]]
    feeds.append(network["aggregator"]["url"] + "/feeds/activities")
    problems, walk_quirks = [], 0
    for feed in feeds:
        result = node("rpde", feed)
        assert result["pages"], f"the RPDE validator read no page of {feed}"
        for error in result["errors"]:
            if walked_last_page(error):
                walk_quirks += 1
            elif error["severity"] == "failure" or "cache" in (error["type"] + error["message"]).lower():
                problems.append(f"{error['page']}: {error['severity']} {error['type']}: {error['message']}")
    print(f"\n{len(feeds)} feeds; the walk's own warning on a last page: {walk_quirks}")
    assert walk_quirks <= len(feeds)
    assert problems == [], "\n".join(problems[:40])


def test_the_openactive_client_and_feedparser_read_every_feed_to_the_end(network):
    """OpenActive's own Python client walks each RPDE feed to its last page and holds what we list;
    feedparser reads each Atom feed cleanly, one entry a listed activity."""
    import feedparser
    import openactive

    bases = [p["url"] for p in network["publishers"]] + [network["aggregator"]["url"]]
    for base in bases:
        listed = {item["id"] for item in walk(base + "/feeds/activities") if item["state"] == "updated"}
        feed = base + "/feeds/activities"
        read = openactive.get_opportunities(feed, seconds_wait_next=0, seconds_timeout=60)
        assert read["status"] == "COMPLETE", f"the openactive client did not finish {base}: {read['status']}"
        assert set(read["items"]) == listed
        atom = feedparser.parse(httpx.get(base + "/feeds/activities.atom", timeout=10).content)
        assert not atom.bozo, atom.get("bozo_exception")
        assert {entry.id for entry in atom.entries} == listed
