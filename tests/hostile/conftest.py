"""Fixtures for the hostile corpus: one hostile server and one good source per test process,
and a child process that harvests the cases (see ``tests.hostile.harness``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.hostile.cases import TEST_BUDGET, Case
from tests.hostile.harness import Harvester, hostile_network, time_limit


@pytest.fixture(scope="session")
def network(tmp_path_factory) -> Iterator[tuple[Any, Any]]:
    with hostile_network(tmp_path_factory.mktemp("hostile-network")) as servers:
        yield servers


@pytest.fixture(scope="session")
def harvester(tmp_path_factory) -> Iterator[Harvester]:
    workdir = tmp_path_factory.mktemp("hostile")
    harvester = Harvester(workdir, workdir / "child.log")
    yield harvester
    harvester.close()


@pytest.fixture
def harvest_case(network, harvester) -> Callable[[Case], dict[str, Any]]:
    """``harvest_case(case)``: what harvesting it did, measured in the child process."""
    hostile, good = network

    def _harvest(case: Case) -> dict[str, Any]:
        limit = time_limit({**TEST_BUDGET, **case.config})
        return harvester.run(case.id, case.feed_url(hostile.url), good.feed_url, limit)

    return _harvest
