"""A tiny run of each benchmark: they run, print their tables, write results.

No timing is asserted (figures belong in docs/performance.md); what is checked is what
the figures rest on: every item harvested (by the floor and OpenActive's client too), one
request per unchanged source, the re-harvest applying exactly the changes, the validators
agreeing, two workers harvesting without conflicts, every subscriber getting every edit,
queries answered on both databases.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench import fanout, harvest, query, scaleout, validators
from bench.network import published, publisher_network, relocated
from schema import validate_activity
from tests.conftest import CHROMIUM, need_service


def test_the_synthetic_network_is_valid_seeded_and_varied():
    network = publisher_network(3, 60, seed=7)
    again = publisher_network(3, 60, seed=7)
    docs = [doc for p in network for doc in published(p, "https://bench.example")]
    assert [p.activities for p in network] == [p.activities for p in again]
    assert len(docs) == 180
    assert [problem for doc in docs for problem in validate_activity(doc)] == []
    assert {doc["type"] for doc in docs} == {"SessionSeries", "Event"}
    lengths = sorted(len(doc["description"]) for doc in docs)
    assert lengths[-1] > 3 * lengths[0]  # one-liners and long descriptions both
    moved = list(relocated(docs, 50, seed=7, first=1000))
    assert [number for number, _, _ in moved][:2] == [1000 % 180, 1001 % 180]
    assert all(validate_activity(doc) == [] for _, doc, _ in moved)
    assert len({position for _, _, position in moved}) == 50


@pytest.mark.redis
@pytest.mark.postgres
def test_harvest_benchmark_runs_on_both_databases(redis_url, postgres_url, tmp_path, capsys):
    tiny = ["--publishers", "2", "--activities", "40", "--naive-items", "20", "--repeat", "1", "--name", "h"]
    document = harvest.main([*tiny, "--results", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "e2e/floor" in printed and "openactive/floor" in printed and "re-harvest, 1% changed" in printed
    assert (
        orjson.loads((tmp_path / "h.json").read_bytes())["results"]
        == orjson.loads(orjson.dumps(document))["results"]
    )
    assert [r["database"] for r in document["results"]] == ["sqlite", "postgresql"]
    assert document["openactive_client"]["items"] == 80  # OpenActive's client read every item
    for result in document["results"]:
        assert result["items"] == 80  # the floor raises unless it stored every item too
        assert result["ratio_to_floor"] > 0 and result["floor"]["items_per_second"] > 0
        assert result["ratio_to_bare"] > 0 and result["ratio_to_naive"] > 0
        # Unchanged sources cost one conditional request each, answered 304.
        assert result["reharvest_0%"]["requests"] == 2
        assert result["reharvest_0%"]["by_status"] == {"304": 2}
        assert result["reharvest_1%"]["changed"] == 1
        # The changed source reads its new page and the empty one after it; the other gets a 304.
        assert result["reharvest_1%"]["requests"] == 3


@pytest.mark.postgres
def test_query_benchmark_builds_reuses_and_loads(postgres_url, tmp_path, capsys):
    seed = str(random.randrange(10**6))  # a database name of its own, whatever else runs
    common = [
        "--sizes",
        "1500",  # with 60 queries, enough that some find listings whatever the seed
        "--seed",
        seed,
        "--cache",
        str(tmp_path / "cache"),
        "--results",
        str(tmp_path),
    ]
    try:
        tiny_load = ["--load-seconds", "1", "--load-requests", "20", "--clients", "2", "--workers", "1"]
        first = query.main([*common, "--queries", "60", "--warmup", "2", *tiny_load, "--name", "q"])
        printed = capsys.readouterr().out
        assert "p95/budget" in printed and "req/s" in printed
        assert [(r["database"], r["items"], r["queries"]) for r in first["latency"]] == [
            ("sqlite", 1500, 60),
            ("postgresql", 1500, 60),
        ]
        assert all(r["built_seconds"] is not None for r in first["latency"])
        assert all(
            run["by_status"] == {"200": run["requests"]} and run["requests"] > 0 for run in first["load"]
        )
        assert any(r["mean_results"] > 0 for r in first["latency"])

        again = query.main(
            [*common, "--queries", "5", "--warmup", "0", "--load-seconds", "0", "--name", "q2"]
        )
        assert [r["built_seconds"] for r in again["latency"]] == [None, None]  # reused, not rebuilt
        assert [r["items"] for r in again["latency"]] == [1500, 1500]
    finally:
        query.main([*common, "--drop-cache"])
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.browser
def test_widget_benchmark_reports_size_and_first_results(tmp_path):
    if not Path(CHROMIUM).exists():
        need_service("Chromium", f"{CHROMIUM} not found")
    # Its own process: Playwright's sync API runs one instance per thread, and this test
    # process may hold the browser tests' one.
    tiny = ["--items", "3000", "--loads", "2", "--warmup", "0", "--chromium", CHROMIUM]
    run = subprocess.run(
        [sys.executable, "bench/widget.py", *tiny, "--results", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "budget 10240 bytes" in run.stdout and "Time to first result" in run.stdout
    document = orjson.loads((tmp_path / "widget.json").read_bytes())
    assert document["size"]["gzipped"] == sum(f["gzipped"] for f in document["size"]["files"].values())
    assert 0 < document["size"]["ratio"] < 1
    for page in ("widget", "bare"):
        measured = document["first_result"][page]
        assert measured["loads"] == 2 and measured["listings_shown"] > 0 and measured["ms"]["p50"] > 0


def test_impact_benchmark_counts_while_answering_queries(tmp_path, capsys):
    from bench import impact

    tiny = ["--size", "1500", "--seconds", "1", "--events-per-second", "200", "--query-rate", "10"]
    tiny += ["--name", "i"]
    document = impact.main([*tiny, "--cache", str(tmp_path / "cache"), "--results", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "query p95 with counting / without" in printed and "events/s taken" in printed
    without, counting = document["phases"]
    assert not without["counting"] and counting["counting"]
    assert without["query_status"] == {"200": without["queries"]} and counting["queries"] > 0
    assert counting["beacons"].get("204", 0) > 0 and counting["events_per_second"] > 0  # every beacon taken
    assert set(counting["beacons"]) == {"204"}
    assert document["p95_ratio"] > 0


def test_validators_benchmark_compares_ours_with_fastjsonschema(tmp_path, capsys):
    tiny = ["--publishers", "1", "--activities", "30", "--rounds", "1", "--wrong-from", "2", "--name", "v"]
    document = validators.main([*tiny, "--results", str(tmp_path)])
    assert "fastjsonschema" in capsys.readouterr().out
    assert document["activities"] == 30 and document["disagreements"] == 0
    # The fields made wrong gave both valid and invalid documents, and all three agreed on each.
    assert 0 < document["made_wrong_invalid"] < document["made_wrong"]
    assert set(document["validators"]) == {"schema.compiled (ours)", "fastjsonschema", "jsonschema"}


def test_fastjsonschema_is_given_our_schema_with_2020_12_meaning():
    """Where a $ref has asserting siblings (draft 7 would ignore them), they still apply."""
    schema = {"$defs": {"text": {"type": "string"}}, "$ref": "#/$defs/text", "maxLength": 2}
    check = validators.fastjsonschema_predicate(schema)
    assert check("ab") and not check("abc") and not check(5)


@pytest.mark.redis
@pytest.mark.postgres
def test_scaleout_benchmark_harvests_with_two_workers_without_conflicts(redis_url, postgres_url, tmp_path):
    tiny = ["--publishers", "4", "--activities", "20", "--name", "s", "--results", str(tmp_path)]
    document = scaleout.main(tiny)
    one, two = document["results"]
    assert (one["workers"], two["workers"]) == (1, 2)
    # Every item stored once and merged alike whoever harvested it (the benchmark raises otherwise).
    assert one["items"] == two["items"] == 80 and one["merged_items"] == two["merged_items"] == 80
    assert len(two["jobs_by_worker"]) == 2 and sum(two["jobs_by_worker"]) == 4  # both workers took jobs
    assert document["two_over_one"]["postgresql"] > 0


def test_fanout_benchmark_delivers_every_edit_to_every_subscriber(tmp_path, capsys):
    document = fanout.main(["--subscribers", "20", "--edits", "2", "--name", "f", "--results", str(tmp_path)])
    assert "last delivery" in capsys.readouterr().out
    assert document["subscribers"] == 20 and document["edits"] == 2
    assert document["every_subscriber_got_every_edit_once"]  # checked per subscriber and edit, signed
    assert 0 < document["edit_to_first_delivery"]["p50"] <= document["edit_to_last_delivery"]["p50"]
