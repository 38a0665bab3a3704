"""The CSV import's memory and time on a 50 MB file: a dry run through ``localfeed-publisher import-csv``.

Each dry run is a process of its own (the test's child, ``tests/publisher/test_csv_limits.py``),
so its peak resident memory is its own; the figure is that peak over what the process held
just before the run (its high-water mark is started again there, through /proc/self/clear_refs).
Three files of about 50 MB:

* ``mixed``: the test's file, 2,000 ordinary rows then 16 rows with a 3 MB cell, every line
  ending, read whole (byte budget raised to 64 MB);
* ``ordinary, default budgets``: about 129,000 ordinary rows, stopped by the row budget;
* ``ordinary, whole file``: the same, with both budgets raised so every row is checked.

Run: .venv/bin/python bench/csv_import.py [--skip-whole]
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``tests`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, table, write_results
from publisher.importer import IMPORT_DEFAULTS

# The child and the files are the test's, so the bench measures exactly what the test bounds;
# loaded at run time because mypy checks bench/ but not tests/.
limits_test: Any = importlib.import_module("tests.publisher.test_csv_limits")
FIFTY_MB = 50 * 1024 * 1024
OUTCOMES = ("Checked only", "The file cannot be imported")  # the summary line of the big file's report


def ordinary_rows(path: Path) -> int:
    """About 50 MB of the template's two rows, renamed so none updates another; its row count."""
    header, walk, coffee = limits_test._template_rows()
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(limits_test._written([header], ["\r\n"]) + "\r\n")
        while out.tell() < FIFTY_MB:
            batch = [[row[0], f"{row[1]} {rows + n}", *row[2:]] for n, row in enumerate([walk, coffee] * 500)]
            out.write(limits_test._written(batch, ["\r\n"]))
            rows += len(batch)
    return rows


def measure(workdir: Path, whole: bool) -> list[dict[str, Any]]:
    mixed, ordinary = workdir / "mixed.csv", workdir / "ordinary.csv"
    limits_test.fifty_megabyte_csv(mixed)
    rows = ordinary_rows(ordinary)
    runs = [
        ("mixed, whole file", mixed, {"CSV_IMPORT_MAX_BYTES": str(64 * 1024 * 1024)}),
        ("ordinary, default budgets", ordinary, {}),
    ]
    if whole:
        raised = {"CSV_IMPORT_MAX_BYTES": str(64 * 1024 * 1024), "CSV_IMPORT_MAX_ROWS": str(rows + 1)}
        runs.append(("ordinary, whole file", ordinary, raised))
    results = []
    for name, path, env in runs:
        print(f"  {name} ...", flush=True)
        started = time.perf_counter()
        figures, report = limits_test.dry_run_in_a_child(workdir, path, **env)
        results.append(
            {
                "run": name,
                "file_mb": round(path.stat().st_size / 2**20, 1),
                "rows": rows if path == ordinary else 2_016,
                "seconds": round(time.perf_counter() - started, 1),  # the child's start-up included
                "growth_mb": figures["grew_mb"],
                "peak_mb": figures["peak_mb"],
                "outcome": [line for line in report.splitlines() if line.startswith(OUTCOMES)][-1][:200],
            }
        )
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--skip-whole", action="store_true", help="leave out the run that checks every row")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="localfeed-bench-") as workdir:
        rows = measure(Path(workdir), whole=not args.skip_whole)
    print()
    print(
        table(
            "CSV import dry runs of about 50 MB (one process each)",
            ["run", "file MB", "seconds", "memory growth MB", "peak MB"],
            [[r["run"], r["file_mb"], r["seconds"], r["growth_mb"], r["peak_mb"]] for r in rows],
        )
    )
    for r in rows:
        print(f"{r['run']}: {r['outcome']}")
    document = {"budgets": IMPORT_DEFAULTS, "bound_mb": limits_test.MEMORY_BOUND_MB, "runs": rows}
    path = write_results("csv_import", document, args.results)
    print(f"\nresults: {path}")
    return document


if __name__ == "__main__":
    main()
