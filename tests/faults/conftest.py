"""Fixtures of the fault suite: a network of real processes to crash, and a lossy proxy in front of it.

The network is ``bench.faultnet``'s (the convergence benchmark crashes the same one):
a publisher, and an aggregator's web process, ``rq worker`` and scheduler on Redis, its
database being the one under test (a SQLite file, or a fresh PostgreSQL database).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.faultnet import FaultNetwork, FaultSettings
from tests.faults.proxy import FaultyProxy


@pytest.fixture
def fault_network(
    database_url: str, redis_url: str, unique_name: str, tmp_path: Path
) -> Iterator[Callable[..., FaultNetwork]]:
    """``fault_network(**settings)``: a network, not yet started (``.start(public_url)``), stopped at the end.

    It is made first and started second so that a proxy can be put in front of its
    aggregator, whose address is known only once the network is made.
    ``settings`` override :class:`bench.faultnet.FaultSettings`.
    """
    made: list[FaultNetwork] = []

    def make(**settings: Any) -> FaultNetwork:
        network = FaultNetwork(
            tmp_path / "network", database_url, redis_url, unique_name, FaultSettings(**settings)
        )
        made.append(network)
        return network

    yield make
    for network in made:
        network.stop()


@pytest.fixture
def lossy_proxy(request: pytest.FixtureRequest) -> Iterator[Callable[[str], FaultyProxy]]:
    """``lossy_proxy(target)``: a FaultyProxy forwarding to ``target``, seeded from the test's name."""
    proxies: list[FaultyProxy] = []

    def make(target: str) -> FaultyProxy:
        proxy = FaultyProxy(target, random.Random(request.node.name)).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
