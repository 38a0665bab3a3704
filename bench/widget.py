"""The widget: its size against the 10 KB gzipped budget, and its time to a first result in Chromium.

Size: each file in ``widgets/``, raw and gzipped, and the ratio to the budget (below 1.00
is within it).

Time to first result: a search index of ``--items`` synthetic listings (built as
``bench/query.py`` builds its own), the aggregator under gunicorn, and a stand-in
surgery website on another loopback origin embedding the widget near a town centre. Each
load is a first visit (a fresh browser context, so nothing cached) in headless Chromium;
the figure is the time from navigation start to the first listing on screen (the first
animation frame that shows one). The baseline, in the same run and browser, is a bare
page that fetches the same API query with ``fetch()`` and writes the names into a list:
what any embed must pay, so the ratio is what the widget itself adds.

Run: .venv/bin/python bench/widget.py [--items 20000] [--loads 30]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LoopbackServer, gunicorn, percentiles, table, write_results
from bench.query import build, town_postcodes
from federation.db import make_engine

WIDGETS = Path(__file__).resolve().parent.parent / "widgets"
BUDGET_BYTES = 10 * 1024
CHROMIUM = os.environ.get("BENCH_CHROMIUM", "/usr/bin/chromium")
# What a surgery in central London would embed (the first town's made-up postcode).
QUERY = {"near": next(iter(town_postcodes())), "radius": "3", "limit": "8"}

# Sets window.firstResultAt to performance.now() at the first animation frame showing a
# listing: in the widget's shadow root, or in the bare page's list.
TIMER = """<script>
(function look() {
  const host = document.getElementById("listings");
  const root = host && (host.shadowRoot || host);
  if (root && root.querySelector("li.item")) window.firstResultAt = performance.now();
  else requestAnimationFrame(look);
})();
</script>"""
WAIT_MS = 30_000


def gzipped_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def sizes() -> dict[str, Any]:
    files = {
        path.name: {"bytes": path.stat().st_size, "gzipped": gzipped_size(path)}
        for path in sorted(WIDGETS.glob("*.js"))
    }
    gzipped = sum(entry["gzipped"] for entry in files.values())
    return {"files": files, "gzipped": gzipped, "budget": BUDGET_BYTES, "ratio": gzipped / BUDGET_BYTES}


def surgery_site(aggregator: str) -> Flask:
    """The two pages: the widget as the README's snippet embeds it, and the bare fetch-and-list."""
    app = Flask("surgery")
    attributes = " ".join(f'{name}="{value}"' for name, value in QUERY.items())
    head = f'<!doctype html><html lang="en-GB"><head><meta charset="utf-8"><title>Surgery</title>{TIMER}'

    @app.get("/widget")
    def widget() -> str:
        return f"""{head}<script type="module" src="{aggregator}/widgets/localfeed.js"></script></head>
<body><h1>Things to do</h1><localfeed-activities id="listings" src="{aggregator}" {attributes}>
<a href="{aggregator}/embed">What's on near us</a></localfeed-activities></body></html>"""

    @app.get("/bare")
    def bare() -> str:
        api = f"{aggregator}/api/activities?{urlencode(QUERY)}"
        return f"""{head}<script type="module">
const answer = await (await fetch({json.dumps(api)})).json();
const list = document.getElementById("listings");
for (const item of answer.items) {{
  const li = document.createElement("li");
  li.className = "item";
  li.textContent = item.activity.name;
  list.append(li);
}}
</script></head><body><h1>Things to do</h1><ul id="listings"></ul></body></html>"""

    return app


def first_results(site: str, loads: int, warmup: int, chromium: str) -> dict[str, Any]:
    """Milliseconds from navigation to the first listing, per page, each load a first visit."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    samples: dict[str, list[float]] = {"widget": [], "bare": []}
    shown: dict[str, int] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            for number in range(warmup + loads):
                for page_name, timings in samples.items():  # interleaved: drift hits both alike
                    context = browser.new_context(locale="en-GB")
                    page = context.new_page()
                    page.set_default_timeout(WAIT_MS)
                    page.goto(f"{site}/{page_name}", wait_until="commit")
                    try:
                        page.wait_for_function("window.firstResultAt !== undefined")
                    except PlaywrightTimeout:
                        raise RuntimeError(
                            f"The {page_name} page showed no listing within {WAIT_MS / 1000:.0f} s: "
                            "the aggregator (gunicorn) did not answer, or found nothing near "
                            f"{QUERY['near']}. Run again with fewer --items to check the index."
                        ) from None
                    milliseconds = page.evaluate("window.firstResultAt")
                    shown[page_name] = page.evaluate(
                        """() => { const host = document.getElementById("listings");
                        return (host.shadowRoot || host).querySelectorAll("li.item").length; }"""
                    )
                    context.close()
                    if number >= warmup:
                        timings.append(milliseconds)
        finally:
            browser.close()
    return {
        page_name: {"ms": percentiles(timings), "loads": len(timings), "listings_shown": shown[page_name]}
        for page_name, timings in samples.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000, help="listings in the search index")
    parser.add_argument("--loads", type=int, default=30, help="timed first visits of each page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed visits of each page first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium executable (or BENCH_CHROMIUM)")
    parser.add_argument("--name", default="widget", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=None, help="directory for the JSON results")
    args = parser.parse_args(argv)

    size = sizes()
    for name, entry in size["files"].items():
        print(f"{name}: {entry['bytes']} bytes, {entry['gzipped']} bytes gzipped")
    print(
        f"widget JavaScript, gzipped: {size['gzipped']} bytes; "
        f"budget {BUDGET_BYTES} bytes; ratio {size['ratio']:.2f}"
    )
    document: dict[str, Any] = {"size": size}
    if not Path(args.chromium).exists():
        print(f"\nTime to first result skipped: no Chromium at {args.chromium} (apt-get install chromium).")
    else:
        document["first_result"] = _timed(args)
    extra = {"directory": args.results} if args.results else {}
    print(f"\nresults: {write_results(args.name, document, **extra)}")
    return document


def _timed(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="localfeed-bench-") as workdir:
        url = f"sqlite:///{Path(workdir) / 'index.sqlite'}"
        engine = make_engine(url)
        print(f"\nbuilding a search index of {args.items:,} listings...", flush=True)
        build(engine, args.items, args.seed)
        engine.dispose()
        env = {"DATABASE_URL": url, "SECRET_KEY": "bench", "RATELIMIT_ENABLED": "0", "HUB_WORKER": "0"}
        with gunicorn("aggregator:create_app()", env, 2, Path(workdir) / "gunicorn.log") as aggregator:
            site = LoopbackServer(surgery_site(aggregator))
            try:
                print(f"{args.loads} first visits of each page in Chromium...", flush=True)
                timed = first_results(site.url, args.loads, args.warmup, args.chromium)
            finally:
                site.stop()
    ratio = timed["widget"]["ms"]["p50"] / timed["bare"]["ms"]["p50"]
    print()
    print(
        table(
            f"Time to first result, {args.items:,} listings, first visits (milliseconds)",
            ["page", "p50", "p95", "max", "listings shown"],
            [
                [name, entry["ms"]["p50"], entry["ms"]["p95"], entry["ms"]["max"], entry["listings_shown"]]
                for name, entry in timed.items()
            ],
        )
    )
    print(f"widget p50 is {ratio:.2f}x the bare fetch-and-list page's (what the widget adds to the query)")
    return {**timed, "items": args.items, "query": QUERY, "widget_to_bare_p50": ratio}


if __name__ == "__main__":
    main()
