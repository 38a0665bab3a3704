"""RPDE paging at a publisher and at an aggregator that follows it: caching, and parameters it cannot page by.

RPDE (and ``@openactive/rpde-validator``) asks for ``Cache-Control: public, max-age=3600`` or
more on every page but the last, and seconds on the last. A reader that pages by
``afterTimestamp``/``afterId`` (RPDE's other ordering) must be told that this feed pages by
``afterChangeNumber``, not be handed the first page as if it had asked for it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from federation.feeds import RPDE_PATH
from publisher import editing
from tests.aggregator.conftest import follow, harvest, make_aggregator  # noqa: F401 (a fixture used here)
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import make_publisher, store_of  # noqa: F401 (a fixture used here)

PAGE_SIZE = 2


@pytest.fixture
def both_feeds(make_publisher, make_aggregator, serve) -> dict[str, str]:  # noqa: F811 (the fixtures, imported)
    """The RPDE feeds of a publisher with three activities (two a page) and of an aggregator following it."""
    publisher = serve(make_publisher(PAGE_SIZE=PAGE_SIZE))
    store = store_of(publisher.app)
    group = store.add_group("Mitcham Walkers", url="https://walkers.example/")
    for activity in (weekly_activity(), weekly_activity(name="Nordic Walking"), event_activity()):
        assert not editing.save_activity(store, group, activity, base_url=publisher.url).problems
    aggregator = make_aggregator(HUB_WORKER=False)
    assert harvest(aggregator, follow(aggregator, publisher.url + RPDE_PATH)).status == "ok"
    return {"publisher": publisher.url + RPDE_PATH, "aggregator": serve(aggregator).url + RPDE_PATH}


def _walk(client: httpx.Client, url: str) -> list[httpx.Response]:
    pages = [client.get(url)]
    while pages[-1].json()["next"] != str(pages[-1].url):
        pages.append(client.get(pages[-1].json()["next"]))
        assert len(pages) < 10, "the feed never reached its last page"
    return pages


@pytest.mark.parametrize("app", ["publisher", "aggregator"])
def test_every_page_but_the_last_is_cached_an_hour(both_feeds: dict[str, str], app: str) -> None:
    with httpx.Client(timeout=10) as client:
        pages = _walk(client, both_feeds[app])
    sizes = [len(page.json()["items"]) for page in pages]
    # The publisher's second page is short but not last: the case RPDE's validator warned about.
    assert sizes == ([2, 1, 0] if app == "publisher" else [3, 0])
    for page in pages[:-1]:
        assert page.headers["Cache-Control"] == "public, max-age=3600", page.url
    assert pages[-1].headers["Cache-Control"] == "public, max-age=8"


def _bad(client: httpx.Client, url: str, **params: Any) -> str:
    response = client.get(url, params=params)
    assert response.status_code == 400, (params, response.text[:200])
    assert response.headers["Content-Type"].startswith("application/json")
    message: str = response.json()["message"]
    assert url in message  # where to start instead
    return message


@pytest.mark.parametrize("app", ["publisher", "aggregator"])
def test_paging_by_timestamp_or_anything_else_is_refused(both_feeds: dict[str, str], app: str) -> None:
    url = both_feeds[app]
    with httpx.Client(timeout=10) as client:
        both = _bad(client, url, afterTimestamp="1558084806", afterId="151176")
        assert "afterTimestamp and afterId" in both and "afterChangeNumber" in both
        only_id = _bad(client, url, afterId="151176")
        assert "so afterId cannot" in only_id and "afterTimestamp" not in only_id
        # Mixed with a good cursor it is still refused: the reader believes it pages by time.
        assert "afterTimestamp" in _bad(client, url, afterTimestamp="1", afterChangeNumber="1")

        unknown = _bad(client, url, afterChangeNumber="1", limit="10")
        assert "'limit'" in unknown and "afterChangeNumber" in unknown

        twice = client.get(url + "?afterChangeNumber=1&afterChangeNumber=2")
        assert twice.status_code == 400 and "given 2 times" in twice.json()["message"]

        for malformed in ("-1", "1.5", "abc", "٣", "9" * 20, "9" * 5000, ""):
            message = _bad(client, url, afterChangeNumber=malformed)
            assert "afterChangeNumber=" in message and "whole number" in message
            assert len(message) < 400  # a long value is quoted in part, not echoed whole

        # The ordinary cursor still pages, and the first page needs none.
        assert client.get(url, params={"afterChangeNumber": "0"}).status_code == 200
        assert client.get(url).status_code == 200
