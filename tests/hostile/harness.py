"""Harvesting one hostile case in a process of its own, and judging what happened.

Memory can only be measured honestly in a process of its own: a compression bomb that
takes a harvest to 2 GB would take the test runner with it, and ``ru_maxrss`` is a
high-water mark for the whole process. So :class:`Harvester` keeps one child (this
module run with ``python -m``), which imports the aggregator once, builds a template
aggregator database holding the good source, harvested, and then forks a grandchild for
each case it is sent. The grandchild copies the template (a fresh aggregator that already
holds a good source), follows the hostile source and harvests it with
``aggregator.harvest.harvest_source``, the function an rq worker runs, and reports:
seconds, peak memory (its own ``ru_maxrss``, which starts from its resident size at the
fork, so the figure is the case's alone), what the source row and the quarantine say,
whether the good source's items changed, what was stored, and whether the aggregator's
own feeds still answer. A case that hangs is killed at its deadline, so the corpus
always ends, and forking costs milliseconds where starting Python costs seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
MEMORY_ALLOWANCE_MB = 150.0  # peak growth over the case's start that counts as bounded
TIME_SLACK = 4.0  # seconds over HARVEST_TIME_LIMIT: one request in flight, and writing what was read
KILL_AFTER = 15.0  # seconds past limit + slack after which a case is hung and its process killed
ADDRESS_SPACE_LIMIT = 3 << 30  # a child past this fails (MemoryError) rather than take the machine's memory
QUARANTINE_ITEM_LIMIT = 16_384  # bytes of one refused item kept, problems included ("a few KB")
SHORT_ENOUGH = 65_536  # bytes: an oversized text stored cut down to this is handled, no reason needed
_BUG_TEXT = "fault in the aggregator"
_PAGES = ("/feeds/activities", "/feeds/activities.atom", "/feeds/activities.ics")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


# -- the child --------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def child_config(case_id: str, database: Path, budget: str) -> dict[str, Any]:
    from tests.hostile.cases import TEST_BUDGET, by_id

    return {
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "hostile",
        "TESTING": True,
        "ALLOW_PRIVATE_NETWORKS": True,  # the good source and the hostile server are on loopback
        "RATELIMIT_ENABLED": False,
        **(TEST_BUDGET if budget == "test" else {}),
        **(by_id(case_id).config if case_id else {}),
    }


@contextlib.contextmanager
def aggregator_on(config: Mapping[str, Any]) -> Iterator[Any]:
    """An aggregator app on ``config``'s database; its threads and connections gone afterwards."""
    from aggregator import create_app
    from aggregator.harvest import _engines
    from aggregator.hub import stop_worker

    app = create_app(config)
    try:
        yield app
    finally:
        stop_worker(app)
        app.extensions["engine"].dispose()
        if (engine := _engines.pop(config["DATABASE_URL"], None)) is not None:
            engine.dispose()


def make_template(good_url: str, workdir: Path) -> Path:
    """A database holding the good source, harvested: each case starts from a copy."""
    from tests.aggregator.conftest import follow, harvest

    database = workdir / f"template-{os.getpid()}.sqlite"
    with aggregator_on(child_config("", database, "test")) as app:
        harvest(app, follow(app, good_url))
    return database


def harvest_case(request: Mapping[str, Any], template: Path) -> dict[str, Any]:
    """Harvest one case in a fresh aggregator that already holds the good source; what happened."""
    from tests.aggregator.conftest import follow, harvest, live, source_row
    from tests.hostile.cases import by_id

    case = by_id(request["case"])
    database = Path(request["workdir"]) / f"{case.id}.sqlite"
    shutil.copyfile(template, database)
    config = child_config(case.id, database, request.get("budget", "test"))
    with aggregator_on(config) as app:
        before = _good_copies(live(app))
        hostile = follow(app, request["feed_url"], kind=case.kind)
        rss_start = _rss_bytes()
        started = time.perf_counter()
        result = harvest(app, hostile)
        seconds = time.perf_counter() - started
        peak = max(_maxrss_bytes(), _rss_bytes())
        shown = live(app)
        after = _good_copies(shown)
        stored = [json.dumps(row["data"], ensure_ascii=False) for i, row in shown.items() if i not in after]
        row = source_row(app, hostile)
        return {
            "case": case.id,
            "seconds": round(seconds, 3),
            "status": result.status,
            "message": result.message,
            "last_status": row.last_status,
            "last_error": row.last_error,
            "quarantine": _quarantined(app, hostile),
            "rss_start_mb": round(rss_start / 2**20, 1),
            "peak_mb": round(peak / 2**20, 1),
            "growth_mb": round((peak - rss_start) / 2**20, 1),
            "good_items": len(before),
            "good_changed": sorted(i for i in before if before[i] != after.get(i)),
            "stored": len(stored),
            "stored_with_controls": sum(1 for text in stored if _CONTROL.search(text)),
            "largest_stored": max((len(text.encode()) for text in stored), default=0),
            "pages": _page_statuses(app, hostile),
        }


def _good_copies(shown: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The good source's items as shown: their data and provenance, as comparable text."""
    return {
        item_id: json.dumps([row["data"], row["provenance"]], sort_keys=True, default=str)
        for item_id, row in shown.items()
        if "/good/" in item_id
    }


def _quarantined(app: Any, source_id: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from aggregator.store import quarantine

    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(
            select(quarantine.c.item_ref, quarantine.c.problems, quarantine.c.data)
            .where(quarantine.c.source_id == source_id)
            .limit(20)
        ).all()
    return [
        {
            "ref": str(row.item_ref)[:200],
            "text": json.dumps(row.problems, default=str)[:2_000],
            "bytes": len(json.dumps([row.item_ref, row.problems, row.data], default=str)),
        }
        for row in rows
    ]


def _page_statuses(app: Any, source_id: int) -> dict[str, Any]:
    """Whether the aggregator's own feeds and the source's health still answer, whatever was stored."""
    client = app.test_client()
    statuses: dict[str, Any] = {}
    for path in (*_PAGES, f"/sources/{source_id}.json"):
        try:
            statuses[path] = client.get(path).status_code
        except Exception as exc:  # TESTING lets the view's exception through: that is the finding
            statuses[path] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return statuses


def run_forked(request: Mapping[str, Any], template: Path) -> dict[str, Any]:
    """``harvest_case`` in a forked process of its own, killed if it outlives the request's deadline."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the grandchild: one case, then gone
        os.close(reader)
        try:
            report = harvest_case(request, template)
        except BaseException:
            report = {"case": request["case"], "error": traceback.format_exc()[-3_000:]}
        with os.fdopen(writer, "wb") as out:
            out.write(json.dumps(report, default=str).encode())
        os._exit(0)
    os.close(writer)
    started = time.monotonic()
    data = b""
    with os.fdopen(reader, "rb") as pipe:
        while (left := float(request["deadline"]) - (time.monotonic() - started)) > 0:
            ready, _, _ = select.select([pipe], [], [], left)
            if not ready:
                break
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            data += chunk
        else:
            data = b""
    finished = bool(data) and data.endswith(b"}")
    if not finished:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    if not finished:
        return {"case": request["case"], "hung": True, "seconds": round(time.monotonic() - started, 1)}
    outcome: dict[str, Any] = json.loads(data)
    return outcome


def main() -> None:
    """The child: one JSON request per line in, one JSON outcome per line out."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    templates: dict[str, Path] = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["good_url"] not in templates:
                templates[request["good_url"]] = make_template(request["good_url"], Path(request["workdir"]))
            outcome = run_forked(request, templates[request["good_url"]])
        except Exception:
            outcome = {"case": request.get("case"), "error": traceback.format_exc()[-3_000:]}
        sys.stdout.write(json.dumps(outcome, default=str) + "\n")
        sys.stdout.flush()


# -- the parent -------------------------------------------------------------------------------


class Harvester:
    """Sends cases to the child process (started on first use, again after it died or hung)."""

    def __init__(self, workdir: Path, log: Path, budget: str = "test") -> None:
        self.workdir = workdir
        self.log = log
        self.budget = budget
        self._process: subprocess.Popen[str] | None = None
        self._log_file: IO[bytes] | None = None

    def run(self, case_id: str, feed_url: str, good_url: str, limit: float) -> dict[str, Any]:
        """The outcome of harvesting one case whose time limit is ``limit`` seconds."""
        process = self._child()
        deadline = limit + TIME_SLACK + KILL_AFTER
        request = {
            "case": case_id,
            "feed_url": feed_url,
            "good_url": good_url,
            "workdir": str(self.workdir),
            "budget": self.budget,
            "deadline": deadline,
        }
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        # The child kills a hung case itself; this wait only guards against the child dying.
        ready, _, _ = select.select([process.stdout], [], [], deadline + 60)
        line = process.stdout.readline() if ready else ""
        if not line:
            self.close()
            return {
                "case": case_id,
                "error": f"the harness's child process stopped; its log:\n{self.log_tail()}",
            }
        outcome: dict[str, Any] = json.loads(line)
        return outcome

    def log_tail(self, chars: int = 3_000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def close(self) -> None:
        """Stop the child (this one only), if there is one."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _child(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self.close()
            self._log_file = self.log.open("ab")
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.hostile.harness"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log_file,
                text=True,
            )
        return self._process


def time_limit(config: Mapping[str, Any]) -> float:
    from aggregator.settings import DEFAULTS

    return float(config.get("HARVEST_TIME_LIMIT", DEFAULTS["HARVEST_TIME_LIMIT"]))


def judge(case: Any, outcome: Mapping[str, Any], limit: float) -> list[str]:
    """What went wrong in ``outcome`` against the four promises; empty when the case is handled."""
    if outcome.get("hung"):
        return [f"the harvest had not ended after {outcome['seconds']} s and was killed"]
    if "error" in outcome:
        return [f"the harness could not run the case:\n{outcome['error']}"]
    found = []
    if outcome["seconds"] > limit + TIME_SLACK:
        found.append(
            f"the harvest took {outcome['seconds']:.1f} s, over its time limit of {limit:g} s "
            f"(+{TIME_SLACK:g} s slack)"
        )
    if outcome["growth_mb"] > MEMORY_ALLOWANCE_MB:
        found.append(
            f"memory grew by {outcome['growth_mb']:,.0f} MB during the harvest "
            f"(peak {outcome['peak_mb']:,.0f} MB), over the {MEMORY_ALLOWANCE_MB:g} MB allowance"
        )
    if outcome["good_changed"]:
        found.append(f"the good source's items changed: {outcome['good_changed']}")
    if outcome["stored_with_controls"]:
        found.append(f"{outcome['stored_with_controls']} item(s) were stored holding control characters")
    told = operator_text(outcome)
    # Text cut to size or cleaned of controls on the way in is handled: there is nothing to report.
    handled_quietly = (
        case.handled_if_stored
        and outcome["stored"] > 0
        and not outcome["stored_with_controls"]
        and outcome["largest_stored"] <= SHORT_ENOUGH
    )
    if _BUG_TEXT in told.lower() or "failed unexpectedly" in told.lower():
        found.append(f"reported as a fault in the aggregator, not the source's problem: {told[:600]}")
    elif not handled_quietly and not case.matches(told):
        found.append(
            f"the operator is not told what went wrong (wanted /{case.reason}/): "
            f"status {outcome['last_status']!r}, told {told[:600]!r}"
        )
    oversized = [q for q in outcome["quarantine"] if q["bytes"] > QUARANTINE_ITEM_LIMIT]
    if oversized:
        found.append(
            f"quarantine keeps {max(q['bytes'] for q in oversized):,} bytes of a refused item "
            f"(limit {QUARANTINE_ITEM_LIMIT:,})"
        )
    failing = {path: status for path, status in outcome["pages"].items() if status != 200}
    if failing:
        found.append(f"afterwards the aggregator's own pages fail: {failing}")
    return found


def operator_text(outcome: Mapping[str, Any]) -> str:
    """All an operator reads about the source: its recorded problem and its refused items' reasons."""
    error = outcome.get("last_error") or {}
    parts = (
        [str(error.get(key, "")) for key in ("thing", "cause", "fix")]
        if isinstance(error, dict)
        else [str(error)]
    )
    parts += [q["text"] for q in outcome.get("quarantine", [])]
    return " ".join(part for part in parts if part)


@contextlib.contextmanager
def hostile_network(workdir: Path) -> Iterator[tuple[Any, Any]]:
    """The hostile server with the whole corpus, and a good source beside it: (hostile, good feed)."""
    from tests.aggregator.feedserver import FeedServer
    from tests.conftest import LiveServer
    from tests.factories import weekly_activity
    from tests.hostile.cases import corpus, routes
    from tests.hostile.server import HostileServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request of the good source
    good = FeedServer(page_size=10)
    good_server = LiveServer(good.app).start()
    good.base_url = good_server.url
    for n in range(3):
        good.put(weekly_activity(id=f"{good.base_url}/good/walk-{n}", name=f"Good walk {n}"))
    hostile = HostileServer(routes(corpus()))
    hostile.good_ids.extend(good.changes)
    try:
        yield hostile, good
    finally:
        hostile.stop()
        good_server.stop()


if __name__ == "__main__":
    main()
