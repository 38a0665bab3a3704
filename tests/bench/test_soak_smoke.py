"""A short soak (bench/soak.py): the demo network under load for under a minute, sampled, compared.

No timing is asserted (the figures of a real, half-hour soak belong in docs/performance.md);
what is checked is what they rest on: every process sampled, the load answered without an
error, propagation observed, housekeeping running, and the final state exact.
"""

from __future__ import annotations

import orjson
import pytest

from bench import soak


@pytest.mark.redis
def test_a_short_soak_samples_every_process_and_ends_exact(redis_url, tmp_path, capsys):
    document = soak.main(
        [
            "--minutes", "0.75", "--sample", "15", "--writes", "2", "--reads", "10",
            "--housekeeping", "10", "--retention", "5", "--name", "s", "--results", str(tmp_path),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "Memory over 0.75 minutes" in printed and "final state: exact" in printed
    assert orjson.loads((tmp_path / "s.json").read_bytes())["samples"] == orjson.loads(
        orjson.dumps(document["samples"])
    )
    assert len(document["samples"]) == 3
    processes = {"aggregator", "rq-worker", "scheduler", "publisher-umbrella"}
    assert processes <= set(document["final"]["rss_mb"])
    assert all(mb and mb > 0 for mb in document["final"]["rss_mb"].values())
    assert processes <= set(document["memory_slope_mb_per_hour"])
    assert document["error_count"] == 0, document["errors"]
    assert document["converged_after_s"] is not None, document["difference"]
    assert document["load"]["reads"] > 0 and sum(document["load"]["writes"].values()) > 0
    assert document["propagation_s"]["p50"] > 0
    # Housekeeping ran in the publishers: no relayed outbox record or delivered push is older than
    # the five seconds' retention plus a ten-second pass, so few are left after 45 s of writes.
    umbrella = document["final"]["rows"]["publisher-umbrella"]
    assert umbrella["websub_deliveries"] < sum(document["load"]["writes"].values())
