"""Hostile sources under the default budgets: peak memory and time of the worst cases.

The corpus in tests/hostile/ runs in `make test` under small budgets (3 s a harvest); this
runs its costliest cases (``Case.worst``: compression bombs, 20,000-entry feeds, 10,000-event
calendars, 5,000 sessions on one series) under the budgets an operator gets by default
(``HARVEST_TIME_LIMIT`` 120 s, ``FETCH_TIMEOUT`` 30 s, ``FETCH_MAX_BYTES`` 10 MB), each in a
fresh aggregator holding a good source, each in a process of its own so its peak
resident memory is its own. It reports every case's time and memory growth, and the worst
of each against the budget: the time limit, and the memory allowance the tests hold every
case to.

Run: .venv/bin/python bench/hostile.py [--cases gzip-bomb,atom-20000-entries] [--all]
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``tests`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.settings import DEFAULTS
from bench.common import RESULTS, stopwatch, table, write_results

# The corpus and its harness live with the tests (which `make test` runs under small budgets);
# loaded at run time because mypy checks bench/ but not tests/.
cases_module: Any = importlib.import_module("tests.hostile.cases")
harness: Any = importlib.import_module("tests.hostile.harness")
MEMORY_ALLOWANCE_MB: float = harness.MEMORY_ALLOWANCE_MB


def measure(cases: list[Any], workdir: Path) -> list[dict[str, Any]]:
    """Each case's outcome under the default budgets, with what (if anything) went wrong."""
    rows = []
    with harness.hostile_network(workdir) as (hostile, good):
        harvester = harness.Harvester(workdir, workdir / "child.log", budget="default")
        try:
            for case in cases:
                limit = harness.time_limit({**DEFAULTS, **case.config})
                print(f"  {case.id} ...", flush=True)
                outcome = harvester.run(case.id, case.feed_url(hostile.url), good.feed_url, limit)
                rows.append(
                    {
                        "case": case.id,
                        "about": case.about,
                        "seconds": outcome.get("seconds"),
                        "growth_mb": outcome.get("growth_mb"),
                        "peak_mb": outcome.get("peak_mb"),
                        "status": outcome.get("last_status") or ("hung" if outcome.get("hung") else "error"),
                        "time_limit": limit,
                        "within_budget": bool(
                            outcome.get("seconds") is not None
                            and outcome["seconds"] <= limit
                            and (outcome.get("growth_mb") or 0) <= MEMORY_ALLOWANCE_MB
                        ),
                        # Everything the tests would say, though their reasons assume the small budgets.
                        "problems": harness.judge(case, outcome, limit),
                    }
                )
        finally:
            harvester.close()
    return rows


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    print()
    print(
        table(
            "Hostile sources under the default budgets (one fresh aggregator and process each)",
            ["case", "seconds", "memory growth MB", "peak MB", "status", "within budget?"],
            [
                [
                    r["case"],
                    r["seconds"],
                    r["growth_mb"],
                    r["peak_mb"],
                    r["status"],
                    "yes" if r["within_budget"] else "no",
                ]
                for r in rows
            ],
        )
    )
    timed = [r for r in rows if r["seconds"] is not None]
    measured = [r for r in rows if r["growth_mb"] is not None]
    slowest = max(timed, key=lambda r: r["seconds"])
    hungriest = max(measured, key=lambda r: r["growth_mb"]) if measured else None
    print()
    print(
        f"slowest: {slowest['case']}, {slowest['seconds']:.1f} s = "
        f"{slowest['seconds'] / slowest['time_limit']:.2f}x the {slowest['time_limit']:g} s time limit"
    )
    if hungriest is not None:
        print(
            f"most memory: {hungriest['case']}, +{hungriest['growth_mb']:.0f} MB "
            f"(peak {hungriest['peak_mb']:.0f} MB) = "
            f"{hungriest['growth_mb'] / MEMORY_ALLOWANCE_MB:.2f}x the {MEMORY_ALLOWANCE_MB:g} MB allowance"
        )
    for r in rows:
        for problem in r["problems"]:
            print(f"note: {r['case']}: {problem.splitlines()[0][:300]}")
    return {
        "slowest": {
            "case": slowest["case"],
            "seconds": slowest["seconds"],
            "time_limit": slowest["time_limit"],
        },
        "most_memory": None
        if hungriest is None
        else {
            "case": hungriest["case"],
            "growth_mb": hungriest["growth_mb"],
            "peak_mb": hungriest["peak_mb"],
        },
        "memory_allowance_mb": MEMORY_ALLOWANCE_MB,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cases", default="", help="comma-separated case ids (default: the worst cases)")
    parser.add_argument("--all", action="store_true", help="every case of the corpus")
    parser.add_argument("--name", default="hostile", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)

    wanted = {name.strip() for name in args.cases.split(",") if name.strip()}
    cases = [c for c in cases_module.corpus() if args.all or (c.id in wanted if wanted else c.worst)]
    if wanted - {c.id for c in cases}:
        raise SystemExit(f"No such case: {', '.join(sorted(wanted - {c.id for c in cases}))}.")
    print(f"{len(cases)} hostile cases under the default budgets", flush=True)
    with tempfile.TemporaryDirectory(prefix="localfeed-bench-") as workdir, stopwatch() as elapsed:
        rows = measure(cases, Path(workdir))
    worst = report(rows)
    document = {
        "budgets": {key: DEFAULTS[key] for key in DEFAULTS if key.startswith(("HARVEST_", "FETCH_"))},
        "seconds": round(elapsed(), 1),
        "worst": worst,
        "cases": rows,
    }
    path = write_results(args.name, document, args.results)
    print(f"\nresults: {path}")
    return document


if __name__ == "__main__":
    main()
