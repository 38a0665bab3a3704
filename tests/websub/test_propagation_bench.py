"""A tiny run of bench/propagation.py: it runs both modes, prints its table and writes its results.

No timing is asserted (figures belong in bench/results); what is checked is that every
edit was measured in each mode and the file holds what was printed.
"""

from __future__ import annotations

import orjson

from bench import propagation


def test_the_propagation_benchmark_measures_push_and_polling(tmp_path, capsys):
    results = propagation.main(["--edits", "3", "--poll-interval", "0.5", "--results", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "WebSub push, one worker" in printed and "polling only, every 0.5 s" in printed
    written = orjson.loads((tmp_path / "propagation.json").read_bytes())
    assert written["websub"] == orjson.loads(orjson.dumps(results["websub"]))
    assert written["edits"] == 3 and written["websub"]["workers"] == 1
    for mode in ("websub", "polling_only"):
        assert 0 < written[mode]["p50"] <= written[mode]["p95"] <= written[mode]["max"]
