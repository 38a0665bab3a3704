"""Convergence: from restarting a crashed process to the aggregator holding exactly the publisher's state.

A real network runs on loopback (``bench.faultnet``): a publisher pushing by WebSub, and an
aggregator's web process, ``rq worker`` and scheduler on Redis, its database a SQLite file
or a fresh PostgreSQL database. Each round edits through the publisher's API, SIGKILLs one
of the aggregator's web process, its worker and the publisher at a random moment of the
edits (the edits go on while it is down), starts it again after a short random pause, and
stops editing. The clock runs from that restart until the aggregator's republished feed
equals the publisher's feed exactly (every live id, every item's content). Budget
(DESIGN.md): exact within 10 s of the restart, on both databases.

Run: ``.venv/bin/python bench/convergence.py [--kills 20] [--databases sqlite,postgresql]``.
Prints a table and writes ``bench/results/convergence.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REDIS_URL,
    RESULTS,
    fresh_postgres,
    percentiles,
    postgres_available,
    redis_available,
    table,
    write_results,
)
from bench.faultnet import CONVERGENCE_BUDGET, VICTIMS, Editor, FaultNetwork, unique_queue

DATABASES = ("sqlite", "postgresql")
EDIT_PAUSE = 0.03  # seconds between an editor's requests


@contextlib.contextmanager
def aggregator_database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'aggregator.sqlite'}"
    else:
        with fresh_postgres("localfeed_bench_convergence") as url:
            yield url


def edit_for(editor: Editor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        editor.edit()
        time.sleep(EDIT_PAUSE)


def crash_rounds(
    network: FaultNetwork, kills: int, window: float, rng: random.Random
) -> list[dict[str, Any]]:
    """``kills`` rounds of edit, kill, edit while down, restart; each one's seconds to equality."""
    editor = Editor(network, random.Random(rng.random()))
    rounds = []
    try:
        for number in range(kills):
            victim = rng.choice(VICTIMS)
            edit_for(editor, rng.uniform(0.3, 1.5))
            network.kill(victim)
            edit_for(editor, rng.uniform(0.1, 1.0))  # what the publisher takes while the victim is down
            restarted = network.restart(victim)
            took, difference = network.converge(restarted)
            at_budget = "" if took is not None else str(difference)
            if took is None:  # over budget: how long it takes after all, up to the window
                print(f"    not equal {CONVERGENCE_BUDGET:g} s after the restart: {difference}", flush=True)
                print(f"    {network.why_not_yet()}", flush=True)
                took, difference = network.converge(restarted, budget=window)
            rounds.append(
                {
                    "round": number,
                    "victim": victim,
                    "seconds": took,
                    "left_at_budget": at_budget,
                    "left_at_window": str(difference) if took is None else "",
                }
            )
            print(
                f"  kill {number + 1}/{kills}: {victim}, "
                + (f"{took:.2f} s" if took is not None else f"not within {window:g} s"),
                flush=True,
            )
            if took is None:
                print(f"    left after {window:g} s: {difference}", flush=True)
                network.wait_ready()
                network.converge(time.monotonic(), budget=120)  # start the next round from a converged state
    finally:
        editor.close()
    rounds[-1]["edits"] = editor.done | {"refused_or_cut_off": editor.failed}
    return rounds


def summary(kind: str, rounds: list[dict[str, Any]], window: float) -> dict[str, Any]:
    """Percentiles over the kills; a round that never converged counts as the whole window (a lower bound)."""
    seconds = [r["seconds"] if r["seconds"] is not None else window for r in rounds]
    figures = percentiles(seconds)
    return {
        "database": kind,
        "kills": len(rounds),
        "by_victim": {victim: sum(r["victim"] == victim for r in rounds) for victim in VICTIMS},
        "not_converged_within_window": sum(r["seconds"] is None for r in rounds),
        "within_budget": sum(r["seconds"] is not None and r["seconds"] <= CONVERGENCE_BUDGET for r in rounds),
        **{f"{name}_s": value for name, value in figures.items()},
        "p95_within_budget": figures["p95"] <= CONVERGENCE_BUDGET,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="crashes measured per database (default 20)")
    parser.add_argument("--databases", default=",".join(DATABASES), help="comma-separated: sqlite,postgresql")
    parser.add_argument(
        "--window", type=float, default=30.0, help="seconds to wait for convergence before counting a miss"
    )
    parser.add_argument("--name", default="convergence", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)
    if why := redis_available():
        raise SystemExit(f"The convergence benchmark needs Redis for the rq worker: {why}.")
    rng = random.Random(17)
    measured, left_out = [], {}
    for kind in args.databases.split(","):
        if kind == "postgresql" and (why := postgres_available()):
            left_out[kind] = why
            print(f"Leaving out PostgreSQL: {why}")
            continue
        print(f"{kind}: {args.kills} crashes", flush=True)
        with (
            tempfile.TemporaryDirectory(prefix="localfeed-bench-") as folder,
            aggregator_database(kind, Path(folder)) as database_url,
        ):
            network = FaultNetwork(Path(folder) / "network", database_url, REDIS_URL, unique_queue("bench"))
            try:
                network.start()
                measured.append(
                    summary(kind, crash_rounds(network, args.kills, args.window, rng), args.window)
                )
            finally:
                network.stop()
    results = {
        "budget_s": CONVERGENCE_BUDGET,
        "window_s": args.window,
        "databases": measured,
        "left_out": left_out,
    }
    path = write_results(args.name, results, args.results)
    rows = [
        (m["database"], m["kills"], m["p50_s"], m["p95_s"], m["max_s"], f"{m['within_budget']}/{m['kills']}")
        for m in measured
    ]
    title = f"Restart to exact convergence, seconds (budget {CONVERGENCE_BUDGET:g} s)"
    print(table(title, ["database", "kills", "p50", "p95", "max", "within budget"], rows))
    for m in measured:
        verdict = "within" if m["p95_within_budget"] else "OVER"
        print(f"{m['database']}: p95 {m['p95_s']:.2f} s, {verdict} the {CONVERGENCE_BUDGET:g} s budget")
    print(f"written to {path}")
    return results


if __name__ == "__main__":
    main()
