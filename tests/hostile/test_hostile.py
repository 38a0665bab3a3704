"""Issue 16: every hostile source ends in bounded time and memory, with a reason a person can read.

Each case of the corpus (tests/hostile/cases.py) is harvested by a fresh aggregator that
already holds a good source, under the small budgets of ``cases.TEST_BUDGET``. Each must:

- end within its time limit (plus slack for one request in flight): a boundedness check,
  not a speed target;
- stay within ``MEMORY_ALLOWANCE_MB`` of the harvest's starting memory, measured in the
  child process that ran it;
- leave the good source's items exactly as they were;
- tell the operator what went wrong, as the source's problem (never "a fault in the
  aggregator"), keep only a few KB of each refused item, and leave the aggregator's own
  feeds and the source's page answering.
"""

from __future__ import annotations

import pytest

from tests.hostile.cases import TEST_BUDGET, Case, corpus
from tests.hostile.harness import judge, time_limit


def test_the_corpus_is_large_and_varied():
    cases = corpus()
    assert len(cases) >= 80
    assert {case.kind for case in cases} == {"localfeed", "openactive", "oruk", "ical", "atom"}


@pytest.mark.parametrize("case", corpus(), ids=lambda case: case.id)
def test_hostile_source(case: Case, harvest_case):
    outcome = harvest_case(case)
    problems = judge(case, outcome, time_limit({**TEST_BUDGET, **case.config}))
    assert not problems, f"{case.id} ({case.about}):\n- " + "\n- ".join(problems)
