"""The hub's delivery passes: a batch claimed at once, POSTs from a pool, one subscriber's in order.

Real HTTP on loopback to a receiver that can hold a callback's answer until the test lets
it go, so "while the slow one was still blocked" is an event the test controls, not a time.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from flask import Flask, request
from sqlalchemy import insert, select

from federation.websub import HubWorker, jobs
from federation.websub.hub import SEND_WINDOW

from . import websub_world
from .websub_world import OTHER_TOPIC, TOPIC, Clock, make_hub

HOLD_LIMIT = 30.0  # a held answer goes anyway after this, so a failing test cannot hang


class Receiver:
    """Callbacks ``/cb/<token>`` on one app: each push noted in arrival order, per token.

    ``hold(token)`` returns an event the token's answers wait for; ``expect(token, n)``
    one that is set when the token has had ``n`` pushes. ``most_at_once`` is the largest
    number of one token's pushes the receiver was answering at the same time.
    """

    def __init__(self) -> None:
        self.got: dict[str, list[bytes]] = defaultdict(list)
        self.most_at_once: dict[str, int] = defaultdict(int)
        self._answering: dict[str, int] = defaultdict(int)
        self._held: dict[str, threading.Event] = {}
        self._expected: dict[str, tuple[int, threading.Event]] = {}
        self._lock = threading.Lock()

    def hold(self, token: str) -> threading.Event:
        return self._held.setdefault(token, threading.Event())

    def expect(self, token: str, count: int) -> threading.Event:
        self._expected[token] = (count, threading.Event())
        return self._expected[token][1]

    def app(self) -> Flask:
        app = Flask("receiver")

        @app.post("/cb/<token>")
        def push(token: str):
            with self._lock:
                self.got[token].append(request.get_data())
                self._answering[token] += 1
                self.most_at_once[token] = max(self.most_at_once[token], self._answering[token])
                count, reached = self._expected.get(token, (0, threading.Event()))
                if len(self.got[token]) >= count:
                    reached.set()
            if token in self._held:
                self._held[token].wait(HOLD_LIMIT)
            with self._lock:
                self._answering[token] -= 1
            return "", 204

        return app


def subscribe(hub, engine, clock: Clock, callback: str, topic: str = TOPIC) -> None:
    """An active, verified subscription, as verification (tested elsewhere) leaves it."""
    with engine.begin() as conn:
        conn.execute(
            insert(hub.subscriptions).values(
                topic=topic,
                callback=callback,
                state="active",
                secret="s",
                lease_seconds=86_400,
                expires_at=clock.now + timedelta(days=1),
                created_at=clock.now,
                verified_at=clock.now,
                failures=0,
            )
        )


def publish(hub, engine, body: bytes, topic: str = TOPIC) -> int:
    with engine.begin() as conn:
        return hub.publish(conn, topic, body, "application/json")


def states(hub, engine) -> list[str]:
    d = hub.deliveries
    with engine.connect() as conn:
        return list(conn.execute(select(d.c.state).order_by(d.c.id)).scalars())


def hub_threads(besides: Iterable[threading.Thread] = ()) -> list[str]:
    """The hub threads running now, but for ``besides`` (other tests' apps in this process may
    still have theirs)."""
    return [t.name for t in threading.enumerate() if t.name.startswith("websub-") and t not in set(besides)]


def test_a_slow_callback_keeps_its_order_and_holds_up_no_one_else(serve, tmp_path):
    clock = Clock()
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock)
    receiver = Receiver()
    base = serve(receiver.app()).url
    for token in ("slow", "fast"):
        subscribe(hub, engine, clock, f"{base}/cb/{token}")
    publish(hub, engine, b"edit 1")
    publish(hub, engine, b"edit 2")
    release, slow_answering = receiver.hold("slow"), receiver.expect("slow", 1)
    fast_has_both = receiver.expect("fast", 2)

    handled: list[int] = []
    deliverer = threading.Thread(target=lambda: handled.append(hub.deliver_due()))
    deliverer.start()
    try:
        assert slow_answering.wait(15)
        assert fast_has_both.wait(15), "the fast callback waited for the slow one"
        # The slow callback is still answering its first push: its second was not sent beside it.
        assert receiver.got["slow"] == [b"edit 1"]
    finally:
        release.set()
        deliverer.join(15)
    assert handled == [4]
    while hub.deliver_due():  # on a slow machine the pass's window may have closed on the second
        pass
    assert receiver.got == {"slow": [b"edit 1", b"edit 2"], "fast": [b"edit 1", b"edit 2"]}
    assert receiver.most_at_once["slow"] == 1
    assert states(hub, engine) == ["delivered"] * 4
    hub.close()
    engine.dispose()


def test_a_failed_push_is_not_overtaken_within_its_pass(serve, tmp_path):
    """The callback's later push waits for the next pass; the failed one backs off (and may then
    arrive after it: a retried fat ping is older news, which subscribers tell by its change numbers)."""
    clock = Clock()
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock)
    subscriber = Flask("failing_once")
    got: list[bytes] = []

    @subscriber.post("/cb/<token>")
    def push(token: str):
        got.append(request.get_data())
        return "", 500 if len(got) == 1 else 204

    subscribe(hub, engine, clock, f"{serve(subscriber).url}/cb/f")
    publish(hub, engine, b"edit 1")
    publish(hub, engine, b"edit 2")
    assert hub.deliver_due() == 2
    assert got == [b"edit 1"]
    d = hub.deliveries
    with engine.connect() as conn:
        rows = conn.execute(select(d.c.state, d.c.attempts, d.c.claimed_until).order_by(d.c.id)).all()
    assert [tuple(row) for row in rows] == [("pending", 1, None), ("pending", 0, None)]
    assert hub.deliver_due() == 1  # the later push; the failed one waits for its backoff
    assert got == [b"edit 1", b"edit 2"]
    hub.close()
    engine.dispose()


def test_two_hubs_on_one_database_deliver_each_push_once_and_in_order(serve, database_url):
    """Two hub processes' worth (own engines, clients and pools) drain one queue at once."""
    clock = Clock()
    hubs = [make_hub(database_url, clock, delivery_threads=4) for _ in range(2)]
    (hub, engine), _ = hubs
    receiver = Receiver()
    base = serve(receiver.app()).url
    tokens = [f"s{n}" for n in range(24)]
    for token in tokens:
        subscribe(hub, engine, clock, f"{base}/cb/{token}")
    for token in tokens[:6]:  # one callback, two topics: still one push at a time to it
        subscribe(hub, engine, clock, f"{base}/cb/{token}", topic=OTHER_TOPIC)
    edits = [f"edit {n}".encode() for n in range(3)]
    queued = sum(publish(hub, engine, edit, topic) for edit in edits for topic in (TOPIC, OTHER_TOPIC))
    assert queued == 3 * 30

    start, handled = threading.Barrier(2), defaultdict(int)

    def work(index: int) -> None:
        start.wait()
        while passed := hubs[index][0].deliver_due(limit=8):  # small passes, so the hubs interleave
            handled[index] += passed

    workers = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert handled[0] + handled[1] == queued  # no delivery claimed twice
    assert handled[0] and handled[1], "one hub did all the work: the test did not exercise sharing"
    assert states(hub, engine) == ["delivered"] * queued
    for token in tokens:
        both_topics = token in tokens[:6]
        # Each edit once per topic, the edits in the order they were made.
        assert receiver.got[token] == [edit for edit in edits for _ in range(1 + both_topics)], token
        assert receiver.most_at_once[token] == 1, token
    for other, other_engine in hubs:
        other.close()
        other_engine.dispose()


def test_a_stopped_worker_finishes_its_pass_and_leaves_no_thread(serve, tmp_path):
    clock = Clock()
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock, delivery_threads=4)
    receiver = Receiver()
    base = serve(receiver.app()).url
    tokens = ["held", "a", "b", "c"]
    for token in tokens:
        subscribe(hub, engine, clock, f"{base}/cb/{token}")
    publish(hub, engine, b"edit")
    release, arrived = receiver.hold("held"), receiver.expect("held", 1)

    already = threading.enumerate()
    worker = HubWorker(hub, interval=30.0).start()
    hub.wake()
    assert arrived.wait(15), "the worker did not start delivering"
    assert any(name.startswith("websub-delivery") for name in hub_threads())  # the pass's pool
    stopping = threading.Thread(target=worker.stop)
    stopping.start()  # while the held callback is still answering
    release.set()
    stopping.join(15)
    assert hub_threads(besides=already) == []
    assert states(hub, engine) == ["delivered"] * len(tokens)  # the pass was recorded, not dropped
    hub.close()
    engine.dispose()


def test_what_a_pass_cannot_start_in_its_window_waits_for_the_next(serve, tmp_path):
    """One thread, held by a slow callback past the window: the push queued behind it is let
    go unsent (no attempt counted), so the pass's claim never outlives what it sends."""
    clock = Clock()
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock, delivery_threads=1)
    receiver = Receiver()
    base = serve(receiver.app()).url
    for token in ("held", "queued"):
        subscribe(hub, engine, clock, f"{base}/cb/{token}")
    publish(hub, engine, b"edit")
    release, arrived = receiver.hold("held"), receiver.expect("held", 1)

    handled: list[int] = []
    deliverer = threading.Thread(target=lambda: handled.append(hub.deliver_due()))
    deliverer.start()
    try:
        assert arrived.wait(15)
        time.sleep(SEND_WINDOW + 0.2)  # at least the window: the queued push may no longer start
    finally:
        release.set()
        deliverer.join(15)
    assert handled == [2] and "queued" not in receiver.got
    d = hub.deliveries
    with engine.connect() as conn:
        rows = conn.execute(select(d.c.state, d.c.attempts, d.c.claimed_until).order_by(d.c.id)).all()
    assert [tuple(row) for row in rows] == [("delivered", 1, None), ("pending", 0, None)]
    assert hub.deliver_due() == 1
    assert receiver.got["queued"] == [b"edit"]
    hub.close()
    engine.dispose()


def test_one_job_sends_what_takes_several_passes(tmp_path, serve):
    """A thousand subscribers are several passes; one job makes them all rather than leaving the
    later passes to rq's scheduler (which would add its polling interval to each)."""
    clock = Clock()
    hub, engine = make_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock, delivery_threads=1)
    websub_world.current["hub"] = hub
    receiver = Receiver()
    url = serve(receiver.app()).url
    tokens = [f"s{number}" for number in range(20)]  # 20 callbacks: three passes of eight
    for token in tokens:
        subscribe(hub, engine, clock, f"{url}/cb/{token}")
    try:
        with engine.begin() as conn:
            hub.publish(conn, TOPIC, b"one change", "application/json")
        assert jobs.run_due("tests.shared.websub_world:current_hub", {}) == len(tokens)
        assert all(receiver.got[token] == [b"one change"] for token in tokens)
    finally:
        websub_world.current.clear()
        hub.close()
        engine.dispose()
