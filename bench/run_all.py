"""Run every benchmark, one after another, each in its own process: ``make bench``.

Each benchmark prints its table and writes bench/results/<name>.json; this only runs
them in order and says at the end which (if any) failed or is missing, so one broken
benchmark does not hide the others' figures.

Run: .venv/bin/python bench/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Cheapest first, so a quick look at the first figures needs no waiting.
BENCHMARKS = [
    "widget.py",
    "validators.py",
    "harvest.py",
    "scaleout.py",
    "fanout.py",
    "propagation.py",
    "query.py",
    "impact.py",
    "feeds.py",
    "adapters.py",
    "csv_import.py",
    "hostile.py",
    "convergence.py",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        script = BENCH / name
        print(f"\n=== bench/{name} ===", flush=True)
        if not script.exists():
            print(f"bench/{name} is missing from this checkout.")
            failed.append(f"{name} (missing)")
            continue
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=BENCH.parent)
        print(f"--- bench/{name} took {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(f"{name} (exit {code})")
    if failed:
        print(f"\nNot every benchmark ran: {', '.join(failed)}.")
        return 1
    print("\nAll benchmarks ran; their results are in bench/results/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
