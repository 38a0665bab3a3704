"""The one-command demo, run as a newcomer runs it: a real network of processes, then Ctrl-C.

The demo's own command starts in a subprocess with a temporary state directory; the test
drives the running network only through what it publishes (the printed URLs and
``network.json``), the apps' public HTTP APIs, and a real Chromium for what people do: an
editor changing an activity in the publisher's pages, a patient reading the surgery's page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from redis import Redis

from tests.conftest import REDIS_TEST_URL

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0  # generous: CI machines run other tests beside this one
PROPAGATION_DEADLINE = 5.0  # the promise: an edit reaches the aggregator's API within 5 s


class DemoProcess:
    """The demo command in its own session, with its output collected line by line."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            # Redis is used if it answers (an rq worker runs the jobs); if not, the demo runs them in-process.
            [
                sys.executable,
                "-m",
                "demo",
                "--no-browser",
                "--redis-url",
                REDIS_TEST_URL,
                "--state-dir",
                str(state_dir),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.process.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"The demo exited ({self.process.returncode}) before printing it:\n{self.output}")
            time.sleep(0.1)
        pytest.fail(f"The demo did not print {pattern!r} within {timeout:.0f} s:\n{self.output}")

    def recorded_pids(self) -> list[int]:
        recorded = self.state_dir / "pids.json"
        return list(json.loads(recorded.read_text()).values()) if recorded.exists() else []

    def kill_everything(self) -> None:
        """After a failure: leave nothing running, whatever state the demo is in."""
        for pid in [self.process.pid, *self.recorded_pids()]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def browser_page(chromium) -> Iterator:
    context = chromium.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    running = DemoProcess(tmp_path / "demo")
    try:
        yield running
    finally:
        running.kill_everything()


class _Widget(HTMLParser):
    """The attributes of the page's <localfeed-activities> and the links inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.widget: dict[str, str | None] = {}
        self.fallback_links: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "localfeed-activities":
            self.widget = dict(attrs)
            self._inside = True
        elif tag == "a" and self._inside:
            self.fallback_links.append(dict(attrs)["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "localfeed-activities":
            self._inside = False


def search_all(aggregator: str, **params: str) -> list[dict]:
    """Every result of one search, following ``next_cursor``."""
    items: list[dict] = []
    cursor = None
    while True:
        page = httpx.get(
            f"{aggregator}/api/activities", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def alive(pid: int) -> bool:
    """Whether any process is left in the process group ``pid`` led."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def show_surgery_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(
        "document.querySelector('localfeed-activities').shadowRoot?.querySelectorAll('li').length > 0"
    )


def widget_text(page) -> str:
    return page.evaluate("document.querySelector('localfeed-activities').shadowRoot.textContent")


def edit_name_in_admin(page, publisher: dict, activity_id: str, new_name: str) -> None:
    """Log in as the activity's group editor and rename it through the publisher's own form."""
    slug = activity_id.removeprefix(f"{publisher['url']}/activities/")
    group = next(g for g in publisher["groups"] if slug in g["activities"])
    page.goto(publisher["login"])
    page.get_by_label("Email address").fill(group["editor"]["email"])
    page.get_by_label("Password").fill(group["editor"]["password"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/admin/login" not in url)
    page.goto(f"{publisher['url']}/admin/activities/{slug}/edit")
    page.get_by_label("Name of the activity").fill(new_name)
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state()
    saved = httpx.get(activity_id, headers={"Accept": "application/json"}).json()
    assert saved["name"] == new_name, page.content()


def test_demo_network_end_to_end(demo: DemoProcess, browser_page) -> None:
    page_url = demo.wait_for(r"Surgery website with the widget:\s+(\S+)").group(1)
    demo.wait_for(r"Press Ctrl-C to stop")
    for label in ("Editor log-in", "Aggregator's sources page", "Embed builder"):
        assert label in demo.output
    network = json.loads((demo.state_dir / "network.json").read_text())
    assert network["demo_page"] == page_url
    publishers = network["publishers"]
    assert [p["role"] for p in publishers] == ["umbrella", "group", "group"]
    assert len(publishers[0]["groups"]) == 12
    assert all(len(p["groups"]) == 1 for p in publishers[1:])

    # The surgery's page embeds the aggregator's widget, with a link for readers without JavaScript.
    page = httpx.get(page_url)
    assert page.status_code == 200
    parsed = _Widget()
    parsed.feed(page.text)
    aggregator = parsed.widget["src"]
    assert aggregator == network["aggregator"]["url"]
    assert f'src="{aggregator}/widgets/localfeed.js"' in page.text
    assert parsed.fallback_links and parsed.fallback_links[0].startswith(f"{aggregator}/embed?")

    # Every seeded activity reached the aggregator, and the widget's own search lists all of them
    # from all three publishers, except those not confirmed for so long that searches hide them.
    listed = {
        item["activity"]["id"]
        for item in search_all(
            aggregator, near=parsed.widget["near"], radius=parsed.widget["radius"], limit="50"
        )
    }
    for publisher in publishers:
        seeded = [
            f"{publisher['url']}/activities/{slug}"
            for group in publisher["groups"]
            for slug in group["activities"]
        ]
        freshness = {}
        for activity_id in seeded:
            known = httpx.get(f"{aggregator}/api/activities/{quote(activity_id, safe='')}")
            assert known.status_code == 200, f"{activity_id} was not harvested: {known.text}"
            freshness[activity_id] = known.json()["freshness"]["state"]
        searchable = {activity_id for activity_id, state in freshness.items() if state != "expired"}
        assert searchable, f"nothing searchable from {publisher['name']}"
        assert listed & set(seeded) == searchable, publisher["name"]

    # A patient sees the widget on the surgery's page; an editor renames the first activity it
    # shows, in the publisher's editing pages; reloading the surgery's page shows the new name.
    show_surgery_page(browser_page, page_url)
    first = search_all(aggregator, near=parsed.widget["near"], radius=parsed.widget["radius"], limit="1")[0]
    first_id = first["activity"]["id"]
    assert first["activity"]["name"] in widget_text(browser_page)
    owner = next(p for p in publishers if first_id.startswith(p["url"] + "/"))
    edit_name_in_admin(browser_page, owner, first_id, "Tuesday Tea and Chat (new name)")
    edited_at = time.monotonic()
    while True:
        show_surgery_page(browser_page, page_url)
        if "Tuesday Tea and Chat (new name)" in widget_text(browser_page):
            break
        assert time.monotonic() - edited_at < PROPAGATION_DEADLINE, widget_text(browser_page)

    # An edit through a group's own publisher API reaches the aggregator's API within seconds.
    group_publisher = publishers[1]
    group = group_publisher["groups"][0]
    slug = group["activities"][0]
    api = httpx.Client(base_url=group_publisher["url"], headers={"Authorization": f"Bearer {group['token']}"})
    activity = api.get(f"/api/activities/{slug}").json()["activity"]
    activity["name"] = "Riverside Walk — now meeting at the station"
    saved = api.put(f"/api/activities/{slug}", json=activity)
    assert saved.status_code == 200, saved.text
    edited_at = time.monotonic()
    aggregated_url = f"{aggregator}/api/activities/{quote(activity['id'], safe='')}"
    while True:
        shown = httpx.get(aggregated_url, headers={"Cache-Control": "no-cache"}).json()
        if shown.get("activity", {}).get("name") == activity["name"]:
            break
        assert time.monotonic() - edited_at < PROPAGATION_DEADLINE, f"not propagated: {shown}"
        time.sleep(0.1)

    # Ctrl-C (twice) stops every process it started, and their process groups with them.
    pids = [process["pid"] for process in network["processes"]]
    assert len(pids) >= 4  # three publishers and the aggregator, at least
    assert all(alive(pid) for pid in pids)
    demo.process.send_signal(signal.SIGINT)
    time.sleep(0.1)
    demo.process.send_signal(signal.SIGINT)  # an impatient second Ctrl-C must not cut the clean-up short
    assert demo.process.wait(30) == 0, demo.output
    demo.wait_for(r"Stopped\.")
    queue = network["aggregator"]["queue"]
    if queue:  # the run's own rq queue is removed from Redis, not left behind run after run
        redis = Redis.from_url(network["aggregator"]["redis_url"])
        assert list(redis.scan_iter(match=f"rq:*:{queue}")) == []
    assert [pid for pid in pids if alive(pid)] == []
