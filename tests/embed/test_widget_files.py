"""The widget files, served to any website: CORS, the JS media type, caching that lets updates through."""

from __future__ import annotations

import httpx

from bench.widget import BUDGET_BYTES, WIDGETS, gzipped_size
from tests.embed.live import aggregator_app


def test_widget_javascript_is_within_its_size_budget_and_dependency_free():
    source = (WIDGETS / "localfeed.js").read_text()
    assert gzipped_size(WIDGETS / "localfeed.js") <= BUDGET_BYTES
    assert "import " not in source.replace("import.meta", "")  # one module, no dependencies
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source


def test_widget_file_is_served_cacheable_and_cross_origin(serve, tmp_path):
    server = serve(aggregator_app(tmp_path))
    response = httpx.get(f"{server.url}/widgets/localfeed.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "customElements.define" in response.text
    etag = response.headers["etag"]
    # The bare URL (in snippets on other sites) is revalidated daily, so fixes reach them.
    assert response.headers["cache-control"] == "public, max-age=86400, stale-while-revalidate=604800"

    version = etag.strip('"')
    pinned = httpx.get(f"{server.url}/widgets/localfeed.js", params={"v": version})
    assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale_version = httpx.get(f"{server.url}/widgets/localfeed.js", params={"v": "0000"})
    assert "immutable" not in stale_version.headers["cache-control"]

    unchanged = httpx.get(f"{server.url}/widgets/localfeed.js", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304

    for missing in ("nothing.js", "../aggregator/__init__.py", "%2e%2e/pyproject.toml"):
        assert httpx.get(f"{server.url}/widgets/{missing}").status_code == 404, missing


def test_widgets_dir_setting_and_updates_change_the_version(serve, tmp_path):
    widgets = tmp_path / "widgets"
    widgets.mkdir()
    (widgets / "extra.js").write_text("export const one = 1;\n")
    (widgets / "notes.txt").write_text("not a widget file")
    server = serve(aggregator_app(tmp_path, WIDGETS_DIR=str(widgets)))

    first = httpx.get(f"{server.url}/widgets/extra.js")
    assert first.text == "export const one = 1;\n"
    (widgets / "extra.js").write_text("export const one = 2;\n")
    second = httpx.get(f"{server.url}/widgets/extra.js", headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200 and second.text == "export const one = 2;\n"
    assert second.headers["etag"] != first.headers["etag"]
    # Only scripts and stylesheets are served from the folder.
    assert httpx.get(f"{server.url}/widgets/notes.txt").status_code == 404
    assert httpx.get(f"{server.url}/widgets/localfeed.js").status_code == 404


def test_vocab_labels_for_the_widget(serve, tmp_path):
    server = serve(aggregator_app(tmp_path))
    response = httpx.get(f"{server.url}/api/vocab.json")
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert body["categories"]["walking"] == "Walking"
    assert body["accessibility"]["step-free"] == "Step-free access"
    assert body["audiences"]["older-people"] == "Older people"
