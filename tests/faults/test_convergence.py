"""After any crash, the aggregator ends with exactly the publisher's state (issue 17).

A burst of edits (creates, updates, deletes) goes through the publisher's API while a
chaos thread SIGKILLs the aggregator's web process, its rq worker and the publisher at
random moments, each started again after a short random pause. Within 10 s of the last
restart, the aggregator's republished feed must list exactly the publisher's live items,
each with the publisher's content (less the provenance the aggregator adds). The same
again with a third of the pushes lost and others arriving late and out of order.
"""

from __future__ import annotations

import time

import pytest

from bench.faultnet import CONVERGENCE_BUDGET, FaultNetwork, burst_with_chaos

pytestmark = [pytest.mark.faults, pytest.mark.redis]

KILLS_PER_RUN = 12  # two runs per database: 24 random kills on each


def _assert_converges(network: FaultNetwork, since: float, context: str) -> None:
    took, difference = network.converge(since)
    if took is None:
        pytest.fail(
            "The aggregator's merged set did not equal the publisher's feed within "
            f"{CONVERGENCE_BUDGET:.0f} s of the last restart ({context}):\n{difference}\n"
            f"{network.why_not_yet()}\n\nLogs:\n{network.log_tails()}"
        )


def test_converges_exactly_after_random_crashes_during_an_edit_burst(fault_network):
    network = fault_network().start()
    editor, chaos = burst_with_chaos(network, KILLS_PER_RUN, seed=17)
    context = (
        f"{editor.total} edits {editor.done}, {editor.failed} refused or cut off; kills: {chaos.summary()}"
    )

    _assert_converges(network, chaos.last_restart, context)
    assert len(chaos.kills) == KILLS_PER_RUN
    assert editor.total >= 100, context  # a real burst, not a trickle between crashes


def test_converges_exactly_with_lost_late_and_reordered_pushes(fault_network, lossy_proxy):
    network = fault_network()
    proxy = lossy_proxy(network.aggregator.url)
    network.start(public_url=proxy.url)
    editor, chaos = burst_with_chaos(network, KILLS_PER_RUN, seed=29)
    context = (
        f"{editor.total} edits {editor.done}; kills: {chaos.summary()}; "
        f"pushes through the proxy: {dict(proxy.counts)}"
    )

    _assert_converges(network, chaos.last_restart, context)
    # The held deliveries of old changes arrive now, after newer ones were applied; none may undo them.
    deadline = time.monotonic() + 10
    while proxy.holding and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    after_late = network.difference()
    assert after_late.empty, (
        f"Late deliveries of old changes undid newer ones ({context}):\n{after_late}\n"
        f"{network.why_not_yet()}\n\nLogs:\n{network.log_tails()}"
    )
    assert proxy.counts["dropped"] > 0 and proxy.counts["late"] > 0, context
